"""What the scripts that run the official package in a subprocess (``official_torch.py``,
``official_keras.py``, ``official_parity.py``) share. They import it by name from their own
directory (first on ``sys.path``: the oracle's bootstrap puts it there, as ``python script.py``
does); it imports no ``ncps`` at module level, so the parity tests can use :func:`build_layer` on
our package too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def official_units(units: Any) -> Any:
    """An int, or a fresh official wiring from ``{"wiring", "args", "kwargs"}``."""
    if isinstance(units, dict):
        import ncps  # the official package: the subprocess's bootstrap puts it first on sys.path

        cls = getattr(ncps.wirings, units["wiring"])
        return cls(*units.get("args", []), **units.get("kwargs", {}))
    return int(units)


def build_layer(lib: Any, layer: str, n_in: int, units: Any, kw: dict) -> Any:
    """The layer or cell named ``layer`` of ``lib``: the official ``ncps.torch`` or our ``ncps``,
    whose constructors agree (``n_in`` input features, ``units`` an int or a wiring, ``kw`` the
    remaining constructor keywords)."""
    if layer == "LTC":
        return lib.LTC(n_in, units, **kw)
    if layer == "CfC":
        return lib.CfC(n_in, units, **kw)
    if layer == "LTCCell":
        return lib.LTCCell(units, in_features=n_in, **kw)
    if layer == "CfCCell":
        return lib.CfCCell(n_in, units, **kw)
    if layer == "WiredCfCCell":
        return lib.WiredCfCCell(n_in, units, **kw)
    raise ValueError(f"unknown layer {layer!r}")


def serve(jobs: list[dict], prepare: Callable[[dict], tuple[Callable[[], Any], dict]], info: dict) -> None:
    """Time prepared jobs on demand, for the interleaved rounds of :class:`benchmarks.oracle.PeerSession`.

    Each line on stdin is ``{"ids": [...], "policy": {...}}`` (one round): every named job is
    prepared once, at its first round (``prepare(job) -> (call, extra)``: build the model, compile
    it, ``extra`` such as ``compile_s`` joins its results), then timed with :func:`timing.measure`
    under ``policy``; the answer is one JSON line ``{**info, "results": {id: measurement}}``. The
    answers go to the original stdout; anything else written to stdout (by a library, at any
    level) goes to stderr, so it cannot corrupt the protocol. EOF ends the loop."""
    import json
    import os
    import sys

    import timing

    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # stdout -> stderr for everything but the answers
    sys.stdout = sys.stderr
    by_id = {job["id"]: job for job in jobs}
    prepared: dict[str, Any] = {}
    for line in sys.stdin:
        request = json.loads(line)
        policy = timing.Policy.from_dict(request.get("policy", {}))
        results = {}
        for job_id in request["ids"]:
            try:
                if job_id not in prepared:
                    prepared[job_id] = prepare(by_id[job_id])
                if isinstance(prepared[job_id], dict):  # its preparation failed in an earlier round
                    results[job_id] = prepared[job_id]
                else:
                    call, extra = prepared[job_id]
                    results[job_id] = dict(timing.measure(call, policy), **extra)
            except Exception as exc:  # one broken job must not lose the others
                results[job_id] = timing.failure("error", exc)
                prepared.setdefault(job_id, results[job_id])
            r = results[job_id]
            print(f"[serve] {job_id}: {r.get('median_s', r.get('reason'))}", file=sys.stderr, flush=True)
        answers.write(json.dumps({**info, "results": results}) + "\n")
        answers.flush()
