"""Fused vs reference timings of the CfC layers (not a test). Run:

    python benchmarks/cfc_quick.py [--reps N]

Prints median wall time per call (graph build + mx.eval) for forward and forward+backward
(nn.value_and_grad of a sum-of-outputs loss over all parameters) at batch 32, T 100, 16 inputs,
and the latency of one streaming cell step at batch 1.
"""

import argparse
import statistics
import time

import mlx.core as mx
import mlx.nn as nn

import ncps
from ncps import kernels


def timeit(fn, reps, warmup=3):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def bench_layer(name, make, reps, B=32, T=100, I=16):
    mx.random.seed(0)
    model = make()
    x = mx.random.normal((B, T, I))
    mx.eval(model.parameters(), x)

    def fwd():
        y, _ = model(x)
        mx.eval(y)

    def loss_fn(m, x):
        y, _ = m(x)
        return (y * y).mean()

    vg = nn.value_and_grad(model, loss_fn)

    def fwd_bwd():
        loss, grads = vg(model, x)
        mx.eval(loss, grads)

    res = {}
    for mode in ("reference", "fused"):
        with kernels.use(mode):
            r = reps if mode == "fused" else max(3, reps // 10)
            res[mode] = (timeit(fwd, r), timeit(fwd_bwd, r))
    (rf, rb), (ff, fb) = res["reference"], res["fused"]
    print(f"{name:42s} fwd  ref {rf*1e3:9.2f} ms  fused {ff*1e3:8.3f} ms  x{rf/ff:6.1f}")
    print(f"{'':42s} f+b  ref {rb*1e3:9.2f} ms  fused {fb*1e3:8.3f} ms  x{rb/fb:6.1f}")


def bench_step(name, cell, reps, I=16):
    mx.random.seed(0)
    x = mx.random.normal((1, I))
    h = mx.zeros((1, cell.state_size))
    mx.eval(cell.parameters(), x, h)

    def step():
        y, s = cell(x, h, 1.0)
        mx.eval(s)

    res = {}
    for mode in ("reference", "fused"):
        with kernels.use(mode):
            res[mode] = timeit(step, reps * 10, warmup=20)
    print(f"{name:42s} step ref {res['reference']*1e6:9.1f} us  fused {res['fused']*1e6:8.1f} us  x{res['reference']/res['fused']:6.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    print(ncps.kernels.info())
    bench_layer("CfC(16, 64) default, backbone 128x1", lambda: ncps.CfC(16, 64, backbone_units=128, backbone_layers=1), args.reps)
    bench_layer("CfC(16, AutoNCP(64, 8))", lambda: ncps.CfC(16, ncps.wirings.AutoNCP(64, 8, seed=0)), args.reps)
    bench_layer("CfC(16, 64) mixed memory", lambda: ncps.CfC(16, 64, backbone_units=128, backbone_layers=1, mixed_memory=True), args.reps)
    bench_step("CfCCell(16, 64) backbone 128x1, B=1", ncps.CfCCell(16, 64, backbone_units=128, backbone_layers=1), args.reps)
    bench_step("WiredCfCCell(16, AutoNCP(64, 8)), B=1", ncps.WiredCfCCell(16, ncps.wirings.AutoNCP(64, 8, seed=0)), args.reps)


if __name__ == "__main__":
    main()
