"""Half precision (README "Precision"): layers and cells in float16 / bfloat16 take and return
their dtype on the reference and the fused path, agree with the float32 reference on the same
rounded weights, keep their dtype through save/load and interop; integer and float64 inputs are
cast to the layer's dtype; ``fit(precision=...)`` trains half compute on float32 masters.

Tolerances, as ``max |a - b| / max |b|`` per array (outputs, and each parameter's gradient),
against the float32 reference path run on the half model's weights and inputs widened to float32:

- fused path (half inputs and parameters, float32 state and sums inside): bfloat16 1e-2 outputs,
  2e-2 gradients; float16 2e-3 and 4e-3;
- reference path (every operation in the half dtype, the state rounded at every step):
  bfloat16 5e-2 and 1e-1; float16 5e-3 and 1e-2.
"""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_map

import ncps
from ncps import kernels, optimizers, training
from ncps.wirings import AutoNCP

HALF = {"bf16": mx.bfloat16, "fp16": mx.float16}
FUSED_TOL = {"bf16": (1e-2, 2e-2), "fp16": (2e-3, 4e-3)}
REFERENCE_TOL = {"bf16": (5e-2, 1e-1), "fp16": (5e-3, 1e-2)}

LAYERS = {
    "cfc": lambda: ncps.CfC(3, 8, backbone_units=16),
    "cfc_mixed": lambda: ncps.CfC(3, 8, backbone_units=16, mixed_memory=True),
    "cfc_wired": lambda: ncps.CfC(3, AutoNCP(10, 4, seed=1)),
    "ltc": lambda: ncps.LTC(3, 8),
    "ltc_mixed": lambda: ncps.LTC(3, 8, mixed_memory=True),
    "ctrnn": lambda: ncps.CTRNN(3, 8),
    "ctgru": lambda: ncps.CTGRU(3, 8, num_timescales=4),
}
FUSED = ("cfc", "cfc_mixed", "cfc_wired", "ltc", "ltc_mixed")


def _state(s):
    return s[0] if isinstance(s, tuple) else s


def _rel(a: mx.array, b: mx.array) -> float:
    b = b.astype(mx.float32)
    return (mx.abs(a.astype(mx.float32) - b).max() / (mx.abs(b).max() + 1e-6)).item()


def _widened(make, model):
    """A float32 copy of ``model`` (built by ``make``) holding exactly its rounded weights."""
    ref = make()
    ref.update(tree_map(lambda a: a.astype(mx.float32), model.parameters()))
    return ref


@pytest.mark.parametrize("half", HALF)
@pytest.mark.parametrize("name", LAYERS)
def test_layer_returns_its_dtype_on_every_path(name, half):
    dtype = HALF[half]
    mx.random.seed(0)
    m = LAYERS[name]()
    m.set_dtype(dtype)
    x = mx.random.normal((2, 5, 3)).astype(dtype)
    modes = ("reference", "fused", "auto") if name in FUSED else ("reference", "auto")
    for mode in modes:
        with kernels.use(mode):
            y, s = m(x, timespans=mx.full((2, 5), 0.7))
            s2 = m(x[:, :2], state=s)[1]
        assert y.dtype == dtype, (mode, y.dtype)
        for part in s if isinstance(s, tuple) else (s,):
            assert part.dtype == dtype, (mode, part.dtype)
        assert _state(s2).dtype == dtype
        assert np.isfinite(np.array(y.astype(mx.float32))).all()


def test_layer_options_keep_the_dtype():
    """Projection, bidirectional merging, lengths and the unbatched layout keep bfloat16."""
    m = ncps.CfC(3, 6, proj_size=2, bidirectional=True, backbone_units=8)
    m.set_dtype(mx.bfloat16)
    x = mx.random.normal((3, 4, 3)).astype(mx.bfloat16)
    for mode in ("reference", "fused"):
        with kernels.use(mode):
            y, (sf, sb) = m(x, lengths=[4, 2, 3])
            y1, _ = m(x[0])
        assert (y.dtype, sf.dtype, sb.dtype, y1.dtype) == (mx.bfloat16,) * 4


@pytest.mark.parametrize("name", ["cfc", "ltc", "ctgru"])
def test_mixed_dtypes_follow_mlx_promotion(name):
    """Output dtype = mx.result_type(x, state, parameters) on both paths, as mlx.nn layers."""
    mx.random.seed(1)
    m = LAYERS[name]()
    m.set_dtype(mx.bfloat16)
    cases = [(mx.float32, mx.float32), (mx.float16, mx.float32), (mx.bfloat16, mx.bfloat16)]
    modes = ("reference", "fused") if name in FUSED else ("reference",)
    for x_dtype, expected in cases:
        x = mx.random.normal((2, 3, 3)).astype(x_dtype)
        for mode in modes:
            with kernels.use(mode):
                y, s = m(x)
            assert (y.dtype, s.dtype) == (expected, expected), (x_dtype, mode)
    # A float32 state promotes a bfloat16 model and input to float32.
    x = mx.random.normal((2, 3, 3)).astype(mx.bfloat16)
    for mode in modes:
        with kernels.use(mode):
            y, _ = m(x, state=mx.zeros((2, m.state_size)))
        assert y.dtype == mx.float32
    # A float32 model with a half input computes in float32.
    f32 = LAYERS[name]()
    for mode in modes:
        with kernels.use(mode):
            assert f32(x)[0].dtype == mx.float32


@pytest.mark.parametrize("half", HALF)
@pytest.mark.parametrize("name", LAYERS)
def test_outputs_and_gradients_match_float32_on_rounded_weights(name, half):
    dtype = HALF[half]
    mx.random.seed(2)
    make = LAYERS[name]
    m = make()
    m.set_dtype(dtype)
    ref = _widened(make, m)
    x = mx.random.normal((3, 8, 3)).astype(dtype)
    ts = mx.random.uniform(0.5, 1.5, (3, 8))

    def loss(model, inp):
        y, _ = model(inp, timespans=ts)
        return (y.astype(mx.float32) ** 2).mean()

    with kernels.use("reference"):
        y32 = ref(x.astype(mx.float32), timespans=ts)[0]
        g32 = nn.value_and_grad(ref, lambda inp: loss(ref, inp))(x.astype(mx.float32))[1]
    paths = [("reference", REFERENCE_TOL[half])] + ([("fused", FUSED_TOL[half])] if name in FUSED else [])
    for mode, (out_tol, grad_tol) in paths:
        with kernels.use(mode):
            y = m(x, timespans=ts)[0]
            g = nn.value_and_grad(m, lambda inp: loss(m, inp))(x)[1]
        assert _rel(y, y32) < out_tol, (mode, _rel(y, y32))
        flat, flat32 = tree_flatten(g), tree_flatten(g32)
        assert [k for k, _ in flat] == [k for k, _ in flat32]
        for (key, a), (_, b) in zip(flat, flat32):
            assert a.dtype == dtype, (mode, key, a.dtype)  # a half parameter's gradient is half
            assert _rel(a, b) < grad_tol, (mode, key, _rel(a, b))


CELLS = {
    "cfc": lambda: ncps.CfCCell(3, 8, backbone_units=16),
    "cfc_wired": lambda: ncps.WiredCfCCell(3, AutoNCP(10, 4, seed=1)),
    "ltc": lambda: ncps.LTCCell(AutoNCP(8, 3, seed=2), 3),
    "ctrnn": lambda: ncps.CTRNNCell(3, 8),
    "ctgru": lambda: ncps.CTGRUCell(3, 8, num_timescales=4),
}


@pytest.mark.parametrize("half", HALF)
@pytest.mark.parametrize("name", CELLS)
def test_cell_call_and_infer_return_the_cell_dtype(name, half):
    dtype = HALF[half]
    out_tol = FUSED_TOL[half][0] if name in FUSED else REFERENCE_TOL[half][0]
    mx.random.seed(3)
    cell = CELLS[name]()
    cell.set_dtype(dtype)
    ref = _widened(CELLS[name], cell)
    x = mx.random.normal((2, 3)).astype(dtype)
    with kernels.use("reference"):
        y32, s32 = ref(x.astype(mx.float32), ts=mx.array([[0.5], [1.0]]))
    for mode in ("reference", "auto"):
        with kernels.use(mode):
            y, s = cell(x, ts=mx.array([[0.5], [1.0]]))
        assert (y.dtype, s.dtype) == (dtype, dtype)
        assert _rel(y, y32) < out_tol
    y, s = cell.infer(x, ts=mx.array([0.5, 1.0]))
    y2, s2 = cell.infer(x, s, ts=mx.array([0.5, 1.0]))  # the prepared step, fed its own half state
    assert (y.dtype, s.dtype, y2.dtype, s2.dtype) == (dtype,) * 4
    assert _rel(y, y32) < out_tol
    # A float32 input promotes the streaming step too, as it does the call.
    assert cell.infer(x.astype(mx.float32))[0].dtype == mx.float32
    cell.set_dtype(mx.float32)  # a replaced parameter re-prepares the step in the new dtype
    assert cell.infer(x)[0].dtype == mx.float32


@pytest.mark.parametrize("name", ["cfc", "ltc_mixed", "cfc_wired"])
def test_save_and_load_keep_the_dtype(name, tmp_path):
    mx.random.seed(4)
    m = LAYERS[name]()
    m.set_dtype(mx.bfloat16)
    path = tmp_path / "m.safetensors"
    ncps.save(m, path)
    back = ncps.load(path)
    assert {a.dtype for _, a in tree_flatten(back.parameters())} == {mx.bfloat16}
    x = mx.random.normal((2, 4, 3)).astype(mx.bfloat16)
    y, y_back = m(x)[0], back(x)[0]
    assert y_back.dtype == mx.bfloat16
    assert mx.array_equal(y, y_back).item()


def test_interop_casts_checkpoints_to_the_model_dtype():
    from ncps.interop import load_torch_state_dict

    torch = pytest.importorskip("torch")
    src = ncps.CfC(3, 8, backbone_units=16)
    state = {k: np.array(v) for k, v in tree_flatten(src.parameters())}  # official names, float32
    m = ncps.CfC(3, 8, backbone_units=16)
    m.set_dtype(mx.bfloat16)
    load_torch_state_dict(m, state)
    params = dict(tree_flatten(m.parameters()))
    assert {a.dtype for a in params.values()} == {mx.bfloat16}
    for k, v in state.items():
        assert np.allclose(np.array(params[k].astype(mx.float32)), v, rtol=1e-2, atol=1e-2), k
    # A bfloat16 torch checkpoint (numpy has no bfloat16) into a float32 model: widened explicitly.
    f32 = ncps.CfC(3, 8, backbone_units=16)
    load_torch_state_dict(f32, {k: torch.tensor(v).to(torch.bfloat16) for k, v in state.items()})
    got = dict(tree_flatten(f32.parameters()))
    assert {a.dtype for a in got.values()} == {mx.float32}
    for k, v in state.items():
        assert np.allclose(np.array(got[k]), v, rtol=1e-2, atol=1e-2), k


# -- item 6: integer and float64 inputs ------------------------------------------------------------


@pytest.mark.parametrize("in_dtype", [mx.int32, mx.bool_, mx.float64])
@pytest.mark.parametrize("model_dtype", [mx.float32, mx.bfloat16])
@pytest.mark.parametrize("name", ["cfc", "ltc", "ctrnn"])
def test_integer_and_float64_inputs_are_cast_to_the_layer_dtype(name, model_dtype, in_dtype):
    m = LAYERS[name]()
    m.set_dtype(model_dtype)
    x = mx.ones((2, 3, 3)).astype(in_dtype)
    expected = m(mx.ones((2, 3, 3)).astype(model_dtype))
    modes = ("reference", "fused") if name in FUSED else ("reference",)
    for mode in modes:
        with kernels.use(mode):
            y, s = m(x, state=mx.zeros((2, m.state_size)).astype(in_dtype))
            y_ref = m(mx.ones((2, 3, 3)).astype(model_dtype))[0]
        assert (y.dtype, s.dtype) == (model_dtype, model_dtype), mode
        assert mx.array_equal(y, y_ref).item()
    assert expected[0].dtype == model_dtype
    cell = m.rnn_cell
    y, s = cell(mx.ones((2, 3)).astype(in_dtype))
    assert (y.dtype, s.dtype) == (model_dtype, model_dtype)


# -- mixed-precision training ----------------------------------------------------------------------


def _regression(n=48):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 6, 2)).astype(np.float32)
    return X, (X.sum(axis=(1, 2))[:, None] / 4).astype(np.float32)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_fit_mixed_precision_trains_half_on_float32_masters(precision):
    X, y = _regression()
    seen = set()

    def loss(model, x, t):
        out = model(x)[0]
        seen.add(out.dtype)
        return nn.losses.mse_loss(out, t)

    mx.random.seed(0)
    m = ncps.CfC(2, 8, proj_size=1, return_sequences=False, backbone_units=16)
    before = training.evaluate(m, loss, (X, y), batch_size=48)["loss"]
    opt = optimizers.adam(1e-2)
    h = training.fit(
        m, loss, (X, y), optimizer=opt, epochs=6, batch_size=16, progress=False, seed=0, precision=precision
    )
    assert HALF[precision] in seen  # the forward ran in half
    assert {a.dtype for _, a in tree_flatten(m.parameters())} == {mx.float32}  # float32 masters
    assert h.history["loss"][-1] < 0.5 * before
    assert all(np.isfinite(h.history["loss"]))


def _fp16_step(monkeypatch, init_scale: float, growth: int = 2000, loss_scale: float = 1.0, lr: float = 0.1):
    """A float16 mixed-precision training step (SGD) on a small CfC, its model and a batch."""
    monkeypatch.setattr(training.LossScaler, "INIT_SCALE", init_scale)
    monkeypatch.setattr(training.LossScaler, "GROWTH_INTERVAL", growth)
    X, y = _regression(16)
    mx.random.seed(0)
    m = ncps.CfC(2, 8, proj_size=1, return_sequences=False, backbone_units=16)

    def loss(model, x, t):
        return loss_scale * nn.losses.mse_loss(model(x)[0], t)

    step = training._make_step(m, loss, optimizers.sgd(lr), {}, None, None, (), "fp16")
    return step, m, (mx.array(X), mx.array(y))


def test_fp16_loss_scaling_keeps_gradients_that_float16_would_flush(monkeypatch):
    """A loss of 1e-9 * mse has gradients below float16's smallest subnormal (6e-8): unscaled, the
    float16 backward flushes most of them to zero; scaled by 2^15 the step matches float32's."""
    deltas = {}
    for name, scale in (("scaled", 2.0**15), ("unscaled", 1.0)):
        step, m, batch = _fp16_step(monkeypatch, scale, loss_scale=1e-9, lr=1e7)  # updates of ~1e-3
        before = dict(tree_flatten(m.parameters()))
        step(mx.array(1.0), *batch)
        deltas[name] = {k: np.array(v - before[k]) for k, v in tree_flatten(m.parameters())}
    mx.random.seed(0)
    ref = ncps.CfC(2, 8, proj_size=1, return_sequences=False, backbone_units=16)
    before = dict(tree_flatten(ref.parameters()))
    X, y = _regression(16)
    g = nn.value_and_grad(ref, lambda model, x, t: 1e-9 * nn.losses.mse_loss(model(x)[0], t))(ref, X, y)[1]
    want = {k: -1e7 * np.array(v) for k, v in tree_flatten(g)}
    total = sum(np.abs(w).sum() for w in want.values())
    err = {n: sum(np.abs(d[k] - want[k]).sum() for k in want) / total for n, d in deltas.items()}
    assert err["scaled"] < 0.05 < 0.5 < err["unscaled"], err


def test_fp16_overflowing_step_changes_nothing_and_halves_the_scale(monkeypatch):
    step, m, batch = _fp16_step(monkeypatch, 2.0**40)  # the scaled loss overflows float16
    before = dict(tree_flatten(m.parameters()))
    values = step(mx.array(1.0), *batch)
    assert np.isfinite(np.array(values)).all()  # the reported loss is the unscaled one
    assert all(mx.array_equal(v, before[k]).item() for k, v in tree_flatten(m.parameters()))
    assert step.state[0]["scale"].item() == 2.0**39
    # Halved until the scaled gradients fit, then the parameters move.
    for _ in range(30):
        step(mx.array(1.0), *batch)
    assert step.state[0]["scale"].item() < 2.0**20
    assert not all(mx.array_equal(v, before[k]).item() for k, v in tree_flatten(m.parameters()))


def test_fp16_scale_doubles_after_the_growth_interval(monkeypatch):
    step, _, batch = _fp16_step(monkeypatch, 2.0**10, growth=3)
    scales = []
    for _ in range(7):
        step(mx.array(1.0), *batch)
        scales.append(step.state[0]["scale"].item())
    assert scales == [2.0**10] * 2 + [2.0**11] * 3 + [2.0**12] * 2


def test_fit_precision_is_validated():
    X, y = _regression(8)
    loss = lambda model, x, t: nn.losses.mse_loss(model(x)[0], t)  # noqa: E731
    m = ncps.CfC(2, 4, proj_size=1, return_sequences=False, backbone_units=4)
    for bad in ("bfloat16", "half", None, 16):
        with pytest.raises(ValueError, match="precision"):
            training.fit(m, loss, (X, y), optimizer=optimizers.adam(1e-2), epochs=1, progress=False, precision=bad)
    m.set_dtype(mx.bfloat16)
    with pytest.raises(ValueError, match="float32 master weights"):
        training.fit(m, loss, (X, y), optimizer=optimizers.adam(1e-2), epochs=1, progress=False, precision="bf16")


def test_mini_keras_passes_precision_through():
    from ncps import mini_keras as keras

    X, y = _regression(32)
    mx.random.seed(0)
    model = keras.Sequential([keras.layers.CfC(8, backbone_units=8, input_shape=(6, 2)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizers.adam(1e-2), loss="mse")
    h = model.fit(X, y, epochs=4, batch_size=16, verbose=0, precision="bf16")
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert {a.dtype for _, a in tree_flatten(model.parameters())} == {mx.float32}
    with pytest.raises(ValueError, match="precision"):
        model.fit(X, y, epochs=1, verbose=0, precision="float8")
