// LTCSequenceGrad: fused backpropagation through time for LTCSequence. Inputs: the 16 (float32,
// contiguous) inputs of LTCSequence, its output states (B, T, N) and the cotangent (B, T, N).
// Outputs (14): gradients for x, h0, dt, sensory_w, sensory_sigma, sensory_mu, sensory_erev, w,
// sigma, mu, erev, cm, gleak, vleak (the two masks get zeros in LTCSequence::vjp, not here).
#pragma once

#include <vector>

#include "mlx/ops.h"
#include "mlx/primitives.h"

namespace mx = mlx::core;

namespace ncps {

constexpr int kNumLTCGradOutputs = 14;

// Output index of each LTCSequence input in LTCSequenceGrad's outputs, -1 for the masks.
int ltc_grad_output_index(int input);

// Builds the LTCSequenceGrad node; `primals` are LTCSequence's inputs.
std::vector<mx::array> ltc_sequence_grad(const std::vector<mx::array>& primals, const mx::array& states,
                                         const mx::array& cotangent, int ode_unfolds, float epsilon,
                                         mx::Stream stream);

class LTCSequenceGrad : public mx::Primitive {
 public:
  LTCSequenceGrad(mx::Stream stream, int ode_unfolds, float epsilon)
      : mx::Primitive(stream), ode_unfolds_(ode_unfolds), epsilon_(epsilon) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;

  std::vector<mx::array> jvp(const std::vector<mx::array>& primals, const std::vector<mx::array>& tangents,
                             const std::vector<int>& argnums) override;
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override;
  std::pair<std::vector<mx::array>, std::vector<int>> vmap(const std::vector<mx::array>& inputs,
                                                           const std::vector<int>& axes) override;

  const char* name() const override { return "LTCSequenceGrad"; }
  bool is_equivalent(const mx::Primitive& other) const override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;

 private:
  int ode_unfolds_;
  float epsilon_;
};

}  // namespace ncps
