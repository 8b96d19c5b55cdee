// How the fused CfC kernels split the batch over threads: the batch rows are independent along the
// recurrence, so each chunk of rows runs the whole time loop on its own.
#pragma once

#include <algorithm>
#include <functional>
#include <vector>

#include "common/isa.h"
#include "common/thread_pool.h"

namespace ncps::cfc::cpu {
NCPS_ISA_BEGIN

// Chunks of the batch for nt threads: one when serial, else about four per thread of at least 8
// rows (the GEMM tile's height, so no product gets shorter tiles than with one chunk per thread).
// More chunks than threads, handed out dynamically, keep a thread that the OS descheduled (a busy
// 2-core machine) from holding up the whole call: the other thread takes its remaining chunks.
// Measured at load ~13 on 2 cores, one chunk per thread made the 2-thread forward slower than
// the serial one. The split depends on B and nt only, never on which thread ran what.
inline int batch_chunks(int B, int nt) { return nt <= 1 ? 1 : std::max(nt, std::min(4 * nt, B / 8)); }

// Whether the kernels prefetch the next step's rows: when the workspace (1.35 KB per row-step on
// the wired CfC(16, AutoNCP(64, 8)), 2.3 KB on CfC(16, 64)) is past ~16 MB, so that with the
// backward's scratch and the state gradients it outgrows the L3 (32 MB, shared) and each step's
// rows come from memory. Below that the rows are in cache.
inline bool prefetch_steps(int64_t ws_floats) { return ws_floats >= (int64_t{1} << 22); }

// Asks for the cache lines of p[0, n) ahead of their use (_w: to be written).
inline void prefetch_floats(const float* p, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i, 0, 3);
}
inline void prefetch_floats_w(float* p, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i, 1, 3);
}

// body(c, b0, b1) for every chunk c of nc, rows [b0, b1), over nt threads.
template <class F>
void run_batch_chunks(int B, int nt, int nc, F&& body) {
  std::vector<std::function<void()>> jobs;
  for (int c = 0; c < nc; ++c) {
    const auto [b0, b1] = common::chunk_range(B, nc, c);
    if (b1 > b0)
      jobs.emplace_back([&body, c, b0 = static_cast<int>(b0), b1 = static_cast<int>(b1)] { body(c, b0, b1); });
  }
  common::run_jobs(jobs, nt);
}

NCPS_ISA_END
}  // namespace ncps::cfc::cpu
