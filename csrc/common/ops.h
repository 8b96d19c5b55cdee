// Pieces shared by the ops (the functions bound to Python) and the primitives' eval_cpu: shape
// formatting for error messages, the CPU stream policy, and registering inputs / allocating
// outputs with MLX's CPU command encoder.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "common/view.h"
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

// The task's view of a float32 input (`prim` names the primitive in the internal error).
inline View make_view(const mx::array& a, const char* prim) {
  if (a.dtype() != mx::float32)
    throw std::runtime_error(std::string("[") + prim + "] internal error: kernel inputs must be float32");
  View v;
  v.ptr = a.data<float>();
  v.size = static_cast<int64_t>(a.size());
  v.contiguous = a.flags().row_contiguous;
  if (!v.contiguous) {
    v.shape.assign(a.shape().begin(), a.shape().end());
    v.strides.assign(a.strides().begin(), a.strides().end());
  }
  return v;
}

// Registers the inputs with the encoder and returns the task's views of them.
inline std::vector<View> input_views(mx::cpu::CommandEncoder& enc, const std::vector<mx::array>& inputs,
                                     const char* prim) {
  std::vector<View> views;
  views.reserve(inputs.size());
  for (const auto& a : inputs) {
    enc.set_input_array(a);
    views.push_back(make_view(a, prim));
  }
  return views;
}

// Allocates and registers the (float32) outputs; returns their data pointers.
inline std::vector<float*> allocate_outputs(mx::cpu::CommandEncoder& enc, std::vector<mx::array>& outputs) {
  std::vector<float*> ptr;
  ptr.reserve(outputs.size());
  for (auto& o : outputs) {
    o.set_data(mx::allocator::malloc(o.nbytes()));
    enc.set_output_array(o);
    ptr.push_back(o.data<float>());
  }
  return ptr;
}

// Byte sizes of the outputs (for kernels that zero them in the task).
inline std::vector<size_t> output_bytes(const std::vector<mx::array>& outputs) {
  std::vector<size_t> n;
  for (const auto& o : outputs) n.push_back(o.nbytes());
  return n;
}

// `a` as float32 row-contiguous host data (`hold` keeps a converted or evaluated copy alive,
// `buf` a gathered one); nullptr for a non-floating dtype (the checked path reports it).
inline const float* host_floats(const mx::array& a, mx::array& hold, std::vector<float>& buf) {
  if (!mx::issubdtype(a.dtype(), mx::floating)) return nullptr;
  hold = a.dtype() == mx::float32 ? a : mx::astype(a, mx::float32, mx::default_stream(mx::Device::cpu));
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
