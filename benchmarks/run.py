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

Sections (all by default; ``--section`` takes a comma-separated subset of these names)
--------------------------------------------------------------------------------------
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
``threads``
    Thread scaling: the fused forward and forward+backward of the dense CfC, the wired CfC and the
    LTC on AutoNCP at batch 32 and 256 with 1 and 2 threads, each count in its own process pinned to
    as many CPUs, beside the official package (Keras 3 + JAX in ``--quick``, also ``ncps.torch`` in
    full runs) at the same counts (``benchmarks/threads.py``).
``memory``
    Peak MLX memory of one forward+backward, fused vs reference (target for LTC: fused ≤ ¼):
    ``ncps.kernels.clear_cache()`` (MLX's cache and the kernels' idle workspace pool),
    ``mx.reset_peak_memory()``, the call, ``mx.get_peak_memory()`` (the peak includes what was
    already allocated: parameters and input).
``precision``
    bfloat16 and float16 against float32 on the fused path (``model.set_dtype``, input of the same
    dtype): forward and forward+backward of CfC(16, 64), CfC(16, AutoNCP(64, 8)) and
    LTC(16, AutoNCP(64, 8)), the dtypes in interleaved rounds, and the peak memory of one
    forward+backward per dtype (``benchmarks/precision.py``). The fused kernels read and write the
    half arrays themselves and compute in float32.
``streaming``
    Latency of one cell step at batch 1 from a given state, feeding the new state back:
    ``out, h = cell(x, h); mx.eval(out, h)`` (also under ``mx.compile``, and ``cell.infer``, which
    computes the step immediately on the calling thread) against the official
    cell's step under ``torch.no_grad()``, for CfCCell(16, 64), WiredCfCCell(16, AutoNCP(64, 8))
    and LTCCell(AutoNCP(64, 8), 16).
``deploy``
    One control step at batch 1 of the ``ncps.export`` forms (generated C compiled with gcc -O2,
    the one-step ONNX graph in onnxruntime, an imported ``.mlxfn``) beside ``cell.infer`` and the
    official cell's step, for the NCP paper's lane-keeping LTC and a wired CfC on AutoNCP(64, 8).
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
- Every comparison with a peer (the ltc, cfc and streaming sections) runs interleaved: ours, peer,
  ours, peer ... over ``RunConfig.rounds`` rounds (5 in full runs, 3 in ``--quick``), each side's
  repetitions split over the rounds, each peer in one process kept between rounds
  (``oracle.PeerSession``: no re-import, no recompilation). A ratio is the median of the rounds'
  ratios of medians, shown with its range over the rounds, so a load that comes and goes weighs on
  both sides and shows as spread instead of moving the ratio unseen.
- Timings on a shared or loaded machine are noisy: the load average at start and end is recorded
  in the JSON, and the table carries a warning if the machine was busy. Multi-threaded torch
  suffers most (its OpenMP threads wait for each other at every small op): on this 2-core VM
  under a load of ~5, the official LTC forward+backward took 15-80 s with 2 threads against
  ~0.5 s on an idle machine. Publish numbers from an idle machine.
- ``--tiny`` (hidden, for tests) shrinks every size so that a run takes seconds.

Layout
------
This file is the command line only. Each section is a module of its own with the same interface
(``compute``, ``markdown``, ``panels``; ``benchmarks/common/context.py``), the shared helpers are in
``benchmarks/common/``, and ``benchmarks/report.py`` lists the sections and assembles the report.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: the package `benchmarks`

from benchmarks import accuracy, limits, report, training
from benchmarks.common.config import RunConfig
from benchmarks.common.context import PEER_IMPLS, Context
from benchmarks.common.machine import available_cores, load_average, machine_info
from benchmarks.common.paths import RESULTS

SECTIONS = report.NAMES


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
    p.add_argument("--out", default=str(RESULTS), help="output directory")
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


def make_config(args: argparse.Namespace) -> RunConfig:
    """The run's configuration from the command line (sizes, threads, peers)."""
    cfg = RunConfig.make(args.quick, args.tiny)
    cfg.accuracy = accuracy.AccuracyConfig.make(args.quick, args.tiny)
    cfg.training = training.TrainingConfig.make(args.quick, args.tiny)
    cfg.threads = args.torch_threads or available_cores()
    if args.peers is not None:
        cfg.peers = tuple(p for p in PEER_IMPLS if p in args.peers)  # in the order of PEER_IMPLS
    return cfg


def write(results: dict, out: str, name: str, log: Callable[[str], None]) -> str:
    """``<out>/<name>.{json,md,png}``; returns the markdown."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = report.markdown(results)
    paths = {ext: out_dir / f"{name}.{ext}" for ext in ("json", "md", "png")}
    results["files"] = {k: str(v) for k, v in paths.items()}
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str))
    tmp.replace(paths["json"])
    paths["md"].write_text(markdown)
    try:
        report.chart(results, paths["png"])
    except Exception as exc:  # the numbers matter more than the picture
        log(f"chart failed: {type(exc).__name__}: {exc}")
    return markdown


def main(argv: list | None = None) -> int:
    args = parse_args(argv)
    cfg = make_config(args)
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
    ctx = Context(cfg, log)
    sections: dict[str, Any] = {}
    for section in report.SECTIONS:  # fixed order, whatever the order given
        if section.name in args.sections:
            log(f"== section {section.name}")
            sections[section.name] = section.compute(ctx)
    if "limits" in sections and len(sections) > 1:
        log("== section limits (again, keeping the best of start and end)")
        sections["limits"] = limits.compute(ctx, previous=sections["limits"])
    machine["load_average_start"] = load_start
    machine["load_average_end"] = load_average()
    results = {
        "name": args.name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "mode": {"quick": args.quick, "tiny": args.tiny, "sections": [s for s in SECTIONS if s in args.sections]},
        "config": cfg.public(),
        "machine": machine,
        "official": ctx.official_info,
        "peers": ctx.peer_info,
        "limits": ctx.limits,
        "sections": sections,
        "duration_s": round(time.perf_counter() - started, 1),
    }
    markdown = write(results, args.out, args.name, log)
    print(markdown)
    files = results["files"]
    log(f"wrote {files['json']}, {files['md']}, {files['png']} in {results['duration_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
