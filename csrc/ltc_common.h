// Shared by LTCSequence and LTCSequenceGrad: argument validation, and turning the primitive's
// input arrays into the kernel's Problem inside the dispatched task.
#pragma once

#include <array>
#include <sstream>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "ltc_kernel.h"
#include "mlx/backend/cpu/encoder.h"
#include "ltc_sequence.h"

namespace ncps::detail {

inline const char* const kInputNames[kNumLTCInputs] = {
    "x", "h0", "dt", "sensory_w", "sensory_sigma", "sensory_mu", "sensory_erev", "sensory_mask",
    "w", "sigma", "mu", "erev", "mask", "cm", "gleak", "vleak"};

inline std::string shape_str(const mx::Shape& s) {
  std::ostringstream o;
  o << "(";
  for (size_t d = 0; d < s.size(); ++d) o << (d ? ", " : "") << s[d];
  if (s.size() == 1) o << ",";
  o << ")";
  return o.str();
}

struct Dims {
  int B, T, I, N;
};

// Checks ranks, shapes and dtypes of the 16 inputs of ltc_sequence; throws std::invalid_argument
// (ValueError in Python) naming the argument and the expected shape.
// `op` names the calling op in the messages; `in` may hold further arrays after the 16.
inline Dims validate(const std::vector<mx::array>& in, int ode_unfolds, const char* op = "ltc_sequence") {
  const std::string fn = std::string(op) + ": ";
  if (in.size() < kNumLTCInputs)
    throw std::invalid_argument(fn + "expected 16 arrays, got " + std::to_string(in.size()));
  for (int k = 0; k < kNumLTCInputs; ++k) {
    if (mx::issubdtype(in[k].dtype(), mx::complexfloating))
      throw std::invalid_argument(fn + kInputNames[k] + " must be a real array, got a complex dtype");
  }
  if (ode_unfolds < 1)
    throw std::invalid_argument(fn + "ode_unfolds must be a positive integer, got " + std::to_string(ode_unfolds));
  const mx::array& x = in[kX];
  if (x.ndim() != 3)
    throw std::invalid_argument(fn + "x must have shape (B, T, I), got " + shape_str(x.shape()));
  const mx::array& w = in[kW];
  if (w.ndim() != 2 || w.shape(0) != w.shape(1))
    throw std::invalid_argument(fn + "w must have shape (N, N), got " + shape_str(w.shape()));
  Dims d{x.shape(0), x.shape(1), x.shape(2), w.shape(0)};
  auto expect = [&](int k, const mx::Shape& want, const char* sym) {
    if (in[k].shape() != want)
      throw std::invalid_argument(fn + kInputNames[k] + " must have shape " + sym + " = " + shape_str(want) +
                                  ", got " + shape_str(in[k].shape()));
  };
  expect(kH0, {d.B, d.N}, "(B, N)");
  expect(kDt, {d.B, d.T}, "(B, T)");
  for (int k = kSensoryW; k <= kSensoryMask; ++k) expect(k, {d.I, d.N}, "(I, N)");
  for (int k = kW; k <= kMask; ++k) expect(k, {d.N, d.N}, "(N, N)");
  for (int k = kCm; k <= kVleak; ++k) expect(k, {d.N}, "(N,)");
  return d;
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

// Registers the inputs with the encoder and returns the kernel's views of them.
std::vector<ltc::View> input_views(mx::cpu::CommandEncoder& enc, const std::vector<mx::array>& inputs);

// Allocates and registers the outputs; returns their float pointers and byte sizes.
struct Outputs {
  std::vector<float*> ptr;
  std::vector<size_t> bytes;
};
inline Outputs allocate_outputs(mx::cpu::CommandEncoder& enc, std::vector<mx::array>& outputs) {
  Outputs out;
  for (auto& o : outputs) {
    o.set_data(mx::allocator::malloc(o.nbytes()));
    enc.set_output_array(o);
    out.ptr.push_back(o.data<float>());
    out.bytes.push_back(o.nbytes());
  }
  return out;
}

inline ltc::View make_view(const mx::array& a) {
  if (a.dtype() != mx::float32)
    throw std::runtime_error("[ltc_sequence] internal error: kernel inputs must be float32");
  ltc::View v;
  v.ptr = a.data<float>();
  v.contiguous = a.flags().row_contiguous;
  v.size = static_cast<int64_t>(a.size());
  if (!v.contiguous) {
    v.shape.assign(a.shape().begin(), a.shape().end());
    v.strides.assign(a.strides().begin(), a.strides().end());
  }
  return v;
}

// What a task owns while it runs: gathered copies of strided inputs and the synapse lists.
struct ProblemData {
  std::array<std::vector<float>, kNumLTCInputs> bufs;
  ltc::SynapseList sens, rec;
  ltc::Problem p;

  ProblemData(const std::vector<ltc::View>& v, const Dims& d, int K, float eps) {
    const float* q[kNumLTCInputs];
    for (int k = 0; k < kNumLTCInputs; ++k) q[k] = v[k].resolve(bufs[k]);
    sens = ltc::build_synapses(q[kSensoryW], q[kSensorySigma], q[kSensoryMu], q[kSensoryErev], q[kSensoryMask],
                               d.I, d.N);
    rec = ltc::build_synapses(q[kW], q[kSigma], q[kMu], q[kErev], q[kMask], d.N, d.N);
    p.B = d.B;
    p.T = d.T;
    p.I = d.I;
    p.N = d.N;
    p.K = K;
    p.eps = eps;
    p.x = q[kX];
    p.h0 = q[kH0];
    p.dt = q[kDt];
    p.cm = q[kCm];
    p.gl = q[kGleak];
    p.vl = q[kVleak];
    p.sens = &sens;
    p.rec = &rec;
  }
  ProblemData(const ProblemData&) = delete;
  ProblemData& operator=(const ProblemData&) = delete;
};

inline std::vector<ltc::View> input_views(mx::cpu::CommandEncoder& enc, const std::vector<mx::array>& inputs) {
  std::vector<ltc::View> views;
  views.reserve(inputs.size());
  for (const auto& a : inputs) {
    enc.set_input_array(a);
    views.push_back(make_view(a));
  }
  return views;
}

inline Dims dims_of(const std::vector<mx::array>& in) {
  return Dims{in[kX].shape(0), in[kX].shape(1), in[kX].shape(2), in[kW].shape(0)};
}

}  // namespace ncps::detail
