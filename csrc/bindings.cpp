// The one nanobind module of the package: every primitive's op is bound here.
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include "build_info.h"
#include "ltc_sequence.h"

namespace nb = nanobind;
using namespace nb::literals;

NB_MODULE(_ext, m) {
  m.doc() = "ncps fused MLX primitives";
  m.def("build_info", &ncps::build_info, "How the extension was built.");
  m.def("max_threads", &ncps::max_threads, "Threads the CPU kernels may use.");
  m.def("ltc_sequence", &ncps::ltc_sequence, "x"_a, "h0"_a, "dt"_a, "sensory_w"_a, "sensory_sigma"_a,
        "sensory_mu"_a, "sensory_erev"_a, "sensory_mask"_a, "w"_a, "sigma"_a, "mu"_a, "erev"_a, "mask"_a, "cm"_a,
        "gleak"_a, "vleak"_a, "ode_unfolds"_a, "epsilon"_a, nb::kw_only(), "stream"_a = nb::none(),
        R"doc(Fused LTC sequence (forward primitive LTCSequence, backward LTCSequenceGrad).

Computes exactly ``ncps.ltc.ltc_sequence``: for every step t, sensory conductances from x[:, t],
then ``ode_unfolds`` semi-implicit sub-steps of h = dt[:, t] / ode_unfolds; samples with
dt <= 0 keep their state for that step.

Shapes: x (B, T, I) mapped inputs; h0 (B, N); dt (B, T); sensory_w, sensory_sigma, sensory_mu,
sensory_erev, sensory_mask (I, N); w, sigma, mu, erev, mask (N, N) indexed [source, destination];
cm, gleak, vleak (N,). Returns the state after every step, (B, T, N), in x's floating dtype
(computed in float32). w, sensory_w, cm and gleak are used as given (apply constraints outside).
Masks multiply the synaptic activation; only synapses with a nonzero mask are computed, and the
masks receive zero gradient. Raises ValueError for wrong shapes. CPU only.)doc");
}
