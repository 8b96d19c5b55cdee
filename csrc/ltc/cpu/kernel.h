// The fused LTC kernels (CPU, float32): the entry points that run inside the primitives'
// dispatched tasks. forward.cpp and backward.cpp define them, compiled once per instruction-set
// target, each for its tag type Isa (common/isa.h), from the kernel code of sequence.h (the LTC
// sequence), mixed.h (with the mixed-memory LSTM) and sample_step.h (one step of one sample).
#pragma once

#include "common/isa.h"
#include "common/storage.h"
#include "ltc/problem.h"

namespace ncps::ltc::cpu {

// The kernels for target Isa; run the chosen one with
//   common::dispatch([&]<class Isa>() { cpu::forward<Isa>(p, states); });
// forward: states (B, T, N), written in their storage type. backward: the gradients of every input (pre-zeroed) from
// the forward's states and their cotangent, read in their storage type. mixed_*: the same with the LSTM (states and
// cells, float32).
template <class Isa>
void forward(const Problem& p, const common::Sink& states);
template <class Isa>
void backward(const Problem& p, const common::Rows& states, const common::Rows& cot, const Grads& g);
template <class Isa>
void mixed_forward(const MixedProblem& m, float* states, float* cells);
// sample_forward: the new state (N) of one sample after one step; ws: 2 * max(sens->padded,
// rec->padded) + 4 * N floats of scratch.
template <class Isa>
void sample_forward(const SampleProblem& p, float* state, float* ws);
template <class Isa>
void mixed_backward(const MixedProblem& m, const float* states, const float* cells, const float* cot_s,
                    const float* cot_c, const Grads& g, const MixedGrads& mg);

}  // namespace ncps::ltc::cpu
