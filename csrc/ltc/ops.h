// The LTC ops bound to Python (ncps._ext.ltc_sequence, ltc_mixed_sequence): validation, float32
// inputs, the CPU stream, and the primitive's graph node.
#pragma once

#include <utility>

#include "mlx/array.h"
#include "mlx/utils.h"

namespace ncps::ltc {

namespace mx = mlx::core;

// states (B, T, N) = state after every step. Shapes: x (B, T, I), h0 (B, N), dt (B, T),
// sensory_* (I, N), w/sigma/mu/erev/mask (N, N) [source, destination], cm/gleak/vleak (N,).
// Validates shapes (std::invalid_argument naming the argument); computes in float32 and returns
// x's floating dtype (float32 for non-floating x).
mx::array ltc_sequence(const mx::array& x, const mx::array& h0, const mx::array& dt, const mx::array& sensory_w,
                       const mx::array& sensory_sigma, const mx::array& sensory_mu, const mx::array& sensory_erev,
                       const mx::array& sensory_mask, const mx::array& w, const mx::array& sigma, const mx::array& mu,
                       const mx::array& erev, const mx::array& mask, const mx::array& cm, const mx::array& gleak,
                       const mx::array& vleak, int ode_unfolds, float epsilon, mx::StreamOrDevice s = {});

// (states, cells), each (B, T, N): the LTC state and the LSTM cell state after every step.
// Every step t: z = lstm_input[:, t] W_x^T + b + v W_h^T, [i, ig, fg, og] = split(z, 4),
// c = c sigmoid(fg + 1) + tanh(i) sigmoid(ig), h' = tanh(c) sigmoid(og), then the LTC step of
// ltc_sequence from state h' with mapped input x[:, t] and dt[:, t] gives v (dt <= 0: v = h').
// Extra shapes: lstm_input (B, T, F), lstm_input_w (4N, F), lstm_input_b (4N,),
// lstm_recurrent_w (4N, N), c0 (B, N).
std::pair<mx::array, mx::array> ltc_mixed_sequence(
    const mx::array& x, const mx::array& h0, const mx::array& dt, const mx::array& sensory_w,
    const mx::array& sensory_sigma, const mx::array& sensory_mu, const mx::array& sensory_erev,
    const mx::array& sensory_mask, const mx::array& w, const mx::array& sigma, const mx::array& mu,
    const mx::array& erev, const mx::array& mask, const mx::array& cm, const mx::array& gleak,
    const mx::array& vleak, const mx::array& lstm_input, const mx::array& lstm_input_w,
    const mx::array& lstm_input_b, const mx::array& lstm_recurrent_w, const mx::array& c0, int ode_unfolds,
    float epsilon, mx::StreamOrDevice s = {});

}  // namespace ncps::ltc
