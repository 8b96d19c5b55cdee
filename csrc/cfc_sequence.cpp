// CfCSequence / CfCSequenceGrad: op wrapper (validation, float32 contiguous inputs, CPU stream),
// eval_cpu (allocate outputs, dispatch the kernels of cfc_kernel.cpp) and the transforms.
#include "cfc_sequence.h"

#include "mlx/transforms.h"

#include <algorithm>
#include <climits>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "mlx/backend/cpu/encoder.h"
#include "mlx/utils.h"

namespace ncps {

namespace {

constexpr const char* kModes[] = {"default", "no_gate", "pure"};
constexpr const char* kActs[] = {"lecun_tanh", "tanh", "relu", "silu", "gelu", "sigmoid", "softplus"};

template <class S>
std::string shape_str(const S& s) {
  std::ostringstream o;
  o << "(";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << (s.size() == 1 ? ",)" : ")");
  return o.str();
}

[[noreturn]] void bad(const std::string& msg) { throw std::invalid_argument("cfc_sequence: " + msg); }

mx::Stream cpu_stream(const mx::StreamOrDevice& s) {
  const bool given = !std::holds_alternative<std::monostate>(s);
  mx::Stream st = given ? mx::to_stream(s) : mx::to_stream(s, mx::Device::cpu);
  if (st.device.type != mx::Device::DeviceType::cpu)
    bad("the fused kernel runs on the CPU only; pass a CPU stream or none");
  return st;
}

cfc::Config make_config(const std::vector<int>& unit_sizes, const std::vector<std::vector<int>>& backbone,
                        const std::vector<bool>& masked, const std::string& mode, const std::string& activation,
                        bool mixed) {
  cfc::Config c;
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

// A float32 input as the task sees it: a pointer, plus shape/strides to gather it if strided.
struct View {
  const float* ptr = nullptr;
  bool contiguous = true;
  int64_t size = 0;
  std::vector<int> shape;
  std::vector<int64_t> strides;

  const float* resolve(std::vector<float>& buf) const {
    if (contiguous) return ptr;
    buf.resize(size);
    const int nd = static_cast<int>(shape.size());
    if (nd == 0 || size == 0) {
      if (size) buf[0] = ptr[0];
      return buf.data();
    }
    // Odometer over the outer dimensions; the innermost one is a strided (often stride-0,
    // i.e. broadcast) run. No division per element: a broadcast cotangent of (B, T, N) is common.
    const int inner = shape[nd - 1];
    const int64_t is = strides[nd - 1];
    std::vector<int> idx(nd, 0);
    int64_t loc = 0;
    for (int64_t o = 0; o < size; o += inner) {
      float* dst = buf.data() + o;
      const float* src = ptr + loc;
      if (is == 0)
        std::fill(dst, dst + inner, src[0]);
      else
        for (int j = 0; j < inner; ++j) dst[j] = src[j * is];
      for (int d = nd - 2; d >= 0; --d) {
        loc += strides[d];
        if (++idx[d] < shape[d]) break;
        loc -= strides[d] * shape[d];
        idx[d] = 0;
      }
    }
    return buf.data();
  }
};

View make_view(const mx::array& a) {
  if (a.dtype() != mx::float32) throw std::runtime_error("[CfCSequence] internal error: inputs must be float32");
  View v;
  v.ptr = a.data<float>();
  v.size = static_cast<int64_t>(a.size());
  v.contiguous = a.flags().row_contiguous;
  if (!v.contiguous) {
    v.shape.assign(a.shape().begin(), a.shape().end());
    v.strides.assign(a.strides().begin(), a.strides().end());
  }
  return v;
}

// Registers the inputs with the encoder and returns the kernel's views of them.
std::vector<View> input_views(mx::cpu::CommandEncoder& enc, const std::vector<mx::array>& inputs) {
  std::vector<View> views;
  views.reserve(inputs.size());
  for (const auto& a : inputs) {
    enc.set_input_array(a);
    views.push_back(make_view(a));
  }
  return views;
}

cfc::Plan plan_of(const cfc::Config& cfg, const mx::array& x) {
  if (cfg.step) return cfc::make_plan(cfg, x.shape(0), 1, x.shape(1));
  return cfc::make_plan(cfg, x.shape(0), x.shape(1), x.shape(2));
}

std::vector<mx::Shape> forward_shapes(const cfc::Plan& p) {
  std::vector<mx::Shape> s = {p.cfg.step ? mx::Shape{p.B, p.N} : mx::Shape{p.B, p.T, p.N}};
  if (p.cfg.mixed) s.push_back({p.B, p.N});
  s.push_back({static_cast<int>(p.ws_size)});
  return s;
}

}  // namespace

namespace {

// Validates the op's arguments (std::invalid_argument -> ValueError) and gathers the inputs in
// primitive order; shared by the graph op and the immediate streaming step.
std::pair<cfc::Plan, std::vector<mx::array>> checked_inputs(
    const mx::array& x, const mx::array& h0, const mx::array& dt, const std::vector<mx::array>& params,
    const std::vector<int>& unit_sizes, const std::vector<std::vector<int>>& backbone,
    const std::vector<bool>& masked, const std::string& mode, const std::string& activation,
    const std::optional<std::vector<mx::array>>& lstm, const std::optional<mx::array>& c0) {
  const bool mixed = lstm.has_value();
  if (mixed != c0.has_value()) bad("mixed memory needs both lstm (3 arrays) and c0, or neither");
  if (mixed && lstm->size() != 3)
    bad("lstm must be [input_map.weight, input_map.bias, recurrent_map.weight], got " +
        std::to_string(lstm->size()) + " arrays");
  cfc::Config cfg = make_config(unit_sizes, backbone, masked, mode, activation, mixed);
  // x (B, I) is one streaming step: dt (B, 1), states (B, N).
  cfg.step = x.ndim() == 2;
  bool ok = x.ndim() == 3 || x.ndim() == 2;
  for (int d = 0; ok && d < static_cast<int>(x.ndim()); ++d) ok = x.shape(d) >= 1;
  if (!ok)
    bad("x must have shape (batch, time, input_size), or (batch, input_size) for one step, with every size >= 1, "
        "got " + shape_str(x.shape()));
  cfc::Plan plan = plan_of(cfg, x);
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
  const auto shapes = cfc::input_shapes(plan);
  for (int i = 0; i < plan.n_inputs; ++i) {
    const std::vector<int> got(in[i].shape().begin(), in[i].shape().end());
    if (got != shapes[i])
      bad(cfc::input_names(plan)[i] + " must have shape " + shape_str(shapes[i]) + ", got " + shape_str(got));
    if (!mx::issubdtype(in[i].dtype(), mx::floating)) bad(cfc::input_names(plan)[i] + " must be a floating-point array");
  }
  if (plan.ws_size > INT_MAX || cfc::backward_scratch_size(plan) > INT_MAX) bad("the sequence is too large for one call (workspace over 2^31 floats); split it");
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
  const mx::Stream st = cpu_stream(s);
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
  auto [plan, in] = checked_inputs(x, h0, dt, params, unit_sizes, backbone, masked, mode, activation, std::nullopt,
                                   std::nullopt);
  // Inference for control loops: compute on the calling thread, with no graph node and no hand-off
  // to the stream's worker thread (that wake-up dominates a batch-1 step). Inputs are evaluated
  // first; this is a no-op for parameters and for a state returned by the previous step.
  const mx::Stream st = mx::default_stream(mx::Device::cpu);
  for (auto& a : in)
    if (a.dtype() != mx::float32) a = mx::astype(a, mx::float32, st);
  mx::eval(in);
  std::vector<View> views;
  for (const auto& a : in) views.push_back(make_view(a));
  thread_local std::vector<std::vector<float>> bufs;
  thread_local std::vector<float> ws;
  bufs.resize(views.size());
  std::vector<const float*> ptrs(views.size());
  for (size_t i = 0; i < views.size(); ++i) ptrs[i] = views[i].resolve(bufs[i]);
  ws.resize(static_cast<size_t>(plan.ws_size));
  mx::array out(mx::allocator::malloc(static_cast<size_t>(plan.B) * plan.N * sizeof(float)), {plan.B, plan.N},
                mx::float32);
  cfc::forward(plan, ptrs, out.data<float>(), nullptr, ws.data());
  // The readout (the cell's output columns) as its own evaluated array: slicing `out` in MLX
  // would add a graph node and the hand-off this op exists to avoid.
  mx::array y(mx::allocator::malloc(static_cast<size_t>(plan.B) * readout_size * sizeof(float)),
              {plan.B, readout_size}, mx::float32);
  for (int b = 0; b < plan.B; ++b)
    std::copy_n(out.data<float>() + static_cast<int64_t>(b) * plan.N + readout_start, readout_size,
                y.data<float>() + static_cast<int64_t>(b) * readout_size);
  return {y, out};
}

void CfCSequence::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  for (auto& o : outputs) o.set_data(mx::allocator::malloc(o.nbytes()));
  auto& enc = mx::cpu::get_command_encoder(stream());
  std::vector<View> views = input_views(enc, inputs);
  for (auto& o : outputs) enc.set_output_array(o);
  cfc::Plan plan = plan_of(cfg_, inputs[0]);
  float* states = outputs[0].data<float>();
  float* cfin = cfg_.mixed ? outputs[1].data<float>() : nullptr;
  float* ws = outputs.back().data<float>();
  enc.dispatch([plan = std::move(plan), views = std::move(views), states, cfin, ws]() {
    std::vector<std::vector<float>> bufs(views.size());
    std::vector<const float*> ptrs(views.size());
    for (size_t i = 0; i < views.size(); ++i) ptrs[i] = views[i].resolve(bufs[i]);
    cfc::forward(plan, ptrs, states, cfin, ws);
  });
}

void CfCSequence::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  throw std::runtime_error("[CfCSequence] has no GPU kernel; run it on the CPU stream");
}

std::vector<mx::array> CfCSequence::jvp(const std::vector<mx::array>&, const std::vector<mx::array>&,
                                        const std::vector<int>&) {
  throw std::runtime_error(
      "[CfCSequence] forward-mode differentiation (jvp) is not implemented; use reverse mode (mx.grad / mx.vjp)");
}

// vmap over the per-sample inputs (x, h0, dt, c0): the mapped axis joins the batch axis.
std::pair<std::vector<mx::array>, std::vector<int>> CfCSequence::vmap(const std::vector<mx::array>& inputs,
                                                                      const std::vector<int>& axes) {
  const cfc::Plan plan = plan_of(cfg_, inputs[0]);
  std::vector<int> per_sample = {0, 1, 2};
  if (cfg_.mixed) per_sample.push_back(plan.c0);
  int V = -1;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (axes[i] < 0) continue;
    if (std::find(per_sample.begin(), per_sample.end(), static_cast<int>(i)) == per_sample.end())
      throw std::invalid_argument(
          "[CfCSequence] vmap over parameters is not supported (only over x, h0, dt and c0); use the reference "
          "path (ncps.kernels.use('reference'))");
    V = inputs[i].shape(axes[i]);
  }
  const mx::Stream st = stream();
  std::vector<mx::array> in = inputs;
  if (V >= 0) {
    for (int i : per_sample) {
      mx::array a = axes[i] >= 0 ? mx::moveaxis(in[i], axes[i], 0, st) : mx::expand_dims(in[i], 0, st);
      mx::Shape s = a.shape();
      s[0] = V;
      a = mx::broadcast_to(a, s, st);
      mx::Shape merged(s.begin() + 1, s.end());
      merged[0] *= V;
      in[i] = mx::reshape(a, merged, st);
    }
  }
  const cfc::Plan vp = plan_of(cfg_, in[0]);
  const auto shapes = forward_shapes(vp);
  auto outs = mx::array::make_arrays(shapes, std::vector<mx::Dtype>(shapes.size(), mx::float32),
                                     std::make_shared<CfCSequence>(st, cfg_), in);
  std::vector<int> out_axes(outs.size(), -1);
  if (V >= 0) {
    // The batch size of one vmapped slice, from x without its mapped axis.
    const int B = axes[0] == 0 ? inputs[0].shape(1) : inputs[0].shape(0);
    for (size_t o = 0; o + 1 < outs.size(); ++o) {  // states (and c_final); the workspace stays internal
      mx::Shape s = outs[o].shape();
      s[0] = B;
      s.insert(s.begin(), V);
      outs[o] = mx::reshape(outs[o], s, st);
      out_axes[o] = 0;
    }
  }
  return {outs, out_axes};
}

std::vector<mx::array> CfCSequence::vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                                        const std::vector<int>& argnums, const std::vector<mx::array>& outputs) {
  const mx::Stream st = stream();
  std::vector<mx::array> gin = primals;
  gin.push_back(outputs.back());
  auto prep = [&](const mx::array& c) { return c.dtype() == mx::float32 ? c : mx::astype(c, mx::float32, st); };
  gin.push_back(prep(cotangents[0]));
  if (cfg_.mixed) gin.push_back(prep(cotangents[1]));
  std::vector<mx::Shape> shapes;
  for (const auto& p : primals) shapes.push_back(p.shape());
  // Skip the products nobody asked for: dx, and the weight gradients (e.g. for input saliency).
  const cfc::Plan plan = plan_of(cfg_, primals[0]);
  bool need_dx = false, need_weights = false;
  for (int a : argnums) {
    if (a == 0) need_dx = true;
    else if (a > 2 && a != plan.c0) need_weights = true;
  }
  auto grads = mx::array::make_arrays(shapes, std::vector<mx::Dtype>(shapes.size(), mx::float32),
                                      std::make_shared<CfCSequenceGrad>(st, cfg_, need_dx, need_weights), gin);
  std::vector<mx::array> res;
  for (int a : argnums) res.push_back(grads[a]);
  return res;
}

// Never equivalent, on purpose. Every attribute is in cfg_ (same_config), but MLX 0.32.4's
// compile CSE mis-orders the tape when it merges two equivalent *multi-output* nodes: try_merge
// ranks parents by tape_order[], which holds only one output per node, so a sibling ranks as 0
// and the earlier node can be merged into the later one, whose consumers then precede it and
// compile_replace fails with "IndexError: _Map_base::at" (seen with ncps.training.fit and a
// metric: the metric's forward and the loss's forward are the same CfCSequence). Not merging
// only forgoes computing an identical sequence once instead of twice.
bool CfCSequence::is_equivalent(const mx::Primitive& other) const {
  auto* o = dynamic_cast<const CfCSequence*>(&other);
  (void)o;
  return false;
}

bool CfCSequence::same_config(const mx::Primitive& other) const {
  auto* o = dynamic_cast<const CfCSequence*>(&other);
  return o != nullptr && o->cfg_ == cfg_;
}

std::vector<mx::Shape> CfCSequence::output_shapes(const std::vector<mx::array>& inputs) {
  return forward_shapes(plan_of(cfg_, inputs[0]));
}

void CfCSequenceGrad::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  for (auto& o : outputs) o.set_data(mx::allocator::malloc(o.nbytes()));
  auto& enc = mx::cpu::get_command_encoder(stream());
  std::vector<View> views = input_views(enc, inputs);
  std::vector<float*> grads;
  for (auto& o : outputs) {
    enc.set_output_array(o);
    grads.push_back(o.data<float>());
  }
  cfc::Plan plan = plan_of(cfg_, inputs[0]);
  // Scratch for the per-step gradients, from MLX's allocator (its buffer cache avoids fresh pages
  // on every call); a temporary of the command encoder, released after the task.
  mx::array scratch({static_cast<int>(std::max<int64_t>(1, cfc::backward_scratch_size(plan)))}, mx::float32, nullptr,
                    {});
  scratch.set_data(mx::allocator::malloc(scratch.nbytes()));
  float* sp = scratch.data<float>();
  enc.add_temporary(std::move(scratch));
  enc.dispatch([plan = std::move(plan), views = std::move(views), grads = std::move(grads), sp, dx = need_dx_,
                wts = need_weights_]() {
    std::vector<std::vector<float>> bufs(views.size());
    std::vector<const float*> ptrs(views.size());
    for (size_t i = 0; i < views.size(); ++i) ptrs[i] = views[i].resolve(bufs[i]);
    const int n = plan.n_inputs;
    const std::vector<const float*> primals(ptrs.begin(), ptrs.begin() + n);
    const float* ws = ptrs[n];
    const float* dstates = ptrs[n + 1];
    const float* dcf = plan.cfg.mixed ? ptrs[n + 2] : nullptr;
    cfc::backward(plan, primals, ws, dstates, dcf, grads, sp, dx, wts);
  });
}

void CfCSequenceGrad::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  throw std::runtime_error("[CfCSequenceGrad] has no GPU kernel; run it on the CPU stream");
}

std::vector<mx::array> CfCSequenceGrad::vjp(const std::vector<mx::array>&, const std::vector<mx::array>&,
                                            const std::vector<int>&, const std::vector<mx::array>&) {
  throw std::runtime_error("[CfCSequenceGrad] second-order gradients of the fused CfC are not implemented");
}

// Never equivalent: a multi-output node, see CfCSequence::is_equivalent.
bool CfCSequenceGrad::is_equivalent(const mx::Primitive&) const {
  return false;
}

bool CfCSequenceGrad::same_config(const mx::Primitive& other) const {
  auto* o = dynamic_cast<const CfCSequenceGrad*>(&other);
  return o != nullptr && o->cfg_ == cfg_ && o->need_dx_ == need_dx_ && o->need_weights_ == need_weights_;
}

std::vector<mx::Shape> CfCSequenceGrad::output_shapes(const std::vector<mx::array>& inputs) {
  const cfc::Plan plan = plan_of(cfg_, inputs[0]);
  std::vector<mx::Shape> s;
  for (int i = 0; i < plan.n_inputs; ++i) s.push_back(inputs[i].shape());
  return s;
}

}  // namespace ncps
