// Shallow convolution: layers whose patch is short (K = Cin x kh x kw <=
// 128, unit stride and dilation along the row): the first layer of a
// network, on a 1- or 3-channel image (the WideResNet stem, LeNet's 3->32
// 5x5 and 1->32 5x5 on MNIST, the sensor net's first (1,5) conv).
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
// has 24-wide output rows, two 16-lane vectors computing 32. At unit
// vertical stride the image is compacted instead (shallow_conv_compacts
// below: no lane wasted). Otherwise, where half vectors waste at least a
// fifth less (there: three 8-lane vectors, 24 lanes) and the CPU runs
// 512-bit multiply-adds as two 256-bit halves (Zen 4:
// simd::wide_vectors_split()), the kernel runs on them: there they have
// the same multiply-add rate, and that layer went from 14.7 to 10.6 us.
// Where 512 bits run at once (Zen 5) full vectors win anyway: 10.8-11.6 us
// on half vectors, 8.0-8.8 on full ones.
//
// The input must hold its zero padding and `shallow_conv_slack` readable
// floats after it: a row's last vector reads up to W - 1 floats past the
// row's end (its extra lanes are computed and dropped).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "salted/core/parallel.hpp"
#include "salted/core/simd.hpp"
#include "salted/kernels/direct_conv.hpp"
#include "salted/ops/activation.hpp"

namespace salted {
namespace kernels {

// Up to 32 at first; from 33 to 128 (LeNet-CIFAR's conv1, K = 75, and its
// salted twin, K = 100) the direct convolution tied with it until rows were
// compacted (shallow_conv_compacts), and lost after: 23.4 -> 20.1 us, salted
// 29.5 -> 26.7, at batch 64 1684 -> 1364 us (5 alternated bench_layers
// rounds); the LeNet models 2.5 % faster at b1 and b64.
constexpr int64_t shallow_conv_max_k = 128;
constexpr int64_t shallow_conv_slack = static_cast<int64_t>(simd::width);

// Which layers take it: ungrouped, K <= 128, unit stride and dilation along
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

// A tile's NV vectors of output pixels: where each reads its input and
// stores its output, and how many of its lanes are stored.
template <int NV, int W>
struct TileVectors {
    const float* src[NV];
    int64_t dst[NV];
    int lanes[NV];
    int nv = 0;  // vectors in this tile (the image's last tile may have fewer)
    // A row's partial last vector may be stored whole when the tile's
    // next vector, stored right after it, starts the next row and covers
    // the spill (saves a bounce through memory: 8 % of the sensor net's
    // first layer, 196-wide rows).
    bool full_store[NV];
    bool whole_tile = false;  // NV vectors, every one stored whole

    TileVectors(const DirectConvGeometry& g, const float* x, int64_t t) {
        const int64_t out_w = g.out_w, per_row = (out_w + W - 1) / W, vecs = g.out_h * per_row;
        const int64_t row_step = g.stride_h * g.in_w;
        nv = static_cast<int>(std::min<int64_t>(NV, vecs - t * NV));
        for (int j = 0; j < NV; ++j) {
            const int64_t v = t * NV + std::min(j, nv - 1), oy = v / per_row, ox = v % per_row * W;
            src[j] = x + oy * row_step + ox;
            dst[j] = oy * out_w + ox;
            lanes[j] = static_cast<int>(std::min<int64_t>(W, out_w - ox));
        }
        for (int j = 0; j < NV; ++j) full_store[j] = lanes[j] == W;
        for (int j = 0; j + 1 < nv; ++j) full_store[j] = full_store[j] || lanes[j + 1] >= W - lanes[j];
        whole_tile = nv == NV;
        for (int j = 0; j < NV; ++j) whole_tile = whole_tile && full_store[j];
    }
};

// Stores acc[NC][NV] (activated) for channels co0.. of out [Cout, pixels]:
// whole vectors for a whole block, else through a buffer (the last
// channels, a row's partial vector), so that acc[][] is only ever indexed
// by constants and stays in registers.
template <class B, int NV, int NC, class Act>
inline void store_tile(const B (&acc)[NC][NV], const TileVectors<NV, static_cast<int>(B::size)>& tv, Act act,
                       int nc, float* out, int64_t pixels, int64_t co0) {
    constexpr int W = static_cast<int>(B::size);
    if (nc == NC && tv.whole_tile) {
#pragma GCC unroll 8
        for (int c = 0; c < NC; ++c) {
            float* o = out + (co0 + c) * pixels;
#pragma GCC unroll 8
            for (int j = 0; j < NV; ++j) act(acc[c][j]).store_unaligned(o + tv.dst[j]);
        }
        return;
    }
    alignas(64) float tile[NC * NV * W];
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c)
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) act(acc[c][j]).store_aligned(tile + (c * NV + j) * W);
    for (int c = 0; c < nc; ++c) {
        float* o = out + (co0 + c) * pixels;
        for (int j = 0; j < tv.nv; ++j) {
            const int n = tv.full_store[j] ? W : tv.lanes[j];
            std::memcpy(o + tv.dst[j], tile + (c * NV + j) * W, static_cast<std::size_t>(n) * sizeof(float));
        }
    }
}

// Tiles [t0, t1) of one image on vectors of type B (W lanes): NV vectors
// of output pixels by NC channels. Act: an ops::FixedActivation (no branch
// on the kind per stored vector). Everything by value: the vector stores
// may alias any memory, so GCC reloads whatever it reaches through a
// reference or a lambda's captures after each one (it did, the output
// pointer, for every stored vector).
template <class B, int NV, int NC, class Act>
void shallow_conv_tiles(const DirectConvGeometry g, const float* x, const float* w, const int32_t* koff,
                        const float* bias, Act act, float* out, int64_t t0, int64_t t1) {
    const int64_t k = g.k(), pixels = g.out_h * g.out_w, cout = g.out_channels;
    for (int64_t t = t0; t < t1; ++t) {
        const TileVectors<NV, static_cast<int>(B::size)> tv(g, x, t);
        // The image's last tile, when it has fewer vectors than NV: one
        // vector at a time, not NV with the missing ones computed and
        // dropped (LeNet-CIFAR's conv1 and its salted twin: 49 vectors in
        // 3-vector tiles; salted 4->32 27.0 -> 26.4 us, bench_layers).
        if (NV > 1 && tv.nv < NV) {
            for (int64_t v = t * NV; v < t * NV + tv.nv; ++v)
                shallow_conv_tiles<B, 1, NC>(g, x, w, koff, bias, act, out, v, v + 1);
            continue;
        }
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
                for (int j = 0; j < NV; ++j) xv[j] = B::load_unaligned(tv.src[j] + koff[0]);
#pragma GCC unroll 8
                for (int c = 0; c < NC; ++c) {
                    const int64_t co = co0 + (c < nc ? c : nc - 1);  // past Cout: repeats the last channel, not stored
                    wc[c] = w + co * k;
                    const B b0(bias ? bias[co] : 0.0f), wv(wc[c][0]);
#pragma GCC unroll 8
                    for (int j = 0; j < NV; ++j) acc[c][j] = simd::fma(xv[j], wv, b0);
                }
            }
            for (int64_t kk = 1; kk < k; ++kk) {
                B xv[NV];
#pragma GCC unroll 8
                for (int j = 0; j < NV; ++j) xv[j] = B::load_unaligned(tv.src[j] + koff[kk]);
#pragma GCC unroll 8
                for (int c = 0; c < NC; ++c) {
                    const B wv(wc[c][kk]);
#pragma GCC unroll 8
                    for (int j = 0; j < NV; ++j) acc[c][j] = simd::fma(xv[j], wv, acc[c][j]);
                }
            }
            store_tile<B, NV, NC>(acc, tv, act, nc, out, pixels, co0);
        }
    }
}

// Patches of KF <= 5 floats (the sensor net's 1->64 (1,5), any 1-channel
// (1,k) or 2x2 layer): the tile's KF x NV input vectors are loaded once
// and stay in registers for every channel block, which then costs only
// its broadcasts, multiply-adds and stores, with the K loop unrolled at
// compile time. With a loop over a runtime K of 5, the tile's set-up,
// input reloads and loop control cost as much as the multiply-adds: the
// sensor net's conv1 went 32.1 -> 21.7 us (7 alternated pinned rounds),
// (1,3) and 2x2 layers 1.3x faster (5). NV = 4 by NC = 2 (shallow_short_tile): 20 input + 8
// accumulator vectors + a broadcast fit AVX-512's and NEON's 32
// registers; 3 x 4 tied, 2 x 8 ran 7-9 % slower, 4 x 3 11-17 %.
//
// One channel block's sums, channels co[c]: inlined into both loops below.
template <class B, int NV, int NC, int KF>
[[gnu::always_inline]] inline void short_block(const B (&xv)[KF][NV], const float* w, const float* bias,
                                               const int64_t (&co)[NC], B (&acc)[NC][NV]) {
#pragma GCC unroll 8
    for (int c = 0; c < NC; ++c) {
        const B b0(bias ? bias[co[c]] : 0.0f), wv(w[co[c] * KF]);
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) acc[c][j] = simd::fma(xv[0][j], wv, b0);
    }
#pragma GCC unroll 8
    for (int kk = 1; kk < KF; ++kk)
#pragma GCC unroll 8
        for (int c = 0; c < NC; ++c) {
            const B wv(w[co[c] * KF + kk]);
#pragma GCC unroll 8
            for (int j = 0; j < NV; ++j) acc[c][j] = simd::fma(xv[kk][j], wv, acc[c][j]);
        }
}

template <class B, int NV, int NC, int KF, class Act>
void shallow_conv_tiles_short(const DirectConvGeometry g, const float* x, const float* w, const int32_t* koff,
                              const float* bias, Act act, float* out, int64_t t0, int64_t t1) {
    const int64_t pixels = g.out_h * g.out_w, cout = g.out_channels;
    int32_t ko[KF];
    for (int kk = 0; kk < KF; ++kk) ko[kk] = koff[kk];
    for (int64_t t = t0; t < t1; ++t) {
        const TileVectors<NV, static_cast<int>(B::size)> tv(g, x, t);
        B xv[KF][NV];
#pragma GCC unroll 8
        for (int kk = 0; kk < KF; ++kk)
#pragma GCC unroll 8
            for (int j = 0; j < NV; ++j) xv[kk][j] = B::load_unaligned(tv.src[j] + ko[kk]);
        // Whole blocks in a loop of their own: with the edge stores in the
        // same loop GCC spilled the input vectors (1.9x slower).
        const int64_t whole = tv.whole_tile ? cout / NC * NC : 0;
        int64_t co0 = 0;
        for (; co0 < whole; co0 += NC) {
            int64_t co[NC];
            B acc[NC][NV];
#pragma GCC unroll 8
            for (int c = 0; c < NC; ++c) co[c] = co0 + c;
            short_block<B, NV, NC, KF>(xv, w, bias, co, acc);
#pragma GCC unroll 8
            for (int c = 0; c < NC; ++c) {
                float* o = out + (co0 + c) * pixels;
#pragma GCC unroll 8
                for (int j = 0; j < NV; ++j) act(acc[c][j]).store_unaligned(o + tv.dst[j]);
            }
        }
        for (; co0 < cout; co0 += NC) {
            const int nc = static_cast<int>(std::min<int64_t>(NC, cout - co0));
            int64_t co[NC];
            B acc[NC][NV];
#pragma GCC unroll 8
            for (int c = 0; c < NC; ++c) co[c] = co0 + (c < nc ? c : nc - 1);  // past Cout: the last again, not stored
            short_block<B, NV, NC, KF>(xv, w, bias, co, acc);
            store_tile<B, NV, NC>(acc, tv, act, nc, out, pixels, co0);
        }
    }
}

// One image: tiles outside, channel blocks inside, so that a tile's input
// stays in registers' reach (L1) for all channels. (Channel blocks
// outside, each plane written as one stream, measured 1.15x slower on the
// sensor net's 1->64 layer.) Tiles: a kernel (t0, t1) over [t0, t1).
template <class B, int NV, class Tiles>
void shallow_conv_tiled(const DirectConvGeometry& g, Tiles tiles_kernel) {
    constexpr int64_t W = static_cast<int64_t>(B::size);
    const int64_t vecs = g.out_h * ((g.out_w + W - 1) / W);
    const int64_t tiles = (vecs + NV - 1) / NV;
    parallel_for(tiles, 2 * g.out_channels * g.out_h * g.out_w * g.k(), std::move(tiles_kernel));
}

// The tile: 4 vectors of output pixels by 4 channels (16 accumulators), or
// 3 by 8 (24) on targets with 32 vector registers when the patch is long
// and Cout a multiple of 8. The longer tile loads 11 values per 24
// multiply-adds against 8 per 16; LeNet's first layers (K = 25-100) ran
// 1-5 % faster on it (9 alternated bench_layers rounds). On short patches
// the stores dominate and 4-vector (256-byte) runs per plane write better:
// the sensor net's K = 5 layer tied at batch 1 and ran 1.42x slower at
// batch 64, where its 86 MB output streams to memory. (Measured with
// AVX-512 only; NEON's 32 registers fit the tile too, untimed there.)
constexpr int64_t shallow_long_tile_min_k = 16;
#if defined(__AVX512F__) || defined(__aarch64__)
constexpr bool shallow_has_32_registers = true;
#else
constexpr bool shallow_has_32_registers = false;
#endif
inline bool shallow_long_tile(const DirectConvGeometry& g) {
    return shallow_has_32_registers && g.k() >= shallow_long_tile_min_k && g.out_channels % 8 == 0;
}

// Vectors of output pixels x output channels of a tile, by register file.
// With 16 registers (AVX2, SSE) the 32-register tiles spill: 4 x 4 takes
// 16 accumulators plus 4 input vectors and a broadcast, and the short
// path's 5 x 4 input vectors alone are 20. There 4 x 2 (8 accumulators)
// and, for patches of at most 5, 2 x 2 with the 10 input vectors kept:
// Zen 3, bench_layers, 3 alternated rounds against 4 x 4, LeNet's conv1
// 66.7 -> 43.7 us, its salted twin 89-91 -> 60, the sensor net's 1->64
// (1,5) 78-84 -> 57-59 (at batch 64: 4.40 -> 3.03 ms, 5.9 -> 3.9, 12.8 ->
// 10.5-11.1). 5 x 2 tied with 4 x 2; 2 x 6, 3 x 4, 4 x 3, 6 x 1 and 3 x 2
// were slower, and on short patches 3 x 1, 2 x 1 and 1 x 4.
struct ShallowTile {
    int vectors, channels;
};
constexpr ShallowTile shallow_tile = shallow_has_32_registers ? ShallowTile{4, 4} : ShallowTile{4, 2};
constexpr ShallowTile shallow_short_tile = shallow_has_32_registers ? ShallowTile{4, 2} : ShallowTile{2, 2};

// The largest patch shallow_conv_tiles_short takes.
constexpr int64_t shallow_short_max_k = 5;

template <class B, int KF, class Act>
void shallow_conv_short(const DirectConvGeometry& g, const float* x, const float* w, const int32_t* koff,
                        const float* bias, Act act, float* out) {
    constexpr int NV = shallow_short_tile.vectors, NC = shallow_short_tile.channels;
    shallow_conv_tiled<B, NV>(g, [&](int64_t t0, int64_t t1) {
        shallow_conv_tiles_short<B, NV, NC, KF>(g, x, w, koff, bias, act, out, t0, t1);
    });
}

template <class B, class Act>
void shallow_conv_with(const DirectConvGeometry& g, const float* x, const float* w, const int32_t* koff,
                       const float* bias, Act act, float* out) {
    if (g.k() <= shallow_short_max_k) {
        switch (g.k()) {
            case 1: return shallow_conv_short<B, 1>(g, x, w, koff, bias, act, out);
            case 2: return shallow_conv_short<B, 2>(g, x, w, koff, bias, act, out);
            case 3: return shallow_conv_short<B, 3>(g, x, w, koff, bias, act, out);
            case 4: return shallow_conv_short<B, 4>(g, x, w, koff, bias, act, out);
            default: return shallow_conv_short<B, 5>(g, x, w, koff, bias, act, out);
        }
    }
    if (shallow_long_tile(g))
        return shallow_conv_tiled<B, 3>(g, [&](int64_t t0, int64_t t1) {
            shallow_conv_tiles<B, 3, 8>(g, x, w, koff, bias, act, out, t0, t1);
        });
    constexpr int NV = shallow_tile.vectors, NC = shallow_tile.channels;
    shallow_conv_tiled<B, NV>(g, [&](int64_t t0, int64_t t1) {
        shallow_conv_tiles<B, NV, NC>(g, x, w, koff, bias, act, out, t0, t1);
    });
}

}  // namespace detail

// Rows that waste lanes, compacted. A row of out_w pixels takes
// ceil(out_w / W) vectors; when out_w is not a multiple of W the last one
// computes lanes that are dropped (LeNet on MNIST: 24-wide rows, 32 lanes
// computed, a quarter wasted) and tiles end in partial vectors, stored
// through a buffer. With unit vertical stride the image can instead be
// copied as C x kw planes of out_w-wide rows,
//   plane (c, kx), row iy, column ox = padded input (c, iy, ox + kx),
// so that output pixel p = oy * out_w + ox reads tap (c, ky, kx) at
// p + ky * dilation_h * out_w of plane (c, kx): consecutive pixels read
// consecutive floats across row ends, and the image is one row of
// out_h x out_w pixels with a single partial vector at its end. The copy
// is about kw times the input (LeNet-MNIST: 13 KiB), written once per
// image. Measured (bench_layers, 1 thread): LeNet-MNIST conv1 7.8 -> 5.2
// us; the sensor net's conv1, 196-wide rows (6 % of lanes wasted), 32.3 ->
// 29.0 us, as it loses its partial vectors.
// (Its offsets are int32, as the direct convolution's: the copy must stay below 2^31 floats.)
inline bool shallow_conv_compacts(const DirectConvGeometry& g) {
    const int64_t copy = g.channels * g.kernel_w * g.in_h * g.out_w;
    return g.stride_h == 1 && shallow_row_lanes(g.out_w, simd::width) > g.out_w && copy < (int64_t(1) << 31);
}

// n floats from src to dst (not overlapping) in whole vectors, the last
// one overlapping the one before it when n is not a multiple of the width.
// (std::copy called memmove for every 24-float row.)
inline void copy_floats(const float* src, int64_t n, float* dst) {
    constexpr int64_t W = static_cast<int64_t>(simd::width);
    if (n < W) {
        for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
        return;
    }
    int64_t i = 0;
    for (; i + W <= n; i += W) simd::FloatBatch::load_unaligned(src + i).store_unaligned(dst + i);
    if (i < n) simd::FloatBatch::load_unaligned(src + n - W).store_unaligned(dst + n - W);
}

// `rows` rows of n >= W floats, w >= n apart at src, packed one after
// another at dst. Each vector stored is whole: where it spans two rows,
// its lanes come from two loads, one per row, blended; row by row
// (copy_floats) a row boundary cost an extra, overlapping store, and the
// compaction of salted LeNet's 4->32 conv1 took 1.66 us, now 1.14
// (LeNet-MNIST's 0.35 -> 0.23). Reads only inside the rows: the blended
// loads stop before the last row, which is copied as before.
inline void pack_rows(const float* src, int64_t w, int64_t n, int64_t rows, float* dst) {
    using B = simd::FloatBatch;
    constexpr int64_t W = static_cast<int64_t>(simd::width);
    // Whole vectors lying in rows [0, rows - 1): their next row exists.
    const int64_t safe = rows > 1 ? ((rows - 1) * n) / W * W : 0;
    alignas(64) float lane_index[W];
    for (int64_t i = 0; i < W; ++i) lane_index[i] = static_cast<float>(i);
    const B iota = B::load_aligned(lane_index);
    int64_t q = 0, r = 0, col = 0;  // q = r * n + col
    for (; q < safe; q += W) {
        const int64_t left = n - col;  // lanes still in row r
        const B a = B::load_unaligned(src + r * w + col);
        if (left >= W) {
            a.store_unaligned(dst + q);
            col += W;
            if (col == n) {
                col = 0;
                ++r;
            }
            continue;
        }
        const B b = B::load_unaligned(src + (r + 1) * w - left);
        xsimd::select(iota < B(static_cast<float>(left)), a, b).store_unaligned(dst + q);
        ++r;
        col = W - left;
    }
    for (; r < rows; q += n - col, ++r, col = 0) copy_floats(src + r * w + col, n - col, dst + q);  // the rest
}

// Floats of the compacted image, with the slack its last vector reads past it.
inline int64_t shallow_compact_floats(const DirectConvGeometry& g) {
    return g.channels * g.kernel_w * g.in_h * g.out_w + shallow_conv_slack;
}

// The compacted image (shallow_compact_floats(g) floats at dst) of x [C,
// h, w], the unpadded image; g's in_h and in_w include the padding.
inline void shallow_compact_image(const DirectConvGeometry& g, const float* x, int64_t h, int64_t w,
                                  int64_t pad_top, int64_t pad_left, float* dst) {
    const int64_t out_w = g.out_w, plane = g.in_h * out_w;
    const int64_t top = std::min(g.in_h, pad_top), rows = std::max<int64_t>(0, std::min(h, g.in_h - top));
    for (int64_t c = 0; c < g.channels; ++c)
        for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
            float* p = dst + (c * g.kernel_w + kx) * plane;
            // Columns ox whose source ox + kx - pad_left lies in [0, w): the
            // same for every row, so worked out once per plane (per row, this
            // bookkeeping was a tenth of LeNet-MNIST's conv1).
            const int64_t lo = std::min(out_w, std::max<int64_t>(0, pad_left - kx));
            const int64_t hi = std::max(lo, std::min(out_w, w + pad_left - kx));
            std::fill(p, p + top * out_w, 0.0f);  // the padding rows above
            const float* src = x + c * h * w + kx - pad_left;
            float* row = p + top * out_w;
            if (lo == 0 && hi == out_w && out_w >= static_cast<int64_t>(simd::width)) {  // no column padding
                pack_rows(src, w, out_w, rows, row);
                row += rows * out_w;
            } else {
                for (int64_t sy = 0; sy < rows; ++sy, row += out_w, src += w) {
                    std::fill(row, row + lo, 0.0f);
                    copy_floats(src + lo, hi - lo, row + lo);
                    std::fill(row + hi, row + out_w, 0.0f);
                }
            }
            std::fill(row, p + plane, 0.0f);  // and below
        }
    std::fill(dst + shallow_compact_floats(g) - shallow_conv_slack, dst + shallow_compact_floats(g), 0.0f);
}

// shallow_conv on an image compacted by shallow_compact_image: the same
// sums in the same order, over one long row.
inline void shallow_conv_compacted(const DirectConvGeometry& g, const float* xc, const float* w, const float* bias,
                                   ops::Activation act, float* out) {
    int32_t koff[shallow_conv_max_k];
    int64_t k = 0;
    for (int64_t c = 0; c < g.channels; ++c)
        for (int64_t ky = 0; ky < g.kernel_h; ++ky)
            for (int64_t kx = 0; kx < g.kernel_w; ++kx)
                koff[k++] = static_cast<int32_t>(((c * g.kernel_w + kx) * g.in_h + ky * g.dilation_h) * g.out_w);
    DirectConvGeometry row = g;
    row.out_w = g.out_h * g.out_w;
    row.out_h = 1;
    ops::with_activation_kind(act, [&](auto fixed) {
        detail::shallow_conv_with<simd::FloatBatch>(row, xc, w, koff, bias, fixed, out);
    });
}

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
