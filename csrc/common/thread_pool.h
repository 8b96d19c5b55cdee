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

#include <pthread.h>

namespace ncps::common {

class ThreadPool {
 public:
  // The process-wide pool (created on first use; a forked child gets a fresh one).
  static ThreadPool& get() {
    static std::once_flag once;
    std::call_once(once, [] { pthread_atfork(nullptr, nullptr, [] { instance() = nullptr; }); });
    ThreadPool*& p = instance();
    if (p == nullptr) p = new ThreadPool();  // never destroyed: blocked workers simply end with the process
    return *p;
  }

  static int max_threads() {
    static const int n = [] {
      const char* env = std::getenv("OMP_NUM_THREADS");
      const int given = env ? std::atoi(env) : 0;
      return given > 0 ? given : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    }();
    return n;
  }

  // Runs body(tid, n) for tid = 0..n-1 on n threads (the caller is tid 0) and waits for all.
  // Serial (body(0, 1)) when n <= 1, or when the pool is already busy (another stream's task,
  // or a nested call).
  void run(int n, const std::function<void(int, int)>& body) {
    n = std::min(n, max_threads());
    std::unique_lock<std::mutex> busy(run_mutex_, std::try_to_lock);
    if (n <= 1 || !busy.owns_lock()) {
      body(0, 1);
      return;
    }
    {
      std::lock_guard<std::mutex> lk(m_);
      while (static_cast<int>(workers_.size()) < n - 1) {
        const int id = static_cast<int>(workers_.size()) + 1;
        workers_.emplace_back([this, id] { work(id); });
        workers_.back().detach();
      }
      job_ = &body;
      job_n_ = n;
      pending_ = n - 1;
      error_ = nullptr;
      ++gen_;
    }
    cv_work_.notify_all();
    std::exception_ptr mine;
    try {
      body(0, n);
    } catch (...) {
      mine = std::current_exception();
    }
    std::unique_lock<std::mutex> lk(m_);
    cv_done_.wait(lk, [this] { return pending_ == 0; });
    job_ = nullptr;
    if (mine) std::rethrow_exception(mine);
    if (error_) std::rethrow_exception(error_);
  }

  // Runs jobs[0..] over n threads, each thread taking the next unstarted job.
  void run_jobs(int n, const std::vector<std::function<void()>>& jobs) {
    std::atomic<size_t> next{0};
    run(std::min<int64_t>(n, static_cast<int64_t>(jobs.size())), [&](int, int) {
      for (size_t j; (j = next.fetch_add(1)) < jobs.size();) jobs[j]();
    });
  }

 private:
  ThreadPool() = default;
  static ThreadPool*& instance() {
    static ThreadPool* p = nullptr;
    return p;
  }

  void work(int id) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      cv_work_.wait(lk, [&] { return gen_ != seen; });
      seen = gen_;
      if (id >= job_n_) continue;
      const std::function<void(int, int)>* f = job_;
      const int n = job_n_;
      lk.unlock();
      std::exception_ptr err;
      try {
        (*f)(id, n);
      } catch (...) {
        err = std::current_exception();
      }
      lk.lock();
      if (err && !error_) error_ = err;
      if (--pending_ == 0) cv_done_.notify_one();
    }
  }

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

inline int max_threads() { return ThreadPool::max_threads(); }

// Threads for `tasks` independent tasks totalling `work` (in the caller's unit): 1 below
// `min_parallel_work` (waking a second thread would not pay), never more than tasks or threads.
inline int threads_for(int64_t tasks, double work, double min_parallel_work) {
  if (tasks <= 1 || work < min_parallel_work) return 1;
  return static_cast<int>(std::min<int64_t>(tasks, max_threads()));
}

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
inline std::pair<int64_t, int64_t> chunk_range(int64_t items, int n, int c) {
  const int64_t q = items / n, r = items % n;
  const int64_t b = c * q + std::min<int64_t>(c, r);
  return {b, b + q + (c < r ? 1 : 0)};
}

// Runs independent jobs over `nt` threads, each thread taking the next unstarted job.
inline void run_jobs(const std::vector<std::function<void()>>& jobs, int nt) {
  if (nt <= 1 || jobs.size() <= 1) {
    for (const auto& j : jobs) j();
    return;
  }
  ThreadPool::get().run_jobs(nt, jobs);
}

}  // namespace ncps::common
