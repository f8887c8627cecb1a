// Cut-tensor frames: how the activations at the cut travel from the head
// (device) to the tail (cloud). The bytes come from another process, often
// another machine, so decoding trusts nothing: every header field is checked
// and a bad frame is an error naming the field, the expected and the found
// value, never a crash or a silent misread. The wire format is documented in
// docs/FORMAT.md (Cut-tensor frames); this header is its only implementation.
//
// Layout, version 1, all integers little-endian, written byte by byte:
//   0    4  magic "SLTF"
//   4    2  version (1)
//   6    1  dtype: 1 = f32, 2 = f16, 3 = int8 (reserved, not implemented)
//   7    1  rank, 1..6 (batch first)
//   8    4  cut_id: index of the cut point in the model
//   12   1  name_len, 0..64
//   13   3  reserved, zero
//   16  32  model_id: digest of the model's weights
//   48 8*r  dims, u64 each, 1..2^40, product <= 2^40
//   ..  len cut name, printable ASCII
//   ..   8  payload_bytes = numel * itemsize, exactly
//   ..   P  payload, row-major little-endian elements
//   ..   4  CRC32C of every byte before it
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "salted/core/result.hpp"
#include "salted/core/shape.hpp"
#include "salted/core/tensor.hpp"
#include "salted/io/checksum.hpp"
#include "salted/io/f16.hpp"

namespace salted {
namespace io {

constexpr unsigned char frame_magic[4] = {'S', 'L', 'T', 'F'};
constexpr uint16_t frame_version = 1;
constexpr std::size_t frame_fixed_bytes = 48;  // magic .. model_id: enough to size the rest
constexpr std::size_t frame_max_name_bytes = 64;
constexpr std::size_t frame_checksum_bytes = 4;
constexpr uint64_t frame_max_dim = uint64_t(1) << 40;  // same limit as Shape::validate
constexpr uint64_t frame_max_elements = uint64_t(1) << 40;

enum class FrameDtype : uint8_t {
    f32 = 1,
    f16 = 2,  // half the bytes; error bound in f16.hpp
    i8 = 3,   // reserved: symmetric int8 with a scale; decoders reject it today
};

inline const char* frame_dtype_name(FrameDtype d) {
    switch (d) {
        case FrameDtype::f32: return "f32";
        case FrameDtype::f16: return "f16";
        case FrameDtype::i8: return "int8";
    }
    return "unknown";
}

inline std::size_t frame_item_bytes(FrameDtype d) { return d == FrameDtype::f32 ? 4 : d == FrameDtype::f16 ? 2 : 1; }

// Identifies the exact weights a frame was computed with, so a tail never
// runs on activations from a different model. 256 bits holds a SHA-256; a
// shorter digest fills the first bytes and leaves the rest zero.
using ModelId = std::array<uint8_t, 32>;

inline std::string model_id_hex(const ModelId& id) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    for (uint8_t b : id) {
        s += digits[b >> 4];
        s += digits[b & 15];
    }
    return s;
}

// Everything in a frame besides the tensor itself.
struct FrameInfo {
    ModelId model_id{};
    uint32_t cut_id = 0;
    std::string cut_name;               // optional, for people reading logs
    FrameDtype dtype = FrameDtype::f32;  // wire encoding of the payload
};

// A decoded frame: the tensor is always float32, whatever the wire dtype.
struct Frame {
    FrameInfo info;
    Tensor tensor;
};

// A validated header: what the rest of the bytes must look like.
struct FrameHeader {
    FrameInfo info;
    Shape shape;
    uint64_t payload_bytes = 0;
    std::size_t header_bytes = 0;  // from the magic up to the payload
    uint64_t total_bytes() const { return header_bytes + payload_bytes + frame_checksum_bytes; }
};

// What the receiver knows the frame must carry; unset fields are not checked.
struct FrameExpectation {
    std::optional<ModelId> model_id;
    std::optional<uint32_t> cut_id;
    std::optional<std::string> cut_name;
};

namespace detail {

inline void put_u16(uint8_t* p, uint16_t v) { p[0] = uint8_t(v); p[1] = uint8_t(v >> 8); }
inline void put_u32(uint8_t* p, uint32_t v) { for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i)); }
inline void put_u64(uint8_t* p, uint64_t v) { for (int i = 0; i < 8; ++i) p[i] = uint8_t(v >> (8 * i)); }
inline uint16_t get_u16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
inline uint32_t get_u32(const uint8_t* p) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}
inline uint64_t get_u64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

constexpr bool host_is_little_endian() {
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
    return __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
#else
    return false;  // unknown: take the byte-wise path, correct everywhere
#endif
}

inline bool printable_ascii(uint8_t c) { return c >= 0x20 && c <= 0x7E; }

// `code` is parse_error for received bytes, invalid_argument for a caller's name.
inline Status check_cut_name(const uint8_t* p, std::size_t n, Errc code) {
    if (n > frame_max_name_bytes)
        return make_error(code, "frame: name_len: expected 0..%zu, found %zu", frame_max_name_bytes, n);
    for (std::size_t i = 0; i < n; ++i)
        if (!printable_ascii(p[i]))
            return make_error(code, "frame: cut_name: expected printable ASCII, found byte 0x%02x at %zu",
                              p[i], i);
    return Status();
}

inline Error truncated(const char* field, std::size_t need, std::size_t found) {
    return make_error(Errc::parse_error, "frame: truncated in %s: expected at least %zu bytes, found %zu", field,
                      need, found);
}

// The first frame_fixed_bytes: checks magic, version, dtype, rank, name_len
// and reserved bytes, and returns the length of the whole header.
inline Result<std::size_t> parse_fixed_header(const uint8_t* p, std::size_t size, FrameHeader& h) {
    if (size < 4) return truncated("magic", 4, size);
    if (std::memcmp(p, frame_magic, 4) != 0)
        return make_error(Errc::parse_error,
                          "frame: magic: expected 53 4c 54 46 ('SLTF'), found %02x %02x %02x %02x", p[0], p[1],
                          p[2], p[3]);
    if (size < frame_fixed_bytes) return truncated("fixed header", frame_fixed_bytes, size);
    const uint16_t version = get_u16(p + 4);
    if (version != frame_version)
        return make_error(Errc::unsupported, "frame: version: expected %u, found %u", unsigned(frame_version),
                          unsigned(version));
    const uint8_t dtype = p[6];
    if (dtype == uint8_t(FrameDtype::i8))
        return make_error(Errc::unsupported, "frame: dtype: expected 1 (f32) or 2 (f16), found 3 (int8, reserved)");
    if (dtype != uint8_t(FrameDtype::f32) && dtype != uint8_t(FrameDtype::f16))
        return make_error(Errc::parse_error, "frame: dtype: expected 1 (f32) or 2 (f16), found %u", unsigned(dtype));
    h.info.dtype = FrameDtype(dtype);
    const unsigned rank = p[7];
    if (rank < 1 || rank > unsigned(Shape::max_rank))
        return make_error(Errc::parse_error, "frame: rank: expected 1..%d, found %u", Shape::max_rank, rank);
    h.info.cut_id = get_u32(p + 8);
    const std::size_t name_len = p[12];
    if (name_len > frame_max_name_bytes)
        return make_error(Errc::parse_error, "frame: name_len: expected 0..%zu, found %zu", frame_max_name_bytes,
                          name_len);
    if (p[13] || p[14] || p[15])
        return make_error(Errc::parse_error, "frame: reserved: expected 00 00 00, found %02x %02x %02x", p[13], p[14],
                          p[15]);
    std::memcpy(h.info.model_id.data(), p + 16, 32);
    return frame_fixed_bytes + 8 * rank + name_len + 8;
}

}  // namespace detail

// Bytes a frame of this shape, dtype and name takes on the wire.
inline Result<std::size_t> encoded_frame_bytes(const Shape& shape, FrameDtype dtype, std::size_t name_len) {
    if (shape.rank() < 1)
        return make_error(Errc::invalid_argument, "frame: rank: expected 1..%d, found %d", Shape::max_rank,
                          shape.rank());
    const Status valid = shape.validate();
    if (!valid.ok()) return make_error(Errc::invalid_argument, "frame: tensor: %s", valid.message().c_str());
    if (dtype != FrameDtype::f32 && dtype != FrameDtype::f16)
        return make_error(Errc::unsupported, "frame: dtype: expected f32 or f16, found %s", frame_dtype_name(dtype));
    if (name_len > frame_max_name_bytes)
        return make_error(Errc::invalid_argument, "frame: cut_name: expected at most %zu bytes, found %zu",
                          frame_max_name_bytes, name_len);
    return frame_fixed_bytes + 8 * std::size_t(shape.rank()) + name_len + 8 +
           std::size_t(shape.numel()) * frame_item_bytes(dtype) + frame_checksum_bytes;
}

// Parses and validates a header (all fields up to payload_bytes) from the
// start of `data`. Does not look at the payload or the checksum.
inline Result<FrameHeader> parse_frame_header(const uint8_t* data, std::size_t size) {
    if (!data && size != 0) return make_error(Errc::invalid_argument, "frame: data: expected bytes, found a null pointer");
    FrameHeader h;
    SALTED_ASSIGN(const std::size_t header_bytes, detail::parse_fixed_header(data, size, h));
    if (size < header_bytes) return detail::truncated("dims/cut_name/payload_bytes", header_bytes, size);
    const int rank = data[7];  // validated by parse_fixed_header
    const uint8_t* p = data + frame_fixed_bytes;
    int64_t dims[Shape::max_rank];
    uint64_t numel = 1;
    for (int i = 0; i < rank; ++i, p += 8) {
        const uint64_t d = detail::get_u64(p);
        if (d < 1 || d > frame_max_dim)
            return make_error(Errc::parse_error, "frame: dims[%d]: expected 1..2^40, found %llu", i,
                              static_cast<unsigned long long>(d));
        if (numel > frame_max_elements / d)
            return make_error(Errc::parse_error, "frame: dims: expected at most 2^40 elements, found more at dims[%d]",
                              i);
        numel *= d;
        dims[i] = static_cast<int64_t>(d);
    }
    SALTED_ASSIGN(h.shape, Shape::from(dims, rank));  // cannot fail after the checks above
    const std::size_t name_len = data[12];
    SALTED_TRY(detail::check_cut_name(p, name_len, Errc::parse_error));
    h.info.cut_name.assign(reinterpret_cast<const char*>(p), name_len);
    p += name_len;
    h.payload_bytes = detail::get_u64(p);
    const uint64_t item = frame_item_bytes(h.info.dtype);
    if (h.payload_bytes != numel * item)
        return make_error(Errc::parse_error,
                          "frame: payload_bytes: expected %llu (%llu elements x %llu bytes %s), found %llu",
                          static_cast<unsigned long long>(numel * item), static_cast<unsigned long long>(numel),
                          static_cast<unsigned long long>(item), frame_dtype_name(h.info.dtype),
                          static_cast<unsigned long long>(h.payload_bytes));
    h.header_bytes = header_bytes;
    return h;
}

// Checks a decoded header against what the receiver expects.
inline Status check_frame_expectation(const FrameInfo& info, const FrameExpectation& expect) {
    if (expect.model_id && *expect.model_id != info.model_id)
        return make_error(Errc::verify_failed, "frame: model_id: expected %s, found %s (frame from another model)",
                          model_id_hex(*expect.model_id).c_str(), model_id_hex(info.model_id).c_str());
    if (expect.cut_id && *expect.cut_id != info.cut_id)
        return make_error(Errc::verify_failed, "frame: cut_id: expected %u, found %u", unsigned(*expect.cut_id),
                          unsigned(info.cut_id));
    if (expect.cut_name && *expect.cut_name != info.cut_name)
        return make_error(Errc::verify_failed, "frame: cut_name: expected '%s', found '%s'",
                          expect.cut_name->c_str(), info.cut_name.c_str());
    return Status();
}

// Encodes a float32 tensor into `out` (resized; its capacity is reused, so
// a sender encoding frames of one shape allocates only once).
inline Status encode_frame(ConstTensorView t, const FrameInfo& info, std::vector<uint8_t>& out) {
    if (!t.data) return make_error(Errc::invalid_argument, "frame: tensor: expected data, found a null pointer");
    SALTED_ASSIGN(const std::size_t total, encoded_frame_bytes(t.shape, info.dtype, info.cut_name.size()));
    SALTED_TRY(detail::check_cut_name(reinterpret_cast<const uint8_t*>(info.cut_name.data()), info.cut_name.size(),
                                       Errc::invalid_argument));
    const std::size_t n = std::size_t(t.numel());
    if (info.dtype == FrameDtype::f16)
        for (std::size_t i = 0; i < n; ++i)
            if (f16_overflows(t.data[i]))
                return make_error(Errc::invalid_argument,
                                  "frame: f16: element %zu = %g is outside the f16 range (|x| < 65520); send f32", i,
                                  double(t.data[i]));
    out.resize(total);
    uint8_t* p = out.data();
    std::memcpy(p, frame_magic, 4);
    detail::put_u16(p + 4, frame_version);
    p[6] = uint8_t(info.dtype);
    p[7] = uint8_t(t.shape.rank());
    detail::put_u32(p + 8, info.cut_id);
    p[12] = uint8_t(info.cut_name.size());
    p[13] = p[14] = p[15] = 0;
    std::memcpy(p + 16, info.model_id.data(), 32);
    p += frame_fixed_bytes;
    for (int i = 0; i < t.shape.rank(); ++i, p += 8) detail::put_u64(p, uint64_t(t.shape[i]));
    if (!info.cut_name.empty()) std::memcpy(p, info.cut_name.data(), info.cut_name.size());
    p += info.cut_name.size();
    detail::put_u64(p, uint64_t(n) * frame_item_bytes(info.dtype));
    p += 8;
    if (info.dtype == FrameDtype::f32) {
        if (detail::host_is_little_endian()) {
            std::memcpy(p, t.data, n * 4);
        } else {
            for (std::size_t i = 0; i < n; ++i) {
                uint32_t b;
                std::memcpy(&b, &t.data[i], 4);
                detail::put_u32(p + 4 * i, b);
            }
        }
        p += n * 4;
    } else {
        uint16_t chunk[1024];  // converted in slices: no temporary the size of the tensor
        for (std::size_t i = 0; i < n; i += 1024) {
            const std::size_t m = n - i < 1024 ? n - i : 1024;
            f32_to_f16_n(t.data + i, chunk, m);
            for (std::size_t j = 0; j < m; ++j) detail::put_u16(p + 2 * j, chunk[j]);
            p += 2 * m;
        }
    }
    detail::put_u32(p, crc32c(out.data(), total - frame_checksum_bytes));
    return Status();
}

inline Result<std::vector<uint8_t>> encode_frame(ConstTensorView t, const FrameInfo& info) {
    std::vector<uint8_t> out;
    SALTED_TRY(encode_frame(t, info, out));
    return out;
}

// Decodes one frame occupying exactly `size` bytes, validating every field,
// the length, the checksum, then the expectation.
inline Result<Frame> decode_frame(const uint8_t* data, std::size_t size, const FrameExpectation& expect = {}) {
    if (!data) return size ? make_error(Errc::invalid_argument, "frame: data: expected bytes, found a null pointer")
                           : detail::truncated("magic", 4, 0);
    SALTED_ASSIGN(FrameHeader h, parse_frame_header(data, size));
    const uint64_t total = h.total_bytes();
    if (size < total)
        return make_error(Errc::parse_error,
                          "frame: truncated: expected %llu bytes (header %zu + payload %llu + checksum 4), found %zu",
                          static_cast<unsigned long long>(total), h.header_bytes,
                          static_cast<unsigned long long>(h.payload_bytes), size);
    if (size > total)
        return make_error(Errc::parse_error, "frame: length: expected %llu bytes, found %zu (%llu trailing bytes)",
                          static_cast<unsigned long long>(total), size,
                          static_cast<unsigned long long>(size - total));
    const std::size_t body = size - frame_checksum_bytes;
    const uint32_t stored = detail::get_u32(data + body);
    const uint32_t computed = crc32c(data, body);
    if (stored != computed)
        return make_error(Errc::verify_failed,
                          "frame: checksum: expected crc32c 0x%08x, found 0x%08x (frame corrupted in transit)",
                          computed, stored);
    SALTED_TRY(check_frame_expectation(h.info, expect));

    SALTED_ASSIGN(Tensor t, Tensor::empty(h.shape));
    const std::size_t n = std::size_t(h.shape.numel());
    const uint8_t* p = data + h.header_bytes;
    if (h.info.dtype == FrameDtype::f32) {
        if (detail::host_is_little_endian()) {
            std::memcpy(t.data(), p, n * 4);
        } else {
            for (std::size_t i = 0; i < n; ++i) {
                const uint32_t b = detail::get_u32(p + 4 * i);
                std::memcpy(&t.data()[i], &b, 4);
            }
        }
    } else {
        uint16_t chunk[1024];
        for (std::size_t i = 0; i < n; i += 1024) {
            const std::size_t m = n - i < 1024 ? n - i : 1024;
            for (std::size_t j = 0; j < m; ++j) chunk[j] = detail::get_u16(p + 2 * (i + j));
            f16_to_f32_n(chunk, t.data() + i, m);
        }
    }
    Frame f;
    f.info = std::move(h.info);
    f.tensor = std::move(t);
    return f;
}

inline Result<Frame> decode_frame(const std::vector<uint8_t>& bytes, const FrameExpectation& expect = {}) {
    return decode_frame(bytes.data(), bytes.size(), expect);
}

}  // namespace io
}  // namespace salted
