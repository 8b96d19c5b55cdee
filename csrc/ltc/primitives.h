// The LTC primitives: LTCSequence (the whole sequence, T steps x K semi-implicit sub-steps, as
// ncps.ltc.ltc_sequence) and LTCMixedSequence (an LSTM before every LTC step, as the official
// layers with mixed_memory=True), each with a fused BPTT primitive as its vjp. Kernels in cpu/
// (entry points in cpu/kernel.h).
#pragma once

#include <vector>

#include "common/primitive.h"
#include "ltc/problem.h"
#include "mlx/array.h"

namespace ncps::ltc {

namespace mx = mlx::core;

// Gradient outputs: one per input except the two masks (they get zeros in the vjp).
constexpr int kNumGradOutputs = kNumInputs - 2;
constexpr int kNumMixedGradOutputs = kNumGradOutputs + kNumLSTMInputs;

// The sizes of a primitive's inputs (in Input order, problem.h).
Dims dims_of(const std::vector<mx::array>& in);
MixedDims mixed_dims_of(const std::vector<mx::array>& in);

// The two attributes every LTC primitive carries.
class LTCPrimitive : public common::Primitive {
 public:
  LTCPrimitive(mx::Stream stream, int ode_unfolds, float epsilon)
      : common::Primitive(stream), ode_unfolds_(ode_unfolds), epsilon_(epsilon) {}
  bool same_config(const mx::Primitive& other) const override;

 protected:
  int ode_unfolds_;
  float epsilon_;
};

// The forward primitive: LTCSequence (kMixed false) and LTCMixedSequence (true, the LSTM before
// every step) differ in their arrays and kernels, not in their interface. Inputs: the kInputs
// first of Input (problem.h). Outputs: states (B, T, N), the state after every step, and with
// the LSTM cells (B, T, N), its cell state after every step.
template <bool kMixed>
class LTCForward : public LTCPrimitive {
 public:
  static constexpr int kInputs = kMixed ? kNumMixedInputs : kNumInputs;
  static constexpr int kOutputs = kMixed ? 2 : 1;

  using LTCPrimitive::LTCPrimitive;
  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;
  const char* name() const override { return kMixed ? "LTCMixedSequence" : "LTCSequence"; }
};

// The fused BPTT primitive of LTCForward<kMixed> (its vjp). Inputs: the forward's, its outputs,
// then their cotangents. Outputs: one gradient per input but the two masks, in input order: for
// x, h0, dt, sensory_w, sensory_sigma, sensory_mu, sensory_erev, w, sigma, mu, erev, cm, gleak,
// vleak, and with the LSTM lstm_input, lstm_input_w, lstm_input_b, lstm_recurrent_w, c0.
template <bool kMixed>
class LTCBackward : public LTCPrimitive {
 public:
  static constexpr int kInputs = LTCForward<kMixed>::kInputs + 2 * LTCForward<kMixed>::kOutputs;
  static constexpr int kOutputs = kMixed ? kNumMixedGradOutputs : kNumGradOutputs;

  using LTCPrimitive::LTCPrimitive;
  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;
  const char* name() const override { return kMixed ? "LTCMixedSequenceGrad" : "LTCSequenceGrad"; }
};

// Both variants are instantiated once, in primitives.cpp.
extern template class LTCForward<false>;
extern template class LTCForward<true>;
extern template class LTCBackward<false>;
extern template class LTCBackward<true>;

using LTCSequence = LTCForward<false>;
using LTCSequenceGrad = LTCBackward<false>;
using LTCMixedSequence = LTCForward<true>;
using LTCMixedSequenceGrad = LTCBackward<true>;

}  // namespace ncps::ltc
