// Tensor: float32, dense, row-major (NCHW), storage aligned to 64 bytes so
// SIMD loads never straddle a cache line at the start of a row.
//
// Tensor owns its storage and is move-only (copies are explicit: clone()).
// TensorView / ConstTensorView are non-owning (pointer + shape) and are what
// kernels and ops take, so callers can run ops on their own buffers.
#pragma once

#include <cstdlib>
#include <cstring>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "salted/core/result.hpp"
#include "salted/core/shape.hpp"

namespace salted {

constexpr std::size_t tensor_alignment = 64;

// Blocks of at least this many bytes start on a 2 MiB boundary and are
// offered to the kernel's transparent huge pages (Linux, where THP is in
// `madvise` mode by default): the prepared weights of a WideResNet are
// 23-68 MB, streamed once per run, and on 4 KiB pages each run walks
// thousands of TLB entries. Only whole 2 MiB extents inside the block can
// become huge pages, so no memory is added; the alignment costs address
// space, not RAM.
constexpr std::size_t huge_page_bytes = std::size_t(2) << 20;

// Aligned allocation that reports failure instead of throwing.
inline float* aligned_alloc_floats(std::size_t count) {
    std::size_t bytes = count * sizeof(float);
    bytes = (bytes + tensor_alignment - 1) / tensor_alignment * tensor_alignment;
    if (bytes == 0) bytes = tensor_alignment;
    void* p = nullptr;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= huge_page_bytes) {
        if (posix_memalign(&p, huge_page_bytes, bytes) != 0) return nullptr;
        (void)madvise(p, bytes, MADV_HUGEPAGE);  // advice only: failure leaves 4 KiB pages
        return static_cast<float*>(p);
    }
#endif
    if (posix_memalign(&p, tensor_alignment, bytes) != 0) return nullptr;
    return static_cast<float*>(p);
}
inline void aligned_free(void* p) { std::free(p); }

struct ConstTensorView {
    const float* data = nullptr;
    Shape shape;
    ConstTensorView() = default;
    ConstTensorView(const float* d, Shape s) : data(d), shape(s) {}
    int64_t numel() const { return shape.numel(); }
    float operator[](int64_t i) const { return data[i]; }
};

struct TensorView {
    float* data = nullptr;
    Shape shape;
    TensorView() = default;
    TensorView(float* d, Shape s) : data(d), shape(s) {}
    int64_t numel() const { return shape.numel(); }
    float& operator[](int64_t i) const { return data[i]; }
    operator ConstTensorView() const { return ConstTensorView(data, shape); }  // NOLINT
};

class Tensor {
public:
    Tensor() = default;

    // Allocates an uninitialised tensor of the given shape.
    static Result<Tensor> empty(const Shape& shape) {
        SALTED_TRY(shape.validate());
        Tensor t;
        t.data_ = aligned_alloc_floats(static_cast<std::size_t>(shape.numel()));
        if (!t.data_)
            return make_error(Errc::out_of_memory, "tensor: could not allocate %lld floats for shape %s",
                              static_cast<long long>(shape.numel()), shape.str().c_str());
        t.shape_ = shape;
        return t;
    }
    static Result<Tensor> zeros(const Shape& shape) {
        SALTED_ASSIGN(Tensor t, empty(shape));
        std::memset(t.data_, 0, static_cast<std::size_t>(shape.numel()) * sizeof(float));
        return t;
    }
    static Result<Tensor> copy_of(ConstTensorView v) {
        SALTED_ASSIGN(Tensor t, empty(v.shape));
        std::memcpy(t.data_, v.data, static_cast<std::size_t>(v.numel()) * sizeof(float));
        return t;
    }
    Result<Tensor> clone() const { return copy_of(view()); }

    Tensor(Tensor&& o) noexcept : data_(o.data_), shape_(o.shape_) { o.data_ = nullptr; o.shape_ = Shape(); }
    Tensor& operator=(Tensor&& o) noexcept {
        if (this != &o) {
            aligned_free(data_);
            data_ = o.data_;
            shape_ = o.shape_;
            o.data_ = nullptr;
            o.shape_ = Shape();
        }
        return *this;
    }
    Tensor(const Tensor&) = delete;
    Tensor& operator=(const Tensor&) = delete;
    ~Tensor() { aligned_free(data_); }

    float* data() { return data_; }
    const float* data() const { return data_; }
    const Shape& shape() const { return shape_; }
    int64_t numel() const { return data_ ? shape_.numel() : 0; }
    bool empty_storage() const { return data_ == nullptr; }
    float& operator[](int64_t i) { return data_[i]; }
    float operator[](int64_t i) const { return data_[i]; }

    TensorView view() { return TensorView(data_, shape_); }
    ConstTensorView view() const { return ConstTensorView(data_, shape_); }
    ConstTensorView cview() const { return ConstTensorView(data_, shape_); }

    // Reinterprets the same elements under a new shape with equal numel.
    Status reshape(const Shape& s) {
        SALTED_TRY(s.validate());
        if (s.numel() != numel())
            return make_error(Errc::shape_mismatch, "tensor: reshape %s -> %s: element counts differ",
                              shape_.str().c_str(), s.str().c_str());
        shape_ = s;
        return Status();
    }

private:
    float* data_ = nullptr;
    Shape shape_;
};

}  // namespace salted
