// Moving Winograd tiles between NCHW tensors and SIMD lanes. The transforms
// (winograd_transforms.hpp) work on one tile per lane (input) or one output
// channel per lane (output), while a tile's pixels lie in rows of a channel
// plane: every tile has to be transposed on the way in and on the way out.
//
// Done element by element that is 36 scalar loads and stores per tile and
// channel, more than the transforms and as much as the GEMMs themselves
// (measured: 3/4 of the run time of a 64->64 32x32 layer). With AVX-512 both
// directions are register transposes instead: an input patch row is one
// masked load (the mask also supplies the zero padding, so edge tiles take
// the same path), 16 tiles' rows become 6 lane vectors in three shuffle
// stages, and an output tile row of 16 channels becomes 16 four-float stores.
// AVX2 does the same with 8 lanes (vmaskmovps loads, an 8x8 transpose).
// Other instruction sets take the portable element-by-element path, which is
// also the twin the tests compare the transposing paths against.
#pragma once

#include <algorithm>
#include <cstdint>

#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512VL__)
#include <immintrin.h>
#define SALTED_WINOGRAD_AVX512 1
#elif defined(__AVX2__)
#include <immintrin.h>
#define SALTED_WINOGRAD_AVX2 1
#endif

#include "salted/core/simd.hpp"
#include "salted/kernels/winograd_transforms.hpp"

namespace salted {
namespace kernels {
namespace winograd {

// Where one tile's 6x6 (or 4x4) input patch lies in its image: element (i, j) of the
// patch in channel c is in[offset + c * plane + i * in_w + j] when bit i of
// row_mask and bit j of col_mask are set, and zero padding otherwise.
// `offset` may be negative (padding above or left of the image); it is
// never dereferenced where a mask bit is clear.
struct Patch {
    int64_t offset = 0;
    uint32_t row_mask = 0;
    uint32_t col_mask = 0;
    // Every patch row and 8 columns from its left edge lie in the image:
    // the AVX2 path loads such rows whole, without a mask.
    bool wide_inside = false;
};

// The patch (side `side`: 6 for F(4x4, 3x3), 4 for F(2x2, 3x3)) of the
// tile whose output starts at (oy, ox) of image `image`.
inline Patch patch_at(int64_t image, int64_t oy, int64_t ox, int64_t channels, int64_t in_h, int64_t in_w,
                      int64_t pad_top, int64_t pad_left, int side = tile_in) {
    const int64_t iy0 = oy - pad_top, ix0 = ox - pad_left;
    Patch p;
    p.offset = image * channels * in_h * in_w + iy0 * in_w + ix0;
    for (int i = 0; i < side; ++i) {
        if (iy0 + i >= 0 && iy0 + i < in_h) p.row_mask |= 1u << i;
        if (ix0 + i >= 0 && ix0 + i < in_w) p.col_mask |= 1u << i;
    }
    p.wide_inside = p.row_mask == (1u << side) - 1u && ix0 >= 0 && ix0 + 8 <= in_w;
    return p;
}

// d[i * Side + j], lane t = patch element (i, j) of tile t in the channel at
// `channel_offset`, for lanes [0, lanes); lanes past that are zero. Side is
// 6 for F(4x4, 3x3) and F(2x2, 5x5), 4 for F(2x2, 3x3).
template <int Side = tile_in>
inline void load_patches_portable(const float* in, const Patch* tiles, int lanes, int64_t channel_offset,
                                  int64_t in_w, simd::FloatBatch* d) {
    constexpr int W = static_cast<int>(simd::width);
    alignas(64) float buf[Side * Side * W];
    for (int t = 0; t < W; ++t) {
        for (int i = 0; i < Side; ++i)
            for (int j = 0; j < Side; ++j) {
                float v = 0.0f;
                if (t < lanes && (tiles[t].row_mask >> i & 1u) && (tiles[t].col_mask >> j & 1u))
                    v = in[tiles[t].offset + channel_offset + i * in_w + j];
                buf[(i * Side + j) * W + t] = v;
            }
    }
    for (int k = 0; k < Side * Side; ++k) d[k] = simd::FloatBatch::load_aligned(buf + k * W);
}

// Stores tile (rows x cols of the Tile x Tile y[i * Tile + j]) for each of
// `lanes` output channels (lane l): channel l's tile starts at dst + l * plane.
template <int Tile = tile_out>
inline void store_tile_portable(const simd::FloatBatch* y, float* dst, int64_t plane, int64_t out_w, int rows,
                                int cols, int lanes) {
    constexpr int W = static_cast<int>(simd::width);
    alignas(64) float buf[Tile * Tile * W];
    for (int k = 0; k < rows * Tile; ++k) y[k].store_aligned(buf + k * W);  // y may hold only these rows
    for (int l = 0; l < lanes; ++l) {
        float* o = dst + l * plane;
        for (int i = 0; i < rows; ++i)
            for (int j = 0; j < cols; ++j) o[i * out_w + j] = buf[(i * Tile + j) * W + l];
    }
}

#if defined(SALTED_WINOGRAD_AVX512)
static_assert(simd::width == 16, "the AVX-512 tile paths assume 16-float batches");

// The tile loads are small pieces of one hot loop: inlined, their vectors
// stay in registers (measured: out of line, the 3x3 layers ran 5-7 % slower).
#define SALTED_TILE_INLINE inline __attribute__((always_inline))

// The shuffles, in their masked forms with an all-ones mask: the same
// instructions, but GCC 12's plain forms pass _mm512_undefined_ps(), which
// -Wuninitialized reports wherever they are inlined (GCC bug 105593).
inline __m512 unpack_lo(__m512 a, __m512 b) { return _mm512_mask_unpacklo_ps(a, 0xffff, a, b); }
inline __m512 unpack_hi(__m512 a, __m512 b) { return _mm512_mask_unpackhi_ps(a, 0xffff, a, b); }
template <int Imm>
inline __m512 shuffle_ps(__m512 a, __m512 b) {
    return _mm512_mask_shuffle_ps(a, 0xffff, a, b, Imm);
}
template <int Imm>
inline __m512 shuffle_f32x4(__m512 a, __m512 b) {
    return _mm512_mask_shuffle_f32x4(a, 0xffff, a, b, Imm);
}
template <int Imm>
inline __m128 lane128(__m512 a) {
    return _mm512_maskz_extractf32x4_ps(0xf, a, Imm);
}

// Row i of a patch: up to 6 floats by one masked load, zero where the mask is
// clear. The address is formed as an integer because, for a clear mask, it
// may lie outside the input (masked lanes are never accessed).
inline __m256 load_patch_row(const float* in, int64_t index, uint32_t mask) {
    const auto addr = reinterpret_cast<std::uintptr_t>(in) + static_cast<std::uintptr_t>(index) * sizeof(float);
    return _mm256_maskz_loadu_ps(static_cast<__mmask8>(mask), reinterpret_cast<const float*>(addr));
}

// Columns 0..cols-1 of 16 rows of 8 floats, as 16-lane vectors (lane t =
// row t). z[k] holds row a(k) in its low half and row a(k) + 4 in its high
// half, with a = 0-3, 8-11: that order makes the three shuffle stages
// (unpack, shuffle_ps, shuffle_f32x4) deliver each column in lane order.
SALTED_TILE_INLINE void transpose_rows16x8(const __m512* z, int cols, simd::FloatBatch* out) {
    __m512 t[8], s[8];
    for (int k = 0; k < 8; k += 4) {
        t[k] = unpack_lo(z[k], z[k + 1]);
        t[k + 1] = unpack_hi(z[k], z[k + 1]);
        t[k + 2] = unpack_lo(z[k + 2], z[k + 3]);
        t[k + 3] = unpack_hi(z[k + 2], z[k + 3]);
        // 128-bit lane L of s[k + c] is column c (L even) or c + 4 (L odd)
        // of the four rows z[k..k+3].
        s[k] = shuffle_ps<_MM_SHUFFLE(1, 0, 1, 0)>(t[k], t[k + 2]);
        s[k + 1] = shuffle_ps<_MM_SHUFFLE(3, 2, 3, 2)>(t[k], t[k + 2]);
        s[k + 2] = shuffle_ps<_MM_SHUFFLE(1, 0, 1, 0)>(t[k + 1], t[k + 3]);
        s[k + 3] = shuffle_ps<_MM_SHUFFLE(3, 2, 3, 2)>(t[k + 1], t[k + 3]);
    }
    for (int c = 0; c < 4 && c < cols; ++c) out[c] = shuffle_f32x4<0x88>(s[c], s[c + 4]);          // columns 0-3
    for (int c = 0; c < 4 && c + 4 < cols; ++c) out[c + 4] = shuffle_f32x4<0xDD>(s[c], s[c + 4]);  // columns 4-7
}

// Row segments of 16 tiles (up to 8 floats each, by masked loads, zero where
// the mask is clear) in the order transpose_rows16x8 wants: tile t's segment
// starts at in[index(t)] and has mask(t); tiles from `lanes` on are zero.
template <class Index, class Mask>
SALTED_TILE_INLINE void load_rows16x8(const float* in, int lanes, Index index, Mask mask, __m512* z) {
    constexpr int a_tile[8] = {0, 1, 2, 3, 8, 9, 10, 11};
    for (int k = 0; k < 8; ++k) {
        __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
        const int ta = a_tile[k], tb = ta + 4;
        if (ta < lanes) lo = load_patch_row(in, index(ta), mask(ta));
        if (tb < lanes) hi = load_patch_row(in, index(tb), mask(tb));
        z[k] = _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
    }
}

// load_patches_portable, by transposes: each patch row of the 16 tiles is
// loaded and transposed into 6 lane vectors. The loads are spelled out
// rather than going through load_rows16x8's callbacks: that form measured
// 6-10 % slower on the 32x32 WideResNet layers (GCC 12).
SALTED_TILE_INLINE void load_patches_avx512(const float* in, const Patch* tiles, int lanes, int64_t channel_offset,
                                            int64_t in_w, simd::FloatBatch* d) {
    constexpr int a_tile[8] = {0, 1, 2, 3, 8, 9, 10, 11};
    for (int i = 0; i < tile_in; ++i) {
        __m512 z[8];
        for (int k = 0; k < 8; ++k) {
            __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
            const int ta = a_tile[k], tb = ta + 4;
            if (ta < lanes) {
                const Patch& p = tiles[ta];
                lo = load_patch_row(in, p.offset + channel_offset + i * in_w, (p.row_mask >> i & 1u) ? p.col_mask : 0);
            }
            if (tb < lanes) {
                const Patch& p = tiles[tb];
                hi = load_patch_row(in, p.offset + channel_offset + i * in_w, (p.row_mask >> i & 1u) ? p.col_mask : 0);
            }
            z[k] = _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
        }
        transpose_rows16x8(z, tile_in, d + i * tile_in);
    }
}

// Row i of a tile (4 pixels) for 16 channels, y[i * 4 + j] pixel j's
// channels: a 4x4 transpose within each 128-bit lane turns the four column
// vectors into r[q], whose 128-bit lane L holds the four pixels of channel
// 4 * L + q.
inline void transpose_tile_row(const simd::FloatBatch* y, int i, __m512* r) {
    const __m512 c0 = y[i * 4], c1 = y[i * 4 + 1], c2 = y[i * 4 + 2], c3 = y[i * 4 + 3];
    const __m512 t0 = unpack_lo(c0, c1), t1 = unpack_hi(c0, c1);
    const __m512 t2 = unpack_lo(c2, c3), t3 = unpack_hi(c2, c3);
    r[0] = shuffle_ps<_MM_SHUFFLE(1, 0, 1, 0)>(t0, t2);
    r[1] = shuffle_ps<_MM_SHUFFLE(3, 2, 3, 2)>(t0, t2);
    r[2] = shuffle_ps<_MM_SHUFFLE(1, 0, 1, 0)>(t1, t3);
    r[3] = shuffle_ps<_MM_SHUFFLE(3, 2, 3, 2)>(t1, t3);
}

// Rows full rows (4 pixels) of a tile for the channels of 128-bit lanes
// [First, First + Count): channels 4 * First .. 4 * (First + Count) - 1.
// All constants, so the loops unroll.
template <int Rows, int First, int Count>
inline void store_tile_lanes_avx512(const simd::FloatBatch* y, float* dst, int64_t plane, int64_t out_w) {
    constexpr bool L0 = First <= 0 && 0 < First + Count, L1 = First <= 1 && 1 < First + Count;
    constexpr bool L2 = First <= 2 && 2 < First + Count, L3 = First <= 3 && 3 < First + Count;
    for (int i = 0; i < Rows; ++i) {
        __m512 r[4];
        transpose_tile_row(y, i, r);
        float* row = dst + i * out_w;
        for (int q = 0; q < 4; ++q) {
            if constexpr (L0) _mm_storeu_ps(row + q * plane, lane128<0>(r[q]));
            if constexpr (L1) _mm_storeu_ps(row + (4 + q) * plane, lane128<1>(r[q]));
            if constexpr (L2) _mm_storeu_ps(row + (8 + q) * plane, lane128<2>(r[q]));
            if constexpr (L3) _mm_storeu_ps(row + (12 + q) * plane, lane128<3>(r[q]));
        }
    }
}

// store_tile_portable for Rows full rows of a tile, 16 channels.
template <int Rows>
inline void store_tile_avx512(const simd::FloatBatch* y, float* dst, int64_t plane, int64_t out_w) {
    store_tile_lanes_avx512<Rows, 0, 4>(y, dst, plane, out_w);
}

// A whole tile for 8 of its 16 channels: Half 0 the lanes 0-7, Half 1 the
// lanes 8-15 (see WinogradConv::transform_output).
template <int Half>
inline void store_tile_half_avx512(const simd::FloatBatch* y, float* dst, int64_t plane, int64_t out_w) {
    store_tile_lanes_avx512<tile_out, 2 * Half, 2>(y, dst, plane, out_w);
}
#endif

#if defined(SALTED_WINOGRAD_AVX2)
static_assert(simd::width == 8, "the AVX2 tile paths assume 8-float batches");

#define SALTED_TILE_INLINE inline __attribute__((always_inline))

// Up to 8 floats from in[index], lane j loaded where bit j of `mask` is set
// and zero elsewhere. vmaskmovps does not touch (nor fault on) masked-out
// lanes, so the address may lie outside the input where the mask is clear;
// it is formed as an integer for that reason. A full mask takes the plain
// load.
// The vmaskmovps mask of the low 8 bits of `mask`: lane j all ones where bit j is set.
SALTED_TILE_INLINE __m256i lane_mask8(uint32_t mask) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(mask & 0xffu)), bit), bit);
}

SALTED_TILE_INLINE __m256 load_row8(const float* in, int64_t index, uint32_t mask) {
    const auto addr = reinterpret_cast<std::uintptr_t>(in) + static_cast<std::uintptr_t>(index) * sizeof(float);
    const float* p = reinterpret_cast<const float*>(addr);
    mask &= 0xffu;
    if (mask == 0xffu) return _mm256_loadu_ps(p);
    if (mask == 0) return _mm256_setzero_ps();
    return _mm256_maskload_ps(p, lane_mask8(mask));
}

// Pixels a and b (adjacent in a row) of 8 channels, one per lane, stored
// as one 8-byte pair per channel: channel l's at dst + l * plane. For the
// 2-wide tails of the 2x2 and 1x6 output tiles, which the 4x4 transposes
// do not cover.
SALTED_TILE_INLINE void store_pixel_pairs8(__m256 a, __m256 b, float* dst, int64_t plane) {
    const __m256 lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b);
    const __m128 q[4] = {_mm256_castps256_ps128(lo), _mm256_castps256_ps128(hi), _mm256_extractf128_ps(lo, 1),
                         _mm256_extractf128_ps(hi, 1)};  // channels 0-1, 2-3, 4-5, 6-7
    for (int h = 0; h < 4; ++h) {
        _mm_storel_pi(reinterpret_cast<__m64*>(dst + (2 * h) * plane), q[h]);
        _mm_storeh_pi(reinterpret_cast<__m64*>(dst + (2 * h + 1) * plane), q[h]);
    }
}

// In place: r[t] (row t, 8 floats) becomes r[j] (column j: lane t = row t's
// element j). Unpack, shuffle_ps, then 128-bit halves across.
SALTED_TILE_INLINE void transpose8x8(__m256* r) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    // s[c] (rows 0-3) and s[c + 4] (rows 4-7): column c in the low half, c + 4 in the high.
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// load_patches_portable by transposes: each patch row of the 8 tiles is
// loaded (masked) and transposed into Side lane vectors.
template <int Side>
SALTED_TILE_INLINE void load_patches_avx2(const float* in, const Patch* tiles, int lanes, int64_t channel_offset,
                                          int64_t in_w, simd::FloatBatch* d) {
    static_assert(Side <= 8, "a patch row is one 8-float load");
    constexpr uint32_t cols = (1u << Side) - 1u;
    // Tiles inside the image (most of a map's) load whole rows without a
    // mask; the others build their column mask once, not once per row.
    bool whole[8];
    __m256i mask[8];
    for (int t = 0; t < 8; ++t) {
        whole[t] = t < lanes && tiles[t].wide_inside;
        mask[t] = lane_mask8(t < lanes ? tiles[t].col_mask & cols : 0u);
    }
    for (int i = 0; i < Side; ++i) {
        __m256 r[8];
        for (int t = 0; t < 8; ++t) {
            const int64_t index = (t < lanes ? tiles[t].offset : 0) + channel_offset + i * in_w;
            const float* p = reinterpret_cast<const float*>(reinterpret_cast<std::uintptr_t>(in) +
                                                            static_cast<std::uintptr_t>(index) * sizeof(float));
            if (whole[t])
                r[t] = _mm256_loadu_ps(p);
            else if (t < lanes && (tiles[t].row_mask >> i & 1u))
                r[t] = _mm256_maskload_ps(p, mask[t]);  // masked-out lanes are not touched: see load_row8
            else
                r[t] = _mm256_setzero_ps();
        }
        transpose8x8(r);
        for (int j = 0; j < Side; ++j) d[i * Side + j] = r[j];
    }
}

// Rows full rows (4 pixels) of a 4x4 output tile for 8 channels: the four
// pixel vectors of a row, transposed within each 128-bit half, give channel
// q (low half) and 4 + q (high half) in r[q].
template <int Rows>
SALTED_TILE_INLINE void store_tile_avx2(const simd::FloatBatch* y, float* dst, int64_t plane, int64_t out_w) {
    for (int i = 0; i < Rows; ++i) {
        const __m256 c0 = y[i * 4], c1 = y[i * 4 + 1], c2 = y[i * 4 + 2], c3 = y[i * 4 + 3];
        const __m256 t0 = _mm256_unpacklo_ps(c0, c1), t1 = _mm256_unpackhi_ps(c0, c1);
        const __m256 t2 = _mm256_unpacklo_ps(c2, c3), t3 = _mm256_unpackhi_ps(c2, c3);
        const __m256 r[4] = {_mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2)),
                             _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2))};
        float* row = dst + i * out_w;
        for (int q = 0; q < 4; ++q) {
            _mm_storeu_ps(row + q * plane, _mm256_castps256_ps128(r[q]));
            _mm_storeu_ps(row + (4 + q) * plane, _mm256_extractf128_ps(r[q], 1));
        }
    }
}
#endif

// The input patches (side Side) of up to `width` tiles, one per lane (see
// load_patches_portable).
template <int Side = tile_in>
inline void load_patches(const float* in, const Patch* tiles, int lanes, int64_t channel_offset, int64_t in_w,
                         simd::FloatBatch* d) {
#if defined(SALTED_WINOGRAD_AVX512)
    if constexpr (Side == tile_in) return load_patches_avx512(in, tiles, lanes, channel_offset, in_w, d);
#elif defined(SALTED_WINOGRAD_AVX2)
    return load_patches_avx2<Side>(in, tiles, lanes, channel_offset, in_w, d);
#endif
    load_patches_portable<Side>(in, tiles, lanes, channel_offset, in_w, d);
}

// One output tile for up to `width` channels, one per lane (see store_tile_portable).
inline void store_tile(const simd::FloatBatch* y, float* dst, int64_t plane, int64_t out_w, int rows, int cols,
                       int lanes) {
#if defined(SALTED_WINOGRAD_AVX512)
    if (cols == tile_out && lanes == 16 && rows == tile_out) return store_tile_avx512<tile_out>(y, dst, plane, out_w);
    if (cols == tile_out && lanes == 16 && rows == 1) return store_tile_avx512<1>(y, dst, plane, out_w);
#elif defined(SALTED_WINOGRAD_AVX2)
    if (cols == tile_out && lanes == 8 && rows == tile_out) return store_tile_avx2<tile_out>(y, dst, plane, out_w);
    if (cols == tile_out && lanes == 8 && rows == 1) return store_tile_avx2<1>(y, dst, plane, out_w);
#endif
    store_tile_portable(y, dst, plane, out_w, rows, cols, lanes);
}

}  // namespace winograd
}  // namespace kernels
}  // namespace salted
