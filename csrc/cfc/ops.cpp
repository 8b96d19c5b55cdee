// The CfC ops bound to Python: cfc_sequence (the graph node) and cfc_step_now (an immediate
// streaming step), with the validation they share.
#include "cfc/ops.h"

#include <climits>
#include <cstdint>
#include <memory>
#include <stdexcept>

#include "cfc/cpu/kernel.h"
#include "cfc/primitives.h"
#include "common/isa.h"
#include "common/ops.h"
#include "mlx/ops.h"
#include "mlx/transforms.h"

namespace ncps::cfc {

namespace {

using common::shape_str;

[[noreturn]] void bad(const std::string& msg) { throw std::invalid_argument("cfc_sequence: " + msg); }

// The code of `name` in a name table (problem.h), or -1.
template <int N>
int code_of(const char* const (&names)[N], const std::string& name) {
  for (int i = 0; i < N; ++i)
    if (name == names[i]) return i;
  return -1;
}

// The table's names for a message: each between `quote`s, separated by ", " and `last` before the last.
template <int N>
std::string listed(const char* const (&names)[N], const std::string& quote, const std::string& last) {
  std::string s;
  for (int i = 0; i < N; ++i) s += (i == 0 ? "" : i == N - 1 ? last : ", ") + quote + names[i] + quote;
  return s;
}

Config make_config(const std::vector<int>& unit_sizes, const std::vector<std::vector<int>>& backbone,
                   const std::vector<bool>& masked, const std::string& mode, const std::string& activation,
                   bool mixed) {
  Config c;
  c.mode = code_of(kModeNames, mode);
  if (c.mode < 0) bad("mode must be " + listed(kModeNames, "'", " or ") + ", got '" + mode + "'");
  c.act = code_of(kActNames, activation);
  if (c.act < 0) bad("activation must be one of " + listed(kActNames, "", ", ") + "; got '" + activation + "'");
  if (unit_sizes.empty()) bad("unit_sizes must list at least one unit");
  for (int n : unit_sizes)
    if (n <= 0) bad("unit_sizes must be positive, got " + shape_str(unit_sizes));
  if (backbone.size() != unit_sizes.size())
    bad("backbone must give one list of widths per unit (" + std::to_string(unit_sizes.size()) + "), got " +
        std::to_string(backbone.size()));
  if (masked.size() != unit_sizes.size())
    bad("masked must give one flag per unit (" + std::to_string(unit_sizes.size()) + "), got " +
        std::to_string(masked.size()));
  for (const auto& w : backbone)
    for (int u : w)
      if (u <= 0) bad("backbone widths must be positive, got " + shape_str(w));
  c.unit_sizes = unit_sizes;
  c.backbone = backbone;
  for (bool m : masked) c.masked.push_back(m ? 1 : 0);
  c.mixed = mixed;
  return c;
}

// Validates the op's arguments (std::invalid_argument -> ValueError) and gathers the inputs in
// primitive order; shared by the graph op and the immediate streaming step.
std::pair<Plan, std::vector<mx::array>> checked_inputs(
    const mx::array& x, const mx::array& h0, const mx::array& dt, const std::vector<mx::array>& params,
    const std::vector<int>& unit_sizes, const std::vector<std::vector<int>>& backbone, const std::vector<bool>& masked,
    const std::string& mode, const std::string& activation, const std::optional<std::vector<mx::array>>& lstm,
    const std::optional<mx::array>& c0) {
  const bool mixed = lstm.has_value();
  if (mixed != c0.has_value()) bad("mixed memory needs both lstm (3 arrays) and c0, or neither");
  if (mixed && lstm->size() != 3)
    bad("lstm must be [input_map.weight, input_map.bias, recurrent_map.weight], got " + std::to_string(lstm->size()) +
        " arrays");
  Config cfg = make_config(unit_sizes, backbone, masked, mode, activation, mixed);
  // x (B, I) is one streaming step: dt (B, 1), states (B, N).
  cfg.step = x.ndim() == 2;
  bool ok = x.ndim() == 3 || x.ndim() == 2;
  for (int d = 0; ok && d < static_cast<int>(x.ndim()); ++d) ok = x.shape(d) >= 1;
  if (!ok)
    bad("x must have shape (batch, time, input_size), or (batch, input_size) for one step, with every size >= 1, "
        "got " +
        shape_str(x.shape()));
  Plan plan = plan_of(cfg, x);
  std::vector<mx::array> in = {x, h0, dt};
  if (mixed) {
    in.push_back(*c0);
    for (const auto& a : *lstm) in.push_back(a);
  }
  const size_t expected = static_cast<size_t>(plan.n_inputs) - in.size();
  if (params.size() != expected)
    bad("expected " + std::to_string(expected) + " parameter arrays for this configuration, got " +
        std::to_string(params.size()));
  for (const auto& a : params) in.push_back(a);
  const auto shapes = input_shapes(plan);
  for (int i = 0; i < plan.n_inputs; ++i) {
    const std::vector<int> got(in[i].shape().begin(), in[i].shape().end());
    if (got != shapes[i])
      bad(input_names(plan)[i] + " must have shape " + shape_str(shapes[i]) + ", got " + shape_str(got));
    if (!mx::issubdtype(in[i].dtype(), mx::floating)) bad(input_names(plan)[i] + " must be a floating-point array");
  }
  if (plan.ws_size > INT_MAX || backward_scratch_size(plan) > INT_MAX)
    bad("the sequence is too large for one call (workspace over 2^31 floats); split it");
  return {std::move(plan), std::move(in)};
}

}  // namespace

std::vector<mx::array> cfc_sequence(const mx::array& x, const mx::array& h0, const mx::array& dt,
                                    const std::vector<mx::array>& params, const std::vector<int>& unit_sizes,
                                    const std::vector<std::vector<int>>& backbone, const std::vector<bool>& masked,
                                    const std::string& mode, const std::string& activation,
                                    const std::optional<std::vector<mx::array>>& lstm,
                                    const std::optional<mx::array>& c0, mx::StreamOrDevice s) {
  auto [plan, in] = checked_inputs(x, h0, dt, params, unit_sizes, backbone, masked, mode, activation, lstm, c0);
  const mx::Stream st = common::cpu_stream(s, "cfc_sequence");
  // Half inputs go in as they are (the kernels read and write bfloat16 and float16, with float32
  // state and sums); strided ones are gathered inside the task (View), so no copies are added.
  const std::vector<mx::Dtype> dtypes = forward_dtypes(plan, in);
  for (auto& a : in) a = common::as_storage(a, st);
  // The workspace is declared as a saved plan of the outputs' storage lays it out (problem.h):
  // checked_inputs' float32 one, or a half model's (with its half copies).
  const common::Storage act = common::storage_of(dtypes[0], "cfc_sequence");
  if (act != common::Storage::f32) plan = plan_of(plan.cfg, in[0], true, act);
  auto outs = mx::array::make_arrays(forward_shapes(plan), dtypes, std::make_shared<CfCSequence>(st, plan.cfg), in);
  outs.pop_back();  // the workspace stays in the graph for the vjp only
  return outs;
}

std::pair<mx::array, mx::array> cfc_step_now(const mx::array& x, const mx::array& h0, const mx::array& dt,
                                             const std::vector<mx::array>& params, const std::vector<int>& unit_sizes,
                                             const std::vector<std::vector<int>>& backbone,
                                             const std::vector<bool>& masked, const std::string& mode,
                                             const std::string& activation, int readout_start, int readout_size) {
  if (x.ndim() != 2)
    bad("cfc_step_now takes one step: x must have shape (batch, input_size), got " + shape_str(x.shape()));
  // Every argument checked as the op checks it (the message names the wrong one), then the
  // prepared step once. A control loop uses the prepared step itself (ncps._ext.CfCStep, built
  // once per parameter set by the cell), not this.
  checked_inputs(x, h0, dt, params, unit_sizes, backbone, masked, mode, activation, std::nullopt, std::nullopt);
  CfCStepCore core(params, unit_sizes, backbone, masked, mode, activation, x.shape(1), readout_start, readout_size);
  mx::array hold[3] = {x, h0, dt};
  std::vector<float> bufs[3];
  const float* p[3];
  for (int i = 0; i < 3; ++i) p[i] = common::host_floats(hold[i], hold[i], bufs[i]);
  return core.run(x.shape(0), p[0], p[1], p[2]);
}

CfCStepCore::CfCStepCore(const std::vector<mx::array>& params, const std::vector<int>& unit_sizes,
                         const std::vector<std::vector<int>>& backbone, const std::vector<bool>& masked,
                         const std::string& mode, const std::string& activation, int input_size, int readout_start,
                         int readout_size)
    : I_(input_size), r0_(readout_start), rn_(readout_size) {
  if (input_size < 1) bad("input_size must be >= 1, got " + std::to_string(input_size));
  for (int n : unit_sizes) N_ += n;
  if (readout_start < 0 || readout_size < 1 || readout_start + readout_size > N_)
    bad("readout columns [" + std::to_string(readout_start) + ", " + std::to_string(readout_start + readout_size) +
        ") are outside the state");
  // The op's own validation, on placeholder step arguments of batch 1 (shapes only: nothing is
  // evaluated): every parameter's shape and dtype against the configuration.
  auto checked = checked_inputs(mx::zeros({1, I_}), mx::zeros({1, N_}), mx::zeros({1, 1}), params, unit_sizes, backbone,
                                masked, mode, activation, std::nullopt, std::nullopt);
  cfg_ = checked.first.cfg;
  plan_ = std::move(checked.first);
  // float32 host copies: the parameters are immutable arrays, and a changed one makes a new step.
  params_.reserve(params.size());
  for (const auto& p : params) params_.push_back(common::host_copy(p));
  dtype_ = common::output_dtype(params);
}

std::pair<mx::array, mx::array> CfCStepCore::run(int B, const float* x, const float* h, const float* dt) {
  if (B != plan_.B) plan_ = make_plan(cfg_, B, 1, I_);
  thread_local std::vector<const float*> ptrs;
  thread_local std::vector<float> ws;
  ptrs.assign({x, h, dt});
  for (const auto& p : params_) ptrs.push_back(p.data());
  ws.resize(static_cast<size_t>(plan_.ws_size));
  mx::array out(mx::allocator::malloc(static_cast<size_t>(B) * N_ * sizeof(float)), {B, N_}, mx::float32);
  float* states = out.data<float>();
  common::dispatch([&]<class Isa>() { cpu::forward<Isa>(plan_, ptrs, {states}, {}, ws.data()); });
  mx::array y(mx::allocator::malloc(static_cast<size_t>(B) * rn_ * sizeof(float)), {B, rn_}, mx::float32);
  float* yo = y.data<float>();
  for (int b = 0; b < B; ++b)
    std::copy_n(states + static_cast<int64_t>(b) * N_ + r0_, rn_, yo + static_cast<int64_t>(b) * rn_);
  return {std::move(y), std::move(out)};
}

}  // namespace ncps::cfc
