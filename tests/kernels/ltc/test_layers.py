"""The LTC layer and cell on the fused primitive against the reference path: every layer option,
outputs to 1e-5 and gradients of every parameter to 1e-4 relative."""

from types import SimpleNamespace

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten

from ncps import LTC, LTCCell, kernels
from ncps.backends.cpu import ltc as cpu_ltc
from ncps.wirings import NCP, AutoNCP, FullyConnected, Random

pytestmark = pytest.mark.skipif(not kernels.extension_available(), reason="the extension did not build")

F = 5


def _evaluate(layer, x, state, ts, mode, loss):
    """Outputs and final state of ``layer`` under ``mode``, with the gradients of ``loss(model, x)``
    w.r.t. every parameter and x."""
    with kernels.use(mode):
        out, st = layer(x, state, timespans=ts)
        _, grads = nn.value_and_grad(layer, loss)(layer, x)
        gx = mx.grad(lambda x: loss(layer, x))(x)
        mx.eval(out, st, grads, gx)
    return out, st, dict(tree_flatten(grads)), gx


def run(layer, x, state, ts, mode):
    """Outputs, final state and gradients of a weighted loss w.r.t. x and every parameter."""
    R = mx.array(np.random.default_rng(1).normal(size=layer(x, state, timespans=ts)[0].shape).astype(np.float32))

    def loss(model, x):
        out, _ = model(x, state, timespans=ts)
        return (out * R).sum()

    return _evaluate(layer, x, state, ts, mode, loss)


def assert_same(fused, ref):
    out_f, st_f, g_f, gx_f = fused
    out_r, st_r, g_r, gx_r = ref
    assert float(mx.max(mx.abs(out_f - out_r))) <= 1e-5
    for a, b in zip(tree_flatten(st_f), tree_flatten(st_r)):
        assert float(mx.max(mx.abs(a[1] - b[1]))) <= 1e-5
    assert g_f.keys() == g_r.keys()
    for k in g_r:
        scale = max(1.0, float(mx.max(mx.abs(g_r[k]))))
        assert float(mx.max(mx.abs(g_f[k] - g_r[k]))) <= 1e-4 * scale, k
    assert float(mx.max(mx.abs(gx_f - gx_r))) <= 1e-4 * max(1.0, float(mx.max(mx.abs(gx_r))))


CONFIGS = {
    "fc": lambda: LTC(F, 6),
    "fc_explicit_linear": lambda: LTC(
        F, FullyConnected(6, 2), implicit_param_constraints=False, input_mapping="linear", output_mapping="linear"
    ),
    "random_identity": lambda: LTC(F, Random(7, 3, sparsity_level=0.6), input_mapping="none", output_mapping="none"),
    "ncp_one_unfold": lambda: LTC(F, NCP(4, 3, 2, 2, 2, 2, 2), ode_unfolds=1),
    "autoncp_last": lambda: LTC(F, AutoNCP(12, 3), return_sequences=False),
    "autoncp_time_major": lambda: LTC(F, AutoNCP(10, 2), batch_first=False),
    "bidirectional_concat": lambda: LTC(F, AutoNCP(10, 2), bidirectional=True),
    "bidirectional_ave_last": lambda: LTC(F, 5, bidirectional=True, merge_mode="ave", return_sequences=False),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_fused_layer_matches_reference(name):
    mx.random.seed(0)
    layer = CONFIGS[name]()
    B, T = 3, 7
    x = mx.random.normal((B, T, F) if layer.batch_first else (T, B, F))
    ts_shape = (B, T) if layer.batch_first else (T, B)
    ts = mx.random.uniform(0.2, 2.0, ts_shape)
    ts = mx.where(mx.random.uniform(shape=ts_shape) < 0.15, 0.0, ts)  # some Δt = 0
    state = None
    if not layer.bidirectional:
        state = mx.random.normal((B, layer.state_size)) * 0.5
    assert_same(run(layer, x, state, ts, "fused"), run(layer, x, state, ts, "reference"))


@pytest.mark.parametrize("B, T", [(1, 1), (1, 9), (5, 1)])
def test_fused_edge_sizes_and_default_timespans(B, T):
    mx.random.seed(1)
    layer = LTC(F, AutoNCP(9, 2))
    x = mx.random.normal((B, T, F))
    assert_same(run(layer, x, None, None, "fused"), run(layer, x, None, None, "reference"))
    unbatched_f = None
    with kernels.use("fused"):
        unbatched_f = layer(x[0])[0]
    with kernels.use("reference"):
        assert float(mx.max(mx.abs(layer(x[0])[0] - unbatched_f))) <= 1e-5


def test_fused_strided_inputs():
    layer = LTC(F, NCP(4, 3, 2, 2, 2, 2, 2))
    base = mx.random.normal((8, 2 * F, 6))
    x = base.transpose(0, 2, 1)[:, :, ::2]  # (8, 6, F), non-contiguous
    ts = mx.random.uniform(0.5, 1.5, (6, 8)).T  # (8, 6), transposed
    assert_same(run(layer, x, None, ts, "fused"), run(layer, x, None, ts, "reference"))


def spy_ext(monkeypatch, **wrappers):
    """Replace the primitives ``ncps._ext.<name>`` that ``ncps.backends.cpu.ltc`` calls by
    ``wrapper(real, *args, **kwargs)``, to count or forbid calls."""
    real = cpu_ltc._ext
    fns = {name: getattr(real, name) for name in ("ltc_sequence", "ltc_mixed_sequence")}
    for name, wrap in wrappers.items():
        fns[name] = (lambda wrap, fn: lambda *a, **k: wrap(fn, *a, **k))(wrap, fns[name])
    monkeypatch.setattr(cpu_ltc, "_ext", SimpleNamespace(**fns))


def test_fused_mode_really_calls_the_primitive(monkeypatch):
    calls = []
    spy_ext(monkeypatch, ltc_sequence=lambda real, *a, **k: calls.append(a[0].shape) or real(*a, **k))
    layer = LTC(F, AutoNCP(10, 2), bidirectional=True)
    with kernels.use("fused"):
        layer(mx.zeros((2, 4, F)))
    assert calls == [(2, 4, F), (2, 4, F)]  # one whole-sequence call per direction
    with kernels.use("reference"):
        layer(mx.zeros((2, 4, F)))
    assert len(calls) == 2
    with kernels.use("auto"):
        layer(mx.zeros((2, 4, F)))
    assert len(calls) == 4


def test_streaming_cell_step_is_one_fused_call(monkeypatch):
    cell = LTCCell(AutoNCP(12, 3), in_features=F)
    x, h = mx.random.normal((1, F)), mx.random.normal((1, 12))
    with kernels.use("reference"):
        y_ref, h_ref = cell(x, h, 0.7)
    calls = []
    spy_ext(monkeypatch, ltc_sequence=lambda real, *a, **k: calls.append(1) or real(*a, **k))
    with kernels.use("fused"):
        y, h2 = cell(x, h, 0.7)
    assert calls == [1]
    assert float(mx.max(mx.abs(y - y_ref))) <= 1e-5 and float(mx.max(mx.abs(h2 - h_ref))) <= 1e-5


# -- mixed memory: an LSTM before every LTC step, fused into LTCMixedSequence -----------------------
def run_mixed(layer, x, state, ts, mode):
    """Like run, with the final state in the loss too (so the cell state's gradient path is used)."""
    out0, st0 = layer(x, state, timespans=ts)
    rng = np.random.default_rng(2)
    R = [mx.array(rng.normal(size=a.shape).astype(np.float32)) for _, a in tree_flatten((out0, st0))]

    def loss(model, x):
        out, st = model(x, state, timespans=ts)
        return sum((a[1] * r).sum() for a, r in zip(tree_flatten((out, st)), R))

    return _evaluate(layer, x, state, ts, mode, loss)


MIXED_CONFIGS = {
    "fc": lambda: LTC(F, 6, mixed_memory=True),
    "ncp_explicit": lambda: LTC(
        F, NCP(4, 3, 2, 2, 2, 2, 2), mixed_memory=True, implicit_param_constraints=False, ode_unfolds=3
    ),
    "autoncp_last": lambda: LTC(F, AutoNCP(12, 3), mixed_memory=True, return_sequences=False),
    "autoncp_time_major_identity": lambda: LTC(
        F, AutoNCP(10, 2), mixed_memory=True, batch_first=False, input_mapping="none", output_mapping="linear"
    ),
    "bidirectional": lambda: LTC(F, AutoNCP(10, 2), mixed_memory=True, bidirectional=True),
    "bidirectional_last": lambda: LTC(
        F, 5, mixed_memory=True, bidirectional=True, merge_mode="sum", return_sequences=False
    ),
}


@pytest.mark.parametrize("name", sorted(MIXED_CONFIGS))
def test_fused_mixed_memory_matches_reference(name):
    mx.random.seed(4)
    layer = MIXED_CONFIGS[name]()
    B, T, N = 3, 7, layer.state_size
    x = mx.random.normal((B, T, F) if layer.batch_first else (T, B, F))
    ts_shape = (B, T) if layer.batch_first else (T, B)
    ts = mx.random.uniform(0.2, 2.0, ts_shape)
    ts = mx.where(mx.random.uniform(shape=ts_shape) < 0.2, 0.0, ts)  # some Δt = 0: the LSTM still runs
    hc = lambda: (mx.random.normal((B, N)) * 0.5, mx.random.normal((B, N)) * 0.5)  # noqa: E731
    state = (hc(), hc()) if layer.bidirectional else hc()
    fused_run, ref_run = run_mixed(layer, x, state, ts, "fused"), run_mixed(layer, x, state, ts, "reference")
    assert any(k.startswith("lstm.") for k in ref_run[2])
    assert_same(fused_run, ref_run)


@pytest.mark.parametrize("B, T", [(1, 1), (1, 6), (4, 1)])
def test_fused_mixed_memory_edge_sizes_and_defaults(B, T):
    mx.random.seed(5)
    layer = LTC(F, AutoNCP(9, 2), mixed_memory=True)
    x = mx.random.normal((B, T, F))
    assert_same(run_mixed(layer, x, None, None, "fused"), run_mixed(layer, x, None, None, "reference"))
    with kernels.use("fused"):
        out_f, (h_f, c_f) = layer(x[0], timespans=0.5)  # unbatched, scalar timespan
    with kernels.use("reference"):
        out_r, (h_r, c_r) = layer(x[0], timespans=0.5)
    for a, b in ((out_f, out_r), (h_f, h_r), (c_f, c_r)):
        assert a.shape == b.shape and float(mx.max(mx.abs(a - b))) <= 1e-5


def test_fused_mixed_memory_is_one_primitive_call_per_direction(monkeypatch):
    calls = []
    spy_ext(
        monkeypatch,
        ltc_mixed_sequence=lambda real, *a, **k: calls.append(a[0].shape) or real(*a, **k),
        ltc_sequence=lambda real, *a, **k: pytest.fail("plain LTC primitive called"),
    )
    layer = LTC(F, AutoNCP(10, 2), mixed_memory=True, bidirectional=True)
    x = mx.random.normal((2, 4, F))
    with kernels.use("fused"):
        out, _ = layer(x)
        mx.eval(mx.grad(lambda x: layer(x)[0].sum())(x))
    assert calls == [(2, 4, F)] * 4  # forward pass, then the gradient's forward: one call per direction each
    with kernels.use("reference"):
        ref, _ = layer(x)
    assert len(calls) == 4
    assert float(mx.max(mx.abs(out - ref))) <= 1e-5
    with kernels.use("auto"):
        auto, _ = layer(x)
    assert len(calls) == 6 and float(mx.max(mx.abs(auto - out))) == 0.0


def test_mixed_memory_streaming_cell_is_unaffected():
    # LTCCell's own step never has an LSTM: fused_why_not covers both and the cell path stays plain.
    cell = LTCCell(AutoNCP(8, 2), in_features=F)
    assert cell.fused_why_not() is None and cell.fused_why_not(mixed_memory=True) is None
    x, h = mx.random.normal((2, F)), mx.random.normal((2, 8))
    with kernels.use("fused"):
        y, h2 = cell(x, h, 0.5)
    with kernels.use("reference"):
        y_r, h2_r = cell(x, h, 0.5)
    assert float(mx.max(mx.abs(h2 - h2_r))) <= 1e-5


def test_training_on_the_fused_path_lowers_the_loss():
    mx.random.seed(3)
    model = LTC(2, AutoNCP(12, 1))
    t = np.linspace(0, 4 * np.pi, 40, dtype=np.float32)
    x = mx.array(np.stack([np.sin(t), np.cos(t)], -1)[None])
    y = mx.array(np.sin(2 * t)[None, :, None])
    opt = optim.Adam(learning_rate=0.02)

    def loss_fn(model):
        return nn.losses.mse_loss(model(x)[0], y)

    step = nn.value_and_grad(model, loss_fn)
    with kernels.use("fused"):
        first = None
        for _ in range(30):
            loss, grads = step(model)
            opt.update(model, grads)
            mx.eval(model.parameters(), opt.state)
            first = loss.item() if first is None else first
    assert loss.item() < 0.7 * first


def test_fused_under_compile():
    from functools import partial

    layer = LTC(F, AutoNCP(10, 2))
    x = mx.random.normal((3, 5, F))
    loss_and_grad = nn.value_and_grad(layer, lambda model, x: model(x)[0].sum())
    with kernels.use("reference"):
        loss_ref, g_ref = loss_and_grad(layer, x)
        mx.eval(loss_ref, g_ref)
    with kernels.use("fused"):
        step = partial(mx.compile, inputs=layer.state, outputs=layer.state)(lambda x: loss_and_grad(layer, x))
        for _ in range(2):  # the second call reuses the compiled graph
            loss, g = step(x)
            mx.eval(loss, g)
    assert abs(loss.item() - loss_ref.item()) <= 1e-4 * max(1.0, abs(loss_ref.item()))
    for (k, a), (_, b) in zip(tree_flatten(g), tree_flatten(g_ref)):
        assert float(mx.max(mx.abs(a - b))) <= 1e-4 * max(1.0, float(mx.max(mx.abs(b)))), k
