// conv2d layers that take the Winograd F(4x4, 3x3), F(2x2, 3x3) or
// F(2x2, 5x5) path or the row Winograd against PyTorch (cases written by tests/parity/gen_winograd.py),
// on 1 and 2 threads.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "parity_util.hpp"
#include "salted/core/parallel.hpp"
#include "salted/ops/conv2d.hpp"

using namespace salted;

TEST_SUITE("parity") {
TEST_CASE("conv2d through Winograd (3x3 F(4x4) and F(2x2), 5x5 F(2x2), and row) matches PyTorch") {
    int checked = 0, winograd = 0, rows = 0, f23 = 0, f25 = 0;
    double worst = 0;
    std::string worst_case;
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        for (const auto& c : parity::load_family("winograd")) {
            ops::Conv2dParams p;
            p.in_channels = c.i("cin");
            p.out_channels = c.i("cout");
            p.kernel_h = c.i("kh");
            p.kernel_w = c.i("kw");
            p.stride_h = c.i("sh");
            p.stride_w = c.i("sw");
            p.pad_top = c.i("pt");
            p.pad_left = c.i("pl");
            p.pad_bottom = c.i("pb");
            p.pad_right = c.i("pr");
            const int64_t act = c.i("act");
            p.activation = act == 1   ? ops::Activation::relu()
                           : act == 2 ? ops::Activation::leaky_relu(static_cast<float>(c.f("slope")))
                                      : ops::Activation::none();
            auto in = c.array("input");
            auto w = c.array("weight");
            Tensor b = c.has_array("bias") ? c.array("bias") : Tensor();
            auto want = c.array("output");
            // Told the input size, as a model's layers are: small maps get F(2x2).
            auto conv = ops::Conv2d::create(p, w.view(), b.view(), in.shape());
            REQUIRE_MESSAGE(conv.ok(), conv.message());
            INFO(c.name << " threads=" << threads);
            CHECK(conv->uses_winograd(in.shape()) == (c.i("expect_winograd") == 1));
            CHECK(conv->uses_row_winograd(in.shape()) == (c.i("expect_row") == 1));
            CHECK(conv->uses_winograd_2x2(in.shape()) == (c.i("expect_2x2") == 1));
            CHECK(conv->uses_winograd_5x5(in.shape()) == (c.i("expect_5x5") == 1));
            auto out = Tensor::empty(want.shape());
            REQUIRE(out.ok());
            std::vector<float> ws(conv->workspace_floats(in.shape()));
            auto st = conv->run(in.view(), out->view(), ws.data());
            REQUIRE_MESSAGE(st.ok(), st.message());
            parity::check_close(c.name, out->view(), want.view());
            const double rel = parity::max_abs_diff(out->view(), want.view()) /
                               std::max(1.0, parity::max_abs(want.view()));
            if (rel > worst) {
                worst = rel;
                worst_case = c.name;
            }
            winograd += conv->uses_winograd(in.shape()) ? 1 : 0;
            rows += conv->uses_row_winograd(in.shape()) ? 1 : 0;
            f23 += conv->uses_winograd_2x2(in.shape()) ? 1 : 0;
            f25 += conv->uses_winograd_5x5(in.shape()) ? 1 : 0;
            ++checked;
        }
    }
    set_num_threads(0);
    MESSAGE("largest max|diff| / max(1, max|torch|): " << worst << " (" << worst_case << "); tolerance 1e-4");
    CHECK(checked >= 2 * 20);
    CHECK(winograd >= 2 * 12);
    CHECK(rows >= 2 * 6);
    CHECK(f23 >= 2 * 5);
    CHECK(f25 >= 2 * 4);
}
}
