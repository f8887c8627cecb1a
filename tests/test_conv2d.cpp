// conv2d: the fast path (packed weights, blocked im2col, GEMM) against the
// direct loop nest ref::conv2d over a generated grid, and every error path.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "salted/core/parallel.hpp"
#include "salted/ops/conv2d.hpp"
#include "random_floats.hpp"

using namespace salted;
using ops::Activation;
using ops::Conv2d;
using ops::Conv2dParams;

namespace {

std::vector<float> random_floats(std::size_t n, uint32_t seed) { return ::random_floats(n, seed, 7u); }

// Fast vs ref on one configuration, within 1e-5 * max(1, max|ref|).
void check_conv(const Conv2dParams& p, int64_t batch, int64_t h, int64_t w, bool with_bias, uint32_t seed) {
    const int64_t cin_g = p.in_channels / p.groups;
    Shape ws_shape({p.out_channels, cin_g, p.kernel_h, p.kernel_w});
    auto weight = random_floats(ws_shape.numel(), seed);
    auto bias = random_floats(p.out_channels, seed + 1);
    Shape is({batch, p.in_channels, h, w});
    auto input = random_floats(is.numel(), seed + 2);
    ConstTensorView wv(weight.data(), ws_shape);
    ConstTensorView bv = with_bias ? ConstTensorView(bias.data(), Shape({p.out_channels})) : ConstTensorView();

    auto conv = Conv2d::create(p, wv, bv);
    REQUIRE_MESSAGE(conv.ok(), conv.message());
    auto os = conv->output_shape(is);
    REQUIRE_MESSAGE(os.ok(), os.message());
    std::vector<float> want(os->numel()), ours(os->numel(), NAN);
    REQUIRE(ops::ref::conv2d(p, ConstTensorView(input.data(), is), wv, bv, TensorView(want.data(), *os)).ok());

    // The workspace is exactly what workspace_floats() reports, followed by
    // guard values that must survive.
    const std::size_t need = conv->workspace_floats(is);
    std::vector<float> ws(need + 32, 777.0f);
    auto st = conv->run(ConstTensorView(input.data(), is), TensorView(ours.data(), *os), ws.data());
    REQUIRE_MESSAGE(st.ok(), st.message());
    for (std::size_t i = need; i < ws.size(); ++i) REQUIRE(ws[i] == 777.0f);

    double scale = 1, worst = 0;
    for (float v : want) scale = std::max(scale, double(std::fabs(v)));
    for (std::size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(double(ours[i]) - want[i]));
    INFO("cin=" << p.in_channels << " cout=" << p.out_channels << " k=" << p.kernel_h << "x" << p.kernel_w
                << " s=" << p.stride_h << "," << p.stride_w << " d=" << p.dilation_h << "," << p.dilation_w
                << " pad=" << p.pad_top << "," << p.pad_left << "," << p.pad_bottom << "," << p.pad_right
                << " g=" << p.groups << " in=" << batch << "x" << h << "x" << w << " bias=" << with_bias
                << " act=" << static_cast<int>(p.activation.kind));
    CHECK(worst <= 1e-5 * scale);
    CHECK(!std::isnan(worst));
}

Conv2dParams params(int64_t cin, int64_t cout, int64_t kh, int64_t kw) {
    Conv2dParams p;
    p.in_channels = cin;
    p.out_channels = cout;
    p.kernel_h = kh;
    p.kernel_w = kw;
    return p;
}

}  // namespace

TEST_CASE("blocked im2col panels equal the scalar twin, including edge panels") {
    using kernels::ConvGeometry;
    uint32_t seed = 1000;
    int panels_checked = 0;
    for (int64_t kernel : {1, 3})
        for (int64_t stride_w = 1; stride_w <= 3; ++stride_w)
            for (int64_t dil = 1; dil <= 2; ++dil)
                for (int64_t pad = 0; pad <= 2; ++pad)
                    for (int64_t in_w : {1, 5, 16, 23, 31, 32, 40, 64}) {  // 16, 32: whole stride-2 runs
                        ConvGeometry g;
                        g.channels = 3;
                        g.in_h = 6;
                        g.in_w = in_w;
                        g.kernel_h = kernel;
                        g.kernel_w = kernel;
                        g.stride_h = 1 + (seed++ % 2);
                        g.stride_w = stride_w;
                        g.dilation_h = dil;
                        g.dilation_w = dil;
                        g.pad_top = pad;
                        g.pad_left = pad;
                        const int64_t reach = dil * (kernel - 1) + 1;
                        const int64_t span_h = g.in_h + 2 * pad - reach, span_w = in_w + 2 * pad - reach;
                        if (span_h < 0 || span_w < 0) continue;
                        g.out_h = span_h / g.stride_h + 1;
                        g.out_w = span_w / stride_w + 1;
                        auto input = random_floats(g.channels * g.in_h * g.in_w, seed);
                        kernels::Im2colB src;
                        src.input = input.data();
                        src.g = g;
                        const int64_t n = g.out_h * g.out_w;
                        std::vector<float> ours(g.k() * kernels::gemm_nr), want(ours.size());
                        for (int64_t p = 0; p * kernels::gemm_nr < n; ++p) {
                            const int cols =
                                static_cast<int>(std::min<int64_t>(kernels::gemm_nr, n - p * kernels::gemm_nr));
                            std::fill(ours.begin(), ours.end(), NAN);
                            src.pack(p, cols, ours.data());
                            kernels::ref::im2col_panel(input.data(), g, p, cols, want.data());
                            INFO("kernel=" << kernel << " stride_w=" << stride_w << " dil=" << dil << " pad=" << pad
                                           << " in_w=" << in_w << " panel=" << p);
                            CHECK(ours == want);
                            ++panels_checked;
                        }
                    }
    CHECK(panels_checked > 100);
}

TEST_CASE("conv2d matches ref over a generated grid") {
    const int64_t kernels[][2] = {{1, 1}, {3, 3}, {5, 5}, {1, 5}, {3, 5}};
    const Activation acts[] = {Activation::none(), Activation::relu(), Activation::leaky_relu(0.1f)};
    uint32_t seed = 1;
    int ran = 0;
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        for (const auto& k : kernels)
            for (int64_t stride = 1; stride <= 3; ++stride)
                for (int64_t dil = 1; dil <= 2; ++dil)
                    for (int gmode = 0; gmode < 3; ++gmode) {
                        ++seed;
                        // Channels that are not multiples of the SIMD width; groups 1, 3 and depthwise.
                        const int64_t groups = gmode == 0 ? 1 : gmode == 1 ? 3 : 6;
                        const int64_t cin = gmode == 0 ? 5 : 6, cout = gmode == 0 ? 17 : gmode == 1 ? 9 : 12;
                        Conv2dParams p = params(cin, cout, k[0], k[1]);
                        p.groups = groups;
                        p.stride_h = stride;
                        p.stride_w = 1 + (stride + seed) % 3;  // strides differ per axis too
                        p.dilation_h = dil;
                        p.dilation_w = 1 + (dil + seed) % 2;
                        p.pad_top = seed % 3;
                        p.pad_left = (seed / 3) % 3;
                        p.pad_bottom = (seed / 2) % 2;
                        p.pad_right = (seed / 5) % 3;
                        p.activation = acts[seed % 3];
                        const int64_t batch = seed % 2 ? 1 : 3;
                        // Odd and even sizes, from "kernel just fits" upwards.
                        const int64_t h = (p.kernel_h - 1) * p.dilation_h + 1 + seed % 7;
                        const int64_t w = (p.kernel_w - 1) * p.dilation_w + 1 + (seed * 7) % 11;
                        check_conv(p, batch, h, w, seed % 4 != 0, seed);
                        ++ran;
                    }
    }
    set_num_threads(0);
    CHECK(ran == 2 * 5 * 3 * 2 * 3);
}

TEST_CASE("conv2d direct path matches ref over a generated grid, on 1 and 2 threads") {
    const int64_t kernels[][2] = {{3, 3}, {5, 5}, {1, 5}, {3, 5}, {2, 1}};
    const Activation acts[] = {Activation::none(), Activation::relu(), Activation::leaky_relu(0.1f)};
    uint32_t seed = 500;
    int direct = 0;
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        for (const auto& k : kernels)
            for (int64_t stride = 1; stride <= 2; ++stride)
                for (int64_t cout : {32, 45, 70}) {
                    ++seed;
                    const int64_t cin = 12 + seed % 5;  // K = cin * kh * kw >= 24
                    Conv2dParams p = params(cin, cout, k[0], k[1]);
                    p.stride_h = stride;
                    p.stride_w = 1 + seed % 2;
                    p.dilation_h = 1 + seed % 2;
                    p.dilation_w = 1 + (seed / 2) % 2;
                    p.pad_top = seed % 2;
                    p.pad_left = (seed / 3) % 3;
                    p.pad_bottom = (seed / 2) % 2;
                    p.pad_right = (seed / 5) % 2;
                    p.activation = acts[seed % 3];
                    const int64_t batch = 1 + 2 * (seed % 3);  // 1, 3, 5: odd batches on 2 threads too
                    const int64_t h = (p.kernel_h - 1) * p.dilation_h + 1 + seed % 6;
                    const int64_t w = (p.kernel_w - 1) * p.dilation_w + 1 + (seed * 7) % 19;
                    Shape ws_shape({cout, cin, p.kernel_h, p.kernel_w});
                    auto weight = random_floats(ws_shape.numel(), seed);
                    auto conv = Conv2d::create(p, ConstTensorView(weight.data(), ws_shape), ConstTensorView());
                    REQUIRE(conv.ok());
                    const bool wino = conv->uses_winograd(Shape({batch, cin, h, w})) ||
                                      conv->uses_row_winograd(Shape({batch, cin, h, w})) ||
                                      conv->uses_shallow(Shape({batch, cin, h, w}));
                    CHECK((conv->uses_direct(Shape({batch, cin, h, w})) || wino));
                    direct += wino ? 0 : 1;
                    check_conv(p, batch, h, w, seed % 4 != 0, seed);
                }
    }
    set_num_threads(0);
    CHECK(direct > 40);
}

// First layers: K = Cin x kh x kw <= 128 at unit row stride (WideResNet's
// 3->16 3x3 stem, LeNet's 1->32 5x5 on MNIST, the sensor net's 1->64 (1,5)).
TEST_CASE("conv2d shallow path matches ref: short patches, partial row vectors, padding, column strides") {
    struct Case {
        int64_t cin, cout, kh, kw, sh, dh, pad, batch, h, w;
    } cases[] = {
        {3, 16, 3, 3, 1, 1, 1, 1, 32, 32},   // WRN stem
        {1, 32, 5, 5, 1, 1, 0, 3, 28, 28},   // LeNet conv1 on MNIST: 24-wide rows, a partial vector each
        {1, 64, 1, 5, 1, 1, 0, 2, 27, 200},  // sensor conv0
        {2, 7, 3, 2, 2, 1, 2, 5, 9, 37},     // Cout not a multiple of 4, column stride 2, padding
        {3, 10, 2, 3, 1, 2, 1, 1, 11, 5},    // dilated columns, rows narrower than a vector
        {8, 5, 2, 2, 3, 1, 0, 2, 13, 17},    // K = 32
        // Row ends stored with a whole vector whose spill the next row's
        // vector overwrites: 20-wide rows (half vectors with AVX-512: 8+8+4),
        // 9-wide rows (9 lanes each, 7 spill).
        {1, 9, 3, 3, 1, 1, 1, 2, 6, 20},
        {2, 6, 2, 3, 1, 1, 0, 1, 7, 11},
    };
    int shallow = 0;
    uint32_t seed = 700;
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        set_parallel_min_flops(1);  // small layers too take the threaded path
        for (const auto& c : cases) {
            Conv2dParams p = params(c.cin, c.cout, c.kh, c.kw);
            p.stride_h = c.sh;
            p.dilation_h = c.dh;
            p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = c.pad;
            p.activation = Activation::leaky_relu(0.2f);
            ++seed;
            const Shape is({c.batch, c.cin, c.h, c.w});
            auto weight = random_floats(c.cout * c.cin * c.kh * c.kw, seed);
            auto conv = Conv2d::create(p, ConstTensorView(weight.data(), Shape({c.cout, c.cin, c.kh, c.kw})),
                                       ConstTensorView());
            REQUIRE(conv.ok());
            CHECK(conv->uses_shallow(is));
            CHECK(!conv->uses_direct(is));
            shallow += conv->uses_shallow(is) ? 1 : 0;
            check_conv(p, c.batch, c.h, c.w, seed % 2 == 0, seed);
        }
    }
    set_num_threads(0);
    set_parallel_min_flops(default_parallel_min_flops);
    CHECK(shallow == 2 * 8);
}

TEST_CASE("conv2d direct path: results do not depend on the thread count") {
    Conv2dParams p = params(11, 40, 4, 5);  // 4 kernel rows: not a row-Winograd layer
    p.stride_w = 2;
    p.pad_top = p.pad_right = 1;
    p.activation = Activation::relu();
    const Shape is({6, 11, 13, 31});
    auto weight = random_floats(40 * 11 * 20, 9);
    auto bias = random_floats(40, 10);
    auto input = random_floats(is.numel(), 11);
    auto conv = Conv2d::create(p, ConstTensorView(weight.data(), Shape({40, 11, 4, 5})),
                               ConstTensorView(bias.data(), Shape({40})));
    REQUIRE(conv.ok());
    REQUIRE(conv->uses_direct(is));
    auto os = conv->output_shape(is);
    REQUIRE(os.ok());
    std::vector<float> ws(conv->workspace_floats(is));
    std::vector<std::vector<float>> outs;
    for (int threads : {1, 2, 3}) {
        set_num_threads(threads);
        outs.emplace_back(os->numel());
        REQUIRE(conv->run(ConstTensorView(input.data(), is), TensorView(outs.back().data(), *os), ws.data()).ok());
    }
    set_num_threads(0);
    CHECK(outs[1] == outs[0]);
    CHECK(outs[2] == outs[0]);
}

TEST_CASE("conv2d special shapes: 1x1 plain GEMM, multi-block, reference-model layers") {
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        // 1x1 stride-1 unpadded: the no-im2col path (also with groups).
        check_conv(params(19, 33, 1, 1), 2, 9, 13, true, 100);
        Conv2dParams g1 = params(12, 8, 1, 1);
        g1.groups = 4;
        check_conv(g1, 1, 5, 7, false, 101);
        // 1x1 with stride 2 (WRN shortcut) goes through im2col.
        Conv2dParams sc = params(16, 32, 1, 1);
        sc.stride_h = sc.stride_w = 2;
        check_conv(sc, 1, 16, 16, false, 102);
        // WRN stride-2 block: F.pad(0, 1, 0, 1) then a 3x3 stride-2 conv with padding 0.
        Conv2dParams wrn = params(16, 32, 3, 3);
        wrn.stride_h = wrn.stride_w = 2;
        wrn.pad_bottom = wrn.pad_right = 1;
        check_conv(wrn, 1, 32, 32, true, 103);
        // K beyond KC and more pixels than one packed B block.
        Conv2dParams big = params(40, 10, 3, 3);
        big.pad_top = big.pad_left = big.pad_bottom = big.pad_right = 1;
        big.activation = Activation::relu();
        check_conv(big, 1, 41, 43, true, 104);
        // LeNet 5x5 and the sensor net's (1,5)/(1,2) and (3,5)/(2,2) layers.
        check_conv(params(3, 32, 5, 5), 1, 32, 32, true, 105);
        Conv2dParams s1 = params(7, 16, 1, 5);
        s1.stride_w = 2;
        s1.activation = Activation::leaky_relu(0.01f);
        check_conv(s1, 2, 27, 60, true, 106);
        Conv2dParams s2 = params(12, 16, 3, 5);
        s2.stride_h = s2.stride_w = 2;
        check_conv(s2, 1, 14, 40, true, 107);
        // A kernel as large as the (padded) input: 1x1 output.
        Conv2dParams full = params(2, 3, 5, 4);
        full.pad_top = 1;
        check_conv(full, 2, 4, 4, true, 108);
        // Single-pixel input.
        check_conv(params(4, 4, 1, 1), 1, 1, 1, true, 109);
    }
    set_num_threads(0);
}

TEST_CASE("conv2d shape inference and accounting") {
    Conv2dParams p = params(3, 8, 3, 3);
    p.stride_h = 2;
    p.pad_top = 1;
    p.pad_bottom = 0;
    p.dilation_w = 2;
    std::vector<float> w(8 * 3 * 9);
    auto conv = Conv2d::create(p, ConstTensorView(w.data(), {8, 3, 3, 3}), ConstTensorView());
    REQUIRE(conv.ok());
    // H: floor((10 + 1 - 2 - 1) / 2) + 1 = 5; W: floor((11 - 4 - 1) / 1) + 1 = 7.
    auto os = conv->output_shape({2, 3, 10, 11});
    REQUIRE(os.ok());
    CHECK(*os == Shape({2, 8, 5, 7}));
    CHECK(conv->flops({2, 3, 10, 11}) == 2 * 2 * 8 * 5 * 7 * 27);
    CHECK(conv->workspace_floats({2, 3, 10, 11}) > 0);
    CHECK(conv->workspace_floats({2, 4, 10, 11}) == 0);  // invalid input: no plan
    CHECK(conv->params().stride_h == 2);
}

TEST_CASE("conv2d rejects invalid parameters, naming the field") {
    std::vector<float> w(1024, 0.5f), b(64, 0.0f);
    auto try_params = [&](Conv2dParams p, const char* field) {
        Shape wshape({std::max<int64_t>(p.out_channels, 1), std::max<int64_t>(p.in_channels, 1), 3, 3});
        auto r = Conv2d::create(p, ConstTensorView(w.data(), wshape), ConstTensorView());
        INFO(field);
        CHECK(r.code() == Errc::invalid_argument);
        CHECK_MESSAGE(r.message().find(field) != std::string::npos, r.message());
        CHECK(r.message().find("conv2d") == 0);
    };
    auto base = [] {
        Conv2dParams p = params(4, 4, 3, 3);
        return p;
    };
    Conv2dParams p;
    p = base(); p.in_channels = 0; try_params(p, "in_channels");
    p = base(); p.out_channels = -1; try_params(p, "out_channels");
    p = base(); p.kernel_h = 0; try_params(p, "kernel_h");
    p = base(); p.kernel_w = -3; try_params(p, "kernel_w");
    p = base(); p.stride_h = 0; try_params(p, "stride_h");
    p = base(); p.stride_w = -1; try_params(p, "stride_w");
    p = base(); p.dilation_h = 0; try_params(p, "dilation_h");
    p = base(); p.dilation_w = 0; try_params(p, "dilation_w");
    p = base(); p.pad_top = -1; try_params(p, "pad_top");
    p = base(); p.pad_left = -1; try_params(p, "pad_left");
    p = base(); p.pad_bottom = -2; try_params(p, "pad_bottom");
    p = base(); p.pad_right = int64_t(1) << 40; try_params(p, "pad_right");
    p = base(); p.groups = 0; try_params(p, "groups");
    p = base(); p.groups = 3; try_params(p, "groups");  // does not divide 4
    p = base(); p.in_channels = 6; p.out_channels = 4; p.groups = 3; try_params(p, "groups");  // divides in, not out
    p = base(); p.activation = Activation::leaky_relu(NAN); try_params(p, "negative_slope");
}

TEST_CASE("conv2d rejects weights and bias that do not fit the parameters") {
    std::vector<float> w(1024, 0.5f), b(64, 0.0f);
    Conv2dParams p = params(4, 6, 3, 3);
    p.groups = 2;
    // Expected weight [6, 2, 3, 3].
    auto r = Conv2d::create(p, ConstTensorView(w.data(), {6, 4, 3, 3}), ConstTensorView());
    CHECK(r.code() == Errc::shape_mismatch);
    CHECK(r.message().find("weight shape: expected [6, 2, 3, 3], found [6, 4, 3, 3]") != std::string::npos);
    r = Conv2d::create(p, ConstTensorView(w.data(), {6, 2, 3}), ConstTensorView());
    CHECK(r.code() == Errc::shape_mismatch);
    r = Conv2d::create(p, ConstTensorView(w.data(), {6, 2, 3, 5}), ConstTensorView());
    CHECK(r.code() == Errc::shape_mismatch);
    r = Conv2d::create(p, ConstTensorView(nullptr, {6, 2, 3, 3}), ConstTensorView());
    CHECK(r.code() == Errc::invalid_argument);
    CHECK(r.message().find("weight") != std::string::npos);
    r = Conv2d::create(p, ConstTensorView(w.data(), {6, 2, 3, 3}), ConstTensorView(b.data(), {5}));
    CHECK(r.code() == Errc::shape_mismatch);
    CHECK(r.message().find("bias shape") != std::string::npos);
    r = Conv2d::create(p, ConstTensorView(w.data(), {6, 2, 3, 3}), ConstTensorView(b.data(), {1, 6}));
    CHECK(r.code() == Errc::shape_mismatch);
    // Parameters whose weight would exceed 2^40 elements are refused, not allocated.
    Conv2dParams huge = params(1 << 20, 1 << 20, 1 << 10, 1);
    r = Conv2d::create(huge, ConstTensorView(w.data(), {1 << 20, 1 << 20, 1 << 10, 1}), ConstTensorView());
    CHECK(r.code() == Errc::invalid_argument);
    CHECK(r.message().find("weight shape") != std::string::npos);
    CHECK(Conv2d::create(p, ConstTensorView(w.data(), {6, 2, 3, 3}), ConstTensorView(b.data(), {6})).ok());
}

TEST_CASE("conv2d run rejects inputs, outputs and workspaces that do not fit") {
    std::vector<float> w(6 * 2 * 9, 0.5f), in(2 * 4 * 8 * 8, 1.0f), out(4096), ws(1 << 16);
    Conv2dParams p = params(4, 6, 3, 3);
    p.groups = 2;
    auto conv = Conv2d::create(p, ConstTensorView(w.data(), {6, 2, 3, 3}), ConstTensorView());
    REQUIRE(conv.ok());
    // Good call for reference.
    CHECK(conv->run(ConstTensorView(in.data(), {2, 4, 8, 8}), TensorView(out.data(), {2, 6, 6, 6}), ws.data()).ok());

    auto st = conv->run(ConstTensorView(in.data(), {2, 4, 64}), TensorView(out.data(), {2, 6, 6, 6}), ws.data());
    CHECK(st.code() == Errc::shape_mismatch);
    CHECK(st.message().find("input rank") != std::string::npos);
    st = conv->run(ConstTensorView(in.data(), {2, 3, 8, 8}), TensorView(out.data(), {2, 6, 6, 6}), ws.data());
    CHECK(st.code() == Errc::shape_mismatch);
    CHECK(st.message().find("input channels: expected 4, found 3") != std::string::npos);
    st = conv->run(ConstTensorView(in.data(), {2, 4, 8, 8}), TensorView(out.data(), {2, 6, 6, 5}), ws.data());
    CHECK(st.code() == Errc::shape_mismatch);
    CHECK(st.message().find("output shape: expected [2, 6, 6, 6], found [2, 6, 6, 5]") != std::string::npos);
    st = conv->run(ConstTensorView(in.data(), {2, 4, 8, 8}), TensorView(out.data(), {1, 6, 6, 6}), ws.data());
    CHECK(st.code() == Errc::shape_mismatch);
    // Output size below 1: 3x3 kernel on a 2x8 input without padding.
    st = conv->run(ConstTensorView(in.data(), {1, 4, 2, 8}), TensorView(out.data(), {1, 6, 1, 6}), ws.data());
    CHECK(st.code() == Errc::shape_mismatch);
    CHECK(st.message().find("output height: expected >= 1, found 0") != std::string::npos);
    auto os = conv->output_shape({1, 4, 8, 2});
    CHECK(os.code() == Errc::shape_mismatch);
    CHECK(os.message().find("output width") != std::string::npos);
    CHECK(conv->output_shape({1, 4, 0, 8}).code() == Errc::invalid_argument);
    // Missing workspace, null buffers, output overlapping the input.
    st = conv->run(ConstTensorView(in.data(), {2, 4, 8, 8}), TensorView(out.data(), {2, 6, 6, 6}), nullptr);
    CHECK(st.code() == Errc::invalid_argument);
    CHECK(st.message().find("workspace: expected") != std::string::npos);
    st = conv->run(ConstTensorView(nullptr, {2, 4, 8, 8}), TensorView(out.data(), {2, 6, 6, 6}), ws.data());
    CHECK(st.code() == Errc::invalid_argument);
    CHECK(st.message().find("input") != std::string::npos);
    st = conv->run(ConstTensorView(in.data(), {2, 4, 8, 8}), TensorView(nullptr, {2, 6, 6, 6}), ws.data());
    CHECK(st.code() == Errc::invalid_argument);
    st = conv->run(ConstTensorView(in.data(), {2, 4, 8, 8}), TensorView(in.data() + 10, {2, 6, 6, 6}), ws.data());
    CHECK(st.code() == Errc::invalid_argument);
    CHECK(st.message().find("overlap") != std::string::npos);
    // The scalar twin validates the same way.
    st = ops::ref::conv2d(p, ConstTensorView(in.data(), {2, 3, 8, 8}), ConstTensorView(w.data(), {6, 2, 3, 3}),
                          ConstTensorView(), TensorView(out.data(), {2, 6, 6, 6}));
    CHECK(st.code() == Errc::shape_mismatch);
}
