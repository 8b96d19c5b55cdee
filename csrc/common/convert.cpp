// The conversions of common/storage.h for the baseline files: the loops of convert.h, compiled
// once per instruction-set target.
#include "common/convert.h"

namespace ncps::common::cpu {

template <>
void widen<NCPS_ISA_TAG>(Storage s, const void* src, int64_t n, float* dst) {
  widen_run(s, src, n, dst);
}

template <>
void narrow<NCPS_ISA_TAG>(Storage s, const float* src, int64_t n, void* dst, bool bf16_insn) {
  narrow_run(s, src, n, dst, bf16_insn);
}

}  // namespace ncps::common::cpu
