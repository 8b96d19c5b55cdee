// The CfC primitives: eval_cpu (register inputs, allocate outputs, dispatch the cpu/ kernels),
// vmap over the per-sample inputs, the vjp (the fused backward node) and output shapes.
#include "cfc/primitives.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "cfc/cpu/kernel.h"
#include "common/isa.h"
#include "common/ops.h"
#include "common/workspace_pool.h"
#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/ops.h"

namespace ncps::cfc {

Plan plan_of(const Config& cfg, const mx::array& x, bool saved, common::Storage act) {
  if (cfg.step) return make_plan(cfg, x.shape(0), 1, x.shape(1), saved, act);
  return make_plan(cfg, x.shape(0), x.shape(1), x.shape(2), saved, act);
}

namespace {
// The storage of the saved activations: the outputs' (the promoted dtype of the inputs but dt).
common::Storage act_of(const std::vector<mx::array>& inputs) {
  return common::storage_of(common::output_dtype(inputs, /*skip dt=*/2), "CfCSequence");
}
}  // namespace

std::vector<mx::Dtype> forward_dtypes(const Plan& p, const std::vector<mx::array>& inputs) {
  std::vector<mx::Dtype> d(p.cfg.mixed ? 2 : 1, common::output_dtype(inputs, /*skip dt=*/2));
  d.push_back(mx::float32);  // the workspace
  return d;
}

std::vector<mx::Shape> forward_shapes(const Plan& p) {
  std::vector<mx::Shape> s = {p.cfg.step ? mx::Shape{p.B, p.N} : mx::Shape{p.B, p.T, p.N}};
  if (p.cfg.mixed) s.push_back(s[0]);  // the LSTM cell state after every step, shaped as states
  s.push_back({static_cast<int>(p.ws_size)});
  return s;
}

void CfCSequence::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  auto& enc = mx::cpu::get_command_encoder(stream());
  std::vector<common::View> views = common::input_views(enc, inputs, name());
  Plan plan = plan_of(cfg_, inputs[0], saved_, act_of(inputs));
  // states (and cells) from MLX's allocator like any op's output, the workspace (as large as the
  // plan's: a ring is smaller than the declared shape, and nothing but the vjp reads it) from the pool.
  const mx::array* ws_out = &outputs.back();
  const size_t ws_bytes = static_cast<size_t>(plan.ws_size) * sizeof(float);
  // The kernel writes states (and cells) in their own dtype (no staging pass).
  common::Outputs out = common::allocate_outputs(
      enc, outputs,
      [ws_out, ws_bytes](const mx::array& a) {
        return &a == ws_out ? common::WorkspacePool::get().take(ws_bytes) : mx::allocator::malloc(a.nbytes());
      },
      outputs.size() - 1);
  enc.dispatch([plan = std::move(plan), views = std::move(views), out = std::move(out)]() {
    std::vector<std::vector<float>> bufs;
    const std::vector<const float*> ptrs = common::resolve_all(views, bufs);
    const common::Sink cells = plan.cfg.mixed ? out.sink[1] : common::Sink{};
    common::dispatch([&]<class Isa>() { cpu::forward<Isa>(plan, ptrs, out.sink[0], cells, out[out.size() - 1]); });
    out.finish();
  });
}

// vmap over the per-sample inputs (x, h0, dt, c0): the mapped axis joins the batch axis.
std::pair<std::vector<mx::array>, std::vector<int>> CfCSequence::vmap(const std::vector<mx::array>& inputs,
                                                                      const std::vector<int>& axes) {
  const Plan plan = plan_of(cfg_, inputs[0]);
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
  const Plan vp = plan_of(cfg_, in[0], true, act_of(inputs));
  auto outs = mx::array::make_arrays(forward_shapes(vp), forward_dtypes(vp, inputs),
                                     std::make_shared<CfCSequence>(st, cfg_, saved_), in);
  std::vector<int> out_axes(outs.size(), -1);
  if (V >= 0) {
    // The batch size of one vmapped slice, from x without its mapped axis.
    const int B = axes[0] == 0 ? inputs[0].shape(1) : inputs[0].shape(0);
    for (size_t o = 0; o + 1 < outs.size(); ++o) {  // states (and cells); the workspace stays internal
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
  if (outputs.back().status() == mx::array::Status::unscheduled) {
    saved_ = true;  // evaluated later: the forward saves its activations
    gin.push_back(outputs.back());
  } else {  // evaluated already (mx.eval inside the differentiated function), maybe with a ring
    const Plan full = plan_of(cfg_, primals[0], true, act_of(primals));
    gin.push_back(mx::array::make_arrays(forward_shapes(full), forward_dtypes(full, primals),
                                         std::make_shared<CfCSequence>(st, cfg_, /*saved=*/true), primals)
                      .back());
  }
  gin.push_back(common::as_storage(cotangents[0], st));
  if (cfg_.mixed) gin.push_back(common::as_storage(cotangents[1], st));
  std::vector<mx::Shape> shapes;
  std::vector<mx::Dtype> dtypes;  // each gradient in its input's dtype (float32 sums inside)
  for (const auto& p : primals) {
    shapes.push_back(p.shape());
    dtypes.push_back(p.dtype());
  }
  // Skip the products nobody asked for: dx, the weight gradients (e.g. for input saliency), and
  // dt's (training never asks for it; after folded time heads it costs a recomputation).
  const Plan plan = plan_of(cfg_, primals[0]);
  bool need_dx = false, need_weights = false, need_dt = false;
  for (int a : argnums) {
    if (a == 0)
      need_dx = true;
    else if (a == 2)
      need_dt = true;
    else if (a > 2 && a != plan.c0)
      need_weights = true;
  }
  auto grads = mx::array::make_arrays(
      shapes, dtypes, std::make_shared<CfCSequenceGrad>(st, cfg_, act_of(primals), need_dx, need_weights, need_dt),
      gin);
  std::vector<mx::array> res;
  for (int a : argnums) res.push_back(grads[a]);
  return res;
}

bool CfCSequence::same_config(const mx::Primitive& other) const {
  auto* o = dynamic_cast<const CfCSequence*>(&other);
  return o != nullptr && o->cfg_ == cfg_ && o->saved_ == saved_;
}

std::vector<mx::Shape> CfCSequence::output_shapes(const std::vector<mx::array>& inputs) {
  return forward_shapes(plan_of(cfg_, inputs[0], true, act_of(inputs)));
}

void CfCSequenceGrad::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  auto& enc = mx::cpu::get_command_encoder(stream());
  Plan plan = plan_of(cfg_, inputs[0], true, act_);
  const size_t n = static_cast<size_t>(plan.n_inputs);
  // x is not read (its transposed copy is in the workspace), the cotangents row by row in their own
  // type: none of the three gets a float32 copy of the whole sequence.
  std::vector<common::View> views = common::input_views(enc, inputs, name(), {0, n + 1, n + 2});
  common::Outputs grads = common::allocate_outputs(enc, outputs);
  // Scratch for the per-step gradients, from the workspace pool (no fresh pages on every call);
  // a temporary of the command encoder, released after the task.
  float* sp = common::pooled_temporary(enc, backward_scratch_size(plan));
  enc.dispatch([plan = std::move(plan), views = std::move(views), grads = std::move(grads), sp, n, dx = need_dx_,
                wts = need_weights_, ddt = need_dt_]() {
    std::vector<std::vector<float>> bufs(views.size());
    std::vector<const float*> primals(n, nullptr);
    for (size_t i = 1; i < n; ++i) primals[i] = views[i].resolve(bufs[i]);
    const float* ws = views[n].resolve(bufs[n]);
    const common::Rows dstates = views[n + 1].rows(bufs[n + 1]);
    const common::Rows dcells = plan.cfg.mixed ? views[n + 2].rows(bufs[n + 2]) : common::Rows{};
    common::dispatch(
        [&]<class Isa>() { cpu::backward<Isa>(plan, primals, ws, dstates, dcells, grads.ptr, sp, dx, wts, ddt); });
    grads.finish();
  });
}

bool CfCSequenceGrad::same_config(const mx::Primitive& other) const {
  auto* o = dynamic_cast<const CfCSequenceGrad*>(&other);
  return o != nullptr && o->cfg_ == cfg_ && o->act_ == act_ && o->need_dx_ == need_dx_ &&
         o->need_weights_ == need_weights_ && o->need_dt_ == need_dt_;
}

std::vector<mx::Shape> CfCSequenceGrad::output_shapes(const std::vector<mx::array>& inputs) {
  const Plan plan = plan_of(cfg_, inputs[0]);
  std::vector<mx::Shape> s;
  for (int i = 0; i < plan.n_inputs; ++i) s.push_back(inputs[i].shape());
  return s;
}

}  // namespace ncps::cfc
