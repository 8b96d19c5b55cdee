// The CfC problem as plain data (no MLX types): the plan of a fused CfC call, shared by the
// primitives, the op's validation and the kernels (cpu/kernel.h): input indices, per-unit sizes
// and the workspace layout.
//
// One kernel covers CfCCell (a single "unit" with a backbone MLP of any depth and widths) and
// WiredCfCCell (one backbone-free, masked unit per wiring layer, chained within each step), in
// the three modes, optionally preceded at every step by the mixed-memory LSTM.
//
// Layout. The user-facing arrays are batch-major: x (B, T, I), dt (B, T), states (B, T, N).
// Everything the kernels keep is time-major, (T, B, .), so that one step of the batch is one
// contiguous (B, .) matrix and the products over all (t, b) rows (the hoisted input products
// and the weight gradients) are single GEMMs. The forward saves, in one float32 workspace
// output `ws`, every per-step activation the backward needs; the backward recomputes nothing
// but cheap elementwise derivatives. A forward nobody differentiates keeps only a ring of the
// last steps' rows instead (Plan::ws_steps, hh_steps): the activations of a call grow with B*T,
// 1.35 to 2.3 KB per row-step, and past the caches writing them cost a forward up to a third.
// A half model (bfloat16 or float16 outputs) computes each step in that float32 ring too and
// saves the activations the backward reads as copies in its own half type (Plan::act, the *_sav
// offsets): half the memory, the backward widening them as it reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/storage.h"

namespace ncps::cfc {

// The modes and the backbone activations: one table each, (enumerator, name) in code order.
// The enums, their counts and the name arrays below are derived from them. The names and codes
// are the Python side's (ncps.cells.cfc.MODES, ncps.activations.ACTIVATIONS, in that order) and
// the GPU kernel bodies' MODE / ACT (kernels/cfc_*.inc); ncps._ext.cfc_modes() and
// cfc_activations() export the names and tests/kernels/cfc/test_option_tables.py checks that the
// three sides agree.
// clang-format off
#define NCPS_CFC_MODES(X) \
  X(DEFAULT, "default")   \
  X(NO_GATE, "no_gate")   \
  X(PURE, "pure")
#define NCPS_CFC_ACTIVATIONS(X) \
  X(LECUN_TANH, "lecun_tanh")   \
  X(TANH, "tanh")               \
  X(RELU, "relu")               \
  X(SILU, "silu")               \
  X(GELU, "gelu")               \
  X(SIGMOID, "sigmoid")         \
  X(SOFTPLUS, "softplus")
// clang-format on

#define NCPS_CFC_ENUMERATOR(e, name) e,
#define NCPS_CFC_NAME(e, name) name,
enum Mode : int { NCPS_CFC_MODES(NCPS_CFC_ENUMERATOR) kNumModes };
enum Act : int { NCPS_CFC_ACTIVATIONS(NCPS_CFC_ENUMERATOR) kNumActs };
inline constexpr const char* kModeNames[kNumModes] = {NCPS_CFC_MODES(NCPS_CFC_NAME)};
inline constexpr const char* kActNames[kNumActs] = {NCPS_CFC_ACTIVATIONS(NCPS_CFC_NAME)};
#undef NCPS_CFC_ENUMERATOR
#undef NCPS_CFC_NAME

// What the primitive is configured with (everything but array shapes).
struct Config {
  int mode = DEFAULT;
  int act = LECUN_TANH;  // Act
  bool mixed = false;
  std::vector<int> unit_sizes;             // hidden neurons of each unit (sum = N)
  std::vector<std::vector<int>> backbone;  // backbone widths of each unit
  std::vector<int> masked;                 // 1 if the unit's ff1/ff2 weights are masked
  bool step = false;  // one streaming step: x (B, I), dt (B, 1), states (B, N) (T = 1, same memory)
  bool operator==(const Config& o) const {
    return mode == o.mode && act == o.act && mixed == o.mixed && unit_sizes == o.unit_sizes && backbone == o.backbone &&
           masked == o.masked && step == o.step;
  }
};

struct Unit {
  int n = 0, off = 0, in = 0;  // neurons, column offset in the state, input features
  int K = 0;                   // first layer's input width: in + n
  std::vector<int> widths;     // backbone widths
  int head_in = 0;             // heads' input width
  int hn = 0;                  // heads GEMM width: 4n (n in pure mode)
  int hs = 0;                  // stored heads width: 4n ([f1, f2, t_a, g]) or 2n ([f1, e])
  // input indices
  std::vector<int> bw, bb;                                         // backbone weights / biases
  int head_w[4] = {-1, -1, -1, -1}, head_b[4] = {-1, -1, -1, -1};  // ff1, ff2, time_a, time_b
  int w_tau = -1, A = -1, mask = -1;
  // workspace offsets (floats)
  std::vector<int64_t> a_off, z_off;  // backbone pre-/post-activations, (T, B, width)
  int64_t heads_off = 0;              // (T, B, hs)
  // where the backward reads them: the same arrays, or their half copies (Plan::act)
  std::vector<int64_t> a_sav, z_sav;
  int64_t heads_sav = 0;
};

struct Plan {
  Config cfg;
  int B = 0, T = 0, I = 0, N = 0;
  // Slots along time of the per-step activations (backbone, heads, LSTM gates and input) and of
  // the hidden states hh: T and T + 1 when the backward will read them; a ring otherwise, step t
  // in slot t % ws_steps (hh: t % hh_steps).
  int ws_steps = 0, hh_steps = 0;
  int n_inputs = 0;
  int c0 = -1, lwx = -1, lb = -1, lwh = -1;  // mixed-memory LSTM inputs
  std::vector<Unit> units;
  // workspace offsets (floats)
  int64_t xt_off = 0, dt_off = 0, hh_off = 0, hl_off = -1, gates_off = -1, cc_off = -1, ws_size = 0;
  // The storage of the activations the backward reads (hidden states, backbone, heads, LSTM gates
  // and output): float32 in the working arrays themselves, or half copies at the *_sav offsets
  // (a half array of n elements takes (n + 1) / 2 floats).
  common::Storage act = common::Storage::f32;
  int64_t hh_sav = 0, hl_sav = -1, gates_sav = -1;
  bool copies() const { return act != common::Storage::f32; }
  // The storage of the backward's per-step gradients (backward_scratch_size): bfloat16 for a
  // bfloat16 model, else float32. float16's range would not do: with a loss scaled by 2^15 the
  // gradients of a 1e-9 loss's activations (~1e-6) are float16 subnormals, and the step lost 8 %
  // of its size (tests/layers/test_precision.py); bfloat16 has float32's range.
  common::Storage grads = common::Storage::f32;
};

// Builds the plan: input indices, per-unit sizes, workspace layout. Input order:
//   x (B,T,I), h0 (B,N), dt (B,T), [c0 (B,N), lstm_wx (4N,I), lstm_b (4N,), lstm_wh (4N,N)],
//   then per unit: backbone (W (U_l, U_{l-1}), b (U_l,)) per layer, then the heads
//   default/no_gate: ff1.W, ff1.b, ff2.W, ff2.b, time_a.W, time_a.b, time_b.W, time_b.b
//   pure:            ff1.W, ff1.b, w_tau (1,n), A (1,n)
//   and the mask (n, head_in) when masked. Weights are in Linear layout (out, in).
// A forward-only plan (saved false) rings the activations over hoist_block(B, T) steps and the
// hidden states over two. A saved plan of a half model (act bfloat16 or float16) rings them too
// and adds their half copies for the backward.
Plan make_plan(const Config& cfg, int B, int T, int I, bool saved = true, common::Storage act = common::Storage::f32);

// Steps of the hoisted input product done at once by a forward over the whole batch: about 256
// rows (see cpu/forward.cpp).
inline int hoist_block(int B, int T) {
  const int s = 256 / B;
  return s < 1 ? 1 : (s > T ? T : s);
}

// Expected shape of every input (for validation and output_shapes).
std::vector<std::vector<int>> input_shapes(const Plan& p);
std::vector<std::string> input_names(const Plan& p);

// Multiply-adds of one step of the whole batch row (for the threading decision).
double step_flops(const Plan& p);

// Floats of scratch the backward kernel (cpu::backward) needs besides the workspace: the
// gradients of every step's activations, in Plan::grads.
int64_t backward_scratch_size(const Plan& p);

}  // namespace ncps::cfc
