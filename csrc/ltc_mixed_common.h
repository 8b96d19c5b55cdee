// Shared by LTCMixedSequence and LTCMixedSequenceGrad: validation of the 21 inputs, and the
// kernel's MixedProblem built from the primitive's input arrays inside the dispatched task.
#pragma once

#include <array>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ltc_common.h"
#include "ltc_mixed_kernel.h"
#include "ltc_mixed_sequence.h"

namespace ncps::detail {

constexpr int kNumLSTMInputs = 5;
static_assert(kNumLTCMixedInputs == kNumLTCInputs + kNumLSTMInputs);

// Position of LTCMixedSequence input k among the LSTM inputs.
constexpr int lstm_slot(int k) { return k - kNumLTCInputs; }

inline const char* const kMixedInputNames[kNumLSTMInputs] = {
    "lstm_input", "lstm_input_w", "lstm_input_b", "lstm_recurrent_w", "c0"};

struct MixedDims {
  Dims d;
  int F;
};

// Checks the 16 LTC inputs (validate) and the 5 LSTM inputs; std::invalid_argument (ValueError)
// naming the argument and the expected shape.
inline MixedDims validate_mixed(const std::vector<mx::array>& in, int ode_unfolds) {
  const char* op = "ltc_mixed_sequence";
  const std::string fn = std::string(op) + ": ";
  if (in.size() != kNumLTCMixedInputs)
    throw std::invalid_argument(fn + "expected 21 arrays, got " + std::to_string(in.size()));
  const Dims d = validate(in, ode_unfolds, op);
  for (int k = kNumLTCInputs; k < kNumLTCMixedInputs; ++k)
    if (mx::issubdtype(in[k].dtype(), mx::complexfloating))
      throw std::invalid_argument(fn + kMixedInputNames[lstm_slot(k)] + " must be a real array, got a complex dtype");
  const mx::array& u = in[kLstmInput];
  if (u.ndim() != 3 || u.shape(0) != d.B || u.shape(1) != d.T)
    throw std::invalid_argument(fn + "lstm_input must have shape (B, T, F) with (B, T) = (" + std::to_string(d.B) +
                                ", " + std::to_string(d.T) + "), got " + shape_str(u.shape()));
  const int F = u.shape(2);
  auto expect = [&](int k, const mx::Shape& want, const char* sym) {
    if (in[k].shape() != want)
      throw std::invalid_argument(fn + kMixedInputNames[lstm_slot(k)] + " must have shape " + sym + " = " +
                                  shape_str(want) + ", got " + shape_str(in[k].shape()));
  };
  expect(kLstmInputW, {4 * d.N, F}, "(4N, F)");
  expect(kLstmInputB, {4 * d.N}, "(4N,)");
  expect(kLstmRecurrentW, {4 * d.N, d.N}, "(4N, N)");
  expect(kC0, {d.B, d.N}, "(B, N)");
  return MixedDims{d, F};
}

inline MixedDims mixed_dims_of(const std::vector<mx::array>& in) {
  return MixedDims{dims_of(in), in[kLstmInput].shape(2)};
}

// What a task owns while it runs: the LTC ProblemData plus the LSTM's MixedProblem.
struct MixedProblemData {
  std::unique_ptr<ProblemData> ltc;
  std::array<std::vector<float>, kNumLSTMInputs> bufs;
  ltc::MixedProblem m;

  MixedProblemData(const std::vector<ltc::View>& v, const MixedDims& md, int K, float eps) {
    std::vector<ltc::View> lv(v.begin(), v.begin() + kNumLTCInputs);
    ltc = std::make_unique<ProblemData>(lv, md.d, K, eps);
    const float* q[kNumLSTMInputs];
    for (int k = 0; k < kNumLSTMInputs; ++k) q[k] = v[kNumLTCInputs + k].resolve(bufs[k]);
    m.ltc = &ltc->p;
    m.F = md.F;
    m.u = q[lstm_slot(kLstmInput)];
    m.bias = q[lstm_slot(kLstmInputB)];
    m.c0 = q[lstm_slot(kC0)];
    m.set_weights(q[lstm_slot(kLstmInputW)], q[lstm_slot(kLstmRecurrentW)]);
  }
  MixedProblemData(const MixedProblemData&) = delete;
  MixedProblemData& operator=(const MixedProblemData&) = delete;
};

}  // namespace ncps::detail
