"""The forward kernels' performance design (kernels/README.md), checked by the C++ emulation only:
``R`` batch rows per threadgroup, weight matrices transposed by the launch layer (coalesced reads)
and, for the CfC, the weights staged once in threadgroup memory. Every sum runs in the same order,
so each variant must give the bits of ``R = 1`` (the one-row kernels) on a batch ``R`` does not
divide, and match the reference; the threadgroup-memory budget of ``R`` rows is checked before any
launch (Metal 32 KiB, CUDA the device's dynamic shared memory), and a CUDA launch requests it."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

import ncps
from ncps.backends.gpu import cfc_sequence_gpu, launch, ltc_sequence_gpu, ltc_synapse_plan
from ncps.backends.gpu.cfc import CFC_BACKWARD, CFC_FORWARD, _tg_bytes, _tg_bytes_forward, _weight_floats
from ncps.backends.gpu.ltc import LTC_BACKWARD, LTC_FORWARD
from ncps.backends.gpu.ltc import _tg_bytes as ltc_bytes
from ncps.backends.gpu.ltc import _tg_bytes_forward as ltc_fwd_bytes
from ncps.backends.ltc_args import lstm_params
from ncps.cells.cfc import CfCCell
from ncps.cells.lstm import LSTMCell
from ncps.wirings import AutoNCP, FullyConnected
from tests.gpu.gpu_util import OUT_TOL, assert_close, ltc_problem, reference_seq

pytestmark = pytest.mark.gpu_emulated

B = 5  # divisible by none of R = 2, 3, 4: the last group holds fewer rows
# (rows_per_group, transposed_weights, stage_weights)
CFC_VARIANTS = [(2, False, False), (4, True, False), (4, True, True), (1, True, True), (3, False, True)]
LTC_VARIANTS = [(2, False), (4, True), (3, True)]


def _cfc_reference(cell, x, h0, dt, lstm=None, c0=None):
    h, c, states = h0, c0, []
    for t in range(x.shape[1]):
        if lstm is not None:
            h, c = lstm(x[:, t], (h, c))
        h = cell.step(x[:, t], h, dt[:, t : t + 1])
        states.append(h)
    return mx.stack(states, axis=1)


CFC_CASES = [
    ("default-2layers-nt4", dict(backbone_units=[7, 5]), False, 4),
    ("pure-nobackbone-nt8", dict(mode="pure", backbone_layers=0), False, 8),
    ("no_gate-silu-mixed-nt4", dict(mode="no_gate", activation="silu", backbone_units=6), True, 4),
]


@pytest.mark.parametrize("case", CFC_CASES, ids=[c[0] for c in CFC_CASES])
def test_cfc_rows_per_group_and_weight_layouts_give_the_bits_of_one_row(case):
    _, kw, mixed, threads = case
    mx.random.seed(2)
    cell = CfCCell(5, 9, **kw)
    x, h0, dt = mx.random.normal((B, 4, 5)), 0.5 * mx.random.normal((B, 9)), mx.random.uniform(0.2, 1.5, (B, 4))
    dt[1, 2] = 0.0
    extra = dict(lstm=LSTMCell(5, 9), c0=0.5 * mx.random.normal((B, 9))) if mixed else {}

    def run(R=1, wt=False, wtg=False):
        out = cfc_sequence_gpu(
            cell,
            x,
            h0,
            dt,
            backend="emulate",
            threads=threads,
            rows_per_group=R,
            transposed_weights=wt,
            stage_weights=wtg,
            **extra,
        )
        return out if mixed else (out,)

    base = run()
    assert_close(base[0], _cfc_reference(cell, x, h0, dt, **extra), OUT_TOL, "states (R = 1)")
    for R, wt, wtg in CFC_VARIANTS:
        got = run(R, wt, wtg)
        for k, (g, b) in enumerate(zip(got, base)):
            np.testing.assert_array_equal(np.array(g), np.array(b), err_msg=f"R={R} WT={wt} WTG={wtg} output {k}")


GRAD_CASES = [
    ("default-backbone", dict(backbone_units=5), False),
    ("pure-nobackbone", dict(mode="pure", backbone_layers=0), False),
    ("no_gate-2layers-mixed", dict(mode="no_gate", backbone_units=[5, 7]), True),
]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_cfc_backward_with_several_rows_per_group_gives_the_bits_of_one_row(case):
    """Forward and backward with 2 and 4 rows per group (B = 5): every gradient (parameters, x,
    h0, c0, dt; cotangents on states and cells) bit for bit as with one row per group."""
    _, kw, mixed = case
    mx.random.seed(5)
    model = nn.Module()
    model.cell = CfCCell(4, 6, **kw)
    if mixed:
        model.lstm = LSTMCell(4, 6)
    x, h0, dt = mx.random.normal((B, 3, 4)), mx.random.normal((B, 6)), mx.random.uniform(0.2, 1.5, (B, 3))
    c0 = mx.random.normal((B, 6))

    def grads(**perf):
        def loss(m, x, h0, c0, dt):
            extra = dict(lstm=m.lstm, c0=c0) if mixed else {}
            out = cfc_sequence_gpu(m.cell, x, h0, dt, backend="emulate", threads=4, **extra, **perf)
            states, cells = out if mixed else (out, out)
            return (states**2).sum() + (0.5 * cells).sum()

        g = nn.value_and_grad(model, loss)(model, x, h0, c0, dt)[1]
        inputs = mx.grad(loss, argnums=(1, 2, 3, 4))(model, x, h0, c0, dt)
        return {**dict(tree_flatten(g)), **dict(zip(("x", "h0", "c0", "dt"), inputs))}

    base = grads()
    for perf in (dict(rows_per_group=2), dict(rows_per_group=4, transposed_weights=True, stage_weights=True)):
        multi = grads(**perf)
        assert multi.keys() == base.keys()
        for name, want in base.items():
            np.testing.assert_array_equal(np.array(multi[name]), np.array(want), err_msg=f"{perf}: d{name}")


LTC_CASES = [("autoncp10-nt4", lambda: AutoNCP(10, 2), False), ("fc7-mixed-nt4", lambda: FullyConnected(7), True)]


@pytest.mark.parametrize("case", LTC_CASES, ids=[c[0] for c in LTC_CASES])
def test_ltc_rows_per_group_give_the_bits_of_one_row(case):
    """Rows of one group with dt = 0 next to rows with dt > 0 (the frozen rows copy their state
    through the sub-steps), and a step with dt = 0 in every row of a group."""
    _, make, mixed = case
    cell, x, h0, dt = ltc_problem(make(), 3, B, 4, dt_zero=[(1, 1), (4, 0), (0, 3), (1, 3), (2, 3), (3, 3)])
    p = cell.solver_params()
    plan = ltc_synapse_plan(p)
    extra = {}
    if mixed:
        extra = dict(lstm_input=x, lstm=lstm_params(LSTMCell(3, cell.state_size)), c0=0.3 * mx.random.normal(h0.shape))

    def run(R=1, wt=False):
        out = ltc_sequence_gpu(
            x,
            h0,
            dt,
            p,
            3,
            1e-8,
            plan=plan,
            backend="emulate",
            threads=4,
            rows_per_group=R,
            transposed_weights=wt,
            **extra,
        )
        return out if mixed else (out,)

    base = run()
    if not mixed:
        assert_close(base[0], reference_seq(K=3)(x, h0, dt, p), OUT_TOL, "states (R = 1)")
    for R, wt in LTC_VARIANTS:
        for k, (g, b) in enumerate(zip(run(R, wt), base)):
            np.testing.assert_array_equal(np.array(g), np.array(b), err_msg=f"R={R} WT={wt} output {k}")


@pytest.mark.parametrize("case", LTC_CASES, ids=[c[0] for c in LTC_CASES])
def test_ltc_backward_with_several_rows_per_group_gives_the_bits_of_one_row(case):
    """Forward and backward with 2 and 4 rows per group (B = 5; rows with dt = 0 beside rows with
    dt > 0 in one group, and a step frozen in a whole group): every gradient (x, h0, dt, the solver
    parameters; mixed memory: the LSTM's input, weights and c0, cotangents on both outputs) bit for
    bit as with one row per group."""
    _, make, mixed = case
    cell, x, h0, dt = ltc_problem(make(), 3, B, 4, dt_zero=[(1, 1), (4, 0), (0, 3), (1, 3), (2, 3), (3, 3)])
    p = cell.solver_params()
    plan = ltc_synapse_plan(p)
    lp = lstm_params(LSTMCell(3, cell.state_size))
    c0 = 0.3 * mx.random.normal(h0.shape)

    def grads(**perf):
        def loss(x, h0, dt, p, lp, c0):
            kw = dict(lstm_input=x, lstm=lp, c0=c0) if mixed else {}
            out = ltc_sequence_gpu(x, h0, dt, p, 3, 1e-8, plan=plan, backend="emulate", threads=4, **kw, **perf)
            states, cells = out if mixed else (out, out)
            return (states**2).sum() + (0.5 * cells).sum()

        g = mx.grad(loss, argnums=(0, 1, 2, 3, 4, 5))(x, h0, dt, p, lp, c0)
        return dict(tree_flatten(list(g)))

    base = grads()
    for perf in (dict(rows_per_group=2), dict(rows_per_group=4, transposed_weights=True)):
        multi = grads(**perf)
        assert multi.keys() == base.keys()
        for name, want in base.items():
            np.testing.assert_array_equal(np.array(multi[name]), np.array(want), err_msg=f"{perf}: d{name}")


# -- budgets ---------------------------------------------------------------------------------------
def test_rows_per_group_bounds_and_metal_budget():
    cell = CfCCell(16, 64, backbone_units=64, backbone_layers=1)
    x, h0, dt = mx.zeros((8, 2, 16)), mx.zeros((8, 64)), mx.ones((8, 2))
    for bad in (0, 9):
        with pytest.raises(ValueError, match=r"rows_per_group must be in 1\.\.8"):
            cfc_sequence_gpu(cell, x, h0, dt, backend="emulate", rows_per_group=bad)
    # CfC(16 -> 64, backbone 64): 81 KiB of weights: staging them exceeds Metal's 32 KiB.
    nw = _weight_floats(16, 64, [64])
    assert 4 * nw > 32 * 1024 and _tg_bytes_forward(16, 64, [64], R=8) <= 32 * 1024
    with pytest.raises(ValueError, match=r"rows_per_group=1 with the weights staged .* more than 32768 \(metal\).*"):
        cfc_sequence_gpu(cell, x, h0, dt, backend="metal", stage_weights=True)
    big = CfCCell(64, 500, backbone_layers=0)  # the backward fits Metal; 8 rows of the forward do not, 4 do
    assert ncps.backends.gpu.cfc_why_not(big, backend="metal") is None
    assert _tg_bytes_forward(64, 500, [], R=8) > 32 * 1024 >= _tg_bytes_forward(64, 500, [], R=4)
    args = mx.zeros((8, 1, 64)), mx.zeros((8, 500)), mx.ones((8, 1))
    with pytest.raises(ValueError, match=r"rows_per_group=8 needs \d+ bytes .* 32768 \(metal\): use fewer rows"):
        cfc_sequence_gpu(big, *args, backend="metal", rows_per_group=8)
    mid = CfCCell(16, 128, backbone_units=128, backbone_layers=1)  # 8 rows: the forward fits, the backward not
    assert _tg_bytes_forward(16, 128, [128], R=8) <= 32 * 1024 < _tg_bytes(16, 128, [128], R=8)
    args = mx.zeros((8, 1, 16)), mx.zeros((8, 128)), mx.ones((8, 1))
    with pytest.raises(ValueError, match=r"the backward at rows_per_group=8 needs \d+ bytes .* 32768 \(metal\)"):
        cfc_sequence_gpu(mid, *args, backend="metal", rows_per_group=8)
    lcell, lx, lh0, ldt = ltc_problem(FullyConnected(300), 4, 8, 1)
    assert ltc_fwd_bytes(300, 4, R=8) > 32 * 1024
    with pytest.raises(ValueError, match=r"rows_per_group=8 needs \d+ bytes .* 32768 \(metal\)"):
        ltc_sequence_gpu(lx, lh0, ldt, lcell.solver_params(), 1, backend="metal", rows_per_group=8)


def test_perf_options_set_the_defaults():
    with launch.perf_options(rows_per_group=4, transposed_weights=True):
        assert launch.perf("op") == (4, 1, 0)
        assert launch.perf("op", rows_per_group=2, transposed_weights=False) == (2, 0, 0)
    assert launch.perf("op") == (1, 0, 0)
    with pytest.raises(ValueError, match="unknown option"), launch.perf_options(rows=2):
        pass


def test_cuda_launch_of_several_rows(monkeypatch):
    """On CUDA the forward with R rows asks for that many groups, the threadgroup memory of R rows
    (staged weights included) as dynamic shared memory, and passes R, WT, WTG and the storage type
    as template arguments (recorded in place of mx.fast.cuda_kernel)."""
    made, calls = {}, {}

    def fake_kernel(name, input_names, output_names, source, header, shared_memory):
        made[name] = shared_memory

        def call(**kw):
            calls[name] = kw
            return [mx.zeros(s, d) for s, d in zip(kw["output_shapes"], kw["output_dtypes"])]

        return call

    monkeypatch.setattr(mx.fast, "cuda_kernel", fake_kernel)
    monkeypatch.setattr(
        mx, "device_info", lambda d=None: {"compute_capability_major": 9, "compute_capability_minor": 0}
    )
    launch.mlx_kernel.cache_clear()
    try:
        cfc = ncps.CfCCell(3, 5, backbone_units=7, backbone_layers=1)
        x = mx.zeros((7, 2, 3), mx.bfloat16)
        kw = dict(backend="cuda", threads=32, rows_per_group=4, transposed_weights=True, stage_weights=True)
        loss = lambda x: cfc_sequence_gpu(cfc, x, mx.zeros((7, 5), mx.bfloat16), mx.ones((7, 2)), **kw).sum()  # noqa: E731
        mx.eval(mx.grad(loss)(x))
        cell, lx, lh0, ldt = ltc_problem(FullyConnected(6), 3, 7, 2)
        lkw = dict(backend="cuda", threads=32, rows_per_group=3)
        mx.eval(mx.grad(lambda x: ltc_sequence_gpu(x, lh0, ldt, cell.solver_params(), **lkw).sum())(lx))
    finally:
        launch.mlx_kernel.cache_clear()
    nw = _weight_floats(3, 5, [7])
    assert made == {
        CFC_FORWARD.name: _tg_bytes_forward(3, 5, [7], R=4, nw=nw),
        CFC_BACKWARD.name: _tg_bytes(3, 5, [7], R=4),
        LTC_FORWARD.name: ltc_fwd_bytes(6, 3, R=3),
        LTC_BACKWARD.name: ltc_bytes(6, 3, 6, 32, R=3),
    }
    assert calls[LTC_BACKWARD.name]["grid"] == (3 * 32, 1, 1) and dict(calls[LTC_BACKWARD.name]["template"])["R"] == 3
    assert calls[CFC_BACKWARD.name]["grid"] == (2 * 32, 1, 1) and dict(calls[CFC_BACKWARD.name]["template"])["R"] == 4
    c, lt = calls[CFC_FORWARD.name], calls[LTC_FORWARD.name]
    assert c["grid"] == (2 * 32, 1, 1) and lt["grid"] == (3 * 32, 1, 1)  # ceil(7 / 4), ceil(7 / 3) groups
    tmpl = dict(c["template"])
    assert {k: tmpl[k] for k in ("R", "WT", "WTG", "NW", "IOT")} == dict(R=4, WT=1, WTG=1, NW=nw, IOT=mx.bfloat16)
    assert c["output_dtypes"][0] == mx.bfloat16 and dict(lt["template"])["R"] == 3
