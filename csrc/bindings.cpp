// The one nanobind module of the package: every primitive's op is bound here.
#include <nanobind/nanobind.h>
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include "cfc/ops.h"
#include "cfc/primitives.h"
#include "common/build_info.h"
#include "common/isa.h"
#include "common/math_probe.h"
#include "common/storage.h"
#include "common/stream_step.h"
#include "common/workspace_pool.h"
#include "ltc/ops.h"

namespace nb = nanobind;
using namespace nb::literals;
namespace mx = mlx::core;

NB_MODULE(_ext, m) {
  m.doc() = "ncps fused MLX primitives";
  // Choose the kernel target now, so that a bad NCPS_ISA fails the import with its reason
  // (kernels.info() reports it) instead of the first kernel call on MLX's worker thread.
  ncps::common::chosen_isa();
  m.def("build_info", &ncps::common::build_info, "How the extension was built.");
  m.def("max_threads", &ncps::common::build_max_threads, "Threads the CPU kernels may use.");
  m.def(
      "_math_probe",
      [](const std::string& fn, const std::vector<float>& x, int lanes) {
        return ncps::common::dispatch([&]<class Isa>() { return ncps::common::math_probe<Isa>(fn, x, lanes); });
      },
      "fn"_a, "x"_a, "lanes"_a,
      "Tests only: the kernels' SIMD exp / exp2 / sigmoid / sigmoid_log2 / tanh on a list of floats.");
  m.def(
      "_storage_probe",
      [](const std::vector<float>& x, const std::string& dtype) {
        const auto st = dtype == "bfloat16" ? ncps::common::Storage::bf16 : ncps::common::Storage::f16;
        if (dtype != "bfloat16" && dtype != "float16")
          throw std::invalid_argument("_storage_probe: dtype must be 'bfloat16' or 'float16', got '" + dtype + "'");
        const auto n = static_cast<int64_t>(x.size());
        std::vector<uint16_t> bits(x.size());
        std::vector<float> back(x.size());
        ncps::common::narrow(st, x.data(), n, bits.data());
        ncps::common::widen(st, bits.data(), n, back.data());
        return std::make_pair(bits, back);
      },
      "x"_a, "dtype"_a,
      "Tests only: the kernels' rounding of float32 values to a half type (its bits) and their widening back.");
  nb::class_<ncps::common::ArrayToken>(m, "ArrayToken",
                                       "Whether an mx.array still has the descriptor it had when taken "
                                       "(an in-place update swaps it): ArrayToken(a).same(a).")
      .def(nb::init<const mx::array&>(), "array"_a)
      .def("same", &ncps::common::ArrayToken::same, "array"_a);
  m.def(
      "release_workspaces", [] { return ncps::common::WorkspacePool::get().release(); },
      "Frees the kernels' idle workspace buffers (kept to avoid page faults); returns the bytes.");
  m.def("bf16_instructions", &ncps::common::bf16_instructions,
        "Whether float32 -> bfloat16 rounding uses AVX-512 BF16 (VCVTNEPS2BF16) here.");
  m.def(
      "cfc_modes",
      [] { return std::vector<std::string>(std::begin(ncps::cfc::kModeNames), std::end(ncps::cfc::kModeNames)); },
      "The CfC modes the extension takes, in code order (the GPU kernels' MODE).");
  m.def(
      "cfc_activations",
      [] { return std::vector<std::string>(std::begin(ncps::cfc::kActNames), std::end(ncps::cfc::kActNames)); },
      "The CfC backbone activations the extension takes, in code order (the GPU kernels' ACT).");
  m.def(
      "ltc_inputs",
      [] { return std::vector<std::string>(std::begin(ncps::ltc::kInputNames), std::end(ncps::ltc::kInputNames)); },
      "The inputs of ltc_mixed_sequence in argument order (ltc_sequence takes the first 16).");
  m.def("cfc_step_now", &ncps::cfc::cfc_step_now, "x"_a, "h0"_a, "dt"_a, "params"_a, "unit_sizes"_a, "backbone"_a,
        "masked"_a, "mode"_a, "activation"_a, "readout_start"_a, "readout_size"_a,
        R"doc(One CfC / wired CfC step for streaming inference, computed immediately on the calling
thread: no graph node, no gradient, no hand-off to the stream's worker thread. x (B, I), h0 (B, N),
dt (B, 1); parameters as for ``cfc_sequence`` (no mixed memory). Returns the evaluated
(output, new_state): the state's columns [readout_start, readout_start + readout_size) and the
state (B, N), float32.)doc");
  using CfCStep = ncps::common::StreamStep<ncps::cfc::CfCStepCore>;
  nb::class_<CfCStep>(m, "CfCStep", nb::type_slots(CfCStep::gc_slots()),
                      R"doc(A prepared CfC / wired CfC streaming step (what ``CfCCell.infer`` runs).

CfCStep(edges, params, unit_sizes, backbone, masked, mode, activation, input_size, readout_start,
readout_size): the arguments of ``cfc_step_now`` (validated here, once; the parameters are kept as
float32 copies) and ``edges``, the (container, key, object) triples of the cell's module tree it
was built from (containers: dicts and lists). ``step(x, h, ts)`` computes one step immediately on
the calling thread: x (B, I), h (B, N), ts a float >= 0 or an array (B,) / (B, 1) (invalid entries
become NaN); returns the evaluated (output, new_state), float32, or None when any edge changed
(a parameter was replaced: build a new step) or an argument is not one it takes (the caller's
checked path reports it). ``valid()`` says whether the edges are unchanged.)doc")
      .def(nb::new_([](const nb::list& edges, const std::vector<mx::array>& params, const std::vector<int>& unit_sizes,
                       const std::vector<std::vector<int>>& backbone, const std::vector<bool>& masked,
                       const std::string& mode, const std::string& activation, int input_size, int readout_start,
                       int readout_size) {
             return CfCStep(edges, ncps::cfc::CfCStepCore(params, unit_sizes, backbone, masked, mode, activation,
                                                          input_size, readout_start, readout_size));
           }),
           "edges"_a, "params"_a, "unit_sizes"_a, "backbone"_a, "masked"_a, "mode"_a, "activation"_a, "input_size"_a,
           "readout_start"_a, "readout_size"_a)
      .def("step", &CfCStep::step, "x"_a.none(), "h"_a.none(), "ts"_a.none())
      .def("valid", &CfCStep::valid);
  m.def("cfc_sequence", &ncps::cfc::cfc_sequence, "x"_a, "h0"_a, "dt"_a, "params"_a, "unit_sizes"_a, "backbone"_a,
        "masked"_a, "mode"_a, "activation"_a, "lstm"_a = nb::none(), "c0"_a = nb::none(), nb::kw_only(),
        "stream"_a = nb::none(),
        R"doc(Fused CfC / wired CfC sequence (forward primitive CfCSequence, backward CfCSequenceGrad).

Runs ``units`` chained CfC units over every step t (unit u > 0 reads unit u-1's new state; unit 0
reads x[:, t]); unit u has ``unit_sizes[u]`` neurons, a backbone of widths ``backbone[u]`` and,
when ``masked[u]``, ff1/ff2 weights multiplied by its mask. With ``lstm`` and ``c0`` the
mixed-memory LSTM runs before the CfC at every step. Shapes: x (B, T, I), h0 (B, N), dt (B, T);
params per unit: backbone (W, b) pairs, heads ff1.W, ff1.b, ff2.W, ff2.b, time_a.W, time_a.b,
time_b.W, time_b.b (pure: ff1.W, ff1.b, w_tau (1, n), A (1, n)), then the mask (n, head_in);
weights in Linear layout (out, in). Returns [states (B, T, N)] (+ [cells (B, T, N)], the LSTM cell state after every step, with the LSTM).
With x (B, I) it is one streaming step: dt (B, 1) and states (B, N).
Computed in float32. Raises ValueError for wrong shapes or options. CPU only.)doc");
  m.def("ltc_sequence", &ncps::ltc::ltc_sequence, "x"_a, "h0"_a, "dt"_a, "sensory_w"_a, "sensory_sigma"_a,
        "sensory_mu"_a, "sensory_erev"_a, "sensory_mask"_a, "w"_a, "sigma"_a, "mu"_a, "erev"_a, "mask"_a, "cm"_a,
        "gleak"_a, "vleak"_a, "ode_unfolds"_a, "epsilon"_a, nb::kw_only(), "stream"_a = nb::none(),
        R"doc(Fused LTC sequence (forward primitive LTCSequence, backward LTCSequenceGrad).

Computes exactly ``ncps.ltc.ltc_sequence``: for every step t, sensory conductances from x[:, t],
then ``ode_unfolds`` semi-implicit sub-steps of h = dt[:, t] / ode_unfolds; samples with
dt <= 0 keep their state for that step.

Shapes: x (B, T, I) mapped inputs; h0 (B, N); dt (B, T); sensory_w, sensory_sigma, sensory_mu,
sensory_erev, sensory_mask (I, N); w, sigma, mu, erev, mask (N, N) indexed [source, destination];
cm, gleak, vleak (N,). Returns the state after every step, (B, T, N), in the promoted dtype of
every input but dt (computed in float32; bfloat16 and float16 read and written as they are). w, sensory_w, cm and gleak are used as given (apply constraints outside).
Masks multiply the synaptic activation; only synapses with a nonzero mask are computed, and the
masks receive zero gradient. Raises ValueError for wrong shapes. CPU only.)doc");
  m.def("ltc_step_now", &ncps::ltc::ltc_step_now, "x"_a, "h0"_a, "dt"_a, "params"_a, "input_w"_a.none(),
        "input_b"_a.none(), "output_w"_a.none(), "output_b"_a.none(), "motor_size"_a, "ode_unfolds"_a, "epsilon"_a,
        "implicit_constraints"_a,
        R"doc(One LTC cell step for streaming inference, computed immediately on the calling thread: no
graph node, no gradient, no hand-off to the stream's worker thread. x (B, I) raw inputs, h0 (B, N),
dt (B, 1); params: the 13 raw solver parameters in the order of ``ltc_sequence``; with
implicit_constraints softplus is applied to w, sensory_w, cm and gleak. input_w/input_b (I,) and
output_w/output_b (motor_size,) map inputs and outputs (None: skipped). Returns the evaluated
(output (B, motor_size), new_state (B, N)), float32. Prepares the parameters at every call (a
control loop keeps an ``LTCStep``).)doc");
  using LTCStep = ncps::common::StreamStep<ncps::ltc::LTCStepCore>;
  nb::class_<LTCStep>(m, "LTCStep", nb::type_slots(LTCStep::gc_slots()),
                      R"doc(A prepared LTC cell streaming step (what ``LTCCell.infer`` runs).

LTCStep(edges, params, input_w, input_b, output_w, output_b, motor_size, ode_unfolds, epsilon,
implicit_constraints, input_size): the parameters of ``ltc_step_now`` (validated, constrained and
turned into synapse lists here, once) and ``edges`` as for ``CfCStep``. ``step(x, h, ts)`` and
``valid()`` as for ``CfCStep``; x holds the raw inputs (the input mapping runs inside).)doc")
      .def(nb::new_([](const nb::list& edges, const std::vector<mx::array>& params,
                       const std::optional<mx::array>& input_w, const std::optional<mx::array>& input_b,
                       const std::optional<mx::array>& output_w, const std::optional<mx::array>& output_b,
                       int motor_size, int ode_unfolds, float epsilon, bool implicit_constraints, int input_size) {
             return LTCStep(edges, ncps::ltc::LTCStepCore(params, input_w, input_b, output_w, output_b, motor_size,
                                                          ode_unfolds, epsilon, implicit_constraints, input_size));
           }),
           "edges"_a, "params"_a, "input_w"_a.none(), "input_b"_a.none(), "output_w"_a.none(), "output_b"_a.none(),
           "motor_size"_a, "ode_unfolds"_a, "epsilon"_a, "implicit_constraints"_a, "input_size"_a)
      .def("step", &LTCStep::step, "x"_a.none(), "h"_a.none(), "ts"_a.none())
      .def("valid", &LTCStep::valid);
  m.def("ltc_mixed_sequence", &ncps::ltc::ltc_mixed_sequence, "x"_a, "h0"_a, "dt"_a, "sensory_w"_a, "sensory_sigma"_a,
        "sensory_mu"_a, "sensory_erev"_a, "sensory_mask"_a, "w"_a, "sigma"_a, "mu"_a, "erev"_a, "mask"_a, "cm"_a,
        "gleak"_a, "vleak"_a, "lstm_input"_a, "lstm_input_w"_a, "lstm_input_b"_a, "lstm_recurrent_w"_a, "c0"_a,
        "ode_unfolds"_a, "epsilon"_a, nb::kw_only(), "stream"_a = nb::none(),
        R"doc(Fused mixed-memory LTC sequence (forward primitive LTCMixedSequence, backward
LTCMixedSequenceGrad): an LSTM before every LTC step, as the official ncps layers with
mixed_memory=True.

Every step t: z = lstm_input[:, t] @ lstm_input_w.T + lstm_input_b + v @ lstm_recurrent_w.T,
[i, ig, fg, og] = split(z, 4), c = c * sigmoid(fg + 1) + tanh(i) * sigmoid(ig),
h' = tanh(c) * sigmoid(og); then the LTC step of ``ltc_sequence`` from state h' with mapped input
x[:, t] and dt[:, t] gives the new v (samples with dt <= 0 keep h'). v starts at h0, c at c0.

Shapes: the arguments of ``ltc_sequence``, plus lstm_input (B, T, F), lstm_input_w (4N, F),
lstm_input_b (4N,), lstm_recurrent_w (4N, N), c0 (B, N). Returns (states, cells), each (B, T, N):
the LTC state v and the cell state c after every step, in the promoted dtype of every input but
dt (computed in float32). Raises ValueError for wrong shapes. CPU only.)doc");
}
