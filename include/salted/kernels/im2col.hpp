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
// instructions without touching memory outside it.
inline void copy_run(const float* src, int64_t s, int n, float* dst) {
#if defined(__AVX512F__)
    if (s == 1) {
        for (int t = 0; t < n; t += 16) {
            const __mmask16 m = n - t >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - t)) - 1);
            _mm512_mask_storeu_ps(dst + t, m, _mm512_maskz_loadu_ps(m, src + t));
        }
        return;
    }
    if (s == 2) {  // even lanes of two source vectors
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        for (int t = 0; t < n; t += 16) {
            const int left = n - t, span = 2 * left - 1;  // source floats still needed
            const __mmask16 lo = span >= 16 ? __mmask16(0xffff) : __mmask16((1u << span) - 1);
            const __mmask16 hi = span >= 32 ? __mmask16(0xffff) : span > 16 ? __mmask16((1u << (span - 16)) - 1) : 0;
            const __m512 v = _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(lo, src + 2 * t), even,
                                                    _mm512_maskz_loadu_ps(hi, src + 2 * t + 16));
            const __mmask16 m = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
            _mm512_mask_storeu_ps(dst + t, m, v);
        }
        return;
    }
#endif
    for (int t = 0; t < n; ++t) dst[t] = src[t * s];
}

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
            int len, j;
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
                        segs[nsegs++] = Segment{iy * g.in_w + ix0 + lo * g.stride_w, static_cast<int>(hi - lo),
                                                run.j + static_cast<int>(lo)};
                }
                float* d = dst + (ky * g.kernel_w + kx) * NR;
                const float* x = input;
                for (int64_t c = 0; c < g.channels; ++c, d += taps * NR, x += plane) {
#pragma GCC unroll 8
                    for (int t = 0; t < NR; t += W) simd::store(d + t, simd::broadcast(0.0f));
                    for (int s = 0; s < nsegs; ++s) copy_run(x + segs[s].offset, g.stride_w, segs[s].len, d + segs[s].j);
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
