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
// Rows narrower than a multiple of the vector waste lanes: LeNet on MNIST
// has 24-wide output rows, two 16-lane vectors computing 32. Where half
// vectors waste at least a fifth less (there: three 8-lane vectors, 24
// lanes) and the CPU runs 512-bit multiply-adds as two 256-bit halves
// (Zen 4: simd::wide_vectors_split()), the kernel runs on them: there they
// have the same multiply-add rate, and that layer went from 14.7 to 10.6
// us. Where 512 bits run at once (Zen 5) full vectors win anyway: 10.8-11.6
// us on half vectors, 8.0-8.8 on full ones.
//
// The input must hold its zero padding and `shallow_conv_slack` readable
// floats after it: a row's last vector reads up to W - 1 floats past the
// row's end (its extra lanes are computed and dropped).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

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

// Half-width vectors where the target has them at >= 4 lanes, else the full ones.
template <std::size_t Half, bool = (Half >= 4)>
struct HalfBatchOf {
    using type = simd::FloatBatch;
};
template <std::size_t Half>
struct HalfBatchOf<Half, true> {
    using sized = xsimd::make_sized_batch_t<float, Half>;
    using type = typename std::conditional<std::is_void<sized>::value, simd::FloatBatch, sized>::type;
};
using HalfFloatBatch = HalfBatchOf<simd::width / 2>::type;

// Lanes computed per output row with W-lane vectors.
constexpr int64_t shallow_row_lanes(int64_t out_w, int64_t w) { return (out_w + w - 1) / w * w; }

// Half vectors when they compute at least a fifth fewer lanes per row, on
// a CPU where they multiply-add as fast as full ones.
inline bool use_half_vectors(int64_t out_w) {
    const int64_t full = shallow_row_lanes(out_w, simd::width), half = shallow_row_lanes(out_w, HalfFloatBatch::size);
    return HalfFloatBatch::size < simd::width && half * 5 <= full * 4 && simd::wide_vectors_split();
}

namespace detail {

// A tile: NV vectors of output pixels by NC output channels, 16 accumulators.
constexpr int shallow_tile_vectors = 4, shallow_tile_channels = 4;

// Tiles [t0, t1) of one image on vectors of type B (W lanes): NV vectors
// of output pixels by NC channels. Act: an ops::FixedActivation (no branch
// on the kind per stored vector). Everything by value: the vector stores
// may alias any memory, so GCC reloads whatever it reaches through a
// reference or a lambda's captures after each one (it did, the output
// pointer, for every stored vector).
template <class B, class Act>
void shallow_conv_tiles(const DirectConvGeometry g, const float* x, const float* w, const int32_t* koff,
                        const float* bias, Act act, float* out, int64_t t0, int64_t t1) {
    constexpr int W = static_cast<int>(B::size), NV = shallow_tile_vectors, NC = shallow_tile_channels;
    const int64_t k = g.k(), pixels = g.out_h * g.out_w, cout = g.out_channels, out_w = g.out_w;
    const int64_t per_row = (out_w + W - 1) / W, vecs = g.out_h * per_row, row_step = g.stride_h * g.in_w;
    for (int64_t t = t0; t < t1; ++t) {
        // The tile's vectors: input start, output offset, valid lanes.
        const float* src[NV];
        int64_t dst[NV];
        int lanes[NV];
        const int nv = static_cast<int>(std::min<int64_t>(NV, vecs - t * NV));
        for (int j = 0; j < NV; ++j) {
            const int64_t v = t * NV + std::min(j, nv - 1), oy = v / per_row, ox = v % per_row * W;
            src[j] = x + oy * row_step + ox;
            dst[j] = oy * out_w + ox;
            lanes[j] = static_cast<int>(std::min<int64_t>(W, out_w - ox));
        }
        // A row's partial last vector may be stored whole when the tile's
        // next vector, stored right after it, starts the next row and
        // covers the spill (saves a bounce through memory: 8 % of the
        // sensor net's first layer, 196-wide rows).
        bool full_store[NV];
        for (int j = 0; j < NV; ++j) full_store[j] = lanes[j] == W;
        for (int j = 0; j + 1 < nv; ++j) full_store[j] = full_store[j] || lanes[j + 1] >= W - lanes[j];
        bool whole_tile = nv == NV;
        for (int j = 0; j < NV; ++j) whole_tile = whole_tile && full_store[j];
        for (int64_t co0 = 0; co0 < cout; co0 += NC) {
            const int nc = static_cast<int>(std::min<int64_t>(NC, cout - co0));
            const float* wc[NC];
            B acc[NC][NV];
            // Every loop over acc[][] fully unrolled, so that the
            // accumulators live in registers (a loop left rolled keeps the
            // array in memory, loaded and stored around the K loop). They
            // start from the first k's multiply-add on the bias: set to
            // the bias before the K loop, GCC kept them on the stack until
            // its top. (The same rounding: fma(x, w, bias) either way.)
            {
                B xv[NV];
#pragma GCC unroll 8
                for (int j = 0; j < NV; ++j) xv[j] = B::load_unaligned(src[j] + koff[0]);
#pragma GCC unroll 8
                for (int c = 0; c < NC; ++c) {
                    const int64_t co = co0 + (c < nc ? c : nc - 1);  // past Cout: repeats the last channel, not stored
                    wc[c] = w + co * k;
                    const B b0(bias ? bias[co] : 0.0f), wv(wc[c][0]);
#pragma GCC unroll 8
                    for (int j = 0; j < NV; ++j) acc[c][j] = xsimd::fma(xv[j], wv, b0);
                }
            }
            for (int64_t kk = 1; kk < k; ++kk) {
                B xv[NV];
#pragma GCC unroll 8
                for (int j = 0; j < NV; ++j) xv[j] = B::load_unaligned(src[j] + koff[kk]);
#pragma GCC unroll 8
                for (int c = 0; c < NC; ++c) {
                    const B wv(wc[c][kk]);
#pragma GCC unroll 8
                    for (int j = 0; j < NV; ++j) acc[c][j] = xsimd::fma(xv[j], wv, acc[c][j]);
                }
            }
            if (nc == NC && whole_tile) {  // the common block: every vector stored whole
#pragma GCC unroll 8
                for (int c = 0; c < NC; ++c) {
                    float* o = out + (co0 + c) * pixels;
#pragma GCC unroll 8
                    for (int j = 0; j < NV; ++j) act(acc[c][j]).store_unaligned(o + dst[j]);
                }
                continue;
            }
            // Edges (the last channels, a row's partial vector): through a
            // buffer, so that acc[][] is only ever indexed by constants and
            // stays in registers in the common block.
            alignas(64) float tile[NC * NV * W];
#pragma GCC unroll 8
            for (int c = 0; c < NC; ++c)
#pragma GCC unroll 8
                for (int j = 0; j < NV; ++j) act(acc[c][j]).store_aligned(tile + (c * NV + j) * W);
            for (int c = 0; c < nc; ++c) {
                float* o = out + (co0 + c) * pixels;
                for (int j = 0; j < nv; ++j) {
                    const float* y = tile + (c * NV + j) * W;
                    const int n = full_store[j] ? W : lanes[j];
                    std::memcpy(o + dst[j], y, static_cast<std::size_t>(n) * sizeof(float));
                }
            }
        }
    }
}

// One image: tiles outside, channel blocks inside, so that a tile's input
// stays in registers' reach (L1) for all channels. (Channel blocks
// outside, each plane written as one stream, measured 1.15x slower on the
// sensor net's 1->64 layer.)
template <class B, class Act>
void shallow_conv_with(const DirectConvGeometry& g, const float* x, const float* w, const int32_t* koff,
                       const float* bias, Act act, float* out) {
    constexpr int64_t W = static_cast<int64_t>(B::size);
    const int64_t vecs = g.out_h * ((g.out_w + W - 1) / W);
    const int64_t tiles = (vecs + shallow_tile_vectors - 1) / shallow_tile_vectors;
    parallel_for(tiles, 2 * g.out_channels * g.out_h * g.out_w * g.k(), [&](int64_t t0, int64_t t1) {
        shallow_conv_tiles<B>(g, x, w, koff, bias, act, out, t0, t1);
    });
}

}  // namespace detail

// out[Cout, out_h, out_w] of one image = act(conv(x) + bias), x the padded
// input [C, in_h, in_w] plus slack, w the weights [Cout, K] (PyTorch's
// layout), koff from direct_conv_offsets().
inline void shallow_conv(const DirectConvGeometry& g, const float* x, const float* w, const int32_t* koff,
                         const float* bias, ops::Activation act, float* out) {
    const bool half = use_half_vectors(g.out_w);
    ops::with_activation_kind(act, [&](auto fixed) {
        if (half)
            detail::shallow_conv_with<HalfFloatBatch>(g, x, w, koff, bias, fixed, out);
        else
            detail::shallow_conv_with<simd::FloatBatch>(g, x, w, koff, bias, fixed, out);
    });
}

}  // namespace kernels
}  // namespace salted
