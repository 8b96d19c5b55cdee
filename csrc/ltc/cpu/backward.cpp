// The LTC backward (BPTT) kernels' entry points (kernel.h) for the target this file is compiled
// for (once per instruction set, common/isa.h): the sequence and the mixed-memory sequence.
#include "ltc/cpu/kernel.h"
#include "ltc/cpu/mixed.h"
#include "ltc/cpu/sequence.h"

namespace ncps::ltc::cpu {

template <>
void backward<NCPS_ISA_TAG>(const Problem& p, const common::Rows& states, const common::Rows& cot, const Grads& g) {
  NCPS_ISA::backward(p, states, cot, g);
}

template <>
void mixed_backward<NCPS_ISA_TAG>(const MixedProblem& m, const float* states, const float* cells, const float* cot_s,
                                  const float* cot_c, const Grads& g, const MixedGrads& mg) {
  NCPS_ISA::mixed_backward(m, states, cells, cot_s, cot_c, g, mg);
}

}  // namespace ncps::ltc::cpu
