"""What the CPU hooks' streaming forms share (:func:`step`, :func:`infer` and :func:`prepared_step`
of :mod:`ncps.backends.cpu.ltc` and :mod:`ncps.backends.cpu.cfc`): a cached constant ``dt`` and the
identities a prepared step guards.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn

_DT_CACHE: dict = {}


def constant_dt(B: int, ts: float) -> mx.array:
    """An evaluated ``(B, 1)`` array of ``ts``: a graph leaf, so a streaming step adds no op (the
    fused modules' ``step``/``infer`` share it)."""
    key = (B, ts)
    dt = _DT_CACHE.get(key)
    if dt is None:
        if len(_DT_CACHE) > 64:
            _DT_CACHE.clear()
        dt = _DT_CACHE[key] = mx.full((B, 1), ts, dtype=mx.float32)
        mx.eval(dt)
    return dt


_SCALARS = (bool, int, float, str, type(None))


def module_edges(module: nn.Module) -> list:
    """``(container, key, object)`` for everything a step prepared from ``module`` depends on:
    every array, sub-module, list and dict in its tree (``nn.Module`` is a dict), and every
    module's scalar attributes (its ``__dict__``: ``mode``, ``ode_unfolds``, the training flag).

    MLX arrays are immutable, so any change of a parameter (an optimizer step, ``update``,
    ``load_weights``, ``set_dtype``, an assignment, ``train()``/``eval()``) replaces one of these
    objects in its container; a prepared step compares them by identity before every call.
    Containers without an array or module inside (a cell's ``_config``, ``layer_sizes``) get no
    edges: they are not what a step computes with. Tuples are immutable: their contents are
    walked but need no edges of their own."""
    edges: list = []

    def walk(c: Any) -> bool:  # whether c is or holds a module or an array
        found = isinstance(c, nn.Module)
        if found:
            attrs = vars(c)
            edges.extend((attrs, k, v) for k, v in attrs.items() if isinstance(v, _SCALARS) and k != "_prepared")
        for k, v in c.items() if isinstance(c, dict) else enumerate(c):
            if isinstance(v, mx.array) or (isinstance(v, (dict, list, tuple)) and walk(v)):
                found = True
                if not isinstance(c, tuple):
                    edges.append((c, k, v))
        return found

    walk(module)
    return edges
