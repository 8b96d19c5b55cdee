// LTCSequenceGrad: fused BPTT through every sub-step of LTCSequence (see ltc_kernel.h).
#include "ltc_sequence_grad.h"

#include <cstring>
#include <memory>
#include <stdexcept>

#include "ltc_common.h"
#include "ltc_kernel.h"
#include "ltc_sequence.h"
#include "mlx/backend/cpu/encoder.h"

namespace ncps {

namespace {
// LTCSequence input -> LTCSequenceGrad output.
constexpr int kOutputOf[kNumLTCInputs] = {0, 1, 2, 3, 4, 5, 6, -1, 7, 8, 9, 10, -1, 11, 12, 13};
// LTCSequenceGrad output -> LTCSequence input.
constexpr int kInputOf[kNumLTCGradOutputs] = {kX, kH0, kDt, kSensoryW, kSensorySigma, kSensoryMu, kSensoryErev,
                                              kW, kSigma, kMu, kErev, kCm, kGleak, kVleak};
}  // namespace

int ltc_grad_output_index(int input) {
  return input >= 0 && input < kNumLTCInputs ? kOutputOf[input] : -1;
}

std::vector<mx::array> ltc_sequence_grad(const std::vector<mx::array>& primals, const mx::array& states,
                                         const mx::array& cotangent, int ode_unfolds, float epsilon,
                                         mx::Stream stream) {
  std::vector<mx::array> in(primals.begin(), primals.end());
  in.push_back(states);
  in.push_back(mx::contiguous(mx::astype(cotangent, mx::float32, stream), false, stream));
  std::vector<mx::Shape> shapes;
  for (int o = 0; o < kNumLTCGradOutputs; ++o) shapes.push_back(primals[kInputOf[o]].shape());
  std::vector<mx::Dtype> dtypes(kNumLTCGradOutputs, mx::float32);
  return mx::array::make_arrays(std::move(shapes), dtypes,
                                std::make_shared<LTCSequenceGrad>(stream, ode_unfolds, epsilon), in);
}

void LTCSequenceGrad::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  if (inputs.size() != kNumLTCInputs + 2 || outputs.size() != kNumLTCGradOutputs)
    throw std::runtime_error("[LTCSequenceGrad] internal error: wrong number of inputs or outputs");
  auto& enc = mx::cpu::get_command_encoder(stream());
  std::vector<ltc::View> views = detail::input_views(enc, inputs);
  auto [outp, outn] = detail::allocate_outputs(enc, outputs);
  const detail::Dims d = detail::dims_of(inputs);
  enc.dispatch([views = std::move(views), outp = std::move(outp), outn = std::move(outn), d, K = ode_unfolds_,
                eps = epsilon_]() {
    for (size_t o = 0; o < outp.size(); ++o)
      if (outn[o]) std::memset(outp[o], 0, outn[o]);
    std::vector<ltc::View> prim(views.begin(), views.begin() + kNumLTCInputs);
    detail::ProblemData pd(prim, d, K, eps);
    std::vector<float> sbuf, cbuf;
    const float* states = views[kNumLTCInputs].resolve(sbuf);
    const float* cot = views[kNumLTCInputs + 1].resolve(cbuf);
    ltc::Grads g{outp[0], outp[1], outp[2], outp[3], outp[4], outp[5], outp[6],
                 outp[7], outp[8], outp[9], outp[10], outp[11], outp[12], outp[13]};
    ltc::backward(pd.p, states, cot, g);
  });
}

void LTCSequenceGrad::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  throw std::runtime_error("[LTCSequenceGrad] has no GPU kernel; run it on the CPU stream");
}

std::vector<mx::array> LTCSequenceGrad::jvp(const std::vector<mx::array>&, const std::vector<mx::array>&,
                                            const std::vector<int>&) {
  throw std::runtime_error("[LTCSequenceGrad] higher-order derivatives of ltc_sequence are not implemented");
}

std::vector<mx::array> LTCSequenceGrad::vjp(const std::vector<mx::array>&, const std::vector<mx::array>&,
                                            const std::vector<int>&, const std::vector<mx::array>&) {
  throw std::runtime_error("[LTCSequenceGrad] higher-order derivatives of ltc_sequence are not implemented");
}

std::pair<std::vector<mx::array>, std::vector<int>> LTCSequenceGrad::vmap(const std::vector<mx::array>&,
                                                                          const std::vector<int>&) {
  throw std::runtime_error("[LTCSequenceGrad] vmap is not implemented");
}

bool LTCSequenceGrad::is_equivalent(const mx::Primitive& other) const {
  auto* o = dynamic_cast<const LTCSequenceGrad*>(&other);
  return o != nullptr && o->ode_unfolds_ == ode_unfolds_ && o->epsilon_ == epsilon_;
}

std::vector<mx::Shape> LTCSequenceGrad::output_shapes(const std::vector<mx::array>& inputs) {
  std::vector<mx::Shape> shapes;
  for (int o = 0; o < kNumLTCGradOutputs; ++o) shapes.push_back(inputs[kInputOf[o]].shape());
  return shapes;
}

}  // namespace ncps
