"""The bad-input corpus (tests/reliability/corpus.py), run in subprocesses: a case that kills its
process fails by name and the rest of its chunk carries on in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHUNKS = 4
STALL_S = 60  # a case that runs this long without a result is a hang: its process is killed


def _wait(p: subprocess.Popen, out: str) -> None:
    """Wait for ``p``; kill it when its output file has not grown for ``STALL_S`` seconds."""
    last, size = time.monotonic(), -1
    while p.poll() is None:
        now_size = os.path.getsize(out) if os.path.exists(out) else 0
        if now_size != size:
            last, size = time.monotonic(), now_size
        elif time.monotonic() - last > STALL_S:
            p.kill()
        time.sleep(0.2)


def run_all(names: list[str], tmpdir: str, chunks: int = CHUNKS) -> dict:
    """{name: {"outcome", "detail"}}: every case, a killed process's case as "crash"."""
    results: dict = {}
    pending = [names[i::chunks] for i in range(chunks)]
    while pending:
        procs = []
        for i, chunk in enumerate(pending):
            out = os.path.join(tmpdir, f"chunk-{len(results)}-{i}.jsonl")
            env = dict(os.environ, PYTHONFAULTHANDLER="1")
            p = subprocess.Popen(
                [sys.executable, "-m", "tests.reliability.run_corpus", out, *chunk],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(out + ".err", "wb"),
            )
            procs.append((p, out, chunk))
        pending = []
        for p, out, chunk in procs:
            _wait(p, out)
            err = open(out + ".err", "rb").read()
            started = None
            if os.path.exists(out):
                for line in open(out):
                    rec = json.loads(line)
                    if "start" in rec:
                        started = rec["start"]
                    else:
                        results[rec["name"]] = {"outcome": rec["outcome"], "detail": rec["detail"]}
                        started = None
            if p.returncode != 0:
                if started is None:
                    started = next((n for n in chunk if n not in results), None)
                if started is not None:
                    tail = err.decode(errors="replace")[-1500:]
                    kind = "hang" if p.returncode == -9 else "crash"
                    results[started] = {"outcome": kind, "detail": f"exit {p.returncode}\n{tail}"}
                rest = [n for n in chunk if n not in results]
                if rest:
                    pending.append(rest)
    return results


def test_corpus(tmp_path):
    from tests.reliability.corpus import build

    names = sorted(build())
    assert len(names) >= 150
    results = run_all(names, str(tmp_path))
    counts = Counter(r["outcome"] for r in results.values())
    failures = {n: r for n, r in sorted(results.items()) if r["outcome"] != "pass"}
    report = "\n".join(f"{n}: {r['outcome']}: {r['detail'][:400]}" for n, r in failures.items())
    assert not failures, f"{dict(counts)}\n{report}"
