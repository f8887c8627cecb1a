// 3x3, stride-1 convolution by Winograd's F(2x2, 3x3), for the layers whose
// F(4x4, 3x3) weights cost more to read than its multiplies save.
//
// Why a second 3x3 tiling: F(4x4, 3x3) (winograd.hpp) stores 36 transformed
// weights per (input, output) channel pair, 4x the layer's own 9. At batch 1
// on an 8x8 map it has only 4 tiles, so each of those weights is used 4
// times per run: a 256->256 layer streams 9.4 MB of them, and with the rest
// of WideResNet-16-4 (37 MB of them in all, more than this machine's L3)
// they come from memory every run. Measured in the model at batch 1: 640 us
// for the 8x8 256->256 layer against 300 us when its weights are in cache.
// F(2x2, 3x3) stores 16 per pair (1.8x the layer's own), has 16 tiles on the
// same map, and still saves 2.25x of the multiplies.
//
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A      over 4x4 tiles, points 0, 1, -1, infinity
//
// Every constant is 0, +-1 or (in G, applied once in double) 1/2, so it is
// also the most accurate of the tilings (2.5e-7 of max|y| at K = 9 x 256;
// see winograd_transforms.hpp).
//
// The driver (blocks, GEMMs, threads, workspace) is winograd.hpp's
// WinogradConv; this file supplies the tiling: 2x2 output tiles from 4x4
// input patches, 16 positions.
#pragma once

#include <algorithm>
#include <cstdint>

#include "salted/core/simd.hpp"
#include "salted/kernels/winograd.hpp"

namespace salted {
namespace kernels {

namespace winograd {
namespace f23 {
constexpr int tile_out = 2, tile_in = 4, positions = tile_in * tile_in;
constexpr double BT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
constexpr double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
constexpr double AT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};

// U = G g G^T for one 3x3 kernel g (row-major), in double.
inline void kernel_transform(const float* g, double* u /* 16, row-major */) { kernel_transform_with(G, g, u); }

// v = B^T d B on every lane (d, v: 4x4 row-major).
__attribute__((always_inline)) inline void input_transform(const simd::FloatBatch* d, simd::FloatBatch* v) {
    simd::FloatBatch t[16], col[4];
    for (int j = 0; j < 4; ++j) {  // columns: t = B^T d
        apply_constant(BT, d + j, 4, col);
        for (int i = 0; i < 4; ++i) t[i * 4 + j] = col[i];
    }
    for (int a = 0; a < 4; ++a) apply_constant(BT, t + a * 4, 1, v + a * 4);  // rows: v = t B
}

// y = A^T m A on every lane (m 4x4, y 2x2, row-major).
__attribute__((always_inline)) inline void output_transform(const simd::FloatBatch* m, simd::FloatBatch* y) {
    output_transform_with(AT, m, y);
}
}  // namespace f23
}  // namespace winograd

struct Tiles2x2 {
    using Geometry = WinogradGeometry;  // its tiles_*() are F(4x4)'s; this tiling counts its own
    using Patch = winograd::Patch;
    static constexpr int positions = winograd::f23::positions;
    static constexpr int tile_h = winograd::f23::tile_out, tile_w = winograd::f23::tile_out;
    static constexpr int64_t block_tiles = winograd_block_tiles;
    static constexpr bool store_in_halves = false;  // Tiles3x3::store_half
    int phases() const { return 1; }
    int live_phases(int) const { return 1; }  // see RowTiles::live_phases
    static constexpr bool has_dead_positions = false;
    int patch_rows() const { return winograd::f23::tile_in; }
    int patch_cols() const { return winograd::f23::tile_in; }
    static int64_t tiles_y(const Geometry& g) { return (g.out_h + tile_h - 1) / tile_h; }
    static int64_t tiles_x(const Geometry& g) { return (g.out_w + tile_w - 1) / tile_w; }
    static int64_t tile_count(const Geometry& g) { return g.batch * tiles_y(g) * tiles_x(g); }

    void kernel_transform(const float* weight, int64_t co, int64_t k, int64_t cin, double* u) const {
        winograd::f23::kernel_transform(weight + (co * cin + k) * 9, u);
    }

    void locate(const Geometry& g, int64_t cin, int64_t t0, int64_t count, WinogradTilePos* pos,
                Patch* patches) const {
        locate_square_tiles(g, cin, tile_w, winograd::f23::tile_in, t0, count, pos, patches);
    }

    // emit(0, tv): tv[xi] = B^T d B of channel c of `lanes` tiles (one per lane).
    template <class Emit>
    __attribute__((always_inline)) void transform_input(const Geometry& g, const float* in, const Patch* patches,
                                                        int lanes, int64_t c, const Emit& emit) const {
        constexpr int A = winograd::f23::tile_in;
        simd::FloatBatch d[positions], tv[positions];
        const int64_t channel_offset = c * g.in_h * g.in_w;
#if defined(SALTED_WINOGRAD_AVX512)
        for (int i = 0; i < A; ++i) {
            __m512 z[8];
            winograd::load_rows16x8(
                in, lanes, [&](int t) { return patches[t].offset + channel_offset + i * g.in_w; },
                [&](int t) { return (patches[t].row_mask >> i & 1u) ? patches[t].col_mask : 0u; }, z);
            winograd::transpose_rows16x8(z, A, d + i * A);
        }
#else
        winograd::load_patches<A>(in, patches, lanes, channel_offset, g.in_w, d);
#endif
        winograd::f23::input_transform(d, tv);
        emit(0, tv);
    }

    static void output_transform(const simd::FloatBatch* m, simd::FloatBatch* y) {
        winograd::f23::output_transform(m, y);
    }

    // The valid rows x cols of the 2x2 tile y for `lanes` channels, channel l at dst + l * plane.
    static void store(const simd::FloatBatch* y, float* dst, int64_t plane, int64_t out_w, int rows, int cols,
                      int lanes) {
#if defined(SALTED_WINOGRAD_AVX2)
        if (rows == 2 && cols == 2 && lanes == 8) {  // each row's 2 pixels: one 8-byte pair per channel
            winograd::store_pixel_pairs8(y[0], y[1], dst, plane);
            winograd::store_pixel_pairs8(y[2], y[3], dst + out_w, plane);
            return;
        }
#endif
        winograd::store_tile_portable<tile_w>(y, dst, plane, out_w, rows, cols, lanes);
    }
};

// Whether F(2x2) is the faster tiling for a problem on which F(4x4) has
// `tiles_4x4` tiles. Measured on WideResNet-16-4's 8x8 layers (1 and 2
// threads): at batch 1 (4 tiles) the whole model ran 13-17 % faster with
// F(2x2) there; at batch 2 and 3 (8, 12 tiles) 5-10 % slower, as F(4x4)'s
// multiplies then outweigh reading its weights.
inline bool winograd_2x2_beats_4x4(int64_t tiles_4x4) { return tiles_4x4 <= 4; }

// 3x3 stride-1 convolution by F(2x2, 3x3); weight [Cout, Cin, 3, 3].
using WinogradConv2x2 = SquareWinogradConv<Tiles2x2>;

}  // namespace kernels
}  // namespace salted
