// Layers with weights: conv2d, conv_transpose2d, dense, batch_norm. Each
// builder reads the node's attributes (docs/FORMAT.md, "Nodes"), checks that
// the weights fit them (the op's create() does), and wraps the op.
#pragma once

#include <utility>
#include <vector>

#include "salted/graph/layer.hpp"
#include "salted/ops/batch_norm.hpp"
#include "salted/ops/conv2d.hpp"
#include "salted/ops/conv_transpose2d.hpp"
#include "salted/ops/dense.hpp"

namespace salted {
namespace graph {

// Wraps a single-input op with the ops' standard members.
template <class Op>
class UnaryOpLayer final : public Layer {
public:
    explicit UnaryOpLayer(Op op) : op_(std::move(op)) {}
    Result<Shape> output_shape(const std::vector<Shape>& in) const override { return op_.output_shape(in[0]); }
    std::size_t workspace_floats(const std::vector<Shape>& in) const override { return op_.workspace_floats(in[0]); }
    int64_t flops(const std::vector<Shape>& in) const override { return op_.flops(in[0]); }
    Status run(const ConstTensorView* in, std::size_t, TensorView out, float* ws) const override {
        return op_.run(in[0], out, ws);
    }
    int64_t kernel_bytes() const override { return op_.kernel_bytes(); }

private:
    Op op_;
};

template <class Op>
inline Result<LayerPtr> wrap_op(const io::Node& n, Result<Op> op) {
    if (!op.ok()) return detail::in_node(n, op.error());
    return LayerPtr(new UnaryOpLayer<Op>(std::move(op).value()));
}

// A conv2d node's attributes as the op's parameters (salt folding reads them too).
inline Result<ops::Conv2dParams> conv2d_params(const io::Node& n) {
    const int64_t big = detail::attr_limit;
    ops::Conv2dParams p;
    SALTED_ASSIGN(p.in_channels, detail::attr_int_in(n, "in_channels", 1, big));
    SALTED_ASSIGN(p.out_channels, detail::attr_int_in(n, "out_channels", 1, big));
    SALTED_ASSIGN(auto kernel, detail::attr_ints_in(n, "kernel", 2, 1, big));
    SALTED_ASSIGN(auto stride, detail::attr_ints_in(n, "stride", 2, 1, big, {1, 1}));
    SALTED_ASSIGN(auto dilation, detail::attr_ints_in(n, "dilation", 2, 1, big, {1, 1}));
    SALTED_ASSIGN(auto pad, detail::attr_ints_in(n, "pad", 4, 0, big, {0, 0, 0, 0}));
    SALTED_ASSIGN(p.groups, detail::attr_int_in(n, "groups", 1, big, 1));
    SALTED_ASSIGN(p.activation, detail::attr_activation(n));
    p.kernel_h = kernel[0];
    p.kernel_w = kernel[1];
    p.stride_h = stride[0];
    p.stride_w = stride[1];
    p.dilation_h = dilation[0];
    p.dilation_w = dilation[1];
    p.pad_top = pad[0];
    p.pad_left = pad[1];
    p.pad_bottom = pad[2];
    p.pad_right = pad[3];
    return p;
}

// The input size a conv2d is told to expect (Conv2d::create): none when
// the model must be batch-invariant, as the kernels it would add run at some
// batch sizes only.
inline Shape conv2d_size_hint(const BuildContext& ctx, const Shape& input) {
    return ctx.batch_invariant ? Shape() : input;
}

inline Result<LayerPtr> build_conv2d(const io::Node& n, const BuildContext& ctx) {
    SALTED_ASSIGN(ops::Conv2dParams p, conv2d_params(n));
    SALTED_ASSIGN(ConstTensorView w, detail::required_weight(ctx, n, "weight"));
    SALTED_ASSIGN(ConstTensorView b, detail::optional_weight(ctx, n, "bias"));
    const bool known = ctx.input_shapes && !ctx.input_shapes->empty();
    return wrap_op(n, ops::Conv2d::create(p, w, b, conv2d_size_hint(ctx, known ? ctx.input_shapes->front() : Shape())));
}

inline Result<LayerPtr> build_conv_transpose2d(const io::Node& n, const BuildContext& ctx) {
    const int64_t big = detail::attr_limit;
    ops::ConvTranspose2dParams p;
    SALTED_ASSIGN(p.in_channels, detail::attr_int_in(n, "in_channels", 1, big));
    SALTED_ASSIGN(p.out_channels, detail::attr_int_in(n, "out_channels", 1, big));
    SALTED_ASSIGN(auto kernel, detail::attr_ints_in(n, "kernel", 2, 1, big));
    SALTED_ASSIGN(auto stride, detail::attr_ints_in(n, "stride", 2, 1, big, {1, 1}));
    SALTED_ASSIGN(auto padding, detail::attr_ints_in(n, "padding", 2, 0, big, {0, 0}));
    SALTED_ASSIGN(auto output_padding, detail::attr_ints_in(n, "output_padding", 2, 0, big, {0, 0}));
    SALTED_ASSIGN(auto dilation, detail::attr_ints_in(n, "dilation", 2, 1, big, {1, 1}));
    SALTED_ASSIGN(p.groups, detail::attr_int_in(n, "groups", 1, big, 1));
    SALTED_ASSIGN(p.activation, detail::attr_activation(n));
    p.kernel_h = kernel[0];
    p.kernel_w = kernel[1];
    p.stride_h = stride[0];
    p.stride_w = stride[1];
    p.pad_h = padding[0];
    p.pad_w = padding[1];
    p.output_padding_h = output_padding[0];
    p.output_padding_w = output_padding[1];
    p.dilation_h = dilation[0];
    p.dilation_w = dilation[1];
    SALTED_ASSIGN(ConstTensorView w, detail::required_weight(ctx, n, "weight"));
    SALTED_ASSIGN(ConstTensorView b, detail::optional_weight(ctx, n, "bias"));
    return wrap_op(n, ops::ConvTranspose2d::create(p, w, b));
}

inline Result<LayerPtr> build_dense(const io::Node& n, const BuildContext& ctx) {
    const int64_t big = detail::attr_limit;
    ops::DenseParams p;
    SALTED_ASSIGN(p.in_features, detail::attr_int_in(n, "in_features", 1, big));
    SALTED_ASSIGN(p.out_features, detail::attr_int_in(n, "out_features", 1, big));
    SALTED_ASSIGN(p.activation, detail::attr_activation(n));
    SALTED_ASSIGN(ConstTensorView w, detail::required_weight(ctx, n, "weight"));
    SALTED_ASSIGN(ConstTensorView b, detail::optional_weight(ctx, n, "bias"));
    return wrap_op(n, ops::Dense::create(p, w, b));
}

// The file stores an eval-mode BatchNorm already reduced to y = x * scale +
// shift. BatchNorm::create takes PyTorch's four vectors, so the affine is
// passed as gamma = scale, beta = shift, mean 0, var 1, eps 0: then
// invstd = 1 / sqrt(1) = 1 exactly and create() recovers scale and shift
// bit for bit (1 * g = g, b - 0 * g = b). Salt folding builds one over a
// part of a node's channels the same way.
inline Result<LayerPtr> batch_norm_layer(const io::Node& n, ConstTensorView scale, ConstTensorView shift,
                                         ops::Activation activation) {
    ops::BatchNormParams p;
    p.eps = 0.0;
    p.activation = activation;
    const std::size_t channels = static_cast<std::size_t>(scale.numel());
    std::vector<float> zeros(channels, 0.0f), ones(channels, 1.0f);
    ops::BatchNormTensors bn;
    bn.gamma = scale;
    bn.beta = shift;
    bn.running_mean = ConstTensorView(zeros.data(), scale.shape);
    bn.running_var = ConstTensorView(ones.data(), scale.shape);
    return wrap_op(n, ops::BatchNorm::create(p, bn));
}

inline Result<LayerPtr> build_batch_norm(const io::Node& n, const BuildContext& ctx) {
    SALTED_ASSIGN(int64_t channels, detail::attr_int_in(n, "channels", 1, detail::attr_limit));
    SALTED_ASSIGN(ops::Activation activation, detail::attr_activation(n));
    SALTED_ASSIGN(ConstTensorView scale, detail::required_weight(ctx, n, "scale"));
    SALTED_ASSIGN(ConstTensorView shift, detail::required_weight(ctx, n, "shift"));
    const Shape want{channels};
    if (scale.shape != want || shift.shape != want)
        return make_error(Errc::shape_mismatch,
                          "model: node '%.80s' (batch_norm): scale and shift: expected shape %s (channels), "
                          "found %s and %s",
                          n.name.c_str(), want.str().c_str(), scale.shape.str().c_str(), shift.shape.str().c_str());
    return batch_norm_layer(n, scale, shift, activation);
}

}  // namespace graph
}  // namespace salted
