#!/usr/bin/env python
"""The CUDA bodies of the GPU kernels on a real GPU without MLX (see scripts/gpu_check.sh).

``prepare`` (on a machine with this package and mlx installed, no GPU needed) writes
``build/gpu_check/``: for every kernel and a few problem sizes, the exact translation unit MLX's
``mx.fast.cuda_kernel`` builds (``ncps.backends.gpu._source.cuda_wrapper_source``), the launch
(groups, threads), the inputs, and the outputs of the same body run by the C++ emulation (which
the test suite checks against the pure-MLX reference).

``run`` (on the GPU machine; needs only numpy, CuPy and nvcc) compiles each unit with nvcc for the
local GPU, launches it with CuPy and compares every output with the emulation's: relative error
(to the largest magnitude) at most 1e-5 for the forward states, 1e-4 for the backward outputs.
Run it under ``compute-sanitizer --tool racecheck`` / ``--tool memcheck`` too (gpu_check.sh does).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "build" / "gpu_check"


def _cases():
    """(name, spec, template, groups, inputs) of every checked launch, from real calls of the
    launch layer with the emulation as backend (the emulation's ``run`` is intercepted)."""
    import mlx.core as mx

    import ncps
    from ncps.backends.gpu import cfc_sequence_gpu, emulate, ltc_sequence_gpu
    from ncps.backends.ltc_args import lstm_params
    from ncps.wirings import AutoNCP, FullyConnected

    captured = []
    run = emulate.run

    def spy(spec, inputs, shapes, template, groups, flags=None):
        outs, proc = run(spec, inputs, shapes, template, groups, flags)
        captured.append((spec, dict(template), groups, [np.asarray(a) for a in inputs], outs))
        return outs, proc

    emulate.run = spy
    try:
        mx.random.seed(0)
        for wiring, I, B, T, threads in ((AutoNCP(16, 4), 5, 3, 6, 32), (FullyConnected(40), 7, 2, 5, 64)):
            cell = ncps.LTCCell(wiring, I)
            p = cell.solver_params()
            x, h0 = mx.random.normal((B, T, I)), 0.1 * mx.random.normal((B, cell.state_size))
            dt = mx.random.uniform(0.3, 1.5, (B, T))
            loss = lambda x: (ltc_sequence_gpu(x, h0, dt, p, 6, 1e-8, backend="emulate", threads=threads) ** 2).sum()  # noqa: E731
            mx.eval(mx.grad(loss)(x))
        lp = lstm_params(ncps.LSTMCell(I, cell.state_size))  # mixed memory (the last wiring)

        def mixed(x):
            return (ltc_sequence_gpu(x, h0, dt, p, 6, 1e-8, lstm_input=x, lstm=lp, backend="emulate")[0] ** 2).sum()  # noqa: E731

        mx.eval(mx.grad(mixed)(x))
        for kw, threads in (
            (dict(backbone_units=24), 32),
            (dict(mode="pure", backbone_units=[20, 12]), 32),
            (dict(mode="no_gate", backbone_layers=0), 32),
        ):
            cell = ncps.CfCCell(6, 20, **kw)
            x, h0, dt = mx.random.normal((3, 5, 6)), mx.random.normal((3, 20)), mx.random.uniform(0.2, 1.5, (3, 5))
            loss = lambda x: (cfc_sequence_gpu(cell, x, h0, dt, backend="emulate", threads=threads) ** 2).sum()  # noqa: E731
            mx.eval(mx.grad(loss)(x))
        lstm = ncps.LSTMCell(6, 20)  # mixed memory: the LSTM inside the CfC kernels' time loop
        mixed = lambda x: (cfc_sequence_gpu(cell, x, h0, dt, lstm=lstm, backend="emulate")[0] ** 2).sum()  # noqa: E731
        mx.eval(mx.grad(mixed)(x))
    finally:
        emulate.run = run
    return captured


def prepare(out: Path) -> None:
    from ncps.backends.gpu._source import cuda_wrapper_source

    out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for k, (spec, template, groups, inputs, outputs) in enumerate(_cases()):
        name = f"{k:02d}_{spec.name}"
        (out / f"{name}.cu").write_text(cuda_wrapper_source(spec, template))
        arrays = {f"in_{i}": a for i, a in enumerate(inputs)}
        arrays.update({f"out_{i}": o for i, o in enumerate(outputs)})
        np.savez_compressed(out / f"{name}.npz", **arrays)
        manifest.append(
            {
                "name": name,
                "kernel": spec.name,
                "groups": groups,
                "threads": int(template["NT"]),
                "inputs": [t for _, t in spec.inputs],
                "outputs": list(spec.outputs),
                "tolerance": 1e-4 if "backward" in spec.name else 1e-5,
            }
        )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"wrote {len(manifest)} cases to {out}")


def _arch() -> str:
    import cupy as cp

    return "sm_" + str(cp.cuda.Device().compute_capability)  # e.g. "90"


def run(out: Path, nvcc: str) -> int:
    import cupy as cp

    manifest = json.loads((out / "manifest.json").read_text())
    arch, failures = _arch(), 0
    for case in manifest:
        cu = out / f"{case['name']}.cu"
        cubin, ptx = cu.with_suffix(f".{arch}.cubin"), cu.with_suffix(".ptx")
        for flag, target in (("-cubin", cubin), ("-ptx", ptx)):
            subprocess.run([nvcc, flag, f"-arch={arch}", "-o", str(target), str(cu)], check=True)
        entry = re.search(r"\.entry\s+(\w+)\s*\(", ptx.read_text()).group(1)  # the mangled name
        kernel = cp.RawModule(path=str(cubin)).get_function(entry)
        data = np.load(out / f"{case['name']}.npz")
        ins = [
            cp.asarray(data[f"in_{i}"].astype(np.int32 if t == "int" else np.float32))
            for i, t in enumerate(case["inputs"])
        ]
        outs = [cp.zeros(data[f"out_{i}"].shape, dtype=cp.float32) for i in range(len(case["outputs"]))]
        kernel((case["groups"],), (case["threads"],), (*ins, *outs))
        cp.cuda.Device().synchronize()
        for i, name in enumerate(case["outputs"]):
            want, got = data[f"out_{i}"].astype(np.float64), cp.asnumpy(outs[i]).astype(np.float64)
            scale = max(float(np.abs(want).max(initial=0.0)), 1e-6)
            err = float(np.abs(got - want).max(initial=0.0)) / scale
            ok = err <= case["tolerance"] and np.isfinite(got).all()
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {case['name']} {name}: rel err {err:.2e} (tol {case['tolerance']:g})")
    print(f"{len(manifest)} launches on {arch}: {failures} outputs out of tolerance")
    return 1 if failures else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("command", choices=("prepare", "run"))
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--nvcc", default="nvcc")
    args = ap.parse_args()
    if args.command == "prepare":
        prepare(Path(args.out))
        return 0
    return run(Path(args.out), args.nvcc)


if __name__ == "__main__":
    sys.exit(main())
