// The salted layer: CNN salt maps (bitwise s*w + b, never an FMA), the fused
// salt concat in both orders, the FC salt concat, the FC salt vector's means
// (the roll), and every error path.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "salted/ops/salt_layers.hpp"
#include "salted/salt/fc_salt_vector.hpp"

using namespace salted;
using ops::CnnSaltParams;
using ops::SaltOrder;

namespace {

Tensor random_tensor(const Shape& s, uint32_t seed, float scale = 3.0f) {
    auto t = Tensor::empty(s);
    REQUIRE(t.ok());
    uint32_t x = seed * 2654435761u + 5u;
    for (int64_t i = 0; i < t->numel(); ++i) {
        x = x * 1664525u + 1013904223u;
        (*t)[i] = scale * (static_cast<float>(x >> 8) / 8388608.0f - 1.0f);
    }
    return std::move(t).value();
}

Tensor filled(const Shape& s, float v) {
    auto t = Tensor::empty(s);
    REQUIRE(t.ok());
    for (int64_t i = 0; i < t->numel(); ++i) (*t)[i] = v;
    return std::move(t).value();
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

void expect_error(const Status& s, Errc code, const char* part) {
    CHECK_MESSAGE(s.code() == code, s.message());
    CHECK_MESSAGE(contains(s.message(), part), s.message());
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

// round(round(s * w) + b), computed so that no compiler can fuse it: the
// product goes through memory in double-checked float form.
float separate_rounding(float s, float w, float b) {
    volatile float p = s * w;
    volatile float r = p + b;
    return r;
}

}  // namespace

TEST_CASE("CNN salt maps are s*w + b rounded twice, equal to the twin bitwise") {
    struct Cfg { int64_t k, h, w, classes; bool bias; };
    const Cfg cfgs[] = {{1, 32, 32, 10, true}, {5, 14, 14, 10, true}, {16, 16, 16, 10, true},
                        {4, 7, 50, 13, false}, {3, 1, 1, 2, true},    {8, 5, 3, 100, true}};
    for (const Cfg& c : cfgs) {
        CnnSaltParams p;
        p.maps = c.k;
        p.height = c.h;
        p.width = c.w;
        p.num_classes = c.classes;
        // Large weights make s*w inexact, so an FMA would show up in the last bit.
        Tensor w = random_tensor({1, c.k, c.h, c.w}, uint32_t(c.k * 31 + c.h), 37.3f);
        Tensor b = random_tensor({c.k}, uint32_t(c.k + 2), 11.1f);
        ConstTensorView bias = c.bias ? b.view() : ConstTensorView{};
        auto op = ops::CnnSalt::create(p, w.view(), bias);
        REQUIRE_MESSAGE(op.ok(), op.message());
        std::vector<int64_t> salts;
        for (int64_t s = 0; s < c.classes && s < 7; ++s) salts.push_back(c.classes - 1 - s);
        const int64_t n = static_cast<int64_t>(salts.size());
        CHECK(*op->maps_shape(n) == Shape{n, c.k, c.h, c.w});
        CHECK(op->flops(n) == 2 * n * c.k * c.h * c.w);
        Tensor fast = filled({n, c.k, c.h, c.w}, 0), slow = filled({n, c.k, c.h, c.w}, 0);
        REQUIRE(op->maps(salts, fast.view()).ok());
        REQUIRE(ops::ref::cnn_salt_maps(p, w.view(), bias, salts, slow.view()).ok());
        const int64_t area = c.h * c.w;
        int fma_would_differ = 0;
        for (int64_t i = 0; i < fast.numel(); ++i) {
            REQUIRE(same_bits(fast[i], slow[i]));
            const int64_t sample = i / (c.k * area), j = (i / area) % c.k, e = i % (c.k * area);
            const float s = float(salts[sample]);
            const float bj = c.bias ? b[j] : 0.0f;
            REQUIRE(same_bits(fast[i], c.bias ? separate_rounding(s, w[e], bj) : s * w[e]));
            const float fused = static_cast<float>(double(s) * double(w[e]) + double(bj));
            if (!same_bits(fused, fast[i])) ++fma_would_differ;
        }
        // The check above has teeth: a fused multiply-add would differ somewhere.
        if (c.bias && fast.numel() > 100) CHECK(fma_would_differ > 0);
    }
}

TEST_CASE("CNN salt concat writes activations and maps in one pass, either order") {
    CnnSaltParams p;
    p.maps = 3;
    p.height = 5;
    p.width = 7;
    p.num_classes = 10;
    Tensor w = random_tensor({1, 3, 5, 7}, 3, 5.0f);
    Tensor b = random_tensor({3}, 4);
    Tensor act = random_tensor({2, 4, 5, 7}, 5);
    const std::vector<int64_t> salts = {9, 0};
    for (SaltOrder order : {SaltOrder::activations_first, SaltOrder::salt_first}) {
        p.order = order;
        auto op = ops::CnnSalt::create(p, w.view(), b.view());
        REQUIRE(op.ok());
        auto shape = op->concat_output_shape(act.shape());
        REQUIRE(shape.ok());
        CHECK(*shape == Shape{2, 7, 5, 7});
        Tensor fast = filled(*shape, 0), slow = filled(*shape, 0);
        REQUIRE(op->concat(act.view(), salts, fast.view()).ok());
        REQUIRE(ops::ref::cnn_salt_concat(p, w.view(), b.view(), act.view(), salts, slow.view()).ok());
        for (int64_t i = 0; i < fast.numel(); ++i) REQUIRE(same_bits(fast[i], slow[i]));
        // Independently: the channel blocks are the activations and the maps.
        Tensor maps = filled({2, 3, 5, 7}, 0);
        REQUIRE(op->maps(salts, maps.view()).ok());
        const int64_t area = 35;
        for (int64_t n = 0; n < 2; ++n)
            for (int64_t c = 0; c < 7; ++c)
                for (int64_t e = 0; e < area; ++e) {
                    const float got = fast[(n * 7 + c) * area + e];
                    const bool is_salt = order == SaltOrder::activations_first ? c >= 4 : c < 3;
                    const int64_t local = order == SaltOrder::activations_first ? (is_salt ? c - 4 : c)
                                                                                 : (is_salt ? c : c - 3);
                    const float want = is_salt ? maps[(n * 3 + local) * area + e] : act[(n * 4 + local) * area + e];
                    REQUIRE(same_bits(got, want));
                }
    }
    // Salt 0 with a bias gives exactly the bias.
    p.order = SaltOrder::activations_first;
    auto op = ops::CnnSalt::create(p, w.view(), b.view());
    Tensor m = filled({1, 3, 5, 7}, 1);
    REQUIRE(op->maps(std::vector<int64_t>{0}, m.view()).ok());
    CHECK(m[0] == b[0]);
    CHECK(m[35 * 2 + 34] == b[2]);
}

TEST_CASE("CNN salt errors name the field") {
    Tensor w = random_tensor({1, 3, 4, 4}, 1), b = random_tensor({3}, 2), b4 = random_tensor({4}, 2);
    CnnSaltParams p;
    p.maps = 3;
    p.height = 4;
    p.width = 4;
    p.num_classes = 10;
    CnnSaltParams q = p;
    q.maps = 0;
    expect_error(ops::CnnSalt::create(q, w.view(), b.view()).status(), Errc::invalid_argument, "maps");
    q = p;
    q.height = 0;
    expect_error(ops::CnnSalt::create(q, w.view(), b.view()).status(), Errc::invalid_argument, "height x width");
    q = p;
    q.num_classes = 0;
    expect_error(ops::CnnSalt::create(q, w.view(), b.view()).status(), Errc::invalid_argument, "num_classes");
    q = p;
    q.width = 5;
    expect_error(ops::CnnSalt::create(q, w.view(), b.view()).status(), Errc::shape_mismatch,
                 "weight shape: expected [1, 3, 4, 5]");
    expect_error(ops::CnnSalt::create(p, ConstTensorView{}, b.view()).status(), Errc::invalid_argument, "weight");
    expect_error(ops::CnnSalt::create(p, w.view(), b4.view()).status(), Errc::shape_mismatch, "bias shape: expected [3]");

    auto op = ops::CnnSalt::create(p, w.view(), b.view());
    REQUIRE(op.ok());
    Tensor maps = filled({2, 3, 4, 4}, 0);
    expect_error(op->maps(std::vector<int64_t>{1, 10}, maps.view()), Errc::out_of_range, "salts[1]: expected 0..9, found 10");
    expect_error(op->maps(std::vector<int64_t>{-1, 0}, maps.view()), Errc::out_of_range, "salts[0]");
    expect_error(op->maps(std::vector<int64_t>{1}, maps.view()), Errc::shape_mismatch, "salts: expected 2");
    expect_error(op->maps(nullptr, 2, maps.view()), Errc::invalid_argument, "salts");
    Tensor bad_maps = filled({2, 3, 4, 5}, 0);
    expect_error(op->maps(std::vector<int64_t>{1, 2}, bad_maps.view()), Errc::shape_mismatch, "output shape");
    Tensor r3 = filled({2, 3, 16}, 0);
    expect_error(op->maps(std::vector<int64_t>{1, 2}, r3.view()), Errc::shape_mismatch, "output rank");

    Tensor act = filled({2, 5, 4, 4}, 1), act_hw = filled({2, 5, 4, 3}, 1), act3 = filled({2, 5, 16}, 1);
    Tensor out = filled({2, 8, 4, 4}, 0), out_bad = filled({2, 9, 4, 4}, 0);
    expect_error(op->concat(act_hw.view(), std::vector<int64_t>{1, 2}, out.view()), Errc::shape_mismatch,
                 "activations height x width: expected 4x4 (the salt maps' size), found 4x3");
    expect_error(op->concat(act3.view(), std::vector<int64_t>{1, 2}, out.view()), Errc::shape_mismatch,
                 "activations rank");
    expect_error(op->concat(act.view(), std::vector<int64_t>{1, 2}, out_bad.view()), Errc::shape_mismatch,
                 "output shape: expected [2, 8, 4, 4]");
    expect_error(op->concat(act.view(), std::vector<int64_t>{1, 99}, out.view()), Errc::out_of_range, "salts[1]");
    expect_error(op->concat(act.view(), std::vector<int64_t>{1, 2, 3}, out.view()), Errc::shape_mismatch, "salts");
    CHECK(op->concat(act.view(), std::vector<int64_t>{1, 2}, out.view()).ok());
    // The twins validate salts too.
    CHECK(ops::ref::cnn_salt_maps(p, w.view(), b.view(), {1, 10}, maps.view()).code() == Errc::out_of_range);
}

TEST_CASE("FC salt concat puts the salt vector after the activations by default") {
    Tensor act = random_tensor({3, 17}, 1), sv = random_tensor({3, 10}, 2);
    for (SaltOrder order : {SaltOrder::activations_first, SaltOrder::salt_first}) {
        auto shape = ops::fc_salt_concat_output_shape(act.shape(), sv.shape());
        REQUIRE(shape.ok());
        CHECK(*shape == Shape{3, 27});
        Tensor fast = filled(*shape, 0), slow = filled(*shape, 0);
        REQUIRE(ops::fc_salt_concat(act.view(), sv.view(), fast.view(), order).ok());
        REQUIRE(ops::ref::fc_salt_concat(act.view(), sv.view(), slow.view(), order).ok());
        for (int64_t i = 0; i < fast.numel(); ++i) REQUIRE(fast[i] == slow[i]);
        if (order == SaltOrder::activations_first) {
            CHECK(fast[0] == act[0]);
            CHECK(fast[17] == sv[0]);
            CHECK(fast[27 + 26] == sv[19]);
        } else {
            CHECK(fast[0] == sv[0]);
            CHECK(fast[10] == act[0]);
        }
    }
    Tensor out = filled({3, 27}, 0);
    Tensor sv2 = random_tensor({2, 10}, 3), sv1 = random_tensor({30}, 3), act4 = random_tensor({3, 17, 1, 1}, 3);
    expect_error(ops::fc_salt_concat(act.view(), sv2.view(), out.view()), Errc::shape_mismatch,
                 "salt_vectors batch: expected 3, found 2");
    expect_error(ops::fc_salt_concat(act.view(), sv1.view(), out.view()), Errc::shape_mismatch, "salt_vectors rank");
    expect_error(ops::fc_salt_concat(act4.view(), sv.view(), out.view()), Errc::shape_mismatch, "activations rank");
    Tensor out_bad = filled({3, 28}, 0);
    expect_error(ops::fc_salt_concat(act.view(), sv.view(), out_bad.view()), Errc::shape_mismatch,
                 "output shape: expected [3, 27]");
    CHECK(ops::ref::fc_salt_concat(act.view(), sv.view(), out_bad.view()).code() == Errc::shape_mismatch);
}

TEST_CASE("FC salt means: roll([1..C], s+1), bump at s, divided by 2C") {
    // C = 4, s = 1: roll([1,2,3,4], 2) = [3,4,1,2]; means[1] += 16 -> [3,20,1,2]; / 8.
    auto m = salt::fc_salt_means(1, 4);
    REQUIRE(m.ok());
    const float want[4] = {3.0f / 8, 20.0f / 8, 1.0f / 8, 2.0f / 8};
    for (int i = 0; i < 4; ++i) CHECK((*m)[i] == want[i]);
    // For every C and s: the salt's entry is 2.5, the others are a permutation
    // of 1..C-1 over 2C (the rolled C lands exactly on s).
    for (int c : {1, 2, 3, 10, 13, 100}) {
        for (int s = 0; s < c; ++s) {
            auto means = salt::fc_salt_means(s, c);
            REQUIRE(means.ok());
            CHECK((*means)[s] == 2.5f);
            std::vector<int> seen(c + 1, 0);
            for (int i = 0; i < c; ++i) {
                if (i == s) continue;
                const int v = static_cast<int>(std::lround((*means)[i] * 2 * c));
                REQUIRE(v >= 1);
                REQUIRE(v <= c - 1);
                REQUIRE((*means)[i] == float(v) / float(2 * c));
                ++seen[v];
                // numpy.roll: element j moves to (j + s + 1) mod C, so entry i holds ((i - s - 1) mod C) + 1.
                CHECK(v == ((i - s - 1) % c + c) % c + 1);
            }
            for (int v = 1; v < c; ++v) CHECK(seen[v] == 1);
        }
    }
    CHECK(salt::fc_salt_std(10) == 0.05f);
}

TEST_CASE("FC salt vector = means + std * noise, per sample") {
    const int c = 10;
    std::vector<float> noise(c), out(c);
    for (int i = 0; i < c; ++i) noise[i] = 0.3f * float(i) - 1.2f;
    REQUIRE(salt::fc_salt_vector(3, c, noise.data(), out.data()).ok());
    auto means = salt::fc_salt_means(3, c);
    for (int i = 0; i < c; ++i) CHECK(out[i] == doctest::Approx((*means)[i] + 0.05f * noise[i]).epsilon(1e-6));
    // Zero noise gives the means exactly; in place is allowed.
    std::vector<float> zero(c, 0.0f);
    REQUIRE(salt::fc_salt_vector(7, c, zero.data(), zero.data()).ok());
    auto m7 = salt::fc_salt_means(7, c);
    for (int i = 0; i < c; ++i) CHECK(zero[i] == (*m7)[i]);

    // A batch.
    const std::vector<int64_t> salts = {0, 9, 4};
    std::vector<float> batch_noise(3 * c);
    for (int i = 0; i < 3 * c; ++i) batch_noise[i] = float(i % 7) - 3.0f;
    Tensor vecs = filled({3, c}, 0);
    REQUIRE(salt::fc_salt_vectors(salts.data(), 3, c, batch_noise.data(), vecs.view()).ok());
    for (int n = 0; n < 3; ++n) {
        std::vector<float> one(c);
        REQUIRE(salt::fc_salt_vector(int(salts[n]), c, batch_noise.data() + n * c, one.data()).ok());
        for (int i = 0; i < c; ++i) CHECK(vecs[n * c + i] == one[i]);
    }

    // Errors.
    expect_error(salt::fc_salt_means(10, 10).status(), Errc::out_of_range, "salt: expected 0..9, found 10");
    expect_error(salt::fc_salt_means(-1, 10).status(), Errc::out_of_range, "salt");
    expect_error(salt::fc_salt_means(0, 0).status(), Errc::invalid_argument, "num_classes");
    expect_error(salt::fc_salt_means(0, 10, nullptr), Errc::invalid_argument, "out");
    expect_error(salt::fc_salt_vector(0, 10, nullptr, out.data()), Errc::invalid_argument, "standard_normal_noise");
    expect_error(salt::fc_salt_vector(11, 10, noise.data(), out.data()), Errc::out_of_range, "salt");
    const std::vector<int64_t> bad = {0, 10, 4};
    expect_error(salt::fc_salt_vectors(bad.data(), 3, c, batch_noise.data(), vecs.view()), Errc::out_of_range,
                 "salts[1]");
    Tensor wrong = filled({2, c}, 0);
    expect_error(salt::fc_salt_vectors(salts.data(), 3, c, batch_noise.data(), wrong.view()), Errc::shape_mismatch,
                 "output shape");
}
