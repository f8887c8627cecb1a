// The salted layers as graph nodes: cnn_salt_concat (activations + the salt
// maps of integer salts) and fc_salt_concat (features + the client's salt
// vector). In the graph the integer salt is a float tensor [N, 1, 1, 1], as
// in the PyTorch model and the file's test vector; the layer checks that each
// value is an integer in [0, C) before it becomes a salt.
#pragma once

#include <cmath>
#include <utility>

#include "salted/graph/layer.hpp"
#include "salted/ops/salt_layers.hpp"

namespace salted {
namespace graph {

class CnnSaltLayer final : public Layer {
public:
    explicit CnnSaltLayer(ops::CnnSalt op) : op_(std::move(op)) {}
    Result<Shape> output_shape(const std::vector<Shape>& in) const override { return shape_of(in[0], in[1]); }
    int64_t flops(const std::vector<Shape>& in) const override { return op_.flops(in[0].rank() ? in[0][0] : 0); }
    int64_t kernel_bytes() const override { return op_.kernel_bytes(); }
    Status run(const ConstTensorView* in, std::size_t, TensorView out, float*) const override {
        SALTED_ASSIGN(const Shape want, shape_of(in[0].shape, in[1].shape));
        if (out.shape != want)
            return make_error(Errc::shape_mismatch, "cnn_salt_concat: output shape: expected %s, found %s",
                              want.str().c_str(), out.shape.str().c_str());
        // One sample at a time: the op wants int64 salts, and converting the
        // whole batch first would need a buffer run() does not have.
        const int64_t batch = want[0];
        const int64_t in_block = in[0].numel() / batch, out_block = want.numel() / batch;
        Shape in_one = in[0].shape, out_one = want;
        in_one[0] = 1;
        out_one[0] = 1;
        const int64_t classes = op_.params().num_classes;
        for (int64_t n = 0; n < batch; ++n) {
            const float v = in[1].data[n];
            if (!(v >= 0.0f && v < static_cast<float>(classes) && std::floor(v) == v))
                return make_error(Errc::out_of_range, "cnn_salt_concat: salt[%lld]: expected an integer in 0..%lld, "
                                  "found %g", static_cast<long long>(n), static_cast<long long>(classes - 1),
                                  static_cast<double>(v));
            const int64_t s = static_cast<int64_t>(v);
            SALTED_TRY(op_.concat(ConstTensorView(in[0].data + n * in_block, in_one), &s, 1,
                                  TensorView(out.data + n * out_block, out_one)));
        }
        return Status();
    }

private:
    Result<Shape> shape_of(const Shape& act, const Shape& s) const {
        if (s.rank() != 4 || s[1] != 1 || s[2] != 1 || s[3] != 1 || act.rank() < 1 || s[0] != act[0])
            return make_error(Errc::shape_mismatch, "cnn_salt_concat: salt shape: expected [%lld, 1, 1, 1], found %s",
                              static_cast<long long>(act.rank() ? act[0] : 0), s.str().c_str());
        return op_.concat_output_shape(act);
    }

    ops::CnnSalt op_;
};

// A cnn_salt_concat node's salt-map op (salt folding builds its own copy).
inline Result<ops::CnnSalt> cnn_salt_op(const io::Node& n, const BuildContext& ctx) {
    ops::CnnSaltParams p;
    SALTED_ASSIGN(p.maps, detail::attr_int_in(n, "maps", 1, int64_t(1) << 20));
    SALTED_ASSIGN(auto size, detail::attr_ints_in(n, "size", 2, 1, int64_t(1) << 20));
    SALTED_ASSIGN(bool salt_first, n.attr_bool("salt_first", false));
    p.height = size[0];
    p.width = size[1];
    p.num_classes = ctx.file->salt().classes;
    p.order = salt_first ? ops::SaltOrder::salt_first : ops::SaltOrder::activations_first;
    if (p.num_classes < 1)
        return make_error(Errc::invalid_argument,
                          "model: node '%.80s' (cnn_salt_concat): salt.classes: expected >= 1 (a salted model), "
                          "found %lld", n.name.c_str(), static_cast<long long>(p.num_classes));
    SALTED_ASSIGN(ConstTensorView w, detail::required_weight(ctx, n, "weight"));
    SALTED_ASSIGN(ConstTensorView b, detail::optional_weight(ctx, n, "bias"));
    auto op = ops::CnnSalt::create(p, w, b);
    if (!op.ok()) return detail::in_node(n, op.error());
    return op;
}

inline Result<LayerPtr> build_cnn_salt_concat(const io::Node& n, const BuildContext& ctx) {
    SALTED_ASSIGN(ops::CnnSalt op, cnn_salt_op(n, ctx));
    return LayerPtr(new CnnSaltLayer(std::move(op)));
}

class FcSaltLayer final : public Layer {
public:
    FcSaltLayer(int64_t classes, ops::SaltOrder order) : classes_(classes), order_(order) {}
    Result<Shape> output_shape(const std::vector<Shape>& in) const override {
        if (in[1].rank() == 2 && in[1][1] != classes_)
            return make_error(Errc::shape_mismatch, "fc_salt_concat: salt vector width: expected %lld (classes), "
                              "found %lld", static_cast<long long>(classes_), static_cast<long long>(in[1][1]));
        return ops::fc_salt_concat_output_shape(in[0], in[1]);
    }
    Status run(const ConstTensorView* in, std::size_t, TensorView out, float*) const override {
        return ops::fc_salt_concat(in[0], in[1], out, order_);
    }

private:
    int64_t classes_;
    ops::SaltOrder order_;
};

inline Result<LayerPtr> build_fc_salt_concat(const io::Node& n) {
    SALTED_ASSIGN(int64_t classes, detail::attr_int_in(n, "classes", 1, detail::attr_limit));
    SALTED_ASSIGN(bool salt_first, n.attr_bool("salt_first", false));
    return LayerPtr(
        new FcSaltLayer(classes, salt_first ? ops::SaltOrder::salt_first : ops::SaltOrder::activations_first));
}

}  // namespace graph
}  // namespace salted
