// The three transforms of Winograd's minimal filtering algorithm F(4x4, 3x3)
// (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
// a 4x4 tile of a 3x3 convolution's output comes from a 6x6 tile of its input
// with 36 multiplies per (input, output) channel pair instead of 144:
//
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A      (.) = elementwise, over 6x6
//
// g is the 3x3 kernel, d the 6x6 input tile, Y the 4x4 output tile. Summed
// over input channels, the elementwise products become 36 independent GEMMs
// (one per position xi of the 6x6 grid), which is what winograd.hpp runs.
//
// Why F(4x4, 3x3) and not F(2x2, 3x3) or F(6x6, 3x3): F(2,3) saves only 2.25x
// of the multiplies; F(6,3) saves 5.1x but its larger constants (21/4, 17/4,
// 1/32) cost accuracy, and its 6x6 output tiles do not divide the 8x8, 16x16
// and 32x32 maps of the reference CNNs (27-56% of each tile would be wasted).
// Measured in float32 against a float64 direct convolution with K = 9 x 256
// (unit-variance inputs, 1/sqrt(K) weights): max error / max|y| was 2.5e-7
// for F(2,3), 4.8e-6 for F(4,3), 6.5e-6 for F(6,3); the parity tolerance is 1e-4.
//
// The points are 0, 1, -1, 2, -2 and infinity, so every constant is a small
// integer or (in G only, applied once to the weights, in double) a fraction.
//
// The fast transforms work on `lanes`: each SIMD lane is an independent tile
// (input transform: one tile per lane; output transform: one output channel
// per lane), so the same straight-line code serves every lane at once. They
// are written with the common subexpressions factored out (14 operations per
// 6-point input transform instead of 36). The ref:: twins multiply by the
// matrices, element by element, from the definition.
#pragma once

#include <cstdint>

#include "salted/core/simd.hpp"

namespace salted {
namespace kernels {
namespace winograd {

constexpr int tile_out = 4;                       // m: output tile side
constexpr int kernel_size = 3;                    // r
constexpr int tile_in = tile_out + kernel_size - 1;  // alpha = 6: input tile side
constexpr int positions = tile_in * tile_in;      // 36 GEMMs, one per (xi_y, xi_x)

// B^T (6x6), G (6x3), A^T (4x6) for the points 0, 1, -1, 2, -2, infinity.
constexpr double BT[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                             {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
constexpr double G[6][3] = {{1.0 / 4, 0, 0},
                            {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                            {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                            {1.0 / 24, 1.0 / 12, 1.0 / 6},
                            {1.0 / 24, -1.0 / 12, 1.0 / 6},
                            {0, 0, 1}};
constexpr double AT[4][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};

// U = Gm g Gm^T for one R x R kernel g (row-major) and an A x R matrix Gm,
// in double: it runs once per weight at create(), and rounding it once to
// float keeps the weights' error at half an ulp. Every square tiling's
// kernel transform (F(4x4, 3x3), F(2x2, 3x3), F(2x2, 5x5)).
template <int A, int R>
inline void kernel_transform_with(const double (&Gm)[A][R], const float* g, double* u /* A x A, row-major */) {
    double t[A][R];  // Gm g
    for (int a = 0; a < A; ++a)
        for (int l = 0; l < R; ++l) {
            double s = 0;
            for (int k = 0; k < R; ++k) s += Gm[a][k] * double(g[k * R + l]);
            t[a][l] = s;
        }
    for (int a = 0; a < A; ++a)
        for (int b = 0; b < A; ++b) {
            double s = 0;
            for (int l = 0; l < R; ++l) s += t[a][l] * Gm[b][l];
            u[a * A + b] = s;
        }
}

// U = G g G^T for one 3x3 kernel g (row-major).
inline void kernel_transform(const float* g, double* u /* 36, row-major */) { kernel_transform_with(G, g, u); }

// One 6-point B^T product, r = B^T d, factored (14 operations).
template <class V>
inline void input_1d(const V& d0, const V& d1, const V& d2, const V& d3, const V& d4, const V& d5, V& r0, V& r1,
                     V& r2, V& r3, V& r4, V& r5) {
    const V four(4.0f), five(-5.0f), two(2.0f);
    const V d12 = d1 + d2, d34 = d3 + d4;
    const V d1m2 = d1 - d2, d4m3 = d4 - d3;
    const V d1m3 = d1 - d3, d4m2 = d4 - d2;
    r0 = simd::fma(four, d0, simd::fma(five, d2, d4));
    r1 = xsimd::fnma(four, d12, d34);  // d34 - 4 * d12
    r2 = simd::fma(four, d1m2, d4m3);
    r3 = xsimd::fnma(two, d1m3, d4m2);  // d4m2 - 2 * d1m3
    r4 = simd::fma(two, d1m3, d4m2);
    r5 = simd::fma(four, d1, simd::fma(five, d3, d5));
}

// One 6-point A^T product, y = A^T m, factored (10 operations).
template <class V>
inline void output_1d(const V& m0, const V& m1, const V& m2, const V& m3, const V& m4, const V& m5, V& y0, V& y1,
                      V& y2, V& y3) {
    const V t1 = m1 + m2, t2 = m1 - m2, t3 = m3 + m4, t4 = m3 - m4;
    y0 = m0 + t1 + t3;
    y1 = simd::fma(V(2.0f), t4, t2);
    y2 = simd::fma(V(4.0f), t3, t1);
    y3 = simd::fma(V(8.0f), t4, t2) + m5;
}

// v = B^T d B on every lane: d and v are 6x6 row-major arrays of lanes.
template <class V>
inline void input_transform(const V* d, V* v) {
    V t[36];
    for (int j = 0; j < 6; ++j)  // columns: t = B^T d
        input_1d(d[j], d[6 + j], d[12 + j], d[18 + j], d[24 + j], d[30 + j], t[j], t[6 + j], t[12 + j], t[18 + j],
                 t[24 + j], t[30 + j]);
    for (int a = 0; a < 6; ++a) {  // rows: v = t B
        const V* r = t + 6 * a;
        V* o = v + 6 * a;
        input_1d(r[0], r[1], r[2], r[3], r[4], r[5], o[0], o[1], o[2], o[3], o[4], o[5]);
    }
}

// y = A^T m A on every lane: m is 6x6 row-major, y is 4x4 row-major.
template <class V>
inline void output_transform(const V* m, V* y) {
    V t[24];  // t = m A, 6x4
    for (int a = 0; a < 6; ++a) {
        const V* r = m + 6 * a;
        output_1d(r[0], r[1], r[2], r[3], r[4], r[5], t[4 * a], t[4 * a + 1], t[4 * a + 2], t[4 * a + 3]);
    }
    for (int j = 0; j < 4; ++j)  // y = A^T t
        output_1d(t[j], t[4 + j], t[8 + j], t[12 + j], t[16 + j], t[20 + j], y[j], y[4 + j], y[8 + j], y[12 + j]);
}

// r = M x on every lane for a constant matrix M (x[j] at x[j * x_stride]):
// the zero and +-1 entries drop out at compile time, as the loops unroll
// over constexpr data. Both pragmas are needed: not unrolled, the row
// Winograd's layers ran 1.3x slower (winograd_row.hpp).
template <int Rows, int Cols>
__attribute__((always_inline)) inline void apply_constant(const double (&M)[Rows][Cols], const simd::FloatBatch* x,
                                                          int x_stride, simd::FloatBatch* r) {
#pragma GCC unroll 8
    for (int i = 0; i < Rows; ++i) {
        simd::FloatBatch acc(0.0f);
#pragma GCC unroll 8
        for (int j = 0; j < Cols; ++j) {
            if (M[i][j] == 1) acc = acc + x[j * x_stride];
            else if (M[i][j] == -1) acc = acc - x[j * x_stride];
            else if (M[i][j] != 0) acc = simd::fma(simd::FloatBatch(static_cast<float>(M[i][j])), x[j * x_stride], acc);
        }
        r[i] = acc;
    }
}

// y = At m At^T on every lane for an M x A matrix At (m A x A, y M x M,
// row-major): the output transform of the tilings written with apply_constant.
template <int M, int A>
__attribute__((always_inline)) inline void output_transform_with(const double (&At)[M][A], const simd::FloatBatch* m,
                                                                 simd::FloatBatch* y) {
    simd::FloatBatch t[M * A], col[M];  // t = At m, M x A
    for (int j = 0; j < A; ++j) {
        apply_constant(At, m + j, A, col);
        for (int i = 0; i < M; ++i) t[i * A + j] = col[i];
    }
    for (int i = 0; i < M; ++i) apply_constant(At, t + i * A, 1, y + i * M);  // y = t At^T
}

}  // namespace winograd

namespace ref {
// Scalar twins of the lane transforms, straight from the matrices.
inline void winograd_input_transform(const float* d /* 36 */, float* v /* 36 */) {
    for (int a = 0; a < 6; ++a)
        for (int b = 0; b < 6; ++b) {
            double s = 0;
            for (int i = 0; i < 6; ++i)
                for (int j = 0; j < 6; ++j) s += winograd::BT[a][i] * double(d[i * 6 + j]) * winograd::BT[b][j];
            v[a * 6 + b] = static_cast<float>(s);
        }
}
inline void winograd_output_transform(const float* m /* 36 */, float* y /* 16 */) {
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) {
            double s = 0;
            for (int a = 0; a < 6; ++a)
                for (int b = 0; b < 6; ++b) s += winograd::AT[i][a] * double(m[a * 6 + b]) * winograd::AT[j][b];
            y[i * 4 + j] = static_cast<float>(s);
        }
}
}  // namespace ref

}  // namespace kernels
}  // namespace salted
