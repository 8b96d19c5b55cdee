// The CfC ops bound to Python (ncps._ext.cfc_sequence, cfc_step_now).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cfc/problem.h"
#include "mlx/array.h"
#include "mlx/utils.h"

namespace ncps::cfc {

namespace mx = mlx::core;

// The op. Returns [states (B, T, N)] or, with the LSTM, [states, cells (B, T, N)] (the LSTM cell
// state after every step, so that a layer with variable lengths can take each sequence's own last one).
//   x (B, T, I), h0 (B, N), dt (B, T); params: per unit, the backbone (W, b) pairs, then the heads
//   (ff1.W, ff1.b, ff2.W, ff2.b, time_a.W, time_a.b, time_b.W, time_b.b; pure: ff1.W, ff1.b,
//   w_tau, A), then the mask when masked (see problem.h for shapes);
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

// A prepared streaming step (bound as ncps._ext.CfCStep through common/stream_step.h): the
// parameters of cfc_step_now validated once and kept as float32 host copies, so that a step
// costs the kernel, not the argument handling. `input_size` is I; the state has
// sum(unit_sizes) columns.
class CfCStepCore {
 public:
  CfCStepCore(const std::vector<mx::array>& params, const std::vector<int>& unit_sizes,
              const std::vector<std::vector<int>>& backbone, const std::vector<bool>& masked, const std::string& mode,
              const std::string& activation, int input_size, int readout_start, int readout_size);
  int input_size() const { return I_; }
  int state_size() const { return N_; }
  // The promoted dtype of the parameters (the step computes with float32 copies).
  mx::Dtype param_dtype() const { return dtype_; }
  // One step from float32 row-contiguous host data x (B, I), h (B, N), dt (B,): the evaluated
  // float32 (output (B, readout_size), new state (B, N)).
  std::pair<mx::array, mx::array> run(int B, const float* x, const float* h, const float* dt);

 private:
  Config cfg_;
  Plan plan_;  // for batch plan_.B; rebuilt when the batch changes
  int I_ = 0, N_ = 0, r0_ = 0, rn_ = 0;
  mx::Dtype dtype_ = mx::float32;
  std::vector<std::vector<float>> params_;
};

}  // namespace ncps::cfc
