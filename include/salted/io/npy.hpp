// NumPy .npy files (format versions 1.0-3.0): the exchange format of the
// `salted` program and of the PyTorch parity tests. Reads little-endian
// float32 ('<f4'), and int32/int64 for integer salts; writes float32 (v1.0).
// C order only. Every header field is validated; errors name the file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "salted/core/result.hpp"
#include "salted/core/shape.hpp"
#include "salted/core/tensor.hpp"

namespace salted {
namespace io {

enum class NpyDtype { f32, f64, i32, i64 };

struct NpyArray {
    NpyDtype dtype = NpyDtype::f32;
    Shape shape;
    std::vector<unsigned char> bytes;  // raw little-endian payload

    int64_t numel() const { return shape.numel(); }
    // Converts to float32 (from any supported dtype).
    Result<Tensor> to_tensor() const;
    // Converts to int64 (integer dtypes only).
    Result<std::vector<int64_t>> to_ints() const;
};

namespace detail {

inline bool parse_npy_header(const std::string& h, NpyDtype& dtype, Shape& shape, std::string& why) {
    auto find_value = [&](const char* key) -> std::string::size_type {
        auto k = h.find(key);
        if (k == std::string::npos) return k;
        auto colon = h.find(':', k);
        if (colon == std::string::npos) return colon;
        auto v = colon + 1;
        while (v < h.size() && h[v] == ' ') ++v;
        return v;
    };
    auto d = find_value("'descr'");
    if (d == std::string::npos || d >= h.size() || h[d] != '\'') { why = "missing 'descr'"; return false; }
    auto dend = h.find('\'', d + 1);
    if (dend == std::string::npos) { why = "unterminated 'descr'"; return false; }
    std::string descr = h.substr(d + 1, dend - d - 1);
    if (descr == "<f4") dtype = NpyDtype::f32;
    else if (descr == "<f8") dtype = NpyDtype::f64;
    else if (descr == "<i4") dtype = NpyDtype::i32;
    else if (descr == "<i8") dtype = NpyDtype::i64;
    else { why = "dtype: expected '<f4', '<f8', '<i4' or '<i8', found '" + descr + "'"; return false; }

    auto f = find_value("'fortran_order'");
    if (f == std::string::npos) { why = "missing 'fortran_order'"; return false; }
    if (h.compare(f, 5, "False") != 0) { why = "fortran_order: expected False (C order), found True"; return false; }

    auto s = find_value("'shape'");
    if (s == std::string::npos || s >= h.size() || h[s] != '(') { why = "missing 'shape'"; return false; }
    auto send = h.find(')', s);
    if (send == std::string::npos) { why = "unterminated 'shape'"; return false; }
    int64_t dims[Shape::max_rank];
    int rank = 0;
    std::string::size_type i = s + 1;
    while (i < send) {
        while (i < send && (h[i] == ' ' || h[i] == ',')) ++i;
        if (i >= send) break;
        if (h[i] < '0' || h[i] > '9') { why = "shape: expected digits, found '" + h.substr(i, 1) + "'"; return false; }
        int64_t v = 0;
        while (i < send && h[i] >= '0' && h[i] <= '9') {
            if (v > (int64_t(1) << 40)) { why = "shape: dimension too large"; return false; }
            v = v * 10 + (h[i] - '0');
            ++i;
        }
        if (rank >= Shape::max_rank) { why = "shape: rank above " + std::to_string(Shape::max_rank); return false; }
        dims[rank++] = v;
    }
    auto r = Shape::from(dims, rank);
    if (!r.ok()) { why = r.message(); return false; }
    shape = r.value();
    return true;
}

inline std::size_t npy_item_size(NpyDtype d) {
    return (d == NpyDtype::f32 || d == NpyDtype::i32) ? 4 : 8;
}

}  // namespace detail

// Parses a whole .npy file held in memory.
inline Result<NpyArray> parse_npy(const unsigned char* data, std::size_t size, const std::string& name) {
    static const unsigned char magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (size < 10 || std::memcmp(data, magic, 6) != 0)
        return make_error(Errc::parse_error, "%s: not a .npy file (magic \\x93NUMPY missing)", name.c_str());
    const unsigned major = data[6];
    std::size_t header_len = 0, prefix = 0;
    if (major == 1) {
        header_len = data[8] | (std::size_t(data[9]) << 8);
        prefix = 10;
    } else if (major == 2 || major == 3) {
        if (size < 12) return make_error(Errc::parse_error, "%s: truncated .npy header", name.c_str());
        header_len = data[8] | (std::size_t(data[9]) << 8) | (std::size_t(data[10]) << 16) | (std::size_t(data[11]) << 24);
        prefix = 12;
    } else {
        return make_error(Errc::unsupported, "%s: .npy version: expected 1, 2 or 3, found %u", name.c_str(), major);
    }
    if (header_len > size - prefix)
        return make_error(Errc::parse_error, "%s: .npy header length %zu runs past the end of the file (%zu bytes)",
                          name.c_str(), header_len, size);
    std::string header(reinterpret_cast<const char*>(data + prefix), header_len);
    NpyArray a;
    std::string why;
    if (!detail::parse_npy_header(header, a.dtype, a.shape, why))
        return make_error(Errc::parse_error, "%s: .npy header: %s", name.c_str(), why.c_str());
    const std::size_t payload = prefix + header_len;
    const std::size_t need = static_cast<std::size_t>(a.shape.numel()) * detail::npy_item_size(a.dtype);
    if (size - payload != need)
        return make_error(Errc::parse_error, "%s: .npy payload: expected %zu bytes for shape %s, found %zu",
                          name.c_str(), need, a.shape.str().c_str(), size - payload);
    a.bytes.assign(data + payload, data + size);
    return a;
}

inline Result<std::vector<unsigned char>> read_file_bytes(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return make_error(Errc::io_error, "%s: cannot open for reading", path.c_str());
    std::vector<unsigned char> bytes;
    unsigned char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
    const bool failed = std::ferror(f) != 0;
    std::fclose(f);
    if (failed) return make_error(Errc::io_error, "%s: read error", path.c_str());
    return bytes;
}

inline Result<NpyArray> read_npy(const std::string& path) {
    SALTED_ASSIGN(auto bytes, read_file_bytes(path));
    return parse_npy(bytes.data(), bytes.size(), path);
}

inline Result<Tensor> NpyArray::to_tensor() const {
    SALTED_ASSIGN(Tensor t, Tensor::empty(shape));
    const int64_t n = numel();
    for (int64_t i = 0; i < n; ++i) {
        switch (dtype) {
            case NpyDtype::f32: { float v; std::memcpy(&v, &bytes[i * 4], 4); t[i] = v; break; }
            case NpyDtype::f64: { double v; std::memcpy(&v, &bytes[i * 8], 8); t[i] = static_cast<float>(v); break; }
            case NpyDtype::i32: { int32_t v; std::memcpy(&v, &bytes[i * 4], 4); t[i] = static_cast<float>(v); break; }
            case NpyDtype::i64: { int64_t v; std::memcpy(&v, &bytes[i * 8], 8); t[i] = static_cast<float>(v); break; }
        }
    }
    return t;
}

inline Result<std::vector<int64_t>> NpyArray::to_ints() const {
    if (dtype != NpyDtype::i32 && dtype != NpyDtype::i64)
        return make_error(Errc::invalid_argument, ".npy: expected an integer array ('<i4' or '<i8'), found a float array");
    std::vector<int64_t> v(static_cast<std::size_t>(numel()));
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (dtype == NpyDtype::i32) { int32_t x; std::memcpy(&x, &bytes[i * 4], 4); v[i] = x; }
        else { int64_t x; std::memcpy(&x, &bytes[i * 8], 8); v[i] = x; }
    }
    return v;
}

// Serialises a float32 tensor as .npy v1.0 bytes.
inline std::vector<unsigned char> encode_npy(ConstTensorView t) {
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
    for (int i = 0; i < t.shape.rank(); ++i) {
        header += std::to_string(t.shape[i]);
        header += (t.shape.rank() == 1 || i + 1 < t.shape.rank()) ? "," : "";
        if (i + 1 < t.shape.rank()) header += " ";
    }
    header += "), }";
    const std::size_t unpadded = 10 + header.size() + 1;
    header.append((64 - unpadded % 64) % 64, ' ');
    header += '\n';
    std::vector<unsigned char> out = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    out.push_back(static_cast<unsigned char>(header.size() & 0xff));
    out.push_back(static_cast<unsigned char>(header.size() >> 8));
    out.insert(out.end(), header.begin(), header.end());
    const auto* p = reinterpret_cast<const unsigned char*>(t.data);
    out.insert(out.end(), p, p + t.numel() * 4);
    return out;
}

inline Status write_file_bytes(const std::string& path, const std::vector<unsigned char>& bytes) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return make_error(Errc::io_error, "%s: cannot open for writing", path.c_str());
    const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
    const bool closed = std::fclose(f) == 0;
    if (!ok || !closed) return make_error(Errc::io_error, "%s: write failed", path.c_str());
    return Status();
}

inline Status write_npy(const std::string& path, ConstTensorView t) { return write_file_bytes(path, encode_npy(t)); }

}  // namespace io
}  // namespace salted
