// Which compiled kernel target this process runs (common/isa.h): the CPU's features from cpuid,
// and, for AVX and AVX-512, whether the OS saves their registers (xgetbv), which cpuid alone does
// not say.
#include "common/isa.h"

#include <cstdint>
#include <cstdlib>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define NCPS_X86 1
#endif

namespace ncps::common {

namespace {

const std::vector<std::string>& names() {
  static const std::vector<std::string> n = {
#define NCPS_ISA_NAME(name) #name,
      NCPS_FOR_EACH_ISA(NCPS_ISA_NAME)
#undef NCPS_ISA_NAME
  };
  return n;
}

#if defined(NCPS_X86)
struct Regs {
  unsigned a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(unsigned leaf, unsigned sub = 0) {
  Regs r;
  if (!__get_cpuid_count(leaf, sub, &r.a, &r.b, &r.c, &r.d)) return Regs{};
  return r;
}

// XCR0: the register states the OS saves on a context switch.
uint64_t xcr0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool bit(unsigned reg, int i) { return (reg >> i) & 1u; }

// x86-64-v3 (the -march=x86-64-v3 target): AVX, AVX2, BMI1/2, F16C, FMA, LZCNT, MOVBE, plus the
// v2 set, and the OS saving xmm/ymm state.
bool x86_v3() {
  const Regs l1 = cpuid(1), l7 = cpuid(7), e1 = cpuid(0x80000001);
  const bool v2 = bit(l1.c, 0) && bit(l1.c, 9) && bit(l1.c, 13) && bit(l1.c, 19) && bit(l1.c, 20) && bit(l1.c, 23) &&
                  bit(e1.c, 0);  // SSE3 SSSE3 CX16 SSE4.1 SSE4.2 POPCNT LAHF
  const bool cpu = v2 && bit(l1.c, 12) && bit(l1.c, 22) && bit(l1.c, 28) && bit(l1.c, 29) &&  // FMA MOVBE AVX F16C
                   bit(l7.b, 3) && bit(l7.b, 5) && bit(l7.b, 8) && bit(e1.c, 5);              // BMI1 AVX2 BMI2 LZCNT
  if (!cpu || !bit(l1.c, 27)) return false;  // OSXSAVE: xgetbv is usable
  return (xcr0() & 0x6) == 0x6;              // SSE and AVX state
}

// x86-64-v4: v3 plus AVX512F/DQ/CD/BW/VL, and the OS saving opmask and zmm state.
bool x86_v4() {
  if (!x86_v3()) return false;
  const Regs l7 = cpuid(7);
  const bool cpu = bit(l7.b, 16) && bit(l7.b, 17) && bit(l7.b, 28) && bit(l7.b, 30) && bit(l7.b, 31);
  return cpu && (xcr0() & 0xE6) == 0xE6;
}
#endif

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

int choose() {
  const auto& n = names();
  const char* env = std::getenv("NCPS_ISA");
  if (env != nullptr && *env != '\0') {
    const std::string want(env);
    for (size_t i = 0; i < n.size(); ++i)
      if (n[i] == want) {
        if (!cpu_supports(want))
          throw std::runtime_error("NCPS_ISA=" + want + ": this CPU (or OS) does not support it");
        return static_cast<int>(i);
      }
    throw std::runtime_error("NCPS_ISA=" + want + " is not a compiled kernel target (compiled: " + joined(n) + ")");
  }
  for (size_t i = 0; i < n.size(); ++i)
    if (cpu_supports(n[i])) return static_cast<int>(i);
  return static_cast<int>(n.size()) - 1;  // the last target is the baseline
}

}  // namespace

bool cpu_supports(const std::string& isa) {
#if defined(NCPS_X86)
  if (isa == "avx512") return x86_v4();
  if (isa == "avx2") return x86_v3();
  if (isa == "avx512_bf16") return x86_v4() && bit(cpuid(7, 1).a, 5);  // an extension, not a target
#else
  if (isa == "avx512_bf16") return false;
#endif
  return true;  // baseline, neon (part of every aarch64 CPU), native (the build machine's)
}

int chosen_isa() {
  static const int chosen = choose();
  return chosen;
}

std::vector<std::string> compiled_isas() { return names(); }

}  // namespace ncps::common
