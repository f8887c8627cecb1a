// 2-D transposed convolution (nn.ConvTranspose2d), NCHW float32, with
// PyTorch's semantics: weight [Cin, Cout/groups, kh, kw], symmetric padding,
// output_padding, dilation, groups; an optional fused activation.
//
// In salted it computes the CNN salt maps (in=1, kernel = the feature-map
// size, on a 1x1 input), so it is tiny; it is written for clarity, on the
// shared GEMM: per image and group, cols[Cout_g*kh*kw x H*W] = W_g^T * X_g,
// then col2im scatters each column back to the output pixels it touches.
#pragma once

#include <cinttypes>
#include <cstdint>

#include "salted/core/parallel.hpp"
#include "salted/core/result.hpp"
#include "salted/core/tensor.hpp"
#include "salted/kernels/gemm.hpp"
#include "salted/ops/activation.hpp"
#include "salted/ops/op_checks.hpp"

namespace salted {
namespace ops {

struct ConvTranspose2dParams {
    int64_t in_channels = 0;
    int64_t out_channels = 0;
    int64_t kernel_h = 1, kernel_w = 1;
    int64_t stride_h = 1, stride_w = 1;
    int64_t pad_h = 0, pad_w = 0;  // removed from each side, as in PyTorch
    int64_t output_padding_h = 0, output_padding_w = 0;  // added to the bottom/right
    int64_t dilation_h = 1, dilation_w = 1;
    int64_t groups = 1;
    Activation activation;  // applied after the bias
};

namespace detail {

inline Status validate_conv_transpose2d(const ConvTranspose2dParams& p) {
    const char* op = "conv_transpose2d";
    SALTED_TRY(check_param(op, "in_channels", p.in_channels, 1));
    SALTED_TRY(check_param(op, "out_channels", p.out_channels, 1));
    SALTED_TRY(check_param(op, "kernel_h", p.kernel_h, 1));
    SALTED_TRY(check_param(op, "kernel_w", p.kernel_w, 1));
    SALTED_TRY(check_param(op, "stride_h", p.stride_h, 1));
    SALTED_TRY(check_param(op, "stride_w", p.stride_w, 1));
    SALTED_TRY(check_param(op, "dilation_h", p.dilation_h, 1));
    SALTED_TRY(check_param(op, "dilation_w", p.dilation_w, 1));
    SALTED_TRY(check_param(op, "pad_h", p.pad_h, 0));
    SALTED_TRY(check_param(op, "pad_w", p.pad_w, 0));
    SALTED_TRY(check_param(op, "output_padding_h", p.output_padding_h, 0));
    SALTED_TRY(check_param(op, "output_padding_w", p.output_padding_w, 0));
    // PyTorch: "output padding must be smaller than either stride or dilation".
    if (p.output_padding_h >= p.stride_h && p.output_padding_h >= p.dilation_h)
        return make_error(Errc::invalid_argument, "%s: output_padding_h: expected < stride_h=%" PRId64
                          " or < dilation_h=%" PRId64 ", found %" PRId64, op, p.stride_h, p.dilation_h,
                          p.output_padding_h);
    if (p.output_padding_w >= p.stride_w && p.output_padding_w >= p.dilation_w)
        return make_error(Errc::invalid_argument, "%s: output_padding_w: expected < stride_w=%" PRId64
                          " or < dilation_w=%" PRId64 ", found %" PRId64, op, p.stride_w, p.dilation_w,
                          p.output_padding_w);
    SALTED_TRY(check_groups(op, p.in_channels, p.out_channels, p.groups));
    return p.activation.validate(op);
}

// (in - 1) * stride - 2 * pad + dilation * (kernel - 1) + output_padding + 1, >= 1.
inline Result<int64_t> conv_transpose_out_size(const char* field, int64_t in, int64_t stride, int64_t pad,
                                               int64_t kernel, int64_t dilation, int64_t output_padding) {
    if (in - 1 > (int64_t(1) << 40) / stride)
        return make_error(Errc::shape_mismatch, "conv_transpose2d: %s: expected at most 2^40, found (%" PRId64
                          " - 1) * %" PRId64, field, in, stride);
    const int64_t out = (in - 1) * stride - 2 * pad + dilation * (kernel - 1) + output_padding + 1;
    if (out < 1)
        return make_error(Errc::shape_mismatch, "conv_transpose2d: %s: expected >= 1, found %" PRId64
                          " (padding %" PRId64 " removes more than the output has)", field, out, pad);
    return out;
}

inline Result<Shape> conv_transpose2d_output_shape(const ConvTranspose2dParams& p, const Shape& in) {
    SALTED_TRY(check_nchw_input("conv_transpose2d", in, p.in_channels));
    SALTED_ASSIGN(int64_t ho, conv_transpose_out_size("output height", in[2], p.stride_h, p.pad_h, p.kernel_h,
                                                      p.dilation_h, p.output_padding_h));
    SALTED_ASSIGN(int64_t wo, conv_transpose_out_size("output width", in[3], p.stride_w, p.pad_w, p.kernel_w,
                                                      p.dilation_w, p.output_padding_w));
    Shape os({in[0], p.out_channels, ho, wo});
    SALTED_TRY(os.validate());
    return os;
}

}  // namespace detail

class ConvTranspose2d {
public:
    static Result<ConvTranspose2d> create(const ConvTranspose2dParams& p, ConstTensorView weight,
                                          ConstTensorView bias) {
        SALTED_TRY(detail::validate_conv_transpose2d(p));
        const int64_t cin_g = p.in_channels / p.groups, cout_g = p.out_channels / p.groups;
        SALTED_TRY(detail::check_weight_bias("conv_transpose2d", weight,
                                             Shape({p.in_channels, cout_g, p.kernel_h, p.kernel_w}), bias,
                                             p.out_channels));
        ConvTranspose2d c;
        c.p_ = p;
        c.rows_ = cout_g * p.kernel_h * p.kernel_w;
        c.group_stride_ = kernels::gemm_packed_a_floats(c.rows_, cin_g);
        SALTED_ASSIGN(c.packed_, Tensor::empty(Shape({p.groups, c.group_stride_})));
        // A = W_g^T: A(r, ci) = weight[g * cin_g + ci][r], r = (co * kh + ky) * kw + kx.
        for (int64_t g = 0; g < p.groups; ++g)
            kernels::gemm_pack_a(c.rows_, cin_g, weight.data + g * cin_g * c.rows_, 1, c.rows_,
                                 c.packed_.data() + g * c.group_stride_);
        if (bias.data) {
            SALTED_ASSIGN(c.bias_, Tensor::copy_of(bias));
        }
        return c;
    }

    const ConvTranspose2dParams& params() const { return p_; }

    Result<Shape> output_shape(const Shape& input) const { return detail::conv_transpose2d_output_shape(p_, input); }

    // The column matrix of one image and group, then the GEMM's B block.
    std::size_t workspace_floats(const Shape& input) const {
        if (!output_shape(input).ok()) return 0;
        const int64_t pixels = input[2] * input[3];
        return static_cast<std::size_t>(rows_ * pixels +
                                        kernels::gemm_b_workspace_floats(p_.in_channels / p_.groups, pixels));
    }

    int64_t flops(const Shape& input) const {
        if (!output_shape(input).ok()) return 0;
        return 2 * input.numel() * rows_;
    }

    // Bytes of the packed weights and the bias.
    int64_t kernel_bytes() const { return (packed_.numel() + bias_.numel()) * static_cast<int64_t>(sizeof(float)); }

    Status run(ConstTensorView in, TensorView out, float* workspace) const {
        SALTED_ASSIGN(Shape os, output_shape(in.shape));
        SALTED_TRY(detail::check_run("conv_transpose2d", in, out, os));
        if (!workspace)
            return make_error(Errc::invalid_argument, "conv_transpose2d: workspace: expected %zu floats, found null",
                              workspace_floats(in.shape));
        const int64_t H = in.shape[2], W = in.shape[3], Ho = os[2], Wo = os[3], pixels = H * W;
        const int64_t cin_g = p_.in_channels / p_.groups, cout_g = p_.out_channels / p_.groups;
        const int64_t kh = p_.kernel_h, kw = p_.kernel_w;
        float* cols = workspace;
        float* b_work = workspace + rows_ * pixels;
        for (int64_t n = 0; n < in.shape[0]; ++n)
            for (int64_t g = 0; g < p_.groups; ++g) {
                kernels::MatrixB src;
                src.b = in.data + (n * p_.in_channels + g * cin_g) * pixels;
                src.k = cin_g;
                src.rs = pixels;
                src.cs = 1;
                kernels::gemm_blocked(rows_, pixels, cin_g, packed_.data() + g * group_stride_, src, b_work, cols,
                                      pixels, kernels::GemmEpilogue::none(), false);
                // col2im: output channels are independent, so split over them.
                float* y = out.data + (n * p_.out_channels + g * cout_g) * Ho * Wo;
                parallel_for(cout_g, 2 * rows_ * pixels, [&](int64_t c0, int64_t c1) {
                    for (int64_t co = c0; co < c1; ++co) {
                        float* plane = y + co * Ho * Wo;
                        const float b = bias_.data() ? bias_.data()[g * cout_g + co] : 0.0f;
                        std::fill(plane, plane + Ho * Wo, b);
                        for (int64_t ky = 0; ky < kh; ++ky)
                            for (int64_t kx = 0; kx < kw; ++kx) {
                                const float* col = cols + ((co * kh + ky) * kw + kx) * pixels;
                                for (int64_t iy = 0; iy < H; ++iy) {
                                    const int64_t oy = iy * p_.stride_h - p_.pad_h + ky * p_.dilation_h;
                                    if (oy < 0 || oy >= Ho) continue;
                                    float* orow = plane + oy * Wo;
                                    const float* crow = col + iy * W;
                                    for (int64_t ix = 0; ix < W; ++ix) {
                                        const int64_t ox = ix * p_.stride_w - p_.pad_w + kx * p_.dilation_w;
                                        if (ox >= 0 && ox < Wo) orow[ox] += crow[ix];
                                    }
                                }
                            }
                        apply_activation_inplace(p_.activation, plane, Ho * Wo);
                    }
                });
            }
        return Status();
    }

private:
    ConvTranspose2dParams p_;
    int64_t rows_ = 0;          // GEMM rows: Cout_g * kh * kw
    int64_t group_stride_ = 0;  // floats of packed weights per group
    Tensor packed_;             // per group: W_g^T as packed A panels
    Tensor bias_;               // empty storage when there is no bias
};

namespace ref {
// Scalar twin of ConvTranspose2d::run, straight from the definition: every
// input pixel scatters its kernel-weighted value onto the output.
inline Status conv_transpose2d(const ConvTranspose2dParams& p, ConstTensorView in, ConstTensorView weight,
                               ConstTensorView bias, TensorView out) {
    SALTED_TRY(detail::validate_conv_transpose2d(p));
    const int64_t cin_g = p.in_channels / p.groups, cout_g = p.out_channels / p.groups;
    SALTED_TRY(detail::check_weight_bias("conv_transpose2d", weight,
                                         Shape({p.in_channels, cout_g, p.kernel_h, p.kernel_w}), bias,
                                         p.out_channels));
    SALTED_ASSIGN(Shape os, detail::conv_transpose2d_output_shape(p, in.shape));
    SALTED_TRY(detail::check_run("conv_transpose2d", in, out, os));
    const int64_t H = in.shape[2], W = in.shape[3], Ho = os[2], Wo = os[3];
    for (int64_t n = 0; n < os[0]; ++n)
        for (int64_t co = 0; co < p.out_channels; ++co)
            for (int64_t i = 0; i < Ho * Wo; ++i)
                out.data[(n * p.out_channels + co) * Ho * Wo + i] = bias.data ? bias.data[co] : 0.0f;
    for (int64_t n = 0; n < os[0]; ++n)
        for (int64_t ci = 0; ci < p.in_channels; ++ci) {
            const int64_t g = ci / cin_g;
            for (int64_t iy = 0; iy < H; ++iy)
                for (int64_t ix = 0; ix < W; ++ix) {
                    const float x = in.data[((n * p.in_channels + ci) * H + iy) * W + ix];
                    for (int64_t co = 0; co < cout_g; ++co)
                        for (int64_t ky = 0; ky < p.kernel_h; ++ky)
                            for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
                                const int64_t oy = iy * p.stride_h - p.pad_h + ky * p.dilation_h;
                                const int64_t ox = ix * p.stride_w - p.pad_w + kx * p.dilation_w;
                                if (oy < 0 || oy >= Ho || ox < 0 || ox >= Wo) continue;
                                out.data[((n * p.out_channels + g * cout_g + co) * Ho + oy) * Wo + ox] +=
                                    x * weight.data[((ci * cout_g + co) * p.kernel_h + ky) * p.kernel_w + kx];
                            }
                }
        }
    for (int64_t i = 0; i < os.numel(); ++i) out.data[i] = p.activation.apply(out.data[i]);
    return Status();
}
}  // namespace ref

}  // namespace ops
}  // namespace salted
