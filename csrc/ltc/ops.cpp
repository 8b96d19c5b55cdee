#include "ltc/ops.h"

#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/ops.h"
#include "common/isa.h"
#include "ltc/cpu/problem.h"
#include "ltc/primitives.h"
#include "mlx/ops.h"
#include "mlx/transforms.h"

namespace ncps::ltc {

namespace {

using common::shape_str;

// The cap of python/ncps/_checks.py: more sub-steps only cost time (10**9 would hang).
constexpr int kMaxOdeUnfolds = 10000;

const char* const kInputNames[kNumMixedInputs] = {
    "x", "h0", "dt", "sensory_w", "sensory_sigma", "sensory_mu", "sensory_erev", "sensory_mask",
    "w", "sigma", "mu", "erev", "mask", "cm", "gleak", "vleak",
    "lstm_input", "lstm_input_w", "lstm_input_b", "lstm_recurrent_w", "c0"};

// Throws std::invalid_argument (ValueError) "op: <name> must have shape <sym> = <want>, got ...".
struct Checker {
  std::string fn;
  const std::vector<mx::array>& in;
  void expect(int k, const mx::Shape& want, const char* sym) const {
    if (in[k].shape() != want)
      throw std::invalid_argument(fn + kInputNames[k] + " must have shape " + sym + " = " + shape_str(want) +
                                  ", got " + shape_str(in[k].shape()));
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

// The outputs of a float32 node in x's floating dtype (float32 for non-floating x).
std::vector<mx::array> in_dtype_of(std::vector<mx::array> out, const mx::array& x, mx::Stream st) {
  if (mx::issubdtype(x.dtype(), mx::floating) && x.dtype() != mx::float32)
    for (auto& o : out) o = mx::astype(o, x.dtype(), st);
  return out;
}

// Float32 inputs; strided ones are gathered inside the task (common::View), not copied in the graph.
std::vector<mx::array> as_float32(std::vector<mx::array> in, mx::Stream st) {
  for (auto& a : in)
    if (a.dtype() != mx::float32) a = mx::astype(a, mx::float32, st);
  return in;
}

}  // namespace

mx::array ltc_sequence(const mx::array& x, const mx::array& h0, const mx::array& dt, const mx::array& sensory_w,
                       const mx::array& sensory_sigma, const mx::array& sensory_mu, const mx::array& sensory_erev,
                       const mx::array& sensory_mask, const mx::array& w, const mx::array& sigma, const mx::array& mu,
                       const mx::array& erev, const mx::array& mask, const mx::array& cm, const mx::array& gleak,
                       const mx::array& vleak, int ode_unfolds, float epsilon, mx::StreamOrDevice s) {
  std::vector<mx::array> in = {x, h0, dt, sensory_w, sensory_sigma, sensory_mu, sensory_erev, sensory_mask,
                               w, sigma, mu, erev, mask, cm, gleak, vleak};
  const Dims d = validate(in, ode_unfolds, "ltc_sequence");
  const mx::Stream st = common::cpu_stream(s, "ltc_sequence");
  mx::array out({d.B, d.T, d.N}, mx::float32, std::make_shared<LTCSequence>(st, ode_unfolds, epsilon),
                as_float32(std::move(in), st));
  return in_dtype_of({out}, x, st)[0];
}

std::pair<mx::array, mx::array> ltc_mixed_sequence(
    const mx::array& x, const mx::array& h0, const mx::array& dt, const mx::array& sensory_w,
    const mx::array& sensory_sigma, const mx::array& sensory_mu, const mx::array& sensory_erev,
    const mx::array& sensory_mask, const mx::array& w, const mx::array& sigma, const mx::array& mu,
    const mx::array& erev, const mx::array& mask, const mx::array& cm, const mx::array& gleak,
    const mx::array& vleak, const mx::array& lstm_input, const mx::array& lstm_input_w,
    const mx::array& lstm_input_b, const mx::array& lstm_recurrent_w, const mx::array& c0, int ode_unfolds,
    float epsilon, mx::StreamOrDevice s) {
  std::vector<mx::array> in = {x,    h0,    dt,   sensory_w, sensory_sigma, sensory_mu,   sensory_erev,
                               sensory_mask, w, sigma, mu, erev, mask, cm, gleak, vleak,
                               lstm_input, lstm_input_w, lstm_input_b, lstm_recurrent_w, c0};
  const MixedDims md = validate_mixed(in, ode_unfolds);
  const mx::Stream st = common::cpu_stream(s, "ltc_mixed_sequence");
  const mx::Shape shape{md.d.B, md.d.T, md.d.N};
  auto out = in_dtype_of(mx::array::make_arrays({shape, shape}, {mx::float32, mx::float32},
                                                std::make_shared<LTCMixedSequence>(st, ode_unfolds, epsilon),
                                                as_float32(std::move(in), st)),
                         x, st);
  return {out[0], out[1]};
}

}  // namespace ncps::ltc

// ---- ltc_step_now: one immediate step for control loops ----------------------------------------

namespace ncps::ltc {

namespace {

// The cell's parameters as the kernel needs them, prepared once per parameter set.
struct PreparedStep {
  std::vector<std::uintptr_t> ids;  // identities of the arrays it was built from
  std::vector<mx::array> keep;      // holds them, so an identity is never reused while cached
  bool implicit = false;
  int I = 0, N = 0;
  cpu::SynapseList sens, rec;
  std::vector<float> cm, gl, vl, iw, ib, ow, ob;  // mappings empty when absent
};

float softplus(float z) { return z > 0.0f ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z)); }

// A contiguous float32 copy of an evaluated array.
std::vector<float> host_floats(mx::array a) {
  if (a.dtype() != mx::float32) a = mx::astype(a, mx::float32, mx::default_stream(mx::Device::cpu));
  mx::eval(a);
  std::vector<float> buf;
  const float* p = common::make_view(a, "ltc_step_now").resolve(buf);
  return std::vector<float>(p, p + a.size());
}

// `all`: the 13 solver parameters, then input_w, input_b, output_w, output_b (`present` says which
// of the four are real arrays rather than placeholders).
const PreparedStep& prepared(const std::vector<mx::array>& all, const bool present[4], bool implicit, int I, int N) {
  // A few entries per thread: a control loop alternating between a handful of cells stays cached.
  thread_local std::vector<std::unique_ptr<PreparedStep>> cache;
  std::vector<std::uintptr_t> ids;
  ids.reserve(all.size());
  for (const auto& a : all) ids.push_back(a.id());
  for (size_t k = 0; k < cache.size(); ++k)
    if (cache[k]->ids == ids && cache[k]->implicit == implicit) {
      if (k) std::swap(cache[k], cache[0]);  // most recent first
      return *cache[0];
    }
  auto e = std::make_unique<PreparedStep>();
  e->ids = ids;
  e->keep = all;
  e->implicit = implicit;
  e->I = I;
  e->N = N;
  std::vector<std::vector<float>> q;
  for (int k = 0; k < 13; ++k) q.push_back(host_floats(all[k]));
  auto positive = [&](std::vector<float>& v) {
    if (implicit)
      for (float& z : v) z = softplus(z);
  };
  positive(q[0]);   // sensory_w
  positive(q[5]);   // w
  positive(q[10]);  // cm
  positive(q[11]);  // gleak
  e->sens = cpu::build_synapses(q[0].data(), q[1].data(), q[2].data(), q[3].data(), q[4].data(), I, N);
  e->rec = cpu::build_synapses(q[5].data(), q[6].data(), q[7].data(), q[8].data(), q[9].data(), N, N);
  e->cm = std::move(q[10]);
  e->gl = std::move(q[11]);
  e->vl = std::move(q[12]);
  std::vector<float>* maps[4] = {&e->iw, &e->ib, &e->ow, &e->ob};
  for (int k = 0; k < 4; ++k)
    if (present[k]) *maps[k] = host_floats(all[13 + k]);
  if (cache.size() >= 8) cache.pop_back();
  cache.insert(cache.begin(), std::move(e));
  return *cache[0];
}

// A float32, evaluated, row-contiguous pointer to `a` (gathered into `buf` when strided).
const float* host_ptr(mx::array& a, std::vector<float>& buf) {
  if (a.dtype() != mx::float32) a = mx::astype(a, mx::float32, mx::default_stream(mx::Device::cpu));
  if (!a.is_available()) mx::eval(a);  // a no-op check for parameters and a previous step's state
  return common::make_view(a, "ltc_step_now").resolve(buf);
}

}  // namespace

std::pair<mx::array, mx::array> ltc_step_now(const mx::array& x, const mx::array& h0, const mx::array& dt,
                                             const std::vector<mx::array>& params,
                                             const std::optional<mx::array>& input_w,
                                             const std::optional<mx::array>& input_b,
                                             const std::optional<mx::array>& output_w,
                                             const std::optional<mx::array>& output_b, int motor_size,
                                             int ode_unfolds, float epsilon, bool implicit_constraints) {
  const std::string fn = "ltc_step_now: ";
  if (params.size() != 13)
    throw std::invalid_argument(fn + "params must hold the 13 solver parameters, got " + std::to_string(params.size()));
  if (ode_unfolds < 1)
    throw std::invalid_argument(fn + "ode_unfolds must be a positive integer, got " + std::to_string(ode_unfolds));
  if (x.ndim() != 2) throw std::invalid_argument(fn + "x must have shape (B, I), got " + shape_str(x.shape()));
  const int B = x.shape(0), I = x.shape(1);
  const mx::array& w = params[5];
  if (w.ndim() != 2 || w.shape(0) != w.shape(1))
    throw std::invalid_argument(fn + "w must have shape (N, N), got " + shape_str(w.shape()));
  const int N = w.shape(0);
  auto expect = [&](const mx::array& a, const mx::Shape& want, const std::string& name, const char* sym) {
    if (a.shape() != want)
      throw std::invalid_argument(fn + name + " must have shape " + sym + " = " + shape_str(want) + ", got " +
                                  shape_str(a.shape()));
    if (mx::issubdtype(a.dtype(), mx::complexfloating))
      throw std::invalid_argument(fn + name + " must be a real array, got a complex dtype");
  };
  expect(x, {B, I}, "x", "(B, I)");
  expect(h0, {B, N}, "h0", "(B, N)");
  expect(dt, {B, 1}, "dt", "(B, 1)");
  for (int k = 0; k < 13; ++k) {
    const mx::Shape want = k < 5 ? mx::Shape{I, N} : (k < 10 ? mx::Shape{N, N} : mx::Shape{N});
    expect(params[k], want, kInputNames[kSensoryW + k], k < 5 ? "(I, N)" : (k < 10 ? "(N, N)" : "(N,)"));
  }
  if (motor_size < 1 || motor_size > N)
    throw std::invalid_argument(fn + "motor_size must be in [1, N = " + std::to_string(N) + "], got " +
                                std::to_string(motor_size));
  // Absent mappings are 0-d placeholders in the cache key (their identity never matches a real array).
  std::vector<mx::array> all(params);
  const std::optional<mx::array>* maps[4] = {&input_w, &input_b, &output_w, &output_b};
  const char* map_names[4] = {"input_w", "input_b", "output_w", "output_b"};
  const int map_sizes[4] = {I, I, motor_size, motor_size};
  thread_local const mx::array none(0.0f);
  bool present[4];
  for (int k = 0; k < 4; ++k) {
    present[k] = maps[k]->has_value();
    if (present[k]) {
      expect(**maps[k], {map_sizes[k]}, map_names[k], k < 2 ? "(I,)" : "(motor,)");
      all.push_back(**maps[k]);
    } else {
      all.push_back(none);
    }
  }
  const PreparedStep& ps = prepared(all, present, implicit_constraints, I, N);

  thread_local std::vector<float> xbuf, hbuf, dbuf, xm;
  mx::array xa = x, ha = h0, da = dt;
  const float* xp = host_ptr(xa, xbuf);
  const float* hp = host_ptr(ha, hbuf);
  const float* dp = host_ptr(da, dbuf);
  // The input mapping, then the kernel's one-step forward (its T = 1 sequence).
  xm.assign(xp, xp + static_cast<int64_t>(B) * I);
  if (!ps.iw.empty())
    for (int b = 0; b < B; ++b)
      for (int j = 0; j < I; ++j) xm[b * I + j] *= ps.iw[j];
  if (!ps.ib.empty())
    for (int b = 0; b < B; ++b)
      for (int j = 0; j < I; ++j) xm[b * I + j] += ps.ib[j];
  cpu::Problem p;
  p.B = B;
  p.T = 1;
  p.I = I;
  p.N = N;
  p.K = ode_unfolds;
  p.eps = epsilon;
  p.x = xm.data();
  p.h0 = hp;
  p.dt = dp;
  p.cm = ps.cm.data();
  p.gl = ps.gl.data();
  p.vl = ps.vl.data();
  p.sens = &ps.sens;
  p.rec = &ps.rec;
  mx::array state(mx::allocator::malloc(static_cast<size_t>(B) * N * sizeof(float)), {B, N}, mx::float32);
  common::dispatch([&]<class Isa>() { cpu::forward<Isa>(p, state.data<float>()); });
  mx::array y(mx::allocator::malloc(static_cast<size_t>(B) * motor_size * sizeof(float)), {B, motor_size},
              mx::float32);
  const float* s = state.data<float>();
  float* yo = y.data<float>();
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < motor_size; ++j) {
      float v = s[static_cast<int64_t>(b) * N + j];
      if (!ps.ow.empty()) v *= ps.ow[j];
      if (!ps.ob.empty()) v += ps.ob[j];
      yo[static_cast<int64_t>(b) * motor_size + j] = v;
    }
  return {y, state};
}

}  // namespace ncps::ltc
