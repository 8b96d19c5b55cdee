// Facts about how the extension was built, reported by ncps.kernels.info().
#pragma once
#include <map>
#include <string>

namespace ncps::common {
std::map<std::string, std::string> build_info();
// Threads the CPU kernels may use (the thread pool's size).
int build_max_threads();
}  // namespace ncps::common
