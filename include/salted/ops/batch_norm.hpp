// Batch normalisation at inference (nn.BatchNorm1d/2d in eval mode):
//   y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta
// per channel (axis 1), for [N, C] and [N, C, H, W] (any rank >= 2).
//
// create() folds the four parameter vectors into one scale and one shift per
// channel, so run() is a single multiply-add pass (plus a fused activation:
// the WideResNet pre-activation block is BN -> ReLU). When BN follows a conv
// or a dense layer, fold it into that layer's weights instead (the
// fold_batch_norm_into_* helpers below) and it costs nothing at run time.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "salted/core/parallel.hpp"
#include "salted/core/result.hpp"
#include "salted/core/simd.hpp"
#include "salted/core/tensor.hpp"
#include "salted/ops/activation.hpp"

namespace salted {
namespace ops {

// The four per-channel vectors of a PyTorch BatchNorm, each of shape [C].
// gamma (weight) and beta (bias) may be empty views for affine=False (1 and 0).
struct BatchNormTensors {
    ConstTensorView gamma, beta, running_mean, running_var;
};

struct BatchNormParams {
    double eps = 1e-5;  // PyTorch's default
    Activation activation;
};

namespace detail {

// Validates the BN vectors and computes scale = gamma / sqrt(var + eps) and
// shift = beta - mean * scale in float, the way PyTorch's CPU inference
// kernel does (batch_norm_cpu_collect_linear_and_constant_terms).
inline Status batch_norm_scale_shift(const char* op, const BatchNormTensors& bn, double eps, int64_t channels,
                                     std::vector<float>& scale, std::vector<float>& shift) {
    if (!(eps >= 0.0) || !std::isfinite(eps))
        return make_error(Errc::invalid_argument, "%s: eps: expected a finite number >= 0, found %g", op, eps);
    struct Named { const char* name; ConstTensorView v; bool optional; };
    const Named vecs[4] = {{"gamma", bn.gamma, true}, {"beta", bn.beta, true},
                           {"running_mean", bn.running_mean, false}, {"running_var", bn.running_var, false}};
    for (const Named& t : vecs) {
        if (t.optional && t.v.data == nullptr) continue;
        if (t.v.data == nullptr)
            return make_error(Errc::invalid_argument, "%s: %s: expected a tensor of shape [%lld], found none", op,
                              t.name, static_cast<long long>(channels));
        if (t.v.shape != Shape{channels})
            return make_error(Errc::shape_mismatch, "%s: %s shape: expected [%lld], found %s", op, t.name,
                              static_cast<long long>(channels), t.v.shape.str().c_str());
    }
    scale.assign(static_cast<std::size_t>(channels), 0.0f);
    shift.assign(static_cast<std::size_t>(channels), 0.0f);
    for (int64_t c = 0; c < channels; ++c) {
        const double var = bn.running_var[c];
        if (!(var >= 0.0))
            return make_error(Errc::invalid_argument, "%s: running_var[%lld]: expected >= 0, found %g", op,
                              static_cast<long long>(c), var);
        if (!(bn.running_var[c] + static_cast<float>(eps) > 0.0f))
            return make_error(Errc::invalid_argument,
                              "%s: running_var[%lld] + eps: expected > 0, found 0 (zero variance needs eps > 0)", op,
                              static_cast<long long>(c));
        const float invstd = 1.0f / std::sqrt(bn.running_var[c] + static_cast<float>(eps));
        const float g = bn.gamma.data ? bn.gamma[c] : 1.0f, b = bn.beta.data ? bn.beta[c] : 0.0f;
        scale[c] = invstd * g;
        shift[c] = b - bn.running_mean[c] * scale[c];
    }
    return Status();
}

}  // namespace detail

class BatchNorm {
public:
    // `channels` comes from the vectors (running_mean's length). The vectors
    // are read once; the caller's buffers can be freed afterwards.
    static Result<BatchNorm> create(const BatchNormParams& p, const BatchNormTensors& bn) {
        SALTED_TRY(p.activation.validate("batch_norm"));
        if (bn.running_mean.data == nullptr)
            return make_error(Errc::invalid_argument, "batch_norm: running_mean: expected a [C] tensor, found none");
        if (bn.running_mean.shape.rank() != 1)
            return make_error(Errc::shape_mismatch, "batch_norm: running_mean shape: expected [C], found %s",
                              bn.running_mean.shape.str().c_str());
        BatchNorm op;
        op.params_ = p;
        SALTED_TRY(detail::batch_norm_scale_shift("batch_norm", bn, p.eps, bn.running_mean.shape[0], op.scale_,
                                                  op.shift_));
        return op;
    }

    const BatchNormParams& params() const { return params_; }
    int64_t channels() const { return static_cast<int64_t>(scale_.size()); }
    // Per-channel y = x * scale + shift (before the activation).
    const std::vector<float>& scale() const { return scale_; }
    const std::vector<float>& shift() const { return shift_; }

    Result<Shape> output_shape(const Shape& in) const {
        if (in.rank() < 2)
            return make_error(Errc::shape_mismatch, "batch_norm: input rank: expected >= 2 ([N, C, ...]), found %d",
                              in.rank());
        SALTED_TRY(in.validate());
        if (in[1] != channels())
            return make_error(Errc::shape_mismatch, "batch_norm: input channels (dim 1): expected %lld, found %lld",
                              static_cast<long long>(channels()), static_cast<long long>(in[1]));
        return in;
    }
    std::size_t workspace_floats(const Shape&) const { return 0; }
    int64_t flops(const Shape& in) const { return 2 * in.numel(); }
    // Bytes of the per-channel scale and shift.
    int64_t kernel_bytes() const {
        return static_cast<int64_t>((scale_.size() + shift_.size()) * sizeof(float));
    }

    // out = act(in * scale + shift); `in` and `out` may be the same buffer.
    Status run(ConstTensorView in, TensorView out, float* /*workspace*/ = nullptr) const {
        SALTED_ASSIGN(const Shape want, output_shape(in.shape));
        if (out.shape != want)
            return make_error(Errc::shape_mismatch, "batch_norm: output shape: expected %s, found %s",
                              want.str().c_str(), out.shape.str().c_str());
        int64_t inner = 1;
        for (int i = 2; i < in.shape.rank(); ++i) inner *= in.shape[i];
        const int64_t c_count = channels(), planes = in.shape[0] * c_count;
        const int64_t w = static_cast<int64_t>(simd::width);
        const Activation act = params_.activation;
        parallel_for(planes, 2 * planes * inner, [&](int64_t p0, int64_t p1) {
            for (int64_t p = p0; p < p1; ++p) {
                const float s = scale_[p % c_count], t = shift_[p % c_count];
                const float* x = in.data + p * inner;
                float* y = out.data + p * inner;
                const simd::FloatBatch vs = simd::broadcast(s), vt = simd::broadcast(t);
                int64_t i = 0;
                for (; i + w <= inner; i += w) simd::store(y + i, act.apply(simd::fma(simd::load(x + i), vs, vt)));
                for (; i < inner; ++i) y[i] = act.apply(x[i] * s + t);
            }
        });
        return Status();
    }

private:
    BatchNormParams params_;
    std::vector<float> scale_, shift_;
};

// Weights of a layer after folding a following BatchNorm into it.
struct FoldedWeights {
    Tensor weight;
    Tensor bias;  // always present: [out_channels]
};

namespace detail {

// w'[..] = w[..] * scale[o], b' = b * scale + shift, where o is the output
// channel of each weight element; `out_channel_of(flat index)` says which.
template <class OutChannelOf>
inline Result<FoldedWeights> fold_batch_norm(const char* op, ConstTensorView weight, ConstTensorView bias,
                                             const BatchNormTensors& bn, double eps, int64_t out_channels,
                                             OutChannelOf out_channel_of) {
    std::vector<float> scale, shift;
    SALTED_TRY(batch_norm_scale_shift(op, bn, eps, out_channels, scale, shift));
    if (bias.data != nullptr && bias.shape != Shape{out_channels})
        return make_error(Errc::shape_mismatch, "%s: bias shape: expected [%lld], found %s", op,
                          static_cast<long long>(out_channels), bias.shape.str().c_str());
    FoldedWeights f;
    SALTED_ASSIGN(f.weight, Tensor::empty(weight.shape));
    SALTED_ASSIGN(f.bias, Tensor::empty(Shape{out_channels}));
    for (int64_t i = 0; i < weight.numel(); ++i) f.weight[i] = weight[i] * scale[out_channel_of(i)];
    for (int64_t o = 0; o < out_channels; ++o) {
        const float b = bias.data ? bias[o] : 0.0f;
        f.bias[o] = b * scale[o] + shift[o];
    }
    return f;
}

inline Status check_weight_rank(const char* op, ConstTensorView weight, int rank, const char* layout) {
    if (weight.data == nullptr)
        return make_error(Errc::invalid_argument, "%s: weight: expected a %s tensor, found none", op, layout);
    if (weight.shape.rank() != rank)
        return make_error(Errc::shape_mismatch, "%s: weight rank: expected %d (%s), found %d (shape %s)", op, rank,
                          layout, weight.shape.rank(), weight.shape.str().c_str());
    return weight.shape.validate();
}

}  // namespace detail

// conv2d followed by BatchNorm2d -> one conv2d. weight is PyTorch's
// [Cout, Cin/groups, kh, kw]; bias [Cout] or empty (a bias is produced).
// Equals torch.nn.utils.fusion.fuse_conv_bn_eval up to rounding.
inline Result<FoldedWeights> fold_batch_norm_into_conv(ConstTensorView weight, ConstTensorView bias,
                                                       const BatchNormTensors& bn, double eps = 1e-5) {
    const char* op = "fold_batch_norm_into_conv";
    SALTED_TRY(detail::check_weight_rank(op, weight, 4, "[Cout, Cin/groups, kh, kw]"));
    const int64_t per_out = weight.shape[1] * weight.shape[2] * weight.shape[3];
    return detail::fold_batch_norm(op, weight, bias, bn, eps, weight.shape[0],
                                   [per_out](int64_t i) { return i / per_out; });
}

// dense (nn.Linear) followed by BatchNorm1d -> one dense. weight [out, in].
inline Result<FoldedWeights> fold_batch_norm_into_dense(ConstTensorView weight, ConstTensorView bias,
                                                        const BatchNormTensors& bn, double eps = 1e-5) {
    const char* op = "fold_batch_norm_into_dense";
    SALTED_TRY(detail::check_weight_rank(op, weight, 2, "[out, in]"));
    const int64_t per_out = weight.shape[1];
    return detail::fold_batch_norm(op, weight, bias, bn, eps, weight.shape[0],
                                   [per_out](int64_t i) { return i / per_out; });
}

// conv_transpose2d followed by BatchNorm2d -> one conv_transpose2d. weight is
// PyTorch's [Cin, Cout/groups, kh, kw]: input channel ci of group
// g = ci / (Cin/groups) feeds output channels g*(Cout/groups) + [0, Cout/groups).
inline Result<FoldedWeights> fold_batch_norm_into_conv_transpose(ConstTensorView weight, ConstTensorView bias,
                                                                 const BatchNormTensors& bn, double eps = 1e-5,
                                                                 int64_t groups = 1) {
    const char* op = "fold_batch_norm_into_conv_transpose";
    SALTED_TRY(detail::check_weight_rank(op, weight, 4, "[Cin, Cout/groups, kh, kw]"));
    const int64_t cin = weight.shape[0], cout_per_group = weight.shape[1];
    if (groups < 1 || cin % groups != 0)
        return make_error(Errc::invalid_argument, "%s: groups: expected a divisor of Cin=%lld, found %lld", op,
                          static_cast<long long>(cin), static_cast<long long>(groups));
    const int64_t cin_per_group = cin / groups, kernel = weight.shape[2] * weight.shape[3];
    return detail::fold_batch_norm(op, weight, bias, bn, eps, groups * cout_per_group, [=](int64_t i) {
        const int64_t ci = i / (cout_per_group * kernel), co_local = (i / kernel) % cout_per_group;
        return (ci / cin_per_group) * cout_per_group + co_local;
    });
}

namespace ref {
// Scalar twin of BatchNorm::run: the textbook formula, per element.
inline Status batch_norm(const BatchNormParams& p, const BatchNormTensors& bn, ConstTensorView in, TensorView out) {
    if (in.shape.rank() < 2 || in.shape != out.shape || bn.running_mean.data == nullptr ||
        bn.running_var.data == nullptr || bn.running_mean.numel() != in.shape[1])
        return make_error(Errc::shape_mismatch, "batch_norm: shapes do not fit");
    int64_t inner = 1;
    for (int i = 2; i < in.shape.rank(); ++i) inner *= in.shape[i];
    const int64_t channels = in.shape[1];
    for (int64_t i = 0; i < in.numel(); ++i) {
        const int64_t c = (i / inner) % channels;
        const float g = bn.gamma.data ? bn.gamma[c] : 1.0f, b = bn.beta.data ? bn.beta[c] : 0.0f;
        const float y = static_cast<float>((in[i] - bn.running_mean[c]) / std::sqrt(bn.running_var[c] + p.eps)) * g + b;
        out[i] = p.activation.apply(y);
    }
    return Status();
}
}  // namespace ref

}  // namespace ops
}  // namespace salted
