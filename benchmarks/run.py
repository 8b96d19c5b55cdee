#!/usr/bin/env python
"""The ncps speed benchmark: fused C++ kernels vs the pure-MLX reference vs the official package.

Run ``python benchmarks/run.py`` (about 10 minutes on a 2-core CPU; ``--quick`` about 1-2 minutes).
It prints a markdown table (ready for the README) on stdout, progress on stderr, and writes
``<out>/<name>.json`` (every timing, machine information) and ``<out>/<name>.png`` (a chart) and
``<out>/<name>.md`` (the table), ``<out>`` being ``benchmarks/results`` unless ``--out`` is given.

The quick fused-vs-reference check of the CfC kernels while working on them:
``python benchmarks/run.py --quick --section cfc,streaming`` (a minute or two).

Peers (``--peers official,keras-jax,torch.compile``)
----------------------------------------------------
Every model is also timed on the official package on each framework, each in its own subprocess
(``benchmarks/oracle.py``): ``official`` = ``ncps.torch`` eager (``official_torch.py``),
``keras-jax`` = ``ncps.keras`` on Keras 3 with the JAX backend under ``jax.jit`` (XLA compiles the
whole recurrence; ``official_keras.py``, JAX and Keras from ``.peers/``) and ``torch.compile`` =
``ncps.torch`` with its cell under ``torch.compile`` (full runs only by default: inductor compiles
for minutes on 2 cores). A peer that is not installed is skipped with a note. The first table of
the report puts them side by side, with the fraction of the machine's limit each fused row reaches.

Sections (``--section limits,ltc,cfc,scaling,memory,streaming,accuracy,training,gpu``; all by default)
------------------------------------------------------------------------------------------------------
``limits``
    The machine's limits (``benchmarks/limits.py``): the GEMM rate (float32 2048² matmul, the best
    of numpy's BLAS, JAX's XLA and our ``csrc/common/gemm.h`` tiles) and the LTC synapse rate (the
    sigmoid-synapse accumulation at full SIMD width, ``benchmarks/limits.cpp``, compiled here).
``ltc``
    LTC(16, AutoNCP(64, 8)) and LTC(16, FullyConnected(64)) (= LTC(16, 64)), batch 32, T = 100,
    16 inputs, 6 ODE unfolds; forward and forward+backward, under ``ncps.kernels.use("fused")``,
    ``use("reference")``, and the official ``ncps.torch`` LTC of the same configuration;
    ``mlx.nn.LSTM`` / ``mlx.nn.GRU`` of width 64 as familiar baselines.
``cfc``
    CfC(16, 64) (default mode, backbone 128×1) and CfC(16, AutoNCP(64, 8)), same shapes and passes.
``scaling``
    Fused forward of AutoNCP(256, 16, sparsity_level=0.8) against FullyConnected(256) (target:
    sparse ≤ ½ dense), then fused (and reference where affordable) forward over T, batch (on
    AutoNCP(64, 8)), units (on FullyConnected(units)) and sparsity (on AutoNCP(128, 16, s)).
    The reference path costs seconds per call at 64 units; points with B·T·N² above a limit skip
    it (noted in the table). Its cost does not depend on the sparsity (the masks are dense).
``memory``
    Peak MLX memory of one forward+backward, fused vs reference (target for LTC: fused ≤ ¼):
    ``mx.clear_cache()``, ``mx.reset_peak_memory()``, the call, ``mx.get_peak_memory()``
    (the peak includes what was already allocated: parameters and input).
``streaming``
    Latency of one cell step at batch 1 from a given state, feeding the new state back:
    ``out, h = cell(x, h); mx.eval(out, h)`` (also under ``mx.compile``, and ``cell.infer``, which
    computes the step immediately on the calling thread) against the official
    cell's step under ``torch.no_grad()``, for CfCCell(16, 64), WiredCfCCell(16, AutoNCP(64, 8))
    and LTCCell(AutoNCP(64, 8), 16).
``accuracy``
    Train CfC / LTC (32 units + linear head) on real UEA/UCR sets bundled in ``aeon`` and on the
    bit-stream XOR, with the official package on the same initial weights, batches and seeds: test
    accuracy (RMSE) mean ± sd, training time, speed-up to the official accuracy (see
    ``benchmarks/accuracy.py``; about 15 minutes, ``--quick`` 1-2). Alone: ``--section accuracy``
    (``--only accuracy``), written as ``accuracy[-quick].*`` so that it never replaces ``full.*``.
``training``
    Training throughput of every front (``ncps.training.fit``, ``ncps.sklearn``, ``ncps.mini_keras``)
    against a bare MLX loop and the official ``ncps.torch`` and ``ncps.keras`` (Keras 3 + JAX)
    training loops, same recipe on JapaneseVowels: time per epoch, samples/s, speed-ups and the
    fronts' overhead (see ``benchmarks/training.py``; a minute or two). Alone: ``--only training``,
    written as ``training[-quick].*``.
``gpu``
    Only where MLX has a GPU device (else skipped with the reason): GPU kernels vs the reference
    path on the GPU vs the fused CPU primitives vs the official ``ncps.torch`` on CUDA, batch
    1-1024, T 100-1000, N up to 512, with the batch where the GPU overtakes the CPU
    (``benchmarks/gpu.py``).

Methodology
-----------
- Every entry has untimed warm-up calls, then timed repetitions; the number of repetitions is
  capped by a time budget per entry (so slow entries get fewer, never fewer than a minimum), and
  the report gives the median and the minimum (see ``benchmarks/timing.py``, shared with the
  torch side so both use the same code).
- MLX is lazy: every timed MLX call ends in ``mx.eval`` on everything it produced (outputs and
  final state; loss and every gradient), so the time covers the computation, not graph building
  alone. forward+backward is ``nn.value_and_grad`` of ``sum(outputs)`` w.r.t. all trainable
  parameters.
- The official package runs in a subprocess (it also imports as ``ncps``; see
  ``benchmarks/oracle.py``) with ``torch.set_num_threads(<cores>)`` (2 here; ``--torch-threads``)
  and ``OMP_NUM_THREADS`` set to match, forward under ``torch.no_grad()``, forward+backward with
  ``.backward()``. Our fused kernels use the same number of threads; MLX's own CPU ops (the
  reference path, ``mlx.nn`` baselines) run on one thread. Both sides are timed one after the
  other, never concurrently.
- Timings on a shared or loaded machine are noisy: the load average at start and end is recorded
  in the JSON, and the table carries a warning if the machine was busy. Multi-threaded torch
  suffers most (its OpenMP threads wait for each other at every small op): on this 2-core VM
  under a load of ~5, the official LTC forward+backward took 15-80 s with 2 threads against
  ~0.5 s on an idle machine. Publish numbers from an idle machine.
- ``--tiny`` (hidden, for tests) shrinks every size so that a run takes seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import gc
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402

import ncps  # noqa: E402
from benchmarks import accuracy, limits, oracle, report, training  # noqa: E402
from benchmarks.timing import Policy, failure, measure  # noqa: E402

SECTIONS = ("limits", "ltc", "cfc", "scaling", "memory", "streaming", "accuracy", "training", "gpu")
# The official package on each framework: impl name in the results -> oracle.run_jobs(peer=...)
PEER_IMPLS = {"official": "torch", "torch.compile": "torch.compile", "keras-jax": "keras-jax"}
IMPLS = ("fused", "reference")  # our two paths; "official" and "mlx.nn" are the others
PASSES = ("forward", "fwd+bwd")


# ---------------------------------------------------------------------------------------------
# Configuration: sizes and repetition policies for the full, --quick and --tiny runs
# ---------------------------------------------------------------------------------------------
@dataclass
class Config:
    """Every size and repetition count of one run."""

    batch: int = 32
    time: int = 100
    inputs: int = 16
    units: int = 64
    motor: int = 8
    ode_unfolds: int = 6
    backbone_units: int = 128
    backbone_layers: int = 1
    # scaling
    sparse_units: int = 256
    sparse_motor: int = 16
    sparse_level: float = 0.8
    scan_time: tuple = (25, 100, 1000, 10000)
    scan_batch: tuple = (1, 8, 32, 128, 1024)
    scan_units: tuple = (16, 64, 256, 1024)
    scan_sparse_units: tuple = (64, 256, 1024)  # AutoNCP(N, sparse_motor, sparsity_level=sparse_level)
    scan_sparsity: tuple = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    sparsity_units: int = 128
    sparsity_motor: int = 16
    # the reference path runs in a scaling point only if B*T*N^2 <= this (32*100*64^2 is ~2-3 s)
    reference_work_limit: float = 32 * 200 * 64**2
    threads: int = 2  # torch threads of the official run (set from --torch-threads / the cores)
    peers: tuple = ("official", "keras-jax", "torch.compile")  # from --peers
    gemm_n: int = 2048  # the machine-limit GEMM (numpy, XLA)
    limit_seconds: float = 2.0  # time per machine-limit probe
    # repetition policies
    fast: Policy = field(default_factory=lambda: Policy(warmup=2, reps=10, min_reps=3, budget_s=6.0))
    slow: Policy = field(default_factory=lambda: Policy(warmup=1, reps=5, min_reps=2, budget_s=8.0))
    official: Policy = field(default_factory=lambda: Policy(warmup=1, reps=7, min_reps=2, budget_s=6.0))
    scan_fast: Policy = field(default_factory=lambda: Policy(warmup=2, reps=7, min_reps=3, budget_s=3.0))
    scan_slow: Policy = field(default_factory=lambda: Policy(warmup=1, reps=3, min_reps=1, budget_s=4.0))
    stream: Policy = field(default_factory=lambda: Policy(warmup=20, reps=1000, min_reps=50, budget_s=2.0))
    accuracy: accuracy.AccuracyConfig = field(default_factory=accuracy.AccuracyConfig)
    training: training.TrainingConfig = field(default_factory=training.TrainingConfig)

    @classmethod
    def make(cls, quick: bool, tiny: bool) -> Config:
        cfg = cls(
            accuracy=accuracy.AccuracyConfig.make(quick, tiny), training=training.TrainingConfig.make(quick, tiny)
        )
        if quick:
            cfg.scan_time = (25, 100)
            cfg.scan_batch = (1, 32)
            cfg.scan_units = (16, 64, 256)
            cfg.scan_sparse_units = (64, 256)
            cfg.scan_sparsity = (0.2, 0.5, 0.8)
            cfg.reference_work_limit = 32 * 25 * 64**2
            cfg.fast = Policy(warmup=1, reps=3, min_reps=2, budget_s=2.0)
            cfg.slow = Policy(warmup=1, reps=1, min_reps=1, budget_s=1.0)
            cfg.official = Policy(warmup=1, reps=3, min_reps=1, budget_s=2.0)
            cfg.scan_fast = Policy(warmup=1, reps=3, min_reps=1, budget_s=1.0)
            cfg.scan_slow = Policy(warmup=1, reps=1, min_reps=1, budget_s=1.0)
            cfg.stream = Policy(warmup=10, reps=300, min_reps=30, budget_s=0.5)
            cfg.limit_seconds = 0.5
            # torch.compile's inductor compiles for minutes on a 2-core machine: full runs only
            # (or --peers official,keras-jax,torch.compile)
            cfg.peers = ("official", "keras-jax")
        if tiny:  # test sizes: seconds for everything
            cfg.batch, cfg.time, cfg.units, cfg.motor, cfg.backbone_units = 2, 6, 12, 2, 16
            cfg.sparse_units, cfg.sparse_motor = 24, 4
            cfg.scan_time, cfg.scan_batch, cfg.scan_units = (3, 6), (1, 2), (8, 12)
            cfg.scan_sparse_units = (12, 16)
            cfg.scan_sparsity, cfg.sparsity_units, cfg.sparsity_motor = (0.2, 0.8), 16, 2
            cfg.reference_work_limit = 2 * 6 * 12**2  # exercises the "skipped" path too
            tiny_policy = Policy(warmup=1, reps=2, min_reps=1, budget_s=0.2)
            cfg.fast = cfg.slow = cfg.official = cfg.scan_fast = cfg.scan_slow = tiny_policy
            cfg.stream = Policy(warmup=3, reps=20, min_reps=5, budget_s=0.1)
            cfg.gemm_n, cfg.limit_seconds = 256, 0.05
        return cfg

    def public(self) -> dict:
        """The sizes and policies, for the JSON."""
        out = {}
        for k, v in self.__dict__.items():
            if isinstance(v, (accuracy.AccuracyConfig, training.TrainingConfig)):
                v = v.public()
            out[k] = v.to_dict() if isinstance(v, Policy) else (list(v) if isinstance(v, tuple) else v)
        return out


# ---------------------------------------------------------------------------------------------
# Model specs: one plain dict describes a model for both sides (ours and the official one)
# ---------------------------------------------------------------------------------------------
def wiring(name: str, *args, **kwargs) -> dict:
    return {"wiring": name, "args": list(args), "kwargs": kwargs}


def spec(layer: str, inputs: int, units, **kwargs) -> dict:
    return {"layer": layer, "input_size": inputs, "units": units, "kwargs": kwargs}


def units_label(units) -> str:
    if isinstance(units, dict):
        args = [str(a) for a in units["args"]] + [f"{k}={v}" for k, v in units["kwargs"].items()]
        return f"{units['wiring']}({', '.join(args)})"
    return str(units)


def units_count(units) -> int:
    return int(units["args"][0]) if isinstance(units, dict) else int(units)


def label(s: dict) -> str:
    """A short human name: ``LTC · AutoNCP(64, 8)``, ``CfC(16, 64) · backbone 128×1``."""
    layer, u, kw = s["layer"], s["units"], s.get("kwargs", {})
    if layer.startswith("mlx.nn."):
        return f"{layer}({s['input_size']}, {u})"
    if layer in ("CfC", "CfCCell") and not isinstance(u, dict):
        return (
            f"{layer}({s['input_size']}, {u}) · backbone {kw.get('backbone_units', 128)}×{kw.get('backbone_layers', 1)}"
        )
    return f"{layer} · {units_label(u)}"


def make_units(units):
    if isinstance(units, dict):
        return getattr(ncps.wirings, units["wiring"])(*units["args"], **units["kwargs"])
    return int(units)


def build(s: dict) -> nn.Module:
    """Our model (or an ``mlx.nn`` baseline) from a spec, with fixed random parameters."""
    mx.random.seed(0)
    layer, n_in, kw, units = s["layer"], s["input_size"], dict(s.get("kwargs", {})), make_units(s["units"])
    constructors: dict[str, Callable[[], nn.Module]] = {
        "LTC": lambda: ncps.LTC(n_in, units, **kw),
        "CfC": lambda: ncps.CfC(n_in, units, **kw),
        "LTCCell": lambda: ncps.LTCCell(units, n_in, **kw),
        "CfCCell": lambda: ncps.CfCCell(n_in, units, **kw),
        "WiredCfCCell": lambda: ncps.WiredCfCCell(n_in, units, **kw),
        "mlx.nn.LSTM": lambda: nn.LSTM(n_in, units),
        "mlx.nn.GRU": lambda: nn.GRU(n_in, units),
    }
    model = constructors[layer]()
    mx.eval(model.parameters())
    return model


# ---------------------------------------------------------------------------------------------
# Timed callables
# ---------------------------------------------------------------------------------------------
def mode_context(impl: str):
    """``ncps.kernels.use(impl)`` for our two paths, nothing for the ``mlx.nn`` baselines."""
    return ncps.kernels.use(impl) if impl in IMPLS else contextlib.nullcontext()


def _first(out):
    """The outputs of a sequence layer: ours return ``(output, state)``, nn.LSTM ``(h, c)``."""
    return out[0] if isinstance(out, tuple) else out


def sequence_call(model: nn.Module, x: mx.array, kind: str, impl: str) -> Callable[[], None]:
    """One synchronised forward or forward+backward call of a sequence model."""
    if kind == "forward":

        def call():
            with mode_context(impl):
                mx.eval(model(x))

        return call

    def loss_fn(m, inp):
        return _first(m(inp)).sum()

    value_and_grad = nn.value_and_grad(model, loss_fn)

    def call():
        with mode_context(impl):
            loss, grads = value_and_grad(model, x)
            mx.eval(loss, grads)

    return call


def step_call(cell: nn.Module, batch: int, how: str) -> Callable[[], None]:
    """One synchronised cell step at ``batch`` feeding the state back (streaming inference):
    ``cell(x, h)`` eagerly ("eager"), under ``mx.compile``, or through ``cell.infer`` ("infer")."""
    mx.random.seed(1)
    x = mx.random.normal((batch, cell.input_size))
    h = [mx.random.normal((batch, cell.state_size)) * 0.1]
    mx.eval(x, h[0])
    fn = {"eager": cell, "infer": cell.infer, "mx.compile": mx.compile(lambda a, b: cell(a, b), inputs=cell.state)}[how]

    def call():
        out, h[0] = fn(x, h[0])
        mx.eval(out, h[0])

    return call


def sequence_input(cfg: Config, batch: int, time_steps: int) -> mx.array:
    mx.random.seed(2)
    x = mx.random.normal((batch, time_steps, cfg.inputs))
    mx.eval(x)
    return x


def guarded(fn: Callable[[], dict]) -> dict:
    """Run a measurement; a missing fused kernel is "n/a", anything else an "error" (not fatal)."""
    try:
        return fn()
    except NotImplementedError as exc:
        return failure("n/a", exc)
    except Exception as exc:  # report it in the table and go on with the other entries
        result = failure("error", exc)
        print(result["traceback"], file=sys.stderr)
        return result
    finally:
        gc.collect()


class Bench:
    """Runs the sections; caches identical measurements (same model, shape, pass and path)."""

    def __init__(self, cfg: Config, log: Callable[[str], None]):
        self.cfg = cfg
        self.log = log
        self._cache: dict[str, dict] = {}
        self.official_info: dict = {"available": oracle.missing() is None, "reason": None}
        if oracle.missing() is not None:
            self.official_info["reason"] = f"not installed — {oracle.INSTALL_HINT} ({oracle.missing()})"
        # every peer of the official package: {impl: {"available", "reason", "version"}}
        self.peer_info: dict[str, dict] = {}
        for impl in cfg.peers:
            why = oracle.missing(PEER_IMPLS[impl])
            self.peer_info[impl] = {
                "available": why is None,
                "reason": None if why is None else f"not installed — {oracle.INSTALL_HINT} ({why})",
            }
        self.limits: dict = {}  # filled by section_limits

    # -- measurements of our side -----------------------------------------------------------
    def time_sequence(self, s: dict, batch: int, T: int, kind: str, impl: str, policy: Policy) -> dict:
        key = json.dumps([s, batch, T, kind, impl], sort_keys=True)  # the first policy's result is reused
        if key in self._cache:
            return dict(self._cache[key], cached=True)

        def run():
            model = build(s)
            return measure(sequence_call(model, sequence_input(self.cfg, batch, T), kind, impl), policy)

        t0 = time.perf_counter()
        result = guarded(run)
        self._cache[key] = result
        self.log(f"{label(s)} B={batch} T={T} {kind} {impl}: {describe(result)} [{time.perf_counter() - t0:.1f} s]")
        return result

    def peak_memory(
        self, s: dict, impl: str, batch: int | None = None, T: int | None = None, kind: str = "fwd+bwd"
    ) -> dict:
        cfg = self.cfg
        batch, T = batch or cfg.batch, T or cfg.time

        def run():
            model = build(s)
            call = sequence_call(model, sequence_input(cfg, batch, T), kind, impl)
            gc.collect()
            mx.clear_cache()
            baseline = mx.get_active_memory()
            mx.reset_peak_memory()
            call()
            peak = mx.get_peak_memory()
            return {
                "status": "ok",
                "peak_bytes": int(peak),
                "baseline_bytes": int(baseline),
                "transient_bytes": int(peak - baseline),
            }

        result = guarded(run)
        self.log(f"memory {label(s)} B={batch} T={T} {kind} {impl}: {result.get('peak_bytes', result.get('reason'))}")
        return result

    # -- the official side ------------------------------------------------------------------
    def official(self, jobs: list[dict], impl: str = "official") -> dict[str, dict]:
        """Time jobs on the official package on one framework (``impl``, a key of PEER_IMPLS);
        every job gets an entry (n/a when unavailable)."""
        info = self.official_info if impl == "official" else self.peer_info[impl]
        if impl != "official" and not info["available"]:
            return {j["id"]: {"status": "n/a", "reason": info["reason"]} for j in jobs}
        if not self.official_info["available"]:
            return {j["id"]: {"status": "n/a", "reason": self.official_info["reason"]} for j in jobs}
        self.log(f"official ncps on {impl}: {len(jobs)} jobs in a subprocess ...")
        out = oracle.run_jobs(jobs, threads=self.cfg.threads, peer=PEER_IMPLS[impl])
        if not out["available"]:
            self.log(f"official {impl} failed: {out['reason']}\n{out.get('stderr', '')}")
            return {j["id"]: {"status": "error", "reason": out["reason"]} for j in jobs}
        if impl == "official":
            self.official_info.update(torch_version=out.get("torch_version"), torch_threads=out.get("threads"))
        else:
            info.update(version=out.get("peer_version") or f"torch {out.get('torch_version')} (torch.compile)")
        results = out["results"]
        for j in jobs:
            self.log(f"{impl} {j['id']}: {describe(results.get(j['id'], {}))}")
        return {j["id"]: results.get(j["id"], {"status": "error", "reason": "no result"}) for j in jobs}

    def peers(self, jobs: list[dict]) -> dict[str, dict[str, dict]]:
        """``{impl: {job id: result}}`` for every peer of this run (the official package on torch,
        torch.compile and Keras 3 + JAX)."""
        return {impl: self.official(jobs, impl) for impl in self.cfg.peers}

    # -- sections -----------------------------------------------------------------------------
    def baselines(self) -> list[dict]:
        cfg, rows = self.cfg, []
        for layer in ("mlx.nn.LSTM", "mlx.nn.GRU"):
            s = spec(layer, cfg.inputs, cfg.units)
            for kind in PASSES:
                r = self.time_sequence(s, cfg.batch, cfg.time, kind, "mlx.nn", cfg.fast)
                rows.append({"model": label(s), "spec": s, "pass": kind, "impl": "mlx.nn", **r})
        return rows

    def model_comparison(self, specs: list[dict]) -> list[dict]:
        """fused / reference / official, forward and forward+backward, for each spec."""
        cfg, rows, jobs = self.cfg, [], []
        for s in specs:
            for kind in PASSES:
                for impl in IMPLS:
                    r = self.time_sequence(
                        s, cfg.batch, cfg.time, kind, impl, cfg.fast if impl == "fused" else cfg.slow
                    )
                    rows.append({"model": label(s), "spec": s, "pass": kind, "impl": impl, **r})
                job_id = f"{label(s)}|{kind}"
                jobs.append(
                    {
                        "id": job_id,
                        **s,
                        "batch": cfg.batch,
                        "time": cfg.time,
                        "pass": kind,
                        "policy": cfg.official.to_dict(),
                    }
                )
        for impl, results in self.peers(jobs).items():
            for job_id, r in results.items():
                model, kind = job_id.split("|")
                s = next(s for s in specs if label(s) == model)
                rows.append({"model": model, "spec": s, "pass": kind, "impl": impl, **r})
        for row in rows:  # the work of each timed call, for the fraction of the machine's limit
            if row["impl"] != "mlx.nn":
                row["work"] = limits.work(row["spec"], cfg.batch, cfg.time, row["pass"])
        return rows

    def ltc_specs(self) -> list:
        """The two LTC models of the run: the AutoNCP wiring and a fully connected one."""
        cfg = self.cfg
        kw = {"ode_unfolds": cfg.ode_unfolds}
        return [
            spec("LTC", cfg.inputs, wiring("AutoNCP", cfg.units, cfg.motor), **kw),
            spec("LTC", cfg.inputs, wiring("FullyConnected", cfg.units), **kw),
        ]

    def section_ltc(self) -> dict:
        return {"shape": self.shape(), "results": self.model_comparison(self.ltc_specs()) + self.baselines()}

    def section_cfc(self) -> dict:
        cfg = self.cfg
        specs = [
            spec("CfC", cfg.inputs, cfg.units, backbone_units=cfg.backbone_units, backbone_layers=cfg.backbone_layers),
            spec("CfC", cfg.inputs, wiring("AutoNCP", cfg.units, cfg.motor)),
        ]
        return {"shape": self.shape(), "results": self.model_comparison(specs) + self.baselines()}

    def section_scaling(self) -> dict:
        cfg = self.cfg
        kw = {"ode_unfolds": cfg.ode_unfolds}
        sparse = spec(
            "LTC",
            cfg.inputs,
            wiring("AutoNCP", cfg.sparse_units, cfg.sparse_motor, sparsity_level=cfg.sparse_level),
            **kw,
        )
        dense = spec("LTC", cfg.inputs, wiring("FullyConnected", cfg.sparse_units), **kw)
        sparse_vs_dense = []
        for s in (sparse, dense):
            r = self.time_sequence(s, cfg.batch, cfg.time, "forward", "fused", cfg.fast)
            sparse_vs_dense.append({"model": label(s), "spec": s, "pass": "forward", "impl": "fused", **r})

        headline = spec("LTC", cfg.inputs, wiring("AutoNCP", cfg.units, cfg.motor), **kw)
        points = [("time", T, headline, cfg.batch, T) for T in cfg.scan_time]
        points += [("batch", B, headline, B, cfg.time) for B in cfg.scan_batch]
        points += [
            ("units", N, spec("LTC", cfg.inputs, wiring("FullyConnected", N), **kw), cfg.batch, cfg.time)
            for N in cfg.scan_units
        ]
        points += [
            (
                "sparse units",
                N,
                spec("LTC", cfg.inputs, wiring("AutoNCP", N, cfg.sparse_motor, sparsity_level=cfg.sparse_level), **kw),
                cfg.batch,
                cfg.time,
            )
            for N in cfg.scan_sparse_units
        ]
        points += [
            (
                "sparsity",
                p,
                spec(
                    "LTC", cfg.inputs, wiring("AutoNCP", cfg.sparsity_units, cfg.sparsity_motor, sparsity_level=p), **kw
                ),
                cfg.batch,
                cfg.time,
            )
            for p in cfg.scan_sparsity
        ]
        scan = []
        for sweep, value, s, B, T in points:
            N = units_count(s["units"])
            row = {
                "sweep": sweep,
                "value": value,
                "model": label(s),
                "spec": s,
                "batch": B,
                "time": T,
                "pass": "forward",
            }
            row["fused"] = self.time_sequence(s, B, T, "forward", "fused", cfg.scan_fast)
            row["memory"] = self.peak_memory(s, "fused", B, T, "forward")
            work = B * T * N * N
            if work <= cfg.reference_work_limit:
                row["reference"] = self.time_sequence(s, B, T, "forward", "reference", cfg.scan_slow)
            else:
                row["reference"] = {
                    "status": "skipped",
                    "reason": f"reference skipped where B·T·N² > {cfg.reference_work_limit:.3g} (seconds per call)",
                }
            scan.append(row)
        return {
            "shape": self.shape(),
            "sparse_vs_dense": sparse_vs_dense,
            "target_sparse_over_dense": 0.5,
            "scan": scan,
            "growth": growth(scan),
        }

    def section_memory(self) -> dict:
        cfg = self.cfg
        specs = [
            *self.ltc_specs(),
            spec("CfC", cfg.inputs, cfg.units, backbone_units=cfg.backbone_units, backbone_layers=cfg.backbone_layers),
            spec("CfC", cfg.inputs, wiring("AutoNCP", cfg.units, cfg.motor)),
        ]
        rows = []
        for s in specs:
            for impl in IMPLS:
                rows.append(
                    {"model": label(s), "spec": s, "pass": "fwd+bwd", "impl": impl, **self.peak_memory(s, impl)}
                )
        return {"shape": self.shape(), "target_fused_over_reference": {"LTC": 0.25}, "results": rows}

    def section_streaming(self) -> dict:
        cfg = self.cfg
        ncp = wiring("AutoNCP", cfg.units, cfg.motor)
        specs = [
            spec(
                "CfCCell", cfg.inputs, cfg.units, backbone_units=cfg.backbone_units, backbone_layers=cfg.backbone_layers
            ),
            spec("WiredCfCCell", cfg.inputs, ncp),
            spec("LTCCell", cfg.inputs, ncp, ode_unfolds=cfg.ode_unfolds),
        ]
        rows, jobs = [], []
        for s in specs:
            for impl in ("eager", "mx.compile", "infer"):

                def run(s=s, impl=impl):
                    return measure(step_call(build(s), 1, impl), cfg.stream)

                r = guarded(run)
                self.log(f"streaming {label(s)} {impl}: {describe(r)}")
                rows.append({"model": label(s), "spec": s, "batch": 1, "impl": impl, **r})
            jobs.append({"id": label(s), **s, "batch": 1, "pass": "step", "policy": cfg.stream.to_dict()})
        for impl, results in self.peers(jobs).items():
            for job_id, r in results.items():
                s = next(s for s in specs if label(s) == job_id)
                rows.append({"model": job_id, "spec": s, "batch": 1, "impl": impl, **r})
        return {"batch": 1, "results": rows}

    def section_accuracy(self) -> dict:
        acc = self.cfg.accuracy
        acc.threads = self.cfg.threads
        return accuracy.section(acc, self.log)

    def section_training(self) -> dict:
        cfg = self.cfg.training
        cfg.threads = self.cfg.threads
        cfg.peers = tuple(p for p in self.cfg.peers if p in ("official", "keras-jax"))
        return training.section(cfg, self.log)

    def section_limits(self, previous: dict | None = None) -> dict:
        """The machine's GEMM rate (best of numpy, XLA and our gemm.h tiles) and the LTC synapse
        rate at full SIMD width (``benchmarks/limits.py``). With ``previous`` (the section from the
        start of the run) the probes run again at the end and each rate keeps its best: a limit
        measured while the machine was busy would otherwise understate it."""
        cfg, gemm = self.cfg, {}
        gemm["numpy"] = guarded(
            lambda: {"status": "ok", "gflops": limits.numpy_gemm_gflops(cfg.gemm_n, cfg.limit_seconds)}
        )
        native = guarded(lambda: {"status": "ok", **limits.native_limits(cfg.threads, cfg.limit_seconds)})
        gemm["ncps gemm.h"] = (
            {"status": "ok", "gflops": native["gemm_gflops"], "n": native["gemm_n"]}
            if native["status"] == "ok"
            else native
        )
        if "keras-jax" in cfg.peers:
            policy = Policy(warmup=1, reps=20, min_reps=3, budget_s=cfg.limit_seconds)
            r = self.official(
                [{"id": "gemm", "pass": "gemm", "n": cfg.gemm_n, "policy": policy.to_dict()}], "keras-jax"
            )
            r = r["gemm"]
            gemm["jax (XLA)"] = (
                {"status": "ok", "gflops": 2.0 * cfg.gemm_n**3 / r["min_s"] * 1e-9} if r.get("status") == "ok" else r
            )
        for name, r in gemm.items():
            self.log(f"limits: GEMM {name}: {r.get('gflops', r.get('reason'))}")
        rates = {name: r["gflops"] for name, r in gemm.items() if r.get("status") == "ok"}
        best = max(rates, key=rates.get) if rates else None
        synapse = native.get("synapse_evals_per_s") if native["status"] == "ok" else None
        self.log(f"limits: synapse rate {synapse}")
        if previous:  # keep the best of the start and the end of the run, probe by probe
            for name, r in previous.get("gemm", {}).items():
                if r.get("status") == "ok" and r["gflops"] > rates.get(name, 0.0):
                    gemm[name], rates[name] = r, r["gflops"]
            best = max(rates, key=rates.get) if rates else None
            synapse = max(filter(None, (synapse, previous.get("synapse_evals_per_s"))), default=None)
        self.limits = {
            "gemm_gflops": rates.get(best),
            "gemm_source": best,
            "synapse_evals_per_s": synapse,
            "simd_lanes": native.get("simd_lanes") or self.limits.get("simd_lanes"),
        }
        return {"gemm_n": cfg.gemm_n, "threads": cfg.threads, "gemm": gemm, "native": native, **self.limits}

    def section_gpu(self) -> dict:
        from benchmarks import gpu

        return gpu.section(self, sys.modules[__name__])

    def shape(self) -> dict:
        c = self.cfg
        return {"batch": c.batch, "time": c.time, "inputs": c.inputs, "units": c.units, "ode_unfolds": c.ode_unfolds}


def growth(scan: list[dict]) -> dict:
    """Per sweep over a size (time, batch, units, sparse units): the exponent k of a least-squares
    fit ``y ∝ value^k`` in log-log, for the fused forward's time (min) and peak memory."""
    import math

    out = {}
    for sweep in ("time", "batch", "units", "sparse units"):
        pts = [p for p in scan if p["sweep"] == sweep]
        fits = {}
        for key, get in (
            ("time", lambda p: p["fused"].get("min_s") if p["fused"].get("status") == "ok" else None),
            ("memory", lambda p: (p.get("memory") or {}).get("peak_bytes")),
        ):
            xy = [(math.log(p["value"]), math.log(get(p))) for p in pts if get(p)]
            if len(xy) >= 2:
                mx_, my = sum(x for x, _ in xy) / len(xy), sum(y for _, y in xy) / len(xy)
                sxx = sum((x - mx_) ** 2 for x, _ in xy)
                fits[key] = sum((x - mx_) * (y - my) for x, y in xy) / sxx if sxx > 0 else None
        if fits:
            out[sweep] = fits
    return out


def describe(r: dict) -> str:
    if r.get("status") == "ok" and "median_s" in r:
        return f"median {report.fmt_time(r['median_s'])}, min {report.fmt_time(r['min_s'])}, n={r['reps']}"
    return f"{r.get('status')}: {r.get('reason')}"


# ---------------------------------------------------------------------------------------------
# Machine information
# ---------------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        with contextlib.suppress(Exception):
            return subprocess.check_output(["sysctl", "-n", "machdep.cpu.brand_string"], text=True).strip()
    return platform.processor() or platform.machine()


def memory_total_gib() -> float | None:
    with contextlib.suppress(Exception):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    return None


def git_revision() -> str | None:
    with contextlib.suppress(Exception):
        rev = subprocess.check_output(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True, stderr=subprocess.DEVNULL
        ).strip()
        dirty = subprocess.call(["git", "diff", "--quiet", "HEAD"], cwd=REPO, stderr=subprocess.DEVNULL) != 0
        return rev + ("+dirty" if dirty else "")
    return None


def load_average() -> list | None:
    with contextlib.suppress(OSError, AttributeError):
        return [round(v, 2) for v in os.getloadavg()]
    return None


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info() -> dict:
    available = available_cores()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_available": available,
        "memory_gib": memory_total_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "mlx": mx.__version__,
        "mlx_device": str(mx.default_device()),
        "ncps": getattr(ncps, "__version__", None),
        "ncps_git": git_revision(),
        "kernels": ncps.kernels.info(),
        "torch": oracle.torch_version(),
        "official_ncps": oracle.official_version(),
        "oracle_dir": str(oracle.oracle_dir()),
    }


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------
def parse_args(argv: list | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n", 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="few repetitions and scaling points (~1-2 min)")
    p.add_argument(
        "--section",
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)",
    )
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"), help="output directory")
    p.add_argument("--name", default=None, help="file name stem (default: full, quick or tiny)")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="threads of the official torch run (default: the available cores)",
    )
    p.add_argument(
        "--peers",
        default=None,
        help=f"comma-separated subset of the official package's frameworks {','.join(PEER_IMPLS)} "
        "(official = ncps.torch eager; default: all, without torch.compile in --quick)",
    )
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # test sizes
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.section.split(",") if s.strip()]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown or not args.sections:
        p.error(f"--section takes a comma-separated subset of {','.join(SECTIONS)}; got {args.section!r}")
    args.peers = None if args.peers is None else tuple(s.strip() for s in args.peers.split(",") if s.strip())
    if args.peers is not None and any(s not in PEER_IMPLS for s in args.peers):
        p.error(f"--peers takes a comma-separated subset of {','.join(PEER_IMPLS)}; got {','.join(args.peers)!r}")
    if args.tiny or os.environ.get("NCPS_BENCH_TINY"):
        args.tiny = True
    if args.name is None:
        args.name = "tiny" if args.tiny else ("quick" if args.quick else "full")
        if args.sections in (["accuracy"], ["training"]):  # alone: never replace the speed results
            args.name = args.sections[0] + ("" if args.name == "full" else f"-{args.name}")
    return args


def main(argv: list | None = None) -> int:
    args = parse_args(argv)
    cfg = Config.make(args.quick, args.tiny)
    cfg.threads = args.torch_threads or available_cores()
    if args.peers is not None:
        cfg.peers = tuple(p for p in PEER_IMPLS if p in args.peers)  # in the order of PEER_IMPLS
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    machine = machine_info()
    load_start = load_average()
    if load_start and load_start[0] > 0.5 * (machine["cores"] or 1):
        log(
            f"WARNING: the machine is busy (load average {load_start[0]}): timings will be noisy, and torch's "
            "multi-threaded runs can be many times slower than on an idle machine"
        )
    bench = Bench(cfg, log)
    sections: dict[str, Any] = {}
    for name in SECTIONS:  # fixed order, whatever the order given
        if name in args.sections:
            log(f"== section {name}")
            sections[name] = getattr(bench, f"section_{name}")()

    if "limits" in sections and len(sections) > 1:
        log("== section limits (again, keeping the best of start and end)")
        sections["limits"] = bench.section_limits(previous=sections["limits"])
    machine["load_average_start"] = load_start
    machine["load_average_end"] = load_average()
    results = {
        "name": args.name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "mode": {"quick": args.quick, "tiny": args.tiny, "sections": [s for s in SECTIONS if s in args.sections]},
        "config": cfg.public(),
        "machine": machine,
        "official": bench.official_info,
        "peers": bench.peer_info,
        "limits": bench.limits,
        "sections": sections,
        "duration_s": round(time.perf_counter() - started, 1),
    }
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = report.markdown(results)
    paths = {ext: out_dir / f"{args.name}.{ext}" for ext in ("json", "md", "png")}
    results["files"] = {k: str(v) for k, v in paths.items()}
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str))
    tmp.replace(paths["json"])
    paths["md"].write_text(markdown)
    try:
        report.chart(results, paths["png"])
    except Exception as exc:  # the numbers matter more than the picture
        log(f"chart failed: {type(exc).__name__}: {exc}")
    print(markdown)
    log(f"wrote {paths['json']}, {paths['md']}, {paths['png']} in {results['duration_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
