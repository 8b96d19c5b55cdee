"""Repeated fused calls (forward and backward of every primitive) for the leak check of
scripts/sanitize.sh: run under LeakSanitizer, and by tests/reliability/test_sanitizers.py for RSS
growth."""

from __future__ import annotations

import json
import resource
import sys

import mlx.core as mx
import mlx.nn as nn

import ncps
from ncps import wirings as W


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def main(rounds: int) -> None:
    ncps.kernels.set_mode("fused")
    mx.random.seed(0)
    models = [
        ncps.LTC(3, W.AutoNCP(10, 2)),
        ncps.LTC(3, 6, mixed_memory=True),
        ncps.CfC(3, 8, backbone_units=8),
        ncps.CfC(3, W.AutoNCP(10, 2), mixed_memory=True),
    ]
    x = mx.random.normal((4, 12, 3))
    samples = []
    for _r in range(rounds):
        for m in models:
            loss, grads = nn.value_and_grad(m, lambda m: m(x)[0].sum())(m)
            mx.eval(loss, grads)
            cell = m.rnn_cell
            mx.eval(cell(x[:, 0])[1])
        samples.append(rss_mb())
    print(json.dumps({"rss_mb": samples}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
