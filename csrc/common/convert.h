// The half <-> float32 conversion loops of common/storage.h as kernel code (compiled once per
// instruction-set target, inside its namespace): whole vectors through the target's
// instructions, the tail (and the baseline's float16) in scalar code that rounds exactly as they
// do (to nearest, ties to even; NaN stays a quiet NaN). convert.cpp exports them to the baseline
// files; kernels that write half outputs themselves (a Sink) use them directly.
#pragma once

#include <cstdint>
#include <cstring>

#include "common/simd.h"
#include "common/storage.h"

namespace ncps::common {
NCPS_ISA_BEGIN

namespace detail {

typedef uint32_t vu32 __attribute__((vector_size(4 * W)));
typedef uint16_t vu16 __attribute__((vector_size(2 * W)));

NCPS_INLINE uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
NCPS_INLINE float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---- bfloat16: the upper half of a float32 --------------------------------------------------------

NCPS_INLINE uint16_t to_bf16(float f) {
  const uint32_t u = bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline void widen_bf16(const uint16_t* s, int64_t n, float* d) {
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    vu16 h;
    std::memcpy(&h, s + i, sizeof h);
    const vu32 u = __builtin_convertvector(h, vu32) << 16;
    std::memcpy(d + i, &u, sizeof u);
  }
  for (; i < n; ++i) d[i] = from_bits(static_cast<uint32_t>(s[i]) << 16);
}

inline void narrow_bf16(const float* s, int64_t n, uint16_t* d) {
  int64_t i = 0;
  for (; i + W <= n; i += W) {
    vu32 u;
    std::memcpy(&u, s + i, sizeof u);
    const vu32 nan = (vu32)((u & 0x7fffffffu) > 0x7f800000u);  // all ones where NaN
    const vu32 r = (nan & ((u >> 16) | 0x40u)) | (~nan & ((u + 0x7fffu + ((u >> 16) & 1u)) >> 16));
    const vu16 h = __builtin_convertvector(r, vu16);
    std::memcpy(d + i, &h, sizeof h);
  }
  for (; i < n; ++i) d[i] = to_bf16(s[i]);
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && (defined(__GNUC__) || defined(__clang__))
// VCVTNEPS2BF16 (the CPU was checked by the caller). Subnormal inputs round to zero.
__attribute__((target("avx512bf16"))) inline void narrow_bf16_insn(const float* s, int64_t n, uint16_t* d) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(s + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm256_mask_storeu_epi16(d + i, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, s + i)));
  }
}
#define NCPS_HAS_BF16_INSN 1
#endif

// ---- float16: 1 sign, 5 exponent, 10 mantissa bits ---------------------------------------------

NCPS_INLINE float from_f16(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {  // zero or subnormal: m * 2^-24
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;
    return from_bits(bits(v) | sign);
  }
  if (e == 31) return from_bits(sign | 0x7f800000u | (m << 13));  // inf, NaN (payload kept)
  return from_bits(sign | ((e + 112u) << 23) | (m << 13));
}

// Round to nearest even, subnormals and overflow to inf included (F. Giesen's float_to_half_fast3_rtne).
NCPS_INLINE uint16_t to_f16(float f) {
  const uint32_t f16max = (127u + 16u) << 23, denorm_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
  uint32_t x = bits(f);
  const uint32_t sign = x & 0x80000000u;
  x ^= sign;
  uint16_t o;
  if (x >= f16max) {
    o = x > 0x7f800000u ? static_cast<uint16_t>(0x7e00u | ((x >> 13) & 0x3ffu)) : 0x7c00u;
  } else if (x < (113u << 23)) {  // below 2^-14: the float adder rounds into the subnormal range
    o = static_cast<uint16_t>(bits(from_bits(x) + from_bits(denorm_magic)) - denorm_magic);
  } else {
    const uint32_t odd = (x >> 13) & 1u;
    x += ((15u - 127u) << 23) + 0xfffu + odd;
    o = static_cast<uint16_t>(x >> 13);
  }
  return static_cast<uint16_t>(o | (sign >> 16));
}

inline void widen_f16(const uint16_t* s, int64_t n, float* d) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(d + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i))));
#elif defined(__F16C__)
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i))));
#elif defined(__ARM_NEON) && defined(__aarch64__)
  for (; i + 4 <= n; i += 4) vst1q_f32(d + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(s + i))));
#endif
  for (; i < n; ++i) d[i] = from_f16(s[i]);
}

inline void narrow_f16(const float* s, int64_t n, uint16_t* d) {
  int64_t i = 0;
#if defined(__AVX512F__)
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + i),
                        _mm512_cvtps_ph(_mm512_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#elif defined(__F16C__)
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#elif defined(__ARM_NEON) && defined(__aarch64__)
  for (; i + 4 <= n; i += 4) vst1_u16(d + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(s + i))));
#endif
  for (; i < n; ++i) d[i] = to_f16(s[i]);
}

}  // namespace detail

// dst[0:n] = float(src[0:n]) from storage s.
inline void widen_run(Storage s, const void* src, int64_t n, float* dst) {
  if (s == Storage::f32)
    std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(n));
  else if (s == Storage::bf16)
    detail::widen_bf16(static_cast<const uint16_t*>(src), n, dst);
  else
    detail::widen_f16(static_cast<const uint16_t*>(src), n, dst);
}

// Rows [0, rows) of a half array, `width` elements of each (ld apart), widened into dst (width
// apart): one run when the rows are contiguous. The kernels' reading of half sequences row-wise.
inline void widen_rows(Storage s, const uint16_t* src, int64_t rows, int64_t ld, int64_t width, float* dst) {
  if (ld == width) return widen_run(s, src, rows * ld, dst);
  for (int64_t i = 0; i < rows; ++i) widen_run(s, src + i * ld, width, dst + i * width);
}

// dst[0:n] = src[0:n] rounded to storage s (bf16_insn: with VCVTNEPS2BF16, checked by the caller).
inline void narrow_run(Storage s, const float* src, int64_t n, void* dst, bool bf16_insn) {
  if (s == Storage::f32) {  // in vectors: kernels put short rows, where a memcpy call costs more
    float* d = static_cast<float*>(dst);
    int64_t i = 0;
    for (; i + W <= n; i += W) store(d + i, load(src + i));
    for (; i < n; ++i) d[i] = src[i];
  } else if (s == Storage::f16) {
    detail::narrow_f16(src, n, static_cast<uint16_t*>(dst));
  } else {
#if defined(NCPS_HAS_BF16_INSN)
    if (bf16_insn) return detail::narrow_bf16_insn(src, n, static_cast<uint16_t*>(dst));
#endif
    (void)bf16_insn;
    detail::narrow_bf16(src, n, static_cast<uint16_t*>(dst));
  }
}

// Elements [off, off + n) of the output `s` = src[0:n], rounded to its storage type.
inline void put(const Sink& s, int64_t off, const float* src, int64_t n) {
  narrow_run(s.st, src, n, static_cast<char*>(s.data) + off * storage_bytes(s.st), s.bf16_insn);
}

NCPS_ISA_END
}  // namespace ncps::common
