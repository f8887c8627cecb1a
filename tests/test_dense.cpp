// dense (nn.Linear): packed-weight GEMM against ref::dense, and error paths.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "salted/core/parallel.hpp"
#include "salted/ops/dense.hpp"
#include "random_floats.hpp"

using namespace salted;
using ops::Activation;
using ops::Dense;
using ops::DenseParams;

namespace {

std::vector<float> random_floats(std::size_t n, uint32_t seed) { return ::random_floats(n, seed, 5u); }

}  // namespace

TEST_CASE("dense matches ref over batch, feature and activation grids") {
    const Activation acts[] = {Activation::none(), Activation::relu(), Activation::leaky_relu(0.01f)};
    uint32_t seed = 0;
    int ran = 0;
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        for (int64_t batch : {1, 2, 7, 9, 33})
            for (int64_t in : {1, 5, 16, 17, 300})
                for (int64_t out : {1, 7, 31, 32, 33, 120}) {
                    ++seed;
                    DenseParams p{in, out, acts[seed % 3]};
                    const bool with_bias = seed % 4 != 0;
                    auto w = random_floats(in * out, seed);
                    auto b = random_floats(out, seed + 1);
                    auto x = random_floats(batch * in, seed + 2);
                    ConstTensorView wv(w.data(), {out, in});
                    ConstTensorView bv = with_bias ? ConstTensorView(b.data(), {out}) : ConstTensorView();
                    auto d = Dense::create(p, wv, bv);
                    REQUIRE_MESSAGE(d.ok(), d.message());
                    auto os = d->output_shape({batch, in});
                    REQUIRE(os.ok());
                    CHECK(*os == Shape({batch, out}));
                    CHECK(d->flops({batch, in}) == 2 * batch * in * out);
                    std::vector<float> want(batch * out), ours(batch * out, NAN);
                    REQUIRE(ops::ref::dense(p, ConstTensorView(x.data(), {batch, in}), wv, bv,
                                            TensorView(want.data(), *os)).ok());
                    const std::size_t need = d->workspace_floats({batch, in});
                    std::vector<float> ws(need + 16, 42.0f);
                    REQUIRE(d->run(ConstTensorView(x.data(), {batch, in}), TensorView(ours.data(), *os), ws.data()).ok());
                    for (std::size_t i = need; i < ws.size(); ++i) REQUIRE(ws[i] == 42.0f);
                    double worst = 0;
                    for (std::size_t i = 0; i < want.size(); ++i)
                        worst = std::max(worst, std::fabs(double(ours[i]) - want[i]));
                    INFO("threads=" << threads << " batch=" << batch << " in=" << in << " out=" << out);
                    CHECK(worst <= 1e-6 * (1 + in));
                    ++ran;
                }
    }
    set_num_threads(0);
    CHECK(ran == 2 * 5 * 5 * 6);
}

TEST_CASE("dense batch 100 of LeNet's fc1 on two threads equals one thread bit for bit") {
    const int64_t batch = 100, in = 800, out = 120;
    auto w = random_floats(in * out, 1);
    auto b = random_floats(out, 2);
    auto x = random_floats(batch * in, 3);
    auto d = Dense::create({in, out, Activation::relu()}, ConstTensorView(w.data(), {out, in}),
                           ConstTensorView(b.data(), {out}));
    REQUIRE(d.ok());
    std::vector<float> ws(d->workspace_floats({batch, in})), y1(batch * out), y2(batch * out);
    set_num_threads(1);
    REQUIRE(d->run(ConstTensorView(x.data(), {batch, in}), TensorView(y1.data(), {batch, out}), ws.data()).ok());
    set_num_threads(2);
    REQUIRE(d->run(ConstTensorView(x.data(), {batch, in}), TensorView(y2.data(), {batch, out}), ws.data()).ok());
    set_num_threads(0);
    CHECK(y1 == y2);
}

TEST_CASE("dense rejects bad parameters, weights and shapes, naming the field") {
    std::vector<float> w(64, 1.0f), x(64, 1.0f), y(64), ws(1024);
    auto r = Dense::create({0, 4, {}}, ConstTensorView(w.data(), {4, 1}), ConstTensorView());
    CHECK(r.code() == Errc::invalid_argument);
    CHECK(r.message().find("in_features") != std::string::npos);
    r = Dense::create({4, -2, {}}, ConstTensorView(w.data(), {4, 4}), ConstTensorView());
    CHECK(r.code() == Errc::invalid_argument);
    CHECK(r.message().find("out_features") != std::string::npos);
    r = Dense::create({4, 2, Activation::leaky_relu(NAN)}, ConstTensorView(w.data(), {2, 4}), ConstTensorView());
    CHECK(r.code() == Errc::invalid_argument);
    CHECK(r.message().find("negative_slope") != std::string::npos);
    r = Dense::create({4, 2, {}}, ConstTensorView(w.data(), {4, 2}), ConstTensorView());  // transposed weight
    CHECK(r.code() == Errc::shape_mismatch);
    CHECK(r.message().find("dense: weight shape: expected [2, 4], found [4, 2]") != std::string::npos);
    r = Dense::create({4, 2, {}}, ConstTensorView(nullptr, {2, 4}), ConstTensorView());
    CHECK(r.code() == Errc::invalid_argument);
    r = Dense::create({4, 2, {}}, ConstTensorView(w.data(), {2, 4}), ConstTensorView(w.data(), {4}));
    CHECK(r.code() == Errc::shape_mismatch);
    CHECK(r.message().find("bias shape") != std::string::npos);

    auto d = Dense::create({4, 2, {}}, ConstTensorView(w.data(), {2, 4}), ConstTensorView(w.data(), {2}));
    REQUIRE(d.ok());
    CHECK(d->run(ConstTensorView(x.data(), {3, 4}), TensorView(y.data(), {3, 2}), ws.data()).ok());
    auto st = d->run(ConstTensorView(x.data(), {1, 1, 2, 2}), TensorView(y.data(), {1, 2}), ws.data());
    CHECK(st.code() == Errc::shape_mismatch);
    CHECK(st.message().find("input rank: expected 2") != std::string::npos);
    st = d->run(ConstTensorView(x.data(), {3, 5}), TensorView(y.data(), {3, 2}), ws.data());
    CHECK(st.code() == Errc::shape_mismatch);
    CHECK(st.message().find("input features: expected 4, found 5") != std::string::npos);
    st = d->run(ConstTensorView(x.data(), {3, 4}), TensorView(y.data(), {3, 3}), ws.data());
    CHECK(st.code() == Errc::shape_mismatch);
    CHECK(st.message().find("output shape: expected [3, 2], found [3, 3]") != std::string::npos);
    st = d->run(ConstTensorView(x.data(), {3, 4}), TensorView(y.data(), {3, 2}), nullptr);
    CHECK(st.code() == Errc::invalid_argument);
    CHECK(st.message().find("workspace") != std::string::npos);
    st = d->run(ConstTensorView(x.data(), {3, 4}), TensorView(x.data() + 2, {3, 2}), ws.data());
    CHECK(st.code() == Errc::invalid_argument);
    CHECK(st.message().find("overlap") != std::string::npos);
    CHECK(d->output_shape({0, 4}).code() == Errc::invalid_argument);
    CHECK(d->workspace_floats({3, 5}) == 0);
    CHECK(d->flops({3, 5}) == 0);
}
