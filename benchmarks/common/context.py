"""What a section gets (:class:`Context`) and what it gives (:class:`Section`).

Every section module exposes the same small interface: ``compute(ctx) -> dict`` (the section's
entry of the results, ``results["sections"][name]``), ``markdown(section, results) -> lines`` and
``panels(section, results) -> [panel]``; the renderers get the whole results too, for the tables
that read more than one section. :mod:`benchmarks.report` lists the sections and assembles them.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import mlx.core as mx

from benchmarks import oracle
from benchmarks.common.chart import Panel
from benchmarks.common.config import RunConfig
from benchmarks.common.fmt import fmt_time
from benchmarks.common.models import build, label, sequence_call, sequence_input
from benchmarks.timing import Policy, guarded, measure

# The official package on each framework: impl name in the results -> oracle.run_jobs(peer=...)
PEER_IMPLS = {"official": "torch", "torch.compile": "torch.compile", "keras-jax": "keras-jax"}


@dataclass(frozen=True)
class Section:
    """One section of the report; ``name`` is its ``--section`` name and its key in the results."""

    name: str
    compute: Callable[..., dict]  # (ctx: Context) -> the section's results
    markdown: Callable[[dict, dict], list[str]]  # (section, results) -> markdown lines
    panels: Callable[[dict, dict], list[Panel]]  # (section, results) -> chart panels


def describe(r: dict) -> str:
    """A timing result in a log line."""
    if r.get("status") == "ok" and "median_s" in r:
        return f"median {fmt_time(r['median_s'])}, min {fmt_time(r['min_s'])}, n={r['reps']}"
    return f"{r.get('status')}: {r.get('reason')}"


def _not_installed(why: str) -> str:
    return f"not installed — {oracle.INSTALL_HINT} ({why})"


class Context:
    """One run's configuration and log, the official package's runner with what it learnt of each
    peer (for the results' ``official`` and ``peers``), the machine's limits once the limits
    section measured them, and a cache of identical measurements (same model, shape, pass and
    path: the first policy's result is reused)."""

    def __init__(self, cfg: RunConfig, log: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.log = log
        self._cache: dict[str, dict] = {}
        why = oracle.missing()
        self.official_info: dict = {"available": why is None, "reason": None if why is None else _not_installed(why)}
        # every peer of the official package: {impl: {"available", "reason", "version"}}
        self.peer_info: dict[str, dict] = {}
        for impl in cfg.peers:
            why = oracle.missing(PEER_IMPLS[impl])
            self.peer_info[impl] = {"available": why is None, "reason": None if why is None else _not_installed(why)}
        self.limits: dict = {}  # filled by the limits section

    # -- measurements of our side -----------------------------------------------------------
    def time_sequence(self, s: dict, batch: int, T: int, kind: str, impl: str, policy: Policy) -> dict:
        """The timing of one sequence call of the model ``s`` (cached)."""
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
        """Peak MLX memory of one call: ``mx.clear_cache()``, ``mx.reset_peak_memory()``, the call,
        ``mx.get_peak_memory()`` (the peak includes what was already allocated)."""
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
