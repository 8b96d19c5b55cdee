"""The LTC kernels' arguments, shared by the CPU primitives (:mod:`ncps.backends.cpu.ltc`) and the
GPU kernels (:mod:`ncps.backends.gpu.ltc`): the order in which both take the solver and LSTM
parameters, and the validation of a direct call, whose messages name the wrong argument and the
shape it must have.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlx.core as mx

from .. import _checks

# Names of the effective parameters the solver consumes, in the order the kernels take them:
# sensory_* (I, N), then w, sigma, mu, erev, mask (N, N), then cm, gleak, vleak (N,).
SOLVER_PARAMS = (
    "sensory_w",
    "sensory_sigma",
    "sensory_mu",
    "sensory_erev",
    "sensory_mask",
    "w",
    "sigma",
    "mu",
    "erev",
    "mask",
    "cm",
    "gleak",
    "vleak",
)
LTC_PARAMS = SOLVER_PARAMS
# The mixed-memory LSTM's parameters in the order the kernels take them: input_map.weight
# (4N, F), input_map.bias (4N,), recurrent_map.weight (4N, N).
LSTM_PARAMS = ("input_w", "input_b", "recurrent_w")
# The kernels' array arguments in order: x (B, T, I), h0 (B, N), dt (B, T), the solver parameters.
# With mixed memory the LSTM's follow: lstm_input (B, T, F), the LSTM_PARAMS, c0 (B, N). The C++
# primitives take the same names in the same order (ncps._ext.ltc_inputs(), csrc/ltc/problem.h;
# tests/kernels/ltc/test_primitive.py checks that the two agree).
LTC_INPUTS = ("x", "h0", "dt", *SOLVER_PARAMS)


def lstm_params(lstm: Any) -> dict:
    """The parameters of a mixed-memory :class:`~ncps.LSTMCell` under the keys of :data:`LSTM_PARAMS`."""
    return {"input_w": lstm.input_map.weight, "input_b": lstm.input_map.bias, "recurrent_w": lstm.recurrent_map.weight}


def shape_str(shape) -> str:
    """``(2, 3)``, ``(4,)``: a shape as Python writes a tuple."""
    shape = tuple(shape)
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_array(name: str, a, want: tuple, sym: str, op: str = "ltc_sequence") -> None:
    """``a`` is a real ``mx.array`` of shape ``want`` (written ``sym`` in the message)."""
    if not isinstance(a, mx.array):
        raise TypeError(f"{op}: {name} must be an mlx.core.array, got {type(a).__name__}")
    if tuple(a.shape) != want:
        raise ValueError(f"{op}: {name} must have shape {sym} = {shape_str(want)}, got {shape_str(a.shape)}")
    if mx.issubdtype(a.dtype, mx.complexfloating):
        raise ValueError(f"{op}: {name} must be a real array, got {a.dtype}")


def check_epsilon(op: str, epsilon) -> None:
    try:
        _checks.real(epsilon, "epsilon", 0.0)
    except ValueError as exc:
        raise ValueError(f"{op}: {exc}") from None


def check_keys(op: str, name: str, what: str, mapping, keys: tuple) -> None:
    """``mapping`` (the argument ``name``) is a mapping that holds every one of ``keys``."""
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{op}: {name} must be a mapping of {what}, got {type(mapping).__name__}")
    missing = [k for k in keys if k not in mapping]
    if missing:
        raise ValueError(f"{op}: {name} is missing {missing} (expected keys {list(keys)})")


def check_ltc_args(op: str, x, h0, dt, params, ode_unfolds) -> tuple:
    """Validate the LTC part of a call; returns ``(B, T, I, N)``."""
    check_keys(op, "params", "solver parameters", params, LTC_PARAMS)
    try:
        _checks.integer(ode_unfolds, "ode_unfolds", 1, _checks.MAX_ODE_UNFOLDS)
    except ValueError as exc:
        raise ValueError(f"{op}: {exc}") from None
    if not isinstance(x, mx.array) or x.ndim != 3:
        got = shape_str(x.shape) if isinstance(x, mx.array) else type(x).__name__
        raise ValueError(f"{op}: x must have shape (B, T, I), got {got}")
    w = params["w"]
    if not isinstance(w, mx.array) or w.ndim != 2 or w.shape[0] != w.shape[1]:
        got = shape_str(w.shape) if isinstance(w, mx.array) else type(w).__name__
        raise ValueError(f"{op}: w must have shape (N, N), got {got}")
    B, T, I = x.shape
    N = w.shape[0]
    check_array("x", x, (B, T, I), "(B, T, I)", op)
    check_array("h0", h0, (B, N), "(B, N)", op)
    check_array("dt", dt, (B, T), "(B, T)", op)
    for k in LTC_PARAMS[:5]:
        check_array(k, params[k], (I, N), "(I, N)", op)
    for k in LTC_PARAMS[5:10]:
        check_array(k, params[k], (N, N), "(N, N)", op)
    for k in LTC_PARAMS[10:]:
        check_array(k, params[k], (N,), "(N,)", op)
    return B, T, I, N


def check_lstm_args(op: str, B: int, T: int, N: int, lstm_input, lstm, c0) -> int:
    """Validate the mixed-memory part of a call (after :func:`check_ltc_args` gave ``B, T, N``):
    ``lstm_input`` ``(B, T, F)``, the LSTM's parameters ``lstm`` (keys of :data:`LSTM_PARAMS`:
    ``input_w`` ``(4N, F)``, ``input_b`` ``(4N,)``, ``recurrent_w`` ``(4N, N)``) and ``c0``
    ``(B, N)``; returns ``F``."""
    check_keys(op, "lstm", "LSTM parameters", lstm, LSTM_PARAMS)
    if not isinstance(lstm_input, mx.array) or lstm_input.ndim != 3 or tuple(lstm_input.shape[:2]) != (B, T):
        got = shape_str(lstm_input.shape) if isinstance(lstm_input, mx.array) else type(lstm_input).__name__
        raise ValueError(f"{op}: lstm_input must have shape (B, T, F) with (B, T) = ({B}, {T}), got {got}")
    F = lstm_input.shape[2]
    check_array("lstm_input", lstm_input, (B, T, F), "(B, T, F)", op)
    check_array("c0", c0, (B, N), "(B, N)", op)
    check_array("input_w", lstm["input_w"], (4 * N, F), "(4N, F)", op)
    check_array("input_b", lstm["input_b"], (4 * N,), "(4N,)", op)
    check_array("recurrent_w", lstm["recurrent_w"], (4 * N, N), "(4N, N)", op)
    return F
