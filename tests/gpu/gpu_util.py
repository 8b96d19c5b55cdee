"""Shared pieces of the GPU-kernel tests: problems, reference gradients, tolerances, the CUDA compiler."""

from __future__ import annotations

import os
import shutil

import mlx.core as mx
import numpy as np
import pytest

from ncps.cells.ltc import LTCCell, ltc_sequence

OUT_TOL = 1e-5  # outputs, relative to the reference's largest magnitude
GRAD_TOL = 1e-4  # gradients, likewise


def nvcc(check: str) -> str:
    """The path of ``nvcc``; without the CUDA toolkit the calling test is skipped, saying that
    ``check`` (e.g. "the CUDA compile check") needs it."""
    exe = shutil.which("nvcc") or ("/usr/local/bin/nvcc" if os.path.exists("/usr/local/bin/nvcc") else None)
    if exe is None:
        pytest.skip(f"nvcc is not installed: {check} needs the CUDA toolkit")
    return exe


def assert_close(got, want, tol: float, what: str) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-6)
    err = float(np.abs(got - want).max(initial=0.0))
    assert err <= tol * scale, f"{what}: max error {err:.3g} > {tol:g} x {scale:.3g}"


def ltc_problem(wiring, I: int, B: int, T: int, seed: int = 0, dt_zero=(), implicit: bool = False):
    """``(cell, x, h0, dt)`` with per-sample Δt in [0.3, 1.7] and Δt = 0 at the ``(b, t)`` in ``dt_zero``."""
    mx.random.seed(seed)
    cell = LTCCell(wiring, in_features=I, implicit_param_constraints=implicit)
    N = cell.state_size
    x = mx.random.normal((B, T, I))
    h0 = 0.2 * mx.random.normal((B, N))
    dt = mx.random.uniform(0.3, 1.7, (B, T))
    for b, t in dt_zero:
        dt[b, t] = 0.0
    return cell, x, h0, dt


def weighted_sum(states: mx.array) -> mx.array:
    """A loss whose cotangent differs per (b, t, n), so every gradient path is exercised."""
    B, T, N = states.shape
    wts = mx.sin(mx.arange(B * T * N, dtype=mx.float32).reshape(B, T, N)) + 0.5
    return (states * wts).sum()


def ltc_grads(seq_fn, x, h0, dt, params):
    """Gradients of :func:`weighted_sum` of ``seq_fn(x, h0, dt, params)`` w.r.t. all four arguments."""
    return mx.grad(lambda *a: weighted_sum(seq_fn(*a)), argnums=(0, 1, 2, 3))(x, h0, dt, params)


def reference_seq(K: int = 6, eps: float = 1e-8):
    return lambda x, h0, dt, p: ltc_sequence(x, h0, dt, p, K, eps)
