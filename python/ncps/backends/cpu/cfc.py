"""The fused CfC kernel: the cell hooks of :class:`~ncps.CfCCell` and :class:`~ncps.WiredCfCCell`.

One C++ primitive (``CfCSequence``) runs a whole sequence of a :class:`~ncps.CfCCell` (one unit
with its backbone MLP) or a :class:`~ncps.WiredCfCCell` (one masked, backbone-free unit per wiring
layer), optionally with the mixed-memory LSTM before every step; its vjp is a second fused
primitive (``CfCSequenceGrad``, backpropagation through time), so ``mx.grad``,
``nn.value_and_grad`` and ``mx.compile`` work as for any MLX op.

The hooks are the interface every backend module shares (:class:`ncps.backends.hooks.Hooks`):
:func:`why_not`, :func:`sequence` (a layer's whole sequence), :func:`step` (one streaming step in
the primitive's step form, x ``(B, I)``: one graph node per step) and :func:`infer` (one step
computed immediately). They take inputs the layer or the cell already validated;
:func:`cfc_sequence` is the validated entry point for direct calls.

Design (csrc/cfc_kernel.cpp): the input half of the first layer for all steps is one GEMM before
the time loop; the loop keeps only the recurrence (h W_h^T, backbone, heads, closed-form update),
threads split the batch and each runs the whole loop. The forward saves every per-step
activation; the backward sweep only propagates the recurrence and the weight gradients are
large GEMMs over all (t, b) rows afterwards. GEMMs are our register-blocked SIMD tiles
(csrc/gemm.h; MLX's Linux BLAS is the netlib reference). Masked heads are dense GEMMs on W * mask
(the NCP masks are ~75% dense, so skipping zeros would save at most ~12% of the head products).
Backbone dropout in training mode is not fused (:func:`why_not` says so; ``auto`` falls back).
"""

from __future__ import annotations

import sys
from typing import Any

import mlx.core as mx

from ... import _checks, _dtypes
from ...kernels import _ext
from .streaming import constant_dt, module_edges

KERNEL = "cfc_sequence"
SUPPORTED_ACTIVATIONS = ("lecun_tanh", "tanh", "relu", "silu", "gelu", "sigmoid", "softplus")


def _unit_params(cell) -> list:
    """The arrays of one CfCCell, in the primitive's order.

    (Modules are dicts: indexing them skips ``nn.Module.__getattr__``, which matters for the
    latency of a streaming step.)
    """
    params = []
    for layer in cell["backbone"]:
        params += (layer["weight"], layer["bias"])
    ff1 = cell["ff1"]
    params += (ff1["weight"], ff1["bias"])
    if cell.mode == "pure":
        params += (cell["w_tau"], cell["A"])
    else:
        for name in ("ff2", "time_a", "time_b"):
            head = cell[name]
            params += (head["weight"], head["bias"])
    if "sparsity_mask" in cell:
        params.append(cell["sparsity_mask"])
    return params


def cell_units(cell) -> list:
    """The CfCCell of each unit: the cell itself, or the layers of a WiredCfCCell."""
    if "layer_0" in cell:  # a WiredCfCCell (modules are dicts of their children)
        return [cell[f"layer_{l}"] for l in range(len(cell.layer_sizes))]
    return [cell]


def kernel_name(mixed_memory: bool = False) -> str:
    """The primitive that runs a layer (mixed memory runs inside the same one)."""
    return KERNEL


def why_not(cell: Any, mixed_memory: bool = False) -> str | None:
    """None when the fused kernel covers ``cell`` (a CfCCell or WiredCfCCell; mixed memory is
    covered too), else why not."""
    for unit in cell_units(cell):
        if unit.activation not in SUPPORTED_ACTIVATIONS:
            return f"activation {unit.activation!r} has no fused implementation"
        if unit.dropout is not None and unit.training:
            return (
                f"backbone dropout ({unit.backbone_dropout}) in training mode is not fused; "
                "call .eval() for inference or use the reference path"
            )
    return None


def _shape(a) -> tuple:
    return tuple(a.shape)


def cfc_sequence(cell: Any, x: mx.array, h0: mx.array, dt: mx.array, lstm: Any = None, c0: mx.array | None = None):
    """Run ``cell`` over a batch-first sequence with the fused primitive, validating every argument.

    Args:
        cell: a :class:`~ncps.CfCCell` or :class:`~ncps.WiredCfCCell`.
        x: ``(B, T, input_size)``.
        h0: ``(B, state_size)``.
        dt: elapsed times ``(B, T)``.
        lstm: the mixed-memory :class:`~ncps.LSTMCell` (or None); then ``c0`` ``(B, state_size)``.

    Returns:
        ``(states, cells or None)``, each ``(B, T, state_size)``, as :func:`sequence`.
    """
    if _ext is None:
        raise RuntimeError("the fused CfC kernel needs the compiled extension ncps._ext")
    if getattr(cell, "fused", None) is not sys.modules[__name__]:  # a CfCCell or WiredCfCCell
        raise TypeError(f"cell must be a CfCCell or WiredCfCCell, got {type(cell).__name__}")
    I, N = cell.input_size, cell.state_size
    for name, a in (("x", x), ("h0", h0), ("dt", dt), ("c0", c0)):
        if isinstance(a, mx.array):
            _checks.real_array(a, name)
    if not isinstance(x, mx.array) or x.ndim != 3 or x.shape[-1] != I or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"x must have shape (batch, time, input_size) = (B, T, {I}), got {_shape(x)}")
    B, T = x.shape[:2]
    if not isinstance(h0, mx.array) or _shape(h0) != (B, N):
        raise ValueError(f"h0 must have shape (batch, state_size) = ({B}, {N}), got {_shape(h0)}")
    if not isinstance(dt, mx.array) or _shape(dt) != (B, T):
        raise ValueError(f"dt must have shape (batch, time) = ({B}, {T}), got {_shape(dt)}")
    if lstm is not None:
        if lstm.input_size != I or lstm.hidden_size != N:
            raise ValueError(
                f"the mixed-memory LSTM must map {I} inputs to {N} units, got {lstm.input_size} -> {lstm.hidden_size}"
            )
        if not isinstance(c0, mx.array) or _shape(c0) != (B, N):
            raise ValueError(f"c0 must have shape (batch, state_size) = ({B}, {N}), got {_shape(c0)}")
    elif c0 is not None:
        raise ValueError("c0 is only for mixed memory (pass lstm too)")
    return sequence(cell, x, h0, _checks.invalid_timespans_to_nan(dt), lstm, c0)


def sequence(cell, x: mx.array, h0: mx.array, dt: mx.array, lstm=None, c0=None, *, backend: str = "cpu", stream=None):
    """:meth:`ncps.backends.hooks.Hooks.sequence` as one ``CfCSequence`` primitive (the
    mixed-memory LSTM runs inside it). A layer's padded steps (zero input, ``dt = 0``) are
    computed like any other and discarded by the layer."""
    if lstm is not None and c0 is None:
        c0 = mx.zeros_like(h0)
    units = cell_units(cell)
    out = _call(units, x, h0, dt, lstm, c0, stream)
    dtype = _result_dtype(units, x, h0)
    return _dtypes.cast(out[0], dtype), (_dtypes.cast(out[1], dtype) if lstm is not None else None)


def _result_dtype(units: list, x: mx.array, h: mx.array) -> mx.Dtype:
    """The reference path's dtype: MLX's promotion of ``x``, the state and the parameters, with
    ``dt`` left out (README "Precision"). The primitive reads and writes half arrays itself
    (float32 inside) and returns the promotion of all its inputs but ``dt``: the same dtype, so the
    hooks' cast is no node unless a parameter array (e.g. a mask) has a dtype of its own."""
    return _dtypes.compute_dtype(x, h, units[0]["ff1"]["weight"])


def _unit_args(units: list) -> tuple:
    """The primitive's arguments that describe the units: ``(params, unit_sizes, backbone,
    masked, mode, activation)``."""
    params = []
    for unit in units:
        params += _unit_params(unit)
    return (
        params,
        [u.hidden_size for u in units],
        [[layer["weight"].shape[0] for layer in u["backbone"]] for u in units],
        ["sparsity_mask" in u for u in units],
        units[0].mode,
        units[0].activation,
    )


def _call(units: list, x, h0, dt, lstm=None, c0=None, stream=None) -> list:
    if not mx.issubdtype(x.dtype, mx.floating):
        x = x.astype(mx.float32)
    lstm_params = None
    if lstm is not None:
        lstm_params = [lstm["input_map"]["weight"], lstm["input_map"]["bias"], lstm["recurrent_map"]["weight"]]
    return _ext.cfc_sequence(
        x, h0, dt, *_unit_args(units), lstm_params, c0 if lstm is not None else None, stream=stream
    )


def _readout(cell: Any) -> tuple:
    """(first column, size) of the output inside the state: a wired cell's motor neurons are
    its last ones, a CfCCell's output its first ``output_size`` columns."""
    if "layer_0" in cell:
        return cell.state_size - cell.motor_size, cell.motor_size
    return 0, cell.output_size


def infer(cell: Any, x: mx.array, h: mx.array, ts: float | mx.array, readout: tuple | None = None) -> tuple:
    """One step computed immediately (``_ext.cfc_step_now``): evaluated ``(output, state)``, no
    graph node and no gradient; ``readout`` = (first column, size) of the output in the state
    (the cell's own by default). Other arguments as for :func:`step`."""
    dt = constant_dt(x.shape[0], float(ts)) if isinstance(ts, (int, float)) else ts
    return _ext.cfc_step_now(x, h, dt, *_unit_args(cell_units(cell)), *(readout or _readout(cell)))


def prepared_step(cell: Any) -> Any:
    """The cell's streaming step prepared once (``_ext.CfCStep``): its ``step(x, h, ts)`` is
    :func:`infer` without the per-call gathering of the parameters and their validation, guarded
    by the identities of everything in the cell (:func:`ncps.backends.cpu.streaming.module_edges`)."""
    edges = module_edges(cell)
    return _ext.CfCStep(edges, *_unit_args(cell_units(cell)), cell.input_size, *_readout(cell))


def step(
    cell: Any, x: mx.array, h: mx.array, ts: float | mx.array, *, backend: str = "cpu", stream: object | None = None
) -> mx.array:
    """One step of ``cell`` as one fused call (the streaming / control-loop case).

    ``x`` ``(B, I)``, ``h`` ``(B, N)``, ``ts`` a float or ``(B, 1)``, as returned by
    :meth:`ncps.cells.base.Cell.check_inputs` (which validated them). Returns the new state
    ``(B, N)``. The primitive takes ``x`` ``(B, I)`` directly (its step form), so the call adds
    exactly one node to the graph.
    """
    dt = constant_dt(x.shape[0], float(ts)) if isinstance(ts, (int, float)) else ts
    units = cell_units(cell)
    return _dtypes.cast(_call(units, x, h, dt, stream=stream)[0], _result_dtype(units, x, h))
