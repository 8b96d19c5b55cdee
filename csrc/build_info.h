// Facts about how the extension was built, reported by ncps.kernels.info().
#pragma once
#include <map>
#include <string>

namespace ncps {
std::map<std::string, std::string> build_info();
int max_threads();
}  // namespace ncps
