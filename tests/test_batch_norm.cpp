// BatchNorm at inference: the fast pass against its textbook twin, the fused
// activation, and folding into conv / dense / conv_transpose weights (checked
// against a local direct convolution, so this test does not depend on the
// conv op), plus every error path.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "salted/ops/batch_norm.hpp"

using namespace salted;
using ops::BatchNormTensors;

namespace {

Tensor random_tensor(const Shape& s, uint32_t seed, float lo = -3.0f, float hi = 3.0f) {
    auto t = Tensor::empty(s);
    REQUIRE(t.ok());
    uint32_t x = seed * 2654435761u + 99u;
    for (int64_t i = 0; i < t->numel(); ++i) {
        x = x * 1664525u + 1013904223u;
        (*t)[i] = lo + (hi - lo) * static_cast<float>(x >> 8) / 16777216.0f;
    }
    return std::move(t).value();
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// A BatchNorm's four vectors, owned.
struct BnSet {
    Tensor gamma, beta, mean, var;
    explicit BnSet(int64_t c, uint32_t seed)
        : gamma(random_tensor({c}, seed, 0.5f, 2.0f)),
          beta(random_tensor({c}, seed + 1, -1.0f, 1.0f)),
          mean(random_tensor({c}, seed + 2, -1.0f, 1.0f)),
          var(random_tensor({c}, seed + 3, 0.1f, 3.0f)) {}
    BatchNormTensors views(bool affine = true) const {
        BatchNormTensors t;
        if (affine) {
            t.gamma = gamma.view();
            t.beta = beta.view();
        }
        t.running_mean = mean.view();
        t.running_var = var.view();
        return t;
    }
};

// y = BN(x) per channel, in double: the independent expectation.
void apply_bn(const BnSet& bn, double eps, Tensor& x) {
    const int64_t c = x.shape()[1];
    int64_t inner = 1;
    for (int d = 2; d < x.shape().rank(); ++d) inner *= x.shape()[d];
    for (int64_t i = 0; i < x.numel(); ++i) {
        const int64_t ch = (i / inner) % c;
        x[i] = static_cast<float>((double(x[i]) - bn.mean[ch]) / std::sqrt(double(bn.var[ch]) + eps) * bn.gamma[ch] +
                                  bn.beta[ch]);
    }
}

// Direct grouped conv2d (PyTorch semantics), for the folding tests only.
Tensor direct_conv(const Tensor& x, const Tensor& w, const Tensor* b, int64_t stride, int64_t pad, int64_t groups) {
    const int64_t n = x.shape()[0], cin = x.shape()[1], h = x.shape()[2], wd = x.shape()[3];
    const int64_t cout = w.shape()[0], cpg = w.shape()[1], kh = w.shape()[2], kw = w.shape()[3];
    const int64_t oh = (h + 2 * pad - kh) / stride + 1, ow = (wd + 2 * pad - kw) / stride + 1;
    const int64_t opg = cout / groups;
    REQUIRE(cpg * groups == cin);
    auto y = Tensor::zeros({n, cout, oh, ow});
    for (int64_t b0 = 0; b0 < n; ++b0)
        for (int64_t co = 0; co < cout; ++co)
            for (int64_t oy = 0; oy < oh; ++oy)
                for (int64_t ox = 0; ox < ow; ++ox) {
                    double acc = b ? (*b)[co] : 0.0;
                    const int64_t g = co / opg;
                    for (int64_t ci = 0; ci < cpg; ++ci)
                        for (int64_t ky = 0; ky < kh; ++ky)
                            for (int64_t kx = 0; kx < kw; ++kx) {
                                const int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                                acc += double(x[((b0 * cin + g * cpg + ci) * h + iy) * wd + ix]) *
                                       w[((co * cpg + ci) * kh + ky) * kw + kx];
                            }
                    (*y)[((b0 * cout + co) * oh + oy) * ow + ox] = static_cast<float>(acc);
                }
    return std::move(y).value();
}

// Direct grouped conv_transpose2d, weight [Cin, Cout/groups, kh, kw].
Tensor direct_conv_transpose(const Tensor& x, const Tensor& w, const Tensor* b, int64_t stride, int64_t groups) {
    const int64_t n = x.shape()[0], cin = x.shape()[1], h = x.shape()[2], wd = x.shape()[3];
    const int64_t opg = w.shape()[1], kh = w.shape()[2], kw = w.shape()[3], cout = opg * groups;
    const int64_t ipg = cin / groups;
    const int64_t oh = (h - 1) * stride + kh, ow = (wd - 1) * stride + kw;
    std::vector<double> acc(static_cast<std::size_t>(n * cout * oh * ow), 0.0);
    for (int64_t b0 = 0; b0 < n; ++b0)
        for (int64_t ci = 0; ci < cin; ++ci)
            for (int64_t iy = 0; iy < h; ++iy)
                for (int64_t ix = 0; ix < wd; ++ix)
                    for (int64_t co = 0; co < opg; ++co)
                        for (int64_t ky = 0; ky < kh; ++ky)
                            for (int64_t kx = 0; kx < kw; ++kx) {
                                const int64_t oc = (ci / ipg) * opg + co;
                                acc[((b0 * cout + oc) * oh + iy * stride + ky) * ow + ix * stride + kx] +=
                                    double(x[((b0 * cin + ci) * h + iy) * wd + ix]) * w[((ci * opg + co) * kh + ky) * kw + kx];
                            }
    auto y = Tensor::empty({n, cout, oh, ow});
    for (int64_t i = 0; i < y->numel(); ++i) {
        const int64_t oc = (i / (oh * ow)) % cout;
        (*y)[i] = static_cast<float>(acc[i] + (b ? (*b)[oc] : 0.0f));
    }
    return std::move(y).value();
}

void check_close(const Tensor& a, const Tensor& b, double tol) {
    REQUIRE(a.shape() == b.shape());
    double worst = 0, scale = 1;
    for (int64_t i = 0; i < a.numel(); ++i) {
        worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
        scale = std::max(scale, std::fabs(double(b[i])));
    }
    CHECK_MESSAGE(worst <= tol * scale, "max diff " << worst << " scale " << scale);
}

}  // namespace

TEST_CASE("batch_norm fast pass equals its scalar twin over shapes and activations") {
    // The last shape is large enough for the threaded path.
    const Shape shapes[] = {{1, 5}, {3, 17}, {1, 3, 7, 9}, {3, 17, 5, 5}, {2, 16, 1, 1}, {2, 33, 4, 19}, {2, 6, 11},
                            {4, 64, 33, 31}};
    const ops::Activation acts[] = {ops::Activation::none(), ops::Activation::relu(), ops::Activation::leaky_relu(0.2f)};
    int compared = 0;
    for (const Shape& s : shapes)
        for (const ops::Activation& act : acts)
            for (bool affine : {true, false})
                for (double eps : {1e-5, 1e-3}) {
                    BnSet bn(s[1], static_cast<uint32_t>(s.numel()));
                    ops::BatchNormParams p;
                    p.eps = eps;
                    p.activation = act;
                    auto op = ops::BatchNorm::create(p, bn.views(affine));
                    REQUIRE_MESSAGE(op.ok(), op.message());
                    CHECK(op->channels() == s[1]);
                    CHECK(*op->output_shape(s) == s);
                    CHECK(op->workspace_floats(s) == 0);
                    CHECK(op->flops(s) == 2 * s.numel());
                    Tensor x = random_tensor(s, 11);
                    auto fast = Tensor::empty(s);
                    auto slow = Tensor::empty(s);
                    REQUIRE(op->run(x.view(), fast->view()).ok());
                    REQUIRE(ops::ref::batch_norm(p, bn.views(affine), x.view(), slow->view()).ok());
                    check_close(*fast, *slow, 1e-5);
                    // In place gives the same values.
                    Tensor inplace = std::move(x.clone().value());
                    REQUIRE(op->run(inplace.view(), inplace.view()).ok());
                    for (int64_t i = 0; i < inplace.numel(); ++i) REQUIRE(inplace[i] == (*fast)[i]);
                    ++compared;
                }
    CHECK(compared == 8 * 3 * 2 * 2);
}

TEST_CASE("batch_norm matches the formula computed independently") {
    BnSet bn(5, 3);
    Tensor x = random_tensor({2, 5, 3, 4}, 5);
    Tensor want = std::move(x.clone().value());
    apply_bn(bn, 1e-5, want);
    auto op = ops::BatchNorm::create({}, bn.views());
    REQUIRE(op.ok());
    auto y = Tensor::empty(x.shape());
    REQUIRE(op->run(x.view(), y->view()).ok());
    check_close(*y, want, 1e-6);
    // Scale and shift are gamma/sqrt(var+eps) and beta - mean*scale.
    for (int c = 0; c < 5; ++c) {
        CHECK(op->scale()[c] == doctest::Approx(bn.gamma[c] / std::sqrt(bn.var[c] + 1e-5)));
        CHECK(op->shift()[c] == doctest::Approx(bn.beta[c] - bn.mean[c] * op->scale()[c]));
    }
}

TEST_CASE("folding BN into conv2d equals conv then BN") {
    struct Cfg { int64_t cin, cout, k, stride, pad, groups; bool bias; };
    const Cfg cfgs[] = {{3, 5, 3, 1, 1, 1, true}, {4, 6, 3, 2, 0, 2, false}, {6, 6, 1, 1, 0, 6, true}, {2, 16, 5, 1, 2, 1, false}};
    for (const Cfg& c : cfgs) {
        Tensor x = random_tensor({2, c.cin, 9, 8}, 21);
        Tensor w = random_tensor({c.cout, c.cin / c.groups, c.k, c.k}, 22, -0.5f, 0.5f);
        Tensor b = random_tensor({c.cout}, 23);
        BnSet bn(c.cout, 24);
        Tensor want = direct_conv(x, w, c.bias ? &b : nullptr, c.stride, c.pad, c.groups);
        apply_bn(bn, 1e-5, want);
        auto f = ops::fold_batch_norm_into_conv(w.view(), c.bias ? b.view() : ConstTensorView{}, bn.views(), 1e-5);
        REQUIRE_MESSAGE(f.ok(), f.message());
        CHECK(f->weight.shape() == w.shape());
        CHECK(f->bias.shape() == Shape{c.cout});
        Tensor got = direct_conv(x, f->weight, &f->bias, c.stride, c.pad, c.groups);
        check_close(got, want, 1e-5);
    }
}

TEST_CASE("folding BN into dense equals dense then BN") {
    for (bool with_bias : {true, false}) {
        Tensor x = random_tensor({3, 7}, 31);
        Tensor w = random_tensor({5, 7}, 32);
        Tensor b = random_tensor({5}, 33);
        BnSet bn(5, 34);
        auto dense = [&](const Tensor& wt, const Tensor* bias) {
            auto y = Tensor::empty({3, 5});
            for (int n = 0; n < 3; ++n)
                for (int o = 0; o < 5; ++o) {
                    double acc = bias ? (*bias)[o] : 0.0;
                    for (int i = 0; i < 7; ++i) acc += double(x[n * 7 + i]) * wt[o * 7 + i];
                    (*y)[n * 5 + o] = static_cast<float>(acc);
                }
            return std::move(y).value();
        };
        Tensor want = dense(w, with_bias ? &b : nullptr);
        apply_bn(bn, 1e-3, want);
        auto f = ops::fold_batch_norm_into_dense(w.view(), with_bias ? b.view() : ConstTensorView{}, bn.views(), 1e-3);
        REQUIRE(f.ok());
        check_close(dense(f->weight, &f->bias), want, 1e-5);
    }
}

TEST_CASE("folding BN into conv_transpose2d equals conv_transpose then BN, with groups") {
    struct Cfg { int64_t cin, cout, groups; bool bias; };
    for (const Cfg& c : {Cfg{1, 4, 1, true}, Cfg{4, 6, 2, false}, Cfg{6, 3, 3, true}}) {
        Tensor x = random_tensor({2, c.cin, 3, 4}, 41);
        Tensor w = random_tensor({c.cin, c.cout / c.groups, 3, 2}, 42);
        Tensor b = random_tensor({c.cout}, 43);
        BnSet bn(c.cout, 44);
        Tensor want = direct_conv_transpose(x, w, c.bias ? &b : nullptr, 2, c.groups);
        apply_bn(bn, 1e-5, want);
        auto f = ops::fold_batch_norm_into_conv_transpose(w.view(), c.bias ? b.view() : ConstTensorView{}, bn.views(),
                                                          1e-5, c.groups);
        REQUIRE_MESSAGE(f.ok(), f.message());
        check_close(direct_conv_transpose(x, f->weight, &f->bias, 2, c.groups), want, 1e-5);
    }
}

TEST_CASE("batch_norm errors name the field") {
    BnSet bn(4, 1);
    auto expect = [](const Status& s, Errc code, const char* field) {
        CHECK_MESSAGE(s.code() == code, s.message());
        CHECK_MESSAGE(contains(s.message(), field), s.message());
    };
    // Missing or misshapen vectors.
    BatchNormTensors t = bn.views();
    t.running_mean = ConstTensorView{};
    expect(ops::BatchNorm::create({}, t).status(), Errc::invalid_argument, "running_mean");
    t = bn.views();
    t.running_var = ConstTensorView{};
    expect(ops::BatchNorm::create({}, t).status(), Errc::invalid_argument, "running_var");
    Tensor five = random_tensor({5}, 2, 0.5f, 1.0f);
    Tensor mat = random_tensor({2, 2}, 2, 0.5f, 1.0f);
    t = bn.views();
    t.gamma = five.view();
    expect(ops::BatchNorm::create({}, t).status(), Errc::shape_mismatch, "gamma shape: expected [4], found [5]");
    t = bn.views();
    t.beta = five.view();
    expect(ops::BatchNorm::create({}, t).status(), Errc::shape_mismatch, "beta shape");
    t = bn.views();
    t.running_var = five.view();
    expect(ops::BatchNorm::create({}, t).status(), Errc::shape_mismatch, "running_var shape");
    t = bn.views();
    t.running_mean = mat.view();
    expect(ops::BatchNorm::create({}, t).status(), Errc::shape_mismatch, "running_mean shape");
    // Invalid values.
    Tensor neg = random_tensor({4}, 3, 0.5f, 1.0f);
    neg[2] = -0.5f;
    t = bn.views();
    t.running_var = neg.view();
    expect(ops::BatchNorm::create({}, t).status(), Errc::invalid_argument, "running_var[2]");
    neg[2] = NAN;
    expect(ops::BatchNorm::create({}, t).status(), Errc::invalid_argument, "running_var[2]");
    neg[2] = 0.0f;
    ops::BatchNormParams zero_eps;
    zero_eps.eps = 0.0;
    expect(ops::BatchNorm::create(zero_eps, t).status(), Errc::invalid_argument, "running_var[2] + eps");
    zero_eps.eps = -1e-5;
    expect(ops::BatchNorm::create(zero_eps, bn.views()).status(), Errc::invalid_argument, "eps");
    ops::BatchNormParams nan_slope;
    nan_slope.activation = ops::Activation::leaky_relu(NAN);
    expect(ops::BatchNorm::create(nan_slope, bn.views()).status(), Errc::invalid_argument, "negative_slope");

    // Input and output shapes.
    auto op = ops::BatchNorm::create({}, bn.views());
    REQUIRE(op.ok());
    expect(op->output_shape(Shape{4}).status(), Errc::shape_mismatch, "input rank");
    expect(op->output_shape(Shape{2, 5, 3, 3}).status(), Errc::shape_mismatch, "input channels (dim 1): expected 4, found 5");
    auto x = Tensor::zeros({2, 4, 3, 3});
    auto y = Tensor::zeros({2, 4, 3, 4});
    expect(op->run(x->view(), y->view()), Errc::shape_mismatch, "output shape");

    // Folding.
    Tensor w4 = random_tensor({4, 3, 3, 3}, 5);
    Tensor w2 = random_tensor({4, 3}, 5);
    Tensor b5 = random_tensor({5}, 6);
    expect(ops::fold_batch_norm_into_conv(w2.view(), {}, bn.views()).status(), Errc::shape_mismatch, "weight rank");
    expect(ops::fold_batch_norm_into_conv({}, {}, bn.views()).status(), Errc::invalid_argument, "weight");
    expect(ops::fold_batch_norm_into_conv(w4.view(), b5.view(), bn.views()).status(), Errc::shape_mismatch, "bias shape");
    expect(ops::fold_batch_norm_into_dense(w4.view(), {}, bn.views()).status(), Errc::shape_mismatch, "weight rank");
    Tensor w_wrong = random_tensor({5, 3}, 5);
    expect(ops::fold_batch_norm_into_dense(w_wrong.view(), {}, bn.views()).status(), Errc::shape_mismatch,
           "gamma shape: expected [5]");
    Tensor wt = random_tensor({4, 2, 3, 3}, 7);  // Cin 4, Cout/groups 2
    expect(ops::fold_batch_norm_into_conv_transpose(wt.view(), {}, bn.views(), 1e-5, 3).status(), Errc::invalid_argument,
           "groups");
    expect(ops::fold_batch_norm_into_conv_transpose(wt.view(), {}, bn.views(), 1e-5, 0).status(), Errc::invalid_argument,
           "groups");
    // groups 2 -> Cout 4 matches the BN; groups 1 -> Cout 2 does not.
    CHECK(ops::fold_batch_norm_into_conv_transpose(wt.view(), {}, bn.views(), 1e-5, 2).ok());
    expect(ops::fold_batch_norm_into_conv_transpose(wt.view(), {}, bn.views(), 1e-5, 1).status(), Errc::shape_mismatch,
           "expected [2]");
}
