"""pytest's side of the oracle runner ``benchmarks/oracle.py`` (the official ncps, run in its own
process): a missing oracle skips the test locally and fails it in CI, where it must be installed."""

from __future__ import annotations

import os

import numpy as np
import pytest
from benchmarks import oracle


def require_official() -> None:
    """Skip locally when the oracle is missing; fail in CI, where it must be installed."""
    why = oracle.missing()
    if why is None:
        return
    why = f"{why} (pip install --no-deps --target {oracle.oracle_dir()} ncps==1.0.1; pip install torch==2.13.0)"
    if os.environ.get("CI"):
        pytest.fail(f"oracle unavailable in CI: {why}")
    pytest.skip(why)


def run_official(code: str, timeout: float = 300) -> dict:
    """Run Python ``code`` against the official package (see :func:`benchmarks.oracle.run_code`)."""
    require_official()
    return oracle.run_code(code, timeout)


def run_oracle(spec: dict, timeout: float = 300) -> dict[str, np.ndarray]:
    """The official module's outputs and gradients for ``spec`` (see :func:`benchmarks.oracle.run_parity`)."""
    require_official()
    return oracle.run_parity(spec, timeout)


def run_oracle_script(code: str, inputs: dict[str, np.ndarray], timeout: float = 300) -> dict[str, np.ndarray]:
    """Run ``code`` against the official package, arrays in and out (see :func:`benchmarks.oracle.run_arrays`)."""
    require_official()
    return oracle.run_arrays(code, inputs, timeout)
