#include "common/build_info.h"

#include "common/isa.h"
#include "common/thread_pool.h"

namespace ncps::common {

namespace {
std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}
}  // namespace

int build_max_threads() { return max_threads(); }

std::map<std::string, std::string> build_info() {
  return {
      {"mlx_version", NCPS_MLX_VERSION},
      {"compiler", NCPS_COMPILER},
      {"simd", compiled_isas()[chosen_isa()]},     // the kernel target this process runs
      {"simd_compiled", joined(compiled_isas())},  // every compiled target, best first
      {"threading", "pool"},
      {"backends", "cpu"},
  };
}

}  // namespace ncps::common
