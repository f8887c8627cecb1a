// PyTorch parity for pooling, batch norm (and folding), add, concat, pad,
// flatten, softmax and the salt layers; cases from tests/parity/gen_ops.py.
// Salt maps and max pooling are compared bitwise, the rest with
// parity::check_close.
#include "parity_util.hpp"

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "salted/ops/add.hpp"
#include "salted/ops/batch_norm.hpp"
#include "salted/ops/concat.hpp"
#include "salted/ops/flatten.hpp"
#include "salted/ops/pad.hpp"
#include "salted/ops/pool.hpp"
#include "salted/ops/salt_layers.hpp"
#include "salted/ops/softmax.hpp"
#include "salted/salt/fc_salt_vector.hpp"

using namespace salted;

namespace {

// "ops/maxpool_012" -> "maxpool"
std::string kind_of(const parity::Case& c) {
    const auto slash = c.name.find('/') + 1;
    return c.name.substr(slash, c.name.rfind('_') - slash);
}

Tensor empty(const Shape& s) {
    auto t = Tensor::empty(s);
    REQUIRE_MESSAGE(t.ok(), t.message());
    return std::move(t).value();
}

void check_bitwise(const std::string& what, ConstTensorView ours, ConstTensorView torch_ref) {
    INFO(what);
    REQUIRE_MESSAGE(ours.shape == torch_ref.shape, "ours " << ours.shape.str() << " vs torch " << torch_ref.shape.str());
    int64_t differ = 0;
    for (int64_t i = 0; i < ours.numel(); ++i)
        if (std::memcmp(ours.data + i, torch_ref.data + i, sizeof(float)) != 0 && ours[i] != torch_ref[i]) ++differ;
    CHECK_MESSAGE(differ == 0, what << ": " << differ << " elements differ bitwise");
}

ops::Activation activation_of(const parity::Case& c) {
    switch (c.i("act")) {
        case 1: return ops::Activation::relu();
        case 2: return ops::Activation::leaky_relu(static_cast<float>(c.f("slope")));
        default: return ops::Activation::none();
    }
}

// The case's BatchNorm vectors; `store` keeps the tensors alive.
ops::BatchNormTensors bn_of(const parity::Case& c, std::vector<Tensor>& store) {
    store.clear();
    store.reserve(4);
    ops::BatchNormTensors bn;
    auto load = [&](const char* name) -> ConstTensorView {
        if (!c.has_array(name)) return {};
        store.push_back(c.array(name));
        return store.back().view();
    };
    bn.gamma = load("gamma");
    bn.beta = load("beta");
    bn.running_mean = load("running_mean");
    bn.running_var = load("running_var");
    return bn;
}

ConstTensorView optional_view(const parity::Case& c, const char* name, Tensor& holder) {
    if (!c.has_array(name)) return {};
    holder = c.array(name);
    return holder.view();
}

// Direct grouped conv2d: applies the folded weights (the conv op is not this file's subject).
Tensor direct_conv(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride, int64_t pad, int64_t groups) {
    const int64_t n = x.shape()[0], cin = x.shape()[1], h = x.shape()[2], wd = x.shape()[3];
    const int64_t cout = w.shape()[0], cpg = w.shape()[1], kh = w.shape()[2], kw = w.shape()[3];
    const int64_t oh = (h + 2 * pad - kh) / stride + 1, ow = (wd + 2 * pad - kw) / stride + 1, opg = cout / groups;
    Tensor y = empty({n, cout, oh, ow});
    for (int64_t i = 0; i < y.numel(); ++i) {
        const int64_t ox = i % ow, oy = (i / ow) % oh, co = (i / (ow * oh)) % cout, b0 = i / (ow * oh * cout);
        double acc = b[co];
        for (int64_t ci = 0; ci < cpg; ++ci)
            for (int64_t ky = 0; ky < kh; ++ky)
                for (int64_t kx = 0; kx < kw; ++kx) {
                    const int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                    if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                    acc += double(x[((b0 * cin + (co / opg) * cpg + ci) * h + iy) * wd + ix]) *
                           w[((co * cpg + ci) * kh + ky) * kw + kx];
                }
        y[i] = static_cast<float>(acc);
    }
    return y;
}

// Direct grouped conv_transpose2d (no padding), weight [Cin, Cout/groups, kh, kw].
Tensor direct_conv_transpose(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride, int64_t groups) {
    const int64_t n = x.shape()[0], cin = x.shape()[1], h = x.shape()[2], wd = x.shape()[3];
    const int64_t opg = w.shape()[1], kh = w.shape()[2], kw = w.shape()[3], cout = opg * groups, ipg = cin / groups;
    const int64_t oh = (h - 1) * stride + kh, ow = (wd - 1) * stride + kw;
    std::vector<double> acc(static_cast<std::size_t>(n * cout * oh * ow), 0.0);
    for (int64_t b0 = 0; b0 < n; ++b0)
        for (int64_t ci = 0; ci < cin; ++ci)
            for (int64_t iy = 0; iy < h; ++iy)
                for (int64_t ix = 0; ix < wd; ++ix)
                    for (int64_t co = 0; co < opg; ++co)
                        for (int64_t ky = 0; ky < kh; ++ky)
                            for (int64_t kx = 0; kx < kw; ++kx)
                                acc[((b0 * cout + (ci / ipg) * opg + co) * oh + iy * stride + ky) * ow + ix * stride + kx] +=
                                    double(x[((b0 * cin + ci) * h + iy) * wd + ix]) * w[((ci * opg + co) * kh + ky) * kw + kx];
    Tensor y = empty({n, cout, oh, ow});
    for (int64_t i = 0; i < y.numel(); ++i) y[i] = static_cast<float>(acc[i] + b[(i / (oh * ow)) % cout]);
    return y;
}

ops::Pool2dParams pool_of(const parity::Case& c, bool is_max) {
    auto p = ops::Pool2dParams::make(c.i("kernel", 0), c.i("kernel", 1), c.i("stride", 0), c.i("stride", 1),
                                     c.i("pad", 0), c.i("pad", 1));
    p.ceil_mode = c.i("ceil") != 0;
    if (is_max) {
        p.dilation_h = c.i("dilation", 0);
        p.dilation_w = c.i("dilation", 1);
    } else {
        p.count_include_pad = c.i("count_include_pad") != 0;
    }
    return p;
}

void run_pool(const parity::Case& c, bool is_max, int& rejected) {
    const ops::Pool2dParams p = pool_of(c, is_max);
    if (c.i("error") == 1) {
        const Shape s{c.i("input_shape", 0), c.i("input_shape", 1), c.i("input_shape", 2), c.i("input_shape", 3)};
        auto shape = is_max ? ops::max_pool2d_output_shape(p, s) : ops::avg_pool2d_output_shape(p, s);
        CHECK_MESSAGE(!shape.ok(), c.name << ": PyTorch rejects this configuration, salted accepted it");
        ++rejected;
        return;
    }
    Tensor in = c.array("input"), want = c.array("output");
    auto shape = is_max ? ops::max_pool2d_output_shape(p, in.shape()) : ops::avg_pool2d_output_shape(p, in.shape());
    REQUIRE_MESSAGE(shape.ok(), c.name << ": " << shape.message());
    Tensor out = empty(*shape);
    Status s = is_max ? ops::max_pool2d(p, in.view(), out.view()) : ops::avg_pool2d(p, in.view(), out.view());
    REQUIRE_MESSAGE(s.ok(), s.message());
    if (is_max) check_bitwise(c.name, out.view(), want.view());
    else parity::check_close(c.name, out.view(), want.view());
}

void run_batch_norm(const parity::Case& c) {
    std::vector<Tensor> store;
    ops::BatchNormParams p;
    p.eps = c.f("eps");
    p.activation = activation_of(c);
    auto op = ops::BatchNorm::create(p, bn_of(c, store));
    REQUIRE_MESSAGE(op.ok(), op.message());
    Tensor in = c.array("input"), want = c.array("output"), out = empty(in.shape());
    REQUIRE(op->run(in.view(), out.view()).ok());
    parity::check_close(c.name, out.view(), want.view());
}

void run_fold(const parity::Case& c, const std::string& kind) {
    std::vector<Tensor> store;
    const ops::BatchNormTensors bn = bn_of(c, store);
    Tensor w = c.array("weight"), bias_holder;
    const ConstTensorView bias = optional_view(c, "bias", bias_holder);
    Result<ops::FoldedWeights> f = kind == "foldconv"    ? ops::fold_batch_norm_into_conv(w.view(), bias, bn, c.f("eps"))
                                   : kind == "folddense" ? ops::fold_batch_norm_into_dense(w.view(), bias, bn, c.f("eps"))
                                                         : ops::fold_batch_norm_into_conv_transpose(
                                                               w.view(), bias, bn, c.f("eps"), c.i("groups"));
    REQUIRE_MESSAGE(f.ok(), f.message());
    if (c.has_array("fused_weight")) {
        parity::check_close(c.name + " fused weight", f->weight.view(), c.array("fused_weight").view());
        parity::check_close(c.name + " fused bias", f->bias.view(), c.array("fused_bias").view());
    }
    // The folded layer reproduces PyTorch's layer-then-BN output.
    Tensor x = c.array("input"), want = c.array("output");
    Tensor got;
    if (kind == "foldconv") {
        got = direct_conv(x, f->weight, f->bias, c.i("stride"), c.i("pad"), c.i("groups"));
    } else if (kind == "folddense") {
        const int64_t n = x.shape()[0], in = x.shape()[1], out = f->weight.shape()[0];
        got = empty({n, out});
        for (int64_t b = 0; b < n; ++b)
            for (int64_t o = 0; o < out; ++o) {
                double acc = f->bias[o];
                for (int64_t i = 0; i < in; ++i) acc += double(x[b * in + i]) * f->weight[o * in + i];
                got[b * out + o] = static_cast<float>(acc);
            }
    } else {
        got = direct_conv_transpose(x, f->weight, f->bias, c.i("stride"), c.i("groups"));
    }
    parity::check_close(c.name + " output", got.view(), want.view());
}

void run_cnn_salt(const parity::Case& c) {
    ops::CnnSaltParams p;
    p.maps = c.i("maps");
    p.height = c.i("size", 0);
    p.width = c.i("size", 1);
    p.num_classes = c.i("classes");
    const std::vector<int64_t> salts = {c.i("salts", 0), c.i("salts", 1), c.i("salts", 2)};
    Tensor w = c.array("weight"), bias_holder;
    const ConstTensorView bias = optional_view(c, "bias", bias_holder);
    Tensor act = c.array("activations");
    for (ops::SaltOrder order : {ops::SaltOrder::activations_first, ops::SaltOrder::salt_first}) {
        p.order = order;
        auto op = ops::CnnSalt::create(p, w.view(), bias);
        REQUIRE_MESSAGE(op.ok(), op.message());
        Tensor maps = empty(*op->maps_shape(3));
        REQUIRE(op->maps(salts, maps.view()).ok());
        // Bitwise: s * w rounded, then + b rounded, as conv_transpose2d does it.
        check_bitwise(c.name + " maps", maps.view(), c.array("maps_out").view());
        auto shape = op->concat_output_shape(act.shape());
        REQUIRE(shape.ok());
        Tensor cat = empty(*shape);
        REQUIRE(op->concat(act.view(), salts, cat.view()).ok());
        const bool first = order == ops::SaltOrder::activations_first;
        check_bitwise(c.name + (first ? " cat(x, maps)" : " cat(maps, x)"), cat.view(),
                      c.array(first ? "cat_act_first" : "cat_salt_first").view());
    }
}

void run_fc_salt(const parity::Case& c) {
    const int classes = static_cast<int>(c.i("classes")), s = static_cast<int>(c.i("salt"));
    auto means = salt::fc_salt_means(s, classes);
    REQUIRE(means.ok());
    Tensor want_means = c.array("means");
    check_bitwise(c.name + " means (torch.roll)", ConstTensorView(means->data(), Shape{classes}), want_means.view());
    Tensor noise = c.array("noise"), vec = empty({classes});
    REQUIRE(salt::fc_salt_vector(s, classes, noise.data(), vec.data()).ok());
    parity::check_close(c.name + " vector", vec.view(), c.array("vector").view());
    // The FC salted layer: activations first, then the salt vector.
    Tensor act = c.array("activations");
    Tensor vectors = empty({2, classes});
    const int64_t salts[2] = {s, s};
    std::vector<float> noise2(noise.data(), noise.data() + classes);
    noise2.insert(noise2.end(), noise.data(), noise.data() + classes);
    REQUIRE(salt::fc_salt_vectors(salts, 2, classes, noise2.data(), vectors.view()).ok());
    Tensor cat = empty({2, act.shape()[1] + classes});
    REQUIRE(ops::fc_salt_concat(act.view(), vectors.view(), cat.view()).ok());
    parity::check_close(c.name + " cat(x, salt vector)", cat.view(), c.array("cat_act_first").view());
}

void run_elementwise(const parity::Case& c, const std::string& kind) {
    Tensor want = c.array("output");
    Tensor out = empty(want.shape());
    if (kind == "add") {
        Tensor a = c.array("a"), b = c.array("b");
        REQUIRE(ops::add(a.view(), b.view(), out.view(), activation_of(c)).ok());
    } else if (kind == "concat") {
        std::vector<Tensor> inputs;
        std::vector<ConstTensorView> views;
        for (int64_t k = 0; k < c.i("inputs"); ++k) inputs.push_back(c.array("input" + std::to_string(k)));
        for (const Tensor& t : inputs) views.push_back(t.view());
        REQUIRE(ops::concat(views, out.view(), static_cast<int>(c.i("axis"))).ok());
    } else if (kind == "pad") {
        // PyTorch order (left, right, top, bottom).
        ops::Pad2dParams p{c.i("pad_lrtb", 2), c.i("pad_lrtb", 0), c.i("pad_lrtb", 3), c.i("pad_lrtb", 1), 0.0f};
        Tensor in = c.array("input");
        auto shape = ops::pad2d_output_shape(p, in.shape());
        REQUIRE_MESSAGE(shape.ok(), shape.message());
        REQUIRE(*shape == want.shape());
        REQUIRE(ops::pad2d(p, in.view(), out.view()).ok());
    } else if (kind == "flatten") {
        Tensor in = c.array("input");
        REQUIRE(ops::flatten(in.view(), out.view()).ok());
        auto v = ops::flatten_view(in.view());
        REQUIRE(v.ok());
        check_bitwise(c.name + " view", *v, want.view());
    } else if (kind == "softmax") {
        Tensor in = c.array("input");
        REQUIRE(ops::softmax(in.view(), out.view(), static_cast<int>(c.i("dim"))).ok());
    } else if (kind == "gap") {
        Tensor in = c.array("input");
        REQUIRE(ops::global_avg_pool(in.view(), out.view()).ok());
    } else {
        FAIL("unknown case kind " << kind);
    }
    parity::check_close(c.name, out.view(), want.view());
}

}  // namespace

TEST_SUITE("parity") {
TEST_CASE("pooling, batch norm, elementwise ops and salt layers match PyTorch") {
    std::map<std::string, int> seen;
    int rejected = 0;
    for (const auto& c : parity::load_family("ops")) {
        const std::string kind = kind_of(c);
        ++seen[kind];
        if (kind == "maxpool" || kind == "avgpool") run_pool(c, kind == "maxpool", rejected);
        else if (kind == "bn") run_batch_norm(c);
        else if (kind.rfind("fold", 0) == 0) run_fold(c, kind);
        else if (kind == "cnnsalt") run_cnn_salt(c);
        else if (kind == "fcsalt") run_fc_salt(c);
        else run_elementwise(c, kind);
    }
    // Every kind ran (a generator change cannot silently drop one), and the
    // rejected pool configurations were exercised too.
    for (const char* k : {"maxpool", "avgpool", "gap", "bn", "foldconv", "folddense", "foldconvt", "add", "concat",
                          "pad", "flatten", "softmax", "cnnsalt", "fcsalt"})
        CHECK_MESSAGE(seen[k] > 0, "no parity cases of kind " << k);
    CHECK(rejected > 0);
    MESSAGE("ops parity cases: " << seen.size() << " kinds, " << rejected << " rejected pool configurations");
}
}
