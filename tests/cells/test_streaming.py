"""Streaming inference: ``cell.infer`` computes one step immediately and equals ``cell(...)``."""

import mlx.core as mx
import numpy as np
import pytest

import ncps
from ncps import CfCCell, LTCCell, WiredCfCCell, kernels
from ncps.wirings import NCP, AutoNCP

CELLS = {
    "cfc_default": lambda: CfCCell(5, 8),
    "cfc_pure_deep": lambda: CfCCell(5, 8, mode="pure", backbone_units=[16, 12], activation="gelu"),
    "cfc_no_gate_masked": lambda: CfCCell(5, 6, mode="no_gate", backbone_layers=0, sparsity_mask=np.ones((11, 6))),
    "cfc_seed_style": lambda: CfCCell(wiring=AutoNCP(12, 3), input_size=5, backbone_layers=0, backbone_units=0),
    "wired": lambda: WiredCfCCell(5, NCP(4, 3, 2, 2, 2, 2, 2)),
    "ltc": lambda: LTCCell(AutoNCP(10, 2), in_features=5),
}


@pytest.mark.parametrize("name", sorted(CELLS))
def test_infer_equals_a_cell_call_over_a_control_loop(name):
    mx.random.seed(0)
    cell = CELLS[name]()
    x = mx.random.normal((6, 3, 5))
    h_ref = h = mx.random.normal((3, cell.state_size))
    for t in range(6):
        ts = mx.array([0.5, 1.0, 2.0]) if t % 2 else 0.8
        with kernels.use("reference"):
            y_ref, h_ref = cell(x[t], h_ref, ts)
        y, h = cell.infer(x[t], h, ts)
        assert y.shape == y_ref.shape and h.shape == h_ref.shape
        assert float(mx.max(mx.abs(y - y_ref))) <= 1e-5
        assert float(mx.max(mx.abs(h - h_ref))) <= 1e-5


@pytest.mark.skipif(not kernels.extension_available(), reason="the extension did not build")
@pytest.mark.parametrize("name", sorted(CELLS))
def test_infer_prepares_its_step_once_and_not_in_reference_mode(name, monkeypatch):
    fused = CELLS[name]().fused
    builds = []
    real = fused.prepared_step
    monkeypatch.setattr(fused, "prepared_step", lambda c: builds.append(1) or real(c))
    cell = CELLS[name]()
    x, h = mx.random.normal((1, 5)), mx.zeros((1, cell.state_size))
    for _ in range(4):
        y, h = cell.infer(x, h, 0.5)
    assert builds == [1]  # prepared at the first call, reused while the parameters stay the same

    class Refuse:
        def step(self, *args):
            raise AssertionError("the prepared step ran in reference mode")

        valid = step

    prepared, cell._prepared = cell._prepared, Refuse()
    with kernels.use("reference"):
        y_ref, h_ref = cell.infer(x, h)
        y_call, h_call = cell(x, h)
    np.testing.assert_array_equal(np.array(y_ref), np.array(y_call))
    cell._prepared = prepared
    y, h1 = cell.infer(x, h)
    np.testing.assert_allclose(np.array(y), np.array(y_ref), rtol=1e-5, atol=1e-5)
    assert builds == [1]


def test_infer_rejects_bad_input():
    cell = CfCCell(4, 6)
    with pytest.raises(ValueError, match=r"state must have shape \(batch, state_size\) = \(1, 6\)"):
        cell.infer(mx.zeros((1, 4)), mx.zeros((1, 5)))
    with pytest.raises(ValueError, match="input_size"):
        cell.infer(mx.zeros((1, 3)), mx.zeros((1, 6)))
    if kernels.extension_available():
        with pytest.raises(ValueError, match="readout columns"):
            ncps.backends.cpu.cfc.infer(cell, mx.zeros((1, 4)), mx.zeros((1, 6)), 1.0, (4, 5))


LTC_CASES = {
    "ncp_affine": lambda: LTCCell(AutoNCP(10, 2), in_features=5),
    "fc_linear_none": lambda: LTCCell(
        ncps.wirings.FullyConnected(7), in_features=5, input_mapping="linear", output_mapping=None
    ),
    "fc_none_linear_implicit": lambda: LTCCell(
        ncps.wirings.FullyConnected(6, output_dim=3),
        in_features=5,
        input_mapping=None,
        output_mapping="linear",
        implicit_param_constraints=True,
    ),
    "ncp_implicit_unfolds": lambda: LTCCell(
        NCP(4, 3, 2, 2, 2, 2, 2), in_features=5, ode_unfolds=3, implicit_param_constraints=True, epsilon=1e-3
    ),
}


@pytest.mark.parametrize("name", sorted(LTC_CASES))
@pytest.mark.parametrize("ts", ["zero", "scalar", "per_sample"])
def test_ltc_infer_equals_the_reference_step(name, ts):
    """Wirings, both mappings, both constraint modes, Δt = 0, a float and per-sample (incl. 0)."""
    mx.random.seed(1)
    cell = LTC_CASES[name]()
    # Parameters away from their defaults, so the mappings and constraints matter.
    cell.update({k: v + 0.3 * mx.random.normal(v.shape) for k, v in cell.trainable_parameters().items()})
    dt = {"zero": 0.0, "scalar": 0.7, "per_sample": mx.array([[0.5], [0.0], [2.0], [1.0]])}[ts]
    x = mx.random.normal((5, 4, 5))
    h_ref = h = mx.random.normal((4, cell.state_size)) * 0.5
    for t in range(5):
        with kernels.use("reference"):
            y_ref, h_ref = cell(x[t], h_ref, dt)
        y, h = cell.infer(x[t], h, dt)
        assert y.shape == y_ref.shape == (4, cell.output_size) and h.shape == h_ref.shape
        np.testing.assert_allclose(np.array(y), np.array(y_ref), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.array(h), np.array(h_ref), rtol=1e-5, atol=1e-5)
    if ts == "zero":
        np.testing.assert_array_equal(np.array(h), np.array(h_ref))


def _assert_infer_sees_change(cell, x, h, y0):
    """After the parameters changed, ``infer`` equals the reference step and differs from ``y0``
    (its output before the change)."""
    y1, h1 = cell.infer(x, h)
    with kernels.use("reference"):
        y_ref, h_ref = cell(x, h)
    np.testing.assert_allclose(np.array(y1), np.array(y_ref), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.array(h1), np.array(h_ref), rtol=1e-5, atol=1e-5)
    assert not np.allclose(np.array(y0), np.array(y1))


@pytest.mark.skipif(not kernels.extension_available(), reason="the extension did not build")
def test_unprepared_infer_hooks_equal_the_prepared_steps():
    """The hooks' own ``infer`` (``_ext.*_step_now``, which prepares at every call: the checked
    fallback of ``Cell.infer``) computes what the prepared step computes, and sees new arrays."""
    from ncps.backends.cpu import cfc as cpu_cfc
    from ncps.backends.cpu import ltc as cpu_ltc

    mx.random.seed(2)
    for cell, fused in ((LTCCell(AutoNCP(8, 2), in_features=3), cpu_ltc), (WiredCfCCell(3, AutoNCP(8, 2)), cpu_cfc)):
        x, h = mx.random.normal((2, 3)), mx.random.normal((2, 8)) * 0.1
        for ts in (0.5, mx.array([[1.0], [0.0]])):
            for a, b in zip(fused.infer(cell, x, h, ts), cell.infer(x, h, ts)):
                np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-6, atol=1e-6)
        y0 = fused.infer(cell, x, h, 1.0)[0]
        cell.update(_scaled(cell, 2.0))
        y1 = fused.infer(cell, x, h, 1.0)[0]
        np.testing.assert_allclose(np.array(y1), np.array(cell.infer(x, h)[0]), rtol=1e-6, atol=1e-6)
        assert not np.allclose(np.array(y0), np.array(y1))


@pytest.mark.skipif(not kernels.extension_available(), reason="the extension did not build")
def test_ltc_step_now_rejects_bad_shapes():
    cell = LTCCell(AutoNCP(8, 2), in_features=3)
    params = [cell.get(k) for k in ncps.backends.cpu.ltc._RAW_PARAMS]
    ext = kernels._ext
    with pytest.raises(ValueError, match=r"dt must have shape \(B, 1\) = \(2, 1\)"):
        ext.ltc_step_now(
            mx.zeros((2, 3)), mx.zeros((2, 8)), mx.ones((2,)), params, None, None, None, None, 2, 6, 1e-8, False
        )
    with pytest.raises(ValueError, match=r"sensory_mu must have shape \(I, N\) = \(3, 8\)"):
        bad = list(params)
        bad[2] = mx.zeros((4, 8))
        ext.ltc_step_now(
            mx.zeros((1, 3)), mx.zeros((1, 8)), mx.ones((1, 1)), bad, None, None, None, None, 2, 6, 1e-8, False
        )
    with pytest.raises(ValueError, match=r"output_w must have shape \(motor,\) = \(2,\)"):
        ext.ltc_step_now(
            mx.zeros((1, 3)),
            mx.zeros((1, 8)),
            mx.ones((1, 1)),
            params,
            None,
            None,
            mx.ones((3,)),
            None,
            2,
            6,
            1e-8,
            False,
        )


def _scaled(cell, factor: float = 1.5) -> dict:
    from mlx.utils import tree_map

    return tree_map(lambda v: v * factor, cell.trainable_parameters())


def _change_by_update(cell):
    cell.update(_scaled(cell))


def _change_by_load_weights(cell, tmp_path):
    other = type(cell)(**cell.get_config())
    other.update(_scaled(cell))
    path = str(tmp_path / "w.safetensors")
    other.save_weights(path)
    cell.load_weights(path)


def _change_by_optimizer(cell):
    import mlx.nn as nn
    import mlx.optimizers as optim

    x = mx.random.normal((4, cell.input_size))

    def loss(model, x):
        y, h = model(x)
        return mx.sum(y * y) + mx.sum(h)

    grads = nn.value_and_grad(cell, loss)(cell, x)[1]
    optim.SGD(learning_rate=0.5).update(cell, grads)
    mx.eval(cell.parameters())


def _change_by_assignment(cell):
    """One array assigned in place of another: a sub-module's attribute (or the cell's own)."""
    if isinstance(cell, LTCCell):
        cell.w = cell.w * 2.0
    else:
        unit = cell.layer_0 if isinstance(cell, WiredCfCCell) else cell
        unit.ff1.weight = unit.ff1.weight * -1.0


def _change_in_place(cell):
    """MLX arrays also change in place (``w[...] = v``, ``w += d``): same Python object, new data."""
    if isinstance(cell, LTCCell):
        cell.w[...] = cell.w * 2.0
        cell.output_b += 1.0
    else:
        unit = cell.layer_0 if isinstance(cell, WiredCfCCell) else cell
        unit.ff1.weight[...] = unit.ff1.weight * -1.0
        unit.ff1.bias += 0.5


CHANGES = {
    "update": _change_by_update,
    "load_weights": _change_by_load_weights,
    "optimizer": _change_by_optimizer,
    "assignment": _change_by_assignment,
    "in_place": _change_in_place,
}


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("name", ["cfc_default", "cfc_pure_deep", "wired", "ltc"])
def test_infer_sees_replaced_parameters(name, change, tmp_path):
    """The prepared step is keyed by the identities of the cell's arrays: an optimizer step,
    update, load_weights or an assignment must be used by the next step."""
    mx.random.seed(3)
    cell = CELLS[name]()
    x, h = mx.random.normal((2, 5)), mx.random.normal((2, cell.state_size))
    y0, _ = cell.infer(x, h)
    assert cell._prepared is not None or not kernels.extension_available()
    fn = CHANGES[change]
    fn(cell, tmp_path) if change == "load_weights" else fn(cell)
    _assert_infer_sees_change(cell, x, h, y0)


def test_infer_sees_a_replaced_backbone_layer_and_options():
    import mlx.nn as nn

    mx.random.seed(4)
    cell = CfCCell(5, 8, backbone_units=16, backbone_layers=2)
    x, h = mx.random.normal((1, 5)), mx.random.normal((1, 8))
    y0, _ = cell.infer(x, h)
    cell.backbone[1] = nn.Linear(16, 16)  # a list item replaced
    _assert_infer_sees_change(cell, x, h, y0)
    ltc = LTCCell(AutoNCP(10, 2), in_features=5)
    y0, _ = ltc.infer(x, mx.zeros((1, 10)) + 0.3)
    ltc.ode_unfolds = 1  # a scalar option (the cell's __dict__)
    _assert_infer_sees_change(ltc, x, mx.zeros((1, 10)) + 0.3, y0)


def test_infer_follows_train_and_eval_with_backbone_dropout():
    """In training mode a dropout backbone is not fused: infer runs the reference step (random
    masks); back in eval mode the prepared step is used again and is deterministic."""
    mx.random.seed(5)
    cell = CfCCell(5, 8, backbone_units=32, backbone_dropout=0.5)
    cell.eval()
    x, h = mx.random.normal((1, 5)), mx.random.normal((1, 8))
    y0, _ = cell.infer(x, h)
    with kernels.use("reference"):
        np.testing.assert_allclose(np.array(y0), np.array(cell(x, h)[0]), rtol=1e-5, atol=1e-5)
    cell.train()
    ys = [np.array(cell.infer(x, h)[0]) for _ in range(4)]
    assert any(not np.allclose(ys[0], y) for y in ys[1:])  # dropout is active
    cell.eval()
    np.testing.assert_allclose(np.array(cell.infer(x, h)[0]), np.array(y0), rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not kernels.extension_available(), reason="the reference path computes in the parameters' dtype")
@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
@pytest.mark.parametrize("name", ["cfc_default", "wired", "ltc"])
def test_infer_after_set_dtype_uses_the_new_parameters(name, dtype):
    """set_dtype replaces every array: the prepared step computes in float32 from the rounded
    parameters, i.e. equals the float32 reference step of a cell holding those rounded values."""
    mx.random.seed(6)
    cell = CELLS[name]()
    x, h = mx.random.normal((3, 5)), mx.random.normal((3, cell.state_size)) * 0.5
    cell.infer(x, h)
    cell.set_dtype(dtype)
    y, h1 = cell.infer(x, h)
    assert y.dtype == mx.float32
    twin = CELLS[name]()
    twin.update(cell.parameters())
    twin.set_dtype(mx.float32)
    with kernels.use("reference"):
        y_ref, h_ref = twin(x, h)
    np.testing.assert_allclose(np.array(y), np.array(y_ref), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.array(h1), np.array(h_ref), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_infer_arguments_of_every_kind(name):
    """The prepared step takes float32 arrays and a float ts; everything else (other dtypes,
    lazy or strided arrays, numpy inputs, int ts, per-sample ts with invalid entries, a new
    batch size) still equals the reference step."""
    mx.random.seed(7)
    cell = CELLS[name]()
    N = cell.state_size
    base = mx.random.normal((4, 5))
    h0 = mx.random.normal((4, N)) * 0.5
    cases = [
        (base, h0, 1.0),
        (base.astype(mx.float16), h0, 1),  # half input, int ts
        (mx.random.normal((5, 4)).T, h0.astype(mx.bfloat16), 0.25),  # strided x, bfloat16 state
        (np.array(base), np.array(h0), np.float32(0.5)),  # numpy inputs
        (base[:1], h0[:1], mx.array([0.3])),  # another batch size, ts (B,)
        (base, h0, mx.array([[0.5], [-1.0], [float("nan")], [2.0]])),  # invalid per-sample ts -> NaN
        (base[:2] * 2, (h0 + 1)[:2], mx.array(0.7)),  # lazy inputs, 0-d ts
        (base, None, 1.0),  # zero state
    ]
    for x, h, ts in cases:
        with kernels.use("reference"):
            y_ref, h_ref = cell(x, h, ts)
        y, h1 = cell.infer(x, h, ts)
        assert y.shape == y_ref.shape and h1.shape == h_ref.shape
        np.testing.assert_allclose(np.array(y), np.array(y_ref.astype(mx.float32)), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.array(h1), np.array(h_ref.astype(mx.float32)), rtol=1e-5, atol=1e-5)
    assert np.isnan(np.array(h1)).sum() == 0
    y, h1 = cell.infer(base, h0, mx.array([[0.5], [-1.0], [float("nan")], [2.0]]))
    assert np.isnan(np.array(h1)[1:3]).all() and np.isfinite(np.array(h1)[[0, 3]]).all()


@pytest.mark.skipif(not kernels.extension_available(), reason="the extension did not build")
def test_prepared_step_refuses_what_it_does_not_take():
    """``step`` answers None (the cell's checked path then raises) rather than computing."""
    cell = CfCCell(5, 8)
    cell.infer(mx.zeros((1, 5)), mx.zeros((1, 8)))
    step = cell._prepared
    x, h = mx.zeros((2, 5)), mx.zeros((2, 8))
    assert step.step(x, h, 1.0) is not None
    for args in [
        (mx.zeros((2, 4)), h, 1.0),
        (x, mx.zeros((2, 7)), 1.0),
        (x, mx.zeros((3, 8)), 1.0),
        (mx.zeros((2, 1, 5)), h, 1.0),
        (x, h, -1.0),
        (x, h, float("inf")),
        (x, h, True),
        (x, h, mx.ones((3, 1))),
        (x, h, "1"),
        ([[0.0] * 5] * 2, h, 1.0),
        (x, None, 1.0),
        (x.astype(mx.int32), h, 1.0),
        (x.astype(mx.complex64), h, 1.0),
    ]:
        assert step.step(*args) is None
    cell.ff1.bias = cell.ff1.bias + 1.0
    assert not step.valid() and step.step(x, h, 1.0) is None


@pytest.mark.parametrize("name", ["cfc_default", "wired", "ltc"])
def test_a_cell_with_a_prepared_step_is_freed(name):
    """The cell holds its prepared step and the step holds the cell's dicts (a cycle): the step
    takes part in garbage collection, so a dropped cell and its parameters are freed."""
    import gc
    import weakref

    cell = CELLS[name]()
    cell.infer(mx.zeros((1, 5)), mx.zeros((1, cell.state_size)))
    assert cell._prepared is not None or not kernels.extension_available()
    ref = weakref.ref(cell)
    del cell
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("name", ["cfc_default", "wired", "ltc"])
def test_a_cell_with_a_prepared_step_copies_and_pickles(name):
    """deepcopy and pickle leave the prepared step out; the copy prepares its own step from its
    own arrays (changing the copy does not change the original)."""
    import copy
    import pickle

    mx.random.seed(8)
    cell = CELLS[name]()
    x, h = mx.random.normal((2, 5)), mx.random.normal((2, cell.state_size)) * 0.5
    y0, _ = cell.infer(x, h)
    for twin in (copy.deepcopy(cell), pickle.loads(pickle.dumps(cell))):
        assert twin._prepared is None
        np.testing.assert_allclose(np.array(twin.infer(x, h)[0]), np.array(y0), rtol=1e-6, atol=1e-6)
        assert twin._prepared is not None or not kernels.extension_available()
        twin.update(_scaled(twin, 2.0))
        _assert_infer_sees_change(twin, x, h, y0)
        np.testing.assert_allclose(np.array(cell.infer(x, h)[0]), np.array(y0), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(LTC_CASES))
def test_ltc_infer_at_batch_one_equals_the_reference_step(name):
    """Batch 1 runs its own kernel (vectorised over synapses, not samples): wirings, mappings,
    constraints, Δt = 0, a float, a (1, 1) array and an invalid one (the state turns NaN)."""
    mx.random.seed(9)
    cell = LTC_CASES[name]()
    cell.update({k: v + 0.3 * mx.random.normal(v.shape) for k, v in cell.trainable_parameters().items()})
    x = mx.random.normal((6, 1, 5))
    h_ref = h = mx.random.normal((1, cell.state_size)) * 0.5
    for t, dt in enumerate([0.7, 0.0, mx.array([[2.0]]), 1, mx.array([0.3]), 0.05]):
        with kernels.use("reference"):
            y_ref, h_ref = cell(x[t], h_ref, dt)
        h_before = h
        y, h = cell.infer(x[t], h, dt)
        np.testing.assert_allclose(np.array(y), np.array(y_ref), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.array(h), np.array(h_ref), rtol=1e-5, atol=1e-5)
        if isinstance(dt, float) and dt == 0.0:  # the state is kept exactly
            np.testing.assert_array_equal(np.array(h), np.array(h_before))
    for bad in (mx.array([[-1.0]]), mx.array([[float("nan")]]), mx.array([[float("inf")]])):
        with kernels.use("reference"):
            _, h_ref = cell(x[0], h, bad)
        _, h_bad = cell.infer(x[0], h, bad)
        assert np.isnan(np.array(h_bad)).all() and np.isnan(np.array(h_ref)).all()
