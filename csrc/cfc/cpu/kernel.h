// The fused CfC kernels (CPU, float32): the two compute functions that run inside the
// primitives' dispatched tasks (forward.cpp, backward.cpp). Both files are compiled once per
// instruction-set target, each defining the kernels for its tag type Isa (common/isa.h); callers
// run the chosen target's with common::dispatch([&]<class Isa>() { cpu::forward<Isa>(...); }).
#pragma once

#include <cstdint>
#include <vector>

#include "cfc/problem.h"
#include "common/isa.h"
#include "common/storage.h"

namespace ncps::cfc::cpu {

// Below ~2 MFLOP (~20 us on one core) waking a second thread does not pay.
constexpr double kMinParallelFlops = 2e6;

// Forward: states (B,T,N) and cells (B,T,N; the LSTM cell state after every step; data null
// without mixed memory), each written in its storage type; ws (ws_size), float32: every step's
// activations, or the ring of a forward-only plan (p.ws_steps < T).
template <class Isa>
void forward(const Plan& p, const std::vector<const float*>& in, const common::Sink& states, const common::Sink& cells,
             float* ws);

// Backward: grads[i] has the shape of input i (the mask's gradient is zero); in[0] (x) is not
// read (may be null); the cotangents (B,T,N) are read in their storage type, a row at a time. `scratch` holds
// backward_scratch_size(p) floats (problem.h). Without need_dx the x gradient, without
// need_weights every parameter gradient (the big post-loop products), without need_dt the dt
// gradient (and, after folded time heads, its recomputation) is left unwritten; h0 and c0
// always get theirs.
template <class Isa>
void backward(const Plan& p, const std::vector<const float*>& in, const float* ws, const common::Rows& dstates,
              const common::Rows& dcells, const std::vector<float*>& grads, float* scratch, bool need_dx = true,
              bool need_weights = true, bool need_dt = true);

}  // namespace ncps::cfc::cpu
