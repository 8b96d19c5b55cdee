"""The LTC dialect kernels compiled as C++ with the CPU prelude (real threads and barriers) and
launched through ncps.backends.gpu's custom_function, against the pure-MLX reference ncps.cells.ltc.ltc_sequence."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

from ncps.backends.gpu import ltc_sequence_gpu, ltc_synapse_plan
from ncps.cells.ltc import SOLVER_PARAMS
from ncps.wirings import NCP, AutoNCP, FullyConnected, Random
from tests.gpu.gpu_util import GRAD_TOL, OUT_TOL, assert_close, ltc_grads, ltc_problem, reference_seq

pytestmark = pytest.mark.gpu_emulated

# (id, wiring factory, I, B, T, threads, Δt = 0 at) -- threads < N (several neurons per thread),
# threads > N (idle lanes), and sizes that fill no group evenly.
CASES = [
    ("fc7-nt32", lambda: FullyConnected(7), 3, 3, 4, 32, [(1, 2)]),
    ("autoncp12-nt8", lambda: AutoNCP(12, 3), 5, 2, 5, 8, [(0, 0), (1, 4)]),
    ("random-sparse11-nt4", lambda: Random(11, 4, sparsity_level=0.6, random_seed=7), 6, 3, 3, 4, []),
    ("ncp-odd-nt5", lambda: NCP(4, 3, 2, 2, 2, 2, 2), 9, 1, 6, 5, [(0, 3)]),
]


def _emulated(K=6, eps=1e-8, threads=None):
    return lambda x, h0, dt, p: ltc_sequence_gpu(x, h0, dt, p, K, eps, backend="emulate", threads=threads)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_ltc_forward_and_gradients_match_reference(case):
    _, make, I, B, T, threads, zeros = case
    cell, x, h0, dt = ltc_problem(make(), I, B, T, dt_zero=zeros)
    p = cell.solver_params()
    ref, emu = reference_seq(), _emulated(threads=threads)
    assert_close(emu(x, h0, dt, p), ref(x, h0, dt, p), OUT_TOL, "states")
    g_ref = ltc_grads(ref, x, h0, dt, p)
    g_emu = ltc_grads(emu, x, h0, dt, p)
    for name, k in (("x", 0), ("h0", 1), ("dt", 2)):
        assert_close(g_emu[k], g_ref[k], GRAD_TOL, f"d/d{name}")
    for k in SOLVER_PARAMS:
        if k.endswith("mask"):  # frozen: zero gradient, as the CPU fused primitive
            assert float(mx.abs(g_emu[3][k]).max()) == 0.0
        else:
            assert_close(g_emu[3][k], g_ref[3][k], GRAD_TOL, f"d/d{k}")


def test_ltc_zero_dt_leaves_state_and_passes_gradient():
    cell, x, h0, dt = ltc_problem(FullyConnected(6), 2, 2, 3)
    dt = mx.zeros_like(dt)
    p = cell.solver_params()
    emu = _emulated(K=3)
    states = emu(x, h0, dt, p)
    np.testing.assert_array_equal(np.array(states), np.repeat(np.array(h0)[:, None], 3, axis=1))
    g = mx.grad(lambda h: emu(x, h, dt, p).sum())(h0)
    np.testing.assert_array_equal(np.array(g), np.full(h0.shape, 3.0, np.float32))


def test_ltc_single_unfold_and_epsilon():
    cell, x, h0, dt = ltc_problem(AutoNCP(9, 2), 4, 2, 2, seed=3)
    p = cell.solver_params()
    ref, emu = reference_seq(K=1, eps=1e-3), _emulated(K=1, eps=1e-3, threads=16)
    assert_close(emu(x, h0, dt, p), ref(x, h0, dt, p), OUT_TOL, "states")
    assert_close(ltc_grads(emu, x, h0, dt, p)[3]["w"], ltc_grads(ref, x, h0, dt, p)[3]["w"], GRAD_TOL, "d/dw")


def test_ltc_cell_parameters_through_value_and_grad():
    """nn.value_and_grad over the cell's own (softplus-constrained) parameters."""
    cell, x, h0, dt = ltc_problem(AutoNCP(10, 2), 3, 2, 3, seed=5, implicit=True)
    plan = ltc_synapse_plan(cell.solver_params())

    def loss(seq):
        def f(model):
            states = seq(model.map_inputs(x), h0, dt, model.solver_params())
            return (model.map_outputs(states) ** 2).mean()

        return f

    emu = lambda x_, h_, d_, p_: ltc_sequence_gpu(x_, h_, d_, p_, 6, 1e-8, backend="emulate", plan=plan)  # noqa: E731
    v_ref, g_ref = nn.value_and_grad(cell, loss(reference_seq()))(cell)
    v_emu, g_emu = nn.value_and_grad(cell, loss(emu))(cell)
    assert_close(v_emu, v_ref, OUT_TOL, "loss")
    for k in ("w", "sensory_w", "cm", "gleak", "vleak", "sigma", "mu", "input_w", "input_b", "output_w"):
        assert_close(g_emu[k], g_ref[k], GRAD_TOL, f"d/d{k}")


def test_ltc_bad_arguments_name_the_argument():
    cell, x, h0, dt = ltc_problem(FullyConnected(5), 2, 2, 3)
    p = cell.solver_params()
    with pytest.raises(ValueError, match=r"h0 must have shape \(B, N\) = \(2, 5\)"):
        ltc_sequence_gpu(x, h0[:, :4], dt, p, backend="emulate")
    with pytest.raises(ValueError, match=r"dt must have shape \(B, T\)"):
        ltc_sequence_gpu(x, h0, dt[:, :2], p, backend="emulate")
    with pytest.raises(ValueError, match="plan is for"):
        other = ltc_synapse_plan(LTCCellParams(6, 2))
        ltc_sequence_gpu(x, h0, dt, p, backend="emulate", plan=other)
    with pytest.raises(ValueError, match=r"threadgroup memory, more than 32768 \(metal\)"):
        big = LTCCellParams(400, 2)  # raised before any launch, so "metal" runs here too
        ltc_sequence_gpu(mx.zeros((1, 1, 2)), mx.zeros((1, 400)), mx.ones((1, 1)), big, backend="metal")


def LTCCellParams(N, I):
    from ncps.cells.ltc import LTCCell

    return LTCCell(FullyConnected(N), in_features=I).solver_params()


MIXED = [
    ("autoncp12-nt8", lambda: AutoNCP(12, 3), 4, None, 8, ()),
    ("fc10-F5-nt4-dt0", lambda: FullyConnected(10), 3, 5, 4, [(1, 2), (0, 0)]),
]


@pytest.mark.parametrize("case", MIXED, ids=[c[0] for c in MIXED])
def test_ltc_mixed_memory_matches_reference(case):
    """The LSTM inside the LTC kernels' time loop, against the reference used for the CPU
    primitive: states and cell states (1e-5), gradients of every input, solver and LSTM parameter
    (1e-4; the masks get none), with cotangents on both outputs; dt = 0 runs the LSTM only."""
    from tests.kernels.ltc.test_primitive import make_mixed_case, mixed_args, mixed_loss, ref_mixed

    _, make, I, F, threads, zero_dt = case
    args = make_mixed_case(make(), I, 2, 4, F=F, zero_dt=zero_dt)

    def gpu(x, h0, c0, dt, p, u, lp, K, eps):
        return ltc_sequence_gpu(x, h0, dt, p, K, eps, lstm_input=u, lstm=lp, c0=c0, backend="emulate", threads=threads)

    got, want = gpu(*args, 6, 1e-8), ref_mixed(*args, 6)
    assert_close(got[0], want[0], OUT_TOL, "states")
    assert_close(got[1], want[1], OUT_TOL, "cells")
    flat = mixed_args(*args)
    Rs = mx.sin(mx.arange(got[0].size, dtype=mx.float32).reshape(got[0].shape)) + 0.5
    Rc = mx.cos(mx.arange(got[1].size, dtype=mx.float32).reshape(got[1].shape))
    argnums = tuple(range(len(flat)))
    g_gpu = mx.grad(mixed_loss(gpu, Rs, Rc, 6), argnums=argnums)(*flat)
    g_ref = mx.grad(mixed_loss(ref_mixed, Rs, Rc, 6), argnums=argnums)(*flat)
    names = ["x", "h0", "dt", *SOLVER_PARAMS, "lstm_input", "input_w", "input_b", "recurrent_w", "c0"]
    for name, a, b in zip(names, g_gpu, g_ref):
        if not name.endswith("mask"):
            assert_close(a, b, GRAD_TOL, f"d{name}")
