// The LTC primitives: eval_cpu (register inputs, allocate outputs, dispatch the cpu/ kernels),
// the vjps (build the fused backward nodes) and output shapes.
#include "ltc/primitives.h"

#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
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
// cotangents; one gradient per non-mask input, in that input's dtype.
template <class Grad>
std::vector<mx::array> grad_node(const std::vector<mx::array>& primals, const std::vector<mx::array>& saved,
                                 const std::vector<mx::array>& cotangents, int n_outputs, int K, float eps,
                                 mx::Stream s) {
  std::vector<mx::array> in(primals.begin(), primals.end());
  in.insert(in.end(), saved.begin(), saved.end());
  for (const auto& c : cotangents) in.push_back(common::as_storage(c, s));
  std::vector<mx::Dtype> dtypes;
  for (int o = 0; o < n_outputs; ++o) dtypes.push_back(primals[kInputOf[o]].dtype());
  return mx::array::make_arrays(grad_shapes(primals, n_outputs), dtypes, std::make_shared<Grad>(s, K, eps), in);
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
// on zeroed float32 outputs (the kernels accumulate into them; half outputs are staged).
template <class Kernel>
void eval_grad(mx::Primitive& node, const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs,
               size_t n_inputs, size_t n_outputs, Kernel kernel, std::initializer_list<size_t> as_rows = {}) {
  if (inputs.size() != n_inputs || outputs.size() != n_outputs)
    throw std::runtime_error(std::string("[") + node.name() + "] internal error: wrong number of inputs or outputs");
  auto& enc = mx::cpu::get_command_encoder(node.stream());
  enc.dispatch([views = common::input_views(enc, inputs, node.name(), as_rows),
                out = common::allocate_outputs(enc, outputs), kernel = std::move(kernel)]() {
    out.zero();
    kernel(views, out.ptr);
    out.finish();
  });
}

Grads ltc_grads(const std::vector<float*>& o) {
  return Grads{o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], o[8], o[9], o[10], o[11], o[12], o[13]};
}

// What the kernels of the plain (kMixed false) or mixed-memory variant take: the sizes of the
// inputs and the problem built from them.
template <bool kMixed>
auto dims_for(const std::vector<mx::array>& inputs) {
  if constexpr (kMixed)
    return mixed_dims_of(inputs);
  else
    return dims_of(inputs);
}
template <bool kMixed>
using DataFor = std::conditional_t<kMixed, MixedProblemData, ProblemData>;

}  // namespace

Dims dims_of(const std::vector<mx::array>& in) {
  return Dims{in[kX].shape(0), in[kX].shape(1), in[kX].shape(2), in[kW].shape(0)};
}

MixedDims mixed_dims_of(const std::vector<mx::array>& in) { return MixedDims{dims_of(in), in[kLstmInput].shape(2)}; }

bool LTCPrimitive::same_config(const mx::Primitive& other) const {
  auto* o = dynamic_cast<const LTCPrimitive*>(&other);
  return o != nullptr && typeid(*o) == typeid(*this) && o->ode_unfolds_ == ode_unfolds_ && o->epsilon_ == epsilon_;
}

// ---- LTCForward and LTCBackward --------------------------------------------------------------

template <bool kMixed>
void LTCForward<kMixed>::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  if (inputs.size() != kInputs || outputs.size() != kOutputs)
    throw std::runtime_error(std::string("[") + name() + "] internal error: wrong number of inputs or outputs");
  auto& enc = mx::cpu::get_command_encoder(stream());
  auto views = common::input_views(enc, inputs, name());
  // The plain kernel writes its states in their own dtype (no staging pass); the mixed one float32.
  common::Outputs out = common::allocate_outputs(
      enc, outputs, [](const mx::array& o) { return mx::allocator::malloc(o.nbytes()); }, kMixed ? 0 : 1);
  enc.dispatch([views = std::move(views), d = dims_for<kMixed>(inputs), K = ode_unfolds_, eps = epsilon_,
                out = std::move(out)]() {
    const DataFor<kMixed> pd(views, d, K, eps);
    common::dispatch([&]<class Isa>() {
      if constexpr (kMixed)
        cpu::mixed_forward<Isa>(pd.m, out[0], out[1]);  // states, cells
      else
        cpu::forward<Isa>(pd.p, out.sink[0]);
    });
    out.finish();
  });
}

template <bool kMixed>
std::vector<mx::array> LTCForward<kMixed>::vjp(const std::vector<mx::array>& primals,
                                               const std::vector<mx::array>& cotangents,
                                               const std::vector<int>& argnums, const std::vector<mx::array>& outputs) {
  return pick_grads(
      primals, argnums,
      [&] {
        return grad_node<LTCBackward<kMixed>>(primals, outputs, cotangents, LTCBackward<kMixed>::kOutputs, ode_unfolds_,
                                              epsilon_, stream());
      },
      stream());
}

template <bool kMixed>
std::vector<mx::Shape> LTCForward<kMixed>::output_shapes(const std::vector<mx::array>& inputs) {
  const Dims d = dims_of(inputs);
  return std::vector<mx::Shape>(kOutputs, mx::Shape{d.B, d.T, d.N});
}

template <bool kMixed>
void LTCBackward<kMixed>::eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) {
  // The forward's outputs, then their cotangents: states (, cells), cot (, cot_c). The plain
  // kernel reads the states and their cotangent row by row in their own type (a half model's
  // saved states get no float32 copy of the whole sequence).
  static constexpr size_t kFirst = LTCForward<kMixed>::kInputs;
  static constexpr int kSaved = kInputs - kFirst;  // static: usable in the lambda without a capture (clang)
  eval_grad(
      *this, inputs, outputs, kInputs, kOutputs,
      [d = dims_for<kMixed>(inputs), K = ode_unfolds_, eps = epsilon_](const auto& views, const auto& out) {
        const DataFor<kMixed> pd(views, d, K, eps);
        std::vector<float> bufs[kSaved];
        if constexpr (kMixed) {
          const float* saved[kSaved];
          for (int k = 0; k < kSaved; ++k) saved[k] = views[kFirst + k].resolve(bufs[k]);
          common::dispatch([&]<class Isa>() {
            cpu::mixed_backward<Isa>(pd.m, saved[0], saved[1], saved[2], saved[3], ltc_grads(out),
                                     MixedGrads{out[14], out[15], out[16], out[17], out[18]});
          });
        } else {
          const common::Rows states = views[kFirst].rows(bufs[0]), cot = views[kFirst + 1].rows(bufs[1]);
          common::dispatch([&]<class Isa>() { cpu::backward<Isa>(pd.p, states, cot, ltc_grads(out)); });
        }
      },
      kMixed ? std::initializer_list<size_t>{} : std::initializer_list<size_t>{kFirst, kFirst + 1});
}

template <bool kMixed>
std::vector<mx::Shape> LTCBackward<kMixed>::output_shapes(const std::vector<mx::array>& inputs) {
  return grad_shapes(inputs, kOutputs);
}

template class LTCForward<false>;
template class LTCForward<true>;
template class LTCBackward<false>;
template class LTCBackward<true>;

}  // namespace ncps::ltc
