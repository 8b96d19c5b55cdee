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

import ncps
from benchmarks import oracle
from benchmarks.common.chart import Panel
from benchmarks.common.config import RunConfig
from benchmarks.common.fmt import fmt_time
from benchmarks.common.models import build, label, sequence_call, sequence_input
from benchmarks.timing import Policy, guarded, measure, merge_rounds, per_round

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
    @staticmethod
    def _key(s: dict, batch: int, T: int, kind: str, impl: str) -> str:
        return json.dumps([s, batch, T, kind, impl], sort_keys=True)

    def remember(self, s: dict, batch: int, T: int, kind: str, impl: str, result: dict) -> None:
        """Keep a measurement made elsewhere (the interleaved rounds) for :meth:`time_sequence`."""
        self._cache.setdefault(self._key(s, batch, T, kind, impl), result)

    def time_sequence(self, s: dict, batch: int, T: int, kind: str, impl: str, policy: Policy) -> dict:
        """The timing of one sequence call of the model ``s`` (cached)."""
        key = self._key(s, batch, T, kind, impl)  # the first policy's result is reused
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
        self,
        s: dict,
        impl: str,
        batch: int | None = None,
        T: int | None = None,
        kind: str = "fwd+bwd",
        dtype: str | None = None,
    ) -> dict:
        """Peak MLX memory of one call: ``ncps.kernels.clear_cache()`` (MLX's cache and the fused
        kernels' idle workspace pool), ``mx.reset_peak_memory()``, the call,
        ``mx.get_peak_memory()`` (the peak includes what was already allocated). ``dtype``: the
        model's parameters and the input in that ``mlx.core`` dtype (float32 when None)."""
        cfg = self.cfg
        batch, T = batch or cfg.batch, T or cfg.time

        def run():
            model = build(s, dtype)
            call = sequence_call(model, sequence_input(cfg, batch, T, dtype), kind, impl)
            gc.collect()
            ncps.kernels.clear_cache()  # MLX's cache and the kernels' idle workspaces: the call's own count
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
        what = f"{label(s)} B={batch} T={T} {kind} {impl}" + (f" {dtype}" if dtype else "")
        self.log(f"memory {what}: {result.get('peak_bytes', result.get('reason'))}")
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
        self._note_peer(impl, out)
        results = out["results"]
        for j in jobs:
            self.log(f"{impl} {j['id']}: {describe(results.get(j['id'], {}))}")
        return {j["id"]: results.get(j["id"], {"status": "error", "reason": "no result"}) for j in jobs}

    def interleaved(
        self, ours: dict[str, Callable[[], None]], jobs: list[dict], policy: Policy, peer_policy: Policy
    ) -> tuple[dict[str, dict], dict[str, dict[str, dict]]]:
        """Our calls and every peer's jobs measured in alternating rounds: ``cfg.rounds`` times
        (ours, then each peer in turn), each side under its policy split over the rounds
        (:func:`benchmarks.timing.per_round`). A load that comes and goes then weighs on both
        sides of a ratio, and the rounds give its spread (:func:`benchmarks.timing.merge_rounds`).

        ``ours``: ``{key: call}`` (each call synchronised); ``jobs``: the peers' jobs (their
        ``policy`` is replaced by each round's). Returns ``({key: result}, {impl: {job id:
        result}})``; every result has ``rounds`` when it ran."""
        rounds = max(1, self.cfg.rounds)
        mine, theirs = per_round(policy, rounds).to_dict(), per_round(peer_policy, rounds)
        ids = [j["id"] for j in jobs]
        ours_rounds: dict[str, list[dict]] = {k: [] for k in ours}
        peer_rounds: dict[str, dict[str, list[dict]]] = {impl: {i: [] for i in ids} for impl in self.cfg.peers}
        sessions: dict[str, oracle.PeerSession | dict] = {}
        for impl in self.cfg.peers:
            info = self.official_info if impl == "official" else self.peer_info[impl]
            if not ids:
                sessions[impl] = {}
            elif not (info["available"] and self.official_info["available"]):
                sessions[impl] = {"status": "n/a", "reason": info["reason"] or self.official_info["reason"]}
            else:
                self.log(f"official ncps on {impl}: {len(jobs)} jobs in a subprocess, {rounds} rounds ...")
                sessions[impl] = oracle.PeerSession(jobs, threads=self.cfg.threads, peer=PEER_IMPLS[impl])
                # Wait until it has imported its framework: that start-up (seconds of CPU) must not
                # overlap our first round.
                sessions[impl].measure([], theirs.to_dict())
        try:
            for r in range(rounds):
                for key, call in ours.items():
                    ours_rounds[key].append(guarded(lambda call=call: measure(call, Policy.from_dict(mine))))
                for impl, session in sessions.items():
                    if not isinstance(session, oracle.PeerSession):
                        for i in ids:
                            peer_rounds[impl][i].append(session)
                        continue
                    out = session.measure(ids, theirs.to_dict())
                    self._note_peer(impl, out)
                    for i in ids:
                        fallback = {"status": "error", "reason": out.get("reason") or "no result"}
                        peer_rounds[impl][i].append(out["results"].get(i, fallback))
                self.log(f"round {r + 1}/{rounds} done")
        finally:
            for session in sessions.values():
                if isinstance(session, oracle.PeerSession):
                    session.close()
        merged_ours = {k: merge_rounds(v) for k, v in ours_rounds.items()}
        merged_peers = {impl: {i: merge_rounds(v) for i, v in by_id.items()} for impl, by_id in peer_rounds.items()}
        for impl, by_id in merged_peers.items():
            for i, res in by_id.items():
                self.log(f"{impl} {i}: {describe(res)}")
        return merged_ours, merged_peers

    def _note_peer(self, impl: str, out: dict) -> None:
        """What a peer's run says of itself (versions, threads) into ``official_info`` / ``peer_info``."""
        if not out.get("available"):
            self.log(f"official {impl} failed: {out.get('reason')}\n{out.get('stderr', '')}")
            return
        if impl == "official":
            self.official_info.update(torch_version=out.get("torch_version"), torch_threads=out.get("threads"))
        else:
            version = out.get("peer_version") or f"torch {out.get('torch_version')} (torch.compile)"
            self.peer_info[impl].update(version=version)

    def peers(self, jobs: list[dict]) -> dict[str, dict[str, dict]]:
        """``{impl: {job id: result}}`` for every peer of this run (the official package on torch,
        torch.compile and Keras 3 + JAX)."""
        return {impl: self.official(jobs, impl) for impl in self.cfg.peers}
