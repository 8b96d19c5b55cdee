"""The ``threads`` section: thread scaling of the fused kernels, 1 against 2 (up to the available
cores) threads, at batch 32 and 256 (``RunConfig.thread_batches``), forward and forward+backward,
for the dense CfC, the wired CfC and the LTC on AutoNCP; and the official package on the peers of
``RunConfig.thread_peers`` at the same thread counts.

Our kernels read their thread count once per process (``OMP_NUM_THREADS``, csrc/common/
thread_pool.cpp), so every thread count runs in its own process: this module is also the worker
(``python -m benchmarks.threads jobs.json out.json``). Each process of ours and of a peer is
pinned to that many CPUs (:func:`benchmarks.oracle.pinned`), which also bounds XLA, whose CPU
client has no thread setting; torch gets ``torch.set_num_threads``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import oracle
from benchmarks.common.chart import Panel, bars, scaled, short
from benchmarks.common.context import PEER_IMPLS, Context, Section, describe
from benchmarks.common.fmt import IMPL_NAMES, Notes, cell, fmt_ratio, median, ratio, table
from benchmarks.common.machine import available_cores
from benchmarks.common.models import PASSES, cfc_specs, label, ltc_specs
from benchmarks.common.paths import REPO


def thread_counts() -> list[int]:
    """1 and 2 threads, as far as the cores this process may use allow."""
    return [n for n in (1, 2) if n <= available_cores()]


def jobs_of(ctx: Context) -> list[dict]:
    """One job per model, batch and pass (the specs of the ltc and cfc sections' headline models)."""
    cfg = ctx.cfg
    specs = [*cfc_specs(cfg), ltc_specs(cfg)[0]]
    return [
        {"id": f"{label(s)}|{B}|{kind}", **s, "batch": B, "time": cfg.time, "pass": kind}
        for s in specs
        for B in cfg.thread_batches
        for kind in PASSES
    ]


def run_ours(jobs: list[dict], threads: int, policy: dict, timeout: float = 1800) -> dict:
    """``{job id: result}`` of our fused kernels in a process with ``threads`` threads on as many CPUs."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    with tempfile.TemporaryDirectory() as tmp:
        jobs_path, out_path = Path(tmp) / "jobs.json", Path(tmp) / "out.json"
        jobs_path.write_text(json.dumps({"jobs": jobs, "policy": policy}))
        cmd = [sys.executable, "-m", "benchmarks.threads", str(jobs_path), str(out_path)]
        try:
            proc = subprocess.run(
                cmd,
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                preexec_fn=oracle.pinned(threads),
            )
        except subprocess.TimeoutExpired:
            return {j["id"]: {"status": "error", "reason": f"timed out after {timeout:.0f} s"} for j in jobs}
        if proc.returncode != 0 or not out_path.is_file():
            tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            return {j["id"]: {"status": "error", "reason": f"worker failed: {tail[0]}"} for j in jobs}
        return json.loads(out_path.read_text())


def compute(ctx: Context) -> dict:
    cfg, jobs = ctx.cfg, jobs_of(ctx)
    policy = cfg.scan_slow.to_dict()
    rows = []
    for n in thread_counts():
        ctx.log(f"threads: ours with {n} thread(s), {len(jobs)} jobs in a subprocess ...")
        results = {"fused": run_ours(jobs, n, policy)}
        for impl in (p for p in cfg.thread_peers if p in cfg.peers):
            info = ctx.official_info if impl == "official" else ctx.peer_info.get(impl, {})
            if not (info.get("available") and ctx.official_info["available"]):
                why = info.get("reason") or ctx.official_info["reason"] or f"{impl} is not a peer of this run"
                results[impl] = {j["id"]: {"status": "n/a", "reason": why} for j in jobs}
                continue
            ctx.log(f"threads: official {impl} with {n} thread(s) ...")
            peer_jobs = [{**j, "policy": policy} for j in jobs]
            out = oracle.run_jobs(peer_jobs, threads=n, peer=PEER_IMPLS[impl], cpus=n)
            why = out.get("reason") or "no result"
            results[impl] = {j["id"]: out["results"].get(j["id"], {"status": "error", "reason": why}) for j in jobs}
        for impl, by_id in results.items():
            for j in jobs:
                r = by_id.get(j["id"], {"status": "error", "reason": "no result"})
                ctx.log(f"threads {n} {impl} {j['id']}: {describe(r)}")
                model, batch, kind = j["id"].split("|")
                rows.append({"model": model, "batch": int(batch), "pass": kind, "impl": impl, "threads": n, **r})
    return {"time": cfg.time, "threads": thread_counts(), "results": rows}


def speedups(rows: list[dict]) -> list[dict]:
    """Per model, batch, pass and implementation: the median with 1 thread ÷ with 2 threads."""
    idx = {(r["model"], r["batch"], r["pass"], r["impl"], r["threads"]): r for r in rows}
    out = []
    for model, batch, kind, impl in dict.fromkeys((r["model"], r["batch"], r["pass"], r["impl"]) for r in rows):
        one, two = idx.get((model, batch, kind, impl, 1)), idx.get((model, batch, kind, impl, 2))
        s = ratio(median(one), median(two))
        out.append({"model": model, "batch": batch, "pass": kind, "impl": impl, "speedup": s})
    return out


def markdown(section: dict, results: dict) -> list[str]:
    rows, notes = section["results"], Notes()
    idx = {(r["model"], r["batch"], r["pass"], r["impl"], r["threads"]): r for r in rows}
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    threads = section.get("threads") or [1, 2]
    gain = {(s["model"], s["batch"], s["pass"], s["impl"]): s["speedup"] for s in speedups(rows)}
    body = []
    for model, batch, kind in dict.fromkeys((r["model"], r["batch"], r["pass"]) for r in rows):
        cells = [model, str(batch), kind]
        for impl in impls:
            cells += [cell(idx.get((model, batch, kind, impl, n)), notes, impl) for n in threads]
            cells.append(fmt_ratio(gain.get((model, batch, kind, impl))))
        for impl in impls[1:]:  # a peer ÷ ours at each thread count
            cells += [
                fmt_ratio(
                    ratio(
                        median(idx.get((model, batch, kind, impl, n))),
                        median(idx.get((model, batch, kind, "fused", n))),
                    )
                )
                for n in threads
            ]
        body.append(cells)
    header = ["model", "batch", "pass"]
    for impl in impls:
        name = IMPL_NAMES.get(impl, impl)
        header += [f"{name}, {n} thread{'s' if n > 1 else ''}" for n in threads] + [f"{name}: 1 ÷ 2 threads"]
    for impl in impls[1:]:
        header += [f"{IMPL_NAMES.get(impl, impl)} ÷ fused, {n} thread{'s' if n > 1 else ''}" for n in threads]
    lines = [
        "### Thread scaling",
        "",
        f"T = {section.get('time')}; each thread count in its own process pinned to as many CPUs "
        "(our kernels read `OMP_NUM_THREADS` once per process; torch gets `torch.set_num_threads`, XLA the "
        "pinning). `1 ÷ 2 threads` is the speed-up of the second thread (2× at best).",
        "",
    ]
    if len(threads) < 2:
        lines += ["Only one CPU is available to this process: no scaling to report.", ""]
    return notes.under(lines + table(header, body))


def panels(section: dict, results: dict) -> list[Panel]:
    def scaling(ax):
        gains = [s for s in speedups(section["results"]) if s["pass"] == "forward"]
        groups = list(dict.fromkeys(f"{short(s['model'])} B{s['batch']}" for s in gains))
        series: dict[str, list] = {}
        for s in gains:
            series.setdefault(s["impl"], [None] * len(groups))[groups.index(f"{short(s['model'])} B{s['batch']}")] = (
                scaled(s["speedup"], 1.0)
            )
        bars(ax, "thread scaling: forward, 1 ÷ 2 threads", groups, series, "speed-up of the 2nd thread", log=False)

    return [scaling]


SECTION = Section("threads", compute, markdown, panels)


def _worker(jobs_path: str, out_path: str) -> None:
    """Time our fused kernels on the jobs (this process's thread count is its ``OMP_NUM_THREADS``)."""
    from benchmarks.common.config import RunConfig
    from benchmarks.common.models import build, sequence_call, sequence_input
    from benchmarks.timing import Policy, guarded, measure

    spec = json.loads(Path(jobs_path).read_text())
    policy, cfg, results = Policy.from_dict(spec["policy"]), RunConfig(), {}
    for job in spec["jobs"]:
        cfg.inputs = job["input_size"]
        results[job["id"]] = guarded(
            lambda job=job: measure(
                sequence_call(build(job), sequence_input(cfg, job["batch"], job["time"]), job["pass"], "fused"), policy
            )
        )
        print(f"[threads] {job['id']}: {describe(results[job['id']])}", file=sys.stderr, flush=True)
    Path(out_path).write_text(json.dumps(results))


if __name__ == "__main__":
    _worker(sys.argv[1], sys.argv[2])
