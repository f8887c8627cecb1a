// Shallow convolution: layers whose patch is short (K = Cin x kh x kw <= 32,
// unit stride and dilation along the row): the first layer of a network,
// on a 1- or 3-channel image (the WideResNet stem, LeNet on MNIST, the
// sensor net's first (1,5) conv).
//
// Why: with K this small a GEMM does a few multiply-adds per output and
// everything else is overhead. im2col packs K floats per pixel to feed
// K x Cout multiply-adds, and the direct convolution's register tile
// (kernels/direct_conv.hpp) spends its time loading and transposing its
// pixels x channels tile for NCHW: both measured at 0.4-0.6x of OpenBLAS's
// bare SGEMM on these shapes. Here the SIMD lanes run along an output row,
// the layout NCHW stores: a tile is NV vectors of W consecutive output
// pixels by NC output channels, each k = (c, ky, kx) one unaligned load of
// the (padded) input per vector, shared by the NC channels, and each weight
// a broadcast. The accumulators are stored as they are, with bias and
// activation applied.
//
// The input must hold its zero padding and `shallow_conv_slack` readable
// floats after it: a row's last vector reads up to W - 1 floats past the
// row's end (its extra lanes are computed and dropped).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "salted/core/parallel.hpp"
#include "salted/core/simd.hpp"
#include "salted/kernels/direct_conv.hpp"
#include "salted/ops/activation.hpp"

namespace salted {
namespace kernels {

constexpr int64_t shallow_conv_max_k = 32;
constexpr int64_t shallow_conv_slack = static_cast<int64_t>(simd::width);

// Which layers take it: ungrouped, K <= 32, unit stride and dilation along
// the row (the loads are contiguous); any stride and dilation down the columns.
inline bool shallow_conv_shape(int64_t k, int64_t stride_w, int64_t dilation_w, int64_t groups) {
    return groups == 1 && k <= shallow_conv_max_k && stride_w == 1 && dilation_w == 1;
}

// out[Cout, out_h, out_w] of one image = act(conv(x) + bias), x the padded
// input [C, in_h, in_w] plus slack, w the weights [Cout, K] (PyTorch's
// layout), koff from direct_conv_offsets().
inline void shallow_conv(const DirectConvGeometry& g, const float* x, const float* w, const int32_t* koff,
                         const float* bias, ops::Activation act, float* out) {
    using B = simd::FloatBatch;
    constexpr int W = static_cast<int>(simd::width), NV = 4, NC = 4;
    const int64_t k = g.k(), pixels = g.out_h * g.out_w, cout = g.out_channels;
    const int64_t per_row = (g.out_w + W - 1) / W, vecs = g.out_h * per_row;
    const int64_t tiles = (vecs + NV - 1) / NV;
    // Tiles outside, channel blocks inside: a tile's input stays in
    // registers' reach (L1) for all channels. (Channel blocks outside, each
    // plane written as one stream, measured 1.15x slower on the sensor net's
    // 1->64 layer.)
    parallel_for(tiles, 2 * cout * pixels * k, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            // The tile's vectors: input start, output offset, valid lanes.
            const float* src[NV];
            int64_t dst[NV];
            int lanes[NV];
            const int nv = static_cast<int>(std::min<int64_t>(NV, vecs - t * NV));
            for (int j = 0; j < NV; ++j) {
                const int64_t v = t * NV + std::min(j, nv - 1), oy = v / per_row, ox = v % per_row * W;
                src[j] = x + oy * g.stride_h * g.in_w + ox;
                dst[j] = oy * g.out_w + ox;
                lanes[j] = static_cast<int>(std::min<int64_t>(W, g.out_w - ox));
            }
            for (int64_t co0 = 0; co0 < cout; co0 += NC) {
                const int nc = static_cast<int>(std::min<int64_t>(NC, cout - co0));
                const float* wc[NC];
                B acc[NC][NV];
                for (int c = 0; c < NC; ++c) {
                    const int64_t co = co0 + std::min(c, nc - 1);  // past Cout: repeats the last channel, not stored
                    wc[c] = w + co * k;
                    for (int j = 0; j < NV; ++j) acc[c][j] = B(bias ? bias[co] : 0.0f);
                }
                for (int64_t kk = 0; kk < k; ++kk) {
                    B xv[NV];
                    for (int j = 0; j < NV; ++j) xv[j] = B::load_unaligned(src[j] + koff[kk]);
                    for (int c = 0; c < NC; ++c) {
                        const B wv(wc[c][kk]);
                        for (int j = 0; j < NV; ++j) acc[c][j] = xsimd::fma(xv[j], wv, acc[c][j]);
                    }
                }
                for (int c = 0; c < nc; ++c) {
                    float* o = out + (co0 + c) * pixels;
                    for (int j = 0; j < nv; ++j) {
                        const B y = act.apply(acc[c][j]);
                        if (lanes[j] == W) {
                            y.store_unaligned(o + dst[j]);
                        } else {
                            alignas(64) float part[W];
                            y.store_aligned(part);
                            std::memcpy(o + dst[j], part, static_cast<std::size_t>(lanes[j]) * sizeof(float));
                        }
                    }
                }
            }
        }
    });
}

}  // namespace kernels
}  // namespace salted
