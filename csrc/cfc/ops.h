// The CfC ops bound to Python (ncps._ext.cfc_sequence, cfc_step_now).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mlx/array.h"
#include "mlx/utils.h"

namespace ncps::cfc {

namespace mx = mlx::core;

// The op. Returns [states (B, T, N)] or, with the LSTM, [states, cells (B, T, N)] (the LSTM cell
// state after every step, so that a layer with variable lengths can take each sequence's own last one).
//   x (B, T, I), h0 (B, N), dt (B, T); params: per unit, the backbone (W, b) pairs, then the heads
//   (ff1.W, ff1.b, ff2.W, ff2.b, time_a.W, time_a.b, time_b.W, time_b.b; pure: ff1.W, ff1.b,
//   w_tau, A), then the mask when masked (see plan.h for shapes);
//   lstm: [input_map.weight (4N, I), input_map.bias (4N,), recurrent_map.weight (4N, N)] and c0
//   (B, N) for mixed memory.
// Validates every shape and option before building the graph (std::invalid_argument -> ValueError).
std::vector<mx::array> cfc_sequence(const mx::array& x, const mx::array& h0, const mx::array& dt,
                                    const std::vector<mx::array>& params, const std::vector<int>& unit_sizes,
                                    const std::vector<std::vector<int>>& backbone, const std::vector<bool>& masked,
                                    const std::string& mode, const std::string& activation,
                                    const std::optional<std::vector<mx::array>>& lstm,
                                    const std::optional<mx::array>& c0, mx::StreamOrDevice s = {});

// One streaming inference step computed immediately on the calling thread (no graph, no
// gradient): x (B, I), h0 (B, N), dt (B, 1); returns the evaluated output (the state's columns
// [readout_start, readout_start + readout_size)) and new state (B, N), in float32.
// Same parameters as cfc_sequence, without mixed memory.
std::pair<mx::array, mx::array> cfc_step_now(const mx::array& x, const mx::array& h0, const mx::array& dt,
                                             const std::vector<mx::array>& params, const std::vector<int>& unit_sizes,
                                             const std::vector<std::vector<int>>& backbone,
                                             const std::vector<bool>& masked, const std::string& mode,
                                             const std::string& activation, int readout_start, int readout_size);

}  // namespace ncps::cfc
