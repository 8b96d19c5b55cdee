// The CfC ops bound to Python: cfc_sequence (the graph node) and cfc_step_now (an immediate
// streaming step), with the validation they share.
#include "cfc/ops.h"

#include <climits>
#include <cstdint>
#include <memory>
#include <tuple>
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

constexpr const char* kModes[] = {"default", "no_gate", "pure"};
constexpr const char* kActs[] = {"lecun_tanh", "tanh", "relu", "silu", "gelu", "sigmoid", "softplus"};

[[noreturn]] void bad(const std::string& msg) { throw std::invalid_argument("cfc_sequence: " + msg); }

Config make_config(const std::vector<int>& unit_sizes, const std::vector<std::vector<int>>& backbone,
                        const std::vector<bool>& masked, const std::string& mode, const std::string& activation,
                        bool mixed) {
  Config c;
  c.mode = -1;
  for (int i = 0; i < 3; ++i)
    if (mode == kModes[i]) c.mode = i;
  if (c.mode < 0) bad("mode must be 'default', 'no_gate' or 'pure', got '" + mode + "'");
  c.act = -1;
  for (int i = 0; i < 7; ++i)
    if (activation == kActs[i]) c.act = i;
  if (c.act < 0)
    bad("activation must be one of lecun_tanh, tanh, relu, silu, gelu, sigmoid, softplus; got '" + activation + "'");
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
    const std::vector<int>& unit_sizes, const std::vector<std::vector<int>>& backbone,
    const std::vector<bool>& masked, const std::string& mode, const std::string& activation,
    const std::optional<std::vector<mx::array>>& lstm, const std::optional<mx::array>& c0) {
  const bool mixed = lstm.has_value();
  if (mixed != c0.has_value()) bad("mixed memory needs both lstm (3 arrays) and c0, or neither");
  if (mixed && lstm->size() != 3)
    bad("lstm must be [input_map.weight, input_map.bias, recurrent_map.weight], got " +
        std::to_string(lstm->size()) + " arrays");
  Config cfg = make_config(unit_sizes, backbone, masked, mode, activation, mixed);
  // x (B, I) is one streaming step: dt (B, 1), states (B, N).
  cfg.step = x.ndim() == 2;
  bool ok = x.ndim() == 3 || x.ndim() == 2;
  for (int d = 0; ok && d < static_cast<int>(x.ndim()); ++d) ok = x.shape(d) >= 1;
  if (!ok)
    bad("x must have shape (batch, time, input_size), or (batch, input_size) for one step, with every size >= 1, "
        "got " + shape_str(x.shape()));
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
  if (plan.ws_size > INT_MAX || cpu::backward_scratch_size(plan) > INT_MAX) bad("the sequence is too large for one call (workspace over 2^31 floats); split it");
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
  mx::Dtype out_dtype = x.dtype();
  for (const auto& a : in) out_dtype = mx::promote_types(out_dtype, a.dtype());
  // Strided inputs are gathered inside the task (View), so no copies are added to the graph.
  for (auto& a : in)
    if (a.dtype() != mx::float32) a = mx::astype(a, mx::float32, st);
  const auto oshapes = forward_shapes(plan);
  auto outs = mx::array::make_arrays(oshapes, std::vector<mx::Dtype>(oshapes.size(), mx::float32),
                                     std::make_shared<CfCSequence>(st, plan.cfg), in);
  outs.pop_back();  // the workspace stays in the graph for the vjp only
  if (out_dtype != mx::float32)
    for (auto& o : outs) o = mx::astype(o, out_dtype, st);
  return outs;
}

std::pair<mx::array, mx::array> cfc_step_now(const mx::array& x, const mx::array& h0, const mx::array& dt,
                                             const std::vector<mx::array>& params, const std::vector<int>& unit_sizes,
                                             const std::vector<std::vector<int>>& backbone,
                                             const std::vector<bool>& masked, const std::string& mode,
                                             const std::string& activation, int readout_start, int readout_size) {
  if (readout_start < 0 || readout_size < 1 || readout_start + readout_size > h0.shape(-1))
    bad("readout columns [" + std::to_string(readout_start) + ", " + std::to_string(readout_start + readout_size) +
        ") are outside the state");
  if (x.ndim() != 2) bad("cfc_step_now takes one step: x must have shape (batch, input_size), got " + shape_str(x.shape()));
  // A control loop calls this with the same parameter arrays and options every step: the checked
  // plan is cached per thread, keyed by everything it was built from (the parameters by identity,
  // which is also all the shape information they carry; a cached entry holds them, so an identity
  // is never reused while cached). A hit skips the validation and the plan's allocations.
  struct Cached {
    std::vector<std::uintptr_t> ids;
    std::vector<mx::array> keep;
    std::vector<int> dims;  // B, I, N, readout
    std::vector<int> unit_sizes;
    std::vector<std::vector<int>> backbone;
    std::vector<bool> masked;
    std::string mode, activation;
    Plan plan;
  };
  thread_local std::vector<Cached> cache;
  std::vector<std::uintptr_t> ids;
  ids.reserve(params.size());
  for (const auto& a : params) ids.push_back(a.id());
  const std::vector<int> dims = {x.shape(0), x.shape(1), static_cast<int>(h0.shape(-1)), readout_start, readout_size};
  const Cached* hit = nullptr;
  for (const auto& c : cache)
    if (c.ids == ids && c.dims == dims && c.unit_sizes == unit_sizes && c.backbone == backbone &&
        c.masked == masked && c.mode == mode && c.activation == activation) {
      hit = &c;
      break;
    }
  const Plan* pp = nullptr;
  std::vector<mx::array> in;
  if (hit != nullptr && h0.shape() == mx::Shape{dims[0], dims[2]} && dt.shape() == mx::Shape{dims[0], 1} &&
      mx::issubdtype(x.dtype(), mx::floating) && mx::issubdtype(h0.dtype(), mx::floating) &&
      mx::issubdtype(dt.dtype(), mx::floating)) {
    pp = &hit->plan;
    in.reserve(3 + params.size());
    in.insert(in.end(), {x, h0, dt});
    in.insert(in.end(), params.begin(), params.end());
  } else {
    auto checked = checked_inputs(x, h0, dt, params, unit_sizes, backbone, masked, mode, activation, std::nullopt,
                                  std::nullopt);
    in = std::move(checked.second);
    if (cache.size() >= 8) cache.erase(cache.begin());
    cache.push_back(Cached{ids, params, dims, unit_sizes, backbone, masked, mode, activation, std::move(checked.first)});
    pp = &cache.back().plan;
  }
  const Plan& plan = *pp;
  // Inference for control loops: compute on the calling thread, with no graph node and no hand-off
  // to the stream's worker thread (that wake-up dominates a batch-1 step). Inputs are evaluated
  // first; this is a no-op for parameters and for a state returned by the previous step.
  const mx::Stream st = mx::default_stream(mx::Device::cpu);
  bool all_available = true;
  for (auto& a : in) {
    if (a.dtype() != mx::float32) a = mx::astype(a, mx::float32, st);
    all_available = all_available && a.is_available();
  }
  // mx::eval builds a tape and synchronises even when nothing is pending: skip it in the common case.
  if (!all_available) mx::eval(in);
  std::vector<common::View> views;
  for (const auto& a : in) views.push_back(common::make_view(a, "cfc_step_now"));
  thread_local std::vector<std::vector<float>> bufs;
  thread_local std::vector<float> ws;
  const std::vector<const float*> ptrs = common::resolve_all(views, bufs);
  ws.resize(static_cast<size_t>(plan.ws_size));
  mx::array out(mx::allocator::malloc(static_cast<size_t>(plan.B) * plan.N * sizeof(float)), {plan.B, plan.N},
                mx::float32);
  float* states = out.data<float>();
  common::dispatch([&]<class Isa>() { cpu::forward<Isa>(plan, ptrs, states, nullptr, ws.data()); });
  // The readout (the cell's output columns) as its own evaluated array: slicing `out` in MLX
  // would add a graph node and the hand-off this op exists to avoid.
  mx::array y(mx::allocator::malloc(static_cast<size_t>(plan.B) * readout_size * sizeof(float)),
              {plan.B, readout_size}, mx::float32);
  for (int b = 0; b < plan.B; ++b)
    std::copy_n(out.data<float>() + static_cast<int64_t>(b) * plan.N + readout_start, readout_size,
                y.data<float>() + static_cast<int64_t>(b) * readout_size);
  return {y, out};
}

}  // namespace ncps::cfc
