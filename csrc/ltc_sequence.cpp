// LTCSequence: op wrapper (validation, float32 + contiguous inputs, CPU stream), eval_cpu
// (allocate, dispatch the forward kernel) and the transforms.
#include "ltc_sequence.h"

#include <memory>
#include <stdexcept>

#include "ltc_common.h"
#include "ltc_kernel.h"
#include "ltc_sequence_grad.h"
#include "mlx/backend/cpu/encoder.h"
#include "mlx/utils.h"

namespace ncps {

mx::array ltc_sequence(const mx::array& x, const mx::array& h0, const mx::array& dt, const mx::array& sensory_w,
                       const mx::array& sensory_sigma, const mx::array& sensory_mu, const mx::array& sensory_erev,
                       const mx::array& sensory_mask, const mx::array& w, const mx::array& sigma, const mx::array& mu,
                       const mx::array& erev, const mx::array& mask, const mx::array& cm, const mx::array& gleak,
                       const mx::array& vleak, int ode_unfolds, float epsilon, mx::StreamOrDevice s) {
  std::vector<mx::array> in = {x, h0, dt, sensory_w, sensory_sigma, sensory_mu, sensory_erev, sensory_mask,
                               w, sigma, mu, erev, mask, cm, gleak, vleak};
  const detail::Dims d = detail::validate(in, ode_unfolds);
  const mx::Stream st = detail::cpu_stream(s, "ltc_sequence");
  const mx::Dtype out_dtype = mx::issubdtype(x.dtype(), mx::floating) ? x.dtype() : mx::float32;
  for (auto& a : in) a = mx::contiguous(mx::astype(a, mx::float32, st), false, st);
  mx::array out({d.B, d.T, d.N}, mx::float32, std::make_shared<LTCSequence>(st, ode_unfolds, epsilon), std::move(in));
  return out_dtype == mx::float32 ? out : mx::astype(out, out_dtype, st);
}

void LTCSequence::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  mx::array& states = outputs[0];
  states.set_data(mx::allocator::malloc(states.nbytes()));
  auto& enc = mx::cpu::get_command_encoder(stream());
  std::vector<ltc::View> views = detail::input_views(enc, inputs);
  enc.set_output_array(states);
  const detail::Dims d = detail::dims_of(inputs);
  enc.dispatch([views = std::move(views), d, K = ode_unfolds_, eps = epsilon_, out = states.data<float>()]() {
    detail::ProblemData pd(views, d, K, eps);
    ltc::forward(pd.p, out);
  });
}

void LTCSequence::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  throw std::runtime_error("[LTCSequence] has no GPU kernel; run it on the CPU stream");
}

std::vector<mx::array> LTCSequence::jvp(const std::vector<mx::array>&, const std::vector<mx::array>&,
                                        const std::vector<int>&) {
  throw std::runtime_error(
      "[LTCSequence] forward-mode differentiation (jvp) is not implemented; use reverse mode (mx.grad / mx.vjp)");
}

std::pair<std::vector<mx::array>, std::vector<int>> LTCSequence::vmap(const std::vector<mx::array>&,
                                                                      const std::vector<int>&) {
  throw std::runtime_error("[LTCSequence] vmap is not implemented; the primitive is already batched over B");
}

std::vector<mx::array> LTCSequence::vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                                        const std::vector<int>& argnums, const std::vector<mx::array>& outputs) {
  bool need = false;
  for (int a : argnums) need |= ltc_grad_output_index(a) >= 0;
  std::vector<mx::array> grads;
  if (need) grads = ltc_sequence_grad(primals, outputs[0], cotangents[0], ode_unfolds_, epsilon_, stream());
  std::vector<mx::array> res;
  res.reserve(argnums.size());
  for (int a : argnums) {
    const int o = ltc_grad_output_index(a);
    res.push_back(o >= 0 ? grads[o] : mx::zeros_like(primals[a], stream()));
  }
  return res;
}

bool LTCSequence::is_equivalent(const mx::Primitive& other) const {
  auto* o = dynamic_cast<const LTCSequence*>(&other);
  return o != nullptr && o->ode_unfolds_ == ode_unfolds_ && o->epsilon_ == epsilon_;
}

std::vector<mx::Shape> LTCSequence::output_shapes(const std::vector<mx::array>& inputs) {
  const detail::Dims d = detail::dims_of(inputs);
  return {mx::Shape{d.B, d.T, d.N}};
}

}  // namespace ncps
