// conv2d, conv_transpose2d and dense against PyTorch (cases written by
// tests/parity/gen_conv.py). Both the fast ops and their scalar twins are checked.
#include <string>
#include <vector>

#include "parity_util.hpp"
#include "salted/core/parallel.hpp"
#include "salted/ops/conv2d.hpp"
#include "salted/ops/conv_transpose2d.hpp"
#include "salted/ops/dense.hpp"

using namespace salted;

namespace {

ops::Activation activation_of(const parity::Case& c) {
    switch (c.i("act")) {
        case 1: return ops::Activation::relu();
        case 2: return ops::Activation::leaky_relu(static_cast<float>(c.f("slope")));
        default: return ops::Activation::none();
    }
}

// Runs a created op into a fresh tensor with exactly the workspace it asks for.
template <class Op>
Tensor run_op(const Op& op, const Tensor& input) {
    auto os = op.output_shape(input.shape());
    REQUIRE_MESSAGE(os.ok(), os.message());
    auto out = Tensor::empty(*os);
    REQUIRE(out.ok());
    std::vector<float> ws(op.workspace_floats(input.shape()));
    auto st = op.run(input.view(), out->view(), ws.data());
    REQUIRE_MESSAGE(st.ok(), st.message());
    return std::move(out).value();
}

void check_conv2d(const parity::Case& c) {
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
    p.dilation_h = c.i("dh");
    p.dilation_w = c.i("dw");
    p.groups = c.i("groups");
    p.activation = activation_of(c);
    auto in = c.array("input");
    auto w = c.array("weight");
    Tensor b = c.has_array("bias") ? c.array("bias") : Tensor();
    auto want = c.array("output");
    auto conv = ops::Conv2d::create(p, w.view(), b.view());
    REQUIRE_MESSAGE(conv.ok(), conv.message());
    parity::check_close(c.name + " (fast)", run_op(*conv, in).view(), want.view());
    auto ref_out = Tensor::empty(want.shape());
    REQUIRE(ops::ref::conv2d(p, in.view(), w.view(), b.view(), ref_out->view()).ok());
    parity::check_close(c.name + " (ref)", ref_out->view(), want.view());
}

void check_conv_transpose2d(const parity::Case& c) {
    ops::ConvTranspose2dParams p;
    p.in_channels = c.i("cin");
    p.out_channels = c.i("cout");
    p.kernel_h = c.i("kh");
    p.kernel_w = c.i("kw");
    p.stride_h = c.i("sh");
    p.stride_w = c.i("sw");
    p.pad_h = c.i("ph");
    p.pad_w = c.i("pw");
    p.output_padding_h = c.i("oph");
    p.output_padding_w = c.i("opw");
    p.dilation_h = c.i("dh");
    p.dilation_w = c.i("dw");
    p.groups = c.i("groups");
    auto in = c.array("input");
    auto w = c.array("weight");
    Tensor b = c.has_array("bias") ? c.array("bias") : Tensor();
    auto want = c.array("output");
    auto op = ops::ConvTranspose2d::create(p, w.view(), b.view());
    REQUIRE_MESSAGE(op.ok(), op.message());
    parity::check_close(c.name + " (fast)", run_op(*op, in).view(), want.view());
    auto ref_out = Tensor::empty(want.shape());
    REQUIRE(ops::ref::conv_transpose2d(p, in.view(), w.view(), b.view(), ref_out->view()).ok());
    parity::check_close(c.name + " (ref)", ref_out->view(), want.view());
}

void check_dense(const parity::Case& c) {
    ops::DenseParams p{c.i("in"), c.i("out"), activation_of(c)};
    auto in = c.array("input");
    auto w = c.array("weight");
    Tensor b = c.has_array("bias") ? c.array("bias") : Tensor();
    auto want = c.array("output");
    auto d = ops::Dense::create(p, w.view(), b.view());
    REQUIRE_MESSAGE(d.ok(), d.message());
    parity::check_close(c.name + " (fast)", run_op(*d, in).view(), want.view());
    auto ref_out = Tensor::empty(want.shape());
    REQUIRE(ops::ref::dense(p, in.view(), w.view(), b.view(), ref_out->view()).ok());
    parity::check_close(c.name + " (ref)", ref_out->view(), want.view());
}

}  // namespace

TEST_SUITE("parity") {
TEST_CASE("conv2d, conv_transpose2d and dense match PyTorch") {
    int counts[4] = {0, 0, 0, 0};
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        for (const auto& c : parity::load_family("conv")) {
            const int64_t op = c.i("op");
            REQUIRE_MESSAGE(op >= 1, c.name);
            REQUIRE_MESSAGE(op <= 3, c.name);
            if (op == 1) check_conv2d(c);
            if (op == 2) check_conv_transpose2d(c);
            if (op == 3) check_dense(c);
            ++counts[op];
        }
    }
    set_num_threads(0);
    // Every op family is present (the generator has not silently lost cases).
    CHECK(counts[1] >= 2 * 14);
    CHECK(counts[2] >= 2 * 6);
    CHECK(counts[3] >= 2 * 5);
}
}
