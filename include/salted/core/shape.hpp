// Shape: the dimensions of a tensor, batch first (NCHW for images, NF for
// feature vectors). Fixed capacity so a shape never allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "salted/core/result.hpp"

namespace salted {

class Shape {
public:
    static constexpr int max_rank = 6;

    Shape() = default;
    Shape(std::initializer_list<int64_t> dims) {
        for (int64_t d : dims) {
            if (rank_ < max_rank) dims_[rank_] = d;
            ++rank_;
        }
        if (rank_ > max_rank) rank_ = max_rank;  // checked by valid()
    }

    // Builds a shape from a pointer/count pair, validating rank and sizes.
    static Result<Shape> from(const int64_t* dims, int rank) {
        if (rank < 0 || rank > max_rank)
            return make_error(Errc::invalid_argument, "shape: rank: expected 0..%d, found %d", max_rank, rank);
        Shape s;
        s.rank_ = rank;
        for (int i = 0; i < rank; ++i) s.dims_[i] = dims[i];
        SALTED_TRY(s.validate());
        return s;
    }

    int rank() const { return rank_; }
    int64_t operator[](int i) const { return dims_[i]; }
    int64_t& operator[](int i) { return dims_[i]; }
    const int64_t* data() const { return dims_; }

    // Number of elements; 1 for rank 0. Only meaningful for a valid() shape.
    int64_t numel() const {
        int64_t n = 1;
        for (int i = 0; i < rank_; ++i) n *= dims_[i];
        return n;
    }

    // Every dimension positive and the element count below 2^40 (4 TiB of
    // floats): anything larger is a corrupt file, not a model.
    Status validate() const {
        int64_t n = 1;
        for (int i = 0; i < rank_; ++i) {
            if (dims_[i] <= 0)
                return make_error(Errc::invalid_argument, "shape %s: dimension %d: expected > 0, found %lld",
                                  str().c_str(), i, static_cast<long long>(dims_[i]));
            if (dims_[i] > (int64_t(1) << 40) || n > (int64_t(1) << 40) / dims_[i])
                return make_error(Errc::invalid_argument, "shape %s: expected at most 2^40 elements",
                                  str().c_str());
            n *= dims_[i];
        }
        return Status();
    }

    std::string str() const {
        std::string s = "[";
        for (int i = 0; i < rank_; ++i) {
            if (i) s += ", ";
            s += std::to_string(dims_[i]);
        }
        return s + "]";
    }

    friend bool operator==(const Shape& a, const Shape& b) {
        if (a.rank_ != b.rank_) return false;
        for (int i = 0; i < a.rank_; ++i)
            if (a.dims_[i] != b.dims_[i]) return false;
        return true;
    }
    friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }

private:
    int64_t dims_[max_rank] = {0, 0, 0, 0, 0, 0};
    int rank_ = 0;
};

}  // namespace salted
