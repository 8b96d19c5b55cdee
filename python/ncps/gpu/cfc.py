"""CfC sequence forward on the GPU (inference): the dialect kernel ``kernels/cfc_forward.inc``.

:func:`cfc_sequence_gpu` runs a dense :class:`ncps.cells.cfc.CfCCell` (backbone of 0 or 1 layers,
modes default / no_gate / pure, activations lecun_tanh / tanh / relu / silu, optional sparsity
mask) over a whole sequence and returns the states ``(B, T, H)``, as ``cell.step`` applied step by
step. There is no backward kernel yet, so it is not differentiable (its vjp raises).
"""

from __future__ import annotations

from typing import Optional

import mlx.core as mx

from ._source import KernelSpec
from .launch import TG_MEMORY_LIMIT, launch, resolve_backend

__all__ = ["cfc_sequence_gpu", "cfc_why_not", "CFC_FORWARD"]

CFC_FORWARD = KernelSpec(
    "ncps_cfc_forward",
    "cfc_forward.inc",
    (("x", "float"), ("h0", "float"), ("dt", "float"), ("bw", "float"), ("bb", "float"), ("hw", "float"),
     ("hb", "float"), ("dims", "int")),  # fmt: skip
    ("states",),
    ("I", "H", "U", "MODE", "ACT", "NT"),
)
_MODES = {"default": 0, "no_gate": 1, "pure": 2}
_ACTS = {"lecun_tanh": 0, "tanh": 1, "relu": 2, "silu": 3}


def cfc_why_not(cell) -> Optional[str]:
    """None when :func:`cfc_sequence_gpu` covers ``cell``, else the reason it does not."""
    if "layer_0" in cell:
        return "wired CfC (a chain of units) has no GPU kernel yet"
    if len(cell.backbone) > 1:
        return f"backbone_layers={len(cell.backbone)}: the GPU kernel covers 0 or 1 backbone layers"
    if cell.backbone and cell.activation not in _ACTS:
        return f"activation {cell.activation!r}: the GPU kernel covers {list(_ACTS)}"
    if cell.dropout is not None and cell.training:
        return "backbone dropout in training mode is not fused"
    return None


def _heads(cell) -> tuple[mx.array, mx.array]:
    """Stacked head weights ``(4, H, Z)`` and biases ``(4, H)``: [ff1, ff2, time_a, time_b];
    in pure mode [ff1, 0, 0, 0] and [b1, w_tau, A, 0]."""
    masked = lambda layer: layer.weight * cell.sparsity_mask if "sparsity_mask" in cell else layer.weight  # noqa: E731
    if cell.mode == "pure":
        w1 = masked(cell.ff1)
        zeros = mx.zeros_like(w1)
        b = [cell.ff1.bias, cell.w_tau.reshape(-1), cell.A.reshape(-1), mx.zeros_like(cell.ff1.bias)]
        return mx.stack([w1, zeros, zeros, zeros]), mx.stack(b)
    ws = [masked(cell.ff1), masked(cell.ff2), cell.time_a.weight, cell.time_b.weight]
    bs = [cell.ff1.bias, cell.ff2.bias, cell.time_a.bias, cell.time_b.bias]
    return mx.stack(ws), mx.stack(bs)


def cfc_forward(backend: str, template: dict, arrays, stream=None) -> mx.array:
    """Launch the forward kernel on ``arrays`` = ``(x, h0, dt, bw, bb, hw, hb)``."""
    B, T = arrays[0].shape[:2]
    ins = [a.astype(mx.float32) for a in arrays] + [mx.array([B, T], dtype=mx.int32)]
    return launch(CFC_FORWARD, backend, ins, [(B, T, template["H"])], template, B, stream=stream)[0]


def cfc_sequence_gpu(
    cell,
    x: mx.array,
    h0: mx.array,
    dt: mx.array,
    *,
    backend: Optional[str] = None,
    threads: Optional[int] = None,
    stream=None,
) -> mx.array:
    """States ``(B, T, H)`` of ``cell`` over ``x`` ``(B, T, I)`` from ``h0`` ``(B, H)`` with
    elapsed times ``dt`` ``(B, T)`` (inference only).

    Raises:
        ValueError: a cell the kernel does not cover (see :func:`cfc_why_not`) or wrong shapes.
    """
    why = cfc_why_not(cell)
    if why is not None:
        raise ValueError(f"cfc_sequence_gpu: {why}")
    I, H = cell.input_size, cell.hidden_size
    if x.ndim != 3 or x.shape[2] != I:
        raise ValueError(f"cfc_sequence_gpu: x must have shape (B, T, I) with I = {I}, got {tuple(x.shape)}")
    B, T = x.shape[:2]
    if tuple(h0.shape) != (B, H):
        raise ValueError(f"cfc_sequence_gpu: h0 must have shape (B, H) = ({B}, {H}), got {tuple(h0.shape)}")
    if tuple(dt.shape) != (B, T):
        raise ValueError(f"cfc_sequence_gpu: dt must have shape (B, T) = ({B}, {T}), got {tuple(dt.shape)}")
    backend = resolve_backend(backend, stream)
    U = cell.backbone[0].weight.shape[0] if cell.backbone else 0
    NT = int(threads) if threads is not None else min(256, max(32, 1 << (max(H, U, I) - 1).bit_length()))
    if 4 * (I + 2 * H + max(U, 1)) > TG_MEMORY_LIMIT:
        raise ValueError(f"cfc_sequence_gpu: I={I}, H={H}, U={U} exceed the threadgroup memory limit")
    if U:
        bw, bb = cell.backbone[0].weight, cell.backbone[0].bias
    else:
        bw, bb = mx.zeros((1,)), mx.zeros((1,))
    hw, hb = _heads(cell)
    template = dict(I=I, H=H, U=U, MODE=_MODES[cell.mode], ACT=_ACTS.get(cell.activation, 0), NT=NT)

    @mx.custom_function
    def seq(*arrays):
        return cfc_forward(backend, template, arrays, stream)

    @seq.vjp
    def seq_vjp(primals, cotangent, output):
        raise NotImplementedError("cfc_sequence_gpu has no backward kernel yet; train on the reference or CPU path")

    return seq(x, h0, dt, bw, bb, hw, hb).astype(x.dtype)
