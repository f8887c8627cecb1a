// Fully connected layer (nn.Linear): out[N, out] = act(in[N, in] * W^T + b),
// weight [out, in] as PyTorch stores it, optional bias [out]. The input must
// be rank 2; a feature map reaches it through flatten.
//
// One GEMM: A = the input rows (packed per run into the workspace, which is
// small: N x in), B = W^T packed once at create(), bias per output column.
#pragma once

#include <cinttypes>
#include <cstdint>

#include "salted/core/result.hpp"
#include "salted/core/tensor.hpp"
#include "salted/kernels/gemm.hpp"
#include "salted/ops/activation.hpp"
#include "salted/ops/op_checks.hpp"

namespace salted {
namespace ops {

struct DenseParams {
    int64_t in_features = 0;
    int64_t out_features = 0;
    Activation activation;  // applied after the bias
};

namespace detail {

inline Status validate_dense(const DenseParams& p) {
    SALTED_TRY(check_param("dense", "in_features", p.in_features, 1));
    SALTED_TRY(check_param("dense", "out_features", p.out_features, 1));
    return p.activation.validate("dense");
}

inline Result<Shape> dense_output_shape(const DenseParams& p, const Shape& in) {
    if (in.rank() != 2)
        return make_error(Errc::shape_mismatch, "dense: input rank: expected 2 ([N, in_features]), found %d (shape %s)",
                          in.rank(), in.str().c_str());
    SALTED_TRY(in.validate());
    if (in[1] != p.in_features)
        return make_error(Errc::shape_mismatch, "dense: input features: expected %" PRId64 ", found %" PRId64
                          " (shape %s)", p.in_features, in[1], in.str().c_str());
    Shape os({in[0], p.out_features});
    SALTED_TRY(os.validate());
    return os;
}

}  // namespace detail

class Dense {
public:
    static Result<Dense> create(const DenseParams& p, ConstTensorView weight, ConstTensorView bias) {
        SALTED_TRY(detail::validate_dense(p));
        SALTED_TRY(detail::check_weight_bias("dense", weight, Shape({p.out_features, p.in_features}), bias,
                                             p.out_features));
        Dense d;
        d.p_ = p;
        SALTED_ASSIGN(d.packed_, Tensor::empty(Shape({kernels::gemm_packed_b_floats(p.in_features, p.out_features)})));
        // B = W^T: B(i, o) = weight[o * in + i].
        kernels::gemm_pack_b(p.in_features, p.out_features, weight.data, 1, p.in_features, d.packed_.data());
        if (bias.data) {
            SALTED_ASSIGN(d.bias_, Tensor::copy_of(bias));
        }
        return d;
    }

    const DenseParams& params() const { return p_; }

    Result<Shape> output_shape(const Shape& input) const { return detail::dense_output_shape(p_, input); }

    // The input rows packed as GEMM A panels.
    std::size_t workspace_floats(const Shape& input) const {
        if (!output_shape(input).ok()) return 0;
        return static_cast<std::size_t>(kernels::gemm_packed_a_floats(input[0], p_.in_features));
    }

    int64_t flops(const Shape& input) const {
        if (!output_shape(input).ok()) return 0;
        return 2 * input[0] * p_.in_features * p_.out_features;
    }

    // Bytes of the packed weights and the bias.
    int64_t kernel_bytes() const { return (packed_.numel() + bias_.numel()) * static_cast<int64_t>(sizeof(float)); }

    Status run(ConstTensorView in, TensorView out, float* workspace) const {
        SALTED_ASSIGN(Shape os, output_shape(in.shape));
        SALTED_TRY(detail::check_run("dense", in, out, os));
        if (!workspace)
            return make_error(Errc::invalid_argument, "dense: workspace: expected %zu floats, found null",
                              workspace_floats(in.shape));
        const int64_t n = in.shape[0], k = p_.in_features;
        kernels::gemm_pack_a(n, k, in.data, k, 1, workspace);
        kernels::PackedB src;
        src.data = packed_.data();
        src.k = k;
        kernels::gemm_blocked(n, p_.out_features, k, workspace, src, nullptr, out.data, p_.out_features,
                              kernels::GemmEpilogue::column_bias(bias_.data(), p_.activation), false);
        return Status();
    }

private:
    DenseParams p_;
    Tensor packed_;  // W^T as packed B panels
    Tensor bias_;    // empty storage when there is no bias
};

namespace ref {
// Scalar twin of Dense::run, summed in double.
inline Status dense(const DenseParams& p, ConstTensorView in, ConstTensorView weight, ConstTensorView bias,
                    TensorView out) {
    SALTED_TRY(detail::validate_dense(p));
    SALTED_TRY(detail::check_weight_bias("dense", weight, Shape({p.out_features, p.in_features}), bias,
                                         p.out_features));
    SALTED_ASSIGN(Shape os, detail::dense_output_shape(p, in.shape));
    SALTED_TRY(detail::check_run("dense", in, out, os));
    for (int64_t i = 0; i < os[0]; ++i)
        for (int64_t o = 0; o < p.out_features; ++o) {
            double s = bias.data ? bias.data[o] : 0.0;
            for (int64_t k = 0; k < p.in_features; ++k)
                s += double(in.data[i * p.in_features + k]) * double(weight.data[o * p.in_features + k]);
            out.data[i * p.out_features + o] = p.activation.apply(static_cast<float>(s));
        }
    return Status();
}
}  // namespace ref

}  // namespace ops
}  // namespace salted
