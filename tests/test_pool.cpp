// max_pool2d, avg_pool2d and global_avg_pool: the fast kernels against their
// scalar twins over a grid of shapes and parameters, PyTorch's output-size
// rules, and every error path.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "salted/ops/pool.hpp"

using namespace salted;
using ops::Pool2dParams;

namespace {

Tensor random_tensor(const Shape& s, uint32_t seed) {
    auto t = Tensor::empty(s);
    REQUIRE(t.ok());
    uint32_t x = seed * 2654435761u + 12345u;
    for (int64_t i = 0; i < t->numel(); ++i) {
        x = x * 1664525u + 1013904223u;
        (*t)[i] = static_cast<float>(static_cast<int32_t>(x >> 8) % 20001) / 1000.0f - 10.0f;
    }
    return std::move(t).value();
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// Runs fast and ref on one configuration; both must agree on success, and on
// the values (max: bitwise; average: summation order may differ).
void compare_pool(bool is_max, const Pool2dParams& p, const Shape& in_shape, int& compared) {
    Tensor in = random_tensor(in_shape, static_cast<uint32_t>(in_shape.numel() + p.kernel_h * 7 + p.kernel_w));
    auto shape = is_max ? ops::max_pool2d_output_shape(p, in_shape) : ops::avg_pool2d_output_shape(p, in_shape);
    if (!shape.ok()) {
        // Only an input too small for the window may fail in this grid.
        CHECK_MESSAGE(shape.code() == Errc::shape_mismatch, shape.message());
        return;
    }
    auto fast = Tensor::empty(*shape);
    auto slow = Tensor::empty(*shape);
    REQUIRE(fast.ok());
    REQUIRE(slow.ok());
    Status sf = is_max ? ops::max_pool2d(p, in.view(), fast->view()) : ops::avg_pool2d(p, in.view(), fast->view());
    Status sr = is_max ? ops::ref::max_pool2d(p, in.view(), slow->view()) : ops::ref::avg_pool2d(p, in.view(), slow->view());
    REQUIRE_MESSAGE(sf.ok(), sf.message());
    REQUIRE_MESSAGE(sr.ok(), sr.message());
    double worst = 0;
    for (int64_t i = 0; i < fast->numel(); ++i) {
        // Equal values (including -inf from an all-padding max window) differ by 0.
        const double d = (*fast)[i] == (*slow)[i] ? 0.0 : std::fabs(double((*fast)[i]) - double((*slow)[i]));
        if (!(d <= worst)) worst = d;
        if (is_max) REQUIRE((*fast)[i] == (*slow)[i]);
    }
    INFO("input " << in_shape.str() << " kernel " << p.kernel_h << "x" << p.kernel_w << " stride " << p.stride_h << "x"
                  << p.stride_w << " pad " << p.pad_top << "," << p.pad_left << "," << p.pad_bottom << "," << p.pad_right
                  << " dil " << p.dilation_h << "x" << p.dilation_w << " ceil " << p.ceil_mode << " cip "
                  << p.count_include_pad);
    CHECK(worst <= 1e-5);
    ++compared;
}

}  // namespace

TEST_CASE("pool output sizes follow PyTorch's floor and ceil rules") {
    struct Row { int64_t in, k, s, pad; bool ceil; int64_t want; };
    // Values from torch.nn.functional.max_pool2d on a 1 x n row.
    const Row rows[] = {{5, 2, 2, 0, true, 3}, {5, 2, 2, 0, false, 2}, {6, 3, 2, 1, true, 4},
                        {4, 2, 2, 1, true, 3}, {5, 2, 2, 1, true, 3},  {7, 3, 3, 1, true, 3}};
    for (const Row& r : rows) {
        auto p = Pool2dParams::make(1, r.k, 1, r.s, 0, r.pad);
        p.ceil_mode = r.ceil;
        auto s = ops::max_pool2d_output_shape(p, Shape{1, 1, 1, r.in});
        REQUIRE(s.ok());
        CHECK((*s)[3] == r.want);
    }
    // Dilation widens the window: 10 wide, k 3, dilation 3 -> span 7 -> 4 outputs.
    auto p = Pool2dParams::make(1, 3, 1, 1);
    p.dilation_w = 3;
    CHECK((*ops::max_pool2d_output_shape(p, Shape{2, 3, 4, 10})) == Shape{2, 3, 4, 4});
    // Default stride = kernel.
    CHECK((*ops::avg_pool2d_output_shape(Pool2dParams::make(3, 3), Shape{1, 2, 9, 10})) == Shape{1, 2, 3, 3});
}

TEST_CASE("max_pool2d fast path equals its scalar twin over a grid") {
    int compared = 0;
    const Shape shapes[] = {{1, 1, 1, 1}, {1, 3, 7, 9}, {3, 5, 12, 33}, {1, 17, 5, 40}, {2, 2, 9, 8}};
    const int64_t kernels[][2] = {{1, 1}, {2, 2}, {3, 3}, {2, 3}, {3, 1}, {5, 4}};
    const int64_t strides[][2] = {{0, 0}, {1, 1}, {2, 2}, {3, 1}, {1, 2}};
    const int64_t dilations[][2] = {{1, 1}, {2, 1}, {2, 3}};
    for (const Shape& s : shapes)
        for (auto& k : kernels)
            for (auto& st : strides)
                for (auto& d : dilations)
                    for (int64_t ph = 0; ph <= k[0] / 2; ++ph)
                        for (int64_t pw = 0; pw <= k[1] / 2; ++pw)
                            for (bool ceil : {false, true}) {
                                auto p = Pool2dParams::make(k[0], k[1], st[0], st[1], ph, pw);
                                p.dilation_h = d[0];
                                p.dilation_w = d[1];
                                p.ceil_mode = ceil;
                                compare_pool(true, p, s, compared);
                            }
    // Four-sided padding (not expressible in nn.MaxPool2d, but well defined).
    auto p = Pool2dParams::make(3, 4, 2, 3);
    p.pad_top = 0; p.pad_bottom = 1; p.pad_left = 2; p.pad_right = 1;
    for (bool ceil : {false, true}) {
        p.ceil_mode = ceil;
        compare_pool(true, p, Shape{3, 5, 11, 13}, compared);
    }
    CHECK(compared > 1000);
}

TEST_CASE("avg_pool2d fast path equals its scalar twin over a grid") {
    int compared = 0;
    const Shape shapes[] = {{1, 1, 1, 1}, {1, 3, 7, 9}, {3, 5, 12, 33}, {1, 17, 5, 40}, {1, 64, 27, 50}};
    const int64_t kernels[][2] = {{1, 1}, {2, 2}, {3, 3}, {2, 3}, {3, 1}, {5, 4}};
    const int64_t strides[][2] = {{0, 0}, {1, 1}, {2, 2}, {3, 1}, {1, 2}};
    for (const Shape& s : shapes)
        for (auto& k : kernels)
            for (auto& st : strides)
                for (int64_t ph = 0; ph <= k[0] / 2; ++ph)
                    for (int64_t pw = 0; pw <= k[1] / 2; ++pw)
                        for (bool ceil : {false, true})
                            for (bool cip : {false, true}) {
                                auto p = Pool2dParams::make(k[0], k[1], st[0], st[1], ph, pw);
                                p.ceil_mode = ceil;
                                p.count_include_pad = cip;
                                compare_pool(false, p, s, compared);
                            }
    auto p = Pool2dParams::make(3, 4, 2, 3);
    p.pad_top = 0; p.pad_bottom = 1; p.pad_left = 2; p.pad_right = 1;
    for (bool ceil : {false, true})
        for (bool cip : {false, true}) {
            p.ceil_mode = ceil;
            p.count_include_pad = cip;
            compare_pool(false, p, Shape{3, 5, 11, 13}, compared);
        }
    CHECK(compared > 1000);
}

TEST_CASE("pooling over rows wider than the row buffer, and kernels wider than it") {
    int compared = 0;
    // A row of 1500 outputs spans several buffer tiles.
    for (bool is_max : {true, false}) {
        auto p = Pool2dParams::make(2, 3, 1, 1, 1, 1);
        p.ceil_mode = true;
        compare_pool(is_max, p, Shape{1, 2, 3, 1500}, compared);
        compare_pool(is_max, Pool2dParams::make(2, 2), Shape{2, 3, 4, 1201}, compared);
        // A 600-wide kernel does not fit the 512-float buffer: direct path.
        compare_pool(is_max, Pool2dParams::make(1, 600, 1, 7, 0, 300), Shape{1, 2, 2, 700}, compared);
    }
    auto p = Pool2dParams::make(1, 200, 1, 1);
    p.dilation_w = 3;  // span 598 > 512
    compare_pool(true, p, Shape{1, 1, 2, 650}, compared);
    CHECK(compared == 7);
}

TEST_CASE("an absurdly large kernel costs only the input it covers") {
    // 1x1 input, 2^20 x 2^20 kernel, padding 2^19: valid in PyTorch, one
    // output; a loop over every tap would run 2^40 times.
    const int64_t k = int64_t(1) << 20;
    auto p = Pool2dParams::make(k, k, k, k, k / 2, k / 2);
    auto x = Tensor::empty({1, 2, 1, 1});
    (*x)[0] = 3.5f;
    (*x)[1] = -2.0f;
    auto y = Tensor::empty({1, 2, 1, 1});
    REQUIRE(ops::max_pool2d(p, x->view(), y->view()).ok());
    CHECK((*y)[0] == 3.5f);
    CHECK((*y)[1] == -2.0f);
    p.count_include_pad = false;
    REQUIRE(ops::avg_pool2d(p, x->view(), y->view()).ok());
    CHECK((*y)[0] == 3.5f);
    p.count_include_pad = true;  // divisor (2^20)^2 = 2^40
    REQUIRE(ops::avg_pool2d(p, x->view(), y->view()).ok());
    CHECK((*y)[0] == std::ldexp(3.5f, -40));
}

TEST_CASE("large pools take the threaded path and still equal the twin") {
    // 2*16*40*64 outputs x 9 taps is well above the parallel threshold.
    int compared = 0;
    for (bool is_max : {true, false}) {
        compare_pool(is_max, Pool2dParams::make(3, 3, 1, 1, 1, 1), Shape{2, 16, 40, 64}, compared);
        compare_pool(is_max, Pool2dParams::make(3, 3, 2, 2, 1, 1), Shape{3, 32, 41, 57}, compared);
    }
    CHECK(compared == 4);
    for (const Shape& s : {Shape{8, 64, 32, 32}, Shape{3, 100, 37, 41}}) {
        Tensor in = random_tensor(s, 3);
        auto fast = Tensor::empty({s[0], s[1], 1, 1});
        auto slow = Tensor::empty({s[0], s[1], 1, 1});
        REQUIRE(ops::global_avg_pool(in.view(), fast->view()).ok());
        REQUIRE(ops::ref::global_avg_pool(in.view(), slow->view()).ok());
        for (int64_t i = 0; i < fast->numel(); ++i) REQUIRE((*fast)[i] == doctest::Approx((*slow)[i]).epsilon(1e-5));
    }
}

TEST_CASE("max pool pads with -inf and lets NaN win; avg pool divisors") {
    // All-negative input: a zero-padded max would output 0 at the borders.
    auto in = Tensor::empty({1, 1, 3, 3});
    for (int i = 0; i < 9; ++i) (*in)[i] = -1.0f - i;
    auto out = Tensor::empty({1, 1, 2, 2});
    REQUIRE(ops::max_pool2d(Pool2dParams::make(2, 2, 2, 2, 1, 1), in->view(), out->view()).ok());
    // Windows: {-1}, {-2,-3}, {-4,-7}, {-5,-6,-8,-9}.
    CHECK((*out)[0] == -1.0f);
    CHECK((*out)[1] == -2.0f);
    CHECK((*out)[2] == -4.0f);
    CHECK((*out)[3] == -5.0f);

    (*in)[4] = std::numeric_limits<float>::quiet_NaN();
    for (int impl = 0; impl < 2; ++impl) {
        auto o = Tensor::empty({1, 1, 1, 1});
        auto p = Pool2dParams::make(3, 3);
        REQUIRE((impl == 0 ? ops::max_pool2d(p, in->view(), o->view()) : ops::ref::max_pool2d(p, in->view(), o->view())).ok());
        CHECK(std::isnan((*o)[0]));
    }
    // A NaN first in a SIMD lane must survive later, larger values too.
    auto wide = Tensor::empty({1, 1, 2, 64});
    for (int i = 0; i < 128; ++i) (*wide)[i] = float(i);
    (*wide)[5] = std::numeric_limits<float>::quiet_NaN();
    auto wo = Tensor::empty({1, 1, 1, 63});
    REQUIRE(ops::max_pool2d(Pool2dParams::make(2, 2, 1, 1), wide->view(), wo->view()).ok());
    CHECK(std::isnan((*wo)[4]));
    CHECK(std::isnan((*wo)[5]));
    CHECK((*wo)[6] == 64.0f + 7.0f);

    // Average of ones: with count_include_pad the border windows are diluted.
    auto ones = Tensor::empty({1, 1, 2, 2});
    for (int i = 0; i < 4; ++i) (*ones)[i] = 1.0f;
    auto a = Tensor::empty({1, 1, 2, 2});
    auto p = Pool2dParams::make(2, 2, 1, 1, 1, 1);
    p.count_include_pad = true;
    // Output would be 3x3 with stride 1; use stride 2 for a 2x2 result.
    p.stride_h = p.stride_w = 2;
    REQUIRE(ops::avg_pool2d(p, ones->view(), a->view()).ok());
    CHECK((*a)[0] == doctest::Approx(0.25));
    p.count_include_pad = false;
    REQUIRE(ops::avg_pool2d(p, ones->view(), a->view()).ok());
    CHECK((*a)[0] == 1.0f);
}

TEST_CASE("global_avg_pool equals its twin and the plane means") {
    for (const Shape& s : {Shape{1, 1, 1, 1}, Shape{3, 17, 7, 9}, Shape{2, 64, 8, 8}, Shape{1, 5, 1, 37}}) {
        Tensor in = random_tensor(s, 7);
        auto fast = Tensor::empty({s[0], s[1], 1, 1});
        auto slow = Tensor::empty({s[0], s[1], 1, 1});
        REQUIRE(ops::global_avg_pool(in.view(), fast->view()).ok());
        REQUIRE(ops::ref::global_avg_pool(in.view(), slow->view()).ok());
        for (int64_t i = 0; i < fast->numel(); ++i) {
            double mean = 0;
            for (int64_t k = 0; k < s[2] * s[3]; ++k) mean += in[i * s[2] * s[3] + k];
            mean /= double(s[2] * s[3]);
            CHECK((*fast)[i] == doctest::Approx((*slow)[i]).epsilon(1e-5));
            CHECK((*fast)[i] == doctest::Approx(mean).epsilon(1e-5));
        }
    }
    auto in = Tensor::empty({2, 3, 4, 4});
    auto bad = Tensor::empty({2, 3, 1});
    Status st = ops::global_avg_pool(in->view(), bad->view());
    CHECK(st.code() == Errc::shape_mismatch);
    CHECK(contains(st.message(), "output shape"));
    auto r3 = ops::global_avg_pool_output_shape(Shape{2, 3, 4});
    CHECK(r3.code() == Errc::shape_mismatch);
    CHECK(contains(r3.message(), "input rank"));
}

TEST_CASE("pool parameter and shape errors name the field") {
    const Shape in{1, 2, 8, 8};
    auto expect = [&](bool is_max, const Pool2dParams& p, Errc code, const char* field) {
        auto r = is_max ? ops::max_pool2d_output_shape(p, in) : ops::avg_pool2d_output_shape(p, in);
        CHECK_MESSAGE(r.code() == code, r.message());
        CHECK_MESSAGE(contains(r.message(), field), r.message());
        CHECK(contains(r.message(), is_max ? "max_pool2d" : "avg_pool2d"));
        // run() reports the same error and writes nothing harmful.
        auto x = Tensor::zeros(in);
        auto y = Tensor::zeros({1, 2, 4, 4});
        Status s = is_max ? ops::max_pool2d(p, x->view(), y->view()) : ops::avg_pool2d(p, x->view(), y->view());
        CHECK(s.code() == code);
        Status sr = is_max ? ops::ref::max_pool2d(p, x->view(), y->view()) : ops::ref::avg_pool2d(p, x->view(), y->view());
        CHECK(sr.code() == code);
    };
    for (bool is_max : {true, false}) {
        auto p = Pool2dParams::make(2, 2);
        p.kernel_h = 0; expect(is_max, p, Errc::invalid_argument, "kernel_h");
        p = Pool2dParams::make(2, 2); p.kernel_w = -3; expect(is_max, p, Errc::invalid_argument, "kernel_w");
        p = Pool2dParams::make(2, 2); p.stride_h = -1; expect(is_max, p, Errc::invalid_argument, "stride_h");
        p = Pool2dParams::make(2, 2); p.stride_w = -2; expect(is_max, p, Errc::invalid_argument, "stride_w");
        p = Pool2dParams::make(2, 2); p.dilation_h = 0; expect(is_max, p, Errc::invalid_argument, "dilation_h");
        p = Pool2dParams::make(2, 2); p.dilation_w = 0; expect(is_max, p, Errc::invalid_argument, "dilation_w");
        p = Pool2dParams::make(2, 2); p.pad_top = 2; expect(is_max, p, Errc::invalid_argument, "pad_top");
        p = Pool2dParams::make(2, 2); p.pad_bottom = 2; expect(is_max, p, Errc::invalid_argument, "pad_bottom");
        p = Pool2dParams::make(3, 3); p.pad_left = 2; expect(is_max, p, Errc::invalid_argument, "pad_left");
        p = Pool2dParams::make(3, 3); p.pad_right = -1; expect(is_max, p, Errc::invalid_argument, "pad_right");
        // Window larger than the (padded) input.
        p = Pool2dParams::make(9, 2); expect(is_max, p, Errc::shape_mismatch, "output size");
    }
    // Average pooling has no dilation.
    auto p = Pool2dParams::make(2, 2);
    p.dilation_w = 2;
    expect(false, p, Errc::invalid_argument, "dilation_w");
    // Dilation that makes the window too large for the input.
    p = Pool2dParams::make(3, 3);
    p.dilation_h = 5;
    expect(true, p, Errc::shape_mismatch, "output size");

    // Input rank and output shape.
    auto r = ops::max_pool2d_output_shape(Pool2dParams::make(2, 2), Shape{2, 8, 8});
    CHECK(r.code() == Errc::shape_mismatch);
    CHECK(contains(r.message(), "input rank"));
    auto x = Tensor::zeros({1, 2, 8, 8});
    auto wrong = Tensor::zeros({1, 2, 4, 5});
    Status s = ops::avg_pool2d(Pool2dParams::make(2, 2), x->view(), wrong->view());
    CHECK(s.code() == Errc::shape_mismatch);
    CHECK(contains(s.message(), "output shape: expected [1, 2, 4, 4], found [1, 2, 4, 5]"));
    // A shape with a zero dimension is rejected, not pooled.
    CHECK(!ops::max_pool2d_output_shape(Pool2dParams::make(2, 2), Shape{1, 0, 8, 8}).ok());
}

TEST_CASE("max_pool2d 2x2 stride 2: NaN wins and -0/+0 ties keep PyTorch's first tap, bit for bit") {
    // 2 planes of 6 x 70: output width 35 = two 16-wide blocks and a scalar tail.
    const Shape s{1, 2, 6, 70};
    Tensor in = random_tensor(s, 99);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    in[0] = nan;                       // (0,0) tap of the first window
    in[2 * 70 + 7] = nan;              // a (0,1) tap in a SIMD block
    in[3 * 70 + 40] = nan;             // a (1,0) tap
    in[70 * 6 + 70 + 69] = nan;        // a (1,1) tap in the scalar tail of plane 1
    for (int64_t x = 10; x < 20; ++x) {  // windows of zeros of both signs
        in[4 * 70 + x] = (x % 3 == 0) ? -0.0f : 0.0f;
        in[5 * 70 + x] = (x % 2 == 0) ? 0.0f : -0.0f;
    }
    auto p = Pool2dParams::make(2, 2, 2, 2);
    auto fast = Tensor::empty(Shape{1, 2, 3, 35});
    auto slow = Tensor::empty(Shape{1, 2, 3, 35});
    REQUIRE(ops::max_pool2d(p, in.view(), fast->view()).ok());
    REQUIRE(ops::ref::max_pool2d(p, in.view(), slow->view()).ok());
    int nans = 0;
    for (int64_t i = 0; i < fast->numel(); ++i) {
        nans += std::isnan((*fast)[i]) ? 1 : 0;
        CHECK(std::memcmp(&(*fast)[i], &(*slow)[i], 4) == 0);
    }
    CHECK(nans == 4);
}
