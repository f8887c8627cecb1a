// IEEE 754 binary16 ("half", f16) conversions, used to halve the size of
// cut-tensor frames on slow links.
//
// f32 -> f16 rounds to nearest, ties to even (what PyTorch's .half() and the
// F16C instructions do), so the error of one conversion is bounded by
//   |f16(x) - x| <= 2^-11 * |x|   for 2^-14 <= |x| < 65520 (normal halves)
//   |f16(x) - x| <= 2^-25         for |x| < 2^-14          (subnormal halves)
// i.e. |f16(x) - x| <= max(2^-11 * |x|, 2^-25) over the finite f16 range.
// Finite |x| >= 65520 rounds to +-infinity (65504 is the largest half);
// callers that must not lose values check f16_overflows() first.
// Infinities stay infinities; NaN stays NaN (quietened, sign and the top 10
// payload bits kept). f16 -> f32 is exact.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__F16C__) && defined(__AVX__)
#include <immintrin.h>
#endif

namespace salted {
namespace io {

constexpr float f16_max = 65504.0f;             // largest finite half
constexpr float f16_overflow_threshold = 65520.0f;  // smallest |x| that rounds to infinity

// True when a finite x would become +-infinity in f16 (so data would be lost).
inline bool f16_overflows(float x) { return std::isfinite(x) && std::fabs(x) >= f16_overflow_threshold; }

// Bit-level conversion, branch per range; the portable path.
inline uint16_t f32_to_f16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    const uint32_t a = x & 0x7FFFFFFFu;
    if (a >= 0x7F800000u) {  // infinity or NaN
        if (a == 0x7F800000u) return sign | 0x7C00u;
        return static_cast<uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
    }
    if (a >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520: rounds to infinity
    if (a >= 0x38800000u) {                      // >= 2^-14: a normal half
        // Rebias the exponent (127 -> 15) in place, then drop 13 mantissa bits
        // rounding half to even; a carry out of the mantissa correctly bumps
        // the exponent.
        const uint32_t r = a - 0x38000000u;
        uint32_t h = r >> 13;
        const uint32_t rest = r & 0x1FFFu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
        return static_cast<uint16_t>(sign | h);
    }
    if (a <= 0x33000000u) return sign;  // <= 2^-25: rounds to (signed) zero, the tie included
    // Subnormal half: value / 2^-24, rounded half to even. The f32 here is
    // normal (exponent 102..112), so its implicit bit is set.
    const uint32_t e = a >> 23;
    const uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126u - e;  // 14..24
    uint32_t h = m >> shift;
    const uint32_t rest = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rest > half || (rest == half && (h & 1u))) ++h;  // may reach 0x400, the smallest normal: still right
    return static_cast<uint16_t>(sign | h);
}

inline float f16_to_f32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t e = (h >> 10) & 0x1Fu;
    const uint32_t m = h & 0x3FFu;
    uint32_t bits;
    if (e == 0) {
        if (m == 0) {
            bits = sign;
        } else {  // subnormal: m * 2^-24, exact in f32
            float v = static_cast<float>(m) * 5.9604644775390625e-8f;
            std::memcpy(&bits, &v, 4);
            bits |= sign;
        }
    } else if (e == 31) {
        bits = sign | 0x7F800000u | (m << 13);
    } else {
        bits = sign | ((e + 112u) << 23) | (m << 13);
    }
    float out;
    std::memcpy(&out, &bits, 4);
    return out;
}

// Array conversions; F16C converts 8 values per instruction where available.
inline void f32_to_f16_n(const float* in, uint16_t* out, std::size_t n) {
    std::size_t i = 0;
#if defined(__F16C__) && defined(__AVX__)
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
    }
#endif
    for (; i < n; ++i) out[i] = f32_to_f16(in[i]);
}

inline void f16_to_f32_n(const uint16_t* in, float* out, std::size_t n) {
    std::size_t i = 0;
#if defined(__F16C__) && defined(__AVX__)
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
    }
#endif
    for (; i < n; ++i) out[i] = f16_to_f32(in[i]);
}

namespace ref {
// Arithmetic twins: the value of a half by its definition, and rounding by
// scaling onto the half's grid and std::nearbyint (ties to even in the
// default rounding mode). NaN gets the same bits as the fast path, since
// "which NaN" is a bit-level convention, not arithmetic.
inline float f16_to_f32(uint16_t h) {
    const bool negative = (h & 0x8000u) != 0;
    const int e = (h >> 10) & 0x1F;
    const int m = h & 0x3FF;
    double v;
    if (e == 31) v = m ? std::nan("") : INFINITY;
    else if (e == 0) v = std::ldexp(static_cast<double>(m), -24);
    else v = std::ldexp(static_cast<double>(1024 + m), e - 25);
    return static_cast<float>(negative ? -v : v);
}

inline uint16_t f32_to_f16(float f) {
    const uint16_t sign = std::signbit(f) ? 0x8000u : 0u;
    if (std::isnan(f)) return io::f32_to_f16(f);
    const double a = std::fabs(static_cast<double>(f));
    if (a >= 65520.0) return sign | 0x7C00u;  // infinities included
    if (a < std::ldexp(1.0, -14)) return static_cast<uint16_t>(sign | static_cast<uint16_t>(std::nearbyint(std::ldexp(a, 24))));
    int e2;
    std::frexp(a, &e2);  // a = fr * 2^e2, fr in [0.5, 1): a lies in [2^(e2-1), 2^e2)
    int exponent = e2 - 1;
    double q = std::nearbyint(std::ldexp(a, 10 - exponent));  // in [1024, 2048]
    if (q == 2048.0) { q = 1024.0; ++exponent; }
    return static_cast<uint16_t>(sign | ((exponent + 15) << 10) | (static_cast<int>(q) - 1024));
}
}  // namespace ref

}  // namespace io
}  // namespace salted
