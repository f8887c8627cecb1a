// kernels::direct_conv (the packing-free convolution) against the scalar
// definition ops::ref::conv2d, on a grid of awkward shapes: output widths
// that are not a multiple of the tile, channel counts around the panel
// width, strides, dilations, 1-wide kernels; and bit-identical results for
// any thread count.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <vector>

#include "salted/kernels/direct_conv.hpp"
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

// Runs direct_conv on one image; returns the output.
std::vector<float> run_direct(const Case& c, const std::vector<float>& x, const std::vector<float>& w,
                              const std::vector<float>* bias, ops::Activation act, int64_t oh, int64_t ow) {
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
