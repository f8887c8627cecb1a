// add, concat, pad2d, flatten and softmax: fast paths against their scalar
// twins over odd shapes, hand-checked values, and every error path.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "salted/ops/add.hpp"
#include "salted/ops/concat.hpp"
#include "salted/ops/flatten.hpp"
#include "salted/ops/pad.hpp"
#include "salted/ops/softmax.hpp"

using namespace salted;

namespace {

Tensor random_tensor(const Shape& s, uint32_t seed, float scale = 4.0f) {
    auto t = Tensor::empty(s);
    REQUIRE(t.ok());
    uint32_t x = seed * 2654435761u + 7u;
    for (int64_t i = 0; i < t->numel(); ++i) {
        x = x * 1664525u + 1013904223u;
        (*t)[i] = scale * (static_cast<float>(x >> 8) / 8388608.0f - 1.0f);
    }
    return std::move(t).value();
}

Tensor filled(const Shape& s, float v) {
    auto t = Tensor::empty(s);
    REQUIRE(t.ok());
    for (int64_t i = 0; i < t->numel(); ++i) (*t)[i] = v;
    return std::move(t).value();
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

void expect_error(const Status& s, Errc code, const char* part) {
    CHECK_MESSAGE(s.code() == code, s.message());
    CHECK_MESSAGE(contains(s.message(), part), s.message());
}

void require_equal(const Tensor& a, const Tensor& b) {
    REQUIRE(a.shape() == b.shape());
    for (int64_t i = 0; i < a.numel(); ++i) REQUIRE(a[i] == b[i]);
}

}  // namespace

TEST_CASE("add equals its twin, with fused activations and in place") {
    // The last shape is large enough for the threaded path.
    for (const Shape& s : {Shape{1, 1}, Shape{3, 17}, Shape{1, 3, 7, 9}, Shape{3, 5, 33, 31}, Shape{4, 64, 48, 49}}) {
        Tensor a = random_tensor(s, 1), b = random_tensor(s, 2);
        for (auto act : {ops::Activation::none(), ops::Activation::relu(), ops::Activation::leaky_relu(0.1f)}) {
            Tensor fast = filled(s, 0), slow = filled(s, 0);
            REQUIRE(ops::add(a.view(), b.view(), fast.view(), act).ok());
            REQUIRE(ops::ref::add(a.view(), b.view(), slow.view(), act).ok());
            require_equal(fast, slow);
            CHECK(slow[0] == act.apply(a[0] + b[0]));
            Tensor inplace = std::move(a.clone().value());
            REQUIRE(ops::add(inplace.view(), b.view(), inplace.view(), act).ok());
            require_equal(inplace, fast);
        }
    }
    Tensor a = filled({2, 3}, 1), b = filled({3, 2}, 1), o = filled({2, 3}, 0), o2 = filled({2, 4}, 0);
    expect_error(ops::add(a.view(), b.view(), o.view()), Errc::shape_mismatch, "add: b shape: expected [2, 3]");
    expect_error(ops::add(a.view(), a.view(), o2.view()), Errc::shape_mismatch, "add: output shape");
    expect_error(ops::add(a.view(), a.view(), o.view(), ops::Activation::leaky_relu(NAN)), Errc::invalid_argument,
                 "negative_slope");
    CHECK(ops::add_output_shape(Shape{0, 3}, Shape{0, 3}).code() == Errc::invalid_argument);
    CHECK(ops::ref::add(a.view(), b.view(), o.view()).code() == Errc::shape_mismatch);
}

TEST_CASE("concat equals its twin along every axis") {
    struct Cfg { std::vector<Shape> inputs; int axis; };
    const std::vector<Cfg> cfgs = {
        {{{1, 3, 4, 5}, {1, 5, 4, 5}}, 1},
        {{{3, 1, 7, 9}, {3, 16, 7, 9}, {3, 2, 7, 9}}, 1},
        {{{2, 3, 4, 5}, {2, 3, 1, 5}}, 2},
        {{{2, 3, 4, 5}, {2, 3, 4, 2}, {2, 3, 4, 1}}, -1},
        {{{2, 17}, {2, 10}}, 1},
        {{{1, 4}, {2, 4}}, 0},
        {{{2, 3, 4, 5}}, 1},
        {{{4, 128, 40, 40}, {4, 129, 40, 40}}, 1},  // threaded
    };
    for (const Cfg& c : cfgs) {
        std::vector<Tensor> owned;
        std::vector<ConstTensorView> views;
        for (std::size_t k = 0; k < c.inputs.size(); ++k) owned.push_back(random_tensor(c.inputs[k], uint32_t(k + 1)));
        for (const Tensor& t : owned) views.push_back(t.view());
        auto shape = ops::concat_output_shape(c.inputs, c.axis);
        REQUIRE_MESSAGE(shape.ok(), shape.message());
        Tensor fast = filled(*shape, 0), slow = filled(*shape, 0);
        REQUIRE(ops::concat(views, fast.view(), c.axis).ok());
        REQUIRE(ops::ref::concat(views, slow.view(), c.axis).ok());
        require_equal(fast, slow);
    }
    // Hand-checked: channel concat of [1,1,1,2] {1,2} and [1,2,1,2] {3,4,5,6}.
    Tensor a = filled({1, 1, 1, 2}, 0), b = filled({1, 2, 1, 2}, 0);
    a[0] = 1; a[1] = 2;
    for (int i = 0; i < 4; ++i) b[i] = float(3 + i);
    Tensor o = filled({1, 3, 1, 2}, 0);
    REQUIRE(ops::concat({a.view(), b.view()}, o.view(), 1).ok());
    for (int i = 0; i < 6; ++i) CHECK(o[i] == float(i + 1));
    // Along W: rows interleave.
    Tensor w = filled({1, 1, 1, 4}, 0);
    Tensor a2 = filled({1, 1, 1, 2}, 0);
    a2[0] = 1; a2[1] = 2;
    Tensor b2 = filled({1, 1, 1, 2}, 0);
    b2[0] = 3; b2[1] = 4;
    REQUIRE(ops::concat({a2.view(), b2.view()}, w.view(), 3).ok());
    for (int i = 0; i < 4; ++i) CHECK(w[i] == float(i + 1));
}

TEST_CASE("concat errors") {
    Tensor a = filled({2, 3, 4, 5}, 1), b = filled({2, 3, 4, 6}, 1), c = filled({2, 3, 4}, 1);
    Tensor o = filled({2, 6, 4, 5}, 0);
    expect_error(ops::concat({a.view(), b.view()}, o.view(), 1), Errc::shape_mismatch,
                 "input 1 dimension 3: expected 5");
    expect_error(ops::concat({a.view(), c.view()}, o.view(), 1), Errc::shape_mismatch, "input 1 rank: expected 4, found 3");
    expect_error(ops::concat({a.view(), a.view()}, o.view(), 4), Errc::invalid_argument, "axis: expected -4..3");
    expect_error(ops::concat({a.view(), a.view()}, o.view(), -5), Errc::invalid_argument, "axis");
    expect_error(ops::concat(std::vector<ConstTensorView>{}, o.view(), 1), Errc::invalid_argument,
                 "inputs: expected at least 1");
    expect_error(ops::concat({a.view(), ConstTensorView{}}, o.view(), 1), Errc::invalid_argument, "input 1");
    Tensor wrong = filled({2, 7, 4, 5}, 0);
    expect_error(ops::concat({a.view(), a.view()}, wrong.view(), 1), Errc::shape_mismatch,
                 "output shape: expected [2, 6, 4, 5], found [2, 7, 4, 5]");
    CHECK(ops::ref::concat({a.view(), b.view()}, o.view(), 1).code() == Errc::shape_mismatch);
}

TEST_CASE("pad2d equals its twin for padding, cropping and mixes") {
    struct P { int64_t t, l, b, r; };
    const P pads[] = {{0, 0, 1, 1}, {1, 1, 1, 1}, {0, 0, 0, 0}, {2, 3, 0, 1},  {-1, 0, 0, -1},
                      {-2, -3, -1, -1}, {1, -2, -1, 3}, {0, 5, 0, -4}, {3, 0, -3, 0}, {-6, 0, 0, 0}};
    for (const Shape& s : {Shape{1, 1, 7, 9}, Shape{3, 5, 8, 8}, Shape{2, 3, 1, 17}, Shape{2, 4, 9, 5},
                           Shape{4, 64, 48, 47}}) {  // the last is threaded
        Tensor in = random_tensor(s, 5);
        for (const P& q : pads) {
            ops::Pad2dParams p{q.t, q.l, q.b, q.r, 0.0f};
            auto shape = ops::pad2d_output_shape(p, s);
            if (!shape.ok()) {
                // Only an over-crop may fail here.
                CHECK(shape.code() == Errc::invalid_argument);
                CHECK((s[2] + q.t + q.b < 1 || s[3] + q.l + q.r < 1));
                continue;
            }
            CHECK((*shape)[2] == s[2] + q.t + q.b);
            CHECK((*shape)[3] == s[3] + q.l + q.r);
            for (float value : {0.0f, -2.5f}) {
                p.value = value;
                Tensor fast = filled(*shape, 99), slow = filled(*shape, 98);
                REQUIRE(ops::pad2d(p, in.view(), fast.view()).ok());
                REQUIRE(ops::ref::pad2d(p, in.view(), slow.view()).ok());
                require_equal(fast, slow);
            }
        }
    }
    // The WideResNet stride-2 pad: (left 0, right 1, top 0, bottom 1).
    Tensor x = filled({1, 1, 2, 2}, 1);
    Tensor y = filled({1, 1, 3, 3}, 7);
    REQUIRE(ops::pad2d({0, 0, 1, 1}, x.view(), y.view()).ok());
    const float want[9] = {1, 1, 0, 1, 1, 0, 0, 0, 0};
    for (int i = 0; i < 9; ++i) CHECK(y[i] == want[i]);
    // Rank 3 pads the last two dims too.
    Tensor r3 = filled({2, 2, 2}, 1), r3o = filled({2, 3, 2}, 0);
    REQUIRE(ops::pad2d({1, 0, 0, 0}, r3.view(), r3o.view()).ok());
    CHECK(r3o[0] == 0.0f);
    CHECK(r3o[2] == 1.0f);
}

TEST_CASE("pad2d errors") {
    Tensor in = filled({1, 2, 4, 5}, 1);
    auto r = ops::pad2d_output_shape({-2, 0, -2, 0}, in.shape());
    expect_error(r.status(), Errc::invalid_argument, "top + bottom: expected >= -3");
    r = ops::pad2d_output_shape({0, -5, 0, 0}, in.shape());
    expect_error(r.status(), Errc::invalid_argument, "left + right: expected >= -4");
    r = ops::pad2d_output_shape({0, 0, 0, 0}, Shape{4, 5});
    expect_error(r.status(), Errc::shape_mismatch, "input rank");
    r = ops::pad2d_output_shape({int64_t(1) << 50, 0, 0, 0}, in.shape());
    expect_error(r.status(), Errc::invalid_argument, "top");
    Tensor out = filled({1, 2, 5, 5}, 0);
    expect_error(ops::pad2d({1, 0, 1, 0}, in.view(), out.view()), Errc::shape_mismatch,
                 "output shape: expected [1, 2, 6, 5], found [1, 2, 5, 5]");
    expect_error(ops::ref::pad2d({0, 0, 0, -9}, in.view(), out.view()), Errc::invalid_argument, "left + right");
}

TEST_CASE("flatten: view, copy and twin") {
    Tensor x = random_tensor({3, 5, 4, 7}, 9);
    auto v = ops::flatten_view(x.view());
    REQUIRE(v.ok());
    CHECK(v->shape == Shape{3, 140});
    CHECK(v->data == x.data());
    Tensor fast = filled({3, 140}, 0), slow = filled({3, 140}, 0);
    REQUIRE(ops::flatten(x.view(), fast.view()).ok());
    REQUIRE(ops::ref::flatten(x.view(), slow.view()).ok());
    require_equal(fast, slow);
    for (int64_t i = 0; i < x.numel(); ++i) REQUIRE(fast[i] == x[i]);
    // start_dim 2 and 0; flattening [N, F] is the identity; in place is a no-op.
    CHECK(*ops::flatten_output_shape(Shape{3, 5, 4, 7}, 2) == Shape{3, 5, 28});
    CHECK(*ops::flatten_output_shape(Shape{3, 5, 4, 7}, 0) == Shape{420});
    CHECK(*ops::flatten_output_shape(Shape{3, 5}) == Shape{3, 5});
    TensorView same(x.data(), Shape{3, 140});
    REQUIRE(ops::flatten(x.view(), same).ok());
    CHECK(same[139] == x[139]);
    auto mv = ops::flatten_view(x.view(), 1);
    REQUIRE(mv.ok());

    expect_error(ops::flatten_output_shape(Shape{5}).status(), Errc::invalid_argument, "start_dim: expected 0..0");
    expect_error(ops::flatten_output_shape(Shape{2, 3}, -1).status(), Errc::invalid_argument, "start_dim");
    expect_error(ops::flatten_output_shape(Shape{2, 0, 3}).status(), Errc::invalid_argument, "dimension 1");
    Tensor bad = filled({3, 141}, 0);
    expect_error(ops::flatten(x.view(), bad.view()), Errc::shape_mismatch, "output shape: expected [3, 140]");
    CHECK(ops::ref::flatten(x.view(), bad.view()).code() == Errc::shape_mismatch);
}

TEST_CASE("softmax equals its twin on the last axis and on channels") {
    struct Cfg { Shape s; int axis; };
    const Cfg cfgs[] = {{{1, 1}, -1},      {{3, 10}, -1},       {{2, 17}, 1},         {{1, 1000}, -1},
                        {{2, 5, 3, 7}, 1}, {{3, 13, 4, 9}, 1},  {{1, 4, 2, 2}, 1},    {{2, 3, 4, 5}, 3},
                        {{2, 3, 4, 5}, 2}, {{2, 3, 4, 5}, 0},   {{3, 7, 40}, 1},      {{2, 100, 1, 1}, 1},
                        {{4, 10, 64, 63}, 1}, {{67, 1000}, -1}};  // the last two are threaded
    for (const Cfg& c : cfgs) {
        Tensor x = random_tensor(c.s, 3, 20.0f);
        Tensor fast = filled(c.s, 0), slow = filled(c.s, 0);
        REQUIRE(ops::softmax(x.view(), fast.view(), c.axis).ok());
        REQUIRE(ops::ref::softmax(x.view(), slow.view(), c.axis).ok());
        for (int64_t i = 0; i < fast.numel(); ++i) REQUIRE(fast[i] == doctest::Approx(slow[i]).epsilon(1e-5));
        // Each slice along the axis sums to 1.
        const int ax = c.axis < 0 ? c.axis + c.s.rank() : c.axis;
        int64_t inner = 1;
        for (int d = ax + 1; d < c.s.rank(); ++d) inner *= c.s[d];
        for (int64_t o = 0; o < c.s.numel() / (c.s[ax] * inner); ++o)
            for (int64_t r = 0; r < inner; ++r) {
                double sum = 0;
                for (int64_t a = 0; a < c.s[ax]; ++a) sum += fast[(o * c.s[ax] + a) * inner + r];
                CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
            }
        // In place.
        REQUIRE(ops::softmax(x.view(), x.view(), c.axis).ok());
        require_equal(x, fast);
    }
}

TEST_CASE("softmax is numerically stable and handles known values") {
    Tensor x = filled({1, 3}, 0);
    x[0] = 1000.0f; x[1] = 1001.0f; x[2] = 1002.0f;  // exp would overflow without the max shift
    Tensor y = filled({1, 3}, 0);
    REQUIRE(ops::softmax(x.view(), y.view()).ok());
    const double e1 = std::exp(-1.0), e2 = std::exp(-2.0), z = 1 + e1 + e2;
    CHECK(y[0] == doctest::Approx(e2 / z));
    CHECK(y[1] == doctest::Approx(e1 / z));
    CHECK(y[2] == doctest::Approx(1 / z));
    Tensor big = filled({2, 40}, -1e30f);
    big[45] = 0.0f;
    Tensor by = filled({2, 40}, 0);
    REQUIRE(ops::softmax(big.view(), by.view()).ok());
    CHECK(by[45] == 1.0f);
    CHECK(by[0] == doctest::Approx(1.0 / 40));

    Tensor o = filled({1, 4}, 0);
    expect_error(ops::softmax(x.view(), o.view()), Errc::shape_mismatch, "softmax: output shape: expected [1, 3]");
    expect_error(ops::softmax(x.view(), y.view(), 2), Errc::invalid_argument, "axis: expected -2..1");
    expect_error(ops::softmax(x.view(), y.view(), -3), Errc::invalid_argument, "axis");
    CHECK(ops::ref::softmax(x.view(), o.view()).code() == Errc::shape_mismatch);
    expect_error(ops::softmax_output_shape(Shape{}).status(), Errc::shape_mismatch, "input rank");
}
