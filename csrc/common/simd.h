// The one SIMD vector type of the CPU kernels and its math: GCC/Clang vector extensions of L float
// lanes, lowered by the compiler to the widest registers the target has (zmm for the avx512 target,
// ymm for avx2, xmm on baseline x86-64, NEON q registers on aarch64), so the kernels need no per-ISA
// code of their own. A kernel header: compiled once per target, inside its namespace (common/isa.h).
//
// L defaults to W, the native width: the CfC kernels work on one native vector (`vf<>`), the LTC
// kernels on tiles of L batch lanes (`vf<L>`, L = 4, 8 or 16).
//
// Behaviour at the extremes (tests/test_simd_math.py):
//  - NaN in gives NaN out (clamps are written so that a NaN compares false and stays).
//  - vexp(x): ~2 ulp on [-87.3, 88.72]; +inf above ln(FLT_MAX) = 88.72; x < -87.3 gives
//    exp(-87.3) = 1.2e-38 (no subnormals).
//  - vexp2(u): rel. error 2.3e-7; +inf above u = 128; u < -126 gives at most 2^-126 (subnormal or
//    0 on AVX-512, 2^-126 (1 + 2^-23) elsewhere).
//  - vsigmoid(100) = 1, vsigmoid(-100) = 0 exactly; vtanh saturates for |x| >= 7.9 at +-(1 - 2.4e-7).
#pragma once

#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>

#include <cstdint>
#include <cstring>

#include "common/isa.h"

#if !defined(NCPS_ISA)
#error "common/simd.h is kernel code: compile it as a kernel target (NCPS_KERNEL_SOURCES in cmake/kernel_targets.cmake)"
#endif

#if defined(__SSE__)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
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
// A lambda force-inlined into its caller: [&](...) NCPS_INLINE_LAMBDA { ... }.
#if defined(__GNUC__) || defined(__clang__)
#define NCPS_INLINE_LAMBDA __attribute__((always_inline))
#else
#define NCPS_INLINE_LAMBDA
#endif

namespace ncps::common {
NCPS_ISA_BEGIN

// Float lanes of the target's widest native vector.
#if defined(__AVX512F__)
constexpr int W = 16;
#elif defined(__AVX__)
constexpr int W = 8;
#else
constexpr int W = 4;
#endif

// L float lanes (L a power of two), the matching int32 lanes, and an unaligned, alias-safe float
// vector for loads and stores at arbitrary addresses.
template <int L>
struct Lanes {
  typedef float F __attribute__((vector_size(4 * L)));
  typedef int32_t I __attribute__((vector_size(4 * L)));
  typedef float U __attribute__((vector_size(4 * L), aligned(4), may_alias));
};

template <int L = W>
using vf = typename Lanes<L>::F;
template <int L = W>
using vi = typename Lanes<L>::I;

// std::vector of lanes through a per-target allocator. The library's out-of-line helpers
// (value-initialise, fill, copy) are templates on the element type only, so with std::allocator
// every target would emit the same weak symbol for, e.g., std::vector<vf<8>> and the linker would
// keep one of them: an AVX-512 copy reached from the AVX2 target is an illegal instruction on an
// AVX2 CPU. (Seen in a clang -O1 sanitizer build, where those helpers are not inlined.) With this
// allocator, which lives in the target's namespace, the helpers are instantiated per target.
template <class T>
struct TargetAllocator {
  using value_type = T;
  TargetAllocator() noexcept = default;
  template <class U>
  TargetAllocator(const TargetAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return std::allocator<T>{}.allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept { std::allocator<T>{}.deallocate(p, n); }
  template <class U>
  bool operator==(const TargetAllocator<U>&) const noexcept {
    return true;
  }
};
template <class T>
using lane_vector = std::vector<T, TargetAllocator<T>>;

// Broadcast (not vf{} + a, which costs an add: -0.0f + 0.0f != -0.0f).
template <int L = W>
NCPS_INLINE vf<L> splat(float a) {
#if defined(__AVX512F__)
  if constexpr (L == 16) return (vf<L>)_mm512_set1_ps(a);
#endif
#if defined(__AVX__)
  if constexpr (L == 8) return (vf<L>)_mm256_set1_ps(a);
#endif
#if defined(__SSE__)
  if constexpr (L == 4) return (vf<L>)_mm_set1_ps(a);
#elif defined(__ARM_NEON)
  if constexpr (L == 4) return (vf<L>)vdupq_n_f32(a);
#endif
  vf<L> v;
  for (int i = 0; i < L; ++i) v[i] = a;
  return v;
}

// Native-width loads and stores at any float address; the _n forms touch the first n (0 < n < W)
// lanes only (the others read as 0 and are not written).
NCPS_INLINE vf<> load(const float* p) { return *reinterpret_cast<const Lanes<W>::U*>(p); }
NCPS_INLINE void store(float* p, vf<> v) { *reinterpret_cast<Lanes<W>::U*>(p) = v; }

NCPS_INLINE vf<> load_n(const float* p, int n) {
#if defined(__AVX512F__)
  return (vf<>)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p);
#elif defined(__AVX2__)
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return (vf<>)_mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx));
#else
  vf<> v = {};
  std::memcpy(&v, p, sizeof(float) * n);
  return v;
#endif
}
NCPS_INLINE void store_n(float* p, vf<> v, int n) {
#if defined(__AVX512F__)
  _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), (__m512)v);
#elif defined(__AVX2__)
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  _mm256_maskstore_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx), (__m256)v);
#else
  std::memcpy(p, &v, sizeof(float) * n);
#endif
}

// Two short rows in one native vector: lanes [0, m) from p and [W/2, W/2 + m) from q, m <= W/2
// (the other lanes read as 0 and are not written); splat_pair broadcasts a over the low half and b
// over the high one. For row tails narrower than half a vector (the 2-, 6- and 8-wide ends of the
// wired CfC's 34-, 22- and 8-neuron layers), which would otherwise cost a whole vector per row.
NCPS_INLINE vf<> load_pair(const float* p, const float* q, int m) {
#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
  const __mmask8 k = static_cast<__mmask8>((1u << m) - 1u);
  return (vf<>)_mm512_insertf32x8(_mm512_castps256_ps512(_mm256_maskz_loadu_ps(k, p)), _mm256_maskz_loadu_ps(k, q), 1);
#elif defined(__AVX2__) && !defined(__AVX512F__)
  const __m128i k = _mm_cmpgt_epi32(_mm_set1_epi32(m), _mm_setr_epi32(0, 1, 2, 3));
  return (vf<>)_mm256_insertf128_ps(_mm256_castps128_ps256(_mm_maskload_ps(p, k)), _mm_maskload_ps(q, k), 1);
#else
  vf<> v = {};
  for (int i = 0; i < m; ++i) {
    v[i] = p[i];
    v[W / 2 + i] = q[i];
  }
  return v;
#endif
}
NCPS_INLINE void store_pair(float* p, float* q, vf<> v, int m) {
#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
  const __mmask8 k = static_cast<__mmask8>((1u << m) - 1u);
  _mm256_mask_storeu_ps(p, k, _mm512_castps512_ps256((__m512)v));
  _mm256_mask_storeu_ps(q, k, _mm512_extractf32x8_ps((__m512)v, 1));
#elif defined(__AVX2__) && !defined(__AVX512F__)
  const __m128i k = _mm_cmpgt_epi32(_mm_set1_epi32(m), _mm_setr_epi32(0, 1, 2, 3));
  _mm_maskstore_ps(p, k, _mm256_castps256_ps128((__m256)v));
  _mm_maskstore_ps(q, k, _mm256_extractf128_ps((__m256)v, 1));
#else
  for (int i = 0; i < m; ++i) {
    p[i] = v[i];
    q[i] = v[W / 2 + i];
  }
#endif
}
NCPS_INLINE vf<> splat_pair(float a, float b) {
#if defined(__AVX512F__) && defined(__AVX512DQ__)
  return (vf<>)_mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
#elif defined(__AVX__) && !defined(__AVX512F__)
  return (vf<>)_mm256_insertf128_ps(_mm256_set1_ps(a), _mm_set1_ps(b), 1);
#else
  vf<> v = splat(a);
  for (int i = W / 2; i < W; ++i) v[i] = b;
  return v;
#endif
}

// Q short rows in one native vector (AVX-512 only; kRowLanes says whether the target has it):
// row r's m lanes, (p + r ld)[0, m), sit at lanes [r m, r m + m) for r < rows <= Q, Q m <= W; the
// other lanes read as 0 and are not written. The generalisation of load_pair to the 2-wide tail
// of a 34-neuron layer (8 rows per vector instead of 1); one masked load or store per row.
#if defined(__AVX512F__)
constexpr bool kRowLanes = true;
template <int Q>
struct RowLanes {
  __mmask16 k[Q];
  int m, rows;
  __m512i row_of, col_of;              // lane l -> l / m and l % m (lanes past Q m: the last row's)
  __m512i to_lanes[Q], from_lanes[Q];  // row r's lanes [0, m) <-> [r m, r m + m)
  NCPS_INLINE RowLanes(int m_, int rows_) : m(m_), rows(rows_) {
    alignas(64) int32_t ro[W], co[W];
    for (int l = 0; l < W; ++l) {  // lanes past Q m
      ro[l] = rows - 1;
      co[l] = 0;
    }
    for (int r = 0; r < Q; ++r)
      for (int c = 0; c < m; ++c) {
        ro[r * m + c] = std::min(r, rows - 1);
        co[r * m + c] = c;
      }
    row_of = _mm512_load_si512(ro);
    col_of = _mm512_load_si512(co);
    for (int r = 0; r < Q; ++r) {
      k[r] = r < rows ? static_cast<__mmask16>(((1u << m) - 1u) << (r * m)) : 0;
      const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
      const __m512i lanes = _mm512_set1_epi32(W - 1);
      to_lanes[r] = _mm512_and_si512(_mm512_sub_epi32(iota, _mm512_set1_epi32(r * m)), lanes);
      from_lanes[r] = _mm512_and_si512(_mm512_add_epi32(iota, _mm512_set1_epi32(r * m)), lanes);
    }
  }
  // Each row's m floats are read and written exactly (a masked load or store at the row's own
  // address, its lanes moved into / out of place by a permutation). A load shifted so that its
  // lane r m is the row's first float also spanned the row's previous columns, just stored by the
  // heads' full vectors, and waited for those stores (perf: that 8-row form cost more than one
  // vector per row); expanding loads and compresses were slower still.
  NCPS_INLINE vf<> load(const float* p, int64_t ld) const {
    __m512 v = _mm512_maskz_loadu_ps(k[0], p);
#pragma GCC unroll 8
    for (int r = 1; r < Q; ++r)
      if (r < rows) v = _mm512_mask_permutexvar_ps(v, k[r], to_lanes[r], _mm512_maskz_loadu_ps(k[0], p + r * ld));
    return (vf<>)v;
  }
  NCPS_INLINE void store(float* p, int64_t ld, vf<> v) const {
    _mm512_mask_storeu_ps(p, k[0], (__m512)v);
#pragma GCC unroll 8
    for (int r = 1; r < Q; ++r)
      if (r < rows) _mm512_mask_storeu_ps(p + r * ld, k[0], _mm512_permutexvar_ps(from_lanes[r], (__m512)v));
  }
  // s[0, rows) spread so that lane l holds s[l / m] (a per-row scalar such as dt).
  NCPS_INLINE vf<> per_row(const float* s) const {
    return (vf<>)_mm512_permutexvar_ps(row_of, _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << rows) - 1u), s));
  }
  // v's lanes [0, m) repeated for every row: lane l holds v[l % m] (a per-column parameter).
  NCPS_INLINE vf<> per_col(vf<> v) const { return (vf<>)_mm512_permutexvar_ps(col_of, (__m512)v); }
};
#else
constexpr bool kRowLanes = false;
template <int Q>
struct RowLanes;  // (no definition: the callers' code for it is discarded)
#endif

// m lanes from p (m == W: a full load).
NCPS_INLINE vf<> load_m(const float* p, int m) { return m == W ? load(p) : load_n(p, m); }
NCPS_INLINE void store_m(float* p, vf<> v, int m) {
  if (m == W)
    store(p, v);
  else
    store_n(p, v, m);
}

template <int L = W>
NCPS_INLINE vf<L> vmin(vf<L> a, vf<L> b) {
  return a < b ? a : b;
}
template <int L = W>
NCPS_INLINE vf<L> vmax(vf<L> a, vf<L> b) {
  return a > b ? a : b;
}
// min(x, hi) with NaN staying NaN: x86 min(a, b) returns b when either is NaN, so with x second it
// is one instruction instead of a compare and a blend.
template <int L = W>
NCPS_INLINE vf<L> vmin_nan(vf<L> x, float hi) {
#if defined(__AVX512F__)
  if constexpr (L == 16) return (vf<L>)_mm512_min_ps(_mm512_set1_ps(hi), (__m512)x);
#endif
#if defined(__AVX__)
  if constexpr (L == 8) return (vf<L>)_mm256_min_ps(_mm256_set1_ps(hi), (__m256)x);
#endif
#if defined(__SSE__)
  if constexpr (L == 4) return (vf<L>)_mm_min_ps(_mm_set1_ps(hi), (__m128)x);
#endif
  return x > hi ? splat<L>(hi) : x;
}
// x limited to [lo, hi]; NaN stays NaN (so a NaN input still yields a NaN result).
template <int L = W>
NCPS_INLINE vf<L> vclamp(vf<L> x, float lo, float hi) {
  // x86 max(a, b) returns b when either is NaN: with x second, one instruction instead of a
  // compare and a blend (the clamps sit on the CfC heads' critical path); then vmin_nan.
#if defined(__AVX512F__)
  if constexpr (L == 16) return vmin_nan<L>((vf<L>)_mm512_max_ps(_mm512_set1_ps(lo), (__m512)x), hi);
#endif
#if defined(__AVX__)
  if constexpr (L == 8) return vmin_nan<L>((vf<L>)_mm256_max_ps(_mm256_set1_ps(lo), (__m256)x), hi);
#endif
#if defined(__SSE__)
  if constexpr (L == 4) return vmin_nan<L>((vf<L>)_mm_max_ps(_mm_set1_ps(lo), (__m128)x), hi);
#endif
  x = x < lo ? splat<L>(lo) : x;
  return vmin_nan<L>(x, hi);
}
template <int L = W>
NCPS_INLINE vf<L> vabs(vf<L> a) {
  return a < 0.0f ? -a : a;
}
// sign(a) in {-1, 0, 1} (the derivative MLX uses for |a|).
template <int L = W>
NCPS_INLINE vf<L> vsign(vf<L> a) {
  return (a > 0.0f ? splat<L>(1.0f) : splat<L>(0.0f)) - (a < 0.0f ? splat<L>(1.0f) : splat<L>(0.0f));
}

// The lanes' sum as a tree (depth log2 L instead of a chain of L - 1 dependent adds): for sums
// whose order is free (hsum's is fixed: results are compared bitwise across code changes).
template <int L = W>
NCPS_INLINE float hsum_tree(vf<L> a) {
  float s[L];
  std::memcpy(s, &a, sizeof(s));
  for (int h = L / 2; h > 0; h /= 2)
    for (int l = 0; l < h; ++l) s[l] += s[l + h];
  return s[0];
}

template <int L = W>
NCPS_INLINE float hsum(vf<L> a) {
  float s = 0.0f;
  for (int l = 0; l < L; ++l) s += a[l];
  return s;
}

// 2^n for integer-valued n in [-126, 129], as 2^(n/2) * 2^(n - n/2) so that n = 128, 129 give
// +inf through the product instead of corrupt exponent bits.
template <int L>
NCPS_INLINE vf<L> scale_pow2(vf<L> y, vf<L> n) {
  const vi<L> ni = __builtin_convertvector(n, vi<L>);
  const vi<L> n1 = ni >> 1;
  const vi<L> n2 = ni - n1;
  return y * (vf<L>)((n1 + 127) << 23) * (vf<L>)((n2 + 127) << 23);
}

// exp(x): Cody-Waite range reduction and a degree-6 polynomial (Cephes expf). The upper clamp
// sits above ln(FLT_MAX) so that overflow gives +inf; the lower one avoids subnormals.
template <int L = W>
NCPS_INLINE vf<L> vexp(vf<L> x) {
  using F = vf<L>;
  x = vclamp<L>(x, -87.3f, 88.75f);
  // n = round(x / ln 2) with the 1.5 * 2^23 trick (exact for |x / ln 2| < 2^22).
  const F magic = splat<L>(12582912.0f);
  const F n = (x * 1.44269504088896341f + magic) - magic;
  // r = x - n ln 2 in two pieces, |r| <= ln(2)/2.
  F r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  F p = splat<L>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  return scale_pow2<L>(p * (r * r) + r + 1.0f, n);
}

// 2^u: n = round(u), f = u - n in [-1/2, 1/2], 2^f by a degree-5 polynomial (max rel. error
// 2.3e-7), times 2^n. On AVX-512 `vscalefps` applies 2^n and handles overflow and underflow itself.
template <int L = W>
NCPS_INLINE vf<L> vexp2(vf<L> u) {
  using F = vf<L>;
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
  u = vclamp<L>(u, -126.0f, 129.0f);
  const F magic = splat<L>(12582912.0f);
  const F n = (u + magic) - magic;
  return scale_pow2<L>(poly(u - n), n);
}

// 1 / d for d >= 1 (finite or +inf): the hardware reciprocal estimate refined by one
// Newton-Raphson step (rel. error < 2e-7), much cheaper than a vector division; exact division
// where the target has no estimate instruction.
template <int L = W>
NCPS_INLINE vf<L> vrcp_ge1(vf<L> d) {
  using F [[maybe_unused]] = vf<L>;
  // Each x86 target supplies its estimate r; the one Newton-Raphson step is r (2 - d r).
  [[maybe_unused]] const auto newton = [d](F r) { return r * (2.0f - d * r); };
#if defined(__AVX512F__)
  if constexpr (L == 16) return newton((F)_mm512_maskz_rcp14_ps(0xFFFF, (__m512)d));
#endif
#if defined(__AVX512VL__)
  if constexpr (L == 8) return newton((F)_mm256_maskz_rcp14_ps(0xFF, (__m256)d));
  if constexpr (L == 4) return newton((F)_mm_maskz_rcp14_ps(0xF, (__m128)d));
#else
#if defined(__AVX__)
  if constexpr (L == 8) return newton((F)_mm256_rcp_ps((__m256)d));
#endif
#if defined(__SSE__)
  if constexpr (L == 4) return newton((F)_mm_rcp_ps((__m128)d));
#endif
#endif
#if defined(__ARM_NEON) && defined(__aarch64__)
  // NEON's estimate has ~8 bits: two Newton-Raphson steps (vrecps: 2 - d r) reach float precision.
  // Wider tiles are handled as 4-lane pieces.
  if constexpr (L % 4 == 0) {
    F out;
    for (int k = 0; k < L; k += 4) {
      float32x4_t dk;
      std::memcpy(&dk, reinterpret_cast<const float*>(&d) + k, sizeof(dk));
      float32x4_t r = vrecpeq_f32(dk);
      r = vmulq_f32(r, vrecpsq_f32(dk, r));
      r = vmulq_f32(r, vrecpsq_f32(dk, r));
      std::memcpy(reinterpret_cast<float*>(&out) + k, &r, sizeof(r));
    }
    return out;
  }
#endif
  return 1.0f / d;
}

// The logistic sigmoid 1 / (1 + exp(-x)), exact division (~1e-7).
template <int L = W>
NCPS_INLINE vf<L> vsigmoid(vf<L> x) {
  return 1.0f / (1.0f + vexp<L>(-x));
}

// The logistic sigmoid from u = -z * log2(e): 1 / (1 + 2^u). The LTC kernels fold log2(e) into
// their per-synapse constants so that u costs one fused multiply-add.
template <int L = W>
NCPS_INLINE vf<L> vsigmoid_log2(vf<L> u) {
  // The clamp keeps 1 + 2^u finite for the reciprocal refinement (sigmoid < 1.2e-38 there).
  u = vmin_nan<L>(u, 126.0f);
  return vrcp_ge1<L>(1.0f + vexp2<L>(u));
}

// tanh(x): the [13/6] rational minimax approximation on [-7.905, 7.905] (Eigen's float tanh;
// |error| <= 3e-7 absolute and relative), one division and no exp. RCP: the division as the
// refined reciprocal estimate of vrcp_ge1 (the denominator lies in [4.9e-3, 0.3], where the
// estimate is as good as for d >= 1): a few 1e-7 more error (up to ~5e-7 where the estimate has
// 12 bits), but a zmm division costs as much as the whole polynomial. The fused CfC heads use it.
template <int L = W, bool RCP = false>
NCPS_INLINE vf<L> vtanh(vf<L> x) {
  using F = vf<L>;
  x = vclamp<L>(x, -7.90531110763549805f, 7.90531110763549805f);
  const F x2 = x * x;
  F p = splat<L>(-2.76076847742355e-16f);
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 - 8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  F q = splat<L>(1.19825839466702e-06f);
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  if constexpr (RCP) return (p * x) * vrcp_ge1<L>(q);
  return (p * x) / q;
}

NCPS_ISA_END
}  // namespace ncps::common
