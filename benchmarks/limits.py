"""The machine's limits for this package's kernels, and how much of them a model reaches.

Two rates bound what a fused kernel can do on a CPU:

- **GEMM rate** (GFLOP/s): a large float32 matmul through the fastest BLAS at hand, the best of
  numpy's (OpenBLAS), JAX's (XLA; measured in the Keras-JAX peer's subprocess) and our own
  ``csrc/common/gemm.h`` tiles (``limits.cpp``). The CfC kernels are GEMMs plus elementwise work,
  so ``achieved GFLOP/s ÷ GEMM rate`` says how close a CfC row comes to the machine.
- **Synapse rate** (lane-synapse evaluations/s): the LTC inner loop (one FMA, a sigmoid by exp2 and
  a reciprocal, three multiply-adds) at full SIMD width with everything in L1, on every thread
  (``limits.cpp``). ``achieved ÷ synapse rate`` says how close an LTC row comes.

Work counted per model (dense-equivalent, what a row of the peer table is divided by):

- CfC: the matmul FLOPs of one step (backbone, ff1, ff2, time_a, time_b; each layer of a wired CfC
  as a dense ``[in, h] → n`` block), ``2 · fan_in · fan_out`` each, times B · T;
- LTC: synapse evaluations, B · T · (ode_unfolds · recurrent synapses + sensory synapses);
- forward+backward counts 3× the forward's work (the usual convention: a backward costs about two
  forwards), so its fraction compares with the forward's on the same footing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = Path(__file__).resolve().parent / "limits.cpp"
BUILD_DIR = REPO / "build" / "bench"
BWD_FACTOR = 3.0  # forward+backward work = 3 x forward work


def compiler() -> str | None:
    """The C++ compiler: ``$CXX`` or the first of c++, g++, clang++ on the PATH."""
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def build_probe() -> Path:
    """Compile ``limits.cpp`` (once per source change) for this machine (-march=native)."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set CXX)")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    exe = BUILD_DIR / "limits"
    stamp = BUILD_DIR / "limits.src"
    # common/isa.h includes the target list CMake generates for the extension; the probe is one
    # target of its own (-march=native), so it gets a one-entry list.
    # (in a folder of its own: on the include path, BUILD_DIR's executable `limits` would shadow <limits>)
    gen = BUILD_DIR / "include"
    gen.mkdir(exist_ok=True)
    (gen / "ncps_isa_list.h").write_text("#pragma once\n#define NCPS_FOR_EACH_ISA(X) X(native)\n")
    # Rebuilt when the probe or the kernel headers it compiles change (their hash is the stamp).
    sources = [SOURCE] + [REPO / "csrc" / "common" / h for h in ("gemm.h", "simd.h", "isa.h")]
    src = hashlib.sha256(b"".join(f.read_bytes() for f in sources)).hexdigest()
    if exe.is_file() and stamp.is_file() and stamp.read_text(encoding="ascii", errors="replace") == src:
        return exe
    cmd = [
        cxx,
        "-O3",
        "-march=native",
        "-DNCPS_ISA=native",
        "-std=gnu++20",
        "-pthread",
        f"-I{REPO / 'csrc'}",
        f"-I{gen}",
        str(SOURCE),
        "-o",
        str(exe),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"compiling limits.cpp failed: {proc.stderr.strip()[-500:]}")
    stamp.write_text(src, encoding="ascii")
    return exe


def native_limits(threads: int, seconds: float) -> dict:
    """``{"gemm_gflops", "synapse_evals_per_s", "simd_lanes", ...}`` from the compiled probe."""
    exe = build_probe()
    out = subprocess.run([str(exe), str(threads), str(seconds)], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"limits probe failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout)


def numpy_gemm_gflops(n: int = 2048, seconds: float = 1.0) -> float:
    """The best GFLOP/s of ``a @ b`` (float32, ``n x n``) through numpy's BLAS."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b  # warm-up (thread pool, pages)
    best, until, reps = float("inf"), time.perf_counter() + seconds, 0
    while reps < 3 or (time.perf_counter() < until and reps < 50):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
        reps += 1
    return 2.0 * n**3 / best * 1e-9


# ---------------------------------------------------------------------------------------------
# Work per model
# ---------------------------------------------------------------------------------------------
def _wiring(units, inputs: int):
    import ncps

    if isinstance(units, dict):
        w = getattr(ncps.wirings, units["wiring"])(*units["args"], **units["kwargs"])
    else:
        w = ncps.wirings.FullyConnected(int(units))
    w.build(inputs)
    return w


def cfc_step_flops(s: dict) -> float:
    """Matmul FLOPs of one CfC step for one sample (dense-equivalent)."""
    kw, n_in, units = s.get("kwargs", {}), int(s["input_size"]), s["units"]
    mode = kw.get("mode", "default")
    heads = 1 if mode == "pure" else 4  # pure: ff1 only
    if isinstance(units, dict):  # wired: one CfC block per wiring layer, no backbone
        w = _wiring(units, n_in)
        flops, fan_in = 0.0, n_in
        for i in range(w.num_layers):
            n = len(w.get_neurons_of_layer(i))
            flops += heads * 2.0 * (fan_in + n) * n
            fan_in = n
        return flops
    n, bb, layers = int(units), int(kw.get("backbone_units", 128)), int(kw.get("backbone_layers", 1))
    if layers <= 0:
        return heads * 2.0 * (n_in + n) * n
    return 2.0 * (n_in + n) * bb + (layers - 1) * 2.0 * bb * bb + heads * 2.0 * bb * n


def ltc_step_synapses(s: dict) -> float:
    """Synapse evaluations of one LTC step for one sample: unfolds x recurrent + sensory."""
    w = _wiring(s["units"], int(s["input_size"]))
    unfolds = int(s.get("kwargs", {}).get("ode_unfolds", 6))
    return unfolds * float((w.adjacency_matrix != 0).sum()) + float((w.sensory_adjacency_matrix != 0).sum())


def work(s: dict, batch: int, T: int, kind: str) -> dict | None:
    """``{"unit": "GFLOP" | "Gsyn", "amount": ..., "limit": "gemm" | "synapse"}`` of one timed call."""
    factor = BWD_FACTOR if kind == "fwd+bwd" else 1.0
    layer = s["layer"]
    if layer.startswith("CfC") or layer.startswith("WiredCfC"):
        return {"unit": "GFLOP", "limit": "gemm", "amount": factor * batch * T * cfc_step_flops(s) * 1e-9}
    if layer.startswith("LTC"):
        return {"unit": "Gsyn", "limit": "synapse", "amount": factor * batch * T * ltc_step_synapses(s) * 1e-9}
    return None
