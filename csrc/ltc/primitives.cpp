// The LTC primitives: eval_cpu (register inputs, allocate outputs, dispatch the cpu/ kernels),
// the vjps (build the fused backward nodes) and output shapes.
#include "ltc/primitives.h"

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <typeinfo>

#include "common/isa.h"
#include "common/ops.h"
#include "ltc/cpu/kernel.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/ops.h"

namespace ncps::ltc {

namespace {

// Gradient output -> input, for LTCSequenceGrad (the first 14) and LTCMixedSequenceGrad (all 19).
constexpr int kInputOf[kNumMixedGradOutputs] = {
    kX,  kH0,    kDt,    kSensoryW,  kSensorySigma, kSensoryMu,  kSensoryErev,    kW, kSigma, kMu, kErev,
    kCm, kGleak, kVleak, kLstmInput, kLstmInputW,   kLstmInputB, kLstmRecurrentW, kC0};

// Input -> gradient output, -1 for the masks (and out of range).
int grad_output_index(int input) {
  for (int o = 0; o < kNumMixedGradOutputs; ++o)
    if (kInputOf[o] == input) return o;
  return -1;
}

std::vector<mx::Shape> grad_shapes(const std::vector<mx::array>& primals, int n_outputs) {
  std::vector<mx::Shape> shapes;
  for (int o = 0; o < n_outputs; ++o) shapes.push_back(primals[kInputOf[o]].shape());
  return shapes;
}

// The backward node: primals, then `saved` (forward outputs, used as they are) and the
// cotangents (float32); one float32 gradient per non-mask input.
template <class Grad>
std::vector<mx::array> grad_node(const std::vector<mx::array>& primals, const std::vector<mx::array>& saved,
                                 const std::vector<mx::array>& cotangents, int n_outputs, int K, float eps,
                                 mx::Stream s) {
  std::vector<mx::array> in(primals.begin(), primals.end());
  in.insert(in.end(), saved.begin(), saved.end());
  for (const auto& c : cotangents) in.push_back(mx::astype(c, mx::float32, s));
  return mx::array::make_arrays(grad_shapes(primals, n_outputs), std::vector<mx::Dtype>(n_outputs, mx::float32),
                                std::make_shared<Grad>(s, K, eps), in);
}

// The vjp's answer: the gradient node's output for every requested input, zeros for the masks
// (the node is built only when some requested input has a gradient).
template <class Build>
std::vector<mx::array> pick_grads(const std::vector<mx::array>& primals, const std::vector<int>& argnums, Build build,
                                  mx::Stream s) {
  bool need = false;
  for (int a : argnums) need |= grad_output_index(a) >= 0;
  std::vector<mx::array> grads;
  if (need) grads = build();
  std::vector<mx::array> res;
  res.reserve(argnums.size());
  for (int a : argnums) {
    const int o = grad_output_index(a);
    res.push_back(o >= 0 ? grads[o] : mx::zeros_like(primals[a], s));
  }
  return res;
}

// The backward nodes' eval_cpu: check the arity, register the inputs, and run `kernel(views, out)`
// on zeroed float32 outputs (the kernels accumulate into them).
template <class Kernel>
void eval_grad(mx::Primitive& node, const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs,
               size_t n_inputs, size_t n_outputs, Kernel kernel) {
  if (inputs.size() != n_inputs || outputs.size() != n_outputs)
    throw std::runtime_error(std::string("[") + node.name() + "] internal error: wrong number of inputs or outputs");
  auto& enc = mx::cpu::get_command_encoder(node.stream());
  enc.dispatch([views = common::input_views(enc, inputs, node.name()), out = common::allocate_outputs(enc, outputs),
                bytes = common::output_bytes(outputs), kernel = std::move(kernel)]() {
    for (size_t o = 0; o < out.size(); ++o)
      if (bytes[o]) std::memset(out[o], 0, bytes[o]);
    kernel(views, out);
  });
}

Grads ltc_grads(const std::vector<float*>& o) {
  return Grads{o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], o[8], o[9], o[10], o[11], o[12], o[13]};
}

}  // namespace

Dims dims_of(const std::vector<mx::array>& in) {
  return Dims{in[kX].shape(0), in[kX].shape(1), in[kX].shape(2), in[kW].shape(0)};
}

MixedDims mixed_dims_of(const std::vector<mx::array>& in) { return MixedDims{dims_of(in), in[kLstmInput].shape(2)}; }

bool LTCPrimitive::same_config(const mx::Primitive& other) const {
  auto* o = dynamic_cast<const LTCPrimitive*>(&other);
  return o != nullptr && typeid(*o) == typeid(*this) && o->ode_unfolds_ == ode_unfolds_ && o->epsilon_ == epsilon_;
}

// ---- LTCSequence ------------------------------------------------------------------------------

void LTCSequence::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  auto& enc = mx::cpu::get_command_encoder(stream());
  auto views = common::input_views(enc, inputs, name());
  const std::vector<float*> out = common::allocate_outputs(enc, outputs);
  enc.dispatch([views = std::move(views), d = dims_of(inputs), K = ode_unfolds_, eps = epsilon_, states = out[0]]() {
    ProblemData pd(views, d, K, eps);
    common::dispatch([&]<class Isa>() { cpu::forward<Isa>(pd.p, states); });
  });
}

std::vector<mx::array> LTCSequence::vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                                        const std::vector<int>& argnums, const std::vector<mx::array>& outputs) {
  return pick_grads(
      primals, argnums,
      [&] {
        return grad_node<LTCSequenceGrad>(primals, {outputs[0]}, {cotangents[0]}, kNumGradOutputs, ode_unfolds_,
                                          epsilon_, stream());
      },
      stream());
}

std::vector<mx::Shape> LTCSequence::output_shapes(const std::vector<mx::array>& inputs) {
  const Dims d = dims_of(inputs);
  return {mx::Shape{d.B, d.T, d.N}};
}

// ---- LTCSequenceGrad --------------------------------------------------------------------------

void LTCSequenceGrad::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  eval_grad(*this, inputs, outputs, kNumInputs + 2, kNumGradOutputs,
            [d = dims_of(inputs), K = ode_unfolds_, eps = epsilon_](const auto& views, const auto& out) {
              ProblemData pd(views, d, K, eps);
              std::vector<float> sbuf, cbuf;
              const float* states = views[kNumInputs].resolve(sbuf);
              const float* cot = views[kNumInputs + 1].resolve(cbuf);
              common::dispatch([&]<class Isa>() { cpu::backward<Isa>(pd.p, states, cot, ltc_grads(out)); });
            });
}

std::vector<mx::Shape> LTCSequenceGrad::output_shapes(const std::vector<mx::array>& inputs) {
  return grad_shapes(inputs, kNumGradOutputs);
}

// ---- LTCMixedSequence -------------------------------------------------------------------------

void LTCMixedSequence::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  if (inputs.size() != kNumMixedInputs || outputs.size() != 2)
    throw std::runtime_error("[LTCMixedSequence] internal error: wrong number of inputs or outputs");
  auto& enc = mx::cpu::get_command_encoder(stream());
  auto views = common::input_views(enc, inputs, name());
  const std::vector<float*> out = common::allocate_outputs(enc, outputs);
  enc.dispatch([views = std::move(views), md = mixed_dims_of(inputs), K = ode_unfolds_, eps = epsilon_, states = out[0],
                cells = out[1]]() {
    MixedProblemData pd(views, md, K, eps);
    common::dispatch([&]<class Isa>() { cpu::mixed_forward<Isa>(pd.m, states, cells); });
  });
}

std::vector<mx::array> LTCMixedSequence::vjp(const std::vector<mx::array>& primals,
                                             const std::vector<mx::array>& cotangents, const std::vector<int>& argnums,
                                             const std::vector<mx::array>& outputs) {
  return pick_grads(
      primals, argnums,
      [&] {
        return grad_node<LTCMixedSequenceGrad>(primals, {outputs[0], outputs[1]}, {cotangents[0], cotangents[1]},
                                               kNumMixedGradOutputs, ode_unfolds_, epsilon_, stream());
      },
      stream());
}

std::vector<mx::Shape> LTCMixedSequence::output_shapes(const std::vector<mx::array>& inputs) {
  const Dims d = dims_of(inputs);
  return {mx::Shape{d.B, d.T, d.N}, mx::Shape{d.B, d.T, d.N}};
}

// ---- LTCMixedSequenceGrad ---------------------------------------------------------------------

void LTCMixedSequenceGrad::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  eval_grad(*this, inputs, outputs, kNumMixedInputs + 4, kNumMixedGradOutputs,
            [md = mixed_dims_of(inputs), K = ode_unfolds_, eps = epsilon_](const auto& views, const auto& out) {
              MixedProblemData pd(views, md, K, eps);
              std::vector<float> bufs[4];
              const float* saved[4];  // states, cells, their cotangents
              for (int k = 0; k < 4; ++k) saved[k] = views[kNumMixedInputs + k].resolve(bufs[k]);
              const MixedGrads mg{out[14], out[15], out[16], out[17], out[18]};
              common::dispatch([&]<class Isa>() {
                cpu::mixed_backward<Isa>(pd.m, saved[0], saved[1], saved[2], saved[3], ltc_grads(out), mg);
              });
            });
}

std::vector<mx::Shape> LTCMixedSequenceGrad::output_shapes(const std::vector<mx::array>& inputs) {
  return grad_shapes(inputs, kNumMixedGradOutputs);
}

}  // namespace ncps::ltc
