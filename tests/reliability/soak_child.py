"""The soak run of tests/reliability/test_soak.py (``python -m tests.reliability.soak_child SECONDS``):
threads, each on its own MLX stream, call fused layers and train private models concurrently; the
results must equal the sequential ones and the resident memory must stay flat. Prints one JSON
line and leaves with os._exit (MLX 0.32.4 can abort at interpreter exit after threaded use:
docs/reliability.md)."""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time

import mlx.core as mx
import mlx.nn as nn
import numpy as np

import ncps
from ncps import optimizers
from ncps import wirings as W


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def make(kind: str):
    mx.random.seed(1)
    layer = ncps.LTC(4, W.AutoNCP(12, 3)) if kind == "ltc" else ncps.CfC(4, 16, backbone_units=16)
    mx.eval(layer.parameters())
    return layer


X = mx.array(np.random.default_rng(0).normal(size=(8, 20, 4)).astype(np.float32))
Y = mx.array(np.random.default_rng(1).normal(size=(8, 20, 3)).astype(np.float32))
mx.eval(X, Y)


def work(kind: str, steps: int) -> tuple:
    """A forward and `steps` training steps of a fresh model: (output, final parameters)."""
    model = make(kind)
    out = model(X)[0]
    opt = optimizers.adam(1e-2)
    loss_grad = nn.value_and_grad(model, lambda m: nn.losses.mse_loss(m(X)[0][..., :3], Y))
    for _ in range(steps):
        _, g = loss_grad(model)
        opt.update(model, g)
        mx.eval(model.parameters(), opt.state)
    return np.array(out), {k: np.array(v) for k, v in ncps.persistence.tree_flatten(model.parameters())}


def main(seconds: float) -> None:
    ncps.kernels.set_mode("fused")
    expected = {k: work(k, 3) for k in ("ltc", "cfc")}
    errors, rounds, samples = [], [0], []
    stop = time.monotonic() + seconds

    def thread(i: int) -> None:
        kind = ("ltc", "cfc")[i % 2]
        with mx.stream(mx.new_stream(mx.cpu)):
            while time.monotonic() < stop:
                out, params = work(kind, 3)
                ok = np.array_equal(out, expected[kind][0]) and all(
                    np.array_equal(params[k], expected[kind][1][k]) for k in params
                )
                if not ok:
                    errors.append(f"thread {i} ({kind}) differs from the sequential run")
                rounds[0] += 1

    threads = [threading.Thread(target=thread, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        samples.append(rss_mb())
        time.sleep(0.5)
    for t in threads:
        t.join()
    print(json.dumps({"rounds": rounds[0], "errors": errors[:5], "rss_mb": samples}), flush=True)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(float(sys.argv[1]))
