// The storage types of kernel inputs and outputs: float32, bfloat16 and float16. Every kernel
// computes in float32 (state, sums, accumulation); half arrays are widened when a task reads
// them and rounded (to nearest, ties to even) when it writes them, in vector code per
// instruction-set target (convert.cpp): F16C on x86-64-v3/v4, AVX-512 BF16 where the CPU has
// it, NEON on aarch64, and integer/scalar code elsewhere. Declarations only: the baseline files
// and the kernel targets share this header.
#pragma once

#include <cstdint>
#include <cstring>

namespace ncps::common {

enum class Storage : uint8_t { f32, bf16, f16 };

inline int storage_bytes(Storage s) { return s == Storage::f32 ? 4 : 2; }
inline const char* storage_name(Storage s) {
  return s == Storage::f32 ? "float32" : s == Storage::bf16 ? "bfloat16" : "float16";
}

// One bfloat16 or float16 value (its bits) as float32, exactly (scalar code, for strided gathers).
inline float half_to_float(Storage s, uint16_t h) {
  uint32_t u;
  if (s == Storage::bf16) {
    u = static_cast<uint32_t>(h) << 16;
  } else {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {  // zero or subnormal: m * 2^-24
      float v = static_cast<float>(m) * 5.9604644775390625e-8f;
      std::memcpy(&u, &v, 4);
      u |= sign;
    } else {
      u = sign | (e == 31 ? 0x7f800000u | (m << 13) : ((e + 112u) << 23) | (m << 13));
    }
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// An input a kernel reads in its storage type itself: float32 data as it is, half data widened a
// few rows at a time as the kernel reads them, where a float32 copy would be as big as the array
// (a half LTC's saved states, say).
struct Rows {
  const void* data = nullptr;
  Storage st = Storage::f32;
};

// An output a kernel writes in its storage type itself (common/convert.h's put()), rather than
// through a float32 staging buffer: a float32, bfloat16 or float16 array's data.
struct Sink {
  void* data = nullptr;
  Storage st = Storage::f32;
  bool bf16_insn = false;  // round to bfloat16 with VCVTNEPS2BF16 (bf16_instructions())
};

namespace cpu {
// The chosen target's conversions (convert.cpp, one specialisation per target). `bf16_insn`:
// round to bfloat16 with the AVX-512 BF16 instruction (the caller checked the CPU has it).
template <class Isa>
void widen(Storage s, const void* src, int64_t n, float* dst);
template <class Isa>
void narrow(Storage s, const float* src, int64_t n, void* dst, bool bf16_insn);
}  // namespace cpu

// dst[0:n] = float(src[0:n]) and dst[0:n] = round(src[0:n]) through the dispatched target
// (storage.cpp). f32 copies.
void widen(Storage s, const void* src, int64_t n, float* dst);
void narrow(Storage s, const float* src, int64_t n, void* dst);

// Whether narrow() rounds to bfloat16 with AVX-512 BF16 (VCVTNEPS2BF16): the avx512 target runs
// and the CPU has the extension, unless NCPS_BF16_INSN=0. The instruction treats subnormal
// float32 inputs as zero; the integer path keeps them (the only difference between the two).
bool bf16_instructions();

}  // namespace ncps::common
