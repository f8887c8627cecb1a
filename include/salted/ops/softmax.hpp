// softmax along one axis (F.softmax(x, dim)): the features axis of [N, C]
// logits by default, or the channel axis 1 of NCHW. Numerically stable: the
// maximum is subtracted before exp, so large logits never overflow.
//
// Two layouts: a contiguous axis (the last) is reduced row by row; a strided
// axis (e.g. C of NCHW) is reduced for SIMD-width groups of positions at once,
// so every load stays contiguous.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "salted/core/parallel.hpp"
#include "salted/core/result.hpp"
#include "salted/core/simd.hpp"
#include "salted/core/tensor.hpp"

namespace salted {
namespace ops {

inline Result<Shape> softmax_output_shape(const Shape& in, int axis = -1) {
    SALTED_TRY(in.validate());
    if (in.rank() < 1) return make_error(Errc::shape_mismatch, "softmax: input rank: expected >= 1, found 0");
    if (axis < -in.rank() || axis >= in.rank())
        return make_error(Errc::invalid_argument, "softmax: axis: expected %d..%d for input %s, found %d", -in.rank(),
                          in.rank() - 1, in.str().c_str(), axis);
    return in;
}

namespace detail {

// softmax of n contiguous floats.
inline void softmax_contiguous(const float* x, float* y, int64_t n) {
    const int64_t w = static_cast<int64_t>(simd::width);
    float m = -std::numeric_limits<float>::infinity();
    int64_t i = 0;
    if (n >= w) {
        simd::FloatBatch vm = simd::load(x);
        for (i = w; i + w <= n; i += w) vm = xsimd::max(vm, simd::load(x + i));
        alignas(64) float lanes[simd::width];
        vm.store_aligned(lanes);
        for (int64_t l = 0; l < w; ++l) m = std::max(m, lanes[l]);
    }
    for (; i < n; ++i) m = std::max(m, x[i]);
    const simd::FloatBatch vmax = simd::broadcast(m);
    simd::FloatBatch vsum = simd::broadcast(0.0f);
    for (i = 0; i + w <= n; i += w) {
        const simd::FloatBatch e = xsimd::exp(simd::load(x + i) - vmax);
        simd::store(y + i, e);
        vsum += e;
    }
    float sum = xsimd::hadd(vsum);
    for (; i < n; ++i) {
        y[i] = std::exp(x[i] - m);
        sum += y[i];
    }
    const float inv = 1.0f / sum;
    const simd::FloatBatch vinv = simd::broadcast(inv);
    for (i = 0; i + w <= n; i += w) simd::store(y + i, simd::load(y + i) * vinv);
    for (; i < n; ++i) y[i] *= inv;
}

// softmax over `len` elements `stride` apart, for positions [r0, r0 + count)
// of one outer block; count <= simd::width uses SIMD when it is a full batch.
inline void softmax_strided(const float* x, float* y, int64_t len, int64_t stride, int64_t count) {
    const int64_t w = static_cast<int64_t>(simd::width);
    if (count == w) {
        simd::FloatBatch m = simd::load(x);
        for (int64_t a = 1; a < len; ++a) m = xsimd::max(m, simd::load(x + a * stride));
        simd::FloatBatch sum = simd::broadcast(0.0f);
        for (int64_t a = 0; a < len; ++a) {
            const simd::FloatBatch e = xsimd::exp(simd::load(x + a * stride) - m);
            simd::store(y + a * stride, e);
            sum += e;
        }
        const simd::FloatBatch inv = simd::broadcast(1.0f) / sum;
        for (int64_t a = 0; a < len; ++a) simd::store(y + a * stride, simd::load(y + a * stride) * inv);
        return;
    }
    for (int64_t r = 0; r < count; ++r) {
        float m = x[r];
        for (int64_t a = 1; a < len; ++a) m = std::max(m, x[r + a * stride]);
        float sum = 0.0f;
        for (int64_t a = 0; a < len; ++a) {
            y[r + a * stride] = std::exp(x[r + a * stride] - m);
            sum += y[r + a * stride];
        }
        const float inv = 1.0f / sum;
        for (int64_t a = 0; a < len; ++a) y[r + a * stride] *= inv;
    }
}

}  // namespace detail

// out = softmax(in, axis). `in` and `out` may be the same buffer.
inline Status softmax(ConstTensorView in, TensorView out, int axis = -1) {
    SALTED_ASSIGN(const Shape want, softmax_output_shape(in.shape, axis));
    if (out.shape != want)
        return make_error(Errc::shape_mismatch, "softmax: output shape: expected %s, found %s", want.str().c_str(),
                          out.shape.str().c_str());
    const int ax = axis < 0 ? axis + want.rank() : axis;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < ax; ++d) outer *= want[d];
    for (int d = ax + 1; d < want.rank(); ++d) inner *= want[d];
    const int64_t len = want[ax];
    const int64_t flops = 8 * want.numel();  // exp dominates
    if (inner == 1) {
        parallel_for(outer, flops, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) detail::softmax_contiguous(in.data + r * len, out.data + r * len, len);
        });
        return Status();
    }
    const int64_t w = static_cast<int64_t>(simd::width);
    const int64_t groups = (inner + w - 1) / w;  // per outer block
    parallel_for(outer * groups, flops, [&](int64_t g0, int64_t g1) {
        for (int64_t g = g0; g < g1; ++g) {
            const int64_t o = g / groups, r = (g % groups) * w;
            const int64_t base = o * len * inner + r;
            detail::softmax_strided(in.data + base, out.data + base, len, inner, std::min(w, inner - r));
        }
    });
    return Status();
}

namespace ref {
// Scalar twin of ops::softmax, accumulating in double.
inline Status softmax(ConstTensorView in, TensorView out, int axis = -1) {
    SALTED_ASSIGN(const Shape want, softmax_output_shape(in.shape, axis));
    if (out.shape != want) return make_error(Errc::shape_mismatch, "softmax: output shape differs");
    const int ax = axis < 0 ? axis + want.rank() : axis;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < ax; ++d) outer *= want[d];
    for (int d = ax + 1; d < want.rank(); ++d) inner *= want[d];
    const int64_t len = want[ax];
    for (int64_t o = 0; o < outer; ++o) {
        for (int64_t r = 0; r < inner; ++r) {
            const int64_t base = o * len * inner + r;
            double m = -INFINITY, sum = 0.0;
            for (int64_t a = 0; a < len; ++a) m = std::max(m, double(in[base + a * inner]));
            for (int64_t a = 0; a < len; ++a) sum += std::exp(double(in[base + a * inner]) - m);
            for (int64_t a = 0; a < len; ++a)
                out[base + a * inner] = static_cast<float>(std::exp(double(in[base + a * inner]) - m) / sum);
        }
    }
    return Status();
}
}  // namespace ref

}  // namespace ops
}  // namespace salted
