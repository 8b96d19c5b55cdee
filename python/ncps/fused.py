"""Thin, validated Python wrappers over the fused C++ primitives in ``ncps._ext``.

:func:`ltc_sequence` wraps ``_ext.ltc_sequence``: the whole liquid time-constant sequence (``T``
steps of ``ode_unfolds`` semi-implicit sub-steps) as one MLX primitive (``LTCSequence``) whose
vector-Jacobian product is a second fused primitive (``LTCSequenceGrad``, backpropagation through
every sub-step). It computes exactly :func:`ncps.ltc.ltc_sequence`, the pure-MLX reference, and
works under ``mx.grad``, ``mx.value_and_grad``, ``nn.value_and_grad`` and ``mx.compile``.

The kernels run on the CPU; only synapses whose mask entry is nonzero are computed, so sparse
NCP wirings cost in proportion to their synapse count. The masks receive zero gradient.
"""

from __future__ import annotations

from typing import Mapping, Optional

import mlx.core as mx

from . import kernels as _kernels
from .kernels import _ext
from .ltc import SOLVER_PARAMS

__all__ = ["ltc_sequence", "LTC_PARAMS"]

# Effective solver parameters in the order the primitive takes them.
LTC_PARAMS = SOLVER_PARAMS


def _require_ext():
    if _ext is None:
        why = getattr(_kernels, "_EXT_ERROR", None) or "not built"
        raise RuntimeError(f"the compiled extension ncps._ext is not available ({why}); "
                           "use the reference implementation ncps.ltc.ltc_sequence instead")
    return _ext


def _shape_str(shape) -> str:
    shape = tuple(shape)
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _check(name: str, a, want: tuple, sym: str) -> None:
    if not isinstance(a, mx.array):
        raise TypeError(f"ltc_sequence: {name} must be an mlx.core.array, got {type(a).__name__}")
    if tuple(a.shape) != want:
        raise ValueError(f"ltc_sequence: {name} must have shape {sym} = {_shape_str(want)}, "
                         f"got {_shape_str(a.shape)}")
    if mx.issubdtype(a.dtype, mx.complexfloating):
        raise ValueError(f"ltc_sequence: {name} must be a real array, got {a.dtype}")


def ltc_sequence(
    x: mx.array,
    h0: mx.array,
    dt: mx.array,
    params: Mapping[str, mx.array],
    ode_unfolds: int = 6,
    epsilon: float = 1e-8,
    *,
    stream: Optional[object] = None,
) -> mx.array:
    """The fused LTC sequence: states ``(B, T, N)`` after every step.

    Args:
        x: mapped inputs ``(B, T, I)``.
        h0: initial state ``(B, N)``.
        dt: elapsed time ``(B, T)`` per sample and step; a step with ``dt <= 0`` leaves that
            sample's state unchanged.
        params: the effective solver parameters (keys of :data:`ncps.ltc.SOLVER_PARAMS`, e.g.
            ``LTCCell.solver_params()``): ``sensory_*`` ``(I, N)``, ``w, sigma, mu, erev, mask``
            ``(N, N)`` indexed ``[source, destination]``, ``cm, gleak, vleak`` ``(N,)``, with
            positivity constraints already applied.
        ode_unfolds: semi-implicit sub-steps per step (``K >= 1``).
        epsilon: added to the solver's denominator.
        stream: optional CPU stream or device.

    Returns:
        ``(B, T, N)`` in ``x``'s floating dtype (computed in float32).

    Raises:
        ValueError: a missing parameter, a wrong shape or rank (the message names the argument and
            the expected shape), or ``ode_unfolds < 1``.
        RuntimeError: the extension is not loaded.
    """
    ext = _require_ext()
    if not isinstance(params, Mapping):
        raise TypeError(f"ltc_sequence: params must be a mapping of solver parameters, got {type(params).__name__}")
    missing = [k for k in LTC_PARAMS if k not in params]
    if missing:
        raise ValueError(f"ltc_sequence: params is missing {missing} (expected keys {list(LTC_PARAMS)})")
    if isinstance(ode_unfolds, bool) or int(ode_unfolds) != ode_unfolds or int(ode_unfolds) < 1:
        raise ValueError(f"ltc_sequence: ode_unfolds must be a positive integer, got {ode_unfolds!r}")
    if not isinstance(x, mx.array) or x.ndim != 3:
        got = _shape_str(x.shape) if isinstance(x, mx.array) else type(x).__name__
        raise ValueError(f"ltc_sequence: x must have shape (B, T, I), got {got}")
    w = params["w"]
    if not isinstance(w, mx.array) or w.ndim != 2 or w.shape[0] != w.shape[1]:
        got = _shape_str(w.shape) if isinstance(w, mx.array) else type(w).__name__
        raise ValueError(f"ltc_sequence: w must have shape (N, N), got {got}")
    B, T, I = x.shape
    N = w.shape[0]
    _check("x", x, (B, T, I), "(B, T, I)")
    _check("h0", h0, (B, N), "(B, N)")
    _check("dt", dt, (B, T), "(B, T)")
    for k in LTC_PARAMS[:5]:
        _check(k, params[k], (I, N), "(I, N)")
    for k in LTC_PARAMS[5:10]:
        _check(k, params[k], (N, N), "(N, N)")
    for k in LTC_PARAMS[10:]:
        _check(k, params[k], (N,), "(N,)")
    return ext.ltc_sequence(x, h0, dt, *(params[k] for k in LTC_PARAMS), int(ode_unfolds), float(epsilon),
                            stream=stream)
