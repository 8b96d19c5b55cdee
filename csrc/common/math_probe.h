// The SIMD math of common/simd.h on plain floats, for tests of its behaviour at the extremes
// (bound as the private ncps._ext._math_probe). Kernel code: one specialisation per target (common/isa.h).
#pragma once
#include <string>
#include <vector>

#include "common/isa.h"

namespace ncps::common {
// fn(x) elementwise, fn in exp, exp2, sigmoid, sigmoid_log2, tanh; computed with `lanes`-wide
// vectors (the target's native width W, 4 or 8). Throws std::invalid_argument for another fn or width.
template <class Isa>
std::vector<float> math_probe(const std::string& fn, const std::vector<float>& x, int lanes);
}  // namespace ncps::common
