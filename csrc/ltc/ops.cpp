#include "ltc/ops.h"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/ops.h"
#include "ltc/primitives.h"
#include "mlx/ops.h"

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
