"""Load: four threads, each on its own stream, run fused LTC and CfC layers and train private copies
concurrently for ~15 s (tests/reliability/soak_child.py, in a subprocess): every result equals the
sequential run and the resident memory stays flat."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_threads_match_sequential_and_memory_is_flat():
    p = subprocess.run(
        [sys.executable, "-m", "tests.reliability.soak_child", "15"], cwd=ROOT, capture_output=True, timeout=240
    )
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
    report = json.loads(p.stdout.decode().strip().splitlines()[-1])
    assert not report["errors"], report["errors"]
    assert report["rounds"] >= 8, report
    rss = report["rss_mb"]
    # After the first quarter (allocator and caches warmed up) the resident memory stays flat.
    warm = rss[len(rss) // 4 :]
    assert max(warm) - warm[0] < 64, rss
