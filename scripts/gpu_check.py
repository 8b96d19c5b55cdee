#!/usr/bin/env python
"""The CUDA bodies of the GPU kernels on a real GPU without MLX (call 1 of scripts/gpu_check.sh).

``prepare OUT --prelude DIR`` (here: needs this package and mlx, no GPU) writes ``OUT``: for every
kernel and a few problem sizes, the exact translation unit MLX's ``mx.fast.cuda_kernel`` builds
(``ncps.backends.gpu._source.cuda_wrapper_source`` with MLX's ``utils.cuh`` prelude, copied from ``DIR`` as
extracted by scripts/gpu_prelude.py into ``OUT/prelude``), the launch (groups, threads, dynamic
shared memory), the inputs, and the outputs of the same body run by the C++ emulation (which the
test suite checks against the pure-MLX reference). One case needs more than 48 KiB of shared
memory, so the opt-in path of dynamic shared memory runs too. Cases cover the forward kernels with
4 rows per threadgroup and transposed (CfC: staged) weights, and 16-bit storage (bfloat16 CfC,
float16 LTC; their arrays travel as uint16 bit patterns). ``manifest.json`` records the hash of
the kernel sources, so a stale preparation is detected.

``check OUT`` (here) validates a prepared folder: every file present, the kernel-source hash equal
to the working tree's. ``run OUT`` (on the GPU machine; needs only numpy, CuPy and nvcc) compiles
each unit with nvcc for the local GPU (``-arch=sm_XY``, ``a`` from compute capability 9, as MLX's
NVRTC call), launches it with CuPy and compares every output with the emulation's: relative error
(to the largest magnitude) at most 1e-5 for the forward states, 1e-4 for the backward outputs.
``--small`` launches only the cases marked small (for the slow compute-sanitizer tools);
compiled cubins are reused across runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "build" / "gpu_check"
PRELUDE_FILES = ("utils.cuh", "complex.cuh", "config.h")
# Tolerance of 16-bit stored outputs: the GPU's float math differs from the emulation's by ~1e-6,
# which can move a rounding by one unit (bfloat16 2^-8, float16 2^-11 relative).
HALF_TOL = {"bfloat16": 1e-2, "float16": 2e-3}
DEVICE = "mlx/backend/cuda/device"


def kernel_sources_hash(root: Path = REPO) -> str:
    """sha256 (first 16 hex digits) of kernels/*.inc and kernels/dialect/* (what the cases were made from)."""
    h = hashlib.sha256()
    for path in sorted([*(root / "kernels").glob("*.inc"), *(root / "kernels" / "dialect").glob("*")]):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _cases():
    """(name, spec, template, groups, inputs, outputs, tg_bytes, small) of every checked launch,
    from real calls of the launch layer with the emulation as backend (its ``run`` is intercepted)."""
    import mlx.core as mx

    import ncps
    from ncps.backends.gpu import cfc_sequence_gpu, emulate, ltc_sequence_gpu
    from ncps.backends.ltc_args import lstm_params
    from ncps.wirings import AutoNCP, FullyConnected, Random

    captured, small = [], [True]
    run = emulate.run

    def spy(spec, inputs, shapes, template, groups, flags=None, tg_bytes=None):
        outs, proc = run(spec, inputs, shapes, template, groups, flags, tg_bytes)
        captured.append((spec, dict(template), groups, [np.asarray(a) for a in inputs], outs, tg_bytes, small[0]))
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
        # The performance design: 4 rows per group over B = 5 (a partial group), transposed weights
        # (the CfC's staged in threadgroup memory); and 16-bit storage, forward and backward.
        x5, h5, dt5 = mx.random.normal((5, 4, 6)), mx.random.normal((5, 20)), mx.random.uniform(0.2, 1.5, (5, 4))
        perf = dict(rows_per_group=4, transposed_weights=True)

        def multi(x):  # forward (weights staged) and backward with 4 rows per group
            out = cfc_sequence_gpu(cell, x, h5, dt5, lstm=lstm, backend="emulate", stage_weights=True, **perf)[0]
            return (out**2).sum()

        mx.eval(mx.grad(multi)(x5))
        lcell = ncps.LTCCell(AutoNCP(16, 4), 6)
        lp5, lh5 = lstm_params(ncps.LSTMCell(6, 16)), 0.1 * mx.random.normal((5, 16))

        def multi_ltc(x):  # forward and backward with 4 rows per group
            kw = dict(lstm_input=x, lstm=lp5, backend="emulate", **perf)
            return (ltc_sequence_gpu(x, lh5, dt5, lcell.solver_params(), 6, **kw)[0] ** 2).sum()

        mx.eval(mx.grad(multi_ltc)(x5))
        xb, hb = x.astype(mx.bfloat16), h0.astype(mx.bfloat16)

        def bf(x):
            return cfc_sequence_gpu(cell, x, hb, dt, lstm=lstm, backend="emulate")[0].astype(mx.float32).sum()

        mx.eval(mx.grad(bf)(xb))
        lx = mx.random.normal((3, 5, 6)).astype(mx.float16)
        lh = (0.1 * mx.random.normal((3, 16))).astype(mx.float16)

        def f16(x):
            out = ltc_sequence_gpu(x, lh, dt, lcell.solver_params(), 6, backend="emulate")
            return out.astype(mx.float32).sum()

        mx.eval(mx.grad(f16)(lx))
        # Large: the mixed-memory LTC backward at N = 420 needs ~52 KiB (> CUDA's 48 KiB without
        # opt-in), sparse so the per-synapse gradient rows stay small.
        small[0] = False
        cell = ncps.LTCCell(Random(420, 4, sparsity_level=0.9), 4)
        p, lp = cell.solver_params(), lstm_params(ncps.LSTMCell(4, 420))
        x, h0, dt = mx.random.normal((1, 3, 4)), 0.1 * mx.random.normal((1, 420)), mx.random.uniform(0.3, 1.5, (1, 3))

        def big(x):
            out = ltc_sequence_gpu(x, h0, dt, p, 6, 1e-8, lstm_input=x, lstm=lp, backend="emulate")[0]
            return (out**2).sum()

        mx.eval(mx.grad(big)(x))
    finally:
        emulate.run = run
    return captured


def prepare(out: Path, prelude: Path) -> None:
    from ncps.backends.gpu._source import cuda_wrapper_source

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for name in PRELUDE_FILES:  # MLX's utils.cuh and what it includes (scripts/gpu_prelude.py)
        target = out / "prelude" / "include" / DEVICE / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(prelude / "include" / DEVICE / name, target)
    manifest = []
    for k, (spec, template, groups, inputs, outputs, tg_bytes, small) in enumerate(_cases()):
        name = f"{k:02d}_{spec.name}"
        (out / f"{name}.cu").write_text(cuda_wrapper_source(spec, template, mlx_prelude=True))
        arrays = {f"in_{i}": a for i, a in enumerate(inputs)}
        arrays.update({f"out_{i}": o for i, o in enumerate(outputs)})
        np.savez_compressed(out / f"{name}.npz", **arrays)
        manifest.append(
            {
                "name": name,
                "kernel": spec.name,
                "groups": groups,
                "threads": int(template["NT"]),
                "shared_bytes": int(tg_bytes),
                "small": small,
                "inputs": [t for _, t in spec.inputs],
                "outputs": list(spec.outputs),
                "output_kinds": spec.output_kinds(),
                "iot": template.get("IOT", "float32"),
                "tolerance": 1e-4 if "backward" in spec.name else 1e-5,
            }
        )
    doc = {"kernel_sources": kernel_sources_hash(), "cases": manifest}
    (out / "manifest.json").write_text(json.dumps(doc, indent=1))
    print(f"wrote {len(manifest)} cases to {out} (largest shared memory {max(c['shared_bytes'] for c in manifest)} B)")


def check(out: Path) -> int:
    """0 when ``out`` holds a complete preparation of the current kernel sources, else 1 (says why)."""
    try:
        doc = json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError) as err:
        print(f"FAIL {out}/manifest.json: {err}")
        return 1
    problems = []
    if doc.get("kernel_sources") != kernel_sources_hash():
        problems.append("the kernel sources changed since the cases were prepared: run scripts/gpu_stage.sh again")
    for case in doc["cases"]:
        problems += [
            f"missing {case['name']}{ext}" for ext in (".cu", ".npz") if not (out / f"{case['name']}{ext}").is_file()
        ]
    problems += [
        f"missing prelude {n}" for n in PRELUDE_FILES if not (out / "prelude" / "include" / DEVICE / n).is_file()
    ]
    if not any(c["shared_bytes"] > 48 * 1024 for c in doc["cases"]):
        problems.append("no case needs more than 48 KiB of shared memory")
    for p in problems:
        print(f"FAIL {p}")
    print(f"{len(doc['cases'])} prepared cases in {out}: {'ok' if not problems else 'NOT usable'}")
    return 1 if problems else 0


def _arch() -> int:
    import cupy as cp

    return int(cp.cuda.Device().compute_capability)  # e.g. 90


def _load(cubin: Path, ptx: Path, shared: int):
    import cupy as cp

    entry = re.search(r"\.entry\s+(\w+)\s*\(", ptx.read_text()).group(1)  # the mangled name
    kernel = cp.RawModule(path=str(cubin)).get_function(entry)
    if shared > 48 * 1024:  # opt in to more than 48 KiB of dynamic shared memory, as MLX does
        try:
            kernel.max_dynamic_shared_size_bytes = shared
        except AttributeError:
            cp.cuda.driver.funcSetAttribute(kernel.ptr, 8, shared)  # CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    return kernel


def _compile_all(out: Path, cases: list, nvcc: str, arch: str) -> None:
    """Build each distinct translation unit once (cubin and PTX; the PTX names the mangled entry),
    in parallel; the builds are kept for the sanitizer runs."""
    include = out / "prelude" / "include"
    jobs = {}
    for case in cases:
        cu = out / f"{case['name']}.cu"
        key = hashlib.sha256(cu.read_bytes()).hexdigest()[:16]
        case["build"] = out / "build" / f"{key}.{arch}"
        if not (out / "build" / f"{key}.{arch}.cubin").is_file():
            jobs[key] = (cu, case["build"])
    cmds = []
    for cu, base in jobs.values():
        base.parent.mkdir(parents=True, exist_ok=True)
        for flag, ext in (("-cubin", ".cubin"), ("-ptx", ".ptx")):
            target = base.parent / (base.name + ext)
            cmds.append([nvcc, flag, f"-arch={arch}", "-std=c++17", f"-I{include}", "-o", str(target), str(cu)])
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as pool:
        for res in pool.map(lambda c: subprocess.run(c, capture_output=True, text=True), cmds):
            if res.returncode != 0:
                raise RuntimeError(f"nvcc failed: {' '.join(res.args)}\n{res.stderr}")


def run(out: Path, nvcc: str, small_only: bool = False) -> int:
    import cupy as cp

    doc = json.loads((out / "manifest.json").read_text())
    cc, failures, launched = _arch(), 0, 0
    arch = f"sm_{cc}{'a' if cc >= 90 else ''}"
    cases = [c for c in doc["cases"] if c["small"] or not small_only]
    _compile_all(out, cases, nvcc, arch)
    for case in cases:
        base = case["build"]
        kernel = _load(base.parent / (base.name + ".cubin"), base.parent / (base.name + ".ptx"), case["shared_bytes"])
        data = np.load(out / f"{case['name']}.npz")
        iot = case.get("iot", "float32")
        half = iot != "float32"  # 16-bit storage: "io" arrays are uint16 bit patterns

        def host(t: str) -> type:
            return np.int32 if t == "int" else np.uint16 if t == "io" and half else np.float32

        ins = [cp.asarray(data[f"in_{i}"].astype(host(t))) for i, t in enumerate(case["inputs"])]
        kinds = case.get("output_kinds", ["float"] * len(case["outputs"]))
        outs = [cp.zeros(data[f"out_{i}"].shape, dtype=host(k)) for i, k in enumerate(kinds)]
        kernel((case["groups"],), (case["threads"],), (*ins, *outs), shared_mem=case["shared_bytes"])
        cp.cuda.Device().synchronize()
        launched += 1
        for i, name in enumerate(case["outputs"]):
            bits = kinds[i] == "io" and half
            want, got = (_decode(a, iot if bits else "float32") for a in (data[f"out_{i}"], cp.asnumpy(outs[i])))
            scale = max(float(np.abs(want).max(initial=0.0)), 1e-6)
            err = float(np.abs(got - want).max(initial=0.0)) / scale
            tol = max(case["tolerance"], HALF_TOL[iot]) if bits else case["tolerance"]
            ok = err <= tol and np.isfinite(got).all()
            failures += not ok
            print(
                f"{'ok  ' if ok else 'FAIL'} {case['name']} {name} ({iot if bits else 'float32'}): "
                f"rel err {err:.2e} (tol {tol:g})"
            )
    print(f"{launched} launches on {arch}: {failures} outputs out of tolerance")
    return 1 if failures else 0


def _decode(a: np.ndarray, iot: str) -> np.ndarray:
    """``a`` as float64: float32 values, or float16 / bfloat16 bit patterns (uint16)."""
    if iot == "float16":
        return a.astype(np.uint16).view(np.float16).astype(np.float64)
    if iot == "bfloat16":
        return (a.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return a.astype(np.float64)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("command", choices=("prepare", "check", "run"))
    ap.add_argument("out", nargs="?", default=str(OUT))
    ap.add_argument("--prelude", default=str(REPO / "build" / "mlx_cuda_prelude" / "0.32.4"))
    ap.add_argument("--nvcc", default="nvcc")
    ap.add_argument("--small", action="store_true", help="run: only the cases marked small")
    args = ap.parse_args()
    if args.command == "prepare":
        prepare(Path(args.out), Path(args.prelude))
        return 0
    if args.command == "check":
        return check(Path(args.out))
    return run(Path(args.out), args.nvcc, args.small)


if __name__ == "__main__":
    sys.exit(main())
