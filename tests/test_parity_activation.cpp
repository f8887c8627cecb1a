#include "parity_util.hpp"
#include "salted/ops/activation.hpp"

using namespace salted;

TEST_SUITE("parity") {
TEST_CASE("relu and leaky relu match PyTorch") {
    for (const auto& c : parity::load_family("activation")) {
        auto in = c.array("input");
        auto want = c.array("output");
        ops::Activation act = c.i("kind") == 1 ? ops::Activation::relu()
                                               : ops::Activation::leaky_relu(static_cast<float>(c.f("slope")));
        auto out = Tensor::empty(in.shape());
        REQUIRE(ops::activation(act, in.view(), out->view()).ok());
        parity::check_close(c.name, out->view(), want.view());
    }
}
}
