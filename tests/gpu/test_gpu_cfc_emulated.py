"""The CfC forward and backward dialect kernels compiled as C++ with the CPU prelude, through the
real launch layer (``mx.custom_function`` + vjp), against ``CfCCell.step`` step by step."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from ncps.backends.gpu import cfc_sequence_gpu, cfc_why_not, wired_cfc_sequence_gpu
from ncps.cells.cfc import CfCCell
from ncps.cells.lstm import LSTMCell
from ncps.cells.wired_cfc import WiredCfCCell
from ncps.wirings import NCP, AutoNCP
from tests.gpu.gpu_util import GRAD_TOL, OUT_TOL, assert_close, weighted_sum

pytestmark = pytest.mark.gpu_emulated

CASES = [
    ("default-lecun-nt4", dict(mode="default"), 4),
    ("no_gate-silu-nt32", dict(mode="no_gate", activation="silu", backbone_units=13), 32),
    ("pure-relu-nt8", dict(mode="pure", activation="relu"), 8),
    ("default-tanh-nobackbone", dict(mode="default", activation="tanh", backbone_layers=0), 5),
    ("default-relu-3layers-nt4", dict(mode="default", activation="relu", backbone_layers=3, backbone_units=6), 4),
    ("pure-tanh-widths-12-7", dict(mode="pure", activation="tanh", backbone_units=[12, 7]), 8),
    ("no_gate-lecun-widths-4-13", dict(mode="no_gate", backbone_units=[4, 13]), 32),
    ("masked-nobackbone", dict(backbone_layers=0, sparsity_mask=np.random.default_rng(0).integers(0, 2, (14, 9))), 4),
]


def _problem(kw, B=3, T=5, seed=1):
    mx.random.seed(seed)
    kw = dict(kw)
    cell = CfCCell(5, 9, backbone_units=kw.pop("backbone_units", 11), **kw)
    x = mx.random.normal((B, T, 5))
    h0 = mx.random.normal((B, 9))
    dt = mx.random.uniform(0.0, 2.0, (B, T))
    dt[0, 1] = 0.0
    if cell.mode == "pure":  # away from w_tau = 0, A = 1 so that every term of their gradients shows
        cell.w_tau = 0.5 * mx.random.normal(cell.w_tau.shape)
        cell.A = 1.0 + 0.3 * mx.random.normal(cell.A.shape)
    return cell, x, h0, dt


def _reference(cell, x, h0, dt):
    h, out = h0, []
    for t in range(x.shape[1]):
        h = cell.step(x[:, t], h, dt[:, t : t + 1])
        out.append(h)
    return mx.stack(out, axis=1)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_cfc_forward_matches_reference(case):
    _, kw, threads = case
    cell, x, h0, dt = _problem(kw)
    got = cfc_sequence_gpu(cell, x, h0, dt, backend="emulate", threads=threads)
    assert_close(got, _reference(cell, x, h0, dt), OUT_TOL, "states")


def _grads(seq_fn, cell, x, h0, dt):
    """Gradients of a per-(b, t, n)-weighted loss w.r.t. the cell's parameters and (x, h0, dt)."""

    def loss(model, x, h0, dt):
        return weighted_sum(seq_fn(model, x, h0, dt))

    return nn.value_and_grad(cell, loss)(cell, x, h0, dt)[1], mx.grad(loss, argnums=(1, 2, 3))(cell, x, h0, dt)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_cfc_backward_matches_reference(case):
    _, kw, threads = case
    cell, x, h0, dt = _problem(kw, B=2, T=4)
    gpu = _grads(lambda m, *a: cfc_sequence_gpu(m, *a, backend="emulate", threads=threads), cell, x, h0, dt)
    ref = _grads(_reference, cell, x, h0, dt)
    params_gpu, params_ref = dict(tree_flatten(gpu[0])), dict(tree_flatten(ref[0]))
    assert params_gpu.keys() == params_ref.keys()
    for name, want in params_ref.items():
        assert_close(params_gpu[name], want, GRAD_TOL, f"d{name}")
    for name, got, want in zip(("x", "h0", "dt"), gpu[1], ref[1]):
        assert_close(got, want, GRAD_TOL, f"d{name}")


WIRED = [
    ("autoncp-default", AutoNCP(10, 2), "default"),
    ("ncp-pure", NCP(3, 2, 2, 2, 2, 2, 1), "pure"),
    ("autoncp-no_gate", AutoNCP(12, 3), "no_gate"),
]


@pytest.mark.parametrize("case", WIRED, ids=[c[0] for c in WIRED])
def test_wired_cfc_forward_and_backward_match_reference(case):
    _, wiring, mode = case
    mx.random.seed(4)
    cell = WiredCfCCell(5, wiring, mode=mode)
    for unit in cell.layers:
        if mode == "pure":
            unit.w_tau = 0.5 * mx.random.normal(unit.w_tau.shape)
            unit.A = 1.0 + 0.3 * mx.random.normal(unit.A.shape)
    B, T, N = 2, 4, cell.state_size
    x, h0, dt = mx.random.normal((B, T, 5)), 0.5 * mx.random.normal((B, N)), mx.random.uniform(0.2, 1.5, (B, T))
    gpu_fn = lambda m, *a: wired_cfc_sequence_gpu(m, *a, backend="emulate", threads=4)  # noqa: E731
    assert_close(gpu_fn(cell, x, h0, dt), _reference(cell, x, h0, dt), OUT_TOL, "states")
    gpu, ref = _grads(gpu_fn, cell, x, h0, dt), _grads(_reference, cell, x, h0, dt)
    params_gpu, params_ref = dict(tree_flatten(gpu[0])), dict(tree_flatten(ref[0]))
    assert params_gpu.keys() == params_ref.keys() and any("layer_2" in k for k in params_ref)
    for name, want in params_ref.items():
        assert_close(params_gpu[name], want, GRAD_TOL, f"d{name}")
    for name, got, want in zip(("x", "h0", "dt"), gpu[1], ref[1]):
        assert_close(got, want, GRAD_TOL, f"d{name}")


def test_cfc_uncovered_cells_are_named():
    assert "wired" in cfc_why_not(WiredCfCCell(3, AutoNCP(10, 2)))
    assert "'gelu'" in cfc_why_not(CfCCell(3, 4, activation="gelu"))
    assert cfc_why_not(CfCCell(3, 4, backbone_layers=3)) is None
    cell, x, h0, dt = _problem(dict(mode="default"))
    with pytest.raises(ValueError, match=r"h0 must have shape \(B, H\) = \(3, 9\)"):
        cfc_sequence_gpu(cell, x, h0[:, :4], dt, backend="emulate")


MIXED = [
    ("default-lecun-nt4", dict(mode="default"), 4),
    ("pure-2layers-nt8", dict(mode="pure", backbone_units=[8, 6]), 8),
    ("no_gate-nobackbone-nt32", dict(mode="no_gate", backbone_layers=0), 32),
]


def _mixed_reference(model, x, h0, c0, dt):
    h, c, states, cells = h0, c0, [], []
    for t in range(x.shape[1]):
        h, c = model.lstm(x[:, t], (h, c))
        h = model.cell.step(x[:, t], h, dt[:, t : t + 1])
        states.append(h)
        cells.append(c)
    return mx.stack(states, axis=1), mx.stack(cells, axis=1)


@pytest.mark.parametrize("case", MIXED, ids=[c[0] for c in MIXED])
def test_cfc_mixed_memory_matches_reference(case):
    """The LSTM inside the kernels' time loop: states and cell states (1e-5), gradients of every
    CfC and LSTM parameter and of x, h0, c0, dt (1e-4), with cotangents on both outputs."""
    _, kw, threads = case
    cell, x, h0, dt = _problem(kw, B=2, T=4)
    model = nn.Module()
    model.cell, model.lstm = cell, LSTMCell(5, 9)
    c0 = 0.5 * mx.random.normal(h0.shape)

    def gpu_fn(m, x, h0, c0, dt):
        return cfc_sequence_gpu(
            m.cell,
            x,
            h0,
            dt,
            lstm=m.lstm,
            c0=c0,
            backend="emulate",  # noqa: E731
            threads=threads,
        )

    got, want = gpu_fn(model, x, h0, c0, dt), _mixed_reference(model, x, h0, c0, dt)
    assert_close(got[0], want[0], OUT_TOL, "states")
    assert_close(got[1], want[1], OUT_TOL, "cells")

    def grads(fn):
        def loss(m, x, h0, c0, dt):
            states, cells = fn(m, x, h0, c0, dt)
            return weighted_sum(states) + 0.5 * weighted_sum(cells)

        return nn.value_and_grad(model, loss)(model, x, h0, c0, dt)[1], mx.grad(loss, argnums=(1, 2, 3, 4))(
            model, x, h0, c0, dt
        )

    gpu, ref = grads(gpu_fn), grads(_mixed_reference)
    params_gpu, params_ref = dict(tree_flatten(gpu[0])), dict(tree_flatten(ref[0]))
    assert params_gpu.keys() == params_ref.keys() and any(k.startswith("lstm.") for k in params_ref)
    for name, want in params_ref.items():
        assert_close(params_gpu[name], want, GRAD_TOL, f"d{name}")
    for name, got, want in zip(("x", "h0", "c0", "dt"), gpu[1], ref[1]):
        assert_close(got, want, GRAD_TOL, f"d{name}")
