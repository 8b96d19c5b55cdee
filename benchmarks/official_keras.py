"""Time the official ``ncps.keras`` package on Keras 3 with the JAX backend under ``jax.jit``.

This is the strongest CPU peer of the official package: XLA compiles the whole recurrence (the
``keras.layers.RNN`` loop becomes a ``lax.scan``), so no Python runs per time step. Like
``official_torch.py`` it runs in a subprocess started by :mod:`benchmarks.oracle` (the official
package imports as ``ncps``); JAX and Keras come from the peers directory ``.peers/`` (installed by
``scripts/bootstrap.sh``; a benchmark dependency only). Usage::

    KERAS_BACKEND=jax python official_keras.py jobs.json results.json
    KERAS_BACKEND=jax python official_keras.py jobs.json --serve   # rounds on demand

The jobs are those of ``official_torch.py`` (same spec dicts, same :mod:`timing` policy). What is
timed (float32, CPU, after a warm-up call that includes the XLA compilation, whose time is
reported as ``compile_s``):

- ``forward``: ``jax.jit(layer.stateless_call)(trainables, non_trainables, x)`` with
  ``return_sequences=True``, ``training=False``;
- ``fwd+bwd``: ``jax.jit(jax.grad(loss))`` with ``loss = sum(outputs)``, the gradient taken w.r.t.
  every floating-point trainable variable (the LTC cell keeps its wiring masks as integer
  trainables, which ``jax.grad`` refuses; they are held fixed, as they are in training);
- ``gemm``: a jitted float32 ``n x n`` matmul (job key ``n``), the XLA side of the machine limit;
- ``step``: one jitted cell step ``cell.stateless_call(..., x, [h])`` at the given batch, feeding
  the new state back in.

Every call ends in ``jax.block_until_ready`` (JAX dispatches asynchronously).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import keras
import numpy as np

import ncps  # the official package, thanks to the bootstrap
import ncps.keras as nk
import timing
from official_common import official_units, serve


def build(job):
    """The official Keras layer or cell of ``job``, built for its input shape."""
    layer, n_in, kw = job["layer"], job["input_size"], dict(job.get("kwargs", {}))
    units, B = official_units(job["units"]), int(job["batch"])
    if layer in ("CfC", "CfCCell") and not isinstance(units, int):
        layer = "WiredCfCCell" if layer == "CfCCell" else layer
    if layer.startswith("CfC") and isinstance(units, int):
        kw.setdefault("backbone_dropout", 0.0)  # inactive at training=False anyway; no RNG in the graph
    keras.utils.set_random_seed(0)
    if layer == "LTC":
        model = nk.LTC(units, return_sequences=True, **kw)
    elif layer == "CfC":
        model = nk.CfC(units, return_sequences=True, **kw)
    elif layer == "LTCCell":
        wiring = units if not isinstance(units, int) else ncps.wirings.FullyConnected(units)
        model = nk.LTCCell(wiring, **kw)
    elif layer == "CfCCell":
        model = nk.CfCCell(units, **kw)
    elif layer == "WiredCfCCell":
        kw = {k: v for k, v in kw.items() if k not in ("backbone_units", "backbone_layers", "backbone_dropout")}
        model = nk.WiredCfCCell(units, **kw)
    else:
        raise ValueError(f"unknown layer {layer!r}")
    if layer.endswith("Cell"):
        model.build((B, n_in))
    else:
        model.build((B, int(job["time"]), n_in))
    return model


def state_size(cell) -> int:
    s = cell.state_size
    return int(s[0] if isinstance(s, (list, tuple)) else s)


def gemm_call(n: int):
    """A jitted float32 ``n x n`` matmul through XLA (the machine-limit probe of ``run.py``)."""
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.standard_normal((n, n), dtype=np.float32))
    b = jnp.asarray(rng.standard_normal((n, n), dtype=np.float32))
    mm = jax.jit(jnp.matmul)
    return lambda: jax.block_until_ready(mm(a, b))


def make_call(job):
    if job["pass"] == "gemm":
        return gemm_call(int(job["n"]))
    model = build(job)
    B, kind = int(job["batch"]), job["pass"]
    rng = np.random.default_rng(0)
    trainables = [v.value for v in model.trainable_variables]
    non_trainables = [v.value for v in model.non_trainable_variables]
    if kind == "step":
        x = jnp.asarray(rng.standard_normal((B, job["input_size"]), dtype=np.float32))
        h = [jnp.asarray(0.1 * rng.standard_normal((B, state_size(model)), dtype=np.float32))]

        @jax.jit
        def step(tv, ntv, x, h):
            (out, new), _ = model.stateless_call(tv, ntv, x, [h])
            # LTCCell and CfCCell return the new state as a list, WiredCfCCell as a bare array.
            return out, (new[0] if isinstance(new, (list, tuple)) else new)

        def call():
            out, h[0] = step(trainables, non_trainables, x, h[0])
            jax.block_until_ready((out, h[0]))

        return call
    x = jnp.asarray(rng.standard_normal((B, int(job["time"]), job["input_size"]), dtype=np.float32))
    if kind == "forward":
        fwd = jax.jit(lambda tv, ntv, x: model.stateless_call(tv, ntv, x)[0])

        def call():
            jax.block_until_ready(fwd(trainables, non_trainables, x))

        return call
    if kind == "fwd+bwd":
        # jax.grad differentiates floating-point arrays only: split off the integer trainables.
        is_float = [jnp.issubdtype(v.dtype, jnp.floating) for v in trainables]
        floats = [v for v, f in zip(trainables, is_float) if f]
        ints = [v for v, f in zip(trainables, is_float) if not f]

        def loss(fl, it, ntv, x):
            fi, ii = iter(fl), iter(it)
            tv = [next(fi) if f else next(ii) for f in is_float]
            return jnp.sum(model.stateless_call(tv, ntv, x)[0])

        grad = jax.jit(jax.value_and_grad(loss))

        def call():
            jax.block_until_ready(grad(floats, ints, non_trainables, x))

        return call
    raise ValueError(f"unknown pass {kind!r}")


def prepare(job):
    """``(call, {"compile_s"})``: the job's timed call after the first call, which compiles."""
    call = make_call(job)
    t0 = time.perf_counter()
    call()  # the first call compiles
    return call, {"compile_s": time.perf_counter() - t0}


def main(jobs_path: str, out_path: str) -> None:
    """Time every job once (``out_path`` a file), or serve rounds on stdin (``out_path`` is
    ``--serve``: :func:`official_common.serve`)."""
    spec = json.loads(Path(jobs_path).read_text())
    info = {
        "peer_version": f"keras {keras.__version__} + jax {jax.__version__} (jit)",
        "threads": int(spec.get("threads", 2)),
        "ncps_file": ncps.__file__,
    }
    if out_path == "--serve":
        serve(spec["jobs"], prepare, info)
        return
    results = {}
    for job in spec["jobs"]:
        try:
            call, extra = prepare(job)
            results[job["id"]] = dict(timing.measure(call, timing.Policy.from_dict(job.get("policy", {}))), **extra)
        except Exception as exc:  # one broken job must not lose the others
            results[job["id"]] = timing.failure("error", exc)
        r = results[job["id"]]
        print(f"[keras-jax] {job['id']}: {r.get('median_s', r.get('reason'))}", file=sys.stderr, flush=True)
    Path(out_path).write_text(json.dumps({**info, "results": results}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
