// SGEMM: the microkernel and the blocked driver against the scalar twin
// ref::gemm, over sizes around every tile and block edge.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "salted/core/parallel.hpp"
#include "salted/kernels/gemm.hpp"
#include "random_floats.hpp"

using namespace salted;
using namespace salted::kernels;

namespace {

std::vector<float> random_floats(std::size_t n, uint32_t seed) { return ::random_floats(n, seed, 1u); }

// |ours - want| <= 1e-5 * (1 + sum|a*b| bound): a float sum of k products of
// values below 1 in magnitude can be off by about k * 2^-24 of that bound.
void check_near(const std::vector<float>& ours, const std::vector<float>& want, int64_t k, const char* what) {
    REQUIRE(ours.size() == want.size());
    const double tol = 1e-6 * (1.0 + static_cast<double>(k));
    double worst = 0;
    for (std::size_t i = 0; i < ours.size(); ++i) worst = std::max(worst, std::fabs(double(ours[i]) - double(want[i])));
    CHECK_MESSAGE(worst <= tol, what << ": max|diff| " << worst << " > " << tol);
}

const ops::Activation kActs[] = {ops::Activation::none(), ops::Activation::relu(), ops::Activation::leaky_relu(0.1f)};

}  // namespace

TEST_CASE("gemm tile table is consistent with the SIMD width") {
    CHECK(gemm_nr % static_cast<int>(simd::width) == 0);
    CHECK(gemm_mr >= 1);
    CHECK(gemm_mr <= 8);
    CHECK(gemm_packed_a_floats(1, 5) == gemm_mr * 5);
    CHECK(gemm_packed_b_floats(5, gemm_nr + 1) == 2 * gemm_nr * 5);
}

TEST_CASE("packing puts every element where the microkernel reads it and zero-pads") {
    const int64_t m = gemm_mr + 3, n = gemm_nr + 5, k = 7;
    auto a = random_floats(m * k, 1);
    auto b = random_floats(k * n, 2);
    std::vector<float> ap(gemm_packed_a_floats(m, k), -9.0f), bp(gemm_packed_b_floats(k, n), -9.0f);
    gemm_pack_a(m, k, a.data(), k, 1, ap.data());
    gemm_pack_b(k, n, b.data(), n, 1, bp.data());
    for (int64_t i = 0; i < round_up(m, gemm_mr); ++i)
        for (int64_t p = 0; p < k; ++p) {
            const float want = i < m ? a[i * k + p] : 0.0f;
            CHECK(ap[(i / gemm_mr) * gemm_mr * k + p * gemm_mr + i % gemm_mr] == want);
        }
    for (int64_t j = 0; j < round_up(n, gemm_nr); ++j)
        for (int64_t p = 0; p < k; ++p) {
            const float want = j < n ? b[p * n + j] : 0.0f;
            CHECK(bp[(j / gemm_nr) * gemm_nr * k + p * gemm_nr + j % gemm_nr] == want);
        }
    // Transposed source (column stride != 1) packs the same panels.
    std::vector<float> bt(n * k), bp2(bp.size(), -9.0f);
    for (int64_t p = 0; p < k; ++p)
        for (int64_t j = 0; j < n; ++j) bt[j * k + p] = b[p * n + j];
    gemm_pack_b(k, n, bt.data(), 1, k, bp2.data());
    CHECK(bp2 == bp);
}

TEST_CASE("microkernel: every row count, column edges, odd K, load_c and epilogues") {
    const int W = static_cast<int>(simd::width);
    for (int rows = 1; rows <= gemm_mr; ++rows)
        for (int cols : {1, W - 1, W, W + 1, gemm_nr - 1, gemm_nr}) {
            if (cols < 1 || cols > gemm_nr) continue;
            for (int64_t kc : {1, 2, 3, 17, 64}) {
                auto a = random_floats(rows * kc, rows * 100 + static_cast<uint32_t>(kc));
                auto b = random_floats(kc * cols, cols * 7 + static_cast<uint32_t>(kc));
                auto bias = random_floats(std::max(rows, cols), 99);
                std::vector<float> ap(gemm_packed_a_floats(rows, kc)), bp(gemm_packed_b_floats(kc, cols));
                gemm_pack_a(rows, kc, a.data(), kc, 1, ap.data());
                gemm_pack_b(kc, cols, b.data(), cols, 1, bp.data());
                const int64_t ldc = cols + 3;  // padding after each row must stay untouched
                for (int mode = 0; mode < 4; ++mode) {
                    GemmEpilogue ep;
                    bool load_c = false;
                    if (mode == 1) ep = GemmEpilogue::row_bias(bias.data(), ops::Activation::relu());
                    if (mode == 2) ep = GemmEpilogue::column_bias(bias.data(), ops::Activation::leaky_relu(0.2f));
                    if (mode == 3) load_c = true;
                    auto c0 = random_floats(rows * ldc, 5);
                    auto ours = c0, want = c0;
                    GemmTileOut o;
                    o.c = ours.data();
                    o.ldc = ldc;
                    o.cols = cols;
                    o.load_c = load_c;
                    o.epilogue = mode == 1 || mode == 2 ? &ep : nullptr;
                    gemm_f32_tile(rows, kc, ap.data(), bp.data(), gemm_nr, o);
                    ref::gemm(rows, cols, kc, a.data(), kc, b.data(), cols, want.data(), ldc, ep, load_c);
                    for (int r = 0; r < rows; ++r)
                        for (int j = cols; j < ldc; ++j) want[r * ldc + j] = c0[r * ldc + j];
                    INFO("rows=" << rows << " cols=" << cols << " kc=" << kc << " mode=" << mode);
                    check_near(ours, want, kc, "microkernel");
                }
            }
        }
}

TEST_CASE("gemm matches ref::gemm over sizes around MR, NR, KC and the B block") {
    const int64_t MR = gemm_mr, NR = gemm_nr;
    const int64_t ms[] = {1, MR - 1, MR, MR + 1, 2 * MR + 3, 67};
    const int64_t ns[] = {1, NR - 1, NR, NR + 1, 3 * NR + 5};
    const int64_t ks[] = {1, 2, 7, 33, gemm_kc, gemm_kc + 1, 2 * gemm_kc + 17};
    int count = 0;
    for (int threads : {1, 2}) {
        set_num_threads(threads);
        for (int64_t m : ms)
            for (int64_t n : ns)
                for (int64_t k : ks) {
                    if (m < 1 || n < 1) continue;
                    const uint32_t seed = static_cast<uint32_t>(m * 10007 + n * 101 + k);
                    auto a = random_floats(m * k, seed);
                    auto b = random_floats(k * n, seed + 1);
                    auto bias = random_floats(std::max(m, n), seed + 2);
                    const ops::Activation act = kActs[count % 3];
                    const int bias_mode = (count / 3) % 3;
                    GemmEpilogue ep = bias_mode == 0   ? GemmEpilogue{GemmEpilogue::Bias::none, nullptr, act}
                                      : bias_mode == 1 ? GemmEpilogue::row_bias(bias.data(), act)
                                                       : GemmEpilogue::column_bias(bias.data(), act);
                    const bool accumulate = count % 4 == 3;
                    auto c0 = random_floats(m * n, seed + 3);
                    auto ours = c0, want = c0;
                    std::vector<float> ws(gemm_workspace_floats(m, n, k));
                    REQUIRE(gemm(m, n, k, a.data(), k, b.data(), n, ours.data(), n, ep, accumulate, ws.data()).ok());
                    ref::gemm(m, n, k, a.data(), k, b.data(), n, want.data(), n, ep, accumulate);
                    INFO("threads=" << threads << " m=" << m << " n=" << n << " k=" << k << " bias=" << bias_mode
                                    << " act=" << static_cast<int>(act.kind) << " acc=" << accumulate);
                    check_near(ours, want, k, "gemm");
                    ++count;
                }
    }
    set_num_threads(0);
    CHECK(count == 2 * 6 * 5 * 7);
}

TEST_CASE("gemm honours leading dimensions and leaves C's row padding alone") {
    const int64_t m = 13, n = 45, k = 29, lda = k + 3, ldb = n + 5, ldc = n + 7;
    auto a = random_floats(m * lda, 11);
    auto b = random_floats(k * ldb, 12);
    auto c0 = random_floats(m * ldc, 13);
    auto ours = c0, want = c0;
    std::vector<float> ws(gemm_workspace_floats(m, n, k));
    REQUIRE(gemm(m, n, k, a.data(), lda, b.data(), ldb, ours.data(), ldc, GemmEpilogue::none(), false, ws.data()).ok());
    ref::gemm(m, n, k, a.data(), lda, b.data(), ldb, want.data(), ldc, GemmEpilogue::none(), false);
    check_near(ours, want, k, "strided gemm");
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = n; j < ldc; ++j) CHECK(ours[i * ldc + j] == c0[i * ldc + j]);
}

TEST_CASE("gemm uses no more workspace than it reports") {
    for (int64_t m : {9, 40}) {  // 40 x 3000: A streams, panels go in groups (gemm_a_streams)
        for (int64_t k : {5, 700, 3000}) {
            const int64_t n = 2000;
            INFO("m=" << m << " k=" << k << " grouped=" << gemm_a_streams(m, k));
            auto a = random_floats(m * k, 21);
            auto b = random_floats(k * n, 22);
            std::vector<float> c(m * n), want(m * n);
            const int64_t need = gemm_workspace_floats(m, n, k);
            std::vector<float> ws(need + 64, 12345.0f);
            REQUIRE(gemm(m, n, k, a.data(), k, b.data(), n, c.data(), n, GemmEpilogue::none(), false, ws.data()).ok());
            for (int64_t i = need; i < need + 64; ++i) CHECK(ws[i] == 12345.0f);
            ref::gemm(m, n, k, a.data(), k, b.data(), n, want.data(), n, GemmEpilogue::none(), false);
            check_near(c, want, k, "large-n gemm");
        }
    }
}

TEST_CASE("prepacked B and every thread split give bit-identical results") {
    // Shapes that take each parallel path: many panels (each thread packs its
    // own), fewer panels than threads (M x panel grid), and prepacked B.
    struct Case {
        int64_t m, n, k;
    } cases[] = {{64, 300, 600}, {200, 20, 300}, {1, 700, 800}, {37, 33, 1},
                 // packed A past gemm_a_streams: panels packed and multiplied in groups
                 {300, 50, 400}, {130, 700, 600}};
    for (const auto& cs : cases) {
        auto a = random_floats(cs.m * cs.k, 31);
        auto b = random_floats(cs.k * cs.n, 32);
        auto bias = random_floats(cs.n, 33);
        const auto ep = GemmEpilogue::column_bias(bias.data(), ops::Activation::relu());
        std::vector<float> ap(gemm_packed_a_floats(cs.m, cs.k)), bp(gemm_packed_b_floats(cs.k, cs.n));
        gemm_pack_a(cs.m, cs.k, a.data(), cs.k, 1, ap.data());
        gemm_pack_b(cs.k, cs.n, b.data(), cs.n, 1, bp.data());
        PackedB packed;
        packed.data = bp.data();
        packed.k = cs.k;
        MatrixB matrix;
        matrix.b = b.data();
        matrix.k = cs.k;
        matrix.rs = cs.n;
        std::vector<float> bw(gemm_b_workspace_floats(cs.k, cs.n));
        std::vector<std::vector<float>> outs;
        for (int threads : {1, 2}) {
            set_num_threads(threads);
            std::vector<float> c1(cs.m * cs.n), c2(cs.m * cs.n);
            gemm_blocked(cs.m, cs.n, cs.k, ap.data(), packed, nullptr, c1.data(), cs.n, ep, false);
            gemm_blocked(cs.m, cs.n, cs.k, ap.data(), matrix, bw.data(), c2.data(), cs.n, ep, false);
            outs.push_back(c1);
            outs.push_back(c2);
        }
        set_num_threads(0);
        std::vector<float> want(cs.m * cs.n);
        ref::gemm(cs.m, cs.n, cs.k, a.data(), cs.k, b.data(), cs.n, want.data(), cs.n, ep, false);
        INFO("m=" << cs.m << " n=" << cs.n << " k=" << cs.k);
        check_near(outs[0], want, cs.k, "prepacked");
        for (std::size_t i = 1; i < outs.size(); ++i) CHECK(outs[i] == outs[0]);
    }
}

TEST_CASE("gemm rejects bad arguments with an error naming the field") {
    std::vector<float> a(64, 1.0f), b(64, 1.0f), c(64), ws(gemm_workspace_floats(4, 4, 4));
    auto ep = GemmEpilogue::none();
    auto s = gemm(0, 4, 4, a.data(), 4, b.data(), 4, c.data(), 4, ep, false, ws.data());
    CHECK(s.code() == Errc::invalid_argument);
    CHECK(s.message().find("m, n, k") != std::string::npos);
    s = gemm(4, 4, 4, a.data(), 3, b.data(), 4, c.data(), 4, ep, false, ws.data());
    CHECK(s.code() == Errc::invalid_argument);
    CHECK(s.message().find("lda") != std::string::npos);
    s = gemm(4, 4, 4, a.data(), 4, b.data(), 4, c.data(), 2, ep, false, ws.data());
    CHECK(s.code() == Errc::invalid_argument);
    s = gemm(4, 4, 4, nullptr, 4, b.data(), 4, c.data(), 4, ep, false, ws.data());
    CHECK(s.code() == Errc::invalid_argument);
    s = gemm(4, 4, 4, a.data(), 4, b.data(), 4, c.data(), 4, ep, false, nullptr);
    CHECK(s.code() == Errc::invalid_argument);
    CHECK(s.message().find("workspace") != std::string::npos);
    GemmEpilogue bad;
    bad.bias_kind = GemmEpilogue::Bias::per_row;
    s = gemm(4, 4, 4, a.data(), 4, b.data(), 4, c.data(), 4, bad, false, ws.data());
    CHECK(s.code() == Errc::invalid_argument);
    CHECK(s.message().find("bias") != std::string::npos);
    GemmEpilogue nan_slope;
    nan_slope.activation = ops::Activation::leaky_relu(NAN);
    s = gemm(4, 4, 4, a.data(), 4, b.data(), 4, c.data(), 4, nan_slope, false, ws.data());
    CHECK(s.code() == Errc::invalid_argument);
    CHECK(s.message().find("negative_slope") != std::string::npos);
}
