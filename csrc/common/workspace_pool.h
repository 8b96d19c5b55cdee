// The pool of the kernels' large temporary buffers (the CfC workspace and backward scratch, the
// float32 staging of half outputs): buffers from MLX's allocator reused across calls (why: below).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>
#include <vector>

#include "mlx/allocator.h"
#include "mlx/memory.h"

namespace ncps::common {

namespace mx = mlx::core;

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

}  // namespace ncps::common
