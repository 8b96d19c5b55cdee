"""Fused vs reference timings of the CfC layers (not a test). Run:

    python benchmarks/cfc_quick.py [--reps N]

Prints wall time per call (graph build + mx.eval; median and min) and the process CPU time per
call for forward and forward+backward (nn.value_and_grad of a mean-square loss over all
parameters) at batch 32, T 100, 16 inputs, and the latency of one streaming cell step at batch 1.
The full comparison with the official package is ``benchmarks/run.py``; this one is quick and
prints the machine load, since on a shared VM wall times mean little without it.
"""

import argparse
import os
import statistics
import time

import mlx.core as mx
import mlx.nn as nn

import ncps
from ncps import kernels


def timeit(fn, reps, warmup=3):
    """(median wall, min wall, mean process CPU time) per call, in seconds."""
    for _ in range(warmup):
        fn()
    ts = []
    c0 = time.process_time()
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), min(ts), (time.process_time() - c0) / reps


def fmt(t, unit=1e3):
    med, mn, cpu = t
    return f"{med * unit:8.2f} (min {mn * unit:7.2f}, cpu {cpu * unit:7.2f})"


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
    print(f"{name}")
    print(f"   fwd  ms: ref {fmt(rf)}  fused {fmt(ff)}  ref/fused x{rf[0] / ff[0]:.1f}")
    print(f"   f+b  ms: ref {fmt(rb)}  fused {fmt(fb)}  ref/fused x{rb[0] / fb[0]:.1f}")


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
    r, f = res["reference"], res["fused"]
    print(f"{name}\n   step us: ref {fmt(r, 1e6)}  fused {fmt(f, 1e6)}  ref/fused x{r[0] / f[0]:.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    info = ncps.kernels.info()
    print(f"threads {info['threads']}, simd {info.get('simd')}, load average before {os.getloadavg()}")
    bench_layer("CfC(16, 64) default, backbone 128x1", lambda: ncps.CfC(16, 64, backbone_units=128, backbone_layers=1), args.reps)
    bench_layer("CfC(16, AutoNCP(64, 8))", lambda: ncps.CfC(16, ncps.wirings.AutoNCP(64, 8, seed=0)), args.reps)
    bench_layer("CfC(16, 64) mixed memory", lambda: ncps.CfC(16, 64, backbone_units=128, backbone_layers=1, mixed_memory=True), args.reps)
    bench_step("CfCCell(16, 64) backbone 128x1, B=1", ncps.CfCCell(16, 64, backbone_units=128, backbone_layers=1), args.reps)
    bench_step("WiredCfCCell(16, AutoNCP(64, 8)), B=1", ncps.WiredCfCCell(16, ncps.wirings.AutoNCP(64, 8, seed=0)), args.reps)
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
