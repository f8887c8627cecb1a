// conv_transpose2d: GEMM + col2im against the scatter loop ref::conv_transpose2d,
// the salt-map shape, and every error path.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "salted/core/parallel.hpp"
#include "salted/ops/conv_transpose2d.hpp"
#include "random_floats.hpp"

using namespace salted;
using ops::Activation;
using ops::ConvTranspose2d;
using ops::ConvTranspose2dParams;

namespace {

std::vector<float> random_floats(std::size_t n, uint32_t seed) { return ::random_floats(n, seed, 3u); }

ConvTranspose2dParams params(int64_t cin, int64_t cout, int64_t kh, int64_t kw) {
    ConvTranspose2dParams p;
    p.in_channels = cin;
    p.out_channels = cout;
    p.kernel_h = kh;
    p.kernel_w = kw;
    return p;
}

void check_convt(const ConvTranspose2dParams& p, int64_t batch, int64_t h, int64_t w, bool with_bias, uint32_t seed) {
    Shape wshape({p.in_channels, p.out_channels / p.groups, p.kernel_h, p.kernel_w});
    auto weight = random_floats(wshape.numel(), seed);
    auto bias = random_floats(p.out_channels, seed + 1);
    Shape is({batch, p.in_channels, h, w});
    auto input = random_floats(is.numel(), seed + 2);
    ConstTensorView wv(weight.data(), wshape);
    ConstTensorView bv = with_bias ? ConstTensorView(bias.data(), Shape({p.out_channels})) : ConstTensorView();
    auto op = ConvTranspose2d::create(p, wv, bv);
    REQUIRE_MESSAGE(op.ok(), op.message());
    auto os = op->output_shape(is);
    REQUIRE_MESSAGE(os.ok(), os.message());
    std::vector<float> want(os->numel()), ours(os->numel(), NAN);
    REQUIRE(ops::ref::conv_transpose2d(p, ConstTensorView(input.data(), is), wv, bv, TensorView(want.data(), *os)).ok());
    const std::size_t need = op->workspace_floats(is);
    std::vector<float> ws(need + 32, 555.0f);
    auto st = op->run(ConstTensorView(input.data(), is), TensorView(ours.data(), *os), ws.data());
    REQUIRE_MESSAGE(st.ok(), st.message());
    for (std::size_t i = need; i < ws.size(); ++i) REQUIRE(ws[i] == 555.0f);
    double scale = 1, worst = 0;
    for (float v : want) scale = std::max(scale, double(std::fabs(v)));
    for (std::size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(double(ours[i]) - want[i]));
    INFO("cin=" << p.in_channels << " cout=" << p.out_channels << " k=" << p.kernel_h << "x" << p.kernel_w
                << " s=" << p.stride_h << "," << p.stride_w << " pad=" << p.pad_h << "," << p.pad_w
                << " opad=" << p.output_padding_h << "," << p.output_padding_w << " d=" << p.dilation_h << ","
                << p.dilation_w << " g=" << p.groups << " in=" << batch << "x" << h << "x" << w);
    CHECK(worst <= 1e-5 * scale);
    CHECK(!std::isnan(worst));
}

}  // namespace

TEST_CASE("conv_transpose2d matches ref over a generated grid") {
    const int64_t kernels[][2] = {{1, 1}, {3, 3}, {2, 5}, {4, 4}};
    const Activation acts[] = {Activation::none(), Activation::relu(), Activation::leaky_relu(0.2f)};
    uint32_t seed = 10;
    int ran = 0;
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        for (const auto& k : kernels)
            for (int64_t stride = 1; stride <= 3; ++stride)
                for (int64_t dil = 1; dil <= 2; ++dil)
                    for (int gmode = 0; gmode < 3; ++gmode) {
                        ++seed;
                        const int64_t groups = gmode == 0 ? 1 : gmode == 1 ? 2 : 4;
                        const int64_t cin = gmode == 0 ? 3 : 4, cout = gmode == 0 ? 5 : gmode == 1 ? 6 : 4;
                        ConvTranspose2dParams p = params(cin, cout, k[0], k[1]);
                        p.groups = groups;
                        p.stride_h = stride;
                        p.stride_w = 1 + seed % 3;
                        p.dilation_h = dil;
                        p.dilation_w = 1 + (seed / 2) % 2;
                        // Padding up to half the dilated kernel, so even a 1x1 input has an output.
                        p.pad_h = std::min<int64_t>(seed % 2, (p.kernel_h - 1) * p.dilation_h / 2);
                        p.pad_w = std::min<int64_t>((seed / 3) % 2, (p.kernel_w - 1) * p.dilation_w / 2);
                        // Largest output padding PyTorch accepts: below stride or dilation.
                        p.output_padding_h = (seed % 2) * (std::max(p.stride_h, p.dilation_h) - 1);
                        p.output_padding_w = ((seed / 2) % 2) * (std::max(p.stride_w, p.dilation_w) - 1);
                        p.activation = acts[seed % 3];
                        check_convt(p, seed % 2 ? 1 : 3, 1 + seed % 5, 2 + seed % 6, seed % 4 != 0, seed);
                        ++ran;
                    }
    }
    set_num_threads(0);
    CHECK(ran == 2 * 4 * 3 * 2 * 3);
}

TEST_CASE("conv_transpose2d computes the CNN salt maps: s * W[0, j] + b[j]") {
    // ConvTranspose2d(in=1, out=k, kernel=S, stride=4) on the salt as a (N, 1, 1, 1) tensor.
    for (int64_t S : {5, 8, 16}) {
        const int64_t k = 5;
        ConvTranspose2dParams p = params(1, k, S, S);
        p.stride_h = p.stride_w = 4;
        auto w = random_floats(k * S * S, static_cast<uint32_t>(S));
        auto b = random_floats(k, 77);
        auto op = ConvTranspose2d::create(p, ConstTensorView(w.data(), {1, k, S, S}), ConstTensorView(b.data(), {k}));
        REQUIRE(op.ok());
        const float salts[] = {0.0f, 3.0f, 9.0f};
        auto os = op->output_shape({3, 1, 1, 1});
        REQUIRE(os.ok());
        CHECK(*os == Shape({3, k, S, S}));
        std::vector<float> out(os->numel()), ws(op->workspace_floats({3, 1, 1, 1}));
        REQUIRE(op->run(ConstTensorView(salts, {3, 1, 1, 1}), TensorView(out.data(), *os), ws.data()).ok());
        for (int n = 0; n < 3; ++n)
            for (int64_t j = 0; j < k; ++j)
                for (int64_t i = 0; i < S * S; ++i)
                    CHECK(out[(n * k + j) * S * S + i] == doctest::Approx(salts[n] * w[j * S * S + i] + b[j]).epsilon(1e-6));
        check_convt(p, 2, 1, 1, true, 5);
    }
}

TEST_CASE("conv_transpose2d shape inference") {
    ConvTranspose2dParams p = params(2, 4, 3, 5);
    p.stride_h = 2;
    p.stride_w = 3;
    p.pad_h = 1;
    p.output_padding_h = 1;
    p.dilation_w = 2;
    std::vector<float> w(2 * 4 * 15);
    auto op = ConvTranspose2d::create(p, ConstTensorView(w.data(), {2, 4, 3, 5}), ConstTensorView());
    REQUIRE(op.ok());
    // H: (6-1)*2 - 2 + 1*(3-1) + 1 + 1 = 12; W: (7-1)*3 - 0 + 2*(5-1) + 0 + 1 = 27.
    auto os = op->output_shape({1, 2, 6, 7});
    REQUIRE(os.ok());
    CHECK(*os == Shape({1, 4, 12, 27}));
    CHECK(op->flops({1, 2, 6, 7}) == 2 * 2 * 6 * 7 * 4 * 15);
}

TEST_CASE("conv_transpose2d rejects invalid parameters, naming the field") {
    std::vector<float> w(4096, 0.5f);
    auto try_params = [&](ConvTranspose2dParams p, const char* field, Errc code = Errc::invalid_argument) {
        Shape wshape({std::max<int64_t>(p.in_channels, 1), 2, 3, 3});
        auto r = ConvTranspose2d::create(p, ConstTensorView(w.data(), wshape), ConstTensorView());
        INFO(field);
        CHECK(r.code() == code);
        CHECK_MESSAGE(r.message().find(field) != std::string::npos, r.message());
    };
    auto base = [] { return params(4, 2, 3, 3); };
    ConvTranspose2dParams p;
    p = base(); p.in_channels = 0; try_params(p, "in_channels");
    p = base(); p.out_channels = 0; try_params(p, "out_channels");
    p = base(); p.kernel_h = 0; try_params(p, "kernel_h");
    p = base(); p.kernel_w = 0; try_params(p, "kernel_w");
    p = base(); p.stride_h = 0; try_params(p, "stride_h");
    p = base(); p.stride_w = 0; try_params(p, "stride_w");
    p = base(); p.dilation_h = 0; try_params(p, "dilation_h");
    p = base(); p.dilation_w = -1; try_params(p, "dilation_w");
    p = base(); p.pad_h = -1; try_params(p, "pad_h");
    p = base(); p.pad_w = -1; try_params(p, "pad_w");
    p = base(); p.output_padding_h = -1; try_params(p, "output_padding_h");
    p = base(); p.output_padding_h = 1; try_params(p, "output_padding_h");  // stride 1, dilation 1
    p = base(); p.stride_w = 2; p.output_padding_w = 2; try_params(p, "output_padding_w");
    p = base(); p.groups = 3; try_params(p, "groups");
    p = base(); p.activation = Activation::leaky_relu(NAN); try_params(p, "negative_slope");
    // Output padding below the dilation is accepted (PyTorch's rule), as is below the stride.
    p = base(); p.dilation_h = 3; p.output_padding_h = 2;
    CHECK(ConvTranspose2d::create(p, ConstTensorView(w.data(), {4, 2, 3, 3}), ConstTensorView()).ok());
    p = base(); p.stride_w = 3; p.output_padding_w = 2;
    CHECK(ConvTranspose2d::create(p, ConstTensorView(w.data(), {4, 2, 3, 3}), ConstTensorView()).ok());
    // Weight is [in, out / groups, kh, kw].
    p = base(); p.groups = 2;
    auto r = ConvTranspose2d::create(p, ConstTensorView(w.data(), {4, 2, 3, 3}), ConstTensorView());
    CHECK(r.code() == Errc::shape_mismatch);
    CHECK(r.message().find("weight shape: expected [4, 1, 3, 3]") != std::string::npos);
    r = ConvTranspose2d::create(base(), ConstTensorView(w.data(), {4, 2, 3, 3}), ConstTensorView(w.data(), {4}));
    CHECK(r.code() == Errc::shape_mismatch);
    CHECK(r.message().find("bias shape") != std::string::npos);
}

TEST_CASE("conv_transpose2d run rejects shapes and buffers that do not fit") {
    std::vector<float> w(4 * 2 * 9, 0.5f), in(64, 1.0f), out(1024), ws(1 << 14);
    ConvTranspose2dParams p = params(4, 2, 3, 3);
    p.pad_h = p.pad_w = 2;
    auto op = ConvTranspose2d::create(p, ConstTensorView(w.data(), {4, 2, 3, 3}), ConstTensorView());
    REQUIRE(op.ok());
    CHECK(op->run(ConstTensorView(in.data(), {1, 4, 3, 3}), TensorView(out.data(), {1, 2, 1, 1}), ws.data()).ok());
    // A 1x1 input with padding 2 leaves (1-1)*1 - 4 + 2 + 1 = -1 pixels.
    auto st = op->run(ConstTensorView(in.data(), {1, 4, 1, 1}), TensorView(out.data(), {1, 2, 1, 1}), ws.data());
    CHECK(st.code() == Errc::shape_mismatch);
    CHECK(st.message().find("output height: expected >= 1, found -1") != std::string::npos);
    st = op->run(ConstTensorView(in.data(), {1, 3, 3, 3}), TensorView(out.data(), {1, 2, 1, 1}), ws.data());
    CHECK(st.code() == Errc::shape_mismatch);
    CHECK(st.message().find("input channels") != std::string::npos);
    st = op->run(ConstTensorView(in.data(), {4, 3, 3}), TensorView(out.data(), {1, 2, 1, 1}), ws.data());
    CHECK(st.code() == Errc::shape_mismatch);
    st = op->run(ConstTensorView(in.data(), {1, 4, 3, 3}), TensorView(out.data(), {1, 2, 2, 1}), ws.data());
    CHECK(st.code() == Errc::shape_mismatch);
    CHECK(st.message().find("output shape") != std::string::npos);
    st = op->run(ConstTensorView(in.data(), {1, 4, 3, 3}), TensorView(out.data(), {1, 2, 1, 1}), nullptr);
    CHECK(st.code() == Errc::invalid_argument);
    CHECK(st.message().find("workspace") != std::string::npos);
    st = op->run(ConstTensorView(in.data(), {1, 4, 3, 3}), TensorView(in.data() + 1, {1, 2, 1, 1}), ws.data());
    CHECK(st.code() == Errc::invalid_argument);
    CHECK(st.message().find("overlap") != std::string::npos);
    // Sizes that would overflow are refused.
    ConvTranspose2dParams big = params(1, 1, 1, 1);
    big.stride_h = int64_t(1) << 24;
    std::vector<float> w1(1, 1.0f);
    auto op2 = ConvTranspose2d::create(big, ConstTensorView(w1.data(), {1, 1, 1, 1}), ConstTensorView());
    REQUIRE(op2.ok());
    CHECK(op2->output_shape({1, 1, int64_t(1) << 20, 1}).code() == Errc::shape_mismatch);
}
