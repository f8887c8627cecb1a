// 2-D pooling over NCHW: max_pool2d, avg_pool2d and global_avg_pool, with
// PyTorch's exact semantics (nn.MaxPool2d, nn.AvgPool2d,
// nn.AdaptiveAvgPool2d(1)): floor or ceil output sizes, padding of at most
// half the kernel, max pooling over -inf padding, average pooling with or
// without the padded cells in the divisor.
//
// The fast kernel is separable: for one output row it first reduces the
// kernel's input rows column by column (contiguous, SIMD, any stride), into a
// small stack buffer, then reduces that buffer along the kernel's width. That
// touches every input element about kernel_h times instead of
// kernel_h*kernel_w times, and needs no allocation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "salted/core/parallel.hpp"
#include "salted/core/result.hpp"
#include "salted/core/simd.hpp"
#include "salted/core/tensor.hpp"

namespace salted {
namespace ops {

// One parameter set for both poolings; PyTorch names. Padding is four-sided
// for generality (PyTorch's symmetric `padding=(ph, pw)` is top=bottom=ph,
// left=right=pw; see Pool2dParams::make).
struct Pool2dParams {
    int64_t kernel_h = 1, kernel_w = 1;
    int64_t stride_h = 0, stride_w = 0;  // 0 means "equal to the kernel", PyTorch's default
    int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
    int64_t dilation_h = 1, dilation_w = 1;  // max pooling only; average pooling requires 1
    bool ceil_mode = false;
    bool count_include_pad = true;  // average pooling only

    // The PyTorch constructor's shape: kernel, stride (0 = kernel), symmetric padding.
    static Pool2dParams make(int64_t kh, int64_t kw, int64_t sh = 0, int64_t sw = 0, int64_t ph = 0, int64_t pw = 0) {
        Pool2dParams p;
        p.kernel_h = kh;
        p.kernel_w = kw;
        p.stride_h = sh;
        p.stride_w = sw;
        p.pad_top = p.pad_bottom = ph;
        p.pad_left = p.pad_right = pw;
        return p;
    }
    int64_t effective_stride_h() const { return stride_h == 0 ? kernel_h : stride_h; }
    int64_t effective_stride_w() const { return stride_w == 0 ? kernel_w : stride_w; }
};

namespace detail {

// Everything a pooling loop needs, validated once.
struct PoolGeometry {
    int64_t n, c, h, w, oh, ow;
    int64_t kh, kw, sh, sw, pt, pl, pb, pr, dh, dw;
    bool count_include_pad;
};

inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
inline int64_t ceil_div_pos(int64_t a, int64_t b) { return (a + b - 1) / b; }  // a >= 0, b > 0

// PyTorch's pooling_output_shape_pad_lr: with ceil_mode the last window must
// still start inside the input or its leading padding.
inline int64_t pooled_size(int64_t in, int64_t k, int64_t s, int64_t pad_begin, int64_t pad_end, int64_t d,
                           bool ceil_mode) {
    int64_t out = floor_div(in + pad_begin + pad_end - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0), s) + 1;
    if (ceil_mode && (out - 1) * s >= in + pad_begin) --out;
    return out;
}

inline Status check_pool_field(const char* op, const char* field, int64_t v, int64_t lo, int64_t hi,
                               const char* why) {
    if (v < lo || v > hi)
        return make_error(Errc::invalid_argument, "%s: %s: expected %lld..%lld%s, found %lld", op, field,
                          static_cast<long long>(lo), static_cast<long long>(hi), why, static_cast<long long>(v));
    return Status();
}

inline Status validate_pool_params(const char* op, const Pool2dParams& p, bool is_max) {
    const int64_t big = int64_t(1) << 30;
    SALTED_TRY(check_pool_field(op, "kernel_h", p.kernel_h, 1, big, ""));
    SALTED_TRY(check_pool_field(op, "kernel_w", p.kernel_w, 1, big, ""));
    SALTED_TRY(check_pool_field(op, "stride_h", p.stride_h, 0, big, " (0 = kernel_h)"));
    SALTED_TRY(check_pool_field(op, "stride_w", p.stride_w, 0, big, " (0 = kernel_w)"));
    if (is_max) {
        SALTED_TRY(check_pool_field(op, "dilation_h", p.dilation_h, 1, big, ""));
        SALTED_TRY(check_pool_field(op, "dilation_w", p.dilation_w, 1, big, ""));
    } else {
        SALTED_TRY(check_pool_field(op, "dilation_h", p.dilation_h, 1, 1, " (average pooling has no dilation)"));
        SALTED_TRY(check_pool_field(op, "dilation_w", p.dilation_w, 1, 1, " (average pooling has no dilation)"));
    }
    // PyTorch: "pad should be smaller than or equal to half of kernel size".
    SALTED_TRY(check_pool_field(op, "pad_top", p.pad_top, 0, p.kernel_h / 2, " (at most kernel_h/2)"));
    SALTED_TRY(check_pool_field(op, "pad_bottom", p.pad_bottom, 0, p.kernel_h / 2, " (at most kernel_h/2)"));
    SALTED_TRY(check_pool_field(op, "pad_left", p.pad_left, 0, p.kernel_w / 2, " (at most kernel_w/2)"));
    SALTED_TRY(check_pool_field(op, "pad_right", p.pad_right, 0, p.kernel_w / 2, " (at most kernel_w/2)"));
    return Status();
}

inline Result<PoolGeometry> pool_geometry(const char* op, const Pool2dParams& p, const Shape& in, bool is_max) {
    SALTED_TRY(validate_pool_params(op, p, is_max));
    if (in.rank() != 4)
        return make_error(Errc::shape_mismatch, "%s: input rank: expected 4 (NCHW), found %d (shape %s)", op,
                          in.rank(), in.str().c_str());
    SALTED_TRY(in.validate());
    PoolGeometry g;
    g.n = in[0];
    g.c = in[1];
    g.h = in[2];
    g.w = in[3];
    g.kh = p.kernel_h;
    g.kw = p.kernel_w;
    g.sh = p.effective_stride_h();
    g.sw = p.effective_stride_w();
    g.pt = p.pad_top;
    g.pl = p.pad_left;
    g.pb = p.pad_bottom;
    g.pr = p.pad_right;
    g.dh = is_max ? p.dilation_h : 1;
    g.dw = is_max ? p.dilation_w : 1;
    g.count_include_pad = p.count_include_pad;
    g.oh = pooled_size(g.h, g.kh, g.sh, g.pt, g.pb, g.dh, p.ceil_mode);
    g.ow = pooled_size(g.w, g.kw, g.sw, g.pl, g.pr, g.dw, p.ceil_mode);
    if (g.oh < 1 || g.ow < 1)
        return make_error(Errc::shape_mismatch,
                          "%s: output size: expected >= 1x1, found %lldx%lld (input %s too small for kernel "
                          "%lldx%lld, dilation %lldx%lld)",
                          op, static_cast<long long>(g.oh), static_cast<long long>(g.ow), in.str().c_str(),
                          static_cast<long long>(g.kh), static_cast<long long>(g.kw), static_cast<long long>(g.dh),
                          static_cast<long long>(g.dw));
    return g;
}

inline Status check_pool_output(const char* op, const PoolGeometry& g, const Shape& out) {
    const Shape want{g.n, g.c, g.oh, g.ow};
    if (out != want)
        return make_error(Errc::shape_mismatch, "%s: output shape: expected %s, found %s", op, want.str().c_str(),
                          out.str().c_str());
    return Status();
}

// Max that lets a NaN win, as PyTorch's pooling does.
inline float nan_max(float m, float v) { return (v > m || std::isnan(v)) ? v : m; }
inline simd::FloatBatch nan_max(const simd::FloatBatch& m, const simd::FloatBatch& v) {
    return xsimd::select((v > m) || xsimd::isnan(v), v, m);
}

// PyTorch's average divisor is separable: (rows counted) x (columns
// counted), where "counted" means the window's cells inside the input plus,
// with count_include_pad, those in the padding (not past it). A window with
// no input cell at all averages to 0 (cannot happen with padding <=
// kernel/2; kept so every geometry is defined).
struct AxisCount {
    int64_t valid;    // cells inside the input
    int64_t divisor;  // cells that count in the divisor
};
inline AxisCount avg_axis_count(int64_t start, int64_t k, int64_t in, int64_t pad_end, bool include_pad) {
    const int64_t valid = std::min(start + k, in) - std::max<int64_t>(start, 0);
    return {valid, include_pad ? std::min(start + k, in + pad_end) - start : valid};
}

// The kernel taps [lo, hi) of a window starting at `start` (tap t reads
// start + t*d) that land inside [0, in). Loops run over these only, so even
// an absurdly large kernel costs no more than the input it covers.
struct TapRange {
    int64_t lo, hi;
};
inline TapRange valid_taps(int64_t start, int64_t k, int64_t d, int64_t in) {
    const int64_t lo = start < 0 ? ceil_div_pos(-start, d) : 0;
    const int64_t hi = std::min(k, start < in ? ceil_div_pos(in - start, d) : 0);
    return {lo, std::max(lo, hi)};
}

// Stack buffer for one output row tile's column reductions.
constexpr int64_t pool_row_buffer = 512;

// Pools output row `oy` of one plane. `is_max` selects max (padding -inf)
// or sum-then-divide (padding 0).
template <bool is_max>
inline void pool_row(const PoolGeometry& g, const float* plane, float* out_row, int64_t oy) {
    const float identity = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
    const int64_t h0 = oy * g.sh - g.pt;
    const TapRange rows = valid_taps(h0, g.kh, g.dh, g.h);
    const int64_t kh_lo = rows.lo, kh_hi = rows.hi;
    const int64_t span = (g.kw - 1) * g.dw + 1;  // input columns under one window
    const int64_t tile = (pool_row_buffer - span) / g.sw + 1;
    const int64_t w = static_cast<int64_t>(simd::width);
    alignas(64) float buf[pool_row_buffer];
    // Average only: the row's share of the divisor, and the whole divisor of
    // a window that lies inside the input horizontally.
    const AxisCount ch = avg_axis_count(h0, g.kh, g.h, g.pb, g.count_include_pad);
    if (!is_max && ch.valid <= 0) {
        std::fill(out_row, out_row + g.ow, 0.0f);
        return;
    }
    const float interior_divisor = static_cast<float>(ch.divisor * g.kw);

    for (int64_t ox0 = 0; ox0 < g.ow; ox0 += tile) {
        const int64_t ox1 = std::min(g.ow, ox0 + tile);
        const int64_t c0 = ox0 * g.sw - g.pl;      // first input column of the tile
        const int64_t len = (ox1 - 1 - ox0) * g.sw + span;
        const int64_t v0 = std::max<int64_t>(c0, 0), v1 = std::min(c0 + len, g.w);  // inside the input
        for (int64_t j = 0; j < len; ++j) buf[j] = identity;
        if (v0 < v1 && kh_lo < kh_hi) {
            float* b = buf + (v0 - c0);
            const int64_t n = v1 - v0;
            const float* first = plane + (h0 + kh_lo * g.dh) * g.w + v0;
            std::copy(first, first + n, b);
            for (int64_t k = kh_lo + 1; k < kh_hi; ++k) {
                const float* row = plane + (h0 + k * g.dh) * g.w + v0;
                int64_t j = 0;
                for (; j + w <= n; j += w) {
                    simd::FloatBatch acc = simd::load(b + j), x = simd::load(row + j);
                    simd::store(b + j, is_max ? nan_max(acc, x) : acc + x);
                }
                for (; j < n; ++j) b[j] = is_max ? nan_max(b[j], row[j]) : b[j] + row[j];
            }
        }
        // Reduce along the kernel width, then (average) divide.
        int64_t ox = ox0;
        if (g.sw == 1) {
            for (; ox + w <= ox1; ox += w) {
                const float* b = buf + (ox - ox0);
                simd::FloatBatch acc = simd::load(b);
                for (int64_t k = 1; k < g.kw; ++k) {
                    simd::FloatBatch x = simd::load(b + k * g.dw);
                    acc = is_max ? nan_max(acc, x) : acc + x;
                }
                if (is_max) {
                    simd::store(out_row + ox, acc);
                } else if (ox - g.pl >= 0 && ox + w - 1 - g.pl + g.kw <= g.w) {
                    simd::store(out_row + ox, acc / simd::broadcast(interior_divisor));  // all lanes inside
                } else {
                    alignas(64) float div[simd::width];
                    for (int64_t l = 0; l < w; ++l) {
                        const AxisCount cw = avg_axis_count(ox + l - g.pl, g.kw, g.w, g.pr, g.count_include_pad);
                        div[l] = cw.valid > 0 ? static_cast<float>(ch.divisor * cw.divisor)
                                              : std::numeric_limits<float>::infinity();  // x / inf = 0
                    }
                    simd::store(out_row + ox, acc / simd::load(div));
                }
            }
        }
        for (; ox < ox1; ++ox) {
            const float* b = buf + (ox - ox0) * g.sw;
            float acc = b[0];
            for (int64_t k = 1; k < g.kw; ++k) acc = is_max ? nan_max(acc, b[k * g.dw]) : acc + b[k * g.dw];
            if (!is_max) {
                const AxisCount cw = avg_axis_count(ox * g.sw - g.pl, g.kw, g.w, g.pr, g.count_include_pad);
                acc = cw.valid > 0 ? acc / static_cast<float>(ch.divisor * cw.divisor) : 0.0f;
            }
            out_row[ox] = acc;
        }
    }
}

// Scalar window loop for kernels wider than the row buffer (rare; correct
// for every geometry).
template <bool is_max>
inline void pool_row_direct(const PoolGeometry& g, const float* plane, float* out_row, int64_t oy) {
    const int64_t h0 = oy * g.sh - g.pt;
    for (int64_t ox = 0; ox < g.ow; ++ox) {
        const int64_t w0 = ox * g.sw - g.pl;
        float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
        const TapRange rows = valid_taps(h0, g.kh, g.dh, g.h), cols = valid_taps(w0, g.kw, g.dw, g.w);
        for (int64_t ky = rows.lo; ky < rows.hi; ++ky) {
            const float* row = plane + (h0 + ky * g.dh) * g.w;
            for (int64_t kx = cols.lo; kx < cols.hi; ++kx)
                acc = is_max ? nan_max(acc, row[w0 + kx * g.dw]) : acc + row[w0 + kx * g.dw];
        }
        if (!is_max) {
            const AxisCount ch = avg_axis_count(h0, g.kh, g.h, g.pb, g.count_include_pad);
            const AxisCount cw = avg_axis_count(w0, g.kw, g.w, g.pr, g.count_include_pad);
            acc = (ch.valid > 0 && cw.valid > 0) ? acc / static_cast<float>(ch.divisor * cw.divisor) : 0.0f;
        }
        out_row[ox] = acc;
    }
}

// The common 2x2 stride-2 max pool with every window inside the input
// (LeNet's): one output row from input rows r0 and r1. The general row
// routine spends more on its bookkeeping than on these four compares. Taps
// are combined in PyTorch's order ((0,0), (0,1), (1,0), (1,1)), so ties
// between -0 and +0 resolve as they do there.
inline void max_pool_2x2_row(const float* r0, const float* r1, int64_t ow, float* out) {
    int64_t ox = 0;
#if defined(__AVX512F__)
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    auto nan_max16 = [](__m512 m, __m512 v) {  // v where v > m or v is NaN, else m
        const __mmask16 take = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        return _mm512_mask_blend_ps(take, m, v);
    };
    // Full blocks of 16 outputs, then one masked block for the rest: narrow
    // rows (LeNet's 12 and 4) would otherwise go through data-dependent
    // scalar branches that mispredict on ReLU outputs.
    for (; ox < ow; ox += 16) {
        const int64_t left = std::min<int64_t>(16, ow - ox), span = 2 * left;  // input floats of this block
        const __mmask16 lo = span >= 16 ? __mmask16(0xffff) : __mmask16((1u << span) - 1);
        const __mmask16 hi = span >= 32 ? __mmask16(0xffff) : span > 16 ? __mmask16((1u << (span - 16)) - 1) : 0;
        const __m512 a0 = _mm512_maskz_loadu_ps(lo, r0 + 2 * ox), a1 = _mm512_maskz_loadu_ps(hi, r0 + 2 * ox + 16);
        const __m512 b0 = _mm512_maskz_loadu_ps(lo, r1 + 2 * ox), b1 = _mm512_maskz_loadu_ps(hi, r1 + 2 * ox + 16);
        __m512 m = nan_max16(_mm512_permutex2var_ps(a0, even, a1), _mm512_permutex2var_ps(a0, odd, a1));
        m = nan_max16(m, _mm512_permutex2var_ps(b0, even, b1));
        m = nan_max16(m, _mm512_permutex2var_ps(b0, odd, b1));
        _mm512_mask_storeu_ps(out + ox, left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1), m);
    }
#endif
    for (; ox < ow; ++ox)
        out[ox] = nan_max(nan_max(nan_max(r0[2 * ox], r0[2 * ox + 1]), r1[2 * ox]), r1[2 * ox + 1]);
}

template <bool is_max>
inline Status pool2d(const char* op, const Pool2dParams& p, ConstTensorView in, TensorView out) {
    SALTED_ASSIGN(const PoolGeometry g, pool_geometry(op, p, in.shape, is_max));
    SALTED_TRY(check_pool_output(op, g, out.shape));
    const int64_t rows = g.n * g.c * g.oh;
    const bool fits = (g.kw - 1) * g.dw + 1 <= pool_row_buffer;
    // Work estimate; the tap count is capped so a huge kernel cannot overflow it.
    const int64_t taps = std::min<int64_t>(g.kh * g.kw, 4096);
    const bool max_2x2 = is_max && g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.dh == 1 && g.dw == 1 &&
                         g.pt == 0 && g.pl == 0 && 2 * g.oh <= g.h && 2 * g.ow <= g.w;
    if (max_2x2) {
        parallel_for(rows, rows * g.ow * taps, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
                const int64_t plane = r / g.oh, oy = r % g.oh;
                const float* src = in.data + plane * g.h * g.w + 2 * oy * g.w;
                max_pool_2x2_row(src, src + g.w, g.ow, out.data + plane * g.oh * g.ow + oy * g.ow);
            }
        });
        return Status();
    }
    parallel_for(rows, rows * g.ow * taps, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t plane = r / g.oh, oy = r % g.oh;
            const float* src = in.data + plane * g.h * g.w;
            float* dst = out.data + plane * g.oh * g.ow + oy * g.ow;
            if (fits) pool_row<is_max>(g, src, dst, oy);
            else pool_row_direct<is_max>(g, src, dst, oy);
        }
    });
    return Status();
}

}  // namespace detail

// Output shape [N, C, OH, OW] of max_pool2d for an NCHW input.
inline Result<Shape> max_pool2d_output_shape(const Pool2dParams& p, const Shape& in) {
    SALTED_ASSIGN(const detail::PoolGeometry g, detail::pool_geometry("max_pool2d", p, in, true));
    return Shape{g.n, g.c, g.oh, g.ow};
}

// Output shape [N, C, OH, OW] of avg_pool2d for an NCHW input.
inline Result<Shape> avg_pool2d_output_shape(const Pool2dParams& p, const Shape& in) {
    SALTED_ASSIGN(const detail::PoolGeometry g, detail::pool_geometry("avg_pool2d", p, in, false));
    return Shape{g.n, g.c, g.oh, g.ow};
}

// nn.MaxPool2d: padded cells count as -inf; a NaN in a window wins.
inline Status max_pool2d(const Pool2dParams& p, ConstTensorView in, TensorView out) {
    return detail::pool2d<true>("max_pool2d", p, in, out);
}

// nn.AvgPool2d (divisor_override not supported).
inline Status avg_pool2d(const Pool2dParams& p, ConstTensorView in, TensorView out) {
    return detail::pool2d<false>("avg_pool2d", p, in, out);
}

// Output shape [N, C, 1, 1] of global_avg_pool.
inline Result<Shape> global_avg_pool_output_shape(const Shape& in) {
    if (in.rank() != 4)
        return make_error(Errc::shape_mismatch, "global_avg_pool: input rank: expected 4 (NCHW), found %d (shape %s)",
                          in.rank(), in.str().c_str());
    SALTED_TRY(in.validate());
    return Shape{in[0], in[1], 1, 1};
}

// nn.AdaptiveAvgPool2d(1): the mean of every H x W plane.
inline Status global_avg_pool(ConstTensorView in, TensorView out) {
    SALTED_ASSIGN(const Shape want, global_avg_pool_output_shape(in.shape));
    if (out.shape != want)
        return make_error(Errc::shape_mismatch, "global_avg_pool: output shape: expected %s, found %s",
                          want.str().c_str(), out.shape.str().c_str());
    const int64_t planes = in.shape[0] * in.shape[1], hw = in.shape[2] * in.shape[3];
    const int64_t w = static_cast<int64_t>(simd::width);
    parallel_for(planes, planes * hw, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
            const float* x = in.data + p * hw;
            simd::FloatBatch acc = simd::broadcast(0.0f);
            int64_t i = 0;
            for (; i + w <= hw; i += w) acc += simd::load(x + i);
            float sum = xsimd::hadd(acc);
            for (; i < hw; ++i) sum += x[i];
            out.data[p] = sum / static_cast<float>(hw);
        }
    });
    return Status();
}

namespace ref {

// Scalar twin of max_pool2d / avg_pool2d: PyTorch's window loop, verbatim.
inline Status pool2d(bool is_max, const Pool2dParams& p, ConstTensorView in, TensorView out) {
    const char* op = is_max ? "max_pool2d" : "avg_pool2d";
    SALTED_ASSIGN(const detail::PoolGeometry g, detail::pool_geometry(op, p, in.shape, is_max));
    SALTED_TRY(detail::check_pool_output(op, g, out.shape));
    for (int64_t plane = 0; plane < g.n * g.c; ++plane) {
        const float* x = in.data + plane * g.h * g.w;
        for (int64_t oy = 0; oy < g.oh; ++oy) {
            for (int64_t ox = 0; ox < g.ow; ++ox) {
                const int64_t h0 = oy * g.sh - g.pt, w0 = ox * g.sw - g.pl;
                float acc = is_max ? -std::numeric_limits<float>::infinity() : 0.0f;
                int64_t cells = 0;
                for (int64_t ky = 0; ky < g.kh; ++ky) {
                    for (int64_t kx = 0; kx < g.kw; ++kx) {
                        const int64_t y = h0 + ky * g.dh, xx = w0 + kx * g.dw;
                        if (y < 0 || y >= g.h || xx < 0 || xx >= g.w) continue;
                        const float v = x[y * g.w + xx];
                        if (is_max) acc = (v > acc || std::isnan(v)) ? v : acc;
                        else acc += v;
                        ++cells;
                    }
                }
                if (!is_max) {
                    const int64_t hend = std::min(h0 + g.kh, g.h + g.pb), wend = std::min(w0 + g.kw, g.w + g.pr);
                    const int64_t divisor = g.count_include_pad ? (hend - h0) * (wend - w0) : cells;
                    acc = cells == 0 ? 0.0f : acc / static_cast<float>(divisor);
                }
                out.data[(plane * g.oh + oy) * g.ow + ox] = acc;
            }
        }
    }
    return Status();
}

inline Status max_pool2d(const Pool2dParams& p, ConstTensorView in, TensorView out) { return pool2d(true, p, in, out); }
inline Status avg_pool2d(const Pool2dParams& p, ConstTensorView in, TensorView out) { return pool2d(false, p, in, out); }

// Scalar twin of global_avg_pool.
inline Status global_avg_pool(ConstTensorView in, TensorView out) {
    SALTED_ASSIGN(const Shape want, global_avg_pool_output_shape(in.shape));
    if (out.shape != want) return make_error(Errc::shape_mismatch, "global_avg_pool: output shape differs");
    const int64_t hw = in.shape[2] * in.shape[3];
    for (int64_t p = 0; p < in.shape[0] * in.shape[1]; ++p) {
        float sum = 0.0f;
        for (int64_t i = 0; i < hw; ++i) sum += in.data[p * hw + i];
        out.data[p] = sum / static_cast<float>(hw);
    }
    return Status();
}

}  // namespace ref

}  // namespace ops
}  // namespace salted
