// An input as a dispatched task sees it: the array's data pointer and storage type, plus its
// shape and strides when it is not row-contiguous (a transposed weight, the broadcast cotangent
// of a sum), so that the task gathers (and widens) it instead of the op adding a copy to the graph.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common/storage.h"

namespace ncps::common {

struct View {
  const void* ptr = nullptr;
  Storage st = Storage::f32;
  float* wide = nullptr;  // where a half input is widened (a pooled buffer), else `buf`
  bool contiguous = true;
  int64_t size = 0;
  std::vector<int> shape;
  std::vector<int64_t> strides;

  // A row-contiguous array as it is, in its storage type (the kernel widens it row by row), else
  // resolve()'s float32 copy in `buf`.
  Rows rows(std::vector<float>& buf) const {
    if (contiguous) return {ptr, st};
    return {resolve(buf), Storage::f32};
  }

  // Row-contiguous float32 data: the array itself, or a gathered and/or widened copy in `buf`.
  const float* resolve(std::vector<float>& buf) const {
    if (contiguous && st == Storage::f32) return static_cast<const float*>(ptr);
    float* out = wide;
    if (out == nullptr) {
      buf.resize(static_cast<size_t>(size));
      out = buf.data();
    }
    if (contiguous)
      widen(st, ptr, size, out);
    else if (st == Storage::f32)
      gather(static_cast<const float*>(ptr), out, [](float v) { return v; });
    else  // widened as gathered (a broadcast cotangent is common: no raw copy of it first)
      gather(static_cast<const uint16_t*>(ptr), out, [s = st](uint16_t h) { return half_to_float(s, h); });
    return out;
  }

 private:
  // The elements in row-major order, each through `conv`, into out[0:size].
  template <class E, class Conv>
  void gather(const E* src0, float* out, Conv conv) const {
    const int nd = static_cast<int>(shape.size());
    if (nd == 0 || size == 0) {
      if (size) out[0] = conv(src0[0]);
      return;
    }
    // Odometer over the outer dimensions; the innermost one is a strided (often stride-0,
    // i.e. broadcast) run. No division per element: a broadcast cotangent of (B, T, N) is common.
    const int inner = shape[nd - 1];
    const int64_t is = strides[nd - 1];
    std::vector<int> idx(nd, 0);
    int64_t loc = 0;
    for (int64_t o = 0; o < size; o += inner) {
      float* dst = out + o;
      const E* src = src0 + loc;
      if (is == 0)
        std::fill(dst, dst + inner, conv(src[0]));
      else
        for (int j = 0; j < inner; ++j) dst[j] = conv(src[j * is]);
      for (int d = nd - 2; d >= 0; --d) {
        loc += strides[d];
        if (++idx[d] < shape[d]) break;
        loc -= strides[d] * shape[d];
        idx[d] = 0;
      }
    }
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
