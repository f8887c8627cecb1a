// The model-file reader against the shipped fixtures in tests/data/ (written
// by tools/weights_import/make_test_models.py from PyTorch): fields, hashes,
// and every kind of corruption (truncation at every byte, byte flips across
// the header, sampled flips in the payload, hand-made invalid headers).
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "salted/io/model_file.hpp"
#include "salted/io/npy.hpp"
#include "salted/io/sha256.hpp"

using namespace salted;
using io::ModelFile;

namespace {

std::string data_dir() {
    std::string here = __FILE__;
    return here.substr(0, here.find_last_of('/')) + "/data";
}

std::vector<unsigned char> fixture(const char* name) {
    auto bytes = io::read_file_bytes(data_dir() + "/" + name);
    REQUIRE_MESSAGE(bytes.ok(), bytes.message() << " (regenerate with tools/weights_import/make_test_models.py)");
    return std::move(bytes).value();
}

uint64_t le64(const std::vector<unsigned char>& b, std::size_t at) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | b[at + i];
    return v;
}
void put_le64(std::vector<unsigned char>& b, std::size_t at, uint64_t v) {
    for (int i = 0; i < 8; ++i) b[at + i] = static_cast<unsigned char>(v >> (8 * i));
}

struct Parts {
    std::string header;
    std::vector<unsigned char> data;
};

Parts split(const std::vector<unsigned char>& file) {
    Parts p;
    const uint64_t hlen = le64(file, 16), doff = le64(file, 24);
    p.header.assign(reinterpret_cast<const char*>(file.data()) + 40, hlen);
    p.data.assign(file.begin() + static_cast<long>(doff), file.end());
    return p;
}

// Rebuilds a well-framed file around a (possibly edited) JSON header.
std::vector<unsigned char> assemble(const std::string& header, const std::vector<unsigned char>& data) {
    const uint64_t doff = (40 + header.size() + 63) / 64 * 64;
    std::vector<unsigned char> out(doff + data.size(), ' ');
    for (std::size_t i = 0; i < 40; ++i) out[i] = i < 8 ? io::model_magic[i] : 0;
    out[8] = 1;
    put_le64(out, 16, header.size());
    put_le64(out, 24, doff);
    put_le64(out, 32, data.size());
    std::memcpy(out.data() + 40, header.data(), header.size());
    if (!data.empty()) std::memcpy(out.data() + doff, data.data(), data.size());
    return out;
}

// Replaces the first occurrence of `from` (which must exist) in the header.
std::vector<unsigned char> edited(const std::vector<unsigned char>& file, const std::string& from,
                                  const std::string& to) {
    Parts p = split(file);
    const auto at = p.header.find(from);
    REQUIRE_MESSAGE(at != std::string::npos, "fixture header lacks: " << from);
    p.header.replace(at, from.size(), to);
    return assemble(p.header, p.data);
}

std::string load_error(const std::vector<unsigned char>& file, bool verify = false) {
    io::LoadOptions opt;
    opt.verify = verify;
    auto m = ModelFile::parse(file.data(), file.size(), opt);
    CHECK_MESSAGE(!m.ok(), "corrupt file accepted");
    return m.ok() ? std::string() : m.message();
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("sha256: FIPS 180-4 test vectors") {
    using io::Sha256;
    CHECK(Sha256::hex(Sha256::of("", 0)) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(Sha256::hex(Sha256::of("abc", 3)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK(Sha256::hex(Sha256::of(two_blocks.data(), two_blocks.size())) ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    // A million 'a', fed in uneven chunks to exercise buffering.
    const std::string a(1000000, 'a');
    Sha256 s;
    std::size_t at = 0, step = 1;
    while (at < a.size()) {
        const std::size_t n = std::min(step, a.size() - at);
        s.update(a.data() + at, n);
        at += n;
        step = step * 3 % 131 + 1;
    }
    CHECK(Sha256::hex(s.finish()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    Sha256::Digest d;
    CHECK(Sha256::from_hex("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", d));
    CHECK(Sha256::hex(d) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    CHECK(!Sha256::from_hex("CDC76E5C9914FB9281A1C7E284D73E67F1809A48A497200E046D39CCC7112CD0", d));
    CHECK(!Sha256::from_hex("abc", d));
}

TEST_CASE("model file: the CNN-salt fixture parses with every field") {
    io::LoadOptions verify;
    verify.verify = true;
    auto r = ModelFile::read(data_dir() + "/tiny_lenet_cnn_salt.salted", verify);
    REQUIRE_MESSAGE(r.ok(), r.message());
    const ModelFile& m = r.value();
    CHECK(m.format_version() == 1);

    REQUIRE(m.inputs().size() == 2);
    CHECK(m.inputs()[0].name == "x");
    CHECK(m.inputs()[0].dims == std::vector<int64_t>{-1, 1, 28, 28});
    CHECK(m.inputs()[0].kind == io::InputKind::data);
    CHECK(m.inputs()[1].name == "salt");
    CHECK(m.inputs()[1].dims == std::vector<int64_t>{-1, 1, 1, 1});
    CHECK(m.inputs()[1].kind == io::InputKind::salt_int);
    auto shape = m.inputs()[0].shape(3);
    REQUIRE(shape.ok());
    CHECK(shape.value() == Shape({3, 1, 28, 28}));
    REQUIRE(m.outputs().size() == 1);
    CHECK(m.outputs()[0].name == "logits");
    CHECK(m.outputs()[0].dims == std::vector<int64_t>{-1, 10});

    std::vector<std::string> ops;
    for (const auto& n : m.nodes()) ops.push_back(n.op);
    CHECK(ops == std::vector<std::string>{"batch_norm", "conv2d", "cnn_salt_concat", "conv2d", "max_pool2d", "conv2d",
                                          "max_pool2d", "flatten", "dense", "dense", "dense"});
    const io::Node& conv1 = m.nodes()[1];
    CHECK(conv1.name == "conv1.Conv");
    CHECK(conv1.inputs == std::vector<std::string>{"normalize.Sub"});
    CHECK(conv1.attr_ints("kernel", 2).value() == std::vector<int64_t>{5, 5});
    CHECK(conv1.attr_ints("pad", 4).value() == std::vector<int64_t>{0, 0, 0, 0});
    CHECK(conv1.attr_int("groups").value() == 1);
    CHECK(conv1.attr_int("missing", 7).value() == 7);
    auto act = conv1.attr_activation();
    REQUIRE(act.ok());
    CHECK(act->kind == io::ActivationAttr::Kind::relu);
    auto w = m.weight(conv1, "weight");
    REQUIRE(w.ok());
    CHECK(w->shape == Shape({4, 1, 5, 5}));
    CHECK(reinterpret_cast<uintptr_t>(w->data) % 64 == 0);
    CHECK(m.weight(conv1, "bias")->shape == Shape({4}));
    const io::Node& pool = m.nodes()[4];
    CHECK(pool.attr_bool("ceil_mode").value() == false);

    // Accessor errors name the node, the attribute and what was found.
    auto missing = conv1.attr_int("stride_h");
    CHECK(missing.message() == "model: node 'conv1.Conv' (conv2d): attribute 'stride_h' is missing");
    auto wrong = conv1.attr_int("kernel");
    CHECK(wrong.message() == "model: node 'conv1.Conv' (conv2d): attribute 'kernel': expected an integer, found an array");
    CHECK(conv1.attr_ints("pad", 2).message() ==
          "model: node 'conv1.Conv' (conv2d): attribute 'pad': expected 2 integers, found 4");
    CHECK(conv1.attr_string("groups").message() ==
          "model: node 'conv1.Conv' (conv2d): attribute 'groups': expected a string, found an integer");
    CHECK(m.weight(conv1, "scale").message() == "model: node 'conv1.Conv' (conv2d): weight 'scale' is missing");
    CHECK(!m.tensor("nope").ok());

    const io::Node& salt = m.nodes()[2];
    CHECK(salt.inputs == std::vector<std::string>{"conv1.Conv", "salt"});
    CHECK(salt.attr_int("maps").value() == 5);
    CHECK(salt.attr_bool("salt_first").value() == false);
    CHECK(m.weight(salt, "weight")->shape == Shape({1, 5, 24, 24}));

    CHECK(m.salt().kind == io::SaltKind::cnn);
    CHECK(m.salt().classes == 10);
    REQUIRE(m.salt().layer.has_value());
    CHECK(*m.salt().layer == 1);
    CHECK(m.salt().input == "salt");
    CHECK(m.salt().node == "salt.Concat");
    CHECK(m.salt().maps == 5);
    CHECK(m.salt().size == std::array<int64_t, 2>{{24, 24}});

    REQUIRE(m.has_test_vector());
    const io::TestVector& tv = m.test_vector();
    CHECK(tv.batch == 2);
    CHECK(tv.producer.find("pytorch") == 0);
    REQUIRE(tv.inputs.size() == 2);
    CHECK(tv.inputs[0].name == "x");
    CHECK(tv.inputs[0].shape == Shape({2, 1, 28, 28}));
    CHECK(tv.inputs[1].shape == Shape({2, 1, 1, 1}));
    CHECK(tv.inputs[1].data[0] == 3.0f);  // make_test_models.py uses salts 3 and 8
    CHECK(tv.inputs[1].data[1] == 8.0f);
    REQUIRE(tv.outputs.size() == 1);
    CHECK(tv.outputs[0].shape == Shape({2, 10}));

    CHECK(m.metadata("architecture") == "lenet");
    CHECK(m.metadata("config") == "tiny_lenet_1x28x28_w4_salt1");
    CHECK(m.metadata("absent").empty());
    CHECK(m.model_id().size() == 64);
    CHECK(m.model_id() == m.header().find("weights_sha256")->string());
    CHECK(m.tensors().size() == 16);  // 8 nodes with weight and bias/shift
    CHECK(m.verify().ok());
}

TEST_CASE("model file: the FC-salt fixture") {
    auto bytes = fixture("tiny_lenet_fc_salt.salted");
    io::LoadOptions verify;
    verify.verify = true;
    auto r = ModelFile::parse(bytes.data(), bytes.size(), verify);
    REQUIRE_MESSAGE(r.ok(), r.message());
    const ModelFile& m = r.value();
    CHECK(m.salt().kind == io::SaltKind::fc);
    CHECK(*m.salt().layer == 7);
    CHECK(m.inputs()[1].kind == io::InputKind::salt_vector);
    CHECK(m.inputs()[1].dims == std::vector<int64_t>{-1, 10});
    const io::Node* fc = nullptr;
    for (const auto& n : m.nodes())
        if (n.name == m.salt().node) fc = &n;
    REQUIRE(fc);
    CHECK(fc->op == "fc_salt_concat");
    CHECK(fc->attr_int("classes").value() == 10);
    CHECK(m.test_vector().inputs[1].shape == Shape({2, 10}));
    // The two fixtures have different weights, so different model ids.
    auto cnn = ModelFile::read(data_dir() + "/tiny_lenet_cnn_salt.salted");
    REQUIRE(cnn.ok());
    CHECK(cnn->model_id() != m.model_id());
}

TEST_CASE("model file: every truncation is an error") {
    auto bytes = fixture("tiny_lenet_cnn_salt.salted");
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        auto r = ModelFile::parse(bytes.data(), n);
        if (r.ok()) FAIL("truncated file of " << n << " bytes accepted");
    }
    auto extended = bytes;
    extended.push_back(0);
    CHECK(contains(load_error(extended), "data_len"));
}

TEST_CASE("model file: byte flips in the header never crash; preamble flips are always errors") {
    auto bytes = fixture("tiny_lenet_cnn_salt.salted");
    const std::size_t data_offset = le64(bytes, 24);
    int errors = 0, accepted = 0;
    for (std::size_t i = 0; i < data_offset; ++i) {
        for (unsigned mask : {0x01u, 0x80u, 0xffu}) {
            auto m = bytes;
            m[i] = static_cast<unsigned char>(m[i] ^ mask);
            auto r = ModelFile::parse(m.data(), m.size());
            if (r.ok()) {
                ++accepted;
                if (i < io::model_preamble_bytes) FAIL("flip of preamble byte " << i << " accepted");
            } else {
                ++errors;
            }
        }
    }
    MESSAGE("header flips: " << errors << " rejected, " << accepted << " accepted (e.g. inside metadata text)");
    CHECK(errors > accepted);
}

TEST_CASE("model file: payload flips pass without verify and fail with it") {
    auto bytes = fixture("tiny_lenet_cnn_salt.salted");
    auto base = ModelFile::parse(bytes.data(), bytes.size());
    REQUIRE(base.ok());
    const std::size_t data_offset = le64(bytes, 24);
    io::LoadOptions verify;
    verify.verify = true;
    auto check_range = [&](const io::TensorEntry& t, const char* expect) {
        for (uint64_t off = t.begin; off < t.end; off += 97) {
            auto m = bytes;
            m[data_offset + off] ^= 0x10;
            CHECK(ModelFile::parse(m.data(), m.size()).ok());
            auto r = ModelFile::parse(m.data(), m.size(), verify);
            REQUIRE(!r.ok());
            CHECK(r.code() == Errc::verify_failed);
            CHECK(contains(r.message(), expect));
        }
    };
    for (const auto& t : base->tensors()) check_range(t, "weights_sha256");
    for (const auto& t : base->test_vector().inputs) check_range(t, "test_vector.sha256");
    for (const auto& t : base->test_vector().outputs) check_range(t, "test_vector.sha256");
}

TEST_CASE("model file: malformed headers give errors naming the field") {
    auto bytes = fixture("tiny_lenet_cnn_salt.salted");
    REQUIRE(ModelFile::parse(bytes.data(), bytes.size()).ok());
    // The framing helper itself round-trips.
    Parts p = split(bytes);
    REQUIRE(ModelFile::parse(assemble(p.header, p.data).data(), assemble(p.header, p.data).size()).ok());

    auto bad_magic = bytes;
    bad_magic[1] = 'X';
    CHECK(contains(load_error(bad_magic), "magic"));
    auto bad_version = bytes;
    bad_version[8] = 2;
    CHECK(contains(load_error(bad_version), "format_version: expected 1, found 2"));
    auto bad_flags = bytes;
    bad_flags[12] = 1;
    CHECK(contains(load_error(bad_flags), "flags"));
    auto bad_hlen = bytes;
    put_le64(bad_hlen, 16, uint64_t(1) << 62);
    CHECK(contains(load_error(bad_hlen), "header_len"));
    auto bad_doff = bytes;
    put_le64(bad_doff, 24, le64(bytes, 24) + 1);
    CHECK(contains(load_error(bad_doff), "data_offset"));
    CHECK(contains(load_error(std::vector<unsigned char>(bytes.begin(), bytes.begin() + 20)), "at least 40 bytes"));
    CHECK(contains(load_error(assemble("{\"tensors\":", p.data)), "json: byte"));
    CHECK(contains(load_error(assemble("[]", p.data)), "header: expected an object"));

    struct Case {
        const char* from;
        const char* to;
        const char* expect;
    };
    const Case cases[] = {
        {"\"dtype\":\"F32\"", "\"dtype\":\"F16\"", "dtype: expected \"F32\", found \"F16\""},
        {"\"dtype\":\"F32\"", "\"dtype\":32", "dtype: expected a string, found an integer"},
        {"\"shape\":[4,1,5,5]", "\"shape\":[4,1,5,6]", "needs 480 bytes, data_offsets span 400"},
        {"\"shape\":[4,1,5,5]", "\"shape\":[4,1,0,5]", "shape[2]: expected a positive integer, found 0"},
        {"\"shape\":[4,1,5,5]", "\"shape\":[4,1,5,5,1,1,1]", "expected rank 0..6, found 7"},
        {"\"data_offsets\":[0,", "\"data_offsets\":[64,", "data_offsets"},
        {"\"data_offsets\":[0,", "\"data_offsets\":[-64,", "0 <= begin <= end"},
        {"\"data_offsets\":[0,", "\"data_offsets\":[4,", "expected a multiple of 64"},
        {"\"data_offsets\":[64,68]", "\"data_offsets\":[0,4]", "overlap"},
        {"\"data_offsets\":[0,4]", "\"data_offsets\":[0,4.0]", "data_offsets"},
        {"\"weight\":\"conv1.Conv.weight\"", "\"weight\":\"conv9.weight\"", "unknown tensor 'conv9.weight'"},
        {"\"inputs\":[\"normalize.Sub\"]", "\"inputs\":[\"later\"]", "'later' is not a graph input or the output of an earlier node"},
        {"\"inputs\":[\"normalize.Sub\"]", "\"inputs\":[\"conv1.Conv\"]", "not a graph input or the output of an earlier node"},
        {"\"outputs\":[\"conv1.Conv\"]", "\"outputs\":[\"x\"]", "'x' is already defined"},
        {"\"name\":\"conv2.Conv\"", "\"name\":\"conv1.Conv\"", "the name appears twice"},
        {"\"op\":\"conv2d\"", "\"op\":\"\"", "op: expected a non-empty string"},
        {"\"kind\":\"salt_int\"", "\"kind\":\"salty\"", "kind: expected data, salt_int or salt_vector, found 'salty'"},
        {"\"kind\":\"salt_int\"", "\"kind\":\"data\"", "salt.input"},
        {"\"shape\":[\"N\",1,28,28]", "\"shape\":[1,1,28,28]", "shape[0]: expected \"N\" (the batch)"},
        {"\"kind\":\"cnn\"", "\"kind\":\"fc\"", "salt.input: expected a graph input 'salt' of kind salt_vector"},
        {"\"kind\":\"cnn\"", "\"kind\":\"none\"", "expected cnn or fc for salt input 'salt'"},
        {"\"node\":\"salt.Concat\"", "\"node\":\"conv1.Conv\"", "does not read the salt input"},
        {"\"classes\":10", "\"classes\":0", "salt.classes: expected 1..2147483648, found 0"},
        {"\"layer\":1", "\"layer\":\"one\"", "salt.layer: expected an integer or null, found a string"},
        {"\"maps\":5", "\"maps\":-5", "salt.maps"},
        {"\"name\":\"logits\"", "\"name\":\"nowhere\"", "outputs: 'nowhere' is not computed by any node"},
        {"\"architecture\":\"lenet\"", "\"architecture\":7", "metadata.'architecture': expected a string"},
        {"\"weights_sha256\":\"", "\"weights_sha256\":\"X", "weights_sha256: expected 64 lowercase hex digits"},
        {"\"test_vector\":{", "\"test_vector\":7,\"x\":{", "test_vector: expected an object, found an integer"},
        {"\"shape\":[2,1,28,28]", "\"shape\":[2,1,28,27]", "test_vector.inputs.x"},
        {"\"shape\":[2,10]", "\"shape\":[3,10]", "test_vector.outputs.logits"},
        {"\"attrs\":{", "\"attrs\":[],\"z\":{", "attrs: expected an object, found an array"},
        {"\"nodes\":[", "\"nodes\":[],\"n\":[", "nodes: expected at least one node"},
        {"\"inputs\":[{", "\"inputs\":[],\"i\":[{", "inputs: expected at least one entry"},
    };
    for (const Case& c : cases) {
        INFO("edit: " << c.from << " -> " << c.to);
        const std::string err = load_error(edited(bytes, c.from, c.to));
        CHECK_MESSAGE(contains(err, c.expect), "error was: " << err);
        CHECK(contains(err, "model: "));
    }
    // A header that drops the test vector entirely is valid (test_vector: null).
    Parts q = split(bytes);
    const auto at = q.header.find("\"test_vector\":{");
    REQUIRE(at != std::string::npos);
    std::string no_tv = q.header.substr(0, at) + "\"test_vector\":null}";
    auto m = ModelFile::parse(assemble(no_tv, q.data).data(), assemble(no_tv, q.data).size());
    REQUIRE_MESSAGE(m.ok(), m.message());
    CHECK(!m->has_test_vector());
}

TEST_CASE("model file: hash mismatch is detected with verify") {
    auto bytes = fixture("tiny_lenet_cnn_salt.salted");
    auto parsed = ModelFile::parse(bytes.data(), bytes.size());
    REQUIRE(parsed.ok());
    std::string id = parsed->model_id();
    std::string other = id;
    other[0] = other[0] == '0' ? '1' : '0';
    auto file = edited(bytes, id, other);
    CHECK(ModelFile::parse(file.data(), file.size()).ok());  // without verify: not checked
    const std::string err = load_error(file, true);
    CHECK(contains(err, "weights_sha256: expected " + other + ", computed " + id));
    auto r = ModelFile::read(data_dir() + "/no_such_file.salted");
    CHECK(r.code() == Errc::io_error);
    CHECK(!ModelFile::read(data_dir()).ok());  // a directory
}
