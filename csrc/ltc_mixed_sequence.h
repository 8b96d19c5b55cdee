// LTCMixedSequence: the mixed-memory LTC sequence (an LSTM before every LTC step, as the official
// ncps layers with mixed_memory=True) as one MLX primitive; its vjp builds LTCMixedSequenceGrad
// (ltc_mixed_sequence_grad.h). Kernels in ltc_mixed_kernel.h.
#pragma once

#include <utility>
#include <vector>

#include "ltc_sequence.h"
#include "mlx/ops.h"
#include "mlx/primitives.h"

namespace mx = mlx::core;

namespace ncps {

// Inputs of the primitive: LTCSequence's 16 (LTCInput order), then the LSTM's.
enum LTCMixedInput : int {
  kLstmInput = kNumLTCInputs,  // (B, T, F) LSTM input of every step
  kLstmInputW,                 // (4N, F)   input_map.weight
  kLstmInputB,                 // (4N,)     input_map.bias
  kLstmRecurrentW,             // (4N, N)   recurrent_map.weight
  kC0,                         // (B, N)    initial cell state
  kNumLTCMixedInputs
};

// (states, cells), each (B, T, N): the LTC state and the LSTM cell state after every step.
// Every step t: z = lstm_input[:, t] W_x^T + b + v W_h^T, [i, ig, fg, og] = split(z, 4),
// c = c sigmoid(fg + 1) + tanh(i) sigmoid(ig), h' = tanh(c) sigmoid(og), then the LTC step of
// ltc_sequence from state h' with mapped input x[:, t] and dt[:, t] gives v (dt <= 0: v = h').
// Validates shapes (std::invalid_argument naming the argument); computes in float32 and returns
// x's floating dtype (float32 for non-floating x).
std::pair<mx::array, mx::array> ltc_mixed_sequence(
    const mx::array& x, const mx::array& h0, const mx::array& dt, const mx::array& sensory_w,
    const mx::array& sensory_sigma, const mx::array& sensory_mu, const mx::array& sensory_erev,
    const mx::array& sensory_mask, const mx::array& w, const mx::array& sigma, const mx::array& mu,
    const mx::array& erev, const mx::array& mask, const mx::array& cm, const mx::array& gleak,
    const mx::array& vleak, const mx::array& lstm_input, const mx::array& lstm_input_w,
    const mx::array& lstm_input_b, const mx::array& lstm_recurrent_w, const mx::array& c0, int ode_unfolds,
    float epsilon, mx::StreamOrDevice s = {});

class LTCMixedSequence : public mx::Primitive {
 public:
  LTCMixedSequence(mx::Stream stream, int ode_unfolds, float epsilon)
      : mx::Primitive(stream), ode_unfolds_(ode_unfolds), epsilon_(epsilon) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;

  std::vector<mx::array> jvp(const std::vector<mx::array>& primals, const std::vector<mx::array>& tangents,
                             const std::vector<int>& argnums) override;
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override;
  std::pair<std::vector<mx::array>, std::vector<int>> vmap(const std::vector<mx::array>& inputs,
                                                           const std::vector<int>& axes) override;

  const char* name() const override { return "LTCMixedSequence"; }
  bool is_equivalent(const mx::Primitive& other) const override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;

 private:
  int ode_unfolds_;
  float epsilon_;
};

}  // namespace ncps
