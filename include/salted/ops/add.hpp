// Elementwise sum of two same-shape tensors, with an optional fused
// activation: the residual join of a ResNet block (shortcut + branch). No
// broadcasting: the reference architectures never need it, and a silent
// broadcast would hide a wiring mistake.
#pragma once

#include <algorithm>
#include <cstdint>

#include "salted/core/parallel.hpp"
#include "salted/core/result.hpp"
#include "salted/core/simd.hpp"
#include "salted/core/tensor.hpp"
#include "salted/ops/activation.hpp"

namespace salted {
namespace ops {

inline Result<Shape> add_output_shape(const Shape& a, const Shape& b) {
    SALTED_TRY(a.validate());
    if (a != b)
        return make_error(Errc::shape_mismatch, "add: b shape: expected %s (same as a, no broadcasting), found %s",
                          a.str().c_str(), b.str().c_str());
    return a;
}

// out = act(a + b). `out` may alias `a` or `b` (an in-place residual add).
inline Status add(ConstTensorView a, ConstTensorView b, TensorView out, const Activation& act = Activation::none()) {
    SALTED_TRY(act.validate("add"));
    SALTED_ASSIGN(const Shape want, add_output_shape(a.shape, b.shape));
    if (out.shape != want)
        return make_error(Errc::shape_mismatch, "add: output shape: expected %s, found %s", want.str().c_str(),
                          out.shape.str().c_str());
    const int64_t n = want.numel(), chunk = 16384;
    const int64_t w = static_cast<int64_t>(simd::width);
    parallel_for((n + chunk - 1) / chunk, n, [&](int64_t c0, int64_t c1) {
        const int64_t hi = std::min(n, c1 * chunk);
        int64_t i = c0 * chunk;
        for (; i + w <= hi; i += w) simd::store(out.data + i, act.apply(simd::load(a.data + i) + simd::load(b.data + i)));
        for (; i < hi; ++i) out.data[i] = act.apply(a.data[i] + b.data[i]);
    });
    return Status();
}

namespace ref {
// Scalar twin of ops::add.
inline Status add(ConstTensorView a, ConstTensorView b, TensorView out, const Activation& act = Activation::none()) {
    if (a.shape != b.shape || a.shape != out.shape) return make_error(Errc::shape_mismatch, "add: shapes differ");
    for (int64_t i = 0; i < a.numel(); ++i) out[i] = act.apply(a[i] + b[i]);
    return Status();
}
}  // namespace ref

}  // namespace ops
}  // namespace salted
