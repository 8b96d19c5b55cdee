"""Behaviour of the reference cells and sequence layers: layouts, timespans, states,
bidirectional merging, mixed memory, gradients against finite differences, bad input."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

import ncps
from ncps import CTGRU, CTRNN, LTC, CfC, CfCCell, CTGRUCell, CTRNNCell, LTCCell, WiredCfCCell
from ncps.wirings import NCP, AutoNCP, FullyConnected

B, T, F = 3, 6, 4


def close(a, b, tol=1e-5):
    return float(mx.max(mx.abs(mx.array(a) - mx.array(b)))) <= tol


def layers():
    return {
        "cfc": lambda: CfC(F, 8),
        "cfc_pure": lambda: CfC(F, 8, mode="pure"),
        "cfc_wired": lambda: CfC(F, AutoNCP(12, 3)),
        "cfc_mixed_proj": lambda: CfC(F, 8, mixed_memory=True, proj_size=2),
        "ltc": lambda: LTC(F, 6),
        "ltc_ncp": lambda: LTC(F, NCP(4, 3, 2, 2, 2, 2, 2)),
        "ltc_mixed": lambda: LTC(F, 5, mixed_memory=True),
        "ctrnn": lambda: CTRNN(F, 5),
        "ctgru": lambda: CTGRU(F, 5, num_timescales=4),
    }


@pytest.fixture(autouse=True)
def seeded():
    mx.random.seed(0)
    np.random.seed(0)
    with ncps.kernels.use("reference"):
        yield


@pytest.mark.parametrize("name", sorted(layers()))
def test_shapes_layouts_and_unbatched(name):
    layer = layers()[name]()
    x = mx.random.normal((B, T, F))
    out, state = layer(x)
    assert out.shape == (B, T, layer.output_size)
    h = state[0] if isinstance(state, tuple) else state
    assert h.shape == (B, layer.state_size)

    # time-major layout gives the transposed result
    layer.batch_first = False
    out_tm, _ = layer(x.transpose(1, 0, 2))
    assert close(out_tm.transpose(1, 0, 2), out)
    layer.batch_first = True

    # unbatched (T, F) equals the batch of one, with 1-D states
    out1, state1 = layer(x[0])
    assert out1.shape == (T, layer.output_size)
    assert close(out1, out[0])
    h1 = state1[0] if isinstance(state1, tuple) else state1
    assert h1.shape == (layer.state_size,)

    # return_sequences=False returns the last step
    layer.return_sequences = False
    last, _ = layer(x)
    assert close(last, out[:, -1])


@pytest.mark.parametrize("name", ["cfc", "cfc_wired", "ltc", "ctrnn", "ctgru", "cfc_mixed_proj"])
def test_state_continues_the_sequence(name):
    layer = layers()[name]()
    x = mx.random.normal((B, T, F))
    ts = mx.random.uniform(0.2, 2.0, (B, T))
    full, _ = layer(x, timespans=ts)
    first, state = layer(x[:, :3], timespans=ts[:, :3])
    second, _ = layer(x[:, 3:], state, timespans=ts[:, 3:])
    assert close(mx.concatenate([first, second], axis=1), full)


@pytest.mark.parametrize("name", ["cfc", "cfc_pure", "cfc_wired", "ltc", "ctrnn", "ctgru"])
def test_timespans_every_accepted_shape(name):
    layer = layers()[name]()
    x = mx.random.normal((B, T, F))
    per_sample = mx.array([0.5, 1.0, 2.0])
    expected, _ = layer(x, timespans=mx.broadcast_to(per_sample[:, None], (B, T)))
    for ts in (per_sample, per_sample[:, None] * mx.ones((B, T)), (per_sample[:, None] * mx.ones((B, T)))[..., None]):
        assert close(layer(x, timespans=ts)[0], expected)
    assert close(layer(x, time_delta=per_sample)[0], expected)
    layer.batch_first = False
    time_major = (per_sample[:, None] * mx.ones((B, T))).T
    assert close(layer(x.transpose(1, 0, 2), timespans=time_major)[0].transpose(1, 0, 2), expected)
    layer.batch_first = True
    # a float and None (= 1.0)
    assert close(layer(x, timespans=1.0)[0], layer(x)[0])
    # each sample sees its own elapsed time: sample b alone with its Δt gives the same row
    for b in range(B):
        alone, _ = layer(x[b : b + 1], timespans=per_sample[b : b + 1])
        assert close(alone[0], expected[b])


def test_per_sample_timespans_when_batch_equals_hidden_size():
    # The official package silently broadcasts (B,) against the hidden axis when B == H.
    layer = CfC(F, 4)
    x = mx.random.normal((4, T, F))
    ts = mx.array([0.1, 0.5, 1.0, 3.0])
    out, _ = layer(x, timespans=ts)
    for b in range(4):
        assert close(layer(x[b : b + 1], timespans=ts[b : b + 1])[0][0], out[b])


def test_ltc_zero_elapsed_time_keeps_the_state():
    layer = LTC(F, 6)
    x = mx.random.normal((B, T, F))
    h0 = mx.random.normal((B, 6))
    ts = mx.ones((B, T)).at[1, :].multiply(0.0)
    out, state = layer(x, h0, timespans=ts)
    assert not mx.any(mx.isnan(out)).item()
    assert close(state[1], h0[1], 0.0)
    grads = mx.grad(lambda h: layer(x, h, timespans=ts)[0].sum())(h0)
    assert mx.all(mx.isfinite(grads)).item()
    cell = layer.rnn_cell
    assert close(cell(x[:, 0], h0, 0.0)[1], h0, 0.0)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_merge_modes(merge_mode):
    layer = CfC(F, 5, bidirectional=True, merge_mode=merge_mode)
    x = mx.random.normal((B, T, F))
    ts = mx.random.uniform(0.2, 2.0, (B, T))
    out, (state_f, state_b) = layer(x, timespans=ts)
    fwd = layer._run(x, None, ts)[0]
    bwd = layer.backward_layer._run(x[:, ::-1], None, ts[:, ::-1])[0][:, ::-1]
    expected = {
        "concat": mx.concatenate([fwd, bwd], axis=-1),
        "sum": fwd + bwd,
        "mul": fwd * bwd,
        "ave": (fwd + bwd) / 2,
    }.get(merge_mode)
    if merge_mode is None:
        assert close(out[0], fwd) and close(out[1], bwd)
    else:
        assert out.shape[-1] == layer.output_size
        assert close(out, expected)
    # the two directions have independent parameters
    assert not close(layer.rnn_cell.ff1.weight, layer.backward_layer.rnn_cell.ff1.weight)
    # the returned state feeds back in
    out2, _ = layer(x, (state_f, state_b), timespans=ts)
    assert out2 is not None


def test_bidirectional_last_output_and_mixed_state():
    layer = LTC(F, 5, bidirectional=True, return_sequences=False, mixed_memory=True)
    x = mx.random.normal((B, T, F))
    out, ((h_f, c_f), (h_b, c_b)) = layer(x)
    assert out.shape == (B, 10) and h_f.shape == c_b.shape == (B, 5)
    back_seq = layer.backward_layer._run(x[:, ::-1], None, None)[0]
    assert close(out[:, 5:], back_seq[:, -1])


def test_seed_style_construction():
    wiring = AutoNCP(16, 4)
    cell = CfCCell(wiring=wiring, input_size=F, activation="silu", backbone_units=[32, 24], backbone_layers=2)
    layer = CfC(cell=cell, return_sequences=True, bidirectional=True, merge_mode="concat")
    out, _ = layer(mx.random.normal((B, T, F)))
    assert out.shape == (B, T, 8)
    assert [lin.weight.shape for lin in cell.backbone] == [(32, F + 16), (24, 32)]
    assert wiring.is_built() and wiring.synapse_count > 0  # built in place: draw_graph shows its synapses
    ltc = LTC(cell=LTCCell(NCP(4, 3, 2, 2, 2, 2, 2), in_features=F), return_sequences=False)
    assert ltc(mx.random.normal((B, T, F)))[0].shape == (B, 2)


def test_one_wiring_serves_several_layers():
    wiring = AutoNCP(12, 3)
    a, b, c = CfC(4, wiring), LTC(4, wiring), LTC(7, wiring)
    assert a(mx.random.normal((2, 3, 4)))[0].shape == (2, 3, 3)
    assert c(mx.random.normal((2, 3, 7)))[0].shape == (2, 3, 3)
    # the first layer builds the caller's wiring in place (draw_graph shows its synapses); a layer
    # of another input size builds a fresh wiring of the same configuration
    assert wiring.is_built() and wiring.input_dim == 4
    assert np.array_equal(a.rnn_cell.wiring.adjacency_matrix, b.rnn_cell.wiring.adjacency_matrix)
    assert c.rnn_cell.wiring.input_dim == 7


def test_cells_accept_every_ts_shape():
    x, h = mx.random.normal((B, F)), mx.random.normal((B, 8))
    cell = CfCCell(F, 8)
    ts = mx.array([0.5, 1.0, 2.0])
    y1, _ = cell(x, h, ts)
    y2, _ = cell(x, h, ts[:, None])
    assert close(y1, y2)
    for b in range(B):
        assert close(cell(x[b : b + 1], h[b : b + 1], float(ts[b]))[0][0], y1[b])
    wired = WiredCfCCell(F, NCP(4, 3, 2, 2, 2, 2, 2))
    out, state = wired(x, mx.zeros((B, 9)), ts)
    assert out.shape == (B, 2) and state.shape == (B, 9)
    assert close(out, state[:, -2:])


def test_ctgru_elapsed_time_sets_the_decay():
    cell = CTGRUCell(F, 3, num_timescales=4)
    x, s = mx.random.normal((1, F)), mx.random.normal((1, 12))
    short = cell(x, s, 0.1)[1].reshape(3, 4)
    long = cell(x, s, 10.0)[1].reshape(3, 4)
    # the fastest trace (tau = 1) decays by e^-10 over 10 time units
    assert float(mx.max(mx.abs(long[:, 0]))) < 1e-3 < float(mx.max(mx.abs(short[:, 0])))
    ctrnn = CTRNNCell(F, 3)
    h = mx.random.normal((1, 3))
    assert close(ctrnn(x, h, 0.0)[1], h, 0.0)


def test_backbone_dropout_is_active_in_training():
    cell = CfCCell(F, 8, backbone_units=64, backbone_layers=1, backbone_dropout=0.5)
    x, h = mx.random.normal((B, F)), mx.zeros((B, 8))
    cell.train()
    assert not close(cell(x, h)[0], cell(x, h)[0])
    cell.eval()
    assert close(cell(x, h)[0], cell(x, h)[0], 0.0)


def test_apply_weight_constraints_clips_at_zero():
    cell = LTCCell(FullyConnected(4), in_features=2)
    cell.w = -mx.abs(cell.w)
    cell.apply_weight_constraints()
    assert float(mx.min(cell.w)) == 0.0
    assert "sparsity_mask" not in dict(nn.utils.tree_flatten(cell.trainable_parameters()))


def _central_difference(f, a, idx, eps):
    """``(f(a + eps e) - f(a - eps e)) / (2 eps)`` with ``e`` the unit entry ``idx`` of ``a``."""
    values = []
    for sign in (1, -1):
        q = a.copy()
        q[idx] += sign * eps
        values.append(f(q))
    return (values[0] - values[1]) / (2 * eps)


def _finite_difference_check(model, x, ts, names, n_entries=3, eps=1e-2, tol=1e-2):
    # float32 central differences: MLX's float64 exp/sigmoid on CPU are only float32-accurate,
    # so float64 would not be more exact. A wrong gradient is off by O(1), far above ``tol``.
    R = mx.random.normal(model(x, timespans=ts)[0].shape) / 4

    def loss(model, x):
        return (model(x, timespans=ts)[0] * R).sum()

    grads = dict(nn.utils.tree_flatten(nn.value_and_grad(model, loss)(model, x)[1]))
    params = dict(nn.utils.tree_flatten(model.parameters()))
    rng = np.random.default_rng(0)
    for name in names:
        p = np.array(params[name])

        def loss_at(q, name=name):
            model.update(nn.utils.tree_unflatten([(name, mx.array(q))]))
            return loss(model, x).item()

        for _ in range(n_entries):
            idx = tuple(rng.integers(0, s) for s in p.shape)
            numeric = _central_difference(loss_at, p, idx, eps)
            model.update(nn.utils.tree_unflatten([(name, mx.array(p))]))
            analytic = float(np.array(grads[name])[idx])
            assert abs(numeric - analytic) <= tol * max(0.1, abs(numeric)), (name, idx, numeric, analytic)
    gx = np.array(mx.grad(lambda x: loss(model, x))(x))
    xn = np.array(x)
    for _ in range(n_entries):
        idx = tuple(rng.integers(0, s) for s in xn.shape)
        numeric = _central_difference(lambda q: loss(model, mx.array(q)).item(), xn, idx, eps)
        assert abs(numeric - gx[idx]) <= tol * max(0.1, abs(numeric)), ("x", idx, numeric, gx[idx])


@pytest.mark.parametrize(
    "make, names",
    [
        (
            lambda: LTC(F, NCP(4, 3, 2, 2, 2, 2, 2)),
            ["rnn_cell.w", "rnn_cell.sensory_mu", "rnn_cell.cm", "rnn_cell.erev"],
        ),
        (
            lambda: LTC(F, 4, implicit_param_constraints=False, mixed_memory=True),
            ["rnn_cell.sigma", "lstm.input_map.weight"],
        ),
        (
            lambda: CfC(F, 5, backbone_units=8, backbone_layers=2),
            ["rnn_cell.backbone.1.weight", "rnn_cell.time_a.weight"],
        ),
        (lambda: CfC(F, 5, mode="pure", backbone_units=8), ["rnn_cell.w_tau", "rnn_cell.A", "rnn_cell.ff1.bias"]),
        (
            lambda: CfC(F, AutoNCP(10, 2), mode="no_gate"),
            ["rnn_cell.layer_1.ff1.weight", "rnn_cell.layer_2.time_b.bias"],
        ),
        (lambda: CTRNN(F, 4), ["rnn_cell.tau", "rnn_cell.recurrent_map.weight"]),
        (lambda: CTGRU(F, 3, num_timescales=3), ["rnn_cell.tau_r.weight", "rnn_cell.detect_signal.bias"]),
    ],
)
def test_reference_gradients_match_finite_differences(make, names):
    model = make()
    x = mx.random.normal((2, 4, F))
    ts = mx.random.uniform(0.3, 1.5, (2, 4))
    _finite_difference_check(model, x, ts, names)


# -- bad input ------------------------------------------------------------------------------------
def test_bad_inputs_name_the_argument():
    layer = CfC(F, 8)
    with pytest.raises(ValueError, match="input_size"):
        layer(mx.zeros((B, T, F + 1)))
    with pytest.raises(ValueError, match=r"x must have shape"):
        layer(mx.zeros((B,)))
    with pytest.raises(ValueError, match=r"state must have shape \(batch, state_size\) = \(3, 8\)"):
        layer(mx.zeros((B, T, F)), mx.zeros((B, 7)))
    with pytest.raises(ValueError, match=r"timespans must be"):
        layer(mx.zeros((B, T, F)), timespans=mx.ones((B, T + 1)))
    with pytest.raises(ValueError, match=r"timespans must be"):
        layer(mx.zeros((B, T, F)), timespans=mx.ones((B + 1,)))
    with pytest.raises(ValueError, match="merge_mode"):
        CfC(F, 8, bidirectional=True, merge_mode="max")
    with pytest.raises(ValueError, match="Wiring must be built before use"):
        LTCCell(AutoNCP(10, 2))
    with pytest.raises(ValueError, match="Wiring must be built before use"):
        WiredCfCCell(None, AutoNCP(10, 2))
    with pytest.raises(RuntimeError, match=r"tuple \(h0, c0\)"):
        CfC(F, 8, mixed_memory=True)(mx.zeros((B, T, F)), mx.zeros((B, 8)))
    with pytest.raises(ValueError, match=r"state\[1\] \(c0\)"):
        CfC(F, 8, mixed_memory=True)(mx.zeros((B, T, F)), (mx.zeros((B, 8)), mx.zeros((B, 9))))
    with pytest.raises(ValueError, match="no backbone is allowed"):
        CfCCell(F, 8, sparsity_mask=np.ones((F + 8, 8)))
    with pytest.raises(ValueError, match="Cannot use backbone_units in wired mode"):
        CfC(F, AutoNCP(10, 2), backbone_units=32)
    with pytest.raises(ValueError, match="Unknown mode"):
        CfC(F, 8, mode="fast")
    with pytest.raises(ValueError, match="Unknown activation"):
        CfC(F, 8, activation="swish2")
    with pytest.raises(ValueError, match=r"ts must be a float or have shape \(B,\) or \(B, 1\)"):
        CfCCell(F, 8)(mx.zeros((B, F)), mx.zeros((B, 8)), mx.ones((B, 2)))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, input_size\)"):
        LTCCell(FullyConnected(4), in_features=3)(mx.zeros((2, 5)), mx.zeros((2, 4)))
    with pytest.raises(ValueError, match="bidirectional layer takes state as a tuple"):
        CfC(F, 8, bidirectional=True)(mx.zeros((B, T, F)), mx.zeros((B, 8)))


# -- kernels switch, info, aliases ---------------------------------------------------------------
def test_kernel_modes_and_info(monkeypatch):
    k = ncps.kernels
    assert k.get_mode() == "reference"  # set by the autouse fixture
    with k.use("auto"):
        assert k.get_mode() == "auto"
    assert k.get_mode() == "reference"
    with pytest.raises(ValueError, match="mode must be one of"):
        k.set_mode("fastest")
    with k.use("fused"):
        with pytest.raises(NotImplementedError, match="CTRNNCell"):
            CTRNN(F, 4)(mx.zeros((1, 2, F)))
    info = k.info()
    for key in ("extension_loaded", "backends", "mlx_version_built", "simd", "threads", "reason"):
        assert key in info
    if info["extension_loaded"]:
        assert info["mlx_version_built"] == mx.__version__ and "cpu" in info["backends"]
    else:
        assert info["reason"]


def test_mode_from_environment(monkeypatch):
    import importlib

    monkeypatch.setenv("NCPS_KERNELS", "reference")
    assert ncps.kernels._mode_from_env() == "reference"
    monkeypatch.setenv("NCPS_KERNELS", "bogus")
    with pytest.raises(ValueError, match="NCPS_KERNELS"):
        ncps.kernels._mode_from_env()
    assert importlib.import_module("ncps.mlx").CfC is ncps.CfC


# -- persistence ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cfc_wired", "cfc_mixed_proj", "ltc_ncp", "ctgru"])
def test_save_load_round_trip(tmp_path, name):
    model = layers()[name]()
    path = tmp_path / "model.safetensors"
    ncps.save(model, path)
    loaded = ncps.load(path)
    assert type(loaded) is type(model)
    x = mx.random.normal((B, T, F))
    ts = mx.random.uniform(0.2, 2.0, (B, T))
    assert close(loaded(x, timespans=ts)[0], model(x, timespans=ts)[0], 0.0)


def test_save_load_bidirectional_and_cells(tmp_path):
    for model in (CfC(F, 6, bidirectional=True, merge_mode="sum"), LTCCell(AutoNCP(10, 2), in_features=F)):
        ncps.save(model, tmp_path / "m.safetensors")
        loaded = ncps.load(tmp_path / "m.safetensors")
        a = dict(nn.utils.tree_flatten(model.parameters()))
        b = dict(nn.utils.tree_flatten(loaded.parameters()))
        assert a.keys() == b.keys() and all(mx.array_equal(a[k], b[k]) for k in a)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ncps model file"):
        ncps.load(tmp_path / "missing.safetensors")
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        ncps.load(bad)
    plain = tmp_path / "plain.safetensors"
    CfC(F, 4).save_weights(str(plain))
    with pytest.raises(ValueError, match="no ncps model configuration"):
        ncps.load(plain)
    with pytest.raises(TypeError, match="save_weights"):
        ncps.save(nn.Linear(2, 2), tmp_path / "x.safetensors")
