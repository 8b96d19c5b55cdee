"""LTC sequence on the GPU: the dialect kernels ``kernels/ltc_forward.inc`` and
``kernels/ltc_backward.inc`` behind one ``mx.custom_function``.

:func:`ltc_sequence_gpu` computes exactly :func:`ncps.cells.ltc.ltc_sequence` (and takes the same arrays
as :func:`ncps.backends.cpu.ltc.ltc_sequence`): mapped inputs ``x`` ``(B, T, I)``, ``h0`` ``(B, N)``, ``dt``
``(B, T)`` and the effective solver parameters; it returns the states ``(B, T, N)``. Its vjp
launches the fused BPTT kernel, so ``mx.grad``, ``nn.value_and_grad`` and ``mx.compile`` work
through it. The masks receive zero gradient, as in the CPU primitive.

Sparse wirings cost in proportion to their synapses: the kernels walk CSR synapse lists built
once per wiring by :func:`ltc_synapse_plan` (pass the plan to avoid reading the masks back from
the device on every call; it must be built outside ``mx.compile``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import mlx.core as mx
import numpy as np

from ... import _dtypes
from ..ltc_args import LTC_INPUTS, SOLVER_PARAMS, check_lstm_args, check_ltc_args, lstm_params
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

__all__ = ["LTCSynapsePlan", "ltc_synapse_plan", "ltc_sequence_gpu", "ltc_threads", "LTC_FORWARD", "LTC_BACKWARD"]

_SENSORY, _RECURRENT, _NEURON = SOLVER_PARAMS[:5], SOLVER_PARAMS[5:10], SOLVER_PARAMS[10:]
_CSR = (("rec_ptr", "int"), ("rec_src", "int"), ("sens_ptr", "int"), ("sens_src", "int"))
# The mixed-memory LSTM's arrays (placeholders without it): its input (B, T, F), input_w (4N, F),
# input_b (4N,), recurrent_w (4N, N), and the initial cell state (B, N).
# "io": per-sample arrays, stored as the launch's IOT (x's dtype when float16 / bfloat16); the
# parameters, dt and the per-synapse gradient rows stay float32.
_MIXED = (("lstm_input", "io"), ("lw", "float"), ("lb", "float"), ("rw", "float"), ("c0", "io"))
_FWD_INPUTS = (
    *((k, "io" if k in ("x", "h0") else "float") for k in LTC_INPUTS),
    *_CSR,
    *_MIXED,
    ("dims", "int"),
    ("eps", "float"),
)
# Gradient outputs: one per input but the masks (they get zeros), in input order.
_GRAD_OF = tuple(k for k in LTC_INPUTS if k not in ("sensory_mask", "mask"))
_TEMPLATE = ("N", "I", "K", "F", "MIX", "NT")

LTC_FORWARD = KernelSpec(
    "ncps_ltc_forward",
    "ltc_forward.inc",
    _FWD_INPUTS,
    ("states", "cells"),
    _TEMPLATE + ("R", "WT"),  # rows per group, the LSTM's matrices transposed
    io_outputs=("states", "cells"),
)
LTC_BACKWARD = KernelSpec(
    "ncps_ltc_backward",
    "ltc_backward.inc",
    _FWD_INPUTS
    + (
        ("states", "io"),
        ("cells", "io"),
        ("cot", "io"),
        ("cot_c", "io"),
        ("rec_optr", "int"),
        ("rec_odst", "int"),
        ("sens_optr", "int"),
        ("sens_odst", "int"),
    ),
    tuple("g_" + k for k in _GRAD_OF) + ("g_u", "g_gates", "g_c0"),
    _TEMPLATE + ("R",),  # rows per group
    io_outputs=("g_x", "g_h0", "g_u", "g_c0"),
)


@dataclass(frozen=True)
class LTCSynapsePlan:
    """CSR synapse lists of one wiring (int32 device arrays) and, for the backward's per-synapse
    gradient rows, the dense flat index ``src * N + dst`` of each by-source position."""

    N: int
    I: int
    rec_ptr: mx.array  # (N+1,) by destination
    rec_src: mx.array  # (S,)
    sens_ptr: mx.array  # (N+1,)
    sens_src: mx.array  # (SS,)
    rec_optr: mx.array  # (N+1,) by source
    rec_odst: mx.array  # (S,)
    sens_optr: mx.array  # (I+1,)
    sens_odst: mx.array  # (SS,)
    rec_flat: mx.array  # (S,) src*N + dst for by-source position e
    sens_flat: mx.array  # (SS,)


def _csr(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row pointers and column indices of the nonzeros of ``mask`` (rows in order)."""
    rows, cols = np.nonzero(mask)
    ptr = np.zeros(mask.shape[0] + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=mask.shape[0]), out=ptr[1:])
    return ptr, cols.astype(np.int32)


def ltc_synapse_plan(params: Mapping[str, object]) -> LTCSynapsePlan:
    """The synapse lists of ``params["mask"]`` ``(N, N)`` and ``params["sensory_mask"]`` ``(I, N)``
    (indexed ``[source, destination]``; a synapse is a nonzero entry). Reads the masks to the host."""
    mask = np.array(params["mask"])
    smask = np.array(params["sensory_mask"])
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        raise ValueError(f"ltc_synapse_plan: mask must have shape (N, N), got {mask.shape}")
    if smask.ndim != 2 or smask.shape[1] != mask.shape[0]:
        raise ValueError(
            f"ltc_synapse_plan: sensory_mask must have shape (I, N) = (I, {mask.shape[0]}), got {smask.shape}"
        )
    N, I = mask.shape[0], smask.shape[0]
    rp, rs = _csr(mask.T)
    sp, ss = _csr(smask.T)
    op, od = _csr(mask)
    sop, sod = _csr(smask)
    rflat = (np.nonzero(mask)[0] * N + od).astype(np.int32)
    sflat = (np.nonzero(smask)[0] * N + sod).astype(np.int32)
    a = mx.array
    return LTCSynapsePlan(N, I, a(rp), a(rs), a(sp), a(ss), a(op), a(od), a(sop), a(sod), a(rflat), a(sflat))


def _next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def ltc_threads(N: int, I: int) -> int:
    """Default threads per group: a power of two covering the larger of ``N`` and ``I``,
    between 32 (one SIMD group / warp) and 256."""
    return min(256, max(32, _next_pow2(max(N, I))))


def _tg_bytes(N: int, I: int, K: int, NT: int, F: int = 0, R: int = 1) -> int:
    """Threadgroup memory the backward kernel declares for ``R`` rows per group (the larger of the
    two at equal ``R``), in the order of its TG_ARRAYs, per row: vs (K+1)N, dd KN, xs I, 7 arrays
    of N, red NT, then the LSTM's us F, vp N, hlv N, lg 4N, dg 4N, gc N (one float each, not per
    row, without mixed memory, ``F = 0``)."""
    return 4 * (R * ((K + 1) * N + K * N + I + 7 * N + NT) + (R * (F + 11 * N) if F else 6))


def _tg_bytes_forward(N: int, I: int, F: int = 0, R: int = 1) -> int:
    """Threadgroup memory the forward kernel declares for ``R`` rows per group: v 2RN, xs 2RI,
    num_s RN, den_s RN, us RF, cs RN (one float each without mixed memory, ``F = 0``)."""
    return 4 * (R * (4 * N + 2 * I) + (R * (F + N) if F else 2))


def _index_sizes(B: int, T: int, N: int, I: int, F: int, S: int, SS: int) -> dict:
    """Element counts of the arrays the two kernels index (``F > 0``: mixed memory)."""
    sizes = dict(x=B * T * I, states=B * T * N, recurrent_partials=B * S, sensory_partials=B * SS, w=N * N)
    if F:
        sizes |= dict(lstm_input=B * T * F, g_gates=B * T * 4 * N, input_w=4 * N * F, recurrent_w=4 * N * N)
    return sizes


def _scatter(partial: mx.array, flat: mx.array, shape: tuple) -> mx.array:
    """Sum per-batch synapse gradient rows ``(B, S)`` over ``B`` and place them in a dense array."""
    dense = mx.zeros((shape[0] * shape[1],), dtype=mx.float32)
    if flat.size:
        dense = dense.at[flat].add(partial.sum(axis=0))  # distinct indices: no collisions
    return dense.reshape(shape)


@dataclass(frozen=True)
class LTCLaunch:
    """Everything a launch needs besides the arrays."""

    backend: str
    plan: LTCSynapsePlan
    template: dict
    B: int
    T: int
    epsilon: float
    stream: object = None


def _inputs(run: LTCLaunch, x, h0, dt, p, mixed) -> list:
    """The forward kernel's inputs (the arrays, the CSR lists, the LSTM's arrays, the scalars;
    launch() casts each to its kind's dtype)."""
    pl = run.plan
    meta = [mx.array([run.B, run.T], dtype=mx.int32), mx.array([run.epsilon], dtype=mx.float32)]
    return [x, h0, dt, *p, pl.rec_ptr, pl.rec_src, pl.sens_ptr, pl.sens_src, *mixed, *meta]


def _split(arrays) -> tuple:
    """``(x, h0, dt, p, mixed)`` of the custom function's arguments ``(x, h0, dt, *p, *mixed)``."""
    x, h0, dt, *rest = arrays
    n = len(SOLVER_PARAMS)
    return x, h0, dt, rest[:n], rest[n:]


def ltc_forward(run: LTCLaunch, arrays) -> tuple:
    """Launch the forward kernel on ``(x, h0, dt, *p, *mixed)`` (``p`` in :data:`SOLVER_PARAMS`
    order, ``mixed`` the LSTM's five arrays or placeholders): ``(states, cells)`` (``cells`` a
    placeholder without mixed memory)."""
    N, mix, R = run.template["N"], run.template["MIX"], run.template["R"]
    shapes = [(run.B, run.T, N), (run.B, run.T, N) if mix else (1,)]
    F = run.template["F"] if mix else 0
    nbytes = _tg_bytes_forward(N, run.template["I"], F, R)
    x, h0, dt, p, mixed = _split(arrays)
    if mix and run.template["WT"]:  # coalesced reads: the LSTM's matrices transposed once per call
        u, lw, lb, rw, c0 = mixed
        mixed = (u, lw.T, lb, rw.T, c0)
    outs = launch(
        LTC_FORWARD,
        run.backend,
        _inputs(run, x, h0, dt, p, mixed),
        shapes,
        run.template,
        groups_for(run.B, R),
        stream=run.stream,
        tg_bytes=nbytes,
    )
    return tuple(outs)


def ltc_backward(run: LTCLaunch, primals, cotangents, outputs) -> tuple:
    """Launch the backward kernel and assemble the gradients of ``primals`` = ``(x, h0, dt, *p,
    *mixed)`` from the cotangents of ``outputs`` = ``(states, cells)``."""
    x, h0, dt, p, mixed = _split(primals)
    states, cells = outputs
    cot, cot_c = cotangents
    B, T, N, I, F, mix, pl = (
        run.B,
        run.T,
        run.template["N"],
        run.template["I"],
        run.template["F"],
        run.template["MIX"],
        run.plan,
    )
    ins = _inputs(run, x, h0, dt, p, mixed) + [
        states,
        cells,
        cot,
        cot_c,
        pl.rec_optr,
        pl.rec_odst,
        pl.sens_optr,
        pl.sens_odst,
    ]
    S, SS = int(pl.rec_flat.size), int(pl.sens_flat.size)
    shapes = [(B, T, I), (B, N), (B, T), *[(B, SS)] * 4, *[(B, S)] * 4, (B, N), (B, N), (B, N)]
    shapes += [(B, T, F), (B, T, 4, N), (B, N)] if mix else [(1,)] * 3
    R = run.template["R"]
    nbytes = _tg_bytes(N, I, run.template["K"], run.template["NT"], F if mix else 0, R)
    groups = groups_for(B, R)
    outs = launch(
        LTC_BACKWARD, run.backend, ins, shapes, run.template, groups, zero_init=True, stream=run.stream, tg_bytes=nbytes
    )
    g = dict(zip(_GRAD_OF, outs))
    grads = {"x": g["x"], "h0": g["h0"], "dt": g["dt"], "sensory_mask": mx.zeros((I, N)), "mask": mx.zeros((N, N))}
    for k in _SENSORY[:4]:
        grads[k] = _scatter(g[k], pl.sens_flat, (I, N))
    for k in _RECURRENT[:4]:
        grads[k] = _scatter(g[k], pl.rec_flat, (N, N))
    for k in _NEURON:
        grads[k] = g[k].sum(axis=0)
    out = [grads[k].astype(a.dtype) for k, a in zip(LTC_INPUTS, primals)]
    if mix:  # the LSTM's weight gradients: GEMMs of the gate adjoints over all B T rows
        gu, gg, gc0 = outs[len(_GRAD_OF) :]
        R = B * T
        gg = gg.reshape(R, 4 * N)
        prev = (
            mx.concatenate([h0[:, None].astype(states.dtype), states[:, :-1]], axis=1).astype(mx.float32).reshape(R, N)
        )
        u = mixed[0].astype(mx.float32).reshape(R, F)
        lstm_grads = (gu, gg.T @ u, gg.sum(axis=0), gg.T @ prev, gc0)
    else:
        lstm_grads = tuple(mx.zeros(a.shape) for a in mixed)
    return tuple(out) + tuple(g.astype(a.dtype) for g, a in zip(lstm_grads, mixed))


def ltc_sequence_gpu(
    x: mx.array,
    h0: mx.array,
    dt: mx.array,
    params: Mapping[str, mx.array],
    ode_unfolds: int = 6,
    epsilon: float = 1e-8,
    *,
    plan: LTCSynapsePlan | None = None,
    lstm_input: mx.array | None = None,
    lstm: Mapping[str, mx.array] | None = None,
    c0: mx.array | None = None,
    backend: str | None = None,
    threads: int | None = None,
    rows_per_group: int | None = None,
    transposed_weights: bool | None = None,
    stream=None,
):
    """The LTC sequence as one GPU kernel: states ``(B, T, N)`` after every step.

    With the mixed-memory LSTM (``lstm``: its parameters under the keys of
    :data:`~ncps.backends.ltc_args.LSTM_PARAMS`, ``lstm_input`` ``(B, T, F)``, ``c0`` ``(B, N)``,
    zeros if None) the LSTM runs before every step inside the kernel, as
    :func:`ncps.backends.cpu.ltc.ltc_mixed_sequence`, and the call returns ``(states, cells)``.

    Args:
        x, h0, dt, params, ode_unfolds, epsilon: as :func:`ncps.backends.cpu.ltc.ltc_sequence` (``dt <= 0``
            leaves that sample's state unchanged).
        plan: the wiring's synapse lists (:func:`ltc_synapse_plan`); built from the masks if None.
        backend: ``"metal"``, ``"cuda"`` or ``"emulate"`` (the C++ emulation, for tests); None
            picks the back-end of the default device / ``stream``.
        threads: threads per group (default :func:`ltc_threads`).
        rows_per_group, transposed_weights: the kernels' performance design (kernels/README.md;
            unmeasured on hardware): ``R`` batch rows per threadgroup sharing each
            synapse-parameter read (1..8; forward and backward), and the forward's mixed-memory
            LSTM matrices transposed once per call for coalesced reads. None: the
            :func:`ncps.backends.gpu.launch.perf_options` defaults (1, False). Any choice gives
            the same bits.
        stream: the MLX stream or device of the launches.

    Raises:
        ValueError: wrong shapes (the message names the argument and the expected shape), a plan
            of another size, a kernel that needs more threadgroup memory than the back-end's limit
            (Metal 32 KiB; CUDA the device's dynamic shared memory; with ``rows_per_group`` rows
            per group), ``threads`` outside
            ``1..256``, or an array of ``2**31`` elements or more (32-bit indices).
        RuntimeError: no GPU back-end and no ``backend`` given.
    """
    op = "ltc_sequence_gpu"
    B, T, I, N = check_ltc_args(op, x, h0, dt, params, ode_unfolds)
    K = int(ode_unfolds)
    backend = resolve_backend(backend, stream)
    if plan is None:
        plan = ltc_synapse_plan(params)
    if (plan.N, plan.I) != (N, I):
        raise ValueError(f"{op}: plan is for (N, I) = ({plan.N}, {plan.I}), the arrays have ({N}, {I})")
    NT = check_threads(op, threads if threads is not None else ltc_threads(N, I))
    mixed, F = _mixed_args(op, B, T, N, lstm_input, lstm, c0)
    need, limit = _tg_bytes(N, I, K, NT, F), tg_memory_limit(backend, stream)
    if need > limit:
        raise ValueError(
            f"{op}: N={N}, I={I}, ode_unfolds={K}{f', F={F}' if F else ''} need {need} bytes of "
            f"threadgroup memory, more than {limit} ({backend})"
        )
    R, WT, _ = perf(op, rows_per_group, transposed_weights)
    need_rows = {"forward": _tg_bytes_forward(N, I, F, R), "backward": _tg_bytes(N, I, K, NT, F, R)}
    for which, need in need_rows.items():
        if need > limit:
            raise ValueError(
                f"{op}: the {which} at rows_per_group={R} needs {need} bytes of threadgroup memory, more than "
                f"{limit} ({backend}): use fewer rows per group"
            )
    check_index_range(op, _index_sizes(B, T, N, I, F, int(plan.rec_flat.size), int(plan.sens_flat.size)))
    template = dict(N=N, I=I, K=K, F=max(F, 1), MIX=int(lstm is not None), NT=NT, R=R, WT=WT, IOT=io_name(x.dtype))
    run = LTCLaunch(backend, plan, template, B, T, float(epsilon), stream)

    @mx.custom_function
    def seq(*arrays):
        return ltc_forward(run, arrays)

    @seq.vjp
    def seq_vjp(primals, cotangents, outputs):
        return ltc_backward(run, primals, cotangents, outputs)

    states, cells = seq(x, h0, dt, *(params[k] for k in SOLVER_PARAMS), *mixed)
    if mx.issubdtype(x.dtype, mx.floating):
        states, cells = states.astype(x.dtype), cells.astype(x.dtype)
    return states if lstm is None else (states, cells)


def _mixed_args(op: str, B: int, T: int, N: int, lstm_input, lstm, c0) -> tuple:
    """The LSTM's five kernel arrays (placeholders without it) and its input width ``F`` (0)."""
    if lstm is None:
        if lstm_input is not None or c0 is not None:
            raise ValueError(f"{op}: lstm_input and c0 are only for mixed memory (pass lstm too)")
        return (mx.zeros((1,)),) * 5, 0
    c0 = mx.zeros((B, N)) if c0 is None else c0
    F = check_lstm_args(op, B, T, N, lstm_input, lstm, c0)
    return (lstm_input, lstm["input_w"], lstm["input_b"], lstm["recurrent_w"], c0), F


# -- the cell hooks of LTCCell (ncps.backends.hooks.Hooks; inputs validated by the caller) --------

KERNEL = "ltc_sequence_gpu"


def kernel_name(mixed_memory: bool = False) -> str:
    return KERNEL


def why_not(cell, mixed_memory: bool = False) -> str | None:
    """None when the GPU kernels cover ``cell`` (an LTCCell), else why not."""
    N, I, K = cell.state_size, cell.sensory_size, cell.ode_unfolds
    need = _tg_bytes(N, I, K, ltc_threads(N, I), cell.input_size if mixed_memory else 0)
    backend = default_backend()
    limit = tg_memory_limit(backend)
    if need > limit:
        where = backend or "metal"
        return f"N={N}, I={I}, ode_unfolds={K} need {need} bytes of threadgroup memory (limit {limit}, {where})"
    return None


def cell_synapse_plan(cell) -> LTCSynapsePlan:
    """:func:`ltc_synapse_plan` of an LTCCell's wiring, built once per cell from the wiring's
    adjacency matrices on the host (the frozen masks are their absolute values), so no call reads
    the masks back from the device, and calls inside ``mx.compile`` work."""
    plan = getattr(cell, "_gpu_synapse_plan", None)
    if plan is None:
        wiring = cell._wiring
        masks = {"mask": np.abs(wiring.adjacency_matrix), "sensory_mask": np.abs(wiring.sensory_adjacency_matrix)}
        plan = ltc_synapse_plan(masks)
        object.__setattr__(cell, "_gpu_synapse_plan", plan)  # a plain attribute, not a module parameter
    return plan


def sequence(cell, x: mx.array, h0: mx.array, dt: mx.array, lstm=None, c0=None, *, backend: str, stream=None):
    """:meth:`ncps.backends.hooks.Hooks.sequence` as one GPU kernel (:func:`ltc_sequence_gpu`,
    the mixed-memory LSTM inside it). A step with ``dt = 0`` (a layer's padding) leaves the LTC
    state unchanged."""
    params = cell.solver_params()
    kwargs = dict(plan=cell_synapse_plan(cell), backend=backend, stream=stream)
    dtype = _dtypes.compute_dtype(x, h0, params["cm"])  # the reference's (README "Precision")
    # The kernels store x's dtype (float16 / bfloat16 storage, float32 state and sums), so the
    # per-sample arrays go in as the compute dtype.
    x, h0 = _dtypes.cast(x, dtype), _dtypes.cast(h0, dtype)
    c0 = None if c0 is None else _dtypes.cast(c0, dtype)
    if lstm is None:
        states = ltc_sequence_gpu(cell.map_inputs(x), h0, dt, params, cell.ode_unfolds, cell.epsilon, **kwargs)
        return _dtypes.cast(states, dtype), None
    states, cells = ltc_sequence_gpu(
        cell.map_inputs(x),
        h0,
        dt,
        params,
        cell.ode_unfolds,
        cell.epsilon,
        lstm_input=x,
        lstm=lstm_params(lstm),
        c0=c0,
        **kwargs,
    )
    return _dtypes.cast(states, dtype), _dtypes.cast(cells, dtype)


def step(cell, x: mx.array, h: mx.array, ts, *, backend: str, stream=None) -> mx.array:
    """One step as a one-step sequence: ``x`` ``(B, I)``, ``h`` ``(B, N)``, ``ts`` a float or ``(B, 1)``."""
    dt = mx.full((x.shape[0], 1), ts) if isinstance(ts, (int, float)) else ts
    return sequence(cell, x[:, None], h, dt, backend=backend, stream=stream)[0][:, 0]
