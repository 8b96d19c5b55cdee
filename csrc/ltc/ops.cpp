#include "ltc/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/isa.h"
#include "common/ops.h"
#include "ltc/cpu/kernel.h"
#include "ltc/primitives.h"
#include "mlx/ops.h"
#include "mlx/transforms.h"

namespace ncps::ltc {

namespace {

using common::shape_str;

// The cap of python/ncps/_checks.py: more sub-steps only cost time (10**9 would hang).
constexpr int kMaxOdeUnfolds = 10000;

// Throws std::invalid_argument (ValueError) "op: <name> must have shape <sym> = <want>, got ...".
struct Checker {
  std::string fn;
  const std::vector<mx::array>& in;
  void expect(int k, const mx::Shape& want, const char* sym) const {
    if (in[k].shape() != want)
      throw std::invalid_argument(fn + kInputNames[k] + " must have shape " + sym + " = " + shape_str(want) + ", got " +
                                  shape_str(in[k].shape()));
  }
  void real(int k0, int k1) const {
    for (int k = k0; k < k1; ++k)
      if (mx::issubdtype(in[k].dtype(), mx::complexfloating))
        throw std::invalid_argument(fn + kInputNames[k] + " must be a real array, got a complex dtype");
  }
};

// Checks ranks, shapes and dtypes of the 16 LTC inputs; `op` names the calling op in the messages.
Dims validate(const std::vector<mx::array>& in, int ode_unfolds, const char* op) {
  const Checker c{std::string(op) + ": ", in};
  c.real(0, kNumInputs);
  if (ode_unfolds < 1 || ode_unfolds > kMaxOdeUnfolds)
    throw std::invalid_argument(c.fn + "ode_unfolds must be an integer in [1, " + std::to_string(kMaxOdeUnfolds) +
                                "], got " + std::to_string(ode_unfolds));
  const mx::array& x = in[kX];
  if (x.ndim() != 3) throw std::invalid_argument(c.fn + "x must have shape (B, T, I), got " + shape_str(x.shape()));
  const mx::array& w = in[kW];
  if (w.ndim() != 2 || w.shape(0) != w.shape(1))
    throw std::invalid_argument(c.fn + "w must have shape (N, N), got " + shape_str(w.shape()));
  const Dims d{x.shape(0), x.shape(1), x.shape(2), w.shape(0)};
  c.expect(kH0, {d.B, d.N}, "(B, N)");
  c.expect(kDt, {d.B, d.T}, "(B, T)");
  for (int k = kSensoryW; k <= kSensoryMask; ++k) c.expect(k, {d.I, d.N}, "(I, N)");
  for (int k = kW; k <= kMask; ++k) c.expect(k, {d.N, d.N}, "(N, N)");
  for (int k = kCm; k <= kVleak; ++k) c.expect(k, {d.N}, "(N,)");
  return d;
}

// The 16 LTC inputs (validate), then the 5 LSTM inputs.
MixedDims validate_mixed(const std::vector<mx::array>& in, int ode_unfolds) {
  const char* op = "ltc_mixed_sequence";
  const Dims d = validate(in, ode_unfolds, op);
  const Checker c{std::string(op) + ": ", in};
  c.real(kNumInputs, kNumMixedInputs);
  const mx::array& u = in[kLstmInput];
  if (u.ndim() != 3 || u.shape(0) != d.B || u.shape(1) != d.T)
    throw std::invalid_argument(c.fn + "lstm_input must have shape (B, T, F) with (B, T) = (" + std::to_string(d.B) +
                                ", " + std::to_string(d.T) + "), got " + shape_str(u.shape()));
  const int F = u.shape(2);
  c.expect(kLstmInputW, {4 * d.N, F}, "(4N, F)");
  c.expect(kLstmInputB, {4 * d.N}, "(4N,)");
  c.expect(kLstmRecurrentW, {4 * d.N, d.N}, "(4N, N)");
  c.expect(kC0, {d.B, d.N}, "(B, N)");
  return MixedDims{d, F};
}

}  // namespace

std::vector<mx::array> sequence_node(std::vector<mx::array> in, int ode_unfolds, float epsilon, mx::StreamOrDevice s) {
  const bool mixed = in.size() == kNumMixedInputs;
  const char* op = mixed ? "ltc_mixed_sequence" : "ltc_sequence";
  const Dims d = mixed ? validate_mixed(in, ode_unfolds).d : validate(in, ode_unfolds, op);
  const mx::Stream st = common::cpu_stream(s, op);
  std::shared_ptr<mx::Primitive> node;
  if (mixed)
    node = std::make_shared<LTCMixedSequence>(st, ode_unfolds, epsilon);
  else
    node = std::make_shared<LTCSequence>(st, ode_unfolds, epsilon);
  const size_t n_out = mixed ? 2 : 1;  // states (, cells)
  // Half inputs go in as they are (the kernels read and write bfloat16 and float16); the
  // outputs take the promoted dtype of every input but the elapsed times.
  const mx::Dtype dtype = common::output_dtype(in, kDt);
  for (auto& a : in) a = common::as_storage(a, st);
  return mx::array::make_arrays(std::vector<mx::Shape>(n_out, {d.B, d.T, d.N}), std::vector<mx::Dtype>(n_out, dtype),
                                node, std::move(in));
}

}  // namespace ncps::ltc

// ---- the streaming step: LTCStepCore (prepared once) and ltc_step_now --------------------------

namespace ncps::ltc {

namespace {

float softplus(float z) { return z > 0.0f ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }

// `a` (a real array, checked by the caller) as float32 row-contiguous host data; `a` becomes
// the converted copy when it was not floating, `buf` holds a gathered one.
const float* host_real(mx::array& a, std::vector<float>& buf) {
  if (!mx::issubdtype(a.dtype(), mx::floating)) a = mx::astype(a, mx::float32, mx::default_stream(mx::Device::cpu));
  return common::host_floats(a, a, buf);
}

// `s` as flat arrays, padded with zero-weight synapses to a multiple of 16 (the widest SIMD).
FlatSynapses flatten(const SynapseList& s) {
  FlatSynapses f;
  f.rowptr = s.rowptr;
  f.padded = (s.size() + 15) / 16 * 16;
  f.wm.assign(f.padded, 0.0f);
  f.sl.assign(f.padded, 0.0f);
  f.c.assign(f.padded, 0.0f);
  f.erev.assign(f.padded, 0.0f);
  f.src.assign(f.padded, 0);
  for (int64_t e = 0; e < s.size(); ++e) {
    const Synapse& y = s.syn[e];
    f.wm[e] = y.wm;
    f.sl[e] = y.sl;
    f.c[e] = y.c;
    f.erev[e] = y.erev;
    f.src[e] = y.src;
  }
  return f;
}

void check_shape(const mx::array& a, const mx::Shape& want, const std::string& name, const char* sym) {
  if (a.shape() != want)
    throw std::invalid_argument("ltc_step_now: " + name + " must have shape " + sym + " = " + shape_str(want) +
                                ", got " + shape_str(a.shape()));
  if (mx::issubdtype(a.dtype(), mx::complexfloating))
    throw std::invalid_argument("ltc_step_now: " + name + " must be a real array, got a complex dtype");
}

}  // namespace

LTCStepCore::LTCStepCore(const std::vector<mx::array>& params, const std::optional<mx::array>& input_w,
                         const std::optional<mx::array>& input_b, const std::optional<mx::array>& output_w,
                         const std::optional<mx::array>& output_b, int motor_size, int ode_unfolds, float epsilon,
                         bool implicit_constraints, int input_size)
    : I_(input_size), M_(motor_size), K_(ode_unfolds), eps_(epsilon) {
  const std::string fn = "ltc_step_now: ";
  if (params.size() != 13)
    throw std::invalid_argument(fn + "params must hold the 13 solver parameters, got " + std::to_string(params.size()));
  if (ode_unfolds < 1 || ode_unfolds > kMaxOdeUnfolds)
    throw std::invalid_argument(fn + "ode_unfolds must be an integer in [1, " + std::to_string(kMaxOdeUnfolds) +
                                "], got " + std::to_string(ode_unfolds));
  if (input_size < 1) throw std::invalid_argument(fn + "input_size must be >= 1, got " + std::to_string(input_size));
  const mx::array& w = params[5];
  if (w.ndim() != 2 || w.shape(0) != w.shape(1))
    throw std::invalid_argument(fn + "w must have shape (N, N), got " + shape_str(w.shape()));
  N_ = w.shape(0);
  const int I = I_, N = N_;
  for (int k = 0; k < 13; ++k) {
    const mx::Shape want = k < 5 ? mx::Shape{I, N} : (k < 10 ? mx::Shape{N, N} : mx::Shape{N});
    check_shape(params[k], want, kInputNames[kSensoryW + k], k < 5 ? "(I, N)" : (k < 10 ? "(N, N)" : "(N,)"));
  }
  if (motor_size < 1 || motor_size > N)
    throw std::invalid_argument(fn + "motor_size must be in [1, N = " + std::to_string(N) + "], got " +
                                std::to_string(motor_size));
  const std::optional<mx::array>* maps[4] = {&input_w, &input_b, &output_w, &output_b};
  const char* map_names[4] = {"input_w", "input_b", "output_w", "output_b"};
  const int map_sizes[4] = {I, I, motor_size, motor_size};
  std::vector<float>* dst[4] = {&iw_, &ib_, &ow_, &ob_};
  for (int k = 0; k < 4; ++k)
    if (maps[k]->has_value()) {
      check_shape(**maps[k], {map_sizes[k]}, map_names[k], k < 2 ? "(I,)" : "(motor,)");
      *dst[k] = common::host_copy(**maps[k]);  // absent mappings stay empty: skipped
    }
  std::vector<std::vector<float>> q;
  for (int k = 0; k < 13; ++k) q.push_back(common::host_copy(params[k]));
  if (implicit_constraints)  // softplus of sensory_w, w, cm and gleak, as the reference applies it
    for (int k : {0, 5, 10, 11})
      for (float& z : q[k]) z = softplus(z);
  sens_ = build_synapses(q[0].data(), q[1].data(), q[2].data(), q[3].data(), q[4].data(), I, N);
  rec_ = build_synapses(q[5].data(), q[6].data(), q[7].data(), q[8].data(), q[9].data(), N, N);
  sens_flat_ = flatten(sens_);
  rec_flat_ = flatten(rec_);
  cm_ = std::move(q[10]);
  gl_ = std::move(q[11]);
  vl_ = std::move(q[12]);
  std::vector<mx::array> given(params.begin(), params.end());
  for (const auto* m : maps)
    if (m->has_value()) given.push_back(**m);
  dtype_ = common::output_dtype(given);
}

std::pair<mx::array, mx::array> LTCStepCore::run(int B, const float* x, const float* h, const float* dt) {
  const int I = I_, N = N_;
  // The input mapping, then the kernel's one-step forward (its T = 1 sequence).
  thread_local std::vector<float> xm;
  xm.assign(x, x + static_cast<int64_t>(B) * I);
  if (!iw_.empty())
    for (int b = 0; b < B; ++b)
      for (int j = 0; j < I; ++j) xm[b * I + j] *= iw_[j];
  if (!ib_.empty())
    for (int b = 0; b < B; ++b)
      for (int j = 0; j < I; ++j) xm[b * I + j] += ib_[j];
  mx::array state(mx::allocator::malloc(static_cast<size_t>(B) * N * sizeof(float)), {B, N}, mx::float32);
  Problem p;
  p.B = B;
  p.T = 1;
  p.I = I;
  p.N = N;
  p.K = K_;
  p.eps = eps_;
  p.x = xm.data();
  p.h0 = h;
  p.dt = dt;
  p.cm = cm_.data();
  p.gl = gl_.data();
  p.vl = vl_.data();
  p.sens = &sens_;
  p.rec = &rec_;
  if (B == 1) {
    // One sample: the kernel that vectorises over synapses instead of samples.
    const SampleProblem sp{&p, &sens_flat_, &rec_flat_};
    thread_local std::vector<float> ws;
    ws.resize(static_cast<size_t>(2 * std::max(sens_flat_.padded, rec_flat_.padded) + 4 * N));
    common::dispatch([&]<class Isa>() { cpu::sample_forward<Isa>(sp, state.data<float>(), ws.data()); });
  } else {
    common::dispatch([&]<class Isa>() { cpu::forward<Isa>(p, {state.data<float>()}); });
  }
  return {readout(state), std::move(state)};
}

mx::array LTCStepCore::readout(const mx::array& state) const {
  const int B = state.shape(0), N = N_;
  mx::array y(mx::allocator::malloc(static_cast<size_t>(B) * M_ * sizeof(float)), {B, M_}, mx::float32);
  const float* s = state.data<float>();
  float* yo = y.data<float>();
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < M_; ++j) {
      float v = s[static_cast<int64_t>(b) * N + j];
      if (!ow_.empty()) v *= ow_[j];
      if (!ob_.empty()) v += ob_[j];
      yo[static_cast<int64_t>(b) * M_ + j] = v;
    }
  return y;
}

std::pair<mx::array, mx::array> ltc_step_now(const mx::array& x, const mx::array& h0, const mx::array& dt,
                                             const std::vector<mx::array>& params,
                                             const std::optional<mx::array>& input_w,
                                             const std::optional<mx::array>& input_b,
                                             const std::optional<mx::array>& output_w,
                                             const std::optional<mx::array>& output_b, int motor_size, int ode_unfolds,
                                             float epsilon, bool implicit_constraints) {
  if (x.ndim() != 2 || x.shape(1) < 1)
    throw std::invalid_argument("ltc_step_now: x must have shape (B, I), got " + shape_str(x.shape()));
  // The parameters checked and prepared (a control loop keeps the prepared step itself,
  // ncps._ext.LTCStep, built once per parameter set by the cell), then the step's arguments.
  LTCStepCore core(params, input_w, input_b, output_w, output_b, motor_size, ode_unfolds, epsilon, implicit_constraints,
                   x.shape(1));
  const int B = x.shape(0), N = core.state_size();
  check_shape(x, {B, x.shape(1)}, "x", "(B, I)");
  check_shape(h0, {B, N}, "h0", "(B, N)");
  check_shape(dt, {B, 1}, "dt", "(B, 1)");
  mx::array hold[3] = {x, h0, dt};
  std::vector<float> bufs[3];
  const float* p[3];
  for (int i = 0; i < 3; ++i) p[i] = host_real(hold[i], bufs[i]);
  return core.run(B, p[0], p[1], p[2]);
}

}  // namespace ncps::ltc
