// Packing for the SGEMM microkernel: copies a matrix into the panel order the
// microkernel reads, so its inner loop walks memory strictly forward and never
// touches a partial tile. Any source layout is accepted through (row stride,
// column stride), which covers transposes (dense weights are B = W^T).
//
//   packed A: ceil(M / MR) panels of MR x K; A(r, k) of panel p at
//             dst[p * MR * K + k * MR + (r - p * MR)]; rows past M are zero.
//   packed B: ceil(N / NR) panels of K x NR; B(k, j) of panel p at
//             dst[p * NR * K + k * NR + (j - p * NR)]; columns past N are zero.
// A K-block [k0, k0 + kc) of a panel starts at k0 * MR (A) or k0 * NR (B).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "salted/kernels/gemm_microkernel.hpp"

namespace salted {
namespace kernels {

inline int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

inline int64_t gemm_packed_a_floats(int64_t m, int64_t k) { return round_up(m, gemm_mr) * k; }
inline int64_t gemm_packed_b_floats(int64_t k, int64_t n) { return round_up(n, gemm_nr) * k; }

// Packs A[m x k] (A(i, j) = a[i * rs + j * cs]) into MR-row panels.
inline void gemm_pack_a(int64_t m, int64_t k, const float* a, int64_t rs, int64_t cs, float* dst) {
    constexpr int MR = gemm_mr;
    for (int64_t p0 = 0; p0 < m; p0 += MR) {
        const int rows = static_cast<int>(std::min<int64_t>(MR, m - p0));
        float* d = dst + p0 * k;  // panel p0 / MR starts at (p0 / MR) * MR * k
        for (int64_t kk = 0; kk < k; ++kk) {
            for (int r = 0; r < rows; ++r) d[kk * MR + r] = a[(p0 + r) * rs + kk * cs];
            for (int r = rows; r < MR; ++r) d[kk * MR + r] = 0.0f;
        }
    }
}

// Packs `cols` (1..NR) columns of B[k x .] starting at `b` (B(i, j) =
// b[i * rs + j * cs]) into one K x NR panel, zero-filling the missing columns.
inline void gemm_pack_b_panel(int64_t k, int cols, const float* b, int64_t rs, int64_t cs, float* dst) {
    constexpr int NR = gemm_nr;
    if (cs == 1 && cols == NR) {
        // The common case (a whole panel of a row-major matrix): SIMD row copies.
        constexpr int W = static_cast<int>(simd::width);
        for (int64_t kk = 0; kk < k; ++kk)
#pragma GCC unroll 16
            for (int j = 0; j < NR; j += W) simd::store(dst + kk * NR + j, simd::load(b + kk * rs + j));
        return;
    }
    if (cs == 1) {
        for (int64_t kk = 0; kk < k; ++kk) {
            float* d = dst + kk * NR;
            const float* s = b + kk * rs;
            for (int j = 0; j < cols; ++j) d[j] = s[j];
            for (int j = cols; j < NR; ++j) d[j] = 0.0f;
        }
        return;
    }
    for (int j = 0; j < cols; ++j) {
        const float* s = b + j * cs;
        for (int64_t kk = 0; kk < k; ++kk) dst[kk * NR + j] = s[kk * rs];
    }
    for (int64_t kk = 0; kk < k; ++kk)
        for (int j = cols; j < NR; ++j) dst[kk * NR + j] = 0.0f;
}

// Packs all of B[k x n] into NR-column panels.
inline void gemm_pack_b(int64_t k, int64_t n, const float* b, int64_t rs, int64_t cs, float* dst) {
    constexpr int NR = gemm_nr;
    for (int64_t j0 = 0; j0 < n; j0 += NR)
        gemm_pack_b_panel(k, static_cast<int>(std::min<int64_t>(NR, n - j0)), b + j0 * cs, rs, cs, dst + j0 * k);
}

}  // namespace kernels
}  // namespace salted
