#include <doctest/doctest.h>

#include "salted/salted.hpp"
#include "salted/io/npy.hpp"

using namespace salted;

TEST_CASE("result carries a value or an error") {
    Result<int> ok = 3;
    CHECK(ok.ok());
    CHECK(*ok == 3);
    Result<int> bad = make_error(Errc::shape_mismatch, "op: input: expected %d, found %d", 1, 2);
    CHECK(!bad.ok());
    CHECK(bad.code() == Errc::shape_mismatch);
    CHECK(bad.message() == "op: input: expected 1, found 2");
}

TEST_CASE("shape validation rejects zero, negative and huge dims") {
    CHECK(Shape({1, 3, 32, 32}).validate().ok());
    CHECK(Shape({1, 3, 32, 32}).numel() == 3072);
    CHECK(!Shape({1, 0, 4}).validate().ok());
    CHECK(!Shape({1, -2}).validate().ok());
    CHECK(!Shape({int64_t(1) << 30, int64_t(1) << 30}).validate().ok());
    CHECK(Shape({2, 3}).str() == "[2, 3]");
}

TEST_CASE("tensor storage is 64-byte aligned and move-only") {
    auto t = Tensor::zeros({2, 3, 5, 7});
    REQUIRE(t.ok());
    CHECK(reinterpret_cast<uintptr_t>(t->data()) % 64 == 0);
    CHECK(t->numel() == 210);
    Tensor moved = std::move(t.value());
    CHECK(moved.numel() == 210);
    CHECK(!moved.reshape({3, 70}).ok() == false);
    CHECK(!moved.reshape({3, 71}).ok());
    CHECK(!Tensor::empty({0, 3}).ok());
}

TEST_CASE("npy round trip and malformed files") {
    auto t = Tensor::empty({2, 3});
    REQUIRE(t.ok());
    for (int i = 0; i < 6; ++i) (*t)[i] = 0.5f * i - 1;
    auto bytes = io::encode_npy(t->view());
    auto back = io::parse_npy(bytes.data(), bytes.size(), "mem");
    REQUIRE(back.ok());
    CHECK(back->shape == Shape({2, 3}));
    auto bt = back->to_tensor();
    REQUIRE(bt.ok());
    for (int i = 0; i < 6; ++i) CHECK((*bt)[i] == (*t)[i]);
    // Every truncation is an error, never a crash.
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        auto r = io::parse_npy(bytes.data(), n, "mem");
        CHECK(!r.ok());
    }
    auto wrong = bytes;
    wrong[1] = 'X';
    CHECK(!io::parse_npy(wrong.data(), wrong.size(), "mem").ok());
}

TEST_CASE("activation matches its scalar twin") {
    for (int64_t n : {1, 7, 16, 33, 1000}) {
        auto in = Tensor::empty({1, n});
        REQUIRE(in.ok());
        for (int64_t i = 0; i < n; ++i) (*in)[i] = float(i % 7) - 3.5f;
        for (auto act : {ops::Activation::relu(), ops::Activation::leaky_relu(0.2f), ops::Activation::none()}) {
            auto a = Tensor::empty({1, n});
            auto b = Tensor::empty({1, n});
            REQUIRE(ops::activation(act, in->view(), a->view()).ok());
            REQUIRE(ops::ref::activation(act, in->view(), b->view()).ok());
            for (int64_t i = 0; i < n; ++i) CHECK((*a)[i] == (*b)[i]);
        }
    }
    auto x = Tensor::empty({2, 2});
    auto y = Tensor::empty({2, 3});
    CHECK(ops::activation(ops::Activation::relu(), x->view(), y->view()).code() == Errc::shape_mismatch);
}
