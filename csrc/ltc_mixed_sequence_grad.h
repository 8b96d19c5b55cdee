// LTCMixedSequenceGrad: fused backpropagation through time for LTCMixedSequence. Inputs: the 21
// (float32, contiguous) inputs of LTCMixedSequence, its outputs states and cells (B, T, N) and
// their cotangents (B, T, N). Outputs (19): gradients for x, h0, dt, sensory_w, sensory_sigma,
// sensory_mu, sensory_erev, w, sigma, mu, erev, cm, gleak, vleak, lstm_input, lstm_input_w,
// lstm_input_b, lstm_recurrent_w, c0 (the two masks get zeros in LTCMixedSequence::vjp).
#pragma once

#include <vector>

#include "mlx/ops.h"
#include "mlx/primitives.h"

namespace mx = mlx::core;

namespace ncps {

constexpr int kNumLTCMixedGradOutputs = 19;

// Output index of each LTCMixedSequence input in LTCMixedSequenceGrad's outputs, -1 for the masks.
int ltc_mixed_grad_output_index(int input);

// Builds the LTCMixedSequenceGrad node; `primals` are LTCMixedSequence's inputs.
std::vector<mx::array> ltc_mixed_sequence_grad(const std::vector<mx::array>& primals, const mx::array& states,
                                               const mx::array& cells, const mx::array& cot_states,
                                               const mx::array& cot_cells, int ode_unfolds, float epsilon,
                                               mx::Stream stream);

class LTCMixedSequenceGrad : public mx::Primitive {
 public:
  LTCMixedSequenceGrad(mx::Stream stream, int ode_unfolds, float epsilon)
      : mx::Primitive(stream), ode_unfolds_(ode_unfolds), epsilon_(epsilon) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;

  std::vector<mx::array> jvp(const std::vector<mx::array>& primals, const std::vector<mx::array>& tangents,
                             const std::vector<int>& argnums) override;
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override;
  std::pair<std::vector<mx::array>, std::vector<int>> vmap(const std::vector<mx::array>& inputs,
                                                           const std::vector<int>& axes) override;

  const char* name() const override { return "LTCMixedSequenceGrad"; }
  bool is_equivalent(const mx::Primitive& other) const override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;

 private:
  int ode_unfolds_;
  float epsilon_;
};

}  // namespace ncps
