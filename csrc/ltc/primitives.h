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

// The sizes of a primitive's inputs (in Input / MixedInput order, problem.h).
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

// Inputs: the 16 of Input. Output: states (B, T, N), the state after every step.
class LTCSequence : public LTCPrimitive {
 public:
  using LTCPrimitive::LTCPrimitive;
  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;
  const char* name() const override { return "LTCSequence"; }
};

// Inputs: LTCSequence's, its states and their cotangent. Outputs: kNumGradOutputs gradients, for
// x, h0, dt, sensory_w, sensory_sigma, sensory_mu, sensory_erev, w, sigma, mu, erev, cm, gleak, vleak.
class LTCSequenceGrad : public LTCPrimitive {
 public:
  using LTCPrimitive::LTCPrimitive;
  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;
  const char* name() const override { return "LTCSequenceGrad"; }
};

// Inputs: the 21 of MixedInput. Outputs: states and cells (B, T, N).
class LTCMixedSequence : public LTCPrimitive {
 public:
  using LTCPrimitive::LTCPrimitive;
  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;
  const char* name() const override { return "LTCMixedSequence"; }
};

// Inputs: LTCMixedSequence's, states, cells and their cotangents. Outputs: LTCSequenceGrad's 14,
// then lstm_input, lstm_input_w, lstm_input_b, lstm_recurrent_w, c0.
class LTCMixedSequenceGrad : public LTCPrimitive {
 public:
  using LTCPrimitive::LTCPrimitive;
  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;
  const char* name() const override { return "LTCMixedSequenceGrad"; }
};

}  // namespace ncps::ltc
