// The SGEMM microkernel: one register-resident tile of C = A * B computed from
// packed panels. Everything fast in salted (conv2d, dense, transposed conv)
// ends up in this loop, so it is written once, over xsimd batches, and the
// tile size is chosen in one table below.
//
// Panel layouts (see gemm_pack.hpp):
//   A panel: MR rows interleaved, a[k * MR + r] is A(r, k)
//   B panel: NR columns contiguous per k, b[k * ldb + j] is B(k, j)
#pragma once

#include <cstdint>

#include "salted/core/simd.hpp"
#include "salted/ops/activation.hpp"

namespace salted {
namespace kernels {

// The one table of tile sizes per SIMD width. An MR x NR tile of C lives in
// MR * NR / width accumulators; the register file must also hold NR / width
// B vectors and a broadcast A value.
//   16 lanes (AVX-512, 32 registers): 8x32, 16 accumulators. 8 rows divide
//      the power-of-two channel counts of the reference CNNs exactly.
//    8 lanes (AVX2 + FMA, 16 registers): 6x16, 12 accumulators.
//    4 lanes (SSE2 / NEON): 6x8, 12 accumulators.
struct GemmTile {
    int mr;
    int nr;
};
constexpr GemmTile gemm_tile_for_width(std::size_t width) {
    return width >= 16  ? GemmTile{8, 2 * static_cast<int>(width)}
           : width >= 4 ? GemmTile{6, 2 * static_cast<int>(width)}
                        : GemmTile{4, 4 * static_cast<int>(width)};
}
constexpr int gemm_mr = gemm_tile_for_width(simd::width).mr;
constexpr int gemm_nr = gemm_tile_for_width(simd::width).nr;
static_assert(gemm_nr % static_cast<int>(simd::width) == 0, "NR must be a whole number of SIMD batches");

// What happens to C once the whole K sum is known: C = act(C + bias).
struct GemmEpilogue {
    enum class Bias { none, per_row, per_column };
    Bias bias_kind = Bias::none;
    const float* bias = nullptr;  // indexed by C's row (per_row) or column (per_column)
    ops::Activation activation;

    static GemmEpilogue none() { return {}; }
    static GemmEpilogue row_bias(const float* b, ops::Activation act = {}) {
        return {b ? Bias::per_row : Bias::none, b, act};
    }
    static GemmEpilogue column_bias(const float* b, ops::Activation act = {}) {
        return {b ? Bias::per_column : Bias::none, b, act};
    }
    bool trivial() const { return bias_kind == Bias::none && activation.kind == ops::Activation::Kind::none; }
};

// Where and how the microkernel writes its tile.
struct GemmTileOut {
    float* c = nullptr;  // top-left element of the tile
    int64_t ldc = 0;     // row stride of C
    int cols = 0;        // valid columns, 1..NR (valid rows are the kernel's Rows)
    bool load_c = false;  // add C's current values (an earlier K block, or accumulate)
    const GemmEpilogue* epilogue = nullptr;  // non-null only for the last K block
    int64_t row0 = 0, col0 = 0;              // position of the tile in C, for the bias
};

// How far ahead (in K rows of the B panel) the microkernel prefetches B.
// Inside a model the weights of a layer come from memory, not from the
// caches a layer benchmark leaves them in (WideResNet-16-4 at batch 1 reads
// 23 MB of Winograd-transformed weights per run), and the Winograd GEMMs
// read them as B, panel after panel, faster than the hardware prefetchers
// fetch them. 64 rows (8 KiB of a packed panel) ahead: WRN-16-4 salted
// at batch 1 2.34 -> 2.02 ms, WRN-28-3 3.13 -> 2.74 ms (8 and 6 alternated
// rounds; 8, 16 and 32 rows gained less). Full-height tiles only: a
// one-row tile (dense at batch 1) has too few multiply-adds per k to hide
// the extra instructions (1.1-1.2x slower in isolation).
constexpr int64_t gemm_b_prefetch_rows = 64;

// Prefetches the line `floats` floats past p, into L1. The address may lie
// past the end of p's array (a prefetch never faults), so it is computed
// as an integer, not by pointer arithmetic.
inline void prefetch_ahead(const float* p, int64_t floats) {
#if defined(__GNUC__)
    const auto at = reinterpret_cast<std::uintptr_t>(p) + static_cast<std::uintptr_t>(floats) * sizeof(float);
    __builtin_prefetch(reinterpret_cast<const void*>(at), 0, 3);
#else
    (void)p;
    (void)floats;
#endif
}

// gemm_f32_ukernel<Rows, NR>: C[Rows x NR] (+)= A_panel[Rows x kc] * B_panel[kc x NR].
// Rows <= MR is a template parameter so that an edge tile (M not a multiple of
// MR, batch-1 dense) holds only the accumulators it needs; the A panel stride
// is always MR. Columns beyond `out.cols` are computed from B's zero padding
// and never stored.
template <int Rows, int NR>
inline void gemm_f32_ukernel(int64_t kc, const float* a, const float* b, int64_t ldb, const GemmTileOut& out) {
    using B = simd::FloatBatch;
    constexpr int W = static_cast<int>(simd::width);
    constexpr int NB = NR / W;
    static_assert(Rows >= 1 && Rows <= gemm_mr, "Rows must be 1..MR");

    B acc[Rows][NB];
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 16
        for (int j = 0; j < NB; ++j) acc[r][j] = B(0.0f);

    for (int64_t k = 0; k < kc; ++k) {
        if (Rows == gemm_mr) {  // see gemm_b_prefetch_rows
#pragma GCC unroll 4
            for (int j = 0; j < NR; j += 16) prefetch_ahead(b, gemm_b_prefetch_rows * ldb + j);
        }
        B bv[NB];
#pragma GCC unroll 16
        for (int j = 0; j < NB; ++j) bv[j] = B::load_unaligned(b + j * W);
#pragma GCC unroll 16
        for (int r = 0; r < Rows; ++r) {
            const B av(a[r]);
#pragma GCC unroll 16
            for (int j = 0; j < NB; ++j) acc[r][j] = simd::fma(av, bv[j], acc[r][j]);
        }
        a += gemm_mr;
        b += ldb;
    }

    const GemmEpilogue* ep = out.epilogue;
    if (out.cols == NR) {
        // The common conv epilogue (row bias, then ReLU or nothing, on a fresh
        // tile) decided once per tile, not per vector: with a short K (a 1x1
        // conv on 16 channels does 16 FMAs per accumulator) the per-vector
        // branches cost as much as the sum. Written out rather than through
        // ops::with_activation_kind: that lambda form measured slower here
        // (WRN's 16->64 1x1 shortcut, bench_layers: 13.5-13.8 -> 15.7-17.0
        // us). LeakyReLU, per-column bias and K-blocked tiles take the
        // general path below.
        if (!out.load_c && ep && ep->bias_kind == GemmEpilogue::Bias::per_row &&
            ep->activation.kind != ops::Activation::Kind::leaky_relu) {
            const bool relu = ep->activation.kind == ops::Activation::Kind::relu;
#pragma GCC unroll 16
            for (int r = 0; r < Rows; ++r) {
                float* crow = out.c + r * out.ldc;
                const B bias(ep->bias[out.row0 + r]);
#pragma GCC unroll 16
                for (int j = 0; j < NB; ++j) {
                    B v = acc[r][j] + bias;
                    if (relu) v = xsimd::max(v, B(0.0f));
                    v.store_unaligned(crow + j * W);
                }
            }
            return;
        }
#pragma GCC unroll 16
        for (int r = 0; r < Rows; ++r) {
            float* crow = out.c + r * out.ldc;
#pragma GCC unroll 16
            for (int j = 0; j < NB; ++j) {
                B v = acc[r][j];
                if (out.load_c) v += B::load_unaligned(crow + j * W);
                if (ep) {
                    if (ep->bias_kind == GemmEpilogue::Bias::per_row)
                        v += B(ep->bias[out.row0 + r]);
                    else if (ep->bias_kind == GemmEpilogue::Bias::per_column)
                        v += B::load_unaligned(ep->bias + out.col0 + j * W);
                    v = ep->activation.apply(v);
                }
                v.store_unaligned(crow + j * W);
            }
        }
        return;
    }
    // Edge tile: spill the accumulators and finish the valid columns in scalar
    // code, so that nothing outside C (or outside a per-column bias) is touched.
    alignas(64) float tile[Rows * NR];
    // Unrolled: a loop index into acc[][], even here, would keep the whole
    // array in memory in every tile (16 stores after the K loop and 16
    // reloads for the epilogue, measured in the generated code).
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 16
        for (int j = 0; j < NB; ++j) acc[r][j].store_aligned(tile + r * NR + j * W);
    for (int r = 0; r < Rows; ++r) {
        float* crow = out.c + r * out.ldc;
        for (int j = 0; j < out.cols; ++j) {
            float v = tile[r * NR + j];
            if (out.load_c) v += crow[j];
            if (ep) {
                if (ep->bias_kind == GemmEpilogue::Bias::per_row)
                    v += ep->bias[out.row0 + r];
                else if (ep->bias_kind == GemmEpilogue::Bias::per_column)
                    v += ep->bias[out.col0 + j];
                v = ep->activation.apply(v);
            }
            crow[j] = v;
        }
    }
}

// Runs the microkernel for `rows` (1..MR) rows of the arch's MR x NR tile.
inline void gemm_f32_tile(int rows, int64_t kc, const float* a, const float* b, int64_t ldb,
                          const GemmTileOut& out) {
    constexpr int NR = gemm_nr;
    switch (rows) {
        case 1: return gemm_f32_ukernel<1, NR>(kc, a, b, ldb, out);
        case 2: return gemm_f32_ukernel<(gemm_mr >= 2 ? 2 : 1), NR>(kc, a, b, ldb, out);
        case 3: return gemm_f32_ukernel<(gemm_mr >= 3 ? 3 : 1), NR>(kc, a, b, ldb, out);
        case 4: return gemm_f32_ukernel<(gemm_mr >= 4 ? 4 : 1), NR>(kc, a, b, ldb, out);
        case 5: return gemm_f32_ukernel<(gemm_mr >= 5 ? 5 : 1), NR>(kc, a, b, ldb, out);
        case 6: return gemm_f32_ukernel<(gemm_mr >= 6 ? 6 : 1), NR>(kc, a, b, ldb, out);
        case 7: return gemm_f32_ukernel<(gemm_mr >= 7 ? 7 : 1), NR>(kc, a, b, ldb, out);
        default: return gemm_f32_ukernel<gemm_mr, NR>(kc, a, b, ldb, out);
    }
}
static_assert(gemm_mr <= 8, "gemm_f32_tile dispatches at most 8 rows");

}  // namespace kernels
}  // namespace salted
