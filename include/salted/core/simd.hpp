// SIMD aliases. xsimd picks the widest instruction set the compiler was told
// to target (-march=native gives AVX-512/AVX2+FMA on x86, NEON on ARM); with
// no SIMD flags it falls back to SSE2 (x86-64 baseline) or scalar emulation.
// Kernels are written once over `FloatBatch` and keep a scalar tail loop.
#pragma once

#include <cstddef>

#include <xsimd/xsimd.hpp>

namespace salted {
namespace simd {

using Arch = xsimd::default_arch;
using FloatBatch = xsimd::batch<float, Arch>;
constexpr std::size_t width = FloatBatch::size;

inline FloatBatch load(const float* p) { return FloatBatch::load_unaligned(p); }
inline void store(float* p, const FloatBatch& b) { b.store_unaligned(p); }
inline FloatBatch broadcast(float x) { return FloatBatch(x); }
inline FloatBatch fma(const FloatBatch& a, const FloatBatch& b, const FloatBatch& c) { return xsimd::fma(a, b, c); }

}  // namespace simd
}  // namespace salted
