"""Wall-clock timing shared by both sides of the benchmark (pure Python, no mlx, no torch).

The same :func:`measure` runs in the main process (ncps on MLX) and in the subprocess that runs
the official ``ncps.torch`` package (``official_torch.py``), so every number in the report comes
from one methodology:

1. ``warmup`` untimed calls (allocator warm-up, lazy initialisation, kernel caches);
2. the number of timed calls is ``reps``, capped so that the timed calls fit in ``budget_s``
   (estimated from the last warm-up call) but never fewer than ``min_reps``: slow entries (the
   pure-MLX reference LTC takes seconds per call) get fewer repetitions than fast ones;
3. each call is timed on its own with ``time.perf_counter`` with the garbage collector off;
4. the report uses the median (robust to the odd slow call) and also gives the minimum.

The callable must synchronise itself: ``mx.eval(...)`` on everything it produced for MLX (MLX is
lazy, so without it nothing would be computed), a completed ``.backward()`` or a tensor result for
torch on the CPU (torch's CPU ops are synchronous).
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Policy:
    """How often to call a function: untimed warm-up calls, then timed repetitions."""

    warmup: int = 1
    reps: int = 5
    min_reps: int = 1
    budget_s: float = 5.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Policy:
        return cls(**{k: d[k] for k in ("warmup", "reps", "min_reps", "budget_s") if k in d})


def summarize(times: list[float]) -> dict:
    """Median, minimum and count of a list of timings (seconds)."""
    return {"median_s": statistics.median(times), "min_s": min(times), "reps": len(times), "times_s": list(times)}


def measure(fn: Callable[[], Any], policy: Policy) -> dict:
    """Time ``fn`` under ``policy``; returns ``{"status": "ok", median_s, min_s, reps, times_s, ...}``.

    Exceptions propagate: the caller decides whether a failure is "n/a" (no fused kernel) or an
    error.
    """
    warm_times = []
    for _ in range(max(0, policy.warmup)):
        t0 = time.perf_counter()
        fn()
        warm_times.append(time.perf_counter() - t0)
    reps = max(1, policy.reps)
    if warm_times:
        affordable = int(policy.budget_s / max(warm_times[-1], 1e-9))
        reps = max(policy.min_reps, min(reps, affordable), 1)
    times = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    finally:
        if gc_was_enabled:
            gc.enable()
    return {"status": "ok", **summarize(times), "warmup": len(warm_times), "warmup_s": warm_times}


def failure(status: str, exc: BaseException) -> dict:
    """A result entry for a measurement that could not run (``status``: "n/a" or "error")."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    out = {"status": status, "reason": reason}
    if status == "error":
        out["traceback"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-3000:]
    return out


def guarded(fn: Callable[[], dict]) -> dict:
    """Run a measurement or a training run: a missing fused kernel (NotImplementedError) becomes
    an "n/a" entry, any other exception an "error" entry with its traceback, also printed on
    stderr (not fatal: the table reports it and the run goes on); the garbage collector runs
    after each, so that one entry's leftovers do not weigh on the next."""
    try:
        return fn()
    except NotImplementedError as exc:
        return failure("n/a", exc)
    except Exception as exc:
        result = failure("error", exc)
        print(result["traceback"], file=sys.stderr)
        return result
    finally:
        gc.collect()


def run_each(jobs: list, fn: Callable[[dict], dict], tag: str, describe: Callable[[dict], Any]) -> dict:
    """``{job id: fn(job)}`` for the jobs of a subprocess script; a job that raises becomes a
    failure entry (one broken job must not lose the others). Each result is logged on stderr as
    ``[tag] id: describe(result)`` (the reason of a failure)."""
    results = {}
    for job in jobs:
        try:
            results[job["id"]] = fn(job)
        except Exception as exc:
            results[job["id"]] = failure("error", exc)
        r = results[job["id"]]
        print(
            f"[{tag}] {job['id']}: {describe(r) if r.get('status') == 'ok' else r.get('reason')}",
            file=sys.stderr,
            flush=True,
        )
    return results


def per_round(policy: Policy, rounds: int) -> Policy:
    """The share of ``policy`` one of ``rounds`` interleaved rounds gets: its repetitions and
    budget split over the rounds (at least two timed calls and its warm-up in every round)."""
    rounds = max(1, rounds)
    return Policy(
        warmup=policy.warmup, reps=max(2, -(-policy.reps // rounds)), min_reps=1, budget_s=policy.budget_s / rounds
    )


def merge_rounds(rounds: list[dict]) -> dict:
    """One result from the measurements of the same call in interleaved rounds: the timed calls
    of every round pooled (median, minimum, count) and ``rounds``, each round's own ``median_s``,
    ``min_s`` and ``reps`` (the spread of a ratio comes from them). Any round that did not run
    makes the whole entry that round's failure (first one)."""
    failed = next((r for r in rounds if r.get("status") != "ok"), None)
    if failed is not None or not rounds:
        return dict(failed or {"status": "error", "reason": "no rounds"})
    times = [t for r in rounds for t in r["times_s"]]
    out = {k: v for k, v in rounds[0].items() if k not in ("times_s", "warmup_s")}  # e.g. compile_s
    out.update(summarize(times), status="ok")
    out["rounds"] = [{"median_s": r["median_s"], "min_s": r["min_s"], "reps": r["reps"]} for r in rounds]
    return out
