// Direct convolution: the GEMM microkernel's register tile, with the patch
// operand read straight from the (padded) input instead of packed.
//
// Why: im2col + GEMM packs K x pixels patch floats per image, and for the
// narrow convs of LeNet and the sensor net (32-64 output channels) each
// packed float feeds only 2 * Cout FLOPs, so packing costs 15-25 % of the
// time. Here a tile is MR consecutive output pixels of one row (the rows of
// the tile) by NR output channels (the columns). For each k = (c, ky, kx)
// the MR patch values are input[c][oy*sh + ky*dh][ (ox + r)*sw + kx*dw ]:
// one offset table entry per k plus r * sw, so they are broadcast from the
// input itself, and the NR weights come from panels packed once at create().
// The inner loop is the GEMM microkernel's (NR/width loads, MR broadcasts,
// MR * NR/width FMAs per k); only the final store differs: the tile is
// pixels x channels and NCHW wants channels x pixels, so it is transposed on
// the way out, with bias and activation applied.
//
// Every output is the same float sum in the same k order as ops::ref::conv2d
// up to float rounding (the sum runs in float, in k order, as the GEMM's).
#pragma once

#include <algorithm>
#include <cstdint>

#include "salted/core/parallel.hpp"
#include "salted/core/simd.hpp"
#include "salted/kernels/gemm_microkernel.hpp"
#include "salted/kernels/gemm_pack.hpp"
#include "salted/ops/activation.hpp"

namespace salted {
namespace kernels {

// One image of a convolution whose input already holds its zero padding.
struct DirectConvGeometry {
    int64_t channels = 0;           // input channels (groups = 1)
    int64_t in_h = 0, in_w = 0;     // padded input plane
    int64_t kernel_h = 1, kernel_w = 1;
    int64_t stride_h = 1, stride_w = 1;
    int64_t dilation_h = 1, dilation_w = 1;
    int64_t out_h = 0, out_w = 0;
    int64_t out_channels = 0;
    int64_t k() const { return channels * kernel_h * kernel_w; }
};

// Offsets of every k = (c, ky, kx) in the padded input, relative to the
// tile's first pixel: the table the microkernel walks. `koff` holds k() ints.
inline void direct_conv_offsets(const DirectConvGeometry& g, int32_t* koff) {
    int64_t k = 0;
    for (int64_t c = 0; c < g.channels; ++c)
        for (int64_t ky = 0; ky < g.kernel_h; ++ky)
            for (int64_t kx = 0; kx < g.kernel_w; ++kx)
                koff[k++] = static_cast<int32_t>((c * g.in_h + ky * g.dilation_h) * g.in_w + kx * g.dilation_w);
}

// Weights [Cout, K] as K x NR panels over the output channels (zero past Cout).
inline int64_t direct_conv_packed_floats(int64_t cout, int64_t k) { return gemm_packed_b_floats(k, cout); }
inline void direct_conv_pack_weights(int64_t cout, int64_t k, const float* w, float* dst) {
    gemm_pack_b(k, cout, w, 1, k, dst);
}

// Where a tile's patch values are: pixel r's value for k lies at
// at(r) + koff[k]. A tile inside one output row has its pixels `sx` apart
// (one base pointer); a tile of the flattened output crossing row ends
// (see direct_conv) has a base pointer per pixel. Either way the broadcast
// is one load from (base + koff), so the inner loop is the same.
struct DirectConvStrided {
    const float* x;
    int64_t sx;
    const float* at(int r) const { return x + r * sx; }
};
template <int Rows>
struct DirectConvGathered {
    const float* x[Rows];
    const float* at(int r) const { return x[r]; }
};

// tile [Rows x NR] = act(sum_k src.at(r)[koff[k]] * w_panel[k * NR + j] +
// bias_panel[j]). Bias and activation are applied here, on whole SIMD
// batches: a scalar LeakyReLU in the transposing store branched on the sign
// of every output and mispredicted on half of them (a third of the time of
// a sensor-net layer).
template <int Rows, class Src>
inline void direct_conv_ukernel(int64_t k, const Src& src, const int32_t* koff, const float* w_panel,
                                const float* bias_panel, const ops::Activation& act, float* tile) {
    using B = simd::FloatBatch;
    constexpr int NR = gemm_nr, W = static_cast<int>(simd::width), NB = NR / W;
    const float* base[Rows];
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r) base[r] = src.at(r);
    B acc[Rows][NB];
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 16
        for (int j = 0; j < NB; ++j) acc[r][j] = B(0.0f);
    for (int64_t i = 0; i < k; ++i) {
        B bv[NB];
#pragma GCC unroll 16
        for (int j = 0; j < NB; ++j) bv[j] = B::load_aligned(w_panel + i * NR + j * W);
        const int32_t o = koff[i];
#pragma GCC unroll 16
        for (int r = 0; r < Rows; ++r) {
            const B av(base[r][o]);
#pragma GCC unroll 16
            for (int j = 0; j < NB; ++j) acc[r][j] = simd::fma(av, bv[j], acc[r][j]);
        }
    }
    B bias[NB];
#pragma GCC unroll 16
    for (int j = 0; j < NB; ++j) bias[j] = B::load_aligned(bias_panel + j * W);
#pragma GCC unroll 16
    for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 16
        for (int j = 0; j < NB; ++j) act.apply(acc[r][j] + bias[j]).store_aligned(tile + r * NR + j * W);
}

inline void direct_conv_tile(int rows, int64_t k, const float* x, const int32_t* koff, int64_t sx,
                             const float* w_panel, const float* bias_panel, const ops::Activation& act, float* tile) {
    const DirectConvStrided src{x, sx};
    switch (rows) {
        case 1: return direct_conv_ukernel<1>(k, src, koff, w_panel, bias_panel, act, tile);
        case 2: return direct_conv_ukernel<(gemm_mr >= 2 ? 2 : 1)>(k, src, koff, w_panel, bias_panel, act, tile);
        case 3: return direct_conv_ukernel<(gemm_mr >= 3 ? 3 : 1)>(k, src, koff, w_panel, bias_panel, act, tile);
        case 4: return direct_conv_ukernel<(gemm_mr >= 4 ? 4 : 1)>(k, src, koff, w_panel, bias_panel, act, tile);
        case 5: return direct_conv_ukernel<(gemm_mr >= 5 ? 5 : 1)>(k, src, koff, w_panel, bias_panel, act, tile);
        case 6: return direct_conv_ukernel<(gemm_mr >= 6 ? 6 : 1)>(k, src, koff, w_panel, bias_panel, act, tile);
        case 7: return direct_conv_ukernel<(gemm_mr >= 7 ? 7 : 1)>(k, src, koff, w_panel, bias_panel, act, tile);
        default: return direct_conv_ukernel<gemm_mr>(k, src, koff, w_panel, bias_panel, act, tile);
    }
}

// Whether direct_conv tiles the flattened output (MR consecutive pixels in
// NCHW order, crossing row ends) rather than each row: when MR does not
// divide the row, row tiles end in a short tile with few accumulators and
// the same loads per k. On AVX2 (MR = 6) WideResNet's 16- and 8-wide
// stride-2 outputs were 6 + 6 + 4 and 6 + 2.
inline bool direct_conv_flat_tiles(const DirectConvGeometry& g) { return g.out_w % gemm_mr != 0; }

// One image: out [Cout, out_h, out_w] = act(conv(x) + bias). x is the padded
// input [channels, in_h, in_w]; w_packed from direct_conv_pack_weights; koff
// from direct_conv_offsets. Work is split over (channel panel, output
// row), panel-major: a panel of weights (K x 32, 147 KiB for WRN's 128->256
// 3x3) stays in L2 across the rows instead of every row streaming all the
// panels (WideResNet-16-4 at batch 1: its 128->256 stride-2 conv 216 -> 210
// us inside the model; the model 2.02 -> 2.00 ms). With flat tiles
// (direct_conv_flat_tiles) the split is over (panel, pixel tile) instead.
inline void direct_conv(const DirectConvGeometry& g, const float* x, const float* w_packed, const int32_t* koff,
                        const float* bias, ops::Activation act, float* out) {
    constexpr int NR = gemm_nr, MR = gemm_mr;
    const int64_t k = g.k(), panels = (g.out_channels + NR - 1) / NR, pixels = g.out_h * g.out_w;
    const bool flat = direct_conv_flat_tiles(g);
    const int64_t per_panel = flat ? (pixels + MR - 1) / MR : g.out_h;
    parallel_for(panels * per_panel, 2 * g.out_channels * pixels * k, [&](int64_t t0, int64_t t1) {
        alignas(64) float tile[MR * NR];
        alignas(64) float bias_panel[NR];
        int64_t bias_for = -1;  // the panel bias_panel holds
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t p = t / per_panel, q = t % per_panel;
            const int64_t co0 = p * NR;
            const int cols = static_cast<int>(std::min<int64_t>(NR, g.out_channels - co0));
            if (bias_for != p) {
                for (int j = 0; j < NR; ++j) bias_panel[j] = bias && j < cols ? bias[co0 + j] : 0.0f;
                bias_for = p;
            }
            const float* w_panel = w_packed + p * NR * k;
            // Tiles of this task: (first pixel, pixels) in the flattened output.
            auto store = [&](int64_t p0, int rows) {
                float* o = out + co0 * pixels + p0;
                for (int j = 0; j < cols; ++j) {
                    float* oj = o + j * pixels;
                    for (int r = 0; r < rows; ++r) oj[r] = tile[r * NR + j];
                }
            };
            if (flat) {
                const int64_t p0 = q * MR;
                const int rows = static_cast<int>(std::min<int64_t>(MR, pixels - p0));
                // The image's last tile may be short: its missing pixels
                // repeat the last one (computed, never stored).
                DirectConvGathered<MR> src;
                for (int r = 0; r < MR; ++r) {
                    const int64_t pix = p0 + std::min(r, rows - 1), oy = pix / g.out_w, ox = pix % g.out_w;
                    src.x[r] = x + oy * g.stride_h * g.in_w + ox * g.stride_w;
                }
                direct_conv_ukernel<MR>(k, src, koff, w_panel, bias_panel, act, tile);
                store(p0, rows);
                continue;
            }
            const int64_t oy = q;
            const float* row = x + oy * g.stride_h * g.in_w;
            for (int64_t ox = 0; ox < g.out_w; ox += MR) {
                const int rows = static_cast<int>(std::min<int64_t>(MR, g.out_w - ox));
                direct_conv_tile(rows, k, row + ox * g.stride_w, koff, g.stride_w, w_panel, bias_panel, act, tile);
                store(oy * g.out_w + ox, rows);
            }
        }
    });
}

}  // namespace kernels
}  // namespace salted
