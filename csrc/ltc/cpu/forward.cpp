// The LTC kernels' entry points (types.h) for the target this file is compiled for (once per
// instruction set, common/isa.h).
#include "ltc/cpu/mixed.h"
#include "ltc/cpu/sample_step.h"
#include "ltc/cpu/sequence.h"

namespace ncps::ltc::cpu {

template <>
void forward<NCPS_ISA_TAG>(const Problem& p, float* states) {
  NCPS_ISA::forward(p, states);
}

template <>
void backward<NCPS_ISA_TAG>(const Problem& p, const float* states, const float* cot, const Grads& g) {
  NCPS_ISA::backward(p, states, cot, g);
}

template <>
void sample_forward<NCPS_ISA_TAG>(const SampleProblem& p, float* state, float* ws) {
  NCPS_ISA::sample_forward(p, state, ws);
}

template <>
void mixed_forward<NCPS_ISA_TAG>(const MixedProblem& m, float* states, float* cells) {
  NCPS_ISA::mixed_forward(m, states, cells);
}

template <>
void mixed_backward<NCPS_ISA_TAG>(const MixedProblem& m, const float* states, const float* cells, const float* cot_s,
                                  const float* cot_c, const Grads& g, const MixedGrads& mg) {
  NCPS_ISA::mixed_backward(m, states, cells, cot_s, cot_c, g, mg);
}

}  // namespace ncps::ltc::cpu
