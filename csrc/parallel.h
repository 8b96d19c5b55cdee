// Thread-count policy for the CPU kernels (OpenMP when built with NCPS_USE_OPENMP, serial
// otherwise). Kernels parallelise only inside their dispatched task, over independent batch tiles.
#pragma once

#include <algorithm>
#include <cstdint>

#ifdef NCPS_USE_OPENMP
#include <omp.h>
#endif

namespace ncps {

// Work (in lane-synapse updates) below which one thread is faster than waking a team.
constexpr int64_t kMinParallelWork = 1 << 16;

inline int hardware_threads() {
#ifdef NCPS_USE_OPENMP
  return std::max(1, omp_get_max_threads());
#else
  return 1;
#endif
}

// Threads for `tasks` independent tasks totalling `work` units: 1 for tiny work, never more
// threads than tasks or than OpenMP allows.
inline int threads_for(int64_t tasks, int64_t work) {
  if (tasks <= 1 || work < kMinParallelWork) return 1;
  return static_cast<int>(std::min<int64_t>(tasks, hardware_threads()));
}

inline int thread_index() {
#ifdef NCPS_USE_OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

}  // namespace ncps
