#include "common/math_probe.h"

#include <stdexcept>

#include "common/simd.h"

namespace ncps::common {

namespace {

template <int L>
std::vector<float> apply(const std::string& fn, const std::vector<float>& x) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); i += L) {
    vf<L> v = splat<L>(0.0f);
    for (int l = 0; l < L && i + l < x.size(); ++l) v[l] = x[i + l];
    vf<L> r;
    if (fn == "exp")
      r = vexp<L>(v);
    else if (fn == "exp2")
      r = vexp2<L>(v);
    else if (fn == "sigmoid")
      r = vsigmoid<L>(v);
    else if (fn == "sigmoid_log2")
      r = vsigmoid_log2<L>(v);
    else if (fn == "tanh")
      r = vtanh<L>(v);
    else
      throw std::invalid_argument("_math_probe: unknown function '" + fn + "'");
    for (int l = 0; l < L && i + l < x.size(); ++l) y[i + l] = r[l];
  }
  return y;
}

}  // namespace

template <>
std::vector<float> math_probe<NCPS_ISA_TAG>(const std::string& fn, const std::vector<float>& x, int lanes) {
  if (lanes == 4) return apply<4>(fn, x);
  if (lanes == 8) return apply<8>(fn, x);
  if (lanes == W) return apply<W>(fn, x);
  throw std::invalid_argument("_math_probe: lanes must be 4, 8 or " + std::to_string(W));
}

}  // namespace ncps::common
