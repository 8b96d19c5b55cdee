// CfCSequence / CfCSequenceGrad: a whole CfC (or wired CfC, optionally mixed-memory) sequence as
// one MLX primitive, with a fused BPTT primitive as its vjp. Kernels in cfc_kernel.h.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cfc_kernel.h"
#include "mlx/ops.h"
#include "mlx/primitives.h"

namespace mx = mlx::core;

namespace ncps {

// The op. Returns [states (B, T, N)] or, with the LSTM, [states, c_final (B, N)].
//   x (B, T, I), h0 (B, N), dt (B, T); params: per unit, the backbone (W, b) pairs, then the heads
//   (ff1.W, ff1.b, ff2.W, ff2.b, time_a.W, time_a.b, time_b.W, time_b.b; pure: ff1.W, ff1.b,
//   w_tau, A), then the mask when masked (see cfc_kernel.h for shapes);
//   lstm: [input_map.weight (4N, I), input_map.bias (4N,), recurrent_map.weight (4N, N)] and c0
//   (B, N) for mixed memory.
// Validates every shape and option before building the graph (std::invalid_argument -> ValueError).
std::vector<mx::array> cfc_sequence(const mx::array& x, const mx::array& h0, const mx::array& dt,
                                    const std::vector<mx::array>& params, const std::vector<int>& unit_sizes,
                                    const std::vector<std::vector<int>>& backbone, const std::vector<bool>& masked,
                                    const std::string& mode, const std::string& activation,
                                    const std::optional<std::vector<mx::array>>& lstm,
                                    const std::optional<mx::array>& c0, mx::StreamOrDevice s = {});

// One streaming inference step computed immediately on the calling thread (no graph, no
// gradient): x (B, I), h0 (B, N), dt (B, 1); returns the evaluated output (the state's columns
// [readout_start, readout_start + readout_size)) and new state (B, N), in float32.
// Same parameters as cfc_sequence, without mixed memory.
std::pair<mx::array, mx::array> cfc_step_now(const mx::array& x, const mx::array& h0, const mx::array& dt,
                                             const std::vector<mx::array>& params, const std::vector<int>& unit_sizes,
                                             const std::vector<std::vector<int>>& backbone,
                                             const std::vector<bool>& masked, const std::string& mode,
                                             const std::string& activation, int readout_start, int readout_size);

class CfCSequence : public mx::Primitive {
 public:
  CfCSequence(mx::Stream stream, cfc::Config cfg) : mx::Primitive(stream), cfg_(std::move(cfg)) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  std::vector<mx::array> jvp(const std::vector<mx::array>& primals, const std::vector<mx::array>& tangents,
                             const std::vector<int>& argnums) override;
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override;
  std::pair<std::vector<mx::array>, std::vector<int>> vmap(const std::vector<mx::array>& inputs,
                                                           const std::vector<int>& axes) override;
  const char* name() const override { return "CfCSequence"; }
  // Always false (see the .cpp: MLX 0.32.4 compile CSE bug with multi-output nodes);
  // same_config compares every attribute.
  bool is_equivalent(const mx::Primitive& other) const override;
  bool same_config(const mx::Primitive& other) const;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;
  const cfc::Config& config() const { return cfg_; }

 private:
  cfc::Config cfg_;
};

// Inputs: the forward's inputs, its workspace, the cotangent of states and (mixed) of c_final.
// Outputs: the gradient of every forward input (zero for masks); without need_dx the x gradient,
// without need_weights the parameter gradients are not computed (the vjp does not return them).
class CfCSequenceGrad : public mx::Primitive {
 public:
  CfCSequenceGrad(mx::Stream stream, cfc::Config cfg, bool need_dx, bool need_weights)
      : mx::Primitive(stream), cfg_(std::move(cfg)), need_dx_(need_dx), need_weights_(need_weights) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override;
  const char* name() const override { return "CfCSequenceGrad"; }
  bool is_equivalent(const mx::Primitive& other) const override;  // always false, as CfCSequence's
  bool same_config(const mx::Primitive& other) const;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;

 private:
  cfc::Config cfg_;
  bool need_dx_, need_weights_;
};

}  // namespace ncps
