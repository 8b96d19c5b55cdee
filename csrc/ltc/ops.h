// The LTC ops bound to Python (ncps._ext.ltc_sequence, ltc_mixed_sequence): validation, float32
// inputs, the CPU stream, and the primitive's graph node.
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "ltc/problem.h"
#include "mlx/array.h"
#include "mlx/utils.h"

namespace ncps::ltc {

namespace mx = mlx::core;

// The graph node of LTCSequence on its 16 inputs, or of LTCMixedSequence on its 21, in Input order
// (problem.h): [states] or [states, cells]. Validates the shapes (std::invalid_argument naming
// the argument). Reads and writes float32, bfloat16 and float16 arrays as they are (other dtypes
// are converted to float32), computes in float32, and returns the promoted dtype of every input
// but dt (float32 where that is none of the three).
std::vector<mx::array> sequence_node(std::vector<mx::array> in, int ode_unfolds, float epsilon, mx::StreamOrDevice s);

// states (B, T, N) = state after every step. Shapes: x (B, T, I), h0 (B, N), dt (B, T),
// sensory_* (I, N), w/sigma/mu/erev/mask (N, N) [source, destination], cm/gleak/vleak (N,).
inline mx::array ltc_sequence(const mx::array& x, const mx::array& h0, const mx::array& dt, const mx::array& sensory_w,
                              const mx::array& sensory_sigma, const mx::array& sensory_mu,
                              const mx::array& sensory_erev, const mx::array& sensory_mask, const mx::array& w,
                              const mx::array& sigma, const mx::array& mu, const mx::array& erev, const mx::array& mask,
                              const mx::array& cm, const mx::array& gleak, const mx::array& vleak, int ode_unfolds,
                              float epsilon, mx::StreamOrDevice s = {}) {
  return sequence_node({x, h0, dt, sensory_w, sensory_sigma, sensory_mu, sensory_erev, sensory_mask, w, sigma, mu, erev,
                        mask, cm, gleak, vleak},
                       ode_unfolds, epsilon, s)[0];
}

// (states, cells), each (B, T, N): the LTC state and the LSTM cell state after every step.
// Every step t: z = lstm_input[:, t] W_x^T + b + v W_h^T, [i, ig, fg, og] = split(z, 4),
// c = c sigmoid(fg + 1) + tanh(i) sigmoid(ig), h' = tanh(c) sigmoid(og), then the LTC step of
// ltc_sequence from state h' with mapped input x[:, t] and dt[:, t] gives v (dt <= 0: v = h').
// Extra shapes: lstm_input (B, T, F), lstm_input_w (4N, F), lstm_input_b (4N,),
// lstm_recurrent_w (4N, N), c0 (B, N).
inline std::pair<mx::array, mx::array> ltc_mixed_sequence(
    const mx::array& x, const mx::array& h0, const mx::array& dt, const mx::array& sensory_w,
    const mx::array& sensory_sigma, const mx::array& sensory_mu, const mx::array& sensory_erev,
    const mx::array& sensory_mask, const mx::array& w, const mx::array& sigma, const mx::array& mu,
    const mx::array& erev, const mx::array& mask, const mx::array& cm, const mx::array& gleak, const mx::array& vleak,
    const mx::array& lstm_input, const mx::array& lstm_input_w, const mx::array& lstm_input_b,
    const mx::array& lstm_recurrent_w, const mx::array& c0, int ode_unfolds, float epsilon, mx::StreamOrDevice s = {}) {
  auto out = sequence_node(
      {x,    h0, dt,    sensory_w, sensory_sigma, sensory_mu,   sensory_erev, sensory_mask,     w, sigma, mu, erev,
       mask, cm, gleak, vleak,     lstm_input,    lstm_input_w, lstm_input_b, lstm_recurrent_w, c0},
      ode_unfolds, epsilon, s);
  return {out[0], out[1]};
}

// One LTC cell step for streaming inference, computed immediately on the calling thread (no graph
// node, no gradient, no hand-off to a stream's worker thread): (output (B, motor), state (B, N)).
// x (B, I) raw inputs, h0 (B, N), dt (B, 1); params = the cell's 13 raw solver parameters in the
// order of ltc_sequence (sensory_w, sensory_sigma, sensory_mu, sensory_erev, sensory_mask, w,
// sigma, mu, erev, mask, cm, gleak, vleak); with implicit_constraints, softplus of w, sensory_w,
// cm and gleak is applied here. The input mapping x * input_w + input_b and the output mapping
// state[:, :motor] * output_w + output_b use the arrays given (none: skipped). Prepares the
// parameters at every call: a control loop keeps an LTCStepCore (ncps._ext.LTCStep) instead.
std::pair<mx::array, mx::array> ltc_step_now(const mx::array& x, const mx::array& h0, const mx::array& dt,
                                             const std::vector<mx::array>& params,
                                             const std::optional<mx::array>& input_w,
                                             const std::optional<mx::array>& input_b,
                                             const std::optional<mx::array>& output_w,
                                             const std::optional<mx::array>& output_b, int motor_size, int ode_unfolds,
                                             float epsilon, bool implicit_constraints);

// The prepared streaming step of ltc_step_now (bound as ncps._ext.LTCStep through
// common/stream_step.h): the parameters validated (std::invalid_argument naming the wrong one),
// constrained and turned into synapse lists once, for inputs of `input_size` features.
class LTCStepCore {
 public:
  LTCStepCore(const std::vector<mx::array>& params, const std::optional<mx::array>& input_w,
              const std::optional<mx::array>& input_b, const std::optional<mx::array>& output_w,
              const std::optional<mx::array>& output_b, int motor_size, int ode_unfolds, float epsilon,
              bool implicit_constraints, int input_size);
  int input_size() const { return I_; }
  int state_size() const { return N_; }
  // The promoted dtype of the parameters and mappings (the step computes with float32 copies).
  mx::Dtype param_dtype() const { return dtype_; }
  // One step from float32 row-contiguous host data x (B, I) raw inputs, h (B, N), dt (B,):
  // the evaluated float32 (output, new state).
  std::pair<mx::array, mx::array> run(int B, const float* x, const float* h, const float* dt);

 private:
  mx::array readout(const mx::array& state) const;  // (B, motor): the output mapping of the motor columns

  int I_ = 0, N_ = 0, M_ = 0, K_ = 1;
  float eps_ = 0.0f;
  mx::Dtype dtype_ = mx::float32;
  SynapseList sens_, rec_;
  FlatSynapses sens_flat_, rec_flat_;                    // the same, for the single-sample kernel (B = 1)
  std::vector<float> cm_, gl_, vl_, iw_, ib_, ow_, ob_;  // mappings empty when absent
};

}  // namespace ncps::ltc
