// 5x5, stride-1 convolution by Winograd's F(2x2, 5x5): LeNet's 32->32
// layers, three quarters of its time.
//
// A 2x2 output tile of a 5x5 kernel reads a 6x6 input patch, as a 4x4 tile
// of a 3x3 kernel does, so F(2x2, 5x5) on the points 0, 1, -1, 2, -2 and
// infinity shares F(4x4, 3x3)'s input transform B^T (winograd_transforms.hpp)
// and its patch loads; only G (6x5) and A^T (2x6) differ:
//
//   Y = A^T [ (G g G^T) (.) (B^T d B) ] A
//
// 36 multiplies per 4 outputs and channel pair instead of 100: 2.8x fewer.
// G's rows are F(4, 3)'s scaled powers of the points (c_j p_j^k, k < 5) and
// A^T's the powers p_j^i, i < 2 (checked against the correlation in double,
// tests/test_winograd.cpp). The constants are F(4, 3)'s, so is the accuracy:
// parity cases against PyTorch in tests/parity/gen_winograd.py.
//
// The driver (blocks, GEMMs, threads, workspace) is winograd.hpp's
// WinogradConv; this file supplies the tiling.
#pragma once

#include <cstdint>

#include "salted/core/simd.hpp"
#include "salted/kernels/winograd.hpp"
#include "salted/kernels/winograd_2x2.hpp"

namespace salted {
namespace kernels {

namespace winograd {
namespace f25 {
constexpr int tile_out = 2, kernel_size = 5;
constexpr double G[6][5] = {{1.0 / 4, 0, 0, 0, 0},
                            {-1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6},
                            {-1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6},
                            {1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 3, 2.0 / 3},
                            {1.0 / 24, -1.0 / 12, 1.0 / 6, -1.0 / 3, 2.0 / 3},
                            {0, 0, 0, 0, 1}};
constexpr double AT[2][6] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 1}};

// U = G g G^T for one 5x5 kernel g (row-major), in double.
inline void kernel_transform(const float* g, double* u /* 36, row-major */) { kernel_transform_with(G, g, u); }

// y = A^T m A on every lane (m 6x6, y 2x2, row-major).
__attribute__((always_inline)) inline void output_transform(const simd::FloatBatch* m, simd::FloatBatch* y) {
    output_transform_with(AT, m, y);
}
}  // namespace f25
}  // namespace winograd

struct Tiles5x5 {
    using Geometry = WinogradGeometry;  // its tiles_*() are F(4x4, 3x3)'s; this tiling counts its own
    using Patch = winograd::Patch;
    static constexpr int positions = winograd::positions;  // 36, as F(4x4, 3x3)
    static constexpr int tile_h = winograd::f25::tile_out, tile_w = winograd::f25::tile_out;
    static constexpr int64_t block_tiles = winograd_block_tiles;
    static constexpr bool store_in_halves = false;  // Tiles3x3::store_half
    int phases() const { return 1; }
    int live_phases(int) const { return 1; }  // see RowTiles::live_phases
    static constexpr bool has_dead_positions = false;
    int patch_rows() const { return winograd::tile_in; }
    int patch_cols() const { return winograd::tile_in; }
    static int64_t tile_count(const Geometry& g) { return Tiles2x2::tile_count(g); }  // the same 2x2 tiles

    void kernel_transform(const float* weight, int64_t co, int64_t k, int64_t cin, double* u) const {
        winograd::f25::kernel_transform(weight + (co * cin + k) * 25, u);
    }

    void locate(const Geometry& g, int64_t cin, int64_t t0, int64_t count, WinogradTilePos* pos,
                Patch* patches) const {
        locate_square_tiles(g, cin, tile_w, winograd::tile_in, t0, count, pos, patches);
    }

    // emit(0, tv): tv[xi] = B^T d B of channel c of `lanes` tiles, as F(4x4, 3x3).
    template <class Emit>
    __attribute__((always_inline)) void transform_input(const Geometry& g, const float* in, const Patch* patches,
                                                        int lanes, int64_t c, const Emit& emit) const {
        Tiles3x3().transform_input(g, in, patches, lanes, c, emit);
    }

    static void output_transform(const simd::FloatBatch* m, simd::FloatBatch* y) {
        winograd::f25::output_transform(m, y);
    }

    static void store(const simd::FloatBatch* y, float* dst, int64_t plane, int64_t out_w, int rows, int cols,
                      int lanes) {
        Tiles2x2::store(y, dst, plane, out_w, rows, cols, lanes);
    }
};

// Whether F(2x2, 5x5) beats conv2d's other paths (direct convolution from
// 32 output channels, im2col below) for these channel counts, whatever the
// output size. Measured on Zen 4, 1 thread, padded 5x5 layers (us, other
// path -> F(2x2, 5x5)): Cin 8: 16x16 -> 16 channels 26-31 -> 29, -> 32
// channels 31-35 -> 34, 8x8 7.6 -> 7.7, batch 4 of 32x32 377 -> 505 (its
// transforms outweigh 8 channels' GEMMs); Cin 16: 32x32 -> 16 channels
// 183-213 -> 187-189, 12x12 -> 32 channels 38.6 -> 30-31; Cin 32 8x8 -> 32
// channels 30 -> 20; 64 -> 64 16x16 457-497 -> 240-246. LeNet's 32->32
// layers: 1.3-1.4x (docs/BENCHMARKS.md).
inline bool winograd_5x5_worth_it(int64_t in_channels, int64_t out_channels) {
    return in_channels >= 16 && out_channels >= 32;
}

// 5x5 stride-1 convolution by F(2x2, 5x5); weight [Cout, Cin, 5, 5].
using WinogradConv5x5 = SquareWinogradConv<Tiles5x5>;

}  // namespace kernels
}  // namespace salted
