// Pieces shared by the ops (the functions bound to Python) and the primitives' eval_cpu: shape
// formatting for error messages, the CPU stream policy, and registering inputs / allocating
// outputs with MLX's CPU command encoder.
#pragma once

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "common/storage.h"
#include "common/view.h"
#include "common/workspace_pool.h"
#include "mlx/array.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/ops.h"
#include "mlx/stream.h"
#include "mlx/transforms.h"
#include "mlx/utils.h"

namespace ncps::common {

namespace mx = mlx::core;

// "(2, 3)", "(4,)": a shape as Python prints it.
template <class S>
std::string shape_str(const S& s) {
  std::ostringstream o;
  o << "(";
  for (size_t d = 0; d < s.size(); ++d) o << (d ? ", " : "") << s[d];
  o << (s.size() == 1 ? ",)" : ")");
  return o.str();
}

// The kernels run on the CPU only: with no stream given they run on the CPU stream even where
// the default device is a GPU; an explicit GPU stream or device is an error.
inline mx::Stream cpu_stream(const mx::StreamOrDevice& s, const char* op) {
  const bool given = !std::holds_alternative<std::monostate>(s);
  mx::Stream st = given ? mx::to_stream(s) : mx::to_stream(s, mx::Device::cpu);
  if (st.device.type != mx::Device::DeviceType::cpu)
    throw std::invalid_argument(std::string(op) + ": the fused kernel runs on the CPU only; pass a CPU stream or none");
  return st;
}

// The storage type of a kernel input or output: float32, bfloat16 or float16 (`what` names the
// caller in the internal error; the ops convert every other dtype first).
inline Storage storage_of(mx::Dtype d, const char* what) {
  if (d == mx::float32) return Storage::f32;
  if (d == mx::bfloat16) return Storage::bf16;
  if (d == mx::float16) return Storage::f16;
  throw std::runtime_error(std::string("[") + what +
                           "] internal error: kernel arrays must be float32, bfloat16 or float16");
}

// Whether the kernels read and write `d` as it is (else the op converts it to float32).
inline bool is_storage(mx::Dtype d) { return d == mx::float32 || d == mx::bfloat16 || d == mx::float16; }

// `a` as a kernel input: itself in a storage type, else converted to float32 in the graph.
inline mx::array as_storage(const mx::array& a, mx::Stream st) {
  return is_storage(a.dtype()) ? a : mx::astype(a, mx::float32, st);
}

// MLX's promotion of the inputs' dtypes, skipping input `skip` (the elapsed times), as a storage
// type: the dtype of the outputs (float32 when the promotion is none of the three).
inline mx::Dtype output_dtype(const std::vector<mx::array>& in, int skip = -1) {
  mx::Dtype d = mx::float32;
  bool first = true;
  for (int i = 0; i < static_cast<int>(in.size()); ++i)
    if (i != skip) {
      d = first ? in[i].dtype() : mx::promote_types(d, in[i].dtype());
      first = false;
    }
  return is_storage(d) ? d : mx::float32;
}

// The task's view of an input (`prim` names the primitive in the internal error).
inline View make_view(const mx::array& a, const char* prim) {
  View v;
  v.st = storage_of(a.dtype(), prim);
  v.ptr = a.data<char>();
  v.size = static_cast<int64_t>(a.size());
  v.contiguous = a.flags().row_contiguous;
  if (!v.contiguous) {
    v.shape.assign(a.shape().begin(), a.shape().end());
    v.strides.assign(a.strides().begin(), a.strides().end());
  }
  return v;
}

// A float32 buffer of n (>= 1) elements from the workspace pool for the task, an encoder temporary
// (released after the task): no fresh pages on every call for the large ones.
inline float* pooled_temporary(mx::cpu::CommandEncoder& enc, int64_t n) {
  mx::array tmp({static_cast<int>(std::max<int64_t>(1, n))}, mx::float32, nullptr, {});
  tmp.set_data(WorkspacePool::get().take(tmp.nbytes()));
  float* p = tmp.data<float>();
  enc.add_temporary(std::move(tmp));
  return p;
}

// Registers the inputs with the encoder and returns the task's views of them. A half input (a
// saved state sequence, a cotangent) is widened into a pooled temporary, not a heap buffer of the
// task.
// `as_rows`: the inputs the kernel reads row by row in their storage type (View::rows), which get
// no float32 copy when they are row-contiguous.
inline std::vector<View> input_views(mx::cpu::CommandEncoder& enc, const std::vector<mx::array>& inputs,
                                     const char* prim, std::initializer_list<size_t> as_rows = {}) {
  std::vector<View> views;
  views.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    enc.set_input_array(inputs[i]);
    views.push_back(make_view(inputs[i], prim));
    View& v = views.back();
    const bool row_wise = v.contiguous && std::find(as_rows.begin(), as_rows.end(), i) != as_rows.end();
    if (v.st != Storage::f32 && !row_wise) v.wide = pooled_temporary(enc, v.size);
  }
  return views;
}

// The outputs as a task's kernel writes them: float32, straight into a float32 output, or into a
// float32 staging buffer (an encoder temporary from the workspace pool) that finish() rounds into
// the half output after the kernel. The kernels keep float32 sums and state either way.
struct Outputs {
  struct Narrowing {
    const float* src;
    void* dst;
    Storage st;
    int64_t n;
  };
  std::vector<float*> ptr;  // where the kernel writes output o as float32 (null: a Sink output)
  std::vector<Sink> sink;   // output o as the kernel writes it in its own storage type
  std::vector<int64_t> n;   // elements of output o
  std::vector<Narrowing> pending;

  float* operator[](size_t o) const { return ptr[o]; }
  size_t size() const { return ptr.size(); }
  // Zeroes what the kernel writes (for kernels that accumulate into their outputs).
  void zero() const {
    for (size_t o = 0; o < ptr.size(); ++o)
      if (n[o] && ptr[o]) std::memset(ptr[o], 0, sizeof(float) * static_cast<size_t>(n[o]));
  }
  void finish() const {
    for (const auto& p : pending) narrow(p.st, p.src, p.n, p.dst);
  }
};

// Allocates and registers the outputs (float32, bfloat16 or float16); `data` allocates an
// output's own buffer (MLX's allocator by default). The kernel writes outputs [0, direct) in
// their storage type itself (sink[o]), the others as float32 (ptr[o]; staged when half).
template <class Alloc>
Outputs allocate_outputs(mx::cpu::CommandEncoder& enc, std::vector<mx::array>& outputs, Alloc data, size_t direct = 0) {
  Outputs out;
  for (auto& o : outputs) {
    o.set_data(data(o));
    enc.set_output_array(o);
    const auto n = static_cast<int64_t>(o.size());
    out.n.push_back(n);
    const Storage st = storage_of(o.dtype(), "allocate_outputs");
    out.sink.push_back({o.data<char>(), st, st == Storage::bf16 && bf16_instructions()});
    if (out.ptr.size() < direct) {
      out.ptr.push_back(nullptr);
      continue;
    }
    if (st == Storage::f32) {
      out.ptr.push_back(o.data<float>());
      continue;
    }
    float* p = pooled_temporary(enc, n);
    out.ptr.push_back(p);
    out.pending.push_back({p, o.data<char>(), st, n});
  }
  return out;
}
inline Outputs allocate_outputs(mx::cpu::CommandEncoder& enc, std::vector<mx::array>& outputs) {
  return allocate_outputs(enc, outputs, [](const mx::array& o) { return mx::allocator::malloc(o.nbytes()); });
}

// `a` as float32 row-contiguous host data (`hold` keeps a converted or evaluated copy alive,
// `buf` a gathered or widened one); nullptr for a non-floating dtype (the checked path reports it).
inline const float* host_floats(const mx::array& a, mx::array& hold, std::vector<float>& buf) {
  if (!mx::issubdtype(a.dtype(), mx::floating)) return nullptr;
  hold = is_storage(a.dtype()) ? a : mx::astype(a, mx::float32, mx::default_stream(mx::Device::cpu));
  // mx::eval builds a tape and synchronises even when nothing is pending: only when needed (a
  // parameter or the previous step's state is already evaluated).
  if (!hold.is_available()) mx::eval(hold);
  return make_view(hold, "host_floats").resolve(buf);
}

// A contiguous float32 host copy of a real array (a non-floating one converted first): the
// prepared streaming steps keep their parameters this way.
inline std::vector<float> host_copy(const mx::array& a) {
  mx::array hold =
      mx::issubdtype(a.dtype(), mx::floating) ? a : mx::astype(a, mx::float32, mx::default_stream(mx::Device::cpu));
  std::vector<float> buf;
  const float* p = host_floats(hold, hold, buf);
  return std::vector<float>(p, p + hold.size());
}

}  // namespace ncps::common
