// The CfC primitives: eval_cpu (register inputs, allocate outputs, dispatch the cpu/ kernels),
// vmap over the per-sample inputs, the vjp (the fused backward node) and output shapes.
#include "cfc/primitives.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <vector>

#include "cfc/cpu/kernel.h"
#include "common/isa.h"
#include "common/ops.h"
#include "mlx/allocator.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/memory.h"
#include "mlx/ops.h"

namespace ncps::cfc {

namespace {

// ---- workspace buffers --------------------------------------------------------------------------
//
// The forward's workspace (ws_size floats, ~2.4 KB per row-step for CfC(16, 64), ~3.9 KB with
// mixed memory) and the backward's scratch are the largest buffers of a call, and they are
// allocated afresh on every call. MLX's CPU allocator caches freed buffers only up to 32 MiB in
// total (its default cache limit); a bigger buffer goes back to glibc, which serves every
// request over 32 MiB (its largest mmap threshold) with a fresh mmap and returns it with munmap.
// Every call then page-faults the whole buffer in again (the kernel zeroes each 4 KiB page):
// measured on the 2-core VM, ~1.7 us per fault, 14 842 faults per dense CfC(16, 64) forward at
// B 256, T 100 (+1000 ns per row-step, 485 -> 1485), and the cost per row-step doubled as soon as
// the workspace passed 32 MiB (B*T ~ 14 000 dense, ~8 600 mixed): issue 28. So the workspace
// and the scratch come from this pool instead: buffers from MLX's allocator (so backend and
// accounting stay MLX's: an idle pooled buffer counts as active memory), handed back here by the
// array's deleter and reused by the next call of about the same size, with no page faults.
//
// Bounds: only buffers of at least kMinPooled bytes (smaller ones MLX's cache keeps); at most
// max_idle() bytes idle (the least recently returned go first), and an idle buffer that kMaxAge
// later requests did not reuse is freed (a shape seen once, e.g. the last short batch of an
// epoch). A training step takes two buffers (workspace, scratch) and returns both before the next
// step, so the pool holds what the step's peak held anyway. mx.clear_cache() does not reach it:
// ncps.kernels.clear_cache() releases both.
class WorkspacePool {
 public:
  static WorkspacePool& get() {
    // Never destroyed: an array freed during exit still returns its buffer here.
    static WorkspacePool* pool = new WorkspacePool();
    return *pool;
  }

  // A buffer of at least `bytes` bytes, as array data whose deleter returns it to the pool.
  mx::allocator::Data take(size_t bytes) {
    if (bytes < kMinPooled) return mx::allocator::malloc(bytes);
    Idle got{mx::allocator::Buffer(nullptr), 0, 0};
    std::vector<mx::allocator::Buffer> expired;
    {
      std::lock_guard<std::mutex> lk(m_);
      ++clock_;
      // The smallest idle buffer that fits and wastes at most an eighth.
      size_t best = idle_.size();
      for (size_t i = 0; i < idle_.size(); ++i)
        if (idle_[i].cap >= bytes && idle_[i].cap <= bytes + bytes / 8 &&
            (best == idle_.size() || idle_[i].cap < idle_[best].cap))
          best = i;
      if (best < idle_.size()) {
        got = idle_[best];
        idle_bytes_ -= got.cap;
        idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(best));
      }
      for (size_t i = 0; i < idle_.size();)
        if (clock_ - idle_[i].stamp > kMaxAge) {
          expired.push_back(idle_[i].buf);
          idle_bytes_ -= idle_[i].cap;
          idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
          ++i;
        }
    }
    for (auto& b : expired) mx::allocator::allocator().free(b);
    if (got.cap == 0) {
      got.buf = mx::allocator::allocator().malloc(bytes);
      got.cap = bytes;
      if (got.buf.ptr() == nullptr) throw std::bad_alloc();
    }
    const size_t cap = got.cap;
    return mx::allocator::Data(got.buf, [cap](mx::allocator::Buffer b) { get().give_back(b, cap); });
  }

  // Frees every idle buffer (ncps.kernels.clear_cache(), beside mx.clear_cache()); returns the bytes.
  size_t release() {
    std::vector<Idle> idle;
    {
      std::lock_guard<std::mutex> lk(m_);
      idle.swap(idle_);
      idle_bytes_ = 0;
    }
    size_t bytes = 0;
    for (auto& i : idle) {
      bytes += i.cap;
      mx::allocator::allocator().free(i.buf);
    }
    return bytes;
  }

 private:
  static constexpr size_t kMinPooled = size_t{1} << 20;
  static constexpr uint64_t kMaxAge = 64;

  struct Idle {
    mx::allocator::Buffer buf;
    size_t cap;
    uint64_t stamp;
  };

  // An eighth of MLX's memory limit (0.8 x RAM by default), at most 2 GiB.
  static size_t max_idle() { return std::min<size_t>(mx::get_memory_limit() / 8, size_t{2} << 30); }

  void give_back(mx::allocator::Buffer b, size_t cap) {
    std::vector<mx::allocator::Buffer> evicted;
    {
      std::lock_guard<std::mutex> lk(m_);
      idle_.push_back({b, cap, clock_});
      idle_bytes_ += cap;
      const size_t limit = max_idle();
      while (idle_bytes_ > limit && !idle_.empty()) {  // oldest first (idle_ is in return order)
        evicted.push_back(idle_.front().buf);
        idle_bytes_ -= idle_.front().cap;
        idle_.erase(idle_.begin());
      }
    }
    for (auto& e : evicted) mx::allocator::allocator().free(e);
  }

  std::mutex m_;
  std::vector<Idle> idle_;  // in the order they came back
  size_t idle_bytes_ = 0;
  uint64_t clock_ = 0;  // take() calls so far
};

}  // namespace

size_t release_workspaces() { return WorkspacePool::get().release(); }

Plan plan_of(const Config& cfg, const mx::array& x) {
  if (cfg.step) return make_plan(cfg, x.shape(0), 1, x.shape(1));
  return make_plan(cfg, x.shape(0), x.shape(1), x.shape(2));
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
  // states (and cells) from MLX's allocator like any op's output, the workspace from the pool.
  std::vector<float*> out;
  for (size_t o = 0; o < outputs.size(); ++o) {
    mx::array& a = outputs[o];
    a.set_data(o + 1 < outputs.size() ? mx::allocator::malloc(a.nbytes()) : WorkspacePool::get().take(a.nbytes()));
    enc.set_output_array(a);
    out.push_back(a.data<float>());
  }
  Plan plan = plan_of(cfg_, inputs[0]);
  float* states = out[0];
  float* cells = cfg_.mixed ? out[1] : nullptr;
  float* ws = out.back();
  enc.dispatch([plan = std::move(plan), views = std::move(views), states, cells, ws]() {
    std::vector<std::vector<float>> bufs;
    const std::vector<const float*> ptrs = common::resolve_all(views, bufs);
    common::dispatch([&]<class Isa>() { cpu::forward<Isa>(plan, ptrs, states, cells, ws); });
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
  const Plan vp = plan_of(cfg_, in[0]);
  const auto shapes = forward_shapes(vp);
  auto outs = mx::array::make_arrays(shapes, std::vector<mx::Dtype>(shapes.size(), mx::float32),
                                     std::make_shared<CfCSequence>(st, cfg_), in);
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
  gin.push_back(outputs.back());
  auto prep = [&](const mx::array& c) { return c.dtype() == mx::float32 ? c : mx::astype(c, mx::float32, st); };
  gin.push_back(prep(cotangents[0]));
  if (cfg_.mixed) gin.push_back(prep(cotangents[1]));
  std::vector<mx::Shape> shapes;
  for (const auto& p : primals) shapes.push_back(p.shape());
  // Skip the products nobody asked for: dx, and the weight gradients (e.g. for input saliency).
  const Plan plan = plan_of(cfg_, primals[0]);
  bool need_dx = false, need_weights = false;
  for (int a : argnums) {
    if (a == 0)
      need_dx = true;
    else if (a > 2 && a != plan.c0)
      need_weights = true;
  }
  auto grads = mx::array::make_arrays(shapes, std::vector<mx::Dtype>(shapes.size(), mx::float32),
                                      std::make_shared<CfCSequenceGrad>(st, cfg_, need_dx, need_weights), gin);
  std::vector<mx::array> res;
  for (int a : argnums) res.push_back(grads[a]);
  return res;
}

bool CfCSequence::same_config(const mx::Primitive& other) const {
  auto* o = dynamic_cast<const CfCSequence*>(&other);
  return o != nullptr && o->cfg_ == cfg_;
}

std::vector<mx::Shape> CfCSequence::output_shapes(const std::vector<mx::array>& inputs) {
  return forward_shapes(plan_of(cfg_, inputs[0]));
}

void CfCSequenceGrad::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  auto& enc = mx::cpu::get_command_encoder(stream());
  std::vector<common::View> views = common::input_views(enc, inputs, name());
  std::vector<float*> grads = common::allocate_outputs(enc, outputs);
  Plan plan = plan_of(cfg_, inputs[0]);
  // Scratch for the per-step gradients, from the workspace pool (no fresh pages on every call);
  // a temporary of the command encoder, released after the task.
  mx::array scratch({static_cast<int>(std::max<int64_t>(1, backward_scratch_size(plan)))}, mx::float32, nullptr, {});
  scratch.set_data(WorkspacePool::get().take(scratch.nbytes()));
  float* sp = scratch.data<float>();
  enc.add_temporary(std::move(scratch));
  enc.dispatch([plan = std::move(plan), views = std::move(views), grads = std::move(grads), sp, dx = need_dx_,
                wts = need_weights_]() {
    std::vector<std::vector<float>> bufs;
    const std::vector<const float*> ptrs = common::resolve_all(views, bufs);
    const int n = plan.n_inputs;
    const std::vector<const float*> primals(ptrs.begin(), ptrs.begin() + n);
    const float* ws = ptrs[n];
    const float* dstates = ptrs[n + 1];
    const float* dcells = plan.cfg.mixed ? ptrs[n + 2] : nullptr;
    common::dispatch([&]<class Isa>() { cpu::backward<Isa>(plan, primals, ws, dstates, dcells, grads, sp, dx, wts); });
  });
}

bool CfCSequenceGrad::same_config(const mx::Primitive& other) const {
  auto* o = dynamic_cast<const CfCSequenceGrad*>(&other);
  return o != nullptr && o->cfg_ == cfg_ && o->need_dx_ == need_dx_ && o->need_weights_ == need_weights_;
}

std::vector<mx::Shape> CfCSequenceGrad::output_shapes(const std::vector<mx::array>& inputs) {
  const Plan plan = plan_of(cfg_, inputs[0]);
  std::vector<mx::Shape> s;
  for (int i = 0; i < plan.n_inputs; ++i) s.push_back(inputs[i].shape());
  return s;
}

}  // namespace ncps::cfc
