#include "build_info.h"

#ifdef NCPS_USE_OPENMP
#include <omp.h>
#endif

namespace ncps {

static const char* simd_level() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "avx2+fma";
#elif defined(__AVX__)
  return "avx";
#elif defined(__SSE4_2__)
  return "sse4.2";
#elif defined(__ARM_NEON)
  return "neon";
#else
  return "scalar";
#endif
}

int max_threads() {
#ifdef NCPS_USE_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

std::map<std::string, std::string> build_info() {
  return {
      {"mlx_version", NCPS_MLX_VERSION},
      {"compiler", NCPS_COMPILER},
      {"simd", simd_level()},
#ifdef NCPS_USE_OPENMP
      {"threading", "openmp"},
#else
      {"threading", "serial"},
#endif
      {"backends", "cpu"},
  };
}

}  // namespace ncps
