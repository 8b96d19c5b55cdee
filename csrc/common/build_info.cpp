#include "common/build_info.h"

#include "common/thread_pool.h"

namespace ncps::common {

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

int build_max_threads() { return max_threads(); }

std::map<std::string, std::string> build_info() {
  return {
      {"mlx_version", NCPS_MLX_VERSION},
      {"compiler", NCPS_COMPILER},
      {"simd", simd_level()},
      {"threading", "pool"},
      {"backends", "cpu"},
  };
}

}  // namespace ncps::common
