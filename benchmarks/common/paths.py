"""Where the benchmark's files are."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parents[1]  # benchmarks/
REPO = HERE.parent
RESULTS = HERE / "results"  # the default --out
BUILD = REPO / "build" / "bench"  # the compiled machine-limit probe
