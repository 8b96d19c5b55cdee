// A float32 input as a dispatched task sees it: the array's data pointer, plus its shape and
// strides when it is not row-contiguous (a transposed weight, the broadcast cotangent of a sum),
// so that the task gathers it instead of the op adding a copy to the graph.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace ncps::common {

struct View {
  const float* ptr = nullptr;
  bool contiguous = true;
  int64_t size = 0;
  std::vector<int> shape;
  std::vector<int64_t> strides;

  // Row-contiguous data: the array itself, or a gathered copy kept in `buf`.
  const float* resolve(std::vector<float>& buf) const {
    if (contiguous) return ptr;
    buf.resize(static_cast<size_t>(size));
    const int nd = static_cast<int>(shape.size());
    if (nd == 0 || size == 0) {
      if (size) buf[0] = ptr[0];
      return buf.data();
    }
    // Odometer over the outer dimensions; the innermost one is a strided (often stride-0,
    // i.e. broadcast) run. No division per element: a broadcast cotangent of (B, T, N) is common.
    const int inner = shape[nd - 1];
    const int64_t is = strides[nd - 1];
    std::vector<int> idx(nd, 0);
    int64_t loc = 0;
    for (int64_t o = 0; o < size; o += inner) {
      float* dst = buf.data() + o;
      const float* src = ptr + loc;
      if (is == 0)
        std::fill(dst, dst + inner, src[0]);
      else
        for (int j = 0; j < inner; ++j) dst[j] = src[j * is];
      for (int d = nd - 2; d >= 0; --d) {
        loc += strides[d];
        if (++idx[d] < shape[d]) break;
        loc -= strides[d] * shape[d];
        idx[d] = 0;
      }
    }
    return buf.data();
  }
};

// Every view resolved; `bufs` keeps the gathered copies alive.
inline std::vector<const float*> resolve_all(const std::vector<View>& views, std::vector<std::vector<float>>& bufs) {
  bufs.resize(views.size());
  std::vector<const float*> ptrs(views.size());
  for (size_t i = 0; i < views.size(); ++i) ptrs[i] = views[i].resolve(bufs[i]);
  return ptrs;
}

}  // namespace ncps::common
