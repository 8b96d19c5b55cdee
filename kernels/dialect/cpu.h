// CPU-emulation prelude of the ncps kernel dialect (see kernels/README.md).
//
// A kernel body runs once per emulated thread: every threadgroup's NT threads are real std::threads
// that share one std::barrier, so BARRIER() really orders memory between them and ThreadSanitizer
// sees exactly the races a GPU would have. Threadgroup arrays come from a per-group arena: the k-th
// TG_ARRAY of every thread of a group resolves to the same block. Arena blocks are filled with 0xFF
// bytes (NaN for floats) so that a read of never-written threadgroup memory shows in the results,
// as uninitialised GPU threadgroup memory would.
//
// Build with -DNCPS_DROP_BARRIER=<tag> to remove the barrier BARRIER(<tag>) (TSan self-test).
#pragma once
#include <barrier>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace ncps_emu {

struct Group {
  explicit Group(int threads) : bar(threads) {}
  std::barrier<> bar;
  std::mutex mu;
  std::vector<std::unique_ptr<char[]>> blocks;
  long bytes = 0;  // threadgroup memory the body declared (the CUDA launch's dynamic shared memory)
};

// Threadgroup bytes of the first group (every group declares the same arrays); written to
// tg_bytes.txt by the emulation program so the launch layer's byte count is checked.
inline long tg_bytes_declared = -1;

struct Ctx {
  int lid, gid;
  Group* group;
  int next_block = 0;

  template <class T>
  T* tg_alloc(long n) {
    std::lock_guard<std::mutex> lock(group->mu);
    const int k = next_block++;
    if (k == static_cast<int>(group->blocks.size())) {
      const size_t bytes = sizeof(T) * static_cast<size_t>(n > 0 ? n : 1);
      group->bytes += static_cast<long>(sizeof(T)) * n;
      group->blocks.emplace_back(new char[bytes]);
      std::memset(group->blocks.back().get(), 0xFF, bytes);
    }
    return reinterpret_cast<T*>(group->blocks[k].get());
  }

  void barrier(int tag) {
#ifdef NCPS_DROP_BARRIER
    if (tag == NCPS_DROP_BARRIER) return;
#endif
    (void)tag;
    group->bar.arrive_and_wait();
  }
};

// Runs `body(ctx)` for every thread of every group; groups run one after another.
template <class F>
void launch(int groups, int threads, F&& body) {
  for (int gid = 0; gid < groups; ++gid) {
    Group group(threads);
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (int lid = 0; lid < threads; ++lid)
      pool.emplace_back([&, lid] {
        Ctx ctx{lid, gid, &group};
        body(ctx);
      });
    for (auto& t : pool) t.join();
    if (gid == 0) tg_bytes_declared = group.bytes;
  }
}

inline float sigmoid(float z) { return 1.0f / (1.0f + std::exp(-z)); }

}  // namespace ncps_emu

#define KERNEL_CONST const
#define LID_X (ncps_ctx.lid)
#define GID_X (ncps_ctx.gid)
#define TG_SETUP static_cast<void>(0)
#define TG_ARRAY(T, name, n) T* name = ncps_ctx.tg_alloc<T>(n)
#define BARRIER(tag) ncps_ctx.barrier(tag)
#define EXP(x) std::exp(x)
#define TANH(x) std::tanh(x)
#define FABS(x) std::fabs(x)
#define SIGMOID(x) ncps_emu::sigmoid(x)
