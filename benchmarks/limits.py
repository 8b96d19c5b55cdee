"""The ``limits`` section: the machine's limits for this package's kernels, and how much of them a
model reaches.

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

import numpy as np

import ncps
from benchmarks.common.chart import Panel, bars, short
from benchmarks.common.context import Context, Section
from benchmarks.common.fmt import index, num, ok, table
from benchmarks.common.models import make_units
from benchmarks.common.paths import BUILD, HERE, REPO
from benchmarks.timing import Policy, guarded

SOURCE = HERE / "limits.cpp"
BWD_FACTOR = 3.0  # forward+backward work = 3 x forward work


# ---------------------------------------------------------------------------------------------
# The probes
# ---------------------------------------------------------------------------------------------
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
    BUILD.mkdir(parents=True, exist_ok=True)
    exe = BUILD / "limits"
    stamp = BUILD / "limits.src"
    # common/isa.h includes the target list CMake generates for the extension; the probe is one
    # target of its own (-march=native), so it gets a one-entry list.
    # (in a folder of its own: on the include path, BUILD's executable `limits` would shadow <limits>)
    gen = BUILD / "include"
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
# Work per model, and the fraction of the limit it reaches
# ---------------------------------------------------------------------------------------------
def _wiring(units: int | dict, inputs: int) -> ncps.wirings.Wiring:
    w = make_units(units)
    if not isinstance(w, ncps.wirings.Wiring):
        w = ncps.wirings.FullyConnected(w)
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


def fraction_of_limit(r: dict | None, limits: dict) -> tuple[float | None, float | None]:
    """(achieved rate in the work's unit per second, fraction of the machine's limit) of a fused
    row, from its fastest call (the least disturbed by other load)."""
    w = (r or {}).get("work")
    if not ok(r) or not w:
        return None, None
    rate = w["amount"] / r["min_s"]
    limit = limits.get("gemm_gflops") if w["limit"] == "gemm" else limits.get("synapse_evals_per_s")
    if limit and w["limit"] == "synapse":
        limit = limit * 1e-9  # Gsyn/s
    return rate, (rate / limit if limit else None)


# ---------------------------------------------------------------------------------------------
# The section
# ---------------------------------------------------------------------------------------------
def _xla_gemm(ctx: Context) -> dict:
    """The GEMM rate of JAX's XLA, in the Keras-JAX peer's subprocess."""
    cfg = ctx.cfg
    policy = Policy(warmup=1, reps=20, min_reps=3, budget_s=cfg.limit_seconds)
    r = ctx.official([{"id": "gemm", "pass": "gemm", "n": cfg.gemm_n, "policy": policy.to_dict()}], "keras-jax")["gemm"]
    return {"status": "ok", "gflops": 2.0 * cfg.gemm_n**3 / r["min_s"] * 1e-9} if r.get("status") == "ok" else r


def compute(ctx: Context, previous: dict | None = None) -> dict:
    """The machine's GEMM rate (best of numpy, XLA and our gemm.h tiles) and the LTC synapse rate
    at full SIMD width; sets ``ctx.limits``. With ``previous`` (the section from the start of the
    run) the probes run again at the end and each rate keeps its best: a limit measured while the
    machine was busy would otherwise understate it."""
    cfg, gemm = ctx.cfg, {}
    gemm["numpy"] = guarded(lambda: {"status": "ok", "gflops": numpy_gemm_gflops(cfg.gemm_n, cfg.limit_seconds)})
    native = guarded(lambda: {"status": "ok", **native_limits(cfg.threads, cfg.limit_seconds)})
    gemm["ncps gemm.h"] = (
        {"status": "ok", "gflops": native["gemm_gflops"], "n": native["gemm_n"]} if native["status"] == "ok" else native
    )
    if "keras-jax" in cfg.peers:
        gemm["jax (XLA)"] = _xla_gemm(ctx)
    for name, r in gemm.items():
        ctx.log(f"limits: GEMM {name}: {r.get('gflops', r.get('reason'))}")
    rates = {name: r["gflops"] for name, r in gemm.items() if r.get("status") == "ok"}
    best = max(rates, key=rates.get) if rates else None
    synapse = native.get("synapse_evals_per_s") if native["status"] == "ok" else None
    ctx.log(f"limits: synapse rate {synapse}")
    if previous:  # keep the best of the start and the end of the run, probe by probe
        for name, r in previous.get("gemm", {}).items():
            if r.get("status") == "ok" and r["gflops"] > rates.get(name, 0.0):
                gemm[name], rates[name] = r, r["gflops"]
        best = max(rates, key=rates.get) if rates else None
        synapse = max(filter(None, (synapse, previous.get("synapse_evals_per_s"))), default=None)
    ctx.limits = {
        "gemm_gflops": rates.get(best),
        "gemm_source": best,
        "synapse_evals_per_s": synapse,
        "simd_lanes": native.get("simd_lanes") or ctx.limits.get("simd_lanes"),
    }
    return {"gemm_n": cfg.gemm_n, "threads": cfg.threads, "gemm": gemm, "native": native, **ctx.limits}


def markdown(section: dict, results: dict) -> list[str]:
    gemm = section.get("gemm", {})
    rows = [
        [
            f"GEMM {section.get('gemm_n')}² float32, {name}",
            f"{num(r['gflops'])} GFLOP/s" if ok(r) else f"{r.get('status')}: {r.get('reason')}",
        ]
        for name, r in gemm.items()
    ]
    if section.get("synapse_evals_per_s"):
        rows.append(
            [
                f"LTC synapse loop, {section.get('simd_lanes')} lanes, {section.get('threads')} threads",
                f"{num(section['synapse_evals_per_s'] * 1e-9)} Gsyn/s",
            ]
        )
    return ["### The machine's limits", "", *table(["probe", "best rate"], rows)]


def panels(section: dict, results: dict) -> list[Panel]:
    """The fraction of the machine's limit each fused row of the ltc and cfc sections reaches."""
    sections = results["sections"]
    fused_rows = [r for n in ("ltc", "cfc") if n in sections for r in sections[n]["results"] if r["impl"] == "fused"]
    if not (fused_rows and results.get("limits")):
        return []
    models = list(dict.fromkeys(r["model"] for r in fused_rows))
    fidx = index(fused_rows)

    def limit_panel(ax):
        series = {}
        for kind, name in (("forward", "fused forward"), ("fwd+bwd", "fused fwd+bwd")):
            fr = [fraction_of_limit(fidx.get((m, kind, "fused")), results["limits"])[1] for m in models]
            series[name] = [None if v is None else 100 * v for v in fr]
        bars(
            ax,
            "fraction of the machine's limit (GEMM / synapse rate)",
            [short(m) for m in models],
            series,
            "% of limit (min time)",
            log=False,
        )

    return [limit_panel]


SECTION = Section("limits", compute, markdown, panels)
