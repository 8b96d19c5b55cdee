"""The fused LTC kernels: the cell hooks of :class:`~ncps.LTCCell` and the validated array API.

The hooks (:func:`why_not`, :func:`sequence`, :func:`step`, :func:`infer`, :func:`prepared_step`;
the interface of every backend module, :class:`ncps.backends.hooks.StreamingHooks`) take a cell
and inputs a layer or the cell already validated, and call the primitives directly.
:func:`ltc_sequence` and :func:`ltc_mixed_sequence` are the entry points for arrays and a
parameter dict; they validate their arguments and name the one that is wrong (the C++ side
checks again, as a last line of defence).

:func:`ltc_sequence` wraps ``_ext.ltc_sequence``: the whole liquid time-constant sequence (``T``
steps of ``ode_unfolds`` semi-implicit sub-steps) as one MLX primitive (``LTCSequence``) whose
vector-Jacobian product is a second fused primitive (``LTCSequenceGrad``, backpropagation through
every sub-step). It computes exactly :func:`ncps.cells.ltc.ltc_sequence`, the pure-MLX reference, and
works under ``mx.grad``, ``mx.value_and_grad``, ``nn.value_and_grad`` and ``mx.compile``.

:func:`ltc_mixed_sequence` wraps ``_ext.ltc_mixed_sequence``: the mixed-memory variant (an LSTM
before every LTC step, ``mixed_memory=True`` in the layers) as one primitive
(``LTCMixedSequence``) with a fused backward (``LTCMixedSequenceGrad``) through the LSTM and every
LTC sub-step; the LSTM's input and recurrent projections run inside the kernel.

The kernels run on the CPU; only synapses whose mask entry is nonzero are computed, so sparse
NCP wirings cost in proportion to their synapse count. The masks receive zero gradient.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlx.core as mx

from ... import _dtypes
from ... import kernels as _kernels
from ...kernels import _ext
from ..ltc_args import (
    LSTM_PARAMS,
    LTC_PARAMS,
    SOLVER_PARAMS,
    check_epsilon,
    check_lstm_args,
    check_ltc_args,
    lstm_params,
)
from .streaming import constant_dt, module_edges

__all__ = [
    "ltc_sequence",
    "ltc_mixed_sequence",
    "lstm_params",
    "LTC_PARAMS",
    "LSTM_PARAMS",
    "SOLVER_PARAMS",
    "why_not",
    "sequence",
    "step",
    "infer",
    "prepared_step",
]

KERNEL = "ltc_sequence"


def _require_ext():
    if _ext is None:
        why = getattr(_kernels, "_EXT_ERROR", None) or "not built"
        raise RuntimeError(
            f"the compiled extension ncps._ext is not available ({why}); "
            "use the reference implementation ncps.cells.ltc.ltc_sequence instead"
        )
    return _ext


def ltc_sequence(
    x: mx.array,
    h0: mx.array,
    dt: mx.array,
    params: Mapping[str, mx.array],
    ode_unfolds: int = 6,
    epsilon: float = 1e-8,
    *,
    stream: object | None = None,
) -> mx.array:
    """The fused LTC sequence: states ``(B, T, N)`` after every step.

    Args:
        x: mapped inputs ``(B, T, I)``.
        h0: initial state ``(B, N)``.
        dt: elapsed time ``(B, T)`` per sample and step; a step with ``dt <= 0`` leaves that
            sample's state unchanged.
        params: the effective solver parameters (keys of :data:`SOLVER_PARAMS`, e.g.
            ``LTCCell.solver_params()``): ``sensory_*`` ``(I, N)``, ``w, sigma, mu, erev, mask``
            ``(N, N)`` indexed ``[source, destination]``, ``cm, gleak, vleak`` ``(N,)``, with
            positivity constraints already applied.
        ode_unfolds: semi-implicit sub-steps per step (``K >= 1``).
        epsilon: added to the solver's denominator.
        stream: optional CPU stream or device.

    Returns:
        ``(B, T, N)`` in MLX's promotion of every input but ``dt`` (computed in float32; half
        arrays are read and written as they are).

    Raises:
        ValueError: a missing parameter, a wrong shape or rank (the message names the argument and
            the expected shape), or ``ode_unfolds < 1``.
        RuntimeError: the extension is not loaded.
    """
    _require_ext()
    check_ltc_args("ltc_sequence", x, h0, dt, params, ode_unfolds)
    check_epsilon("ltc_sequence", epsilon)
    return _plain(x, h0, dt, params, ode_unfolds, epsilon, stream)


def _plain(x, h0, dt, params, ode_unfolds, epsilon, stream=None) -> mx.array:
    return _ext.ltc_sequence(
        x, h0, dt, *(params[k] for k in LTC_PARAMS), int(ode_unfolds), float(epsilon), stream=stream
    )


def ltc_mixed_sequence(
    x: mx.array,
    h0: mx.array,
    c0: mx.array,
    dt: mx.array,
    params: Mapping[str, mx.array],
    lstm_input: mx.array,
    lstm: Mapping[str, mx.array],
    ode_unfolds: int = 6,
    epsilon: float = 1e-8,
    *,
    stream: object | None = None,
) -> tuple[mx.array, mx.array]:
    """The fused mixed-memory LTC sequence: ``(states, cells)``, each ``(B, T, N)``.

    Every step ``t`` runs the LSTM (:class:`~ncps.LSTMCell`) on ``(lstm_input[:, t], (v, c))``
    and then the LTC step (as :func:`ltc_sequence`) from the LSTM's output with mapped input
    ``x[:, t]``; ``v`` starts at ``h0`` and ``c`` at ``c0``. ``states`` holds ``v`` and ``cells``
    holds ``c`` after every step, so the final state of a layer is ``(states[:, -1], cells[:, -1])``.

    Args:
        x: mapped LTC inputs ``(B, T, I)``.
        h0, c0: initial LTC state and LSTM cell state ``(B, N)``.
        dt: elapsed time ``(B, T)``; a step with ``dt <= 0`` runs the LSTM but not the LTC (the
            state becomes the LSTM's output), as the reference.
        params: the effective LTC solver parameters, as for :func:`ltc_sequence`.
        lstm_input: the LSTM's input ``(B, T, F)`` (the unmapped layer input).
        lstm: the LSTM's parameters (keys of :data:`LSTM_PARAMS`, e.g. :func:`lstm_params`):
            ``input_w`` ``(4N, F)``, ``input_b`` ``(4N,)``, ``recurrent_w`` ``(4N, N)``, gates
            ordered ``[input, input gate, forget gate, output gate]``.
        ode_unfolds, epsilon, stream: as for :func:`ltc_sequence`.

    Returns:
        ``(states, cells)`` in MLX's promotion of every input but ``dt`` (computed in float32).

    Raises:
        ValueError: a missing parameter or a wrong shape (the message names the argument and the
            expected shape), or ``ode_unfolds < 1``.
        RuntimeError: the extension is not loaded.
    """
    op = "ltc_mixed_sequence"
    _require_ext()
    B, T, I, N = check_ltc_args(op, x, h0, dt, params, ode_unfolds)
    check_epsilon(op, epsilon)
    check_lstm_args(op, B, T, N, lstm_input, lstm, c0)
    return _mixed(x, h0, c0, dt, params, lstm_input, lstm, ode_unfolds, epsilon, stream)


def _mixed(x, h0, c0, dt, params, lstm_input, lstm, ode_unfolds, epsilon, stream=None) -> tuple[mx.array, mx.array]:
    states, cells = _ext.ltc_mixed_sequence(
        x,
        h0,
        dt,
        *(params[k] for k in LTC_PARAMS),
        lstm_input,
        *(lstm[k] for k in LSTM_PARAMS),
        c0,
        int(ode_unfolds),
        float(epsilon),
        stream=stream,
    )
    return states, cells


# -- the cell hooks (inputs validated by the caller) ----------------------------------------------


def kernel_name(mixed_memory: bool = False) -> str:
    """The primitive that runs a layer with or without mixed memory."""
    return "ltc_mixed_sequence" if mixed_memory else KERNEL


def why_not(cell: Any, mixed_memory: bool = False) -> str | None:
    """None: the primitives cover every LTC cell, with or without mixed memory."""
    return None


def sequence(cell, x: mx.array, h0: mx.array, dt: mx.array, lstm=None, c0=None, *, backend: str = "cpu", stream=None):
    """:meth:`ncps.backends.hooks.Hooks.sequence` as one ``LTCSequence`` primitive, or with
    ``lstm`` one ``LTCMixedSequence`` (the LSTM inside the time loop).

    A step with ``dt = 0`` (a layer's padding) leaves the state unchanged; the plain primitive
    skips it for every group of SIMD lanes (consecutive samples) whose steps all have ``dt = 0``,
    so a padded batch sorted by length costs about its real steps. (The mixed-memory LSTM still
    runs at ``dt = 0``.)"""
    args = (cell.solver_params(), cell.ode_unfolds, cell.epsilon)
    # The reference's dtype: its arithmetic promotes x, the state and the parameters together
    # (the primitive promotes the same, but sees the mapped input).
    dtype = mx.result_type(x, h0, args[0]["cm"])
    if lstm is None:
        return _dtypes.cast(_plain(cell.map_inputs(x), h0, dt, *args, stream=stream), dtype), None
    c0 = mx.zeros_like(h0) if c0 is None else c0
    states, cells = _mixed(cell.map_inputs(x), h0, c0, dt, args[0], x, lstm_params(lstm), *args[1:], stream=stream)
    return _dtypes.cast(states, dtype), _dtypes.cast(cells, dtype)


def step(
    cell: Any, x: mx.array, h: mx.array, ts: float | mx.array, *, backend: str = "cpu", stream: object | None = None
) -> mx.array:
    """One step as a one-step sequence: ``x`` ``(B, I)``, ``h`` ``(B, N)``, ``ts`` a float or
    ``(B, 1)``; the new state ``(B, N)``."""
    dt = mx.full((x.shape[0], 1), ts) if isinstance(ts, (int, float)) else ts
    return sequence(cell, x[:, None], h, dt, stream=stream)[0][:, 0]


# The cell's raw parameters in the order of SOLVER_PARAMS (the masks under the cell's names), and
# its optional mappings: what ``_ext.ltc_step_now`` takes.
_RAW_PARAMS = (
    "sensory_w",
    "sensory_sigma",
    "sensory_mu",
    "sensory_erev",
    "sensory_sparsity_mask",
    "w",
    "sigma",
    "mu",
    "erev",
    "sparsity_mask",
    "cm",
    "gleak",
    "vleak",
)


def _step_args(cell: Any) -> tuple:
    """What ``_ext.ltc_step_now`` and ``_ext.LTCStep`` take after the step's own arguments."""
    get = cell.get  # nn.Module is a dict: its arrays without Module.__getattr__
    return (
        [get(k) for k in _RAW_PARAMS],
        get("input_w"),
        get("input_b"),
        get("output_w"),
        get("output_b"),
        cell.motor_size,
        cell.ode_unfolds,
        cell.epsilon,
        cell.implicit_param_constraints,
    )


def infer(cell: Any, x: mx.array, h: mx.array, ts: float | mx.array) -> tuple:
    """One step computed immediately (``_ext.ltc_step_now``): evaluated ``(output, state)``, no
    graph node and no gradient. The kernel applies the constraints and the mappings itself.
    It prepares the parameters (synapse lists) at every call: :meth:`ncps.cells.base.Cell.infer`
    keeps them prepared instead (:func:`prepared_step`). Arguments as for :func:`step`."""
    dt = constant_dt(x.shape[0], float(ts)) if isinstance(ts, (int, float)) else ts
    return _ext.ltc_step_now(x, h, dt, *_step_args(cell))


def prepared_step(cell: Any) -> Any:
    """The cell's streaming step prepared once (``_ext.LTCStep``: constraints applied, synapse
    lists built), guarded by the identities of everything in the cell
    (:func:`ncps.backends.cpu.streaming.module_edges`): replacing a parameter (training, ``load_weights``)
    or an option prepares it again."""
    edges = module_edges(cell)
    return _ext.LTCStep(edges, *_step_args(cell), cell.input_size)
