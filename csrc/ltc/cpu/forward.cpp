// The LTC forward kernels' entry points (kernel.h) for the target this file is compiled for (once
// per instruction set, common/isa.h): the sequence, the single-sample step and the mixed-memory
// sequence.
#include "ltc/cpu/kernel.h"
#include "ltc/cpu/mixed.h"
#include "ltc/cpu/sample_step.h"
#include "ltc/cpu/sequence.h"

namespace ncps::ltc::cpu {

template <>
void forward<NCPS_ISA_TAG>(const Problem& p, const common::Sink& states) {
  NCPS_ISA::forward(p, states);
}

template <>
void sample_forward<NCPS_ISA_TAG>(const SampleProblem& p, float* state, float* ws) {
  NCPS_ISA::sample_forward(p, state, ws);
}

template <>
void mixed_forward<NCPS_ISA_TAG>(const MixedProblem& m, float* states, float* cells) {
  NCPS_ISA::mixed_forward(m, states, cells);
}

}  // namespace ncps::ltc::cpu
