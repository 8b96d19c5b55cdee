// CfCSequence / CfCSequenceGrad: a whole CfC (or wired CfC, optionally mixed-memory) sequence as
// one MLX primitive, with a fused BPTT primitive as its vjp. Kernels in cpu/.
#pragma once

#include <utility>
#include <vector>

#include "cfc/problem.h"
#include "common/primitive.h"
#include "mlx/array.h"

namespace ncps::cfc {

namespace mx = mlx::core;

// The plan of a call with input x ((B, T, I), or (B, I) for one step; make_plan's saved and act),
// and the forward's output shapes: states, cells (mixed memory, shaped as states), the workspace
// (as a saved plan lays it out).
Plan plan_of(const Config& cfg, const mx::array& x, bool saved = true, common::Storage act = common::Storage::f32);
std::vector<mx::Shape> forward_shapes(const Plan& p);
// Their dtypes: states and cells in the promoted dtype of the inputs but dt (common/ops.h), the
// workspace float32.
std::vector<mx::Dtype> forward_dtypes(const Plan& p, const std::vector<mx::array>& inputs);

// Inputs in plan order (problem.h). Outputs: states, cells (mixed memory) and the workspace, which
// only the vjp reads. Whether the workspace is filled is decided when the graph is evaluated, not
// when it is built: MLX builds a gradient's backward graph (calling vjp) before evaluating the
// forward, so a node whose vjp was taken saves every step's activations, and any other keeps a
// ring of the last steps (problem.h), its workspace array then only as large as the ring. A vjp
// taken after the node was evaluated (mx.eval inside the differentiated function) recomputes the
// forward: the flag may be shared (mx.compile replays one primitive), the node's own status not.
class CfCSequence : public common::Primitive {
 public:
  CfCSequence(mx::Stream stream, Config cfg, bool saved = false)
      : common::Primitive(stream), cfg_(std::move(cfg)), saved_(saved) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override;
  // vmap over the per-sample inputs (x, h0, dt, c0): the mapped axis joins the batch axis.
  std::pair<std::vector<mx::array>, std::vector<int>> vmap(const std::vector<mx::array>& inputs,
                                                           const std::vector<int>& axes) override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;
  const char* name() const override { return "CfCSequence"; }
  bool same_config(const mx::Primitive& other) const override;

 private:
  Config cfg_;
  bool saved_;  // the workspace holds every step (set by vjp)
};

// Inputs: the forward's inputs, its workspace, the cotangent of states and (mixed) of cells.
// Outputs: the gradient of every forward input (zero for masks); without need_dx the x gradient,
// without need_weights the parameter gradients, without need_dt the dt gradient are not computed
// (the vjp does not return them).
class CfCSequenceGrad : public common::Primitive {
 public:
  // act: the storage of the forward's saved activations (its outputs' type, problem.h: Plan::act).
  CfCSequenceGrad(mx::Stream stream, Config cfg, common::Storage act, bool need_dx, bool need_weights, bool need_dt)
      : common::Primitive(stream),
        cfg_(std::move(cfg)),
        act_(act),
        need_dx_(need_dx),
        need_weights_(need_weights),
        need_dt_(need_dt) {}

  void eval_cpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  std::vector<mx::Shape> output_shapes(const std::vector<mx::array>& inputs) override;
  const char* name() const override { return "CfCSequenceGrad"; }
  bool same_config(const mx::Primitive& other) const override;

 private:
  Config cfg_;
  common::Storage act_;
  bool need_dx_, need_weights_, need_dt_;
};

}  // namespace ncps::cfc
