// Portable SIMD math for the CPU kernels: GCC/Clang vector extensions of L float lanes, a
// Cephes-style exp (range reduction + degree-6 polynomial, max rel. error ~2 ulp on the clamped
// range) and the logistic sigmoid built on it.
//
// The vector extensions are lowered by the compiler to the widest registers the target has
// (zmm with -march=native on AVX-512, ymm on AVX2, pairs of xmm on baseline x86-64, NEON on arm),
// so the kernels need no intrinsics and no runtime dispatch.
#pragma once

#include <cstdint>

#if defined(__SSE__)
#include <immintrin.h>
#endif

#if defined(__GNUC__) && !defined(__clang__)
// Passing wide vectors by value changes the psABI when the target lacks AVX; every function here
// is force-inlined, so no vector ever crosses a real call boundary.
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#if defined(__GNUC__) || defined(__clang__)
#define NCPS_INLINE inline __attribute__((always_inline))
#else
#define NCPS_INLINE inline
#endif

namespace ncps::simd {

// L float lanes (L a power of two) and the matching int32 lanes.
template <int L>
struct Lanes {
  typedef float F __attribute__((vector_size(4 * L)));
  typedef int32_t I __attribute__((vector_size(4 * L)));
};

template <int L>
using vf = typename Lanes<L>::F;
template <int L>
using vi = typename Lanes<L>::I;

template <int L>
NCPS_INLINE vf<L> splat(float a) {
  return vf<L>{} + a;
}

template <int L>
NCPS_INLINE vf<L> vmin(vf<L> a, vf<L> b) {
  return a < b ? a : b;
}

template <int L>
NCPS_INLINE vf<L> vmax(vf<L> a, vf<L> b) {
  return a > b ? a : b;
}

// exp(x) for x in [-87.3, 88.0] (inputs outside are clamped; NaN propagates).
template <int L>
NCPS_INLINE vf<L> vexp(vf<L> x) {
  using F = vf<L>;
  using I = vi<L>;
  x = x < -87.3f ? splat<L>(-87.3f) : x;
  x = x > 88.0f ? splat<L>(88.0f) : x;
  // n = round(x / ln 2) with the 1.5 * 2^23 trick (exact for |x / ln 2| < 2^22).
  const F magic = splat<L>(12582912.0f);
  F t = x * 1.44269504088896341f + magic;
  F n = t - magic;
  // r = x - n ln 2 in two pieces (Cody-Waite), |r| <= ln(2)/2.
  F r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  F p = splat<L>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  F y = p * (r * r) + r + 1.0f;
  // 2^n from the exponent bits; n in [-126, 127] after the clamp.
  I ni = __builtin_convertvector(n, I);
  I bits = (ni + 127) << 23;
  return y * (F)bits;
}

// 2^u: n = round(u), f = u - n in [-1/2, 1/2], 2^f by a degree-5 polynomial (max rel. error
// 2.3e-7 in float32), times 2^n. On AVX-512 `vscalefps` applies 2^n and handles overflow (inf)
// and underflow (0) itself; elsewhere u is clamped to [-126, 126] and 2^n built from its bits.
template <int L>
NCPS_INLINE vf<L> vexp2(vf<L> u) {
  using F = vf<L>;
  using I = vi<L>;
  auto poly = [](F f) {
    F p = splat<L>(1.3266970636e-3f);
    p = p * f + 9.6754599362e-3f;
    p = p * f + 5.5507425219e-2f;
    p = p * f + 2.4022121727e-1f;
    p = p * f + 6.9314694405e-1f;
    return p * f + 1.0000001192f;
  };
#if defined(__AVX512F__)
  if constexpr (L == 16) {
    // (maskz forms with a full mask: the unmasked intrinsics trip -Wmaybe-uninitialized in GCC 12)
    const __m512 n = _mm512_maskz_roundscale_ps(0xFFFF, (__m512)u, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return (F)_mm512_maskz_scalef_ps(0xFFFF, (__m512)poly(u - (F)n), n);
  }
#endif
#if defined(__AVX512VL__)
  if constexpr (L == 8) {
    const __m256 n = _mm256_maskz_roundscale_ps(0xFF, (__m256)u, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return (F)_mm256_maskz_scalef_ps(0xFF, (__m256)poly(u - (F)n), n);
  }
  if constexpr (L == 4) {
    const __m128 n = _mm_maskz_roundscale_ps(0xF, (__m128)u, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return (F)_mm_maskz_scalef_ps(0xF, (__m128)poly(u - (F)n), n);
  }
#endif
  u = u < -126.0f ? splat<L>(-126.0f) : u;
  u = u > 126.0f ? splat<L>(126.0f) : u;
  const F magic = splat<L>(12582912.0f);
  const F t = u + magic;
  const F n = t - magic;
  const I bits = (__builtin_convertvector(n, I) + 127) << 23;
  return poly(u - n) * (F)bits;
}

// 1 / d for d >= 1 (finite or +inf): the hardware reciprocal estimate refined by one
// Newton-Raphson step (rel. error < 2e-7), much cheaper than a vector division; exact division
// where the target has no estimate instruction.
template <int L>
NCPS_INLINE vf<L> vrcp_ge1(vf<L> d) {
  using F [[maybe_unused]] = vf<L>;
#if defined(__AVX512F__)
  if constexpr (L == 16) {
    F r = (F)_mm512_maskz_rcp14_ps(0xFFFF, (__m512)d);
    return r * (2.0f - d * r);
  }
#endif
#if defined(__AVX512VL__)
  if constexpr (L == 8) {
    F r = (F)_mm256_maskz_rcp14_ps(0xFF, (__m256)d);
    return r * (2.0f - d * r);
  }
  if constexpr (L == 4) {
    F r = (F)_mm_maskz_rcp14_ps(0xF, (__m128)d);
    return r * (2.0f - d * r);
  }
#else
#if defined(__AVX__)
  if constexpr (L == 8) {
    F r = (F)_mm256_rcp_ps((__m256)d);
    return r * (2.0f - d * r);
  }
#endif
#if defined(__SSE__)
  if constexpr (L == 4) {
    F r = (F)_mm_rcp_ps((__m128)d);
    return r * (2.0f - d * r);
  }
#endif
#endif
  return 1.0f / d;
}

// 1 / (1 + exp(-z)).
template <int L>
NCPS_INLINE vf<L> vsigmoid(vf<L> z) {
  return vrcp_ge1<L>(1.0f + vexp<L>(-z));
}

// The logistic sigmoid from u = -z * log2(e): 1 / (1 + 2^u). Kernels fold log2(e) into their
// per-synapse constants so that u costs one fused multiply-add.
template <int L>
NCPS_INLINE vf<L> vsigmoid_log2(vf<L> u) {
  // The clamp keeps 1 + 2^u finite for the reciprocal refinement (sigmoid < 1.2e-38 there).
  u = u > 126.0f ? splat<L>(126.0f) : u;
  return vrcp_ge1<L>(1.0f + vexp2<L>(u));
}

template <int L>
NCPS_INLINE float hsum(vf<L> a) {
  float s = 0.0f;
  for (int l = 0; l < L; ++l) s += a[l];
  return s;
}

}  // namespace ncps::simd
