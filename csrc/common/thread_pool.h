// The one threading model of the CPU kernels: a small persistent thread pool whose idle workers
// block (condition variable) instead of spinning, and the helpers the kernels split work with.
//
// Why not OpenMP: libgomp's default wait policy spins for up to ~300k iterations after every
// region. On the 2-core CI/dev VMs, which are often shared, a spinning worker takes the core that
// the other half of the work (or the rest of the program) needs: measured under a load of ~5, a
// 2-thread OpenMP forward burned 12 ms of CPU for 3 ms of work and ran 3-4x slower than one
// thread, while OMP_WAIT_POLICY=passive fixed it. A blocking pool costs a ~10-50 us wake-up per
// parallel section; the kernels open one or two per call, each milliseconds long. (The LTC kernels
// were measured on both; see the commit that moved them onto the pool.)
//
// Threads: OMP_NUM_THREADS when set (the knob users of numerical libraries already know), else
// std::thread::hardware_concurrency(). Parallel sections split work into a fixed number of chunks,
// each with its own accumulators, so results do not depend on how many threads actually ran them.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace ncps::common {

// Shared by the baseline files and every kernel target (common/isa.h): declarations and templates
// only, the code is in thread_pool.cpp (compiled once, for the baseline), so that no target's copy
// of an inline function can be the one the linker keeps.
class ThreadPool {
 public:
  // The process-wide pool (created on first use; a forked child gets a fresh one).
  static ThreadPool& get();

  // OMP_NUM_THREADS when set, else the hardware threads.
  static int max_threads();

  // Runs body(tid, n) for tid = 0..n-1 on n threads (the caller is tid 0) and waits for all.
  // Serial (body(0, 1)) when n <= 1, or when the pool is already busy (another stream's task,
  // or a nested call).
  void run(int n, const std::function<void(int, int)>& body);

  // Runs jobs[0..] over n threads, each thread taking the next unstarted job.
  void run_jobs(int n, const std::vector<std::function<void()>>& jobs);

 private:
  ThreadPool() = default;
  static ThreadPool*& instance();
  void work(int id);

  std::mutex run_mutex_;  // one parallel section at a time
  std::mutex m_;
  std::condition_variable cv_work_, cv_done_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  int job_n_ = 0;
  int pending_ = 0;
  uint64_t gen_ = 0;
  std::exception_ptr error_;
};

int max_threads();

// Threads for `tasks` independent tasks totalling `work` (in the caller's unit): 1 below
// `min_parallel_work` (waking a second thread would not pay), never more than tasks or threads.
int threads_for(int64_t tasks, double work, double min_parallel_work);

// body(c) for every chunk c in [0, n), chunks spread over up to n pool threads (serially when
// n <= 1 or when the pool is busy with another stream's task).
template <class F>
void parallel_chunks(int n, F&& body) {
  if (n <= 1) {
    for (int c = 0; c < n; ++c) body(c);
    return;
  }
  ThreadPool::get().run(n, [&](int tid, int nth) {
    for (int c = tid; c < n; c += nth) body(c);
  });
}

// [begin, end) of chunk c when `items` are split into n contiguous chunks, the first items % n
// one larger (the split of OpenMP's static schedule).
std::pair<int64_t, int64_t> chunk_range(int64_t items, int n, int c);

// Runs independent jobs over `nt` threads, each thread taking the next unstarted job.
void run_jobs(const std::vector<std::function<void()>>& jobs, int nt);

}  // namespace ncps::common
