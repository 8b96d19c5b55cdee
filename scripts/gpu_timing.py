#!/usr/bin/env python
"""GPU timings for the first hardware run (call 2 of scripts/gpu_check.sh), within a budget of
about 60 s.

Models: LTC AutoNCP(64, 8), LTC FullyConnected(256) (16 inputs, 6 unfolds), dense CfC(16 -> 64)
(one backbone layer of 64), wired CfC on AutoNCP(64, 8); batch B in {1, 32, 256}, length T in
{100, 1000}; pass ``forward`` (the layer's outputs) and ``forward+backward`` (loss and every
parameter gradient, ``nn.value_and_grad``). Implementations:

- ``gpu``: the GPU kernels (``kernels.use("fused")``, default device the GPU, ``NCPS_GPU_KERNELS=1``;
  the plan's backend is recorded, so a call that fell back shows as such), one batch row per
  threadgroup, weights in their row layout;
- the forward kernels' performance design (kernels/README.md, "Performance design for hardware"),
  each hypothesis against ``gpu`` at the same model, B and T (``ncps.backends.gpu.launch.perf_options``):
  ``gpu-R4`` 4 batch rows per threadgroup (not at B = 1: one row), ``gpu-T`` the weight matrices
  transposed for coalesced reads, ``gpu-R4-TS`` both with the weights staged in threadgroup memory
  (the last two on the CfC models only: the LTC models here have no mixed-memory LSTM, whose
  matrices are the LTC's only ones to transpose);
- ``reference-gpu``: the pure-MLX reference path on the GPU;
- ``cpu``: the fused CPU primitive (``kernels.use("fused")`` on the CPU) where the compiled
  extension is loaded; on a machine where it is not (the GPU machine runs ncps from the source
  tree) the row says so.

Per cell: the first call's wall time (``first_s``: graph building and, for the first cell of a
kernel configuration, NVRTC's compile of the kernels) apart from the steady state: one warm-up
call, then ``REPS`` = 10 timed calls, each ``mx.eval`` + ``mx.synchronize``, reported as the
median (and min). Budget: cells run in priority order (the ``gpu`` cells first, each followed by
its design variants, B = 32 before 1 before 256, T = 100 before 1000; then ``reference-gpu``,
then ``cpu``). A cell is not started
when a call of it, estimated from the last measured cell of the same model, implementation and
pass scaled by B T, times 2 (first call and warm-up) exceeds the budget left (``"not run"``, with
the estimate); a cell whose warm-up call times 12 exceeds the budget left is reported with that one
call only (``"trimmed"``); once the budget is spent the remaining cells are ``"not run"``. So the
whole grid is always accounted for and the run overshoots the budget by at most about one call.

``--plan`` prints the grid in that order with the trim rule and touches no GPU (the dry run).
``--out DIR`` writes ``DIR/timing.json`` and ``DIR/timing.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPS = 10
MODELS = ("LTC AutoNCP(64, 8)", "LTC FullyConnected(256)", "CfC(16 -> 64)", "wired CfC AutoNCP(64, 8)")
BATCHES = (32, 1, 256)  # priority order
LENGTHS = (100, 1000)
PASSES = ("forward", "forward+backward")
# The GPU kernels and their performance-design variants (perf_options of ncps.backends.gpu.launch).
GPU_VARIANTS = {
    "gpu": {},
    "gpu-R4": dict(rows_per_group=4),
    "gpu-T": dict(transposed_weights=True),
    "gpu-R4-TS": dict(rows_per_group=4, transposed_weights=True, stage_weights=True),
}
IMPLS = (*GPU_VARIANTS, "reference-gpu", "cpu")
INPUTS = 16


def _applies(impl: str, model: str, B: int) -> bool:
    """Whether a variant is a distinct measurement at this model and batch."""
    if "R4" in impl and B < 2:
        return False  # one row: one group either way
    # The LTC models here have no mixed memory: no weight matrix to transpose or stage.
    return not (impl in ("gpu-T", "gpu-R4-TS") and model.startswith("LTC"))


def grid() -> list[dict]:
    """Every cell, in the order they run: each ``gpu`` cell with its design variants next to it."""
    gpu = [
        dict(impl=impl, model=m, B=B, T=T, kind=kind)
        for T in LENGTHS
        for B in BATCHES
        for m in MODELS
        for kind in PASSES
        for impl in GPU_VARIANTS
        if _applies(impl, m, B)
    ]
    rest = [
        dict(impl=impl, model=m, B=B, T=T, kind=kind)
        for impl in IMPLS[len(GPU_VARIANTS) :]
        for T in LENGTHS
        for B in BATCHES
        for m in MODELS
        for kind in PASSES
    ]
    return gpu + rest


def build(model: str):
    import ncps
    from ncps.wirings import AutoNCP, FullyConnected

    if model.startswith("LTC AutoNCP"):
        return ncps.LTC(INPUTS, AutoNCP(64, 8))
    if model.startswith("LTC Fully"):
        return ncps.LTC(INPUTS, FullyConnected(256))
    if model.startswith("CfC"):
        return ncps.CfC(INPUTS, 64, backbone_units=64, backbone_layers=1)
    return ncps.CfC(INPUTS, AutoNCP(64, 8))


def _call(model, kind: str, x, ts):
    import mlx.nn as nn

    if kind == "forward":
        return lambda: model(x, timespans=ts)[0]

    def loss(m, x):
        return (m(x, timespans=ts)[0] ** 2).mean()

    vg = nn.value_and_grad(model, loss)
    return lambda: vg(model, x)


def _run(fn):
    import mlx.core as mx

    t = time.perf_counter()
    mx.eval(fn())
    mx.synchronize()
    return time.perf_counter() - t


def measure(cell: dict, left: float, models: dict) -> dict:
    """Time one cell (see the module docstring); ``left``: seconds of budget left."""
    import mlx.core as mx

    from ncps import kernels
    from ncps.backends.gpu.launch import perf_options

    impl = cell["impl"]
    if impl == "cpu" and not kernels.info().get("extension_loaded"):
        return {**cell, "status": "n/a", "note": "the compiled CPU extension is not loaded here"}
    device = mx.cpu if impl == "cpu" else mx.gpu
    mode = "reference" if impl == "reference-gpu" else "fused"
    mx.set_default_device(device)
    with kernels.use(mode), perf_options(**GPU_VARIANTS.get(impl, {})):
        shared = "gpu" if impl in GPU_VARIANTS else impl  # the variants time the same model
        model = models.setdefault((cell["model"], shared), build(cell["model"]))
        mx.eval(model.parameters())
        backend = kernels.plan(model.rnn_cell, stream=device).backend if mode == "fused" else "reference"
        mx.random.seed(0)
        x = mx.random.normal((cell["B"], cell["T"], INPUTS))
        ts = mx.full((cell["B"], cell["T"]), 1.0)
        fn = _call(model, cell["kind"], x, ts)
        first = _run(fn)
        warm = _run(fn)
        if warm * (REPS + 2) > left:
            return {**cell, "status": "trimmed", "backend": backend, "first_s": first, "one_call_s": warm}
        times = [_run(fn) for _ in range(REPS)]
    return {
        **cell,
        "status": "ok",
        "backend": backend,
        "first_s": first,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "reps": REPS,
    }


def markdown(rows: list[dict], info: dict) -> str:
    lines = [f"# GPU timings ({info.get('device_name', '?')}, mlx {info.get('mlx', '?')})", ""]
    lines += ["| model | B | T | pass | impl | backend | first call (s) | median (ms) | status |"]
    lines += ["|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        med = (
            f"{1e3 * r['median_s']:.3f}"
            if "median_s" in r
            else (f"({1e3 * r['one_call_s']:.1f})" if "one_call_s" in r else "")
        )
        first = f"{r['first_s']:.3f}" if "first_s" in r else ""
        lines.append(
            f"| {r['model']} | {r['B']} | {r['T']} | {r['kind']} | {r['impl']} | {r.get('backend', '')} | {first} | "
            f"{med} | {r['status']}{': ' + r['note'] if r.get('note') else ''} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--budget", type=float, default=60.0, help="seconds (default 60)")
    ap.add_argument("--plan", action="store_true", help="print the grid and the trim rule; no GPU needed")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    cells = grid()
    if args.plan:
        print(f"{len(cells)} cells in this order, budget {args.budget:g} s, {REPS} timed calls after one warm-up;")
        print(f"a cell whose warm-up call x {REPS + 2} exceeds the budget left is trimmed to that one call;")
        print("a cell whose estimated call (same model, impl and pass, scaled by B T) x 2 exceeds it is not run:")
        for c in cells:
            print(f"  {c['impl']:13s} {c['model']:26s} B={c['B']:<4d} T={c['T']:<5d} {c['kind']}")
        return 0

    import mlx.core as mx

    os.environ["NCPS_GPU_KERNELS"] = "1"  # opt in: this run is the hardware validation
    try:
        info = {"mlx": mx.__version__, **{k: str(v) for k, v in mx.device_info(mx.gpu).items()}}
    except (RuntimeError, ValueError) as err:
        info = {"mlx": mx.__version__, "device_name": f"no GPU device ({err})"}
    start, rows, models, seen = time.perf_counter(), [], {}, {}
    for cell in cells:
        left = args.budget - (time.perf_counter() - start)
        key = (cell["model"], cell["impl"], cell["kind"])
        if left <= 0:
            rows.append({**cell, "status": "not run", "note": "budget spent"})
            continue
        if key in seen:  # seconds per (B T) of the last measured cell of this kind
            estimate = seen[key] * cell["B"] * cell["T"]
            if 2 * estimate > left:
                rows.append({**cell, "status": "not run", "note": f"one call estimated at {estimate:.2f} s"})
                continue
        try:
            rows.append(measure(cell, left, models))
        except Exception as err:  # noqa: BLE001 - one failing cell must not lose the others
            rows.append({**cell, "status": "error", "note": f"{type(err).__name__}: {err}"[:300]})
        r = rows[-1]
        if "median_s" in r or "one_call_s" in r:
            seen[key] = r.get("median_s", r.get("one_call_s")) / (cell["B"] * cell["T"])
        print(f"{r['impl']:13s} {r['model']:26s} B={r['B']:<4d} T={r['T']:<5d} {r['kind']:17s} {r['status']}", end="")
        print(
            f" median {1e3 * r['median_s']:.3f} ms, first {r['first_s']:.3f} s" if "median_s" in r else "", flush=True
        )
    doc = {
        "device": info,
        "budget_s": args.budget,
        "elapsed_s": time.perf_counter() - start,
        "reps": REPS,
        "rows": rows,
    }
    md = markdown(rows, info)
    print(md)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "timing.json").write_text(json.dumps(doc, indent=1) + "\n")
        (args.out / "timing.md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
