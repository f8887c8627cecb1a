// Reads a salted model file (docs/FORMAT.md) into a plain description: graph
// inputs/outputs, nodes with named attributes, weight tensors, salt spec,
// PyTorch test vector and metadata. Every field is validated (magic,
// version, lengths, tensor offsets in range, aligned and not overlapping,
// dtype, shape against byte length, JSON types, references between nodes and
// tensors, topological order); with LoadOptions::verify the weights hash and
// the test-vector hash are recomputed. Op semantics (does a conv's weight fit
// its attributes?) are the graph runtime's job, not this reader's.
//
// The file is held in one 64-byte aligned buffer owned by ModelFile; weight
// and test-vector views point into it, so loading copies the bytes once.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "salted/core/result.hpp"
#include "salted/core/shape.hpp"
#include "salted/core/tensor.hpp"
#include "salted/io/json.hpp"
#include "salted/io/sha256.hpp"

namespace salted {
namespace io {

// "\x89SALTED\n": the high byte catches 7-bit channels, the newline catches
// text-mode newline translation (the PNG trick).
constexpr unsigned char model_magic[8] = {0x89, 'S', 'A', 'L', 'T', 'E', 'D', '\n'};
constexpr uint32_t model_format_version = 1;
constexpr std::size_t model_preamble_bytes = 40;
constexpr std::size_t model_max_header_bytes = std::size_t(64) << 20;

enum class InputKind { data, salt_int, salt_vector };
enum class SaltKind { none, cnn, fc };

inline const char* input_kind_name(InputKind k) {
    switch (k) {
        case InputKind::data: return "data";
        case InputKind::salt_int: return "salt_int";
        case InputKind::salt_vector: return "salt_vector";
    }
    return "?";
}
inline const char* salt_kind_name(SaltKind k) {
    switch (k) {
        case SaltKind::none: return "none";
        case SaltKind::cnn: return "cnn";
        case SaltKind::fc: return "fc";
    }
    return "?";
}

// A graph input or output. dims[0] is the batch, symbolic ("N") in the file
// and stored here as -1; the other dimensions are fixed.
struct ValueSpec {
    std::string name;
    std::vector<int64_t> dims;
    InputKind kind = InputKind::data;  // outputs: always data

    // The concrete shape for a batch of `batch`.
    Result<Shape> shape(int64_t batch) const {
        std::vector<int64_t> d = dims;
        if (!d.empty()) d[0] = batch;
        return Shape::from(d.data(), static_cast<int>(d.size()));
    }
};

// A fused activation as stored in attributes: {"kind": "none"|"relu"|"leaky_relu", "slope": s}.
struct ActivationAttr {
    enum class Kind { none, relu, leaky_relu };
    Kind kind = Kind::none;
    double slope = 0.0;  // leaky_relu only
};

// One node: its attributes stay JSON, read through typed accessors whose
// errors name the node and the attribute.
struct Node {
    std::string op;
    std::string name;
    std::vector<std::string> inputs;
    std::vector<std::string> outputs;
    json::Value attrs;                                         // an object
    std::vector<std::pair<std::string, std::string>> weights;  // role -> tensor name

    bool has_attr(const std::string& key) const { return attrs.find(key) != nullptr; }

    Result<const json::Value*> attr(const std::string& key) const {
        const json::Value* v = attrs.find(key);
        if (!v)
            return make_error(Errc::invalid_argument, "model: node '%s' (%s): attribute '%s' is missing",
                              name.c_str(), op.c_str(), key.c_str());
        return v;
    }

    Result<int64_t> attr_int(const std::string& key) const {
        SALTED_ASSIGN(const json::Value* v, attr(key));
        if (!v->is_integer()) return wrong_type(key, "an integer", *v);
        return v->integer();
    }
    Result<int64_t> attr_int(const std::string& key, int64_t fallback) const {
        return has_attr(key) ? attr_int(key) : Result<int64_t>(fallback);
    }

    Result<double> attr_float(const std::string& key) const {
        SALTED_ASSIGN(const json::Value* v, attr(key));
        if (!v->is_number()) return wrong_type(key, "a number", *v);
        return v->number();
    }
    Result<double> attr_float(const std::string& key, double fallback) const {
        return has_attr(key) ? attr_float(key) : Result<double>(fallback);
    }

    // true/false, or the integers 0/1 (PyTorch-style flags such as ceil_mode).
    Result<bool> attr_bool(const std::string& key) const {
        SALTED_ASSIGN(const json::Value* v, attr(key));
        if (v->is_bool()) return v->boolean();
        if (v->is_integer() && (v->integer() == 0 || v->integer() == 1)) return v->integer() == 1;
        return wrong_type(key, "a boolean (or 0/1)", *v);
    }
    Result<bool> attr_bool(const std::string& key, bool fallback) const {
        return has_attr(key) ? attr_bool(key) : Result<bool>(fallback);
    }

    Result<std::string> attr_string(const std::string& key) const {
        SALTED_ASSIGN(const json::Value* v, attr(key));
        if (!v->is_string()) return wrong_type(key, "a string", *v);
        return v->string();
    }

    // An array of integers; `expected_len` 0 accepts any length.
    Result<std::vector<int64_t>> attr_ints(const std::string& key, std::size_t expected_len = 0) const {
        SALTED_ASSIGN(const json::Value* v, attr(key));
        if (!v->is_array()) return wrong_type(key, "an array of integers", *v);
        if (expected_len && v->size() != expected_len)
            return make_error(Errc::invalid_argument,
                              "model: node '%s' (%s): attribute '%s': expected %zu integers, found %zu",
                              name.c_str(), op.c_str(), key.c_str(), expected_len, v->size());
        std::vector<int64_t> out;
        for (std::size_t i = 0; i < v->size(); ++i) {
            const json::Value& e = v->array()[i];
            if (!e.is_integer())
                return make_error(Errc::invalid_argument,
                                  "model: node '%s' (%s): attribute '%s'[%zu]: expected an integer, found %s",
                                  name.c_str(), op.c_str(), key.c_str(), i, e.describe());
            out.push_back(e.integer());
        }
        return out;
    }

    // The fused activation (absent = none).
    Result<ActivationAttr> attr_activation(const std::string& key = "activation") const {
        ActivationAttr a;
        const json::Value* v = attrs.find(key);
        if (!v) return a;
        if (!v->is_object()) return wrong_type(key, "an object", *v);
        const json::Value* kind = v->find("kind");
        if (!kind || !kind->is_string())
            return make_error(Errc::invalid_argument, "model: node '%s' (%s): attribute '%s.kind': expected a string",
                              name.c_str(), op.c_str(), key.c_str());
        if (kind->string() == "none") return a;
        if (kind->string() == "relu") {
            a.kind = ActivationAttr::Kind::relu;
            return a;
        }
        if (kind->string() == "leaky_relu") {
            const json::Value* s = v->find("slope");
            if (!s || !s->is_number())
                return make_error(Errc::invalid_argument,
                                  "model: node '%s' (%s): attribute '%s.slope': expected a number for leaky_relu",
                                  name.c_str(), op.c_str(), key.c_str());
            a.kind = ActivationAttr::Kind::leaky_relu;
            a.slope = s->number();
            return a;
        }
        return make_error(Errc::invalid_argument,
                          "model: node '%s' (%s): attribute '%s.kind': expected none, relu or leaky_relu, found '%.64s'",
                          name.c_str(), op.c_str(), key.c_str(), kind->string().c_str());
    }

    bool has_weight(const std::string& role) const { return weight_name(role).ok(); }
    Result<std::string> weight_name(const std::string& role) const {
        for (const auto& w : weights)
            if (w.first == role) return w.second;
        return make_error(Errc::invalid_argument, "model: node '%s' (%s): weight '%s' is missing", name.c_str(),
                          op.c_str(), role.c_str());
    }

private:
    Error wrong_type(const std::string& key, const char* expected, const json::Value& v) const {
        return make_error(Errc::invalid_argument, "model: node '%s' (%s): attribute '%s': expected %s, found %s",
                          name.c_str(), op.c_str(), key.c_str(), expected, v.describe());
    }
};

// A float32 tensor stored in the data section.
struct TensorEntry {
    std::string name;
    Shape shape;
    uint64_t begin = 0;  // byte offsets in the data section
    uint64_t end = 0;
    const float* data = nullptr;  // 64-byte aligned, inside the ModelFile's buffer
    ConstTensorView view() const { return ConstTensorView(data, shape); }
};

struct SaltSpec {
    SaltKind kind = SaltKind::none;
    int64_t classes = 0;          // C: logits width, salt range [0, C)
    std::optional<int64_t> layer; // the architecture's salted layer index (-1: standard); absent if unknown
    std::string input;            // graph input carrying the salt (cnn: salt_int, fc: salt_vector)
    std::string node;             // node where the salt enters the activations
    int64_t maps = 0;             // cnn: salt maps concatenated
    std::array<int64_t, 2> size{{0, 0}};  // cnn: spatial size of the maps
};

// The PyTorch-computed test vector: a small batch of inputs and the outputs.
struct TestVector {
    std::string producer;
    int64_t batch = 0;
    std::vector<TensorEntry> inputs;   // in graph-input order
    std::vector<TensorEntry> outputs;  // in graph-output order
    Sha256::Digest sha256{};
};

struct LoadOptions {
    bool verify = false;  // recompute the weights and test-vector hashes
};

class ModelFile {
public:
    ModelFile() = default;
    ModelFile(ModelFile&&) noexcept = default;
    ModelFile& operator=(ModelFile&&) noexcept = default;
    ModelFile(const ModelFile&) = delete;
    ModelFile& operator=(const ModelFile&) = delete;

    // Parses a whole file held in memory (the bytes are copied once).
    static Result<ModelFile> parse(const void* data, std::size_t size, const LoadOptions& options = LoadOptions());
    // Reads and parses a file.
    static Result<ModelFile> read(const std::string& path, const LoadOptions& options = LoadOptions());

    uint32_t format_version() const { return version_; }
    const std::vector<ValueSpec>& inputs() const { return inputs_; }
    const std::vector<ValueSpec>& outputs() const { return outputs_; }
    const std::vector<Node>& nodes() const { return nodes_; }
    const SaltSpec& salt() const { return salt_; }
    const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }
    // A metadata value, or "" when absent.
    std::string metadata(const std::string& key) const {
        for (const auto& kv : metadata_)
            if (kv.first == key) return kv.second;
        return std::string();
    }
    bool has_test_vector() const { return has_test_vector_; }
    const TestVector& test_vector() const { return test_vector_; }
    // Weight tensors in header order.
    const std::vector<TensorEntry>& tensors() const { return tensors_; }
    Result<ConstTensorView> tensor(const std::string& name) const {
        auto it = tensor_index_.find(name);
        if (it == tensor_index_.end())
            return make_error(Errc::invalid_argument, "model: tensor '%s' does not exist", name.c_str());
        return tensors_[it->second].view();
    }
    // The tensor a node names for `role` ("weight", "bias", "scale", ...).
    Result<ConstTensorView> weight(const Node& node, const std::string& role) const {
        SALTED_ASSIGN(std::string name, node.weight_name(role));
        return tensor(name);
    }
    // Model id: SHA-256 of the weight bytes (docs/FORMAT.md).
    const Sha256::Digest& weights_sha256() const { return weights_sha256_; }
    std::string model_id() const { return Sha256::hex(weights_sha256_); }
    // The parsed JSON header, for fields this struct does not surface.
    const json::Value& header() const { return header_; }

    // Recomputes both hashes; verify_failed names the one that disagrees.
    Status verify() const;

private:
    struct Buffer {
        void operator()(unsigned char* p) const { std::free(p); }
    };
    Status load(const LoadOptions& options);
    Status parse_preamble();
    Status parse_tensor_entry(const std::string& what, const json::Value& v, TensorEntry& out) const;
    Status parse_value_specs(const json::Value& arr, const char* field, bool is_input, std::vector<ValueSpec>& out);
    Status parse_nodes(const json::Value& arr);
    Status parse_salt(const json::Value& v);
    Status parse_test_vector(const json::Value& v);
    Status check_overlaps() const;

    std::unique_ptr<unsigned char, Buffer> bytes_;
    std::size_t size_ = 0;
    uint32_t version_ = 0;
    uint64_t header_len_ = 0, data_offset_ = 0, data_len_ = 0;
    json::Value header_;
    std::vector<ValueSpec> inputs_, outputs_;
    std::vector<Node> nodes_;
    SaltSpec salt_;
    std::vector<std::pair<std::string, std::string>> metadata_;
    std::vector<TensorEntry> tensors_;
    std::map<std::string, std::size_t> tensor_index_;
    bool has_test_vector_ = false;
    TestVector test_vector_;
    Sha256::Digest weights_sha256_{};
};

namespace detail {

inline uint64_t read_le(const unsigned char* p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

inline bool model_host_is_little_endian() {
    const uint32_t one = 1;
    unsigned char b;
    std::memcpy(&b, &one, 1);
    return b == 1;
}

// Field-reading helpers: each error names the field path.
inline Status expect_type(const json::Value* v, const std::string& path, json::Value::Type t) {
    if (!v) return make_error(Errc::parse_error, "model: %s: missing", path.c_str());
    if (v->type() != t)
        return make_error(Errc::parse_error, "model: %s: expected %s, found %s", path.c_str(),
                          json::Value::type_name(t), v->describe());
    return Status();
}
inline Result<std::string> get_string(const json::Value& obj, const char* key, const std::string& path,
                                      bool non_empty = true) {
    const json::Value* v = obj.find(key);
    SALTED_TRY(expect_type(v, path + "." + key, json::Value::Type::string));
    if (non_empty && v->string().empty())
        return make_error(Errc::parse_error, "model: %s.%s: expected a non-empty string", path.c_str(), key);
    return v->string();
}
inline Result<int64_t> get_int(const json::Value& obj, const char* key, const std::string& path, int64_t lo,
                               int64_t hi) {
    const json::Value* v = obj.find(key);
    if (!v) return make_error(Errc::parse_error, "model: %s.%s: missing", path.c_str(), key);
    if (!v->is_integer())
        return make_error(Errc::parse_error, "model: %s.%s: expected an integer, found %s", path.c_str(), key,
                          v->describe());
    if (v->integer() < lo || v->integer() > hi)
        return make_error(Errc::parse_error, "model: %s.%s: expected %lld..%lld, found %lld", path.c_str(), key,
                          static_cast<long long>(lo), static_cast<long long>(hi),
                          static_cast<long long>(v->integer()));
    return v->integer();
}
inline Result<std::vector<std::string>> get_names(const json::Value& obj, const char* key, const std::string& path) {
    const json::Value* v = obj.find(key);
    SALTED_TRY(expect_type(v, path + "." + key, json::Value::Type::array));
    std::vector<std::string> out;
    for (std::size_t i = 0; i < v->size(); ++i) {
        const json::Value& e = v->array()[i];
        if (!e.is_string() || e.string().empty())
            return make_error(Errc::parse_error, "model: %s.%s[%zu]: expected a non-empty string, found %s",
                              path.c_str(), key, i, e.describe());
        out.push_back(e.string());
    }
    return out;
}
// Names in messages are cut, so a hostile 1 MB name cannot flood a log.
inline std::string quoted(const std::string& s) {
    return "'" + (s.size() > 80 ? s.substr(0, 80) + "..." : s) + "'";
}

}  // namespace detail

inline Result<ModelFile> ModelFile::parse(const void* data, std::size_t size, const LoadOptions& options) {
    ModelFile m;
    m.bytes_.reset(reinterpret_cast<unsigned char*>(aligned_alloc_floats((size + 3) / 4)));
    if (!m.bytes_) return make_error(Errc::out_of_memory, "model: could not allocate %zu bytes", size);
    if (size) std::memcpy(m.bytes_.get(), data, size);
    m.size_ = size;
    SALTED_TRY(m.load(options));
    return m;
}

inline Result<ModelFile> ModelFile::read(const std::string& path, const LoadOptions& options) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return make_error(Errc::io_error, "%s: cannot open for reading", path.c_str());
    long size = -1;
    if (std::fseek(f, 0, SEEK_END) == 0) size = std::ftell(f);
    if (size < 0 || std::fseek(f, 0, SEEK_SET) != 0) {
        std::fclose(f);
        return make_error(Errc::io_error, "%s: cannot determine the file size", path.c_str());
    }
    if (static_cast<unsigned long long>(size) > (1ull << 40)) {  // also what a directory reports
        std::fclose(f);
        return make_error(Errc::io_error, "%s: not a regular file of at most 1 TiB", path.c_str());
    }
    ModelFile m;
    m.bytes_.reset(reinterpret_cast<unsigned char*>(aligned_alloc_floats((static_cast<std::size_t>(size) + 3) / 4)));
    if (!m.bytes_) {
        std::fclose(f);
        return make_error(Errc::out_of_memory, "%s: could not allocate %ld bytes", path.c_str(), size);
    }
    const std::size_t got = size ? std::fread(m.bytes_.get(), 1, static_cast<std::size_t>(size), f) : 0;
    std::fclose(f);
    if (got != static_cast<std::size_t>(size)) return make_error(Errc::io_error, "%s: read error", path.c_str());
    m.size_ = got;
    Status st = m.load(options);
    if (!st.ok()) return make_error(st.code(), "%s: %s", path.c_str(), st.message().c_str());
    return m;
}

inline Status ModelFile::parse_preamble() {
    const unsigned char* b = bytes_.get();
    if (size_ < model_preamble_bytes)
        return make_error(Errc::parse_error, "model: file: expected at least %zu bytes, found %zu",
                          model_preamble_bytes, size_);
    if (std::memcmp(b, model_magic, 8) != 0)
        return make_error(Errc::parse_error,
                          "model: magic: expected 89 53 41 4c 54 45 44 0a (\"\\x89SALTED\\n\"), found "
                          "%02x %02x %02x %02x %02x %02x %02x %02x: not a salted model file",
                          b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
    version_ = static_cast<uint32_t>(detail::read_le(b + 8, 4));
    if (version_ != model_format_version)
        return make_error(Errc::unsupported, "model: format_version: expected %u, found %u", model_format_version,
                          version_);
    const uint32_t flags = static_cast<uint32_t>(detail::read_le(b + 12, 4));
    if (flags != 0) return make_error(Errc::unsupported, "model: flags: expected 0, found 0x%08x", flags);
    header_len_ = detail::read_le(b + 16, 8);
    data_offset_ = detail::read_le(b + 24, 8);
    data_len_ = detail::read_le(b + 32, 8);
    if (header_len_ == 0 || header_len_ > model_max_header_bytes)
        return make_error(Errc::parse_error, "model: header_len: expected 1..%zu, found %llu", model_max_header_bytes,
                          static_cast<unsigned long long>(header_len_));
    if (data_offset_ % tensor_alignment != 0 || data_offset_ < model_preamble_bytes + header_len_ ||
        data_offset_ > size_)
        return make_error(Errc::parse_error,
                          "model: data_offset: expected a multiple of 64 in %llu..%zu, found %llu",
                          static_cast<unsigned long long>(model_preamble_bytes + header_len_), size_,
                          static_cast<unsigned long long>(data_offset_));
    if (data_len_ != size_ - data_offset_)
        return make_error(Errc::parse_error,
                          "model: data_len: expected %llu (file size %zu - data_offset %llu), found %llu "
                          "(truncated or extended file)",
                          static_cast<unsigned long long>(size_ - data_offset_), size_,
                          static_cast<unsigned long long>(data_offset_), static_cast<unsigned long long>(data_len_));
    for (uint64_t i = model_preamble_bytes + header_len_; i < data_offset_; ++i)
        if (b[i] != ' ')
            return make_error(Errc::parse_error, "model: header padding: byte %llu: expected a space, found 0x%02x",
                              static_cast<unsigned long long>(i), b[i]);
    return Status();
}

inline Status ModelFile::parse_tensor_entry(const std::string& what, const json::Value& v, TensorEntry& out) const {
    SALTED_TRY(detail::expect_type(&v, what, json::Value::Type::object));
    SALTED_ASSIGN(std::string dtype, detail::get_string(v, "dtype", what));
    if (dtype != "F32")
        return make_error(Errc::unsupported, "model: %s.dtype: expected \"F32\", found \"%.16s\"", what.c_str(),
                          dtype.c_str());
    const json::Value* shape = v.find("shape");
    SALTED_TRY(detail::expect_type(shape, what + ".shape", json::Value::Type::array));
    if (shape->size() > static_cast<std::size_t>(Shape::max_rank))
        return make_error(Errc::unsupported, "model: %s.shape: expected rank 0..%d, found %zu", what.c_str(),
                          Shape::max_rank, shape->size());
    int64_t dims[Shape::max_rank];
    for (std::size_t i = 0; i < shape->size(); ++i) {
        const json::Value& d = shape->array()[i];
        if (!d.is_integer() || d.integer() < 1)
            return make_error(Errc::parse_error, "model: %s.shape[%zu]: expected a positive integer, found %s",
                              what.c_str(), i, d.is_integer() ? std::to_string(d.integer()).c_str() : d.describe());
        dims[i] = d.integer();
    }
    auto s = Shape::from(dims, static_cast<int>(shape->size()));
    if (!s.ok()) return make_error(Errc::parse_error, "model: %s.shape: %s", what.c_str(), s.message().c_str());
    const json::Value* offs = v.find("data_offsets");
    SALTED_TRY(detail::expect_type(offs, what + ".data_offsets", json::Value::Type::array));
    if (offs->size() != 2 || !offs->array()[0].is_integer() || !offs->array()[1].is_integer())
        return make_error(Errc::parse_error, "model: %s.data_offsets: expected [begin, end] integers", what.c_str());
    const int64_t begin = offs->array()[0].integer(), end = offs->array()[1].integer();
    if (begin < 0 || end < begin || static_cast<uint64_t>(end) > data_len_)
        return make_error(Errc::parse_error,
                          "model: %s.data_offsets: expected 0 <= begin <= end <= data_len %llu, found [%lld, %lld]",
                          what.c_str(), static_cast<unsigned long long>(data_len_), static_cast<long long>(begin),
                          static_cast<long long>(end));
    if (begin % static_cast<int64_t>(tensor_alignment) != 0)
        return make_error(Errc::parse_error, "model: %s.data_offsets: begin %lld: expected a multiple of 64",
                          what.c_str(), static_cast<long long>(begin));
    const uint64_t need = static_cast<uint64_t>(s->numel()) * sizeof(float);
    if (static_cast<uint64_t>(end - begin) != need)
        return make_error(Errc::parse_error, "model: %s: shape %s needs %llu bytes, data_offsets span %lld",
                          what.c_str(), s->str().c_str(), static_cast<unsigned long long>(need),
                          static_cast<long long>(end - begin));
    out.shape = s.value();
    out.begin = static_cast<uint64_t>(begin);
    out.end = static_cast<uint64_t>(end);
    out.data = reinterpret_cast<const float*>(bytes_.get() + data_offset_ + out.begin);
    return Status();
}

inline Status ModelFile::parse_value_specs(const json::Value& arr, const char* field, bool is_input,
                                           std::vector<ValueSpec>& out) {
    SALTED_TRY(detail::expect_type(&arr, field, json::Value::Type::array));
    if (arr.size() == 0) return make_error(Errc::parse_error, "model: %s: expected at least one entry", field);
    std::set<std::string> seen;
    for (std::size_t i = 0; i < arr.size(); ++i) {
        const std::string path = std::string(field) + "[" + std::to_string(i) + "]";
        const json::Value& e = arr.array()[i];
        SALTED_TRY(detail::expect_type(&e, path, json::Value::Type::object));
        ValueSpec spec;
        SALTED_ASSIGN(spec.name, detail::get_string(e, "name", path));
        if (!seen.insert(spec.name).second)
            return make_error(Errc::parse_error, "model: %s.name: %s appears twice", path.c_str(),
                              detail::quoted(spec.name).c_str());
        const json::Value* shape = e.find("shape");
        SALTED_TRY(detail::expect_type(shape, path + ".shape", json::Value::Type::array));
        if (shape->size() < 1 || shape->size() > static_cast<std::size_t>(Shape::max_rank))
            return make_error(Errc::parse_error, "model: %s.shape: expected rank 1..%d, found %zu", path.c_str(),
                              Shape::max_rank, shape->size());
        for (std::size_t d = 0; d < shape->size(); ++d) {
            const json::Value& dim = shape->array()[d];
            if (d == 0) {
                if (!dim.is_string() || dim.string() != "N")
                    return make_error(Errc::parse_error, "model: %s.shape[0]: expected \"N\" (the batch), found %s",
                                      path.c_str(), dim.describe());
                spec.dims.push_back(-1);
            } else {
                if (!dim.is_integer() || dim.integer() < 1 || dim.integer() > (int64_t(1) << 40))
                    return make_error(Errc::parse_error, "model: %s.shape[%zu]: expected a positive integer, found %s",
                                      path.c_str(), d, dim.describe());
                spec.dims.push_back(dim.integer());
            }
        }
        SALTED_TRY(spec.shape(1).status());  // element count in range
        if (is_input) {
            SALTED_ASSIGN(std::string kind, detail::get_string(e, "kind", path));
            if (kind == "data") spec.kind = InputKind::data;
            else if (kind == "salt_int") spec.kind = InputKind::salt_int;
            else if (kind == "salt_vector") spec.kind = InputKind::salt_vector;
            else
                return make_error(Errc::parse_error,
                                  "model: %s.kind: expected data, salt_int or salt_vector, found %s", path.c_str(),
                                  detail::quoted(kind).c_str());
        }
        out.push_back(std::move(spec));
    }
    return Status();
}

inline Status ModelFile::parse_nodes(const json::Value& arr) {
    SALTED_TRY(detail::expect_type(&arr, "nodes", json::Value::Type::array));
    if (arr.size() == 0) return make_error(Errc::parse_error, "model: nodes: expected at least one node");
    // Values defined so far: graph inputs, then each node's outputs in turn;
    // reading a value before it is defined breaks topological order.
    std::set<std::string> defined, node_names;
    for (const ValueSpec& in : inputs_) defined.insert(in.name);
    for (std::size_t i = 0; i < arr.size(); ++i) {
        std::string path = "nodes[" + std::to_string(i) + "]";
        const json::Value& e = arr.array()[i];
        SALTED_TRY(detail::expect_type(&e, path, json::Value::Type::object));
        Node n;
        SALTED_ASSIGN(n.name, detail::get_string(e, "name", path));
        path += " (" + detail::quoted(n.name) + ")";
        SALTED_ASSIGN(n.op, detail::get_string(e, "op", path));
        if (!node_names.insert(n.name).second)
            return make_error(Errc::parse_error, "model: %s.name: the name appears twice", path.c_str());
        SALTED_ASSIGN(n.inputs, detail::get_names(e, "inputs", path));
        SALTED_ASSIGN(n.outputs, detail::get_names(e, "outputs", path));
        if (n.inputs.empty()) return make_error(Errc::parse_error, "model: %s.inputs: expected at least one", path.c_str());
        if (n.outputs.empty())
            return make_error(Errc::parse_error, "model: %s.outputs: expected at least one", path.c_str());
        for (const std::string& in : n.inputs)
            if (!defined.count(in))
                return make_error(Errc::parse_error,
                                  "model: %s.inputs: %s is not a graph input or the output of an earlier node",
                                  path.c_str(), detail::quoted(in).c_str());
        for (const std::string& out : n.outputs)
            if (!defined.insert(out).second)
                return make_error(Errc::parse_error, "model: %s.outputs: %s is already defined", path.c_str(),
                                  detail::quoted(out).c_str());
        const json::Value* attrs = e.find("attrs");
        SALTED_TRY(detail::expect_type(attrs, path + ".attrs", json::Value::Type::object));
        n.attrs = *attrs;
        const json::Value* weights = e.find("weights");
        SALTED_TRY(detail::expect_type(weights, path + ".weights", json::Value::Type::object));
        for (const json::Member& w : weights->object()) {
            if (!w.value.is_string())
                return make_error(Errc::parse_error, "model: %s.weights.%s: expected a tensor name, found %s",
                                  path.c_str(), detail::quoted(w.key).c_str(), w.value.describe());
            if (!tensor_index_.count(w.value.string()))
                return make_error(Errc::parse_error, "model: %s.weights.%s: unknown tensor %s", path.c_str(),
                                  detail::quoted(w.key).c_str(), detail::quoted(w.value.string()).c_str());
            n.weights.emplace_back(w.key, w.value.string());
        }
        nodes_.push_back(std::move(n));
    }
    for (const ValueSpec& out : outputs_)
        if (!defined.count(out.name))
            return make_error(Errc::parse_error, "model: outputs: %s is not computed by any node",
                              detail::quoted(out.name).c_str());
    return Status();
}

inline Status ModelFile::parse_salt(const json::Value& v) {
    SALTED_TRY(detail::expect_type(&v, "salt", json::Value::Type::object));
    SALTED_ASSIGN(std::string kind, detail::get_string(v, "kind", "salt"));
    if (kind == "none") salt_.kind = SaltKind::none;
    else if (kind == "cnn") salt_.kind = SaltKind::cnn;
    else if (kind == "fc") salt_.kind = SaltKind::fc;
    else
        return make_error(Errc::parse_error, "model: salt.kind: expected none, cnn or fc, found %s",
                          detail::quoted(kind).c_str());
    SALTED_ASSIGN(salt_.classes, detail::get_int(v, "classes", "salt", 1, int64_t(1) << 31));
    const json::Value* layer = v.find("layer");
    if (!layer) return make_error(Errc::parse_error, "model: salt.layer: missing (an integer or null)");
    if (layer->is_integer()) salt_.layer = layer->integer();
    else if (!layer->is_null())
        return make_error(Errc::parse_error, "model: salt.layer: expected an integer or null, found %s",
                          layer->describe());

    const ValueSpec* salt_input = nullptr;
    for (const ValueSpec& in : inputs_) {
        if (in.kind == InputKind::data) continue;
        if (salt_input)
            return make_error(Errc::parse_error, "model: inputs: more than one salt input (%s and %s)",
                              detail::quoted(salt_input->name).c_str(), detail::quoted(in.name).c_str());
        salt_input = &in;
    }
    if (salt_.kind == SaltKind::none) {
        if (salt_input)
            return make_error(Errc::parse_error, "model: salt.kind: expected cnn or fc for salt input %s, found none",
                              detail::quoted(salt_input->name).c_str());
        return Status();
    }
    SALTED_ASSIGN(salt_.input, detail::get_string(v, "input", "salt"));
    SALTED_ASSIGN(salt_.node, detail::get_string(v, "node", "salt"));
    const InputKind want = salt_.kind == SaltKind::cnn ? InputKind::salt_int : InputKind::salt_vector;
    if (!salt_input || salt_input->name != salt_.input || salt_input->kind != want)
        return make_error(Errc::parse_error, "model: salt.input: expected a graph input %s of kind %s",
                          detail::quoted(salt_.input).c_str(), input_kind_name(want));
    const std::vector<int64_t> want_dims =
        salt_.kind == SaltKind::cnn ? std::vector<int64_t>{-1, 1, 1, 1} : std::vector<int64_t>{-1, salt_.classes};
    if (salt_input->dims != want_dims)
        return make_error(Errc::parse_error, "model: inputs: salt input %s: expected shape %s, found another shape",
                          detail::quoted(salt_.input).c_str(),
                          salt_.kind == SaltKind::cnn ? "[N, 1, 1, 1]" : "[N, classes]");
    const Node* at = nullptr;
    for (const Node& n : nodes_)
        if (n.name == salt_.node) at = &n;
    if (!at) return make_error(Errc::parse_error, "model: salt.node: no node named %s", detail::quoted(salt_.node).c_str());
    if (std::find(at->inputs.begin(), at->inputs.end(), salt_.input) == at->inputs.end())
        return make_error(Errc::parse_error, "model: salt.node: node %s does not read the salt input %s",
                          detail::quoted(salt_.node).c_str(), detail::quoted(salt_.input).c_str());
    if (salt_.kind == SaltKind::cnn) {
        SALTED_ASSIGN(salt_.maps, detail::get_int(v, "maps", "salt", 1, int64_t(1) << 20));
        const json::Value* size = v.find("size");
        SALTED_TRY(detail::expect_type(size, "salt.size", json::Value::Type::array));
        if (size->size() != 2)
            return make_error(Errc::parse_error, "model: salt.size: expected [height, width], found %zu entries",
                              size->size());
        for (std::size_t i = 0; i < 2; ++i) {
            const json::Value& d = size->array()[i];
            if (!d.is_integer() || d.integer() < 1 || d.integer() > (int64_t(1) << 20))
                return make_error(Errc::parse_error, "model: salt.size[%zu]: expected a positive integer, found %s", i,
                                  d.describe());
            salt_.size[i] = d.integer();
        }
    }
    return Status();
}

inline Status ModelFile::parse_test_vector(const json::Value& v) {
    if (v.is_null()) return Status();
    SALTED_TRY(detail::expect_type(&v, "test_vector", json::Value::Type::object));
    has_test_vector_ = true;
    SALTED_ASSIGN(test_vector_.producer, detail::get_string(v, "producer", "test_vector", false));
    SALTED_ASSIGN(std::string hex, detail::get_string(v, "sha256", "test_vector"));
    if (!Sha256::from_hex(hex, test_vector_.sha256))
        return make_error(Errc::parse_error, "model: test_vector.sha256: expected 64 lowercase hex digits");
    test_vector_.batch = -1;
    auto group = [&](const char* key, const std::vector<ValueSpec>& specs, std::vector<TensorEntry>& out) -> Status {
        const std::string path = std::string("test_vector.") + key;
        const json::Value* g = v.find(key);
        SALTED_TRY(detail::expect_type(g, path, json::Value::Type::object));
        if (g->size() != specs.size())
            return make_error(Errc::parse_error, "model: %s: expected %zu tensors (one per graph %s), found %zu",
                              path.c_str(), specs.size(), key, g->size());
        for (const ValueSpec& spec : specs) {
            const json::Value* e = g->find(spec.name);
            const std::string epath = path + "." + spec.name;
            if (!e) return make_error(Errc::parse_error, "model: %s: missing", epath.c_str());
            TensorEntry t;
            t.name = spec.name;
            SALTED_TRY(parse_tensor_entry(epath, *e, t));
            if (t.shape.rank() != static_cast<int>(spec.dims.size()))
                return make_error(Errc::parse_error, "model: %s.shape: expected rank %zu, found %d", epath.c_str(),
                                  spec.dims.size(), t.shape.rank());
            if (test_vector_.batch < 0) test_vector_.batch = t.shape[0];
            auto want = spec.shape(test_vector_.batch);
            if (!want.ok() || t.shape != want.value())
                return make_error(Errc::parse_error, "model: %s.shape: expected %s, found %s", epath.c_str(),
                                  want.ok() ? want->str().c_str() : "?", t.shape.str().c_str());
            out.push_back(t);
        }
        return Status();
    };
    SALTED_TRY(group("inputs", inputs_, test_vector_.inputs));
    SALTED_TRY(group("outputs", outputs_, test_vector_.outputs));
    return Status();
}

inline Status ModelFile::check_overlaps() const {
    std::vector<std::pair<uint64_t, const TensorEntry*>> ranges;
    for (const TensorEntry& t : tensors_) ranges.emplace_back(t.begin, &t);
    for (const TensorEntry& t : test_vector_.inputs) ranges.emplace_back(t.begin, &t);
    for (const TensorEntry& t : test_vector_.outputs) ranges.emplace_back(t.begin, &t);
    std::sort(ranges.begin(), ranges.end(),
              [](const std::pair<uint64_t, const TensorEntry*>& a, const std::pair<uint64_t, const TensorEntry*>& b) {
                  return a.first < b.first;
              });
    for (std::size_t i = 1; i < ranges.size(); ++i)
        if (ranges[i].first < ranges[i - 1].second->end)
            return make_error(Errc::parse_error, "model: tensors %s and %s overlap in the data section",
                              detail::quoted(ranges[i - 1].second->name).c_str(),
                              detail::quoted(ranges[i].second->name).c_str());
    return Status();
}

inline Status ModelFile::load(const LoadOptions& options) {
    if (!detail::model_host_is_little_endian())
        return make_error(Errc::unsupported, "model: big-endian hosts are not supported (the file is little-endian)");
    SALTED_TRY(parse_preamble());
    json::Limits limits;
    limits.max_bytes = model_max_header_bytes;
    auto parsed = json::parse(reinterpret_cast<const char*>(bytes_.get() + model_preamble_bytes),
                              static_cast<std::size_t>(header_len_), limits);
    if (!parsed.ok())
        return make_error(Errc::parse_error, "model: header (starts at file byte %zu): %s", model_preamble_bytes,
                          parsed.message().c_str());
    header_ = std::move(parsed).value();
    const json::Value& h = header_;
    SALTED_TRY(detail::expect_type(&h, "header", json::Value::Type::object));

    const json::Value* tensors = h.find("tensors");
    SALTED_TRY(detail::expect_type(tensors, "tensors", json::Value::Type::object));
    for (const json::Member& m : tensors->object()) {
        if (m.key.empty()) return make_error(Errc::parse_error, "model: tensors: empty tensor name");
        TensorEntry t;
        t.name = m.key;
        SALTED_TRY(parse_tensor_entry("tensors." + detail::quoted(m.key), m.value, t));
        tensor_index_[t.name] = tensors_.size();
        tensors_.push_back(std::move(t));
    }
    SALTED_ASSIGN(std::string sha, detail::get_string(h, "weights_sha256", "header"));
    if (!Sha256::from_hex(sha, weights_sha256_))
        return make_error(Errc::parse_error, "model: weights_sha256: expected 64 lowercase hex digits");

    const json::Value* meta = h.find("metadata");
    SALTED_TRY(detail::expect_type(meta, "metadata", json::Value::Type::object));
    for (const json::Member& m : meta->object()) {
        if (!m.value.is_string())
            return make_error(Errc::parse_error, "model: metadata.%s: expected a string, found %s",
                              detail::quoted(m.key).c_str(), m.value.describe());
        metadata_.emplace_back(m.key, m.value.string());
    }
    const json::Value* inputs = h.find("inputs");
    SALTED_TRY(detail::expect_type(inputs, "inputs", json::Value::Type::array));
    SALTED_TRY(parse_value_specs(*inputs, "inputs", true, inputs_));
    const json::Value* outputs = h.find("outputs");
    SALTED_TRY(detail::expect_type(outputs, "outputs", json::Value::Type::array));
    SALTED_TRY(parse_value_specs(*outputs, "outputs", false, outputs_));
    for (const ValueSpec& o : outputs_)
        for (const ValueSpec& i : inputs_)
            if (o.name == i.name)
                return make_error(Errc::parse_error, "model: outputs: %s is also a graph input",
                                  detail::quoted(o.name).c_str());
    const json::Value* nodes = h.find("nodes");
    SALTED_TRY(detail::expect_type(nodes, "nodes", json::Value::Type::array));
    SALTED_TRY(parse_nodes(*nodes));
    const json::Value* salt = h.find("salt");
    SALTED_TRY(detail::expect_type(salt, "salt", json::Value::Type::object));
    SALTED_TRY(parse_salt(*salt));
    const json::Value* tv = h.find("test_vector");
    if (!tv) return make_error(Errc::parse_error, "model: test_vector: missing (an object or null)");
    SALTED_TRY(parse_test_vector(*tv));
    SALTED_TRY(check_overlaps());
    if (options.verify) SALTED_TRY(verify());
    return Status();
}

inline Status ModelFile::verify() const {
    // Weights in ascending offset order (= file order), padding excluded.
    std::vector<const TensorEntry*> order;
    for (const TensorEntry& t : tensors_) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](const TensorEntry* a, const TensorEntry* b) { return a->begin < b->begin; });
    Sha256 sha;
    for (const TensorEntry* t : order) sha.update(t->data, static_cast<std::size_t>(t->end - t->begin));
    const Sha256::Digest got = sha.finish();
    if (got != weights_sha256_)
        return make_error(Errc::verify_failed,
                          "model: weights_sha256: expected %s, computed %s (the weights are corrupt or were modified)",
                          Sha256::hex(weights_sha256_).c_str(), Sha256::hex(got).c_str());
    if (has_test_vector_) {
        std::vector<const TensorEntry*> tv;
        for (const TensorEntry& t : test_vector_.inputs) tv.push_back(&t);
        for (const TensorEntry& t : test_vector_.outputs) tv.push_back(&t);
        std::sort(tv.begin(), tv.end(), [](const TensorEntry* a, const TensorEntry* b) { return a->begin < b->begin; });
        for (const TensorEntry* t : tv) sha.update(t->data, static_cast<std::size_t>(t->end - t->begin));
        const Sha256::Digest tgot = sha.finish();
        if (tgot != test_vector_.sha256)
            return make_error(Errc::verify_failed, "model: test_vector.sha256: expected %s, computed %s",
                              Sha256::hex(test_vector_.sha256).c_str(), Sha256::hex(tgot).c_str());
    }
    return Status();
}

}  // namespace io
}  // namespace salted
