// Salt folding: the CNN salt concat and the convolutions that read it become
// convolutions over the activations plus a per-salt table.
//
// Why: the salt maps depend on the salt s alone, and there are only C salts.
// Convolution is linear in its input channels, so
//   conv(cat(a, maps(s))) = conv_a(a) + [conv_salt(maps(s)) + bias]
// and the bracket is a fixed [Cout, Ho, Wo] tensor for each s (it varies over
// the image because of the maps' shape and the zero padding). Precomputing
// those C tensors at load time removes the concat (a copy of every
// activation) and the salt channels' share of the convolution: a salted
// model then costs what a standard one does, plus one add per output.
//
// A per-channel node between the concat and the convs keeps this true: in
// WideResNet the concat feeds a BatchNorm-ReLU, whose output feeds both the
// block's 3x3 conv and its 1x1 shortcut. BN-ReLU acts on each channel alone,
// so its salt channels are act(maps(s) * scale + shift), again a function of
// s alone: the BN then runs on the activation channels only, and each conv
// gets its own table built from the transformed maps.
//
// The table entries are summed in double and rounded once, and the conv over
// the activations is the same GEMM as before, so the folded layer matches
// PyTorch within the parity tolerance but not bit for bit: the float sums run
// in a different order. The maps themselves come from ops::CnnSalt, exactly
// as PyTorch rounds them.
//
// Folded only when every reader is a groups-1 conv (directly, or behind one
// batch_norm that is the concat's only reader), and the tables stay small.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "salted/graph/layer.hpp"
#include "salted/graph/layers_compute.hpp"
#include "salted/graph/layers_salt.hpp"

namespace salted {
namespace graph {

// Tables above this many floats (C x Cout x Ho x Wo) are not worth the memory.
constexpr int64_t salt_fold_max_table_floats = int64_t(1) << 22;  // 16 MiB

class SaltFoldedConvLayer final : public Layer {
public:
    SaltFoldedConvLayer(ops::Conv2d conv, Tensor table, ops::Activation act, int64_t classes)
        : conv_(std::move(conv)), table_(std::move(table)), act_(act), classes_(classes) {}

    // inputs: the activations (what the concat took first) and the salt [N,1,1,1].
    Result<Shape> output_shape(const std::vector<Shape>& in) const override { return conv_.output_shape(in[0]); }
    std::size_t workspace_floats(const std::vector<Shape>& in) const override { return conv_.workspace_floats(in[0]); }
    int64_t flops(const std::vector<Shape>& in) const override {
        auto os = conv_.output_shape(in[0]);
        return conv_.flops(in[0]) + (os.ok() ? os->numel() : 0);
    }

    int64_t kernel_bytes() const override {
        return conv_.kernel_bytes() + table_.numel() * static_cast<int64_t>(sizeof(float));
    }

    Status run(const ConstTensorView* in, std::size_t, TensorView out, float* workspace) const override {
        const int64_t batch = out.shape.rank() ? out.shape[0] : 0;
        if (in[1].numel() != batch)
            return make_error(Errc::shape_mismatch, "salt-folded conv2d: salts: expected %lld, found %lld",
                              static_cast<long long>(batch), static_cast<long long>(in[1].numel()));
        for (int64_t n = 0; n < batch; ++n) {  // checked before any work, as the concat does
            const float v = in[1].data[n];
            if (!(v >= 0.0f && v < static_cast<float>(classes_) && std::floor(v) == v))
                return make_error(Errc::out_of_range, "cnn_salt_concat: salt[%lld]: expected an integer in 0..%lld, "
                                  "found %g", static_cast<long long>(n), static_cast<long long>(classes_ - 1),
                                  static_cast<double>(v));
        }
        SALTED_TRY(conv_.run(in[0], out, workspace));
        const int64_t per_item = out.numel() / batch;
        const int64_t w = static_cast<int64_t>(simd::width);
        for (int64_t n = 0; n < batch; ++n) {
            float* y = out.data + n * per_item;
            const float* t = table_.data() + static_cast<int64_t>(in[1].data[n]) * per_item;
            int64_t i = 0;
            for (; i + w <= per_item; i += w)
                simd::store(y + i, act_.apply(simd::load(y + i) + simd::load(t + i)));
            for (; i < per_item; ++i) y[i] = act_.apply(y[i] + t[i]);
        }
        return Status();
    }

private:
    ops::Conv2d conv_;  // over the activation channels; no bias, no activation
    Tensor table_;      // [classes, Cout, Ho, Wo]: salt channels' conv + bias
    ops::Activation act_;
    int64_t classes_;
};

// What a per-channel node between the concat and the convs does to the salt
// maps: map j becomes act(x * scale[j] + shift[j]).
struct SaltMapsAffine {
    std::vector<float> scale, shift;  // one per salt map
    ops::Activation act;
};

namespace detail {

// Where the concat puts the activations and the salt maps among its channels.
struct SaltChannels {
    int64_t first_act = 0, first_salt = 0;
};
inline SaltChannels salt_channels(const ops::CnnSaltParams& sp, int64_t activation_channels) {
    const bool salt_first = sp.order == ops::SaltOrder::salt_first;
    return SaltChannels{salt_first ? sp.maps : 0, salt_first ? 0 : activation_channels};
}

// The conv's weights without the salt's input channels: [Cout, Ca, kh, kw].
inline std::vector<float> activation_weights(ConstTensorView w, int64_t ca, int64_t first_act) {
    const int64_t cout = w.shape[0], cin = w.shape[1], area = w.shape[2] * w.shape[3];
    std::vector<float> out(static_cast<std::size_t>(cout * ca * area));
    for (int64_t co = 0; co < cout; ++co)
        std::memcpy(out.data() + co * ca * area, w.data + (co * cin + first_act) * area,
                    static_cast<std::size_t>(ca * area) * sizeof(float));
    return out;
}

}  // namespace detail

// Builds the folded layer for `concat` (a cnn_salt_concat node) feeding
// `conv_node` (a conv2d the caller checked reads only the concat's output,
// or the output of the per-channel node `through` reading it), with
// activations of per-item shape `act_shape` [1, Ca, H, W]. Returns null (and
// no error) when the pair does not qualify.
inline Result<LayerPtr> fold_salt_into_conv(const io::Node& concat, const io::Node& conv_node,
                                            const BuildContext& ctx, const Shape& act_shape,
                                            const SaltMapsAffine* through = nullptr) {
    if (concat.op != "cnn_salt_concat" || conv_node.op != "conv2d" || act_shape.rank() != 4) return LayerPtr();
    SALTED_ASSIGN(ops::CnnSalt salt, cnn_salt_op(concat, ctx));
    SALTED_ASSIGN(ops::Conv2dParams p, conv2d_params(conv_node));
    const ops::CnnSaltParams& sp = salt.params();
    const int64_t ca = act_shape[1], k = sp.maps;
    if (p.groups != 1 || p.in_channels != ca + k) return LayerPtr();
    if (through && static_cast<int64_t>(through->scale.size()) != k) return LayerPtr();
    SALTED_ASSIGN(ConstTensorView w, detail::required_weight(ctx, conv_node, "weight"));
    SALTED_ASSIGN(ConstTensorView b, detail::optional_weight(ctx, conv_node, "bias"));
    SALTED_ASSIGN(Shape out_shape, ops::detail::conv2d_output_shape(p, Shape({1, ca + k, act_shape[2], act_shape[3]})));
    const int64_t per_salt = out_shape.numel();
    if (sp.num_classes * per_salt > salt_fold_max_table_floats) return LayerPtr();

    const detail::SaltChannels where = detail::salt_channels(sp, ca);
    ops::Conv2dParams pa = p;
    pa.in_channels = ca;
    pa.activation = ops::Activation::none();
    std::vector<float> wa = detail::activation_weights(w, ca, where.first_act);
    SALTED_ASSIGN(ops::Conv2d conv, ops::Conv2d::create(
                                        pa, ConstTensorView(wa.data(), Shape({p.out_channels, ca, p.kernel_h,
                                                                              p.kernel_w})),
                                        ConstTensorView(),
                                        conv2d_size_hint(ctx, Shape({1, ca, act_shape[2], act_shape[3]}))));

    // Table: per salt, the salt channels' direct convolution plus the bias.
    SALTED_ASSIGN(Tensor table, Tensor::empty(Shape({sp.num_classes, per_salt})));
    SALTED_ASSIGN(Tensor maps, Tensor::empty(Shape({1, k, sp.height, sp.width})));
    const int64_t H = sp.height, W = sp.width, Ho = out_shape[2], Wo = out_shape[3], cin = p.in_channels;
    for (int64_t s = 0; s < sp.num_classes; ++s) {
        SALTED_TRY(salt.maps(&s, 1, maps.view()));
        if (through)  // as the batch_norm would leave them (one fused multiply-add, as its kernel)
            for (int64_t j = 0; j < k; ++j)
                for (int64_t i = 0; i < H * W; ++i) {
                    float& x = maps.data()[j * H * W + i];
                    x = through->act.apply(std::fma(x, through->scale[j], through->shift[j]));
                }
        float* t = table.data() + s * per_salt;
        for (int64_t co = 0; co < p.out_channels; ++co)
            for (int64_t oy = 0; oy < Ho; ++oy)
                for (int64_t ox = 0; ox < Wo; ++ox) {
                    double sum = b.data ? b.data[co] : 0.0;
                    for (int64_t j = 0; j < k; ++j)
                        for (int64_t ky = 0; ky < p.kernel_h; ++ky) {
                            const int64_t iy = oy * p.stride_h - p.pad_top + ky * p.dilation_h;
                            if (iy < 0 || iy >= H) continue;
                            for (int64_t kx = 0; kx < p.kernel_w; ++kx) {
                                const int64_t ix = ox * p.stride_w - p.pad_left + kx * p.dilation_w;
                                if (ix < 0 || ix >= W) continue;
                                sum += double(maps.data()[(j * H + iy) * W + ix]) *
                                       double(w.data[((co * cin + where.first_salt + j) * p.kernel_h + ky) *
                                                         p.kernel_w + kx]);
                            }
                        }
                    t[(co * Ho + oy) * Wo + ox] = static_cast<float>(sum);
                }
    }
    return LayerPtr(new SaltFoldedConvLayer(std::move(conv), std::move(table), p.activation, sp.num_classes));
}

// A batch_norm node `bn` reading the concat's output, split in two: the layer
// that runs, over the activation channels only (out.first), and what it does
// to the salt maps, which goes into the tables (out.second). Null layer (and
// no error) when the pair does not qualify.
inline Result<std::pair<LayerPtr, SaltMapsAffine>> split_batch_norm(const io::Node& concat, const io::Node& bn,
                                                                    const BuildContext& ctx,
                                                                    const Shape& act_shape) {
    std::pair<LayerPtr, SaltMapsAffine> out;
    if (concat.op != "cnn_salt_concat" || bn.op != "batch_norm" || act_shape.rank() != 4) return out;
    SALTED_ASSIGN(ops::CnnSalt salt, cnn_salt_op(concat, ctx));
    const ops::CnnSaltParams& sp = salt.params();
    const int64_t ca = act_shape[1], k = sp.maps;
    SALTED_ASSIGN(ConstTensorView scale, detail::required_weight(ctx, bn, "scale"));
    SALTED_ASSIGN(ConstTensorView shift, detail::required_weight(ctx, bn, "shift"));
    SALTED_ASSIGN(ops::Activation act, detail::attr_activation(bn));
    if (scale.shape != Shape{ca + k} || shift.shape != Shape{ca + k}) return out;
    const detail::SaltChannels where = detail::salt_channels(sp, ca);
    SALTED_ASSIGN(out.first, batch_norm_layer(bn, ConstTensorView(scale.data + where.first_act, Shape{ca}),
                                              ConstTensorView(shift.data + where.first_act, Shape{ca}), act));
    out.second.scale.assign(scale.data + where.first_salt, scale.data + where.first_salt + k);
    out.second.shift.assign(shift.data + where.first_salt, shift.data + where.first_salt + k);
    out.second.act = act;
    return out;
}

}  // namespace graph
}  // namespace salted
