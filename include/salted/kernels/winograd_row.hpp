// Row-wise convolutions (kernel kh x kw with kh <= 3, stride 1 or 2 along
// the row) by the 1-D Winograd F(6, 3) on polyphase components: the sensor
// ConvNet's (1,5) and (3,5) layers, with row strides of 2, 90 % of its time.
//
// Why it pays: a stride-2 row conv splits into its even and odd input
// columns (phases),
//   y[o] = sum_t w[2t] x[2(o+t)] + sum_t w[2t+1] x[2(o+t)+1],
// two stride-1 convs with ceil(kw/2) and floor(kw/2) taps (3 and 2 for kw =
// 5, the odd phase padded to 3 with a zero tap). Each is F(6, 3): 6 outputs
// from 8 inputs with 8 multiplies instead of 18. Per output and channel
// pair that is 2 x 8/6 = 2.67 multiplies instead of kw = 5: 1.9x fewer. A
// kernel of kh rows is kh such row convs summed. Each (kernel row, phase)
// becomes a transformed input channel (K = kh x 2 x Cin), so the GEMMs,
// blocking and threading are WinogradConv's (winograd.hpp) with 8
// positions instead of 36. Stride 1 is the same with one phase (kw <= 3).
// (F(4, 3) first: the sensor net took 1.59 ms at batch 1; F(6, 3): 1.41.)
//
// Accuracy: see row63 below; the parity tests against PyTorch stay within
// 9e-6 of max|y| (tolerance 1e-4). Inf/NaN inputs spread to a 6-pixel
// tile, as the 3x3 Winograd's spread to its 4x4 tile.
//
// Tiles are 1 x 6 output pixels in one output row; a tile reads, in each of
// kh input rows, a span of 8 x stride input columns (both phases interleaved).
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
constexpr int row_max_kernel_rows = 3;

struct RowPatch {
    int64_t offset = 0;
    uint32_t mask[row_max_kernel_rows] = {};  // per kernel row: its span's columns inside the image, 0 outside
};

// F(6, 3): 6 outputs of a 3-tap row from 8 inputs with 8 multiplies, for the
// points 0, 1, -1, 1/2, -1/2, 2, -2 and infinity (Lavin & Gray's choice;
// derived by Toom-Cook and checked exactly in rational arithmetic). Over
// F(4, 3) it saves another 11 % of the multiplies (8/6 against 6/4 per
// output); in one dimension its larger constants cost little accuracy
// (the 2-D F(6x6, 3x3) is where they add up; winograd_transforms.hpp).
namespace row63 {
constexpr int tile_out = 6, tile_in = 8;
constexpr double BT[8][8] = {
    {1, 0, -21.0 / 4, 0, 21.0 / 4, 0, -1, 0},  // the derivation's row, negated with G's: same product
    {0, 1, 1, -17.0 / 4, -17.0 / 4, 1, 1, 0},
    {0, -1, 1, 17.0 / 4, -17.0 / 4, -1, 1, 0},
    {0, 2, 4, -5.0 / 2, -5, 1.0 / 2, 1, 0},
    {0, -2, 4, 5.0 / 2, -5, -1.0 / 2, 1, 0},
    {0, 1.0 / 2, 1.0 / 4, -5.0 / 2, -5.0 / 4, 2, 1, 0},
    {0, -1.0 / 2, 1.0 / 4, 5.0 / 2, -5.0 / 4, -2, 1, 0},
    {0, -1, 0, 21.0 / 4, 0, -21.0 / 4, 0, 1}};
constexpr double G[8][3] = {{1, 0, 0},
                            {-2.0 / 9, -2.0 / 9, -2.0 / 9},
                            {-2.0 / 9, 2.0 / 9, -2.0 / 9},
                            {32.0 / 45, 16.0 / 45, 8.0 / 45},
                            {32.0 / 45, -16.0 / 45, 8.0 / 45},
                            {1.0 / 90, 1.0 / 45, 2.0 / 45},
                            {1.0 / 90, -1.0 / 45, 2.0 / 45},
                            {0, 0, 1}};
constexpr double AT[6][8] = {{1, 1, 1, 1, 1, 1, 1, 0},
                             {0, 1, -1, 1.0 / 2, -1.0 / 2, 2, -2, 0},
                             {0, 1, 1, 1.0 / 4, 1.0 / 4, 4, 4, 0},
                             {0, 1, -1, 1.0 / 8, -1.0 / 8, 8, -8, 0},
                             {0, 1, 1, 1.0 / 16, 1.0 / 16, 16, 16, 0},
                             {0, 1, -1, 1.0 / 32, -1.0 / 32, 32, -32, 1}};

// u = G g for one phase's 3 taps, in double (rounded once to float by the caller).
inline void kernel_transform(const double* g, double* u) {
    for (int a = 0; a < tile_in; ++a) u[a] = G[a][0] * g[0] + G[a][1] * g[1] + G[a][2] * g[2];
}

// o = B^T d and y = A^T m on every lane, factored: the even and odd
// columns of each B^T row pair share their sums (r1 = e + o, r2 = e - o,
// ...), 26 operations instead of the matrix's 52, and A^T's rows share the
// sums and differences of m1..m6, 18 instead of 44. Rounding differs from
// the matrix product by a few ulps (the lane-transform test bounds it).
// d[i * stride] is column i.
__attribute__((always_inline)) inline void input_transform(const simd::FloatBatch* d, int stride,
                                                           simd::FloatBatch* o) {
    using B = simd::FloatBatch;
    const B d0 = d[0], d1 = d[stride], d2 = d[2 * stride], d3 = d[3 * stride];
    const B d4 = d[4 * stride], d5 = d[5 * stride], d6 = d[6 * stride], d7 = d[7 * stride];
    o[0] = simd::fma(B(5.25f), d4 - d2, d0 - d6);
    o[7] = simd::fma(B(5.25f), d3 - d5, d7 - d1);
    const B e1 = simd::fma(B(-4.25f), d4, d2 + d6), o1 = simd::fma(B(-4.25f), d3, d1 + d5);
    o[1] = e1 + o1;
    o[2] = e1 - o1;
    const B e2 = simd::fma(B(4.0f), d2, simd::fma(B(-5.0f), d4, d6));
    const B o2 = simd::fma(B(2.0f), d1, simd::fma(B(-2.5f), d3, d5 * B(0.5f)));
    o[3] = e2 + o2;
    o[4] = e2 - o2;
    const B e3 = simd::fma(B(0.25f), d2, simd::fma(B(-1.25f), d4, d6));
    const B o3 = simd::fma(B(0.5f), d1, simd::fma(B(-2.5f), d3, d5 * B(2.0f)));
    o[5] = e3 + o3;
    o[6] = e3 - o3;
}

__attribute__((always_inline)) inline void output_transform(const simd::FloatBatch* m, simd::FloatBatch* y) {
    using B = simd::FloatBatch;
    const B s12 = m[1] + m[2], d12 = m[1] - m[2], s34 = m[3] + m[4], d34 = m[3] - m[4];
    const B s56 = m[5] + m[6], d56 = m[5] - m[6];
    y[0] = m[0] + s12 + s34 + s56;
    y[1] = simd::fma(B(2.0f), d56, simd::fma(B(0.5f), d34, d12));
    y[2] = simd::fma(B(4.0f), s56, simd::fma(B(0.25f), s34, s12));
    y[3] = simd::fma(B(8.0f), d56, simd::fma(B(0.125f), d34, d12));
    y[4] = simd::fma(B(16.0f), s56, simd::fma(B(0.0625f), s34, s12));
    y[5] = simd::fma(B(32.0f), d56, simd::fma(B(0.03125f), d34, d12 + m[7]));
}

}  // namespace row63

}  // namespace winograd

struct RowTiles {
    using Geometry = WinogradGeometry;  // with stride_h; tiles are 1 x 6 output pixels
    using Patch = winograd::RowPatch;
    static constexpr int positions = winograd::row63::tile_in;  // 8
    static constexpr int tile_h = 1, tile_w = winograd::row63::tile_out;
    static constexpr int64_t block_tiles = winograd_block_tiles;  // 32 and 64 measured no faster
    static constexpr bool store_in_halves = false;  // Tiles3x3::store_half

    int kernel_h = 1, kernel_w = 0;
    int stride = 1;  // along the row: 1 or 2, kernel_w <= 3 x stride

    // Which convs this tiling takes: ungrouped, undilated, at most 3 kernel
    // rows, and rows where F(6, 3) saves multiplies: kw = 3 at stride 1
    // (2.25x fewer), 4 <= kw <= 6 at stride 2 (kw / 2.67 fewer: 1.5-2.25x).
    // A 3-wide stride-2 row splits into 2 + 1 taps, each padded to 3: little
    // saving (WideResNet's strided convs measured 15-30 % slower than direct
    // with F(4, 3)).
    static bool supports(int64_t kernel_h, int64_t kernel_w, int64_t stride_w, int64_t dilation_h,
                         int64_t dilation_w, int64_t groups) {
        const bool saves = (stride_w == 1 && kernel_w == 3) || (stride_w == 2 && kernel_w >= 4 && kernel_w <= 6);
        return saves && kernel_h >= 1 && kernel_h <= winograd::row_max_kernel_rows && dilation_h == 1 &&
               dilation_w == 1 && groups == 1;
    }

    // Transformed channels per input channel: one per (phase, kernel row),
    // phase-major.
    int phases() const { return kernel_h * stride; }
    // The last position (F(6, 3)'s point at infinity) takes only the third
    // tap of a phase, g[2] = w[2 * stride + phase], which a kernel narrower
    // than 3 x stride lacks: kw = 5 at stride 2 has no w[5], so the odd
    // phase is zero there. Phases are the outer index of the transformed
    // channels, so the live ones are a prefix and that position's GEMM
    // skips the rest: 1/16 of the multiplies of the sensor net's layers.
    static constexpr bool has_dead_positions = true;
    int live_phases(int xi) const {
        if (xi != positions - 1) return phases();
        int live = 0;
        for (int ph = 0; ph < stride; ++ph) live += 2 * stride + ph < kernel_w;
        return live * kernel_h;
    }
    int patch_rows() const { return kernel_h; }
    int patch_cols() const { return span(); }
    static int64_t tiles_x(const Geometry& g) { return (g.out_w + tile_w - 1) / tile_w; }
    static int64_t tile_count(const Geometry& g) { return g.batch * g.out_h * tiles_x(g); }
    int span() const { return positions * stride; }

    // Transformed channel k = (phase * kh + ky) * Cin + c takes taps
    // w[co][c][ky][t * stride + phase].
    void kernel_transform(const float* weight, int64_t co, int64_t k, int64_t cin, double* u) const {
        const int64_t ky = k / cin % kernel_h, phase = k / cin / kernel_h, c = k % cin;
        double g[3] = {0, 0, 0};
        for (int t = 0; t < 3; ++t) {
            const int64_t tap = t * stride + phase;
            if (tap < kernel_w) g[t] = weight[((co * cin + c) * kernel_h + ky) * kernel_w + tap];
        }
        winograd::row63::kernel_transform(g, u);
    }

    void locate(const Geometry& g, int64_t cin, int64_t t0, int64_t count, WinogradTilePos* pos,
                Patch* patches) const {
        const int64_t tx_count = tiles_x(g), per_image = g.out_h * tx_count;
        for (int64_t r = 0; r < count; ++r) {
            const int64_t t = t0 + r, rem = t % per_image;
            pos[r] = WinogradTilePos{t / per_image, rem / tx_count, rem % tx_count * tile_w};
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

    // emit(phase * kh + ky, tv): tv[xi] = (B^T d)[xi] for that kernel
    // row and phase of channel c of `lanes` tiles.
    template <class Emit>
    __attribute__((always_inline)) void transform_input(const Geometry& g, const float* in, const Patch* patches,
                                                        int lanes, int64_t c, const Emit& emit) const {
        // The stride as a constant, so that the columns stay in registers.
        if (stride == 2) return transform_input_strided<2>(g, in, patches, lanes, c, emit);
        transform_input_strided<1>(g, in, patches, lanes, c, emit);
    }

    template <int S, class Emit>
    __attribute__((always_inline)) void transform_input_strided(const Geometry& g, const float* in,
                                                                const Patch* patches, int lanes, int64_t c,
                                                                const Emit& emit) const {
        for (int ky = 0; ky < kernel_h; ++ky) {
            // The span's columns, one tile per lane (rounded up to the 8 a transpose writes).
            simd::FloatBatch col[(S * positions + 7) / 8 * 8];
            load_columns<S>(in, patches, lanes, c * g.in_h * g.in_w + ky * g.in_w, ky, col);
            for (int ph = 0; ph < S; ++ph) {
                const simd::FloatBatch* d = col + ph;  // column i * S + ph
                simd::FloatBatch o[positions];
                winograd::row63::input_transform(d, S, o);
                emit(ph * kernel_h + ky, o);
            }
        }
    }

    static void output_transform(const simd::FloatBatch* m, simd::FloatBatch* y) {
        winograd::row63::output_transform(m, y);
    }

    // The first `cols` pixels of the 1 x 6 tile y for `lanes` channels.
    static void store(const simd::FloatBatch* y, float* dst, int64_t plane, int64_t out_w, int, int cols,
                      int lanes) {
        constexpr int W = static_cast<int>(simd::width);
        const int head = std::min(cols, winograd::tile_out);  // 4 by the 3x3 tile's transposes
        winograd::store_tile(y, dst, plane, out_w, 1, head, lanes);
        if (cols <= head) return;
#if defined(SALTED_WINOGRAD_AVX2)
        if (cols == 6 && lanes == 8) return winograd::store_pixel_pairs8(y[4], y[5], dst + 4, plane);
#endif
        alignas(64) float rest[2 * W];
        y[4].store_aligned(rest);
        y[5].store_aligned(rest + W);
        for (int l = 0; l < lanes; ++l)
            for (int j = head; j < cols; ++j) dst[l * plane + j] = rest[(j - 4) * W + l];
    }

    // col[j], lane t = column j of tile t's span in kernel row ky (zero past `lanes`).
    template <int S>
    static void load_columns(const float* in, const Patch* patches, int lanes, int64_t offset, int ky,
                             simd::FloatBatch* col) {
        constexpr int span = S * positions;
        const auto mask = [&](int t, int j0) { return patches[t].mask[ky] >> j0; };
#if defined(SALTED_WINOGRAD_AVX512)
        for (int j0 = 0; j0 < span; j0 += 8) {  // 8 columns per transpose
            __m512 z[8];
            winograd::load_rows16x8(
                in, lanes, [&](int t) { return patches[t].offset + offset + j0; },
                [&](int t) { return mask(t, j0) & 0xffu; }, z);
            winograd::transpose_rows16x8(z, std::min(8, span - j0), col + j0);
        }
#elif defined(SALTED_WINOGRAD_AVX2)
        // A group of 8 tiles whose spans lie inside the image (all of them
        // on the sensor net's unpadded layers) loads without masks.
        constexpr uint32_t whole = (1u << span) - 1u;
        uint32_t inside = lanes == 8 ? whole : 0u;
        for (int t = 0; t < lanes; ++t) inside &= patches[t].mask[ky];
        if (inside == whole) {
            for (int j0 = 0; j0 < span; j0 += 8) {
                __m256 r[8];
                for (int t = 0; t < 8; ++t) r[t] = _mm256_loadu_ps(in + patches[t].offset + offset + j0);
                winograd::transpose8x8(r);
                for (int j = 0; j < 8; ++j) col[j0 + j] = r[j];
            }
            return;
        }
        for (int j0 = 0; j0 < span; j0 += 8) {  // 8 columns per transpose
            __m256 r[8];
            for (int t = 0; t < 8; ++t)
                r[t] = t < lanes ? winograd::load_row8(in, patches[t].offset + offset + j0, mask(t, j0))
                                 : _mm256_setzero_ps();
            winograd::transpose8x8(r);
            for (int j = 0; j < 8; ++j) col[j0 + j] = r[j];
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
// panels). Measured on the sensor net (docs/BENCHMARKS.md): 3x3 output
// (3 tiles) 13-20 us against the direct convolution's 10; 6x9 (12 tiles)
// 58 against 68; 13x21 and larger 1.5-1.8x SGEMM. So from 8 tiles on.
inline bool winograd_row_channels_worth_it(int64_t in_channels, int64_t out_channels) {
    return in_channels >= 8 && out_channels >= 16;
}
inline bool winograd_row_worth_it(int64_t in_channels, int64_t out_channels, int64_t out_h, int64_t out_w) {
    return winograd_row_channels_worth_it(in_channels, out_channels) &&
           out_h * ((out_w + RowTiles::tile_w - 1) / RowTiles::tile_w) >= 8;
}

// Row-wise convolution by polyphase F(6, 3); weight [Cout, Cin, kh, kw].
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
