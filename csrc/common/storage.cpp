// The dispatched conversions of common/storage.h (the kernels themselves: convert.cpp).
#include "common/storage.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "common/isa.h"

namespace ncps::common {

bool bf16_instructions() {
  static const bool on = [] {
    const char* env = std::getenv("NCPS_BF16_INSN");
    if (env != nullptr && std::string(env) == "0") return false;
    const std::string isa = compiled_isas()[chosen_isa()];
    return (isa == "avx512" || isa == "native") && cpu_supports("avx512_bf16");
  }();
  return on;
}

void widen(Storage s, const void* src, int64_t n, float* dst) {
  if (n <= 0) return;
  if (s == Storage::f32) {
    std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(n));
    return;
  }
  dispatch([&]<class Isa>() { cpu::widen<Isa>(s, src, n, dst); });
}

void narrow(Storage s, const float* src, int64_t n, void* dst) {
  if (n <= 0) return;
  if (s == Storage::f32) {
    std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(n));
    return;
  }
  const bool insn = s == Storage::bf16 && bf16_instructions();
  dispatch([&]<class Isa>() { cpu::narrow<Isa>(s, src, n, dst, insn); });
}

}  // namespace ncps::common
