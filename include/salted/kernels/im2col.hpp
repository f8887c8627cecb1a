// Blocked im2col: the B operand of convolution-as-GEMM, produced one K x NR
// panel at a time straight into the packed order of gemm_pack.hpp. The full
// patch matrix (K = C*kh*kw rows by Ho*Wo columns) never exists in memory;
// a panel is written just before the microkernel reads it, while it is hot.
//
// Row k = (c * kh + ky) * kw + kx of the patch matrix (the order of a
// PyTorch weight [Cout, C, kh, kw] flattened per output channel); column
// j = oy * Wo + ox (an output pixel, so C = W * patches is NCHW directly).
#pragma once

#include <algorithm>
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "salted/kernels/gemm_pack.hpp"

namespace salted {
namespace kernels {

// Copies n (<= a panel width) floats src[0], src[s], src[2s], ... to dst.
// Runs are short and their lengths vary, so a memcpy call per run would cost
// more than the copy; AVX-512 masked loads/stores do a run in one or two
// instructions without touching memory outside it. A run's masks depend on
// its length only, which is the same for every channel of a panel: they
// are worked out once (plan_run) and the copy replays them per channel
// (copy_run). Worked out per copy they made a stride-2 1x1 conv 2-4 %
// slower (WideResNet's shortcuts, 5 alternated bench_layers rounds: 64->128
// 22.3 -> 21.7 us, 128->256 21.2 -> 20.7, 144->256 24.5 -> 23.4). Prefetching
// the next channels' runs, 1-4 channels ahead, gained nothing.
struct RunCopy {
    int n = 0;
    int64_t s = 1;
#if defined(__AVX512F__)
    static constexpr int max_chunks = (gemm_nr + 15) / 16;
    __mmask16 lo[max_chunks] = {}, hi[max_chunks] = {}, store[max_chunks] = {};
#endif
};

inline RunCopy plan_run(int64_t s, int n) {
    RunCopy r;
    r.n = n;
    r.s = s;
#if defined(__AVX512F__)
    auto low_bits = [](int64_t count) {
        return count >= 16 ? __mmask16(0xffff) : count <= 0 ? __mmask16(0) : __mmask16((1u << count) - 1);
    };
    for (int c = 0, t = 0; t < n && c < RunCopy::max_chunks; ++c, t += 16) {
        const int left = n - t, span = 2 * left - 1;  // stride 2: source floats still needed
        r.store[c] = low_bits(left);
        r.lo[c] = s == 2 ? low_bits(span) : r.store[c];
        r.hi[c] = s == 2 ? low_bits(span - 16) : 0;
    }
#endif
    return r;
}

#if defined(__AVX512F__)
inline void store_chunk(float* dst, __mmask16 m, __m512 v) {
    if (m == 0xffff)  // a whole vector: no mask to wait for
        _mm512_storeu_ps(dst, v);
    else
        _mm512_mask_storeu_ps(dst, m, v);
}
#endif

inline void copy_run(const RunCopy& r, const float* src, float* dst) {
#if defined(__AVX512F__)
    if (r.s == 1) {
        for (int c = 0, t = 0; t < r.n; ++c, t += 16)
            store_chunk(dst + t, r.store[c], _mm512_maskz_loadu_ps(r.lo[c], src + t));
        return;
    }
    if (r.s == 2) {  // even lanes of two source vectors
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        for (int c = 0, t = 0; t < r.n; ++c, t += 16) {
            const __m512 v = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(r.lo[c], src + 2 * t), even,
                                                    _mm512_maskz_loadu_ps(r.hi[c], src + 2 * t + 16));
            store_chunk(dst + t, r.store[c], v);
        }
        return;
    }
#endif
    for (int t = 0; t < r.n; ++t) dst[t] = src[t * r.s];
}

#if defined(__AVX512F__)
// Stride-2 runs of whole vectors: runs of 16 or 8 pixels whose 2n source
// floats lie inside their image row, covering the panel between them.
// Then a run is one or two plain loads, a permute and a plain store, with
// no masks, no zero fill of the panel row and no branch on the stride:
// WideResNet's stride-2 1x1 shortcuts (16- and 8-wide output rows), where
// the generic copy made the gather 14 % of the layer (perf).
inline bool whole_stride2_run(int64_t offset, int n, int64_t in_w) {
    return (n == 8 || n == 16) && offset % in_w + 2 * n <= in_w;
}

inline void copy_stride2_whole(const float* src, int n, float* dst) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    if (n == 16)
        _mm512_storeu_ps(dst, _mm512_permutex2var_ps(_mm512_loadu_ps(src), even, _mm512_loadu_ps(src + 16)));
    else
        _mm256_storeu_ps(dst, _mm512_castps512_ps256(_mm512_permutexvar_ps(even, _mm512_loadu_ps(src))));
}
#endif

// One image (and one channel group) of a 2-D convolution.
struct ConvGeometry {
    int64_t channels = 0;  // input channels of the group
    int64_t in_h = 0, in_w = 0;
    int64_t kernel_h = 1, kernel_w = 1;
    int64_t stride_h = 1, stride_w = 1;
    int64_t dilation_h = 1, dilation_w = 1;
    int64_t pad_top = 0, pad_left = 0;  // bottom/right padding only shows in out_h/out_w
    int64_t out_h = 0, out_w = 0;
    int64_t k() const { return channels * kernel_h * kernel_w; }
};

// B source for gemm_blocked: the patch matrix of `input` ([channels, in_h,
// in_w], contiguous), zero outside the image.
struct Im2colB {
    static constexpr bool prepacked = false;
    const float* input = nullptr;
    ConvGeometry g;

    const float* panel(int64_t) const { return nullptr; }

    void pack(int64_t p, int cols, float* dst) const {
        constexpr int NR = gemm_nr;
        constexpr int W = static_cast<int>(simd::width);
        // The panel's pixels, split into runs that stay on one output row.
        struct Run {
            int64_t oy, ox;
            int len, j;
        };
        Run runs[NR];
        int nruns = 0;
        int64_t pix = p * NR;
        for (int j = 0; j < cols;) {
            const int64_t oy = pix / g.out_w, ox = pix % g.out_w;
            const int len = static_cast<int>(std::min<int64_t>(cols - j, g.out_w - ox));
            runs[nruns++] = Run{oy, ox, len, j};
            j += len;
            pix += len;
        }
        // Which input pixels a kernel tap (ky, kx) reads is the same for every
        // channel: work the in-image segments out once per tap, then copy
        // them for each channel onto a zeroed panel row.
        struct Segment {
            int64_t offset;  // into the channel plane
            int j;
            RunCopy copy;
        };
        const int64_t plane = g.in_h * g.in_w, taps = g.kernel_h * g.kernel_w;
        for (int64_t ky = 0; ky < g.kernel_h; ++ky)
            for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
                Segment segs[NR];
                int nsegs = 0;
                for (int r = 0; r < nruns; ++r) {
                    const Run& run = runs[r];
                    const int64_t iy = run.oy * g.stride_h - g.pad_top + ky * g.dilation_h;
                    if (iy < 0 || iy >= g.in_h) continue;
                    // Run element t reads column ix0 + t * stride_w; keep those inside [0, in_w).
                    const int64_t ix0 = run.ox * g.stride_w - g.pad_left + kx * g.dilation_w;
                    const int64_t lo = ix0 >= 0 ? 0 : std::min<int64_t>(run.len, (-ix0 + g.stride_w - 1) / g.stride_w);
                    const int64_t past = ix0 <= g.in_w - 1 ? (g.in_w - 1 - ix0) / g.stride_w + 1 : 0;
                    const int64_t hi = std::max(lo, std::min<int64_t>(run.len, past));
                    if (hi > lo)
                        segs[nsegs++] = Segment{iy * g.in_w + ix0 + lo * g.stride_w, run.j + static_cast<int>(lo),
                                                plan_run(g.stride_w, static_cast<int>(hi - lo))};
                }
                float* d = dst + (ky * g.kernel_w + kx) * NR;
                const float* x = input;
#if defined(__AVX512F__)
                bool whole = g.stride_w == 2;
                int covered = 0;
                for (int s = 0; s < nsegs; ++s) {
                    whole = whole && whole_stride2_run(segs[s].offset, segs[s].copy.n, g.in_w);
                    covered += segs[s].copy.n;
                }
                if (whole && covered == NR) {
                    for (int64_t c = 0; c < g.channels; ++c, d += taps * NR, x += plane)
                        for (int s = 0; s < nsegs; ++s) copy_stride2_whole(x + segs[s].offset, segs[s].copy.n, d + segs[s].j);
                    continue;
                }
#endif
                for (int64_t c = 0; c < g.channels; ++c, d += taps * NR, x += plane) {
#pragma GCC unroll 8
                    for (int t = 0; t < NR; t += W) simd::store(d + t, simd::broadcast(0.0f));
                    for (int s = 0; s < nsegs; ++s) copy_run(segs[s].copy, x + segs[s].offset, d + segs[s].j);
                }
            }
    }
};

namespace ref {
// Scalar twin of Im2colB::pack: element by element from the definition.
inline void im2col_panel(const float* input, const ConvGeometry& g, int64_t p, int cols, float* dst) {
    constexpr int NR = gemm_nr;
    for (int64_t c = 0; c < g.channels; ++c)
        for (int64_t ky = 0; ky < g.kernel_h; ++ky)
            for (int64_t kx = 0; kx < g.kernel_w; ++kx) {
                float* d = dst + ((c * g.kernel_h + ky) * g.kernel_w + kx) * NR;
                for (int j = 0; j < NR; ++j) {
                    d[j] = 0.0f;
                    if (j >= cols) continue;
                    const int64_t pix = p * NR + j, oy = pix / g.out_w, ox = pix % g.out_w;
                    const int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h;
                    const int64_t ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w;
                    if (iy >= 0 && iy < g.in_h && ix >= 0 && ix < g.in_w) d[j] = input[(c * g.in_h + iy) * g.in_w + ix];
                }
            }
}
}  // namespace ref

}  // namespace kernels
}  // namespace salted
