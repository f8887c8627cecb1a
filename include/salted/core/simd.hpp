// SIMD aliases. xsimd picks the widest instruction set the compiler was told
// to target (-march=native gives AVX-512/AVX2+FMA on x86, NEON on ARM); with
// no SIMD flags it falls back to SSE2 (x86-64 baseline) or scalar emulation.
// Kernels are written once over `FloatBatch` and keep a scalar tail loop.
#pragma once

#include <cstddef>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace salted {
namespace simd {

using Arch = xsimd::default_arch;
using FloatBatch = xsimd::batch<float, Arch>;
constexpr std::size_t width = FloatBatch::size;

inline FloatBatch load(const float* p) { return FloatBatch::load_unaligned(p); }
inline void store(float* p, const FloatBatch& b) { b.store_unaligned(p); }
inline FloatBatch broadcast(float x) { return FloatBatch(x); }

// a * b + c rounded once, on any float batch (full or half width). Kernels
// call this, never xsimd::fma: xsimd 8.1 (Debian's) has no AVX-512 fma, and
// its generic x * y + z is one instruction only where the compiler
// contracts it. GCC in its default gnu++ mode mostly does, but not in ISO
// mode (-std=c++17) nor, as seen in the shallow convolution, everywhere in
// a kernel: the same sums gave different bits on full and half vectors.
template <class A>
inline xsimd::batch<float, A> fma(const xsimd::batch<float, A>& a, const xsimd::batch<float, A>& b,
                                  const xsimd::batch<float, A>& c) {
    // Chosen by register size, not arch: on an AVX2 machine the half
    // vectors are xsimd's sse4_2 batches, whose fma is the generic one
    // although the CPU has FMA3 (shallow_conv's half/full test failed
    // there). On x86 a 16/32/64-byte float register is __m128/256/512.
#if defined(__AVX512F__) || defined(__FMA__)
    using Reg = typename xsimd::batch<float, A>::register_type;
#endif
#if defined(__AVX512F__)
    if constexpr (sizeof(Reg) == 64) return _mm512_fmadd_ps(a, b, c);
#endif
#if defined(__FMA__)
    if constexpr (sizeof(Reg) == 32) return _mm256_fmadd_ps(a, b, c);
    if constexpr (sizeof(Reg) == 16) return _mm_fmadd_ps(a, b, c);
#endif
    return xsimd::fma(a, b, c);
}

// Whether this CPU runs a 512-bit multiply-add as two 256-bit halves, so
// that half vectors do the same work per cycle (AMD Zen 4: CPUID family
// 0x19 with AVX-512). Zen 5 (family 0x1A) and Intel's AVX-512 cores run
// 512 bits at once. Kernels that waste lanes on narrow rows ask this to
// pick their vector width; both widths give the same sums, so results do
// not depend on the answer. False off x86 and without AVX-512 vectors.
inline bool wide_vectors_split() {
#if (defined(__x86_64__) || defined(__i386__)) && defined(__AVX512F__)
    static const bool split = [] {
        unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
        if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return false;
        const bool amd = ebx == 0x68747541u && ecx == 0x444d4163u && edx == 0x69746e65u;  // "AuthenticAMD"
        if (!amd || !__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
        const unsigned family = ((eax >> 8) & 0xfu) + (((eax >> 8) & 0xfu) == 0xfu ? (eax >> 20) & 0xffu : 0u);
        return family == 0x19u;
    }();
    return split;
#else
    return false;
#endif
}

}  // namespace simd
}  // namespace salted
