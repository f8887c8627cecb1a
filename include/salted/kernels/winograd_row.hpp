// Row-wise convolutions (kernel kh x kw with kh <= 3, stride 1 or 2 along
// the row) by the 1-D Winograd F(4, 3) on polyphase components: the sensor
// ConvNet's (1,5) and (3,5) layers, with row strides of 2, 90 % of its time.
//
// Why it pays: a stride-2 row conv splits into its even and odd input
// columns (phases),
//   y[o] = sum_t w[2t] x[2(o+t)] + sum_t w[2t+1] x[2(o+t)+1],
// two stride-1 convs with ceil(kw/2) and floor(kw/2) taps (3 and 2 for kw =
// 5, the odd phase padded to 3 with a zero tap). Each is F(4, 3): 4 outputs
// from 6 inputs with 6 multiplies instead of 12. Per output and channel
// pair that is 2 x 6/4 = 3 multiplies instead of kw = 5: 1.67x fewer. A
// kernel of kh rows is kh such row convs summed. Each (kernel row, phase)
// becomes a transformed input channel (K = kh x 2 x Cin), so the GEMMs,
// blocking and threading are WinogradConv's (winograd.hpp) with 6
// positions instead of 36. Stride 1 is the same with one phase (kw <= 3).
//
// Accuracy: the 1-D transforms are one factor of the 2-D ones (points 0,
// +-1, +-2, infinity), so the error is below F(4x4, 3x3)'s (winograd.hpp).
// Inf/NaN inputs spread to a 4-pixel tile, as there.
//
// Tiles are 1 x 4 output pixels in one output row; a tile reads, in each of
// kh input rows, a span of 6 x stride input columns (both phases interleaved).
#pragma once

#include <algorithm>
#include <cstdint>

#include "salted/core/simd.hpp"
#include "salted/kernels/winograd.hpp"

namespace salted {
namespace kernels {

namespace winograd {

// One tile's input: column j (0 <= j < 6 x stride) of the span in kernel
// row ky and channel c is in[offset + c * plane + ky * in_w + j] when bit j
// of mask[ky] is set, and zero padding otherwise.
struct RowPatch {
    int64_t offset = 0;
    uint32_t mask[3] = {0, 0, 0};  // per kernel row: its span's columns inside the image, 0 outside
};

// r = G g for one phase's 3 taps, in double (as kernel_transform).
inline void row_kernel_transform(const double* g, double* u) {
    for (int a = 0; a < tile_in; ++a) u[a] = G[a][0] * g[0] + G[a][1] * g[1] + G[a][2] * g[2];
}

}  // namespace winograd

struct RowTiles {
    using Geometry = WinogradGeometry;  // with stride_h; tiles are 1 x 4 output pixels
    using Patch = winograd::RowPatch;
    static constexpr int positions = winograd::tile_in;  // 6
    static constexpr int tile_h = 1;
    static constexpr int64_t block_tiles = winograd_block_tiles;  // 32 and 64 measured no faster

    int kernel_h = 1, kernel_w = 0;
    int stride = 1;  // along the row: 1 or 2, kernel_w <= 3 x stride

    // Which convs this tiling takes: ungrouped, undilated, at most 3 kernel
    // rows, and rows where F(4, 3) saves multiplies: kw = 3 at stride 1
    // (2x fewer), 4 <= kw <= 6 at stride 2 (kw / 3 fewer: 1.33-2x). A 3-wide
    // stride-2 row splits into 2 + 1 taps, each padded to 3: no saving
    // (WideResNet's strided convs measured 15-30 % slower than direct).
    static bool supports(int64_t kernel_h, int64_t kernel_w, int64_t stride_w, int64_t dilation_h,
                         int64_t dilation_w, int64_t groups) {
        const bool saves = (stride_w == 1 && kernel_w == 3) || (stride_w == 2 && kernel_w >= 4 && kernel_w <= 6);
        return saves && kernel_h >= 1 && kernel_h <= 3 && dilation_h == 1 && dilation_w == 1 && groups == 1;
    }

    // Transformed channels per input channel: one per (kernel row, phase).
    int phases() const { return kernel_h * stride; }
    static int64_t tiles_x(const Geometry& g) { return (g.out_w + winograd::tile_out - 1) / winograd::tile_out; }
    static int64_t tile_count(const Geometry& g) { return g.batch * g.out_h * tiles_x(g); }
    int span() const { return winograd::tile_in * stride; }

    // Transformed channel k = (ky * stride + phase) * Cin + c takes taps
    // w[co][c][ky][t * stride + phase].
    void kernel_transform(const float* weight, int64_t co, int64_t k, int64_t cin, double* u) const {
        const int64_t ky = k / cin / stride, phase = k / cin % stride, c = k % cin;
        double g[3] = {0, 0, 0};
        for (int t = 0; t < 3; ++t) {
            const int64_t tap = t * stride + phase;
            if (tap < kernel_w) g[t] = weight[((co * cin + c) * kernel_h + ky) * kernel_w + tap];
        }
        winograd::row_kernel_transform(g, u);
    }

    void locate(const Geometry& g, int64_t cin, int64_t t0, int64_t count, WinogradTilePos* pos,
                Patch* patches) const {
        const int64_t tx_count = tiles_x(g), per_image = g.out_h * tx_count;
        for (int64_t r = 0; r < count; ++r) {
            const int64_t t = t0 + r, rem = t % per_image;
            pos[r] = WinogradTilePos{t / per_image, rem / tx_count, rem % tx_count * winograd::tile_out};
            const int64_t iy = pos[r].oy * g.stride_h - g.pad_top, ix0 = pos[r].ox * stride - g.pad_left;
            Patch p;
            p.offset = pos[r].image * cin * g.in_h * g.in_w + iy * g.in_w + ix0;
            uint32_t cols = 0;
            for (int j = 0; j < span(); ++j)
                if (ix0 + j >= 0 && ix0 + j < g.in_w) cols |= 1u << j;
            for (int ky = 0; ky < kernel_h; ++ky)
                if (iy + ky >= 0 && iy + ky < g.in_h) p.mask[ky] = cols;
            patches[r] = p;
        }
    }

    // emit(ky * stride + phase, tv): tv[xi] = (B^T d)[xi] for that kernel
    // row and phase of channel c of `lanes` tiles.
    template <class Emit>
    void transform_input(const Geometry& g, const float* in, const Patch* patches, int lanes, int64_t c,
                         const Emit& emit) const {
        // The stride as a constant, so that the columns stay in registers.
        if (stride == 2) return transform_input_strided<2>(g, in, patches, lanes, c, emit);
        transform_input_strided<1>(g, in, patches, lanes, c, emit);
    }

    template <int S, class Emit>
    void transform_input_strided(const Geometry& g, const float* in, const Patch* patches, int lanes, int64_t c,
                                 const Emit& emit) const {
        for (int ky = 0; ky < kernel_h; ++ky) {
            // The span's columns, one tile per lane (rounded up to the 8 a transpose writes).
            simd::FloatBatch col[(S * winograd::tile_in + 7) / 8 * 8];
            load_columns<S>(in, patches, lanes, c * g.in_h * g.in_w + ky * g.in_w, ky, col);
            for (int ph = 0; ph < S; ++ph) {
                const simd::FloatBatch* d = col + ph;  // column i * S + ph
                simd::FloatBatch o[winograd::tile_in];
                winograd::input_1d(d[0], d[S], d[2 * S], d[3 * S], d[4 * S], d[5 * S], o[0], o[1], o[2], o[3], o[4],
                                   o[5]);
                emit(ky * S + ph, o);
            }
        }
    }

    static void output_transform(const simd::FloatBatch* m, simd::FloatBatch* y) {
        winograd::output_1d(m[0], m[1], m[2], m[3], m[4], m[5], y[0], y[1], y[2], y[3]);
    }

    // col[j], lane t = column j of tile t's span in kernel row ky (zero past `lanes`).
    template <int S>
    static void load_columns(const float* in, const Patch* patches, int lanes, int64_t offset, int ky,
                             simd::FloatBatch* col) {
        constexpr int span = S * winograd::tile_in;
        const auto mask = [&](int t, int j0) { return patches[t].mask[ky] >> j0; };
#if defined(SALTED_WINOGRAD_AVX512)
        for (int j0 = 0; j0 < span; j0 += 8) {  // 8 columns per transpose
            __m512 z[8];
            winograd::load_rows16x8(
                in, lanes, [&](int t) { return patches[t].offset + offset + j0; },
                [&](int t) { return mask(t, j0) & 0xffu; }, z);
            winograd::transpose_rows16x8(z, std::min(8, span - j0), col + j0);
        }
#else
        constexpr int W = static_cast<int>(simd::width);
        alignas(64) float buf[span * W];
        for (int j = 0; j < span; ++j)
            for (int t = 0; t < W; ++t)
                buf[j * W + t] = t < lanes && (mask(t, j) & 1u) ? in[patches[t].offset + offset + j] : 0.0f;
        for (int j = 0; j < span; ++j) col[j] = simd::FloatBatch::load_aligned(buf + j * W);
#endif
    }
};

// Whether the row Winograd can beat the direct convolution for these
// channel counts, and for this output size too. The channel bounds mirror
// the 3x3 ones (winograd.hpp: narrower layers half-fill the 32-wide GEMM
// panels); on the sensor net's 6x9 output (18 tiles) it measured level with
// the direct convolution (69 vs 68 us), on 13x21 and larger 1.3-1.5x
// faster (docs/BENCHMARKS.md), so fewer than 16 tiles stay direct.
inline bool winograd_row_channels_worth_it(int64_t in_channels, int64_t out_channels) {
    return in_channels >= 8 && out_channels >= 16;
}
inline bool winograd_row_worth_it(int64_t in_channels, int64_t out_channels, int64_t out_h, int64_t out_w) {
    return winograd_row_channels_worth_it(in_channels, out_channels) && out_h * ((out_w + 3) / 4) >= 16;
}

// Row-wise convolution by polyphase F(4, 3); weight [Cout, Cin, kh, kw].
class WinogradConvRow : public WinogradConv<RowTiles> {
public:
    WinogradConvRow() = default;
    static Result<WinogradConvRow> create(int64_t in_channels, int64_t out_channels, int64_t kernel_h,
                                          int64_t kernel_w, int64_t stride_w, const float* weight,
                                          const float* bias) {
        RowTiles tiles;
        tiles.kernel_h = static_cast<int>(kernel_h);
        tiles.kernel_w = static_cast<int>(kernel_w);
        tiles.stride = static_cast<int>(stride_w);
        SALTED_ASSIGN(WinogradConv<RowTiles> w,
                      WinogradConv<RowTiles>::create(tiles, in_channels, out_channels, weight, bias));
        return WinogradConvRow(std::move(w));
    }

private:
    explicit WinogradConvRow(WinogradConv<RowTiles> w) : WinogradConv<RowTiles>(std::move(w)) {}
};

}  // namespace kernels
}  // namespace salted
