// The base of every ncps primitive: the transforms the fused kernels do not implement throw a
// clear message naming the primitive, and the compile-merge (CSE) policy is decided once, here.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "mlx/primitives.h"

namespace ncps::common {

namespace mx = mlx::core;

class Primitive : public mx::Primitive {
 public:
  explicit Primitive(mx::Stream stream) : mx::Primitive(stream) {}

  // CPU kernels only (a GPU backend would be one more folder next to each model's cpu/).
  void eval_gpu(const std::vector<mx::array>& inputs, std::vector<mx::array>& outputs) override;
  // Forward mode is not implemented: reverse mode (mx.grad, mx.vjp) is.
  std::vector<mx::array> jvp(const std::vector<mx::array>& primals, const std::vector<mx::array>& tangents,
                             const std::vector<int>& argnums) override;
  // Primitives without a vmap rule refuse it (the sequence primitives are batched over B already).
  std::pair<std::vector<mx::array>, std::vector<int>> vmap(const std::vector<mx::array>& inputs,
                                                           const std::vector<int>& axes) override;
  // Backward primitives are not differentiable again: second-order gradients are refused.
  std::vector<mx::array> vjp(const std::vector<mx::array>& primals, const std::vector<mx::array>& cotangents,
                             const std::vector<int>& argnums, const std::vector<mx::array>& outputs) override;

  // The CSE policy of every ncps primitive: never merge (see kMergeEquivalent).
  bool is_equivalent(const mx::Primitive& other) const final;
  // True when `other` is the same primitive with every attribute equal: what is_equivalent would
  // return if merging were safe.
  virtual bool same_config(const mx::Primitive& other) const = 0;

 protected:
  [[noreturn]] void refuse(const std::string& what) const;
};

}  // namespace ncps::common
