"""Export to MLX's ``.mlxfn``: the pure-MLX reference graph, runnable without ncps.

``to_mlxfn(model, path)`` traces the layer under ``ncps.kernels.use("reference")`` (the custom C++
primitives do not exist where ncps is not installed) with :func:`mlx.core.exporter`, one trace per
call signature and shape, all in one file. The file's function is called with positional arrays::

    f = mx.import_function("policy.mlxfn")
    y, h = f(x)                    # x (batch, time, features), zero initial state, Δt = 1
    y, h = f(x, h0)                # an initial state
    y, h = f(x, h0, timespans)     # timespans (batch, time)

With mixed memory the state is two arrays ``h, c``; bidirectional layers take and return the forward
then the backward state(s); with ``merge_mode=None`` the output is two arrays. The layout is
batch-first whatever the layer's ``batch_first``.

One-step form (``one_step=True``): ``f(x)``, ``f(x, *state)``, ``f(x, *state, dt)`` with ``x``
``(batch, features)``, ``dt`` ``(batch, 1)``; returns ``y, *state``.

Shapes: MLX's shapeless export cannot infer the shape of a ``Slice`` (every step reads ``x[:, t]``
and the readouts slice the motor neurons) and the time loop is unrolled while tracing, so each
trace has a fixed ``(batch, time)``: list the ones you deploy with in ``batch_sizes`` and
``steps``. The file's metadata (JSON) records the signatures.
"""

from __future__ import annotations

import contextlib
import json
import os

import mlx.core as mx
from mlx.utils import tree_map

from .. import _checks, kernels
from ..cells.base import Cell
from ..layers import RNN
from ..persistence import atomic_write
from ._params import describe, extract


def _flatten(state) -> list:
    if state is None:
        return []
    if isinstance(state, (tuple, list)):
        return [a for s in state for a in _flatten(s)]
    return [state]


def _structure(layer: RNN, arrays: list):
    """Rebuild the layer's state structure from flat arrays (the inverse of :func:`_flatten`)."""
    per = 2 if layer.mixed_memory else 1
    dirs = [tuple(arrays[i : i + per]) if per == 2 else arrays[i] for i in range(0, len(arrays), per)]
    return (dirs[0], dirs[1]) if layer.bidirectional else dirs[0]


def to_mlxfn(
    model,
    path: str | os.PathLike,
    *,
    one_step: bool = False,
    batch_sizes: tuple[int, ...] = (1,),
    steps: tuple[int, ...] = (100,),
) -> str:
    """Write ``model`` (an ncps layer or cell) as an ``.mlxfn`` to ``path`` (atomically).

    Args:
        model: any ncps sequence layer or cell (bidirectional only without ``one_step``).
        path: the file (MLX appends ``.mlxfn`` when it is missing: pass a name ending in it).
        one_step: the one-step form ``f(x (B, F), *state, dt (B, 1)) -> (y, *state)``.
        batch_sizes, steps: the ``(batch, time)`` shapes to trace (``steps`` unused for one step).

    Returns ``path``. The function takes ``x`` first and returns the output first, then the state.
    """
    spec = extract(model)  # validates the configuration (NotImplementedError names it)
    layer = RNN(model) if isinstance(model, Cell) else model
    if one_step and spec.bidirectional:
        raise NotImplementedError(
            f"one-step .mlxfn export of a bidirectional layer ({describe(spec)}): its backward direction "
            "starts at the sequence's last step, so it has no step form; export the sequence form"
        )
    path = os.fspath(path)
    if not path.endswith(".mlxfn"):
        raise ValueError(f"path must end in .mlxfn (MLX appends it otherwise), got {path!r}")
    n_state = len(_flatten(_zero_state(layer, 1)))

    def run(x: mx.array, *rest: mx.array):
        state = _structure(layer, list(rest[:n_state])) if len(rest) >= n_state and n_state else None
        ts = rest[n_state] if len(rest) > n_state else None
        with kernels.use("reference"):
            if one_step:
                x = x[:, None]  # one step of a sequence: (B, 1, F), timespans (B, 1)
                y, new = layer(x if layer.batch_first else x.transpose(1, 0, 2), state, timespans=ts)
                if layer.return_sequences:
                    y = y[:, 0] if layer.batch_first else y[0]
            else:
                seq = x if layer.batch_first else x.transpose(1, 0, 2)
                y, new = layer(seq, state, timespans=ts if ts is None or layer.batch_first else ts.T)
                if not layer.batch_first and layer.return_sequences:
                    y = tuple(o.transpose(1, 0, 2) for o in y) if isinstance(y, tuple) else y.transpose(1, 0, 2)
        outputs = list(y) if isinstance(y, tuple) else [y]
        return tuple(outputs + _flatten(new))

    F = spec.input_size
    traces = []  # the argument lists of every trace, zeros of the deployed shapes
    for B in batch_sizes:
        for T in [1] if one_step else steps:
            x = mx.zeros((B, F) if one_step else (B, T, F))
            zeros = _flatten(_zero_state(layer, B))
            dt = mx.ones((B, 1) if one_step else (B, T))
            traces += [[x], [x, *zeros], [x, *zeros, dt]]
    meta = {
        "producer": "ncps.export.to_mlxfn",
        "model": describe(spec),
        "one_step": _checks.boolean(one_step, "one_step"),
        "state_arrays": n_state,
        "signatures": [[list(a.shape) for a in args] for args in traces],
    }

    def write(tmp: str) -> None:
        # mlx.nn's compiled helpers (softplus, ...) are fused primitives that export cannot
        # serialize: trace with compilation off, so they are recorded as plain ops.
        mx.disable_compile()
        try:
            with _row_contiguous(layer), mx.exporter(tmp, run, metadata=json.dumps(meta)) as exporter:
                for args in traces:
                    exporter(*args)
        finally:
            mx.enable_compile()

    atomic_write(path, write, ".mlxfn")
    return path


@contextlib.contextmanager
def _row_contiguous(layer: RNN):
    """Swap the layer's arrays for row-contiguous copies while tracing, then put the very same
    objects back (a prepared streaming step stays valid). MLX 0.32's exporter writes a constant's
    buffer as it lies in memory, so an array with transposed strides (``CfCCell.sparsity_mask`` is
    ``mx.array(mask.T)``) would read back transposed."""
    originals = layer.parameters()
    contiguous = tree_map(mx.contiguous, originals)
    mx.eval(contiguous)
    layer.update(contiguous)
    try:
        yield
    finally:
        layer.update(originals)


def _zero_state(layer: RNN, B: int):
    N = layer.state_size
    one = (mx.zeros((B, N)), mx.zeros((B, N))) if layer.mixed_memory else mx.zeros((B, N))
    return (one, one) if layer.bidirectional else one
