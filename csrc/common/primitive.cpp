#include "common/primitive.h"

#include <stdexcept>

namespace ncps::common {

namespace {
// Off on purpose. MLX 0.32.4's compile CSE mis-orders the tape when it merges two equivalent
// *multi-output* nodes: try_merge ranks parents by tape_order[], which holds only one output per
// node, so a sibling ranks as 0 and the earlier node can be merged into the later one, whose
// consumers then precede it, and compile_replace fails with "IndexError: _Map_base::at" (seen with
// ncps.training.fit and a metric: the metric's forward and the loss's forward are the same
// CfCSequence). Most ncps primitives have several outputs (states and cells, the workspace, one
// gradient per input), and one policy for all keeps the single-output ones from differing for no
// gain. Not merging only forgoes computing an identical sequence once instead of twice.
constexpr bool kMergeEquivalent = false;
}  // namespace

void Primitive::refuse(const std::string& what) const {
  throw std::runtime_error(std::string("[") + name() + "] " + what);
}

void Primitive::eval_gpu(const std::vector<mx::array>&, std::vector<mx::array>&) {
  refuse("has no GPU kernel; run it on the CPU stream");
}

std::vector<mx::array> Primitive::jvp(const std::vector<mx::array>&, const std::vector<mx::array>&,
                                      const std::vector<int>&) {
  refuse("forward-mode differentiation (jvp) is not implemented; use reverse mode (mx.grad / mx.vjp)");
}

std::pair<std::vector<mx::array>, std::vector<int>> Primitive::vmap(const std::vector<mx::array>&,
                                                                    const std::vector<int>&) {
  refuse("vmap is not implemented; the primitive is already batched over B");
}

std::vector<mx::array> Primitive::vjp(const std::vector<mx::array>&, const std::vector<mx::array>&,
                                      const std::vector<int>&, const std::vector<mx::array>&) {
  refuse("higher-order derivatives (the gradient of a fused backward) are not implemented");
}

bool Primitive::is_equivalent(const mx::Primitive& other) const { return kMergeEquivalent && same_config(other); }

}  // namespace ncps::common
