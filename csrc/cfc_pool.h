// A small persistent thread pool whose idle workers block (condition variable) instead of
// spinning, for the fused CfC kernels.
//
// Why not an OpenMP parallel region: libgomp's default wait policy spins for up to ~300k
// iterations after every region. On the 2-core CI/dev VMs, which are often shared, a spinning
// worker takes the core that the other half of the work (or the rest of the program) needs:
// measured under a load of ~5, a 2-thread OpenMP forward burned 12 ms of CPU for 3 ms of work and
// ran 3-4x slower than one thread, while OMP_WAIT_POLICY=passive fixed it. A blocking pool costs
// a ~10-50 us wake-up per parallel section; the kernels open two per call, each milliseconds long.
//
// The thread count follows omp_get_max_threads() when built with OpenMP (so OMP_NUM_THREADS
// caps it, as for the other kernels), else std::thread::hardware_concurrency().
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <pthread.h>

#ifdef NCPS_USE_OPENMP
#include <omp.h>
#endif

namespace ncps::cfcp {

class Pool {
 public:
  // The process-wide pool (created on first use; a forked child gets a fresh one).
  static Pool& get() {
    static std::once_flag once;
    std::call_once(once, [] { pthread_atfork(nullptr, nullptr, [] { instance() = nullptr; }); });
    Pool*& p = instance();
    if (p == nullptr) p = new Pool();  // never destroyed: blocked workers simply end with the process
    return *p;
  }

  static int max_threads() {
#ifdef NCPS_USE_OPENMP
    return std::max(1, omp_get_max_threads());
#else
    return std::max(1u, std::thread::hardware_concurrency());
#endif
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
  Pool() = default;
  static Pool*& instance() {
    static Pool* p = nullptr;
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

}  // namespace ncps::cfcp
