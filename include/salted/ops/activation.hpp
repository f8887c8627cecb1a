// Pointwise activations: ReLU and LeakyReLU. `Activation` is also the fused
// epilogue of conv2d, dense and batch norm, so an activation that follows one
// of them costs no extra pass over memory.
#pragma once

#include <algorithm>
#include <cstdint>

#include "salted/core/parallel.hpp"
#include "salted/core/result.hpp"
#include "salted/core/simd.hpp"
#include "salted/core/tensor.hpp"

namespace salted {
namespace ops {

struct Activation {
    enum class Kind { none, relu, leaky_relu };
    Kind kind = Kind::none;
    float negative_slope = 0.01f;  // LeakyReLU only; PyTorch's default

    static Activation none() { return {}; }
    static Activation relu() { return {Kind::relu, 0.0f}; }
    static Activation leaky_relu(float slope = 0.01f) { return {Kind::leaky_relu, slope}; }

    float apply(float x) const {
        switch (kind) {
            case Kind::none: return x;
            case Kind::relu: return x > 0.0f ? x : 0.0f;
            case Kind::leaky_relu: return x > 0.0f ? x : x * negative_slope;
        }
        return x;
    }
    // Any xsimd float batch (kernels may use narrower vectors than FloatBatch).
    template <class Arch>
    xsimd::batch<float, Arch> apply(const xsimd::batch<float, Arch>& x) const {
        using B = xsimd::batch<float, Arch>;
        switch (kind) {
            case Kind::none: return x;
            case Kind::relu: return xsimd::max(x, B(0.0f));
            case Kind::leaky_relu: return xsimd::select(x > B(0.0f), x, x * B(negative_slope));
        }
        return x;
    }
    Status validate(const char* op) const {
        if (kind == Kind::leaky_relu && !(negative_slope == negative_slope))
            return make_error(Errc::invalid_argument, "%s: negative_slope: expected a number, found NaN", op);
        return Status();
    }
};

// An Activation whose kind is a template argument, for kernels whose inner
// loop would otherwise branch on the kind at every vector (with a short sum
// per output, as in a first layer's K = 5, those branches cost as much as
// the multiply-adds). with_activation_kind(act, f) calls f with the one
// matching FixedActivation; f is instantiated for each kind. The formulas
// are Activation::apply's, written again: calling apply() on an Activation
// built from K measured 10-18 % slower in the shallow convolution (GCC 12,
// first layers of LeNet-MNIST and the sensor net), whose whole cost is a
// few multiply-adds per stored vector.
template <Activation::Kind K>
struct FixedActivation {
    float negative_slope = 0.0f;
    template <class Arch>
    xsimd::batch<float, Arch> operator()(const xsimd::batch<float, Arch>& x) const {
        using B = xsimd::batch<float, Arch>;
        if constexpr (K == Activation::Kind::relu) return xsimd::max(x, B(0.0f));
        if constexpr (K == Activation::Kind::leaky_relu) return xsimd::select(x > B(0.0f), x, x * B(negative_slope));
        return x;
    }
};
template <class F>
decltype(auto) with_activation_kind(const Activation& act, F&& f) {
    switch (act.kind) {
        case Activation::Kind::relu: return f(FixedActivation<Activation::Kind::relu>{act.negative_slope});
        case Activation::Kind::leaky_relu: return f(FixedActivation<Activation::Kind::leaky_relu>{act.negative_slope});
        case Activation::Kind::none: break;
    }
    return f(FixedActivation<Activation::Kind::none>{act.negative_slope});
}

// Applies `act` to n contiguous floats in place (SIMD body, scalar tail).
inline void apply_activation_inplace(const Activation& act, float* data, int64_t n) {
    if (act.kind == Activation::Kind::none) return;
    int64_t i = 0;
    const int64_t w = static_cast<int64_t>(simd::width);
    for (; i + w <= n; i += w) simd::store(data + i, act.apply(simd::load(data + i)));
    for (; i < n; ++i) data[i] = act.apply(data[i]);
}

// out = act(in), elementwise. `in` and `out` may alias.
inline Status activation(const Activation& act, ConstTensorView in, TensorView out) {
    SALTED_TRY(act.validate("activation"));
    if (in.shape != out.shape)
        return make_error(Errc::shape_mismatch, "activation: output shape: expected %s, found %s",
                          in.shape.str().c_str(), out.shape.str().c_str());
    const int64_t n = in.numel();
    const int64_t chunk = 16384;
    parallel_for((n + chunk - 1) / chunk, n, [&](int64_t b, int64_t e) {
        for (int64_t c = b; c < e; ++c) {
            int64_t lo = c * chunk, hi = std::min(n, lo + chunk);
            if (out.data != in.data) std::copy(in.data + lo, in.data + hi, out.data + lo);
            apply_activation_inplace(act, out.data + lo, hi - lo);
        }
    });
    return Status();
}

namespace ref {
// Scalar twin of ops::activation.
inline Status activation(const Activation& act, ConstTensorView in, TensorView out) {
    if (in.shape != out.shape) return make_error(Errc::shape_mismatch, "activation: shapes differ");
    for (int64_t i = 0; i < in.numel(); ++i) out.data[i] = act.apply(in.data[i]);
    return Status();
}
}  // namespace ref

}  // namespace ops
}  // namespace salted
