// Layers without weights: pooling, pointwise activations, add, concat, pad,
// flatten, softmax. The ops are free functions; each layer keeps its
// parameters and calls them.
#pragma once

#include <utility>

#include "salted/graph/layer.hpp"
#include "salted/ops/activation.hpp"
#include "salted/ops/add.hpp"
#include "salted/ops/concat.hpp"
#include "salted/ops/flatten.hpp"
#include "salted/ops/pad.hpp"
#include "salted/ops/pool.hpp"
#include "salted/ops/softmax.hpp"

namespace salted {
namespace graph {

class PoolLayer final : public Layer {
public:
    enum class Kind { max, avg, global_avg };
    PoolLayer(Kind kind, const ops::Pool2dParams& p) : kind_(kind), p_(p) {}
    Result<Shape> output_shape(const std::vector<Shape>& in) const override {
        switch (kind_) {
            case Kind::max: return ops::max_pool2d_output_shape(p_, in[0]);
            case Kind::avg: return ops::avg_pool2d_output_shape(p_, in[0]);
            case Kind::global_avg: break;
        }
        return ops::global_avg_pool_output_shape(in[0]);
    }
    int64_t flops(const std::vector<Shape>& in) const override {
        if (kind_ == Kind::global_avg) return in[0].numel();
        auto os = output_shape(in);
        return os.ok() ? os->numel() * p_.kernel_h * p_.kernel_w : 0;
    }
    Status run(const ConstTensorView* in, std::size_t, TensorView out, float*) const override {
        switch (kind_) {
            case Kind::max: return ops::max_pool2d(p_, in[0], out);
            case Kind::avg: return ops::avg_pool2d(p_, in[0], out);
            case Kind::global_avg: break;
        }
        return ops::global_avg_pool(in[0], out);
    }

private:
    Kind kind_;
    ops::Pool2dParams p_;
};

inline Result<LayerPtr> build_pool(const io::Node& n, PoolLayer::Kind kind) {
    const int64_t big = detail::attr_limit;
    ops::Pool2dParams p;
    SALTED_ASSIGN(auto kernel, detail::attr_ints_in(n, "kernel", 2, 1, big));
    SALTED_ASSIGN(auto stride, detail::attr_ints_in(n, "stride", 2, 1, big, kernel));
    SALTED_ASSIGN(auto pad, detail::attr_ints_in(n, "pad", 4, 0, big, {0, 0, 0, 0}));
    SALTED_ASSIGN(p.ceil_mode, n.attr_bool("ceil_mode", false));
    p.kernel_h = kernel[0];
    p.kernel_w = kernel[1];
    p.stride_h = stride[0];
    p.stride_w = stride[1];
    p.pad_top = pad[0];
    p.pad_left = pad[1];
    p.pad_bottom = pad[2];
    p.pad_right = pad[3];
    if (kind == PoolLayer::Kind::max) {
        SALTED_ASSIGN(auto dilation, detail::attr_ints_in(n, "dilation", 2, 1, big, {1, 1}));
        p.dilation_h = dilation[0];
        p.dilation_w = dilation[1];
    } else {
        // The format's default (and numpy_runtime's): padding not counted.
        SALTED_ASSIGN(p.count_include_pad, n.attr_bool("count_include_pad", false));
    }
    // Probe the parameters now, so a bad node fails at load and not at run.
    auto probe = ops::detail::validate_pool_params(kind == PoolLayer::Kind::max ? "max_pool2d" : "avg_pool2d", p,
                                                   kind == PoolLayer::Kind::max);
    if (!probe.ok()) return detail::in_node(n, probe.error());
    return LayerPtr(new PoolLayer(kind, p));
}

inline Result<LayerPtr> build_global_avg_pool(const io::Node&) {
    return LayerPtr(new PoolLayer(PoolLayer::Kind::global_avg, ops::Pool2dParams()));
}

// relu / leaky_relu nodes (when not fused into the producer).
class ActivationLayer final : public Layer {
public:
    explicit ActivationLayer(ops::Activation act) : act_(act) {}
    Result<Shape> output_shape(const std::vector<Shape>& in) const override {
        SALTED_TRY(in[0].validate());
        return in[0];
    }
    int64_t flops(const std::vector<Shape>& in) const override { return in[0].numel(); }
    Status run(const ConstTensorView* in, std::size_t, TensorView out, float*) const override {
        return ops::activation(act_, in[0], out);
    }

private:
    ops::Activation act_;
};

inline Result<LayerPtr> build_relu(const io::Node&) { return LayerPtr(new ActivationLayer(ops::Activation::relu())); }

inline Result<LayerPtr> build_leaky_relu(const io::Node& n) {
    SALTED_ASSIGN(double slope, n.attr_float("negative_slope", 0.01));
    if (!(slope == slope) || slope > 1e30 || slope < -1e30)
        return make_error(Errc::invalid_argument,
                          "model: node '%.80s' (leaky_relu): attribute 'negative_slope': expected a finite number",
                          n.name.c_str());
    return LayerPtr(new ActivationLayer(ops::Activation::leaky_relu(static_cast<float>(slope))));
}

class AddLayer final : public Layer {
public:
    explicit AddLayer(ops::Activation act) : act_(act) {}
    Result<Shape> output_shape(const std::vector<Shape>& in) const override {
        return ops::add_output_shape(in[0], in[1]);
    }
    int64_t flops(const std::vector<Shape>& in) const override { return in[0].numel(); }
    Status run(const ConstTensorView* in, std::size_t, TensorView out, float*) const override {
        return ops::add(in[0], in[1], out, act_);
    }

private:
    ops::Activation act_;
};

inline Result<LayerPtr> build_add(const io::Node& n) {
    SALTED_ASSIGN(ops::Activation act, detail::attr_activation(n));
    return LayerPtr(new AddLayer(act));
}

class ConcatLayer final : public Layer {
public:
    explicit ConcatLayer(int axis) : axis_(axis) {}
    Result<Shape> output_shape(const std::vector<Shape>& in) const override {
        return ops::concat_output_shape(in, axis_);
    }
    Status run(const ConstTensorView* in, std::size_t count, TensorView out, float*) const override {
        return ops::concat(in, count, out, axis_);
    }

private:
    int axis_;
};

inline Result<LayerPtr> build_concat(const io::Node& n) {
    SALTED_ASSIGN(int64_t axis, detail::attr_int_in(n, "axis", 1, Shape::max_rank - 1));
    return LayerPtr(new ConcatLayer(static_cast<int>(axis)));
}

class PadLayer final : public Layer {
public:
    explicit PadLayer(const ops::Pad2dParams& p) : p_(p) {}
    Result<Shape> output_shape(const std::vector<Shape>& in) const override {
        return ops::pad2d_output_shape(p_, in[0]);
    }
    Status run(const ConstTensorView* in, std::size_t, TensorView out, float*) const override {
        return ops::pad2d(p_, in[0], out);
    }

private:
    ops::Pad2dParams p_;
};

inline Result<LayerPtr> build_pad(const io::Node& n) {
    SALTED_ASSIGN(auto pads, detail::attr_ints_in(n, "pads", 4, 0, detail::attr_limit));
    SALTED_ASSIGN(double value, n.attr_float("value", 0.0));
    ops::Pad2dParams p;
    p.top = pads[0];
    p.left = pads[1];
    p.bottom = pads[2];
    p.right = pads[3];
    p.value = static_cast<float>(value);
    return LayerPtr(new PadLayer(p));
}

class FlattenLayer final : public Layer {
public:
    explicit FlattenLayer(int axis) : axis_(axis) {}
    Result<Shape> output_shape(const std::vector<Shape>& in) const override {
        return ops::flatten_output_shape(in[0], axis_);
    }
    Status run(const ConstTensorView* in, std::size_t, TensorView out, float*) const override {
        return ops::flatten(in[0], out, axis_);
    }

private:
    int axis_;
};

inline Result<LayerPtr> build_flatten(const io::Node& n) {
    // Axis 0 would fold the batch into the features; the runtime keeps the batch first.
    SALTED_ASSIGN(int64_t axis, detail::attr_int_in(n, "axis", 1, Shape::max_rank - 1, 1));
    return LayerPtr(new FlattenLayer(static_cast<int>(axis)));
}

class SoftmaxLayer final : public Layer {
public:
    explicit SoftmaxLayer(int axis) : axis_(axis) {}
    Result<Shape> output_shape(const std::vector<Shape>& in) const override {
        return ops::softmax_output_shape(in[0], axis_);
    }
    int64_t flops(const std::vector<Shape>& in) const override { return 3 * in[0].numel(); }
    Status run(const ConstTensorView* in, std::size_t, TensorView out, float*) const override {
        return ops::softmax(in[0], out, axis_);
    }

private:
    int axis_;
};

inline Result<LayerPtr> build_softmax(const io::Node& n) {
    SALTED_ASSIGN(int64_t axis, detail::attr_int_in(n, "axis", 1, Shape::max_rank - 1));
    return LayerPtr(new SoftmaxLayer(static_cast<int>(axis)));
}

}  // namespace graph
}  // namespace salted
