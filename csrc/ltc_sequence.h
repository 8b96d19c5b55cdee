// LTCSequence: the whole LTC sequence (T steps x K semi-implicit sub-steps) as one MLX primitive,
// computing exactly ncps.ltc.ltc_sequence. Its vjp builds LTCSequenceGrad (ltc_sequence_grad.h).
#pragma once

#include <vector>

#include "mlx/ops.h"
#include "mlx/primitives.h"

namespace mx = mlx::core;

namespace ncps {

// Input order of the primitive (and of the op's arguments).
enum LTCInput : int {
  kX = 0, kH0, kDt,
  kSensoryW, kSensorySigma, kSensoryMu, kSensoryErev, kSensoryMask,
  kW, kSigma, kMu, kErev, kMask,
  kCm, kGleak, kVleak,
  kNumLTCInputs
};

// states (B, T, N) = state after every step. Shapes: x (B, T, I), h0 (B, N), dt (B, T),
// sensory_* (I, N), w/sigma/mu/erev/mask (N, N) [source, destination], cm/gleak/vleak (N,).
// Validates shapes (std::invalid_argument naming the argument); computes in float32 and returns
// x's floating dtype (float32 for non-floating x).
mx::array ltc_sequence(const mx::array& x, const mx::array& h0, const mx::array& dt,
                       const mx::array& sensory_w, const mx::array& sensory_sigma,
                       const mx::array& sensory_mu, const mx::array& sensory_erev,
                       const mx::array& sensory_mask, const mx::array& w, const mx::array& sigma,
                       const mx::array& mu, const mx::array& erev, const mx::array& mask,
                       const mx::array& cm, const mx::array& gleak, const mx::array& vleak,
                       int ode_unfolds, float epsilon, mx::StreamOrDevice s = {});

class LTCSequence : public mx::Primitive {
 public:
  LTCSequence(mx::Stream stream, int ode_unfolds, float epsilon)
      : mx::Primitive(stream), ode_unfolds_(ode_unfolds), epsilon_(epsilon) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;

  std::vector<mx::array> jvp(const std::vector<mx::array>& primals, const std::vector<mx::array>& tangents,
                             const std::vector<int>& argnums) override;
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override;
  std::pair<std::vector<mx::array>, std::vector<int>> vmap(const std::vector<mx::array>& inputs,
                                                           const std::vector<int>& axes) override;

  const char* name() const override { return "LTCSequence"; }
  bool is_equivalent(const mx::Primitive& other) const override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;

  int ode_unfolds() const { return ode_unfolds_; }
  float epsilon() const { return epsilon_; }

 private:
  int ode_unfolds_;
  float epsilon_;
};

}  // namespace ncps
