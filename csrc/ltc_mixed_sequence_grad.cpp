// LTCMixedSequenceGrad: fused BPTT through the LSTM and every LTC sub-step of LTCMixedSequence
// (see ltc_mixed_kernel.h).
#include "ltc_mixed_sequence_grad.h"

#include <cstring>
#include <memory>
#include <stdexcept>

#include "ltc_mixed_common.h"
#include "ltc_mixed_kernel.h"
#include "ltc_mixed_sequence.h"
#include "ltc_sequence_grad.h"
#include "mlx/backend/cpu/encoder.h"

namespace ncps {

namespace {
// LTCMixedSequenceGrad output -> LTCMixedSequence input.
constexpr int kInputOf[kNumLTCMixedGradOutputs] = {
    kX, kH0, kDt, kSensoryW, kSensorySigma, kSensoryMu, kSensoryErev, kW, kSigma, kMu, kErev, kCm, kGleak, kVleak,
    kLstmInput, kLstmInputW, kLstmInputB, kLstmRecurrentW, kC0};
static_assert(kNumLTCGradOutputs == 14, "the first 14 outputs are LTCSequenceGrad's");
}  // namespace

int ltc_mixed_grad_output_index(int input) {
  if (input >= 0 && input < kNumLTCInputs) return ltc_grad_output_index(input);
  if (input >= kNumLTCInputs && input < kNumLTCMixedInputs) return kNumLTCGradOutputs + (input - kNumLTCInputs);
  return -1;
}

std::vector<mx::array> ltc_mixed_sequence_grad(const std::vector<mx::array>& primals, const mx::array& states,
                                               const mx::array& cells, const mx::array& cot_states,
                                               const mx::array& cot_cells, int ode_unfolds, float epsilon,
                                               mx::Stream stream) {
  std::vector<mx::array> in(primals.begin(), primals.end());
  in.push_back(states);
  in.push_back(cells);
  in.push_back(mx::contiguous(mx::astype(cot_states, mx::float32, stream), false, stream));
  in.push_back(mx::contiguous(mx::astype(cot_cells, mx::float32, stream), false, stream));
  std::vector<mx::Shape> shapes;
  for (int o = 0; o < kNumLTCMixedGradOutputs; ++o) shapes.push_back(primals[kInputOf[o]].shape());
  std::vector<mx::Dtype> dtypes(kNumLTCMixedGradOutputs, mx::float32);
  return mx::array::make_arrays(std::move(shapes), dtypes,
                                std::make_shared<LTCMixedSequenceGrad>(stream, ode_unfolds, epsilon), in);
}

void LTCMixedSequenceGrad::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  if (inputs.size() != kNumLTCMixedInputs + 4 || outputs.size() != kNumLTCMixedGradOutputs)
    throw std::runtime_error("[LTCMixedSequenceGrad] internal error: wrong number of inputs or outputs");
  auto& enc = mx::cpu::get_command_encoder(stream());
  std::vector<ltc::View> views = detail::input_views(enc, inputs);
  auto [outp, outn] = detail::allocate_outputs(enc, outputs);
  const detail::MixedDims md = detail::mixed_dims_of(inputs);
  enc.dispatch([views = std::move(views), outp = std::move(outp), outn = std::move(outn), md, K = ode_unfolds_,
                eps = epsilon_]() {
    for (size_t o = 0; o < outp.size(); ++o)
      if (outn[o]) std::memset(outp[o], 0, outn[o]);
    std::vector<ltc::View> prim(views.begin(), views.begin() + kNumLTCMixedInputs);
    detail::MixedProblemData pd(prim, md, K, eps);
    std::vector<float> bufs[4];
    const float* extra[4];
    for (int k = 0; k < 4; ++k) extra[k] = views[kNumLTCMixedInputs + k].resolve(bufs[k]);
    ltc::Grads g{outp[0], outp[1], outp[2], outp[3], outp[4], outp[5], outp[6],
                 outp[7], outp[8], outp[9], outp[10], outp[11], outp[12], outp[13]};
    ltc::MixedGrads mg{outp[14], outp[15], outp[16], outp[17], outp[18]};
    ltc::mixed_backward(pd.m, extra[0], extra[1], extra[2], extra[3], g, mg);
  });
}

void LTCMixedSequenceGrad::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  throw std::runtime_error("[LTCMixedSequenceGrad] has no GPU kernel; run it on the CPU stream");
}

std::vector<mx::array> LTCMixedSequenceGrad::jvp(const std::vector<mx::array>&, const std::vector<mx::array>&,
                                                 const std::vector<int>&) {
  throw std::runtime_error("[LTCMixedSequenceGrad] higher-order derivatives of ltc_mixed_sequence are not implemented");
}

std::vector<mx::array> LTCMixedSequenceGrad::vjp(const std::vector<mx::array>&, const std::vector<mx::array>&,
                                                 const std::vector<int>&, const std::vector<mx::array>&) {
  throw std::runtime_error("[LTCMixedSequenceGrad] higher-order derivatives of ltc_mixed_sequence are not implemented");
}

std::pair<std::vector<mx::array>, std::vector<int>> LTCMixedSequenceGrad::vmap(const std::vector<mx::array>&,
                                                                               const std::vector<int>&) {
  throw std::runtime_error("[LTCMixedSequenceGrad] vmap is not implemented");
}

bool LTCMixedSequenceGrad::is_equivalent(const mx::Primitive& other) const {
  auto* o = dynamic_cast<const LTCMixedSequenceGrad*>(&other);
  return o != nullptr && o->ode_unfolds_ == ode_unfolds_ && o->epsilon_ == epsilon_;
}

std::vector<mx::Shape> LTCMixedSequenceGrad::output_shapes(const std::vector<mx::array>& inputs) {
  std::vector<mx::Shape> shapes;
  for (int o = 0; o < kNumLTCMixedGradOutputs; ++o) shapes.push_back(inputs[kInputOf[o]].shape());
  return shapes;
}

}  // namespace ncps
