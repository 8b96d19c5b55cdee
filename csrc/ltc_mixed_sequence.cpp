// LTCMixedSequence: op wrapper (validation, float32 + contiguous inputs, CPU stream), eval_cpu
// (allocate, dispatch the forward kernel) and the transforms.
#include "ltc_mixed_sequence.h"

#include <memory>
#include <stdexcept>

#include "ltc_mixed_common.h"
#include "ltc_mixed_kernel.h"
#include "ltc_mixed_sequence_grad.h"
#include "mlx/backend/cpu/encoder.h"

namespace ncps {

std::pair<mx::array, mx::array> ltc_mixed_sequence(
    const mx::array& x, const mx::array& h0, const mx::array& dt, const mx::array& sensory_w,
    const mx::array& sensory_sigma, const mx::array& sensory_mu, const mx::array& sensory_erev,
    const mx::array& sensory_mask, const mx::array& w, const mx::array& sigma, const mx::array& mu,
    const mx::array& erev, const mx::array& mask, const mx::array& cm, const mx::array& gleak,
    const mx::array& vleak, const mx::array& lstm_input, const mx::array& lstm_input_w,
    const mx::array& lstm_input_b, const mx::array& lstm_recurrent_w, const mx::array& c0, int ode_unfolds,
    float epsilon, mx::StreamOrDevice s) {
  std::vector<mx::array> in = {x,     h0,   dt,         sensory_w,    sensory_sigma, sensory_mu,       sensory_erev,
                               sensory_mask, w, sigma, mu, erev, mask, cm, gleak, vleak,
                               lstm_input, lstm_input_w, lstm_input_b, lstm_recurrent_w, c0};
  const detail::MixedDims md = detail::validate_mixed(in, ode_unfolds);
  const mx::Stream st = detail::cpu_stream(s, "ltc_mixed_sequence");
  const mx::Dtype out_dtype = mx::issubdtype(x.dtype(), mx::floating) ? x.dtype() : mx::float32;
  for (auto& a : in) a = mx::contiguous(mx::astype(a, mx::float32, st), false, st);
  const mx::Shape shape{md.d.B, md.d.T, md.d.N};
  auto out = mx::array::make_arrays({shape, shape}, {mx::float32, mx::float32},
                                    std::make_shared<LTCMixedSequence>(st, ode_unfolds, epsilon), std::move(in));
  if (out_dtype != mx::float32) {
    out[0] = mx::astype(out[0], out_dtype, st);
    out[1] = mx::astype(out[1], out_dtype, st);
  }
  return {out[0], out[1]};
}

void LTCMixedSequence::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  if (inputs.size() != kNumLTCMixedInputs || outputs.size() != 2)
    throw std::runtime_error("[LTCMixedSequence] internal error: wrong number of inputs or outputs");
  auto& enc = mx::cpu::get_command_encoder(stream());
  std::vector<ltc::View> views = detail::input_views(enc, inputs);
  for (auto& o : outputs) {
    o.set_data(mx::allocator::malloc(o.nbytes()));
    enc.set_output_array(o);
  }
  const detail::MixedDims md = detail::mixed_dims_of(inputs);
  enc.dispatch([views = std::move(views), md, K = ode_unfolds_, eps = epsilon_, states = outputs[0].data<float>(),
                cells = outputs[1].data<float>()]() {
    detail::MixedProblemData pd(views, md, K, eps);
    ltc::mixed_forward(pd.m, states, cells);
  });
}

void LTCMixedSequence::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  throw std::runtime_error("[LTCMixedSequence] has no GPU kernel; run it on the CPU stream");
}

std::vector<mx::array> LTCMixedSequence::jvp(const std::vector<mx::array>&, const std::vector<mx::array>&,
                                             const std::vector<int>&) {
  throw std::runtime_error(
      "[LTCMixedSequence] forward-mode differentiation (jvp) is not implemented; use reverse mode (mx.grad / mx.vjp)");
}

std::pair<std::vector<mx::array>, std::vector<int>> LTCMixedSequence::vmap(const std::vector<mx::array>&,
                                                                           const std::vector<int>&) {
  throw std::runtime_error("[LTCMixedSequence] vmap is not implemented; the primitive is already batched over B");
}

std::vector<mx::array> LTCMixedSequence::vjp(const std::vector<mx::array>& primals,
                                             const std::vector<mx::array>& cotangents, const std::vector<int>& argnums,
                                             const std::vector<mx::array>& outputs) {
  bool need = false;
  for (int a : argnums) need |= ltc_mixed_grad_output_index(a) >= 0;
  std::vector<mx::array> grads;
  if (need)
    grads = ltc_mixed_sequence_grad(primals, outputs[0], outputs[1], cotangents[0], cotangents[1], ode_unfolds_,
                                    epsilon_, stream());
  std::vector<mx::array> res;
  res.reserve(argnums.size());
  for (int a : argnums) {
    const int o = ltc_mixed_grad_output_index(a);
    res.push_back(o >= 0 ? grads[o] : mx::zeros_like(primals[a], stream()));
  }
  return res;
}

bool LTCMixedSequence::is_equivalent(const mx::Primitive& other) const {
  auto* o = dynamic_cast<const LTCMixedSequence*>(&other);
  return o != nullptr && o->ode_unfolds_ == ode_unfolds_ && o->epsilon_ == epsilon_;
}

std::vector<mx::Shape> LTCMixedSequence::output_shapes(const std::vector<mx::array>& inputs) {
  const detail::Dims d = detail::dims_of(inputs);
  return {mx::Shape{d.B, d.T, d.N}, mx::Shape{d.B, d.T, d.N}};
}

}  // namespace ncps
