"""CfC sequence on the GPU: the dialect kernels ``kernels/cfc_forward.inc`` and
``kernels/cfc_backward.inc`` behind one ``mx.custom_function``.

:func:`cfc_sequence_gpu` runs a dense :class:`ncps.cells.cfc.CfCCell` (backbone of any depth,
modes default / no_gate / pure, activations lecun_tanh / tanh / relu / silu, optional sparsity
mask) over a whole sequence and returns the states ``(B, T, H)``, as ``cell.step`` applied step by
step. Its vjp launches the BPTT kernel, which writes per-(b, t) adjoints only (no atomics); the
weight gradients are then GEMMs over all ``B T`` rows, so every gradient is deterministic.

:func:`wired_cfc_sequence_gpu` runs a :class:`~ncps.WiredCfCCell` (a chain of backbone-free,
masked units) unit by unit. The module is also the GPU hook module of :class:`~ncps.CfCCell` and
:class:`~ncps.WiredCfCCell` (``why_not``, ``sequence``, ``step``: :class:`ncps.backends.hooks.Hooks`).
"""

from __future__ import annotations

import mlx.core as mx
import numpy as np

from ... import _dtypes
from ..._cfc_modes import MODES
from ...activations import ACTIVATIONS
from ._source import KernelSpec
from .launch import (
    check_index_range,
    check_threads,
    default_backend,
    groups_for,
    io_name,
    launch,
    perf,
    resolve_backend,
    tg_memory_limit,
)

__all__ = ["cfc_sequence_gpu", "cfc_why_not", "wired_cfc_sequence_gpu", "CFC_FORWARD", "CFC_BACKWARD"]

# "io": per-sample arrays, stored as the launch's IOT (x's dtype when float16 / bfloat16); the
# parameters, dt and the per-(b, t) adjoints the weight-gradient GEMMs read stay float32.
_FWD_INPUTS = (
    ("x", "io"),
    ("h0", "io"),
    ("dt", "float"),
    ("bw", "float"),
    ("bb", "float"),
    ("hw", "float"),
    ("hb", "float"),
    ("lw", "float"),
    ("lb", "float"),
    ("rw", "float"),
    ("c0", "io"),
    ("dims", "int"),
)
_TEMPLATE = ("I", "H", "L", "U", "MODE", "ACT", "MIX", "NT")
CFC_FORWARD = KernelSpec(
    "ncps_cfc_forward",
    "cfc_forward.inc",
    _FWD_INPUTS,
    ("states", "cells"),
    _TEMPLATE + ("R", "WT", "WTG", "NW"),  # rows per group, transposed weights, staged weights (floats)
    io_outputs=("states", "cells"),
)
CFC_BACKWARD = KernelSpec(
    "ncps_cfc_backward",
    "cfc_backward.inc",
    _FWD_INPUTS[:-1] + (("states", "io"), ("cells", "io"), ("cot", "io"), ("cot_c", "io"), ("dims", "int")),
    ("g_x", "g_h0", "g_dt", "g_f", "g_a", "zs", "zin", "g_gates", "g_c0", "hls"),
    _TEMPLATE + ("R",),  # rows per group
    io_outputs=("g_x", "g_h0", "g_c0"),
)
# The kernel bodies' MODE and ACT codes: a name's index in the one table (ACT covers the first four).
_MODES = {name: code for code, name in enumerate(MODES)}
_ACTS = {name: code for code, name in enumerate(ACTIVATIONS) if code < 4}


def _sizes(cell) -> tuple[int, int, list]:
    """``(I, H, widths)``: inputs, units and the backbone layers' widths (empty without a backbone)."""
    return cell.input_size, cell.hidden_size, [layer.weight.shape[0] for layer in cell.backbone]


def _tg_bytes(I: int, H: int, widths: list, mix: bool = False, R: int = 1) -> int:
    """Threadgroup memory the backward kernel declares for ``R`` rows per group (the larger of the
    two at equal ``R``), in the order of its TG_ARRAYs, per row: cat C, z / dact LU, gf 4H, dts H,
    dzin (U, or C without a backbone), da LU, gh H, then the LSTM's hl H, lg 4H, dhl H, dg 4H,
    dxc C, gc H (one float each, not per row, without ``mix``)."""
    C, L, U = I + H, len(widths), max(widths, default=0)
    return 4 * (R * (C + 3 * max(L * U, 1) + 6 * H + (U if L else C)) + (R * (12 * H + I) if mix else 6))


def _tg_bytes_forward(I: int, H: int, widths: list, mix: bool = False, R: int = 1, nw: int = 0) -> int:
    """Threadgroup memory the forward kernel declares for ``R`` rows per group: cat RC, zs RLU,
    hn RH, hl RH, cs RH (one float each without ``mix``), wtg ``nw`` floats (the staged weights,
    :func:`_weight_floats`; one float when not staged, ``nw = 0``)."""
    L, U = len(widths), max(widths, default=0)
    return 4 * (R * (I + 2 * H + max(L * U, 1)) + (2 * R * H if mix else 2) + max(nw, 1))


def _weight_floats(I: int, H: int, widths: list, mix: bool = False) -> int:
    """Floats of the weight matrices the forward reads per step: backbone, heads, (mix) the LSTM's."""
    cins = (I + H, *widths)
    Z = widths[-1] if widths else I + H
    return sum(w * c for w, c in zip(widths, cins)) + 4 * H * Z + (4 * H * (I + H) if mix else 0)


def units_of(cell) -> list:
    """The dense CfC units of ``cell``: the cell itself, or the layers of a WiredCfCCell (modules
    are dicts of their children)."""
    if "layer_0" in cell:
        return [cell[f"layer_{l}"] for l in range(len(cell.layer_sizes))]
    return [cell]


def cfc_why_not(cell, mixed_memory: bool = False, backend: str | None = None, stream=None) -> str | None:
    """None when :func:`cfc_sequence_gpu` covers ``cell`` (one dense unit; with the mixed-memory
    LSTM if ``mixed_memory``) on ``backend`` (None: the default device's), else the reason it does not."""
    if "layer_0" in cell:
        return "a wired CfC is a chain of units: run it with wired_cfc_sequence_gpu"
    if cell.backbone and cell.activation not in _ACTS:
        return f"activation {cell.activation!r}: the GPU kernel covers {list(_ACTS)}"
    if cell.dropout is not None and cell.training:
        return "backbone dropout in training mode is not fused"
    I, H, widths = _sizes(cell)
    need = _tg_bytes(I, H, widths, mixed_memory)
    backend = backend or default_backend(stream)
    limit = tg_memory_limit(backend, stream)
    if need > limit:
        what = "mixed memory at " if mixed_memory else ""
        return (
            f"{what}I={I}, H={H}, backbone {widths} need {need} bytes of threadgroup memory "
            f"(limit {limit}, {backend or 'metal'})"
        )
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


def _dims(B: int, T: int, widths: tuple) -> mx.array:
    """The kernels' int input: ``[B, T, width of backbone layer 0, 1, ...]``."""
    return mx.array([B, T, *widths], dtype=mx.int32)


def cfc_forward(backend: str, template: dict, arrays, stream=None) -> list:
    """Launch the forward kernel on ``arrays`` = ``(x, h0, dt, bw, bb, hw, hb, lw, lb, rw, c0)``
    (``bw``, ``bb``: the backbone layers' weights and biases, flattened and concatenated; ``lw``,
    ``lb``, ``rw``, ``c0``: the mixed-memory LSTM, placeholders without it): ``[states, cells]``
    (``cells`` a placeholder without mixed memory)."""
    B, T = arrays[0].shape[:2]
    H, widths, R = template["H"], template["widths"], template["R"]
    if template["WT"]:  # coalesced reads: each matrix transposed once per call (README, performance design)
        arrays = _transposed(arrays, template["I"], H, widths, template["MIX"])
    ins = [*arrays, _dims(B, T, widths)]  # launch() casts each to its kind's dtype
    shapes = [(B, T, H), (B, T, H) if template["MIX"] else (1,)]
    nw = template["NW"] if template["WTG"] else 0
    nbytes = _tg_bytes_forward(template["I"], H, widths, template["MIX"], R, nw)
    return launch(CFC_FORWARD, backend, ins, shapes, template, groups_for(B, R), stream=stream, tg_bytes=nbytes)


def _transposed(arrays, I: int, H: int, widths: tuple, mix: int) -> list:
    """:func:`cfc_forward`'s arrays with every weight matrix transposed: backbone layer ``l``
    ``(width, cin) -> (cin, width)`` (flattened, concatenated), heads ``(4, H, Z) -> (4, Z, H)``,
    the LSTM's ``(4H, I) -> (I, 4H)`` and ``(4H, H) -> (H, 4H)``."""
    x, h0, dt, bw, bb, hw, hb, lw, lb, rw, c0 = arrays
    if widths:
        parts, off = [], 0
        for width, cin in zip(widths, (I + H, *widths)):
            parts.append(bw[off : off + width * cin].reshape(width, cin).T.reshape(-1))
            off += width * cin
        bw = mx.concatenate(parts)
    hw = hw.transpose(0, 2, 1)
    if mix:
        lw, rw = lw.T, rw.T
    return [x, h0, dt, bw, bb, hw, hb, lw, lb, rw, c0]


def cfc_backward(backend: str, template: dict, primals, cotangents, outputs, stream=None) -> tuple:
    """Launch the backward kernel and form the gradients of ``primals`` (as :func:`cfc_forward`'s
    arrays) from the cotangents of ``outputs`` = ``[states, cells]``.

    The kernel returns per-(b, t) adjoints; the weight gradients are sums over the ``R = B T``
    rows: ``dhb = sum_r g_f``, ``dhw[k] = g_f[:, k]^T zin``, per backbone layer ``l``
    ``db_l = sum_r g_a[l]``, ``dW_l = g_a[l]^T input_l`` (``input_0 = [x_t, h_in]`` with ``h_in``
    the LSTM's output under mixed memory, else ``h_{t-1}``; ``input_l = zs[l - 1]``), and for the
    LSTM ``dlb = sum_r g_gates``, ``dlw = g_gates^T x_t``, ``drw = g_gates^T h_{t-1}``."""
    x, h0, dt, bw, bb, hw, hb, lw, lb, rw, c0 = primals
    states, cells = outputs
    cot, cot_c = cotangents
    B, T = x.shape[:2]
    I, H, widths, mix = template["I"], template["H"], template["widths"], template["MIX"]
    L, U = len(widths), max(widths, default=0)
    Z, R = (widths[-1] if L else I + H), B * T
    ins = [*primals, states, cells, cot, cot_c, _dims(B, T, widths)]  # cast by launch()
    LU = (B, T, max(L, 1), max(U, 1))
    mixed = (B, T, 4, H) if mix else (1,), (B, H) if mix else (1,), (B, T, H) if mix else (1,)
    shapes = [(B, T, I), (B, H), (B, T), (B, T, 4, H), LU, LU, (B, T, Z), *mixed]
    gx, gh0, gdt, gf, ga, zs, zin, gg, gc0, hls = launch(
        CFC_BACKWARD,
        backend,
        ins,
        shapes,
        template,
        groups_for(B, template["R"]),
        zero_init=True,
        stream=stream,
        tg_bytes=_tg_bytes(I, H, widths, mix, template["R"]),
    )
    gf = gf.reshape(R, 4 * H)
    ghb = gf.sum(axis=0).reshape(4, H)
    ghw = (gf.T @ zin.reshape(R, Z)).reshape(4, H, Z)
    if template["MODE"] == 2:  # only ff1 reads zin; rows 1..3 of gf are w_tau, A and 0
        ghw = mx.concatenate([ghw[:1], mx.zeros((3, H, Z))])
    x32 = x.astype(mx.float32)
    prev = mx.concatenate([h0[:, None].astype(states.dtype), states[:, :-1]], axis=1).astype(mx.float32)  # h_{t-1}
    if L:
        layer_in = mx.concatenate([x32, hls if mix else prev], axis=-1).reshape(R, I + H)
        gws, gbs = [], []
        for l, width in enumerate(widths):
            ga_l = ga[:, :, l, :width].reshape(R, width)
            gws.append((ga_l.T @ layer_in).reshape(-1))
            gbs.append(ga_l.sum(axis=0))
            layer_in = zs[:, :, l, :width].reshape(R, width)
        gbw, gbb = mx.concatenate(gws), mx.concatenate(gbs)
    else:
        gbw, gbb = mx.zeros(bw.shape), mx.zeros(bb.shape)
    if mix:
        gg = gg.reshape(R, 4 * H)
        glw, glb, grw = gg.T @ x32.reshape(R, I), gg.sum(axis=0), gg.T @ prev.reshape(R, H)
    else:
        glw, glb, grw, gc0 = (mx.zeros(a.shape) for a in (lw, lb, rw, c0))
    grads = (gx, gh0, gdt, gbw, gbb, ghw, ghb, glw, glb, grw, gc0)
    return tuple(g.astype(p.dtype) for g, p in zip(grads, primals))


def cfc_sequence_gpu(
    cell,
    x: mx.array,
    h0: mx.array,
    dt: mx.array,
    *,
    lstm=None,
    c0: mx.array | None = None,
    backend: str | None = None,
    threads: int | None = None,
    rows_per_group: int | None = None,
    transposed_weights: bool | None = None,
    stage_weights: bool | None = None,
    stream=None,
):
    """States ``(B, T, H)`` of ``cell`` over ``x`` ``(B, T, I)`` from ``h0`` ``(B, H)`` with
    elapsed times ``dt`` ``(B, T)``; differentiable (the vjp is the BPTT kernel).

    Args:
        lstm: the mixed-memory :class:`~ncps.LSTMCell` (``I`` inputs, ``H`` units) or None; with
            it the LSTM runs before every step from cell state ``c0`` ``(B, H)`` (zeros if None)
            and the call returns ``(states, cells)``, ``cells`` ``(B, T, H)`` the LSTM's cell
            state after every step.
        backend: ``"metal"``, ``"cuda"`` or ``"emulate"`` (the C++ emulation, for tests); None
            picks the back-end of the default device / ``stream``.
        threads: threads per group (default: a power of two covering ``max(I, H, U)``, 32..256).
        rows_per_group, transposed_weights, stage_weights: the kernels' performance design
            (kernels/README.md; unmeasured on hardware): ``R`` batch rows per threadgroup sharing
            each weight read (1..8; forward and backward), the forward's weight matrices
            transposed once per call for coalesced reads, and copied once into threadgroup
            memory. None: the :func:`ncps.backends.gpu.launch.perf_options` defaults (1, False,
            False). Any choice gives the same bits.

    Raises:
        ValueError: a cell the kernels do not cover (see :func:`cfc_why_not`; the mixed-memory
            LSTM's threadgroup memory included), a forward or backward whose ``rows_per_group``
            (and staged weights) need more threadgroup memory than the back-end's limit, ``threads`` outside
            ``1..MAX_THREADS``, ``rows_per_group`` outside ``1..8``, an array of ``2**31``
            elements or more, or wrong shapes.
    """
    backend = resolve_backend(backend, stream)
    why = cfc_why_not(cell, lstm is not None, backend, stream)
    if why is not None:
        raise ValueError(f"cfc_sequence_gpu: {why}")
    I, H = cell.input_size, cell.hidden_size
    if not isinstance(x, mx.array) or x.ndim != 3 or x.shape[2] != I:
        raise ValueError(f"cfc_sequence_gpu: x must have shape (B, T, I) with I = {I}, got {tuple(np.shape(x))}")
    B, T = x.shape[:2]
    if not isinstance(h0, mx.array) or tuple(h0.shape) != (B, H):
        raise ValueError(f"cfc_sequence_gpu: h0 must have shape (B, H) = ({B}, {H}), got {tuple(np.shape(h0))}")
    if not isinstance(dt, mx.array) or tuple(dt.shape) != (B, T):
        raise ValueError(f"cfc_sequence_gpu: dt must have shape (B, T) = ({B}, {T}), got {tuple(np.shape(dt))}")
    if lstm is not None:
        if (lstm.input_size, lstm.hidden_size) != (I, H):
            raise ValueError(
                f"cfc_sequence_gpu: the mixed-memory LSTM must map {I} inputs to {H} units, "
                f"got {lstm.input_size} -> {lstm.hidden_size}"
            )
        c0 = mx.zeros_like(h0) if c0 is None else c0
        if not isinstance(c0, mx.array) or tuple(c0.shape) != (B, H):
            raise ValueError(f"cfc_sequence_gpu: c0 must have shape (B, H) = ({B}, {H}), got {tuple(np.shape(c0))}")
        lstm_arrays = (lstm.input_map.weight, lstm.input_map.bias, lstm.recurrent_map.weight, c0)
    elif c0 is not None:
        raise ValueError("cfc_sequence_gpu: c0 is only for mixed memory (pass lstm too)")
    else:
        lstm_arrays = (mx.zeros((1,)),) * 4
    widths = tuple(int(w) for w in _sizes(cell)[2])
    U = max(widths, default=0)
    NT = int(threads) if threads is not None else min(256, max(32, 1 << (max(H, U, I) - 1).bit_length()))
    NT = check_threads("cfc_sequence_gpu", NT)
    L1, Z = max(len(widths), 1) * max(U, 1), widths[-1] if widths else I + H
    sizes = dict(x=B * T * I, states=B * T * H, g_f=B * T * 4 * H, g_a=B * T * L1, zin=B * T * Z, heads=4 * H * Z)
    sizes["backbone"] = sum(w * c for w, c in zip(widths, (I + H, *widths)))
    if lstm is not None:
        sizes |= dict(g_gates=B * T * 4 * H, input_w=4 * H * I, recurrent_w=4 * H * H)
    check_index_range("cfc_sequence_gpu", sizes)
    R, WT, WTG = perf("cfc_sequence_gpu", rows_per_group, transposed_weights, stage_weights)
    nw = _weight_floats(I, H, list(widths), lstm is not None)
    need = _tg_bytes_forward(I, H, widths, lstm is not None, R, nw if WTG else 0)
    need_b = _tg_bytes(I, H, widths, lstm is not None, R)
    limit = tg_memory_limit(backend, stream)
    if max(need, need_b) > limit:
        staged = need > limit and WTG
        which = "forward" if need > limit else "backward"
        what = f" with the weights staged ({4 * nw} bytes)" if staged else ""
        raise ValueError(
            f"cfc_sequence_gpu: the {which} at rows_per_group={R}{what} needs {max(need, need_b)} bytes of "
            f"threadgroup memory, more than {limit} ({backend}): use fewer rows per group"
            + (" or stage_weights=False" if staged else "")
        )
    if widths:
        bw = mx.concatenate([layer.weight.reshape(-1) for layer in cell.backbone])
        bb = mx.concatenate([layer.bias for layer in cell.backbone])
    else:
        bw, bb = mx.zeros((1,)), mx.zeros((1,))
    hw, hb = _heads(cell)
    template = dict(
        I=I,
        H=H,
        L=len(widths),
        U=U,
        MODE=_MODES[cell.mode],
        ACT=_ACTS.get(cell.activation, 0),
        MIX=int(lstm is not None),
        NT=NT,
        R=R,
        WT=WT,
        WTG=WTG,
        NW=max(nw, 1) if WTG else 1,
        widths=widths,
        IOT=io_name(x.dtype),
    )

    @mx.custom_function
    def seq(*arrays):
        return tuple(cfc_forward(backend, template, arrays, stream))

    @seq.vjp
    def seq_vjp(primals, cotangents, outputs):
        return cfc_backward(backend, template, primals, cotangents, outputs, stream)

    states, cells = seq(x, h0, dt, bw, bb, hw, hb, *lstm_arrays)
    if mx.issubdtype(x.dtype, mx.floating):
        states, cells = states.astype(x.dtype), cells.astype(x.dtype)
    return states if lstm is None else (states, cells)


def wired_cfc_sequence_gpu(cell, x: mx.array, h0: mx.array, dt: mx.array, **kwargs) -> mx.array:
    """States ``(B, T, N)`` of a :class:`~ncps.WiredCfCCell` (or a plain CfCCell) over ``x``
    ``(B, T, I)`` from ``h0`` ``(B, N)``: its units in turn, each one launch of
    :func:`cfc_sequence_gpu` over the whole sequence.

    Unit ``l`` at step ``t`` reads unit ``l - 1``'s new state at the same step and its own previous
    state, never a later step of unit ``l - 1``; so the chain runs unit by unit (``L`` forward and
    ``L`` backward launches) instead of step by step. ``kwargs`` as for :func:`cfc_sequence_gpu`.
    """
    units = units_of(cell)
    N = sum(u.hidden_size for u in units)
    if not isinstance(h0, mx.array) or h0.ndim != 2 or h0.shape[1] != N:
        raise ValueError(f"wired_cfc_sequence_gpu: h0 must have shape (B, N) with N = {N}, got {tuple(np.shape(h0))}")
    bounds = np.cumsum([u.hidden_size for u in units])[:-1].tolist()
    inp, states = x, []
    for unit, h in zip(units, mx.split(h0, bounds, axis=-1)):
        inp = cfc_sequence_gpu(unit, inp, h, dt, **kwargs)
        states.append(inp)
    return states[0] if len(states) == 1 else mx.concatenate(states, axis=-1)


# -- the cell hooks of CfCCell / WiredCfCCell (ncps.backends.hooks.Hooks; inputs validated by the caller)

KERNEL = "cfc_sequence_gpu"


def kernel_name(mixed_memory: bool = False) -> str:
    return KERNEL


def why_not(cell, mixed_memory: bool = False) -> str | None:
    """None when the GPU kernels cover ``cell`` inside a layer with ``mixed_memory``, else why not."""
    units = units_of(cell)
    if mixed_memory and len(units) > 1:
        return "a wired CfC with mixed memory has no GPU kernel yet (the LSTM couples the units)"
    for unit in units:
        why = cfc_why_not(unit)
        if why is not None:
            return why
    if mixed_memory:  # the LSTM's threadgroup arrays come on top
        return cfc_why_not(cell, mixed_memory=True)
    return None


def sequence(cell, x: mx.array, h0: mx.array, dt: mx.array, lstm=None, c0=None, *, backend: str, stream=None):
    """:meth:`ncps.backends.hooks.Hooks.sequence` as one GPU kernel (the mixed-memory LSTM inside
    it, dense cells only: :func:`why_not`). A layer's padded steps (zero input, ``dt = 0``) are
    computed like any other and discarded by the layer."""
    # The reference path's dtype (README "Precision"): the kernels store x's (float16 / bfloat16
    # storage, float32 state and sums), so the per-sample arrays go in as the compute dtype.
    dtype = _dtypes.compute_dtype(x, h0, _dtypes.model_dtype(cell))
    x, h0 = _dtypes.cast(x, dtype), _dtypes.cast(h0, dtype)
    c0 = None if c0 is None else _dtypes.cast(c0, dtype)
    if lstm is not None:
        states, cells = cfc_sequence_gpu(cell, x, h0, dt, lstm=lstm, c0=c0, backend=backend, stream=stream)
        return _dtypes.cast(states, dtype), _dtypes.cast(cells, dtype)
    return _dtypes.cast(wired_cfc_sequence_gpu(cell, x, h0, dt, backend=backend, stream=stream), dtype), None


def step(cell, x: mx.array, h: mx.array, ts, *, backend: str, stream=None) -> mx.array:
    """One step as a one-step sequence: ``x`` ``(B, I)``, ``h`` ``(B, H)``, ``ts`` a float or ``(B, 1)``."""
    dt = mx.full((x.shape[0], 1), ts) if isinstance(ts, (int, float)) else ts
    return sequence(cell, x[:, None], h, dt, backend=backend, stream=stream)[0][:, 0]
