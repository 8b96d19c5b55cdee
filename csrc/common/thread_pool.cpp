// The thread pool of common/thread_pool.h (baseline code, one copy for every kernel target).
#include "common/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>

#include <pthread.h>

namespace ncps::common {

ThreadPool& ThreadPool::get() {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(nullptr, nullptr, [] { instance() = nullptr; }); });
  ThreadPool*& p = instance();
  if (p == nullptr) p = new ThreadPool();  // never destroyed: blocked workers simply end with the process
  return *p;
}

int ThreadPool::max_threads() {
  static const int n = [] {
    const char* env = std::getenv("OMP_NUM_THREADS");
    const int given = env ? std::atoi(env) : 0;
    return given > 0 ? given : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }();
  return n;
}

void ThreadPool::run(int n, const std::function<void(int, int)>& body) {
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

void ThreadPool::run_jobs(int n, const std::vector<std::function<void()>>& jobs) {
  std::atomic<size_t> next{0};
  run(std::min<int64_t>(n, static_cast<int64_t>(jobs.size())), [&](int, int) {
    for (size_t j; (j = next.fetch_add(1)) < jobs.size();) jobs[j]();
  });
}

ThreadPool*& ThreadPool::instance() {
  static ThreadPool* p = nullptr;
  return p;
}

void ThreadPool::work(int id) {
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

int max_threads() { return ThreadPool::max_threads(); }

int threads_for(int64_t tasks, double work, double min_parallel_work) {
  if (tasks <= 1 || work < min_parallel_work) return 1;
  return static_cast<int>(std::min<int64_t>(tasks, max_threads()));
}

std::pair<int64_t, int64_t> chunk_range(int64_t items, int n, int c) {
  const int64_t q = items / n, r = items % n;
  const int64_t b = c * q + std::min<int64_t>(c, r);
  return {b, b + q + (c < r ? 1 : 0)};
}

void run_jobs(const std::vector<std::function<void()>>& jobs, int nt) {
  if (nt <= 1 || jobs.size() <= 1) {
    for (const auto& j : jobs) j();
    return;
  }
  ThreadPool::get().run_jobs(nt, jobs);
}

}  // namespace ncps::common
