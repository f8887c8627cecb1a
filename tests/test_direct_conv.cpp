// kernels::direct_conv (the packing-free convolution) against the scalar
// definition ops::ref::conv2d, on a grid of awkward shapes: output widths
// that are not a multiple of the tile, channel counts around the panel
// width, strides, dilations, 1-wide kernels; and bit-identical results for
// any thread count.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "salted/kernels/direct_conv.hpp"
#include "salted/kernels/shallow_conv.hpp"
#include "salted/ops/conv2d.hpp"

using namespace salted;

namespace {

struct Case {
    int64_t cin, cout, h, w, kh, kw, sh, sw, dh, dw;
};

std::vector<float> random_vector(std::size_t n, std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (float& x : v) x = u(rng);
    return v;
}

// The case's geometry (the input already padded) with the given output size.
kernels::DirectConvGeometry geometry(const Case& c, int64_t oh, int64_t ow) {
    kernels::DirectConvGeometry g;
    g.channels = c.cin;
    g.in_h = c.h;
    g.in_w = c.w;
    g.kernel_h = c.kh;
    g.kernel_w = c.kw;
    g.stride_h = c.sh;
    g.stride_w = c.sw;
    g.dilation_h = c.dh;
    g.dilation_w = c.dw;
    g.out_h = oh;
    g.out_w = ow;
    g.out_channels = c.cout;
    return g;
}

// Runs direct_conv on one image; returns the output.
std::vector<float> run_direct(const Case& c, const std::vector<float>& x, const std::vector<float>& w,
                              const std::vector<float>* bias, ops::Activation act, int64_t oh, int64_t ow) {
    const kernels::DirectConvGeometry g = geometry(c, oh, ow);
    auto packed = Tensor::empty(Shape({kernels::direct_conv_packed_floats(c.cout, g.k())}));
    REQUIRE(packed.ok());
    kernels::direct_conv_pack_weights(c.cout, g.k(), w.data(), packed->data());
    std::vector<int32_t> koff(static_cast<std::size_t>(g.k()));
    kernels::direct_conv_offsets(g, koff.data());
    std::vector<float> out(static_cast<std::size_t>(c.cout * oh * ow), -7.0f);
    kernels::direct_conv(g, x.data(), packed->data(), koff.data(), bias ? bias->data() : nullptr, act, out.data());
    return out;
}

}  // namespace

TEST_CASE("direct_conv matches the scalar convolution on awkward shapes") {
    std::mt19937 rng(42);
    const Case cases[] = {
        {1, 1, 1, 1, 1, 1, 1, 1, 1, 1},    {3, 32, 12, 12, 5, 5, 1, 1, 1, 1},  {32, 32, 12, 12, 5, 5, 1, 1, 1, 1},
        {5, 33, 9, 17, 3, 3, 1, 1, 1, 1},  {7, 31, 10, 23, 1, 5, 1, 2, 1, 1},  {4, 64, 11, 19, 3, 5, 2, 2, 1, 1},
        {6, 100, 6, 14, 1, 5, 2, 2, 1, 1}, {2, 65, 13, 13, 3, 3, 1, 1, 2, 2},  {9, 8, 7, 40, 2, 3, 3, 1, 1, 3},
        {16, 40, 5, 9, 5, 9, 1, 1, 1, 1},  {3, 1, 20, 3, 3, 3, 1, 1, 1, 1},
    };
    for (const Case& c : cases)
        for (int variant = 0; variant < 3; ++variant) {
            CAPTURE(c.cin);
            CAPTURE(c.cout);
            CAPTURE(c.h);
            CAPTURE(c.w);
            CAPTURE(c.kh);
            CAPTURE(c.kw);
            CAPTURE(variant);
            ops::Conv2dParams p;
            p.in_channels = c.cin;
            p.out_channels = c.cout;
            p.kernel_h = c.kh;
            p.kernel_w = c.kw;
            p.stride_h = c.sh;
            p.stride_w = c.sw;
            p.dilation_h = c.dh;
            p.dilation_w = c.dw;
            p.activation = variant == 0 ? ops::Activation::none()
                           : variant == 1 ? ops::Activation::relu()
                                          : ops::Activation::leaky_relu(0.1f);
            const bool with_bias = variant != 1;
            auto x = random_vector(static_cast<std::size_t>(c.cin * c.h * c.w), rng);
            auto w = random_vector(static_cast<std::size_t>(c.cout * c.cin * c.kh * c.kw), rng);
            auto b = random_vector(static_cast<std::size_t>(c.cout), rng);
            const Shape is({1, c.cin, c.h, c.w});
            auto os = ops::detail::conv2d_output_shape(p, is);
            REQUIRE(os.ok());
            auto ref = Tensor::empty(*os);
            REQUIRE(ref.ok());
            REQUIRE(ops::ref::conv2d(p, ConstTensorView(x.data(), is),
                                     ConstTensorView(w.data(), Shape({c.cout, c.cin, c.kh, c.kw})),
                                     with_bias ? ConstTensorView(b.data(), Shape({c.cout})) : ConstTensorView(),
                                     ref->view())
                        .ok());
            const auto got = run_direct(c, x, w, with_bias ? &b : nullptr, p.activation, (*os)[2], (*os)[3]);
            const double tol = 1e-5 * std::max<double>(1.0, std::sqrt(static_cast<double>(c.cin * c.kh * c.kw)));
            int bad = 0;
            for (int64_t i = 0; i < os->numel(); ++i)
                if (!(std::fabs(got[static_cast<std::size_t>(i)] - ref->data()[i]) <= tol)) ++bad;
            CHECK(bad == 0);
        }
}

TEST_CASE("direct_conv gives the same bits on 1, 2 and 3 threads") {
    std::mt19937 rng(7);
    const Case c{24, 70, 17, 29, 3, 5, 1, 1, 1, 1};
    auto x = random_vector(static_cast<std::size_t>(c.cin * c.h * c.w), rng);
    auto w = random_vector(static_cast<std::size_t>(c.cout * c.cin * c.kh * c.kw), rng);
    auto b = random_vector(static_cast<std::size_t>(c.cout), rng);
    const int64_t oh = c.h - c.kh + 1, ow = c.w - c.kw + 1;
    set_parallel_min_flops(1000);
    set_num_threads(1);
    const auto one = run_direct(c, x, w, &b, ops::Activation::relu(), oh, ow);
    for (int t : {2, 3}) {
        set_num_threads(t);
        CHECK(run_direct(c, x, w, &b, ops::Activation::relu(), oh, ow) == one);
    }
    set_num_threads(0);
    set_parallel_min_flops(default_parallel_min_flops);
}

namespace {

const ops::Activation all_activations[] = {ops::Activation::none(), ops::Activation::relu(),
                                           ops::Activation::leaky_relu(0.2f)};

// Random weights [Cout, K] and bias for a shallow layer, and its offset table.
struct ShallowLayer {
    std::vector<float> w, bias;
    std::vector<int32_t> koff;
};
ShallowLayer shallow_layer(const kernels::DirectConvGeometry& g, std::mt19937& rng) {
    ShallowLayer l;
    l.w = random_vector(static_cast<std::size_t>(g.out_channels * g.k()), rng);
    l.bias = random_vector(static_cast<std::size_t>(g.out_channels), rng);
    l.koff.resize(static_cast<std::size_t>(g.k()));
    kernels::direct_conv_offsets(g, l.koff.data());
    return l;
}

}  // namespace

// The shallow convolution picks half or full vectors by CPU
// (simd::wide_vectors_split()), so conv2d's tests reach only one of them on
// a given machine. Both, called directly here, must give the same bits, and
// the scalar convolution's values (within rounding), with every activation.
TEST_CASE("shallow_conv: half and full vectors give the same bits, and the scalar convolution's values") {
    std::mt19937 rng(7);
    // Output widths: 24 (half vectors' case), 13, 196 (row spill), 5.
    // Then patches of K <= 5 (shallow_conv_tiles_short, inputs held in
    // registers): K = 3, 4, 2, 1, 5 with odd Cout (a last, partial channel
    // block), partial row vectors, row strides and dilation.
    const Case cases[] = {{1, 32, 28, 28, 5, 5, 1, 1, 1, 1}, {2, 16, 20, 17, 3, 5, 2, 1, 1, 1},
                          {1, 64, 3, 200, 1, 5, 1, 1, 1, 1}, {1, 5, 9, 9, 3, 5, 1, 1, 2, 1},
                          {1, 7, 4, 23, 1, 3, 1, 1, 1, 1},   {2, 5, 6, 13, 2, 1, 2, 1, 1, 1},
                          {1, 9, 5, 40, 2, 1, 1, 1, 2, 1},   {1, 3, 3, 17, 1, 1, 1, 1, 1, 1},
                          {5, 6, 4, 35, 1, 1, 1, 1, 1, 1},
                          // An image whose last tile has fewer vectors than
                          // the tile (run one vector at a time): LeNet-CIFAR's
                          // conv1 (3 x 8 tiles), and Cout = 12 (4 x 4 tiles).
                          {3, 32, 32, 32, 5, 5, 1, 1, 1, 1}, {2, 12, 9, 40, 3, 3, 1, 1, 1, 1}};
    for (const Case& c : cases) {
        CAPTURE(c.cin);
        CAPTURE(c.w);
        const kernels::DirectConvGeometry g = geometry(c, (c.h - c.dh * (c.kh - 1) - 1) / c.sh + 1,
                                                       (c.w - c.dw * (c.kw - 1) - 1) / c.sw + 1);
        REQUIRE(kernels::shallow_conv_shape(g.k(), c.sw, c.dw, 1));
        std::vector<float> x = random_vector(static_cast<std::size_t>(c.cin * c.h * c.w + kernels::shallow_conv_slack),
                                             rng);
        const ShallowLayer l = shallow_layer(g, rng);
        for (const ops::Activation& act : all_activations) {
            const std::size_t n = static_cast<std::size_t>(c.cout * g.out_h * g.out_w);
            std::vector<float> half(n, -7.0f), full(n, -7.0f);
            ops::with_activation_kind(act, [&](auto fixed) {
                kernels::detail::shallow_conv_with<kernels::HalfFloatBatch>(g, x.data(), l.w.data(), l.koff.data(),
                                                                            l.bias.data(), fixed, half.data());
                kernels::detail::shallow_conv_with<simd::FloatBatch>(g, x.data(), l.w.data(), l.koff.data(),
                                                                     l.bias.data(), fixed, full.data());
            });
            CHECK(half == full);
            double worst = 0;
            for (int64_t co = 0; co < c.cout; ++co)
                for (int64_t oy = 0; oy < g.out_h; ++oy)
                    for (int64_t ox = 0; ox < g.out_w; ++ox) {
                        double s = l.bias[static_cast<std::size_t>(co)];
                        for (int64_t ci = 0; ci < c.cin; ++ci)
                            for (int64_t ky = 0; ky < c.kh; ++ky)
                                for (int64_t kx = 0; kx < c.kw; ++kx)
                                    s += double(l.w[static_cast<std::size_t>(((co * c.cin + ci) * c.kh + ky) * c.kw + kx)]) *
                                         x[static_cast<std::size_t>((ci * c.h + oy * c.sh + ky * c.dh) * c.w + ox + kx)];
                        const float want = act.apply(static_cast<float>(s));
                        worst = std::max(worst, std::fabs(double(full[static_cast<std::size_t>((co * g.out_h + oy) * g.out_w + ox)]) - want));
                    }
            CHECK(worst < 1e-5);
        }
    }
}

// The compacted image (rows that are not whole vectors) runs the same sums
// in the same order as the row-by-row kernel: the same bits, with padding
// on every side, dilated kernel rows and every activation.
TEST_CASE("shallow_conv_compacted: the same bits as the row-by-row shallow convolution") {
    std::mt19937 rng(11);
    struct Padded {
        Case c;  // c.h, c.w: the unpadded image
        int64_t pad_top, pad_left, pad_bottom, pad_right;
    };
    const Padded cases[] = {{{1, 32, 28, 28, 5, 5, 1, 1, 1, 1}, 0, 0, 0, 0},    // LeNet-MNIST: 24-wide rows
                            {{1, 64, 27, 200, 1, 5, 1, 1, 1, 1}, 0, 0, 0, 0},   // the sensor net: 196
                            {{3, 10, 11, 5, 2, 3, 1, 1, 2, 1}, 1, 1, 1, 1},     // rows narrower than a vector
                            {{2, 7, 9, 37, 3, 4, 1, 1, 1, 1}, 2, 0, 1, 3},      // asymmetric padding
                            {{8, 5, 13, 17, 2, 2, 1, 1, 1, 1}, 0, 1, 0, 0},    // K = 32
                            {{1, 7, 6, 21, 1, 3, 1, 1, 1, 1}, 0, 1, 2, 1},     // K = 3, Cout odd
                            {{4, 32, 32, 32, 5, 5, 1, 1, 1, 1}, 0, 0, 0, 0}};  // salted LeNet's 4->32: a partial last tile
    int compacted = 0;
    for (const Padded& pc : cases) {
        const Case& c = pc.c;
        CAPTURE(c.w);
        Case padded = c;
        padded.h = c.h + pc.pad_top + pc.pad_bottom;
        padded.w = c.w + pc.pad_left + pc.pad_right;
        const kernels::DirectConvGeometry g = geometry(padded, padded.h - c.dh * (c.kh - 1),
                                                       padded.w - c.dw * (c.kw - 1));
        REQUIRE(kernels::shallow_conv_shape(g.k(), c.sw, c.dw, 1));
        // Rows that are whole vectors are not compacted: which are depends
        // on the vector width (24 is 6 NEON vectors, 1.5 AVX-512 ones).
        if (!kernels::shallow_conv_compacts(g)) continue;
        ++compacted;
        const std::vector<float> x = random_vector(static_cast<std::size_t>(c.cin * c.h * c.w), rng);
        std::vector<float> xp(static_cast<std::size_t>(c.cin * padded.h * padded.w + kernels::shallow_conv_slack), 0.0f);
        for (int64_t ci = 0; ci < c.cin; ++ci)
            for (int64_t y = 0; y < c.h; ++y)
                for (int64_t i = 0; i < c.w; ++i)
                    xp[static_cast<std::size_t>((ci * padded.h + y + pc.pad_top) * padded.w + i + pc.pad_left)] =
                        x[static_cast<std::size_t>((ci * c.h + y) * c.w + i)];
        std::vector<float> xc(static_cast<std::size_t>(kernels::shallow_compact_floats(g)), -9.0f);
        kernels::shallow_compact_image(g, x.data(), c.h, c.w, pc.pad_top, pc.pad_left, xc.data());
        const ShallowLayer l = shallow_layer(g, rng);
        for (const ops::Activation& act : all_activations) {
            const std::size_t n = static_cast<std::size_t>(c.cout * g.out_h * g.out_w);
            std::vector<float> rows(n, -7.0f), compact(n, -7.0f);
            ops::with_activation_kind(act, [&](auto fixed) {
                kernels::detail::shallow_conv_with<simd::FloatBatch>(g, xp.data(), l.w.data(), l.koff.data(),
                                                                     l.bias.data(), fixed, rows.data());
            });
            kernels::shallow_conv_compacted(g, xc.data(), l.w.data(), l.bias.data(), act, compact.data());
            CHECK(rows == compact);
        }
    }
    CHECK(compacted >= 4);  // 7 with AVX-512, 6 with AVX2, 5 with NEON or SSE
}

// The compacted image itself, against its definition: plane (c, kx), row
// iy, column ox = padded input (c, iy, ox + kx), then the zero slack. Rows
// without column padding are packed as whole blended vectors (pack_rows);
// widths around multiples of the vector, 1 to 7 rows, padding or not.
TEST_CASE("shallow_compact_image: every plane, row and column as defined, the slack zero") {
    std::mt19937 rng(12);
    const int64_t W = static_cast<int64_t>(simd::width);
    int checked = 0;
    for (int64_t out_w : {W - 1, W + 1, W + W / 2, 2 * W - 1, 3 * W + 5})
        for (int64_t rows : {1, 2, 3, 7})
            for (int64_t pad : {0, 1}) {
                const int64_t cin = 2, kh = 2, kw = 3, w = out_w + kw - 1 - 2 * pad, h = rows + kh - 1 - 2 * pad;
                if (w < 1 || h < 1) continue;
                Case c{cin, 3, h + 2 * pad, w + 2 * pad, kh, kw, 1, 1, 1, 1};
                const kernels::DirectConvGeometry g = geometry(c, rows, out_w);
                if (!kernels::shallow_conv_compacts(g)) continue;
                CAPTURE(out_w);
                CAPTURE(rows);
                CAPTURE(pad);
                const std::vector<float> x = random_vector(static_cast<std::size_t>(cin * h * w), rng);
                std::vector<float> xc(static_cast<std::size_t>(kernels::shallow_compact_floats(g)), -9.0f);
                kernels::shallow_compact_image(g, x.data(), h, w, pad, pad, xc.data());
                bool same = true;
                for (int64_t ci = 0; ci < cin; ++ci)
                    for (int64_t kx = 0; kx < kw; ++kx)
                        for (int64_t iy = 0; iy < g.in_h; ++iy)
                            for (int64_t ox = 0; ox < out_w; ++ox) {
                                const int64_t sy = iy - pad, sx = ox + kx - pad;
                                const float want = sy >= 0 && sy < h && sx >= 0 && sx < w
                                                       ? x[static_cast<std::size_t>((ci * h + sy) * w + sx)]
                                                       : 0.0f;
                                same = same && xc[static_cast<std::size_t>(((ci * kw + kx) * g.in_h + iy) * out_w + ox)] == want;
                            }
                for (int64_t i = kernels::shallow_compact_floats(g) - kernels::shallow_conv_slack;
                     i < kernels::shallow_compact_floats(g); ++i)
                    same = same && xc[static_cast<std::size_t>(i)] == 0.0f;
                CHECK(same);
                ++checked;
            }
    CHECK(checked >= 20);
}
