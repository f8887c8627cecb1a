// IDX files (the MNIST / Fashion-MNIST container): a 4-byte magic
// {0, 0, type, rank}, `rank` big-endian uint32 dims, then the elements.
//
// Only unsigned bytes (type 0x08) are read: that is what image and label
// sets use, and it keeps the reader small. Everything is validated against
// the byte count before it is used: a truncated, padded or lying file is an
// error naming the field, never a read past the end. Gzip is not handled
// here (it would pull zlib into a header-only library): the `salted eval`
// program inflates .gz files itself and hands the bytes to parse_idx.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "salted/core/result.hpp"
#include "salted/io/npy.hpp"

namespace salted {
namespace io {

struct IdxArray {
    std::vector<int64_t> dims;  // outermost first, e.g. {10000, 28, 28}
    std::vector<uint8_t> data;  // row-major, product(dims) bytes
    int64_t count() const { return dims.empty() ? 0 : dims[0]; }
};

constexpr uint8_t idx_type_ubyte = 0x08;
// An IDX dimension can be up to 2^32-1 but no real set comes near; a cap
// keeps product(dims) far from overflowing.
constexpr int64_t idx_max_elements = int64_t(1) << 40;

// `what` names the source (a path) in error messages.
inline Result<IdxArray> parse_idx(const uint8_t* p, std::size_t size, const std::string& what = "idx") {
    if (!p && size) return make_error(Errc::invalid_argument, "%s: data: expected bytes, found a null pointer", what.c_str());
    if (size < 4)
        return make_error(Errc::parse_error, "%s: magic: expected 4 bytes, found %zu (truncated)", what.c_str(), size);
    if (p[0] != 0 || p[1] != 0)
        return make_error(Errc::parse_error, "%s: magic: expected 0x00 0x00 first, found 0x%02x 0x%02x (not an IDX file)",
                          what.c_str(), p[0], p[1]);
    if (p[2] != idx_type_ubyte)
        return make_error(Errc::unsupported, "%s: type: expected 0x08 (unsigned byte), found 0x%02x", what.c_str(), p[2]);
    const unsigned rank = p[3];
    if (rank < 1 || rank > 4)
        return make_error(Errc::parse_error, "%s: rank: expected 1..4, found %u", what.c_str(), rank);
    const std::size_t header = 4 + 4 * std::size_t(rank);
    if (size < header)
        return make_error(Errc::parse_error, "%s: dims: expected %zu header bytes, found %zu (truncated)", what.c_str(),
                          header, size);
    IdxArray a;
    int64_t n = 1;
    for (unsigned i = 0; i < rank; ++i) {
        const uint8_t* d = p + 4 + 4 * i;
        const int64_t dim = (int64_t(d[0]) << 24) | (int64_t(d[1]) << 16) | (int64_t(d[2]) << 8) | int64_t(d[3]);
        if (dim < 1) return make_error(Errc::parse_error, "%s: dims[%u]: expected >= 1, found 0", what.c_str(), i);
        if (dim > idx_max_elements / n)
            return make_error(Errc::parse_error, "%s: dims: expected at most 2^40 elements, found more", what.c_str());
        n *= dim;
        a.dims.push_back(dim);
    }
    const std::size_t payload = size - header;
    if (payload != static_cast<uint64_t>(n))
        return make_error(Errc::parse_error, "%s: data: expected %lld bytes after the header, found %zu (%s)",
                          what.c_str(), static_cast<long long>(n), payload,
                          payload < static_cast<uint64_t>(n) ? "truncated" : "trailing bytes");
    a.data.assign(p + header, p + size);
    return a;
}

inline Result<IdxArray> read_idx(const std::string& path) {
    SALTED_ASSIGN(auto bytes, read_file_bytes(path));
    return parse_idx(bytes.data(), bytes.size(), path);
}

// An image set [N, H, W] and its label set [N] that belong together:
// same count, labels below `classes`.
inline Status check_idx_pair(const IdxArray& images, const IdxArray& labels, int64_t classes) {
    if (images.dims.size() != 3)
        return make_error(Errc::shape_mismatch, "idx: images: expected rank 3 [N, H, W], found rank %zu",
                          images.dims.size());
    if (labels.dims.size() != 1)
        return make_error(Errc::shape_mismatch, "idx: labels: expected rank 1 [N], found rank %zu", labels.dims.size());
    if (images.dims[0] != labels.dims[0])
        return make_error(Errc::shape_mismatch, "idx: labels: expected %lld (one per image), found %lld",
                          static_cast<long long>(images.dims[0]), static_cast<long long>(labels.dims[0]));
    for (std::size_t i = 0; i < labels.data.size(); ++i)
        if (labels.data[i] >= classes)
            return make_error(Errc::out_of_range, "idx: labels[%zu]: expected 0..%lld, found %u", i,
                              static_cast<long long>(classes - 1), unsigned(labels.data[i]));
    return Status();
}

}  // namespace io
}  // namespace salted
