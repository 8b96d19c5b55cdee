"""The fused CfC primitive (CfCSequence / CfCSequenceGrad) against the pure-MLX reference path.

Every comparison runs the same layer, with the same parameters, under ``kernels.use("reference")``
and ``kernels.use("fused")``: outputs and final states within 1e-5, gradients (parameters,
inputs, initial states, elapsed times) within 1e-4 relative to the largest entry.
"""

import math

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_map

import ncps
from ncps import kernels
from ncps.backends.cpu import cfc as fused_cfc
from ncps.wirings import NCP, AutoNCP, Random

pytestmark = pytest.mark.skipif(not kernels.extension_available(), reason="ncps._ext is not built")

OUT_TOL = 1e-5
GRAD_TOL = 1e-4


# -- helpers --------------------------------------------------------------------------------------


class Spy:
    """Stands in for ncps._ext inside ncps.backends.cpu.cfc and counts cfc_sequence calls."""

    def __init__(self, ext):
        self.ext = ext
        self.calls = 0

    def cfc_sequence(self, *args, **kwargs):
        self.calls += 1
        return self.ext.cfc_sequence(*args, **kwargs)


@pytest.fixture
def spy(monkeypatch):
    s = Spy(fused_cfc._ext)
    monkeypatch.setattr(fused_cfc, "_ext", s)
    return s


def randomize_pure(module):
    """Pure mode starts with w_tau = 0 (zero gradient through |w_tau|); make it informative."""
    for _, m in module.named_modules():
        if isinstance(m, ncps.CfCCell) and m.mode == "pure":
            m.w_tau = 0.5 * mx.random.normal(m.w_tau.shape)
            m.A = 1.0 + 0.3 * mx.random.normal(m.A.shape)


def weights_like(tree, seed=0):
    rng = np.random.RandomState(seed)
    return tree_map(lambda a: mx.array(rng.standard_normal(a.shape).astype(np.float32)), tree)


def leaves(tree):
    return [v for _, v in tree_flatten(tree)] if not isinstance(tree, mx.array) else [tree]


def run_layer(layer, x, state, ts, mode):
    """Outputs, final state and gradients w.r.t. (params, x, state, ts) of a fixed random projection."""
    with kernels.use(mode):
        y, s = layer(x, state, ts)
        R = weights_like((y, s))

        def loss(params, x, state, ts):
            layer.update(params)
            out = layer(x, state, ts)
            return sum((a * r).sum() for a, r in zip(leaves(out), leaves(R)))

        argnums = [0, 1] + ([2] if state is not None else []) + ([3] if isinstance(ts, mx.array) else [])
        grads = mx.grad(loss, argnums=argnums)(layer.trainable_parameters(), x, state, ts)
        mx.eval(y, s, grads)
    return y, s, grads


def assert_close_outputs(a, b, tol=OUT_TOL):
    for u, v in zip(leaves(a), leaves(b)):
        assert u.shape == v.shape
        np.testing.assert_allclose(np.array(u), np.array(v), rtol=tol, atol=tol)


def assert_close_grads(a, b, tol=GRAD_TOL):
    fa, fb = tree_flatten(a), tree_flatten(b)
    assert [k for k, _ in fa] == [k for k, _ in fb]
    for (k, u), (_, v) in zip(fa, fb):
        u, v = np.array(u), np.array(v)
        scale = max(np.abs(v).max(), 1e-6)
        err = np.abs(u - v).max() / scale
        assert err <= tol, f"gradient {k}: relative error {err:.2e}"


def compare(layer, B=3, T=5, state=False, ts="per_sample", batch_first=True, seed=0):
    mx.random.seed(seed)
    randomize_pure(layer)
    I = layer.input_size
    x = mx.random.normal((B, T, I) if batch_first else (T, B, I))
    st = None
    if state:
        N = layer.state_size
        st = mx.random.normal((B, N))
        if layer.mixed_memory:
            st = (st, mx.random.normal((B, N)))
    if ts == "per_sample":
        ts = mx.random.uniform(0.2, 2.0, (B, T) if batch_first else (T, B))
    elif ts == "per_batch":
        ts = mx.random.uniform(0.2, 2.0, (B,))
    elif ts == "constant":  # one dt for every step: the fused forward folds the time heads
        ts = mx.full((B, T) if batch_first else (T, B), 0.7)
    ref = run_layer(layer, x, st, ts, "reference")
    fus = run_layer(layer, x, st, ts, "fused")
    assert_close_outputs(fus[:2], ref[:2])
    assert_close_grads(fus[2], ref[2])
    return fus


# -- unwired CfC: modes x backbones x activations --------------------------------------------------

UNWIRED = [
    ("default", 0, "lecun_tanh"),
    ("default", 1, "lecun_tanh"),
    ("default", 2, "silu"),
    ("default", 3, "gelu"),
    ("no_gate", 0, "tanh"),
    ("no_gate", 1, "relu"),
    ("no_gate", 2, "sigmoid"),
    ("pure", 0, "lecun_tanh"),
    ("pure", 1, "softplus"),
    ("pure", 3, "tanh"),
]


@pytest.mark.parametrize("mode,layers,act", UNWIRED)
def test_unwired_matches_reference(spy, mode, layers, act):
    widths = [12, 7, 9][:layers] if layers else 8
    layer = ncps.CfC(4, 6, mode=mode, activation=act, backbone_units=widths, backbone_layers=layers)
    compare(layer, state=True)
    assert spy.calls > 0


def test_default_backbone_and_uniform_width(spy):
    compare(ncps.CfC(5, 8, backbone_units=16, backbone_layers=2), state=True, ts=0.7)
    assert spy.calls > 0


# -- wired CfC -------------------------------------------------------------------------------------

WIRINGS = {
    "autoncp": lambda: AutoNCP(12, 3, seed=2),
    "ncp": lambda: NCP(5, 4, 3, 3, 2, 3, 2, seed=1),
    "random": lambda: Random(7, 3, sparsity_level=0.5, random_seed=4),
}


@pytest.mark.parametrize("wiring", sorted(WIRINGS))
@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
def test_wired_matches_reference(spy, wiring, mode):
    layer = ncps.CfC(4, WIRINGS[wiring](), mode=mode)
    compare(layer, state=True)
    assert spy.calls > 0


def test_seed_style_wired_cfccell(spy):
    """A CfCCell built from a wiring (no backbone): the adjacency is its sparsity mask."""
    cell = ncps.CfCCell(wiring=AutoNCP(10, 2, seed=0), input_size=3, backbone_layers=0)
    compare(ncps.CfC(cell=cell), state=True)
    assert spy.calls > 0


def test_masked_weights_get_zero_gradient():
    layer = ncps.CfC(4, AutoNCP(12, 3, seed=2))
    x = mx.random.normal((2, 4, 4))
    with kernels.use("fused"):
        grads = nn.value_and_grad(layer, lambda m, x: m(x)[0].sum())(layer, x)[1]
    for l, cell in enumerate(layer.rnn_cell.layers):
        mask = np.array(cell.sparsity_mask)
        assert (mask == 0).any()
        for head in ("ff1", "ff2"):
            g = np.array(grads["rnn_cell"][f"layer_{l}"][head]["weight"])
            assert np.all(g[mask == 0] == 0)
            assert np.abs(g[mask != 0]).max() > 0


# -- mixed memory, layouts, sequence options ---------------------------------------------------------


def test_mixed_memory_unwired(spy):
    compare(ncps.CfC(4, 6, mixed_memory=True, backbone_units=10, activation="silu"), state=True)
    assert spy.calls > 0


def test_mixed_memory_wired(spy):
    compare(ncps.CfC(4, AutoNCP(10, 3, seed=1), mixed_memory=True, mode="no_gate"), state=True)
    assert spy.calls > 0


def test_mixed_memory_default_state(spy):
    compare(ncps.CfC(3, NCP(4, 3, 2, 2, 2, 2, 2, seed=3), mixed_memory=True, mode="pure"))
    assert spy.calls > 0


@pytest.mark.parametrize("merge", ["concat", "sum", None])
def test_bidirectional(spy, merge):
    compare(ncps.CfC(4, 6, bidirectional=True, merge_mode=merge, backbone_units=8))
    assert spy.calls >= 2


def test_bidirectional_wired_mixed(spy):
    compare(ncps.CfC(3, AutoNCP(9, 2, seed=0), bidirectional=True, mixed_memory=True))
    assert spy.calls >= 2


def test_batch_one(spy):
    compare(ncps.CfC(4, 6, backbone_units=8), B=1, T=7, state=True)
    assert spy.calls > 0


def test_single_step_sequence(spy):
    compare(ncps.CfC(4, AutoNCP(8, 2, seed=0)), B=3, T=1, state=True)
    assert spy.calls > 0


def test_return_last_and_time_major(spy):
    compare(ncps.CfC(4, 6, return_sequences=False, batch_first=False), state=True, batch_first=False)
    compare(ncps.CfC(4, AutoNCP(8, 2, seed=1), return_sequences=False, proj_size=3), ts="per_batch")
    assert spy.calls >= 2


@pytest.mark.parametrize(
    "make",
    [
        lambda: ncps.CfC(8, 32, backbone_units=64, mixed_memory=True),
        lambda: ncps.CfC(8, AutoNCP(48, 6, seed=0), mode="no_gate"),
    ],
)
def test_threaded_sizes(spy, make):
    """Big enough (> 2 MFLOP) for the kernels to split the batch over threads (on >= 2 cores)."""
    compare(make(), B=9, T=30, state=True)
    assert spy.calls > 0


def edited_ncp() -> NCP:
    """An NCP(4 sensory) with a fully connected sensory -> inter block, one command neuron fed by no
    inter neuron (an all-zero mask column) and one fed by all of them."""
    w = NCP(5, 4, 3, 3, 2, 3, 2, seed=0)
    w.build(4)
    inter, command = w.get_neurons_of_layer(0), w.get_neurons_of_layer(1)
    w.sensory_adjacency_matrix[:, inter] = 1
    w.adjacency_matrix[np.ix_(inter, command[:1])] = 0
    w.adjacency_matrix[np.ix_(inter, command[1:2])] = 1
    return w


@pytest.mark.parametrize("mode", ["default", "pure"])
def test_wiring_with_full_and_empty_blocks(spy, mode):
    layer = ncps.CfC(4, edited_ncp(), mode=mode)
    masks = [np.array(cell["sparsity_mask"]) for cell in layer.rnn_cell.layers]
    assert masks[0][:, :4].all() and not masks[1][0, :5].any() and masks[1][1, :5].all()
    compare(layer, B=4, T=6, state=True)
    compare(layer, B=1, T=3, state=True, seed=1)
    assert spy.calls > 0


@pytest.mark.parametrize(
    "make",
    [
        # the command layer's [inter, own state] input is 200 + 61 > 256 wide: its product crosses
        # the GEMM's k-panel boundary inside the second (state) part
        lambda: ncps.CfC(5, NCP(200, 61, 3, 4, 6, 5, 4, seed=0)),
        # 300-wide backbone: the second layer's and the heads' products span two k-panels
        lambda: ncps.CfC(5, 7, backbone_units=300, backbone_layers=2),
    ],
)
def test_wide_layers_cross_the_k_panel(spy, make):
    # T * B >= 8: the forward uses its packed (GEMM-tile) products, not the streaming dot products
    compare(make(), B=4, T=3, state=True)
    assert spy.calls > 0


def test_wired_batch_one_odd_sizes(spy):
    compare(ncps.CfC(5, AutoNCP(11, 3, seed=4), mode="no_gate"), B=1, T=6, state=True)
    assert spy.calls > 0


@pytest.mark.parametrize("mode", ["default", "no_gate"])
@pytest.mark.parametrize("mixed", [False, True])
def test_constant_timespans_fold_the_time_heads(spy, mode, mixed):
    """One dt for the whole call: the forward folds time_a dt + time_b into one head and the backward
    recomputes time_a's pre-activation for dL/d dt (csrc/cfc/cpu/weights.h: fold_time_heads)."""
    compare(
        ncps.CfC(4, 12, backbone_units=10, backbone_layers=2, mode=mode, mixed_memory=mixed), B=6, T=11, ts="constant"
    )
    compare(ncps.CfC(5, AutoNCP(11, 3, seed=4), mode=mode, mixed_memory=mixed), B=5, T=9, ts="constant")
    # The parameters' gradients alone (as training asks: no dL/d dt, whose recomputation is skipped).
    layer = ncps.CfC(5, AutoNCP(11, 3, seed=4), mode=mode, mixed_memory=mixed)
    x, ts = mx.random.normal((5, 9, 5)), mx.full((5, 9), 0.7)
    grads = {}
    for impl in ("reference", "fused"):
        with kernels.use(impl):
            grads[impl] = nn.value_and_grad(layer, lambda m: (m(x, None, ts)[0] ** 2).sum())(layer)[1]
            mx.eval(grads[impl])
    assert_close_grads(grads["fused"], grads["reference"])
    assert spy.calls > 0


def test_no_timespans_and_longer_sequence(spy):
    compare(ncps.CfC(3, 5, backbone_units=6), B=2, T=40, ts=None)
    assert spy.calls > 0


def test_unbatched_input_and_proj(spy):
    layer = ncps.CfC(3, 5, proj_size=2)
    x = mx.random.normal((6, 3))
    with kernels.use("reference"):
        y_ref, h_ref = layer(x)
    with kernels.use("fused"):
        y, h = layer(x)
    assert y.shape == (6, 2) and h.shape == (5,)
    assert_close_outputs((y, h), (y_ref, h_ref))
    assert spy.calls > 0


def test_nan_propagates():
    layer = ncps.CfC(3, AutoNCP(6, 2, seed=0))
    x = mx.random.normal((1, 4, 3))
    x[0, 1, 0] = float("nan")
    with kernels.use("fused"):
        y, _ = layer(x)
    y = np.array(y)
    assert np.isfinite(y[0, 0]).all() and np.isnan(y[0, 1:]).all()


def test_float16_inputs():
    layer = ncps.CfC(4, 6)
    x = mx.random.normal((2, 5, 4)).astype(mx.float16)
    with kernels.use("reference"):
        y_ref, _ = layer(x)
    with kernels.use("fused"):
        y, _ = layer(x)
    assert y.dtype == y_ref.dtype
    assert_close_outputs(y, y_ref, 1e-4)


# -- streaming cell steps ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: ncps.CfCCell(5, 7, backbone_units=9, backbone_layers=2, activation="gelu"),
        lambda: ncps.CfCCell(5, 7, mode="pure", backbone_layers=0),
        lambda: ncps.WiredCfCCell(5, AutoNCP(10, 3, seed=0), mode="no_gate"),
    ],
)
def test_cell_step_matches_reference(spy, make):
    cell = make()
    randomize_pure(cell)
    x = mx.random.normal((1, 5))
    h = mx.random.normal((1, cell.state_size))
    for ts in (1.0, 0.3, mx.array([[0.7]])):
        with kernels.use("reference"):
            y_ref, h_ref = cell(x, h, ts)
        calls = spy.calls
        with kernels.use("fused"):
            y, h_new = cell(x, h, ts)
            mx.eval(y, h_new)
        assert spy.calls == calls + 1
        assert_close_outputs((y, h_new), (y_ref, h_ref))

    def loss(params, x, h):
        cell.update(params)
        return (cell(x, h, 0.5)[1] ** 2).sum()

    with kernels.use("reference"):
        g_ref = mx.grad(loss, argnums=(0, 1, 2))(cell.trainable_parameters(), x, h)
    with kernels.use("fused"):
        g = mx.grad(loss, argnums=(0, 1, 2))(cell.trainable_parameters(), x, h)
    assert_close_grads(g, g_ref)


def test_streaming_loop_matches_sequence():
    """Stepping a cell one sample at a time equals the fused sequence layer."""
    cell = ncps.WiredCfCCell(3, NCP(4, 3, 2, 2, 2, 2, 2, seed=0))
    layer = ncps.CfC(cell=cell)
    x = mx.random.normal((1, 6, 3))
    with kernels.use("fused"):
        ys, _ = layer(x)
        h = None
        outs = []
        for t in range(6):
            y, h = cell(x[:, t], h)
            outs.append(y)
    assert_close_outputs(mx.stack(outs, axis=1), ys)


# -- the kernel switch, transforms, training --------------------------------------------------------------


def test_reference_mode_never_calls_the_kernel(spy):
    layer = ncps.CfC(3, 4)
    x = mx.random.normal((2, 3, 3))
    with kernels.use("reference"):
        mx.eval(layer(x)[0])
    assert spy.calls == 0
    with kernels.use("auto"):
        mx.eval(layer(x)[0])
    assert spy.calls == 1


def test_fused_graph_holds_the_primitive(spy):
    """The fused output is produced by one CfCSequence node, whatever T is."""
    layer = ncps.CfC(3, 4)
    with kernels.use("fused"):
        y, _ = layer(mx.random.normal((2, 50, 3)))
    assert spy.calls == 1
    dot = __import__("io").StringIO()
    mx.export_to_dot(dot, y)
    assert dot.getvalue().count("CfCSequence") == 1


def test_dropout_training_falls_back():
    layer = ncps.CfC(3, 4, backbone_units=8, backbone_layers=2, backbone_dropout=0.3)
    cell = layer.rnn_cell
    assert "dropout" in cell.fused_why_not(False)
    x = mx.random.normal((2, 3, 3))
    with kernels.use("fused"), pytest.raises(NotImplementedError, match="dropout"):
        layer(x)
    with kernels.use("auto"):
        mx.eval(layer(x)[0])  # reference path, no error
    layer.eval()
    assert cell.fused_why_not(False) is None
    with kernels.use("reference"):
        y_ref, _ = layer(x)
    with kernels.use("fused"):
        y, _ = layer(x)
    assert_close_outputs(y, y_ref)


def test_compile_forward_and_grad():
    layer = ncps.CfC(4, AutoNCP(8, 2, seed=0), mixed_memory=True)
    x = mx.random.normal((2, 6, 4))

    def loss(params, x):
        layer.update(params)
        return (layer(x)[0] ** 2).mean()

    with kernels.use("fused"):
        params = layer.trainable_parameters()
        v, g = mx.value_and_grad(loss)(params, x)
        cv, cg = mx.compile(mx.value_and_grad(loss))(params, x)
        mx.eval(cv, cg)
        layer.update(params)  # tracing left placeholders in the layer
        fwd = mx.compile(lambda x: layer(x)[0])
        y_c, y = fwd(x), layer(x)[0]
    assert_close_outputs(y_c, y)
    assert abs(cv.item() - v.item()) <= 1e-6 * max(1.0, abs(v.item()))
    assert_close_grads(cg, g, 1e-6)


def test_compile_shapeless_and_distinct_configs():
    """output_shapes serves shapeless compilation; differently configured calls with the very same
    inputs stay apart under compile's common-subexpression elimination."""
    a = ncps.CfCCell(3, 4, activation="tanh", backbone_units=5)
    b = ncps.CfCCell(3, 4, activation="relu", backbone_units=5)
    b.update(a.parameters())
    h0 = mx.zeros((2, 4))

    def both(x, dt):
        return fused_cfc.cfc_sequence(a, x, h0, dt)[0], fused_cfc.cfc_sequence(b, x, h0, dt)[0]

    x, dt = mx.random.normal((2, 5, 3)), mx.ones((2, 5))
    ya, yb = both(x, dt)
    ca, cb = mx.compile(both)(x, dt)
    assert_close_outputs((ca, cb), (ya, yb), 1e-6)
    assert not np.allclose(np.array(ya), np.array(yb))

    f = mx.compile(lambda x, dt: fused_cfc.cfc_sequence(a, x, mx.zeros((x.shape[0], 4)), dt)[0], shapeless=True)
    for T in (5, 9):
        x, dt = mx.random.normal((2, T, 3)), mx.ones((2, T))
        assert_close_outputs(f(x, dt), fused_cfc.cfc_sequence(a, x, mx.zeros((2, 4)), dt)[0], 1e-6)


def test_vmap_over_inputs():
    """vmap over x / h0 / dt folds the mapped axis into the batch; over parameters it refuses."""
    layer = ncps.CfC(4, AutoNCP(8, 2, seed=0), mixed_memory=True)
    xs = mx.random.normal((2, 3, 6, 4))
    f = lambda x: layer(x)[0]  # noqa: E731
    with kernels.use("reference"):
        ref = mx.vmap(f, in_axes=1)(xs)
    with kernels.use("fused"):
        out = mx.vmap(f, in_axes=1)(xs)
    assert_close_outputs(out, ref)
    cell = ncps.CfCCell(4, 5)
    mx.random.normal((1, 5))
    step = lambda x, h: cell(x[None], h)[1]  # noqa: E731
    X, H = mx.random.normal((3, 4)), mx.random.normal((3, 1, 5))
    with kernels.use("reference"):
        ref = mx.vmap(step)(X, H)
        g_ref = mx.grad(lambda X: mx.vmap(step)(X, H).sum())(X)
    with kernels.use("fused"):
        out = mx.vmap(step)(X, H)
        g = mx.grad(lambda X: mx.vmap(step)(X, H).sum())(X)
        assert_close_outputs((out, g), (ref, g_ref))
        w = cell.ff1.weight

        def with_weight(v):
            cell.ff1.weight = v
            return fused_cfc.cfc_sequence(cell, mx.zeros((1, 2, 4)), mx.zeros((1, 5)), mx.ones((1, 2)))[0]

        with pytest.raises(ValueError, match="vmap over parameters is not supported"):
            mx.vmap(with_weight)(mx.stack([w, w]))
        cell.ff1.weight = w


def test_broadcast_cotangent_and_strided_inputs():
    """sum() hands the primitive a broadcast cotangent; reversed / transposed inputs are strided."""
    layer = ncps.CfC(4, AutoNCP(9, 3, seed=1), batch_first=False, mixed_memory=True)
    x = mx.random.normal((6, 3, 4))[::-1]

    def loss(params, x):
        layer.update(params)
        return layer(x)[0].sum()

    with kernels.use("reference"):
        ref = mx.grad(loss, argnums=(0, 1))(layer.trainable_parameters(), x)
    with kernels.use("fused"):
        out = mx.grad(loss, argnums=(0, 1))(layer.trainable_parameters(), x)
    assert_close_grads(out, ref)


@pytest.mark.parametrize("argnums", [(1,), (0,), (2,)])
def test_partial_gradients(argnums):
    """Asking only for dx, only for the parameters, or only for h0 skips the other products."""
    layer = ncps.CfC(4, 6, mixed_memory=True, backbone_units=8)
    x, h0, c0 = mx.random.normal((2, 5, 4)), mx.random.normal((2, 6)), mx.random.normal((2, 6))

    def loss(params, x, h0):
        layer.update(params)
        return (layer(x, (h0, c0))[0] ** 2).sum()

    params = layer.trainable_parameters()
    with kernels.use("reference"):
        ref = mx.grad(loss, argnums=argnums)(params, x, h0)
    with kernels.use("fused"):
        out = mx.grad(loss, argnums=argnums)(params, x, h0)
    assert_close_grads(out, ref)


def test_compile_same_sequence_twice_with_grad():
    """A metric's forward next to the loss's forward (identical CfCSequence nodes, one of them
    differentiated) under mx.compile with captured state, as ncps.training.fit compiles it. Merging
    the two multi-output nodes trips MLX 0.32.4's compile (IndexError: _Map_base::at)."""
    model = ncps.CfC(2, 8, proj_size=1, backbone_units=16, return_sequences=False)
    x, y = mx.random.normal((16, 6, 2)), mx.random.normal((16, 1))
    vg = nn.value_and_grad(model, lambda x, y: nn.losses.mse_loss(model(x)[0], y))

    def step(x, y):
        metric = nn.losses.l1_loss(model(x)[0], y)
        loss, grads = vg(x, y)
        return mx.stack([loss, metric]), grads

    with kernels.use("fused"):
        ref = step(x, y)
        out = mx.compile(step, inputs=[model.state], outputs=[model.state])(x, y)
        mx.eval(out)
    assert_close_outputs(out[0], ref[0], 1e-6)
    assert_close_grads(out[1], ref[1], 1e-6)


def test_finite_differences():
    mx.random.seed(3)
    cell = ncps.CfCCell(2, 3, backbone_units=4, backbone_layers=1)
    x, h0 = mx.random.normal((2, 3, 2)), mx.random.normal((2, 3))
    dt = mx.random.uniform(0.5, 1.5, (2, 3))
    R = mx.random.normal((2, 3, 3))
    params = cell.trainable_parameters()

    def loss(params, x, h0, dt):
        cell.update(params)
        return (fused_cfc.cfc_sequence(cell, x, h0, dt)[0] * R).sum()

    with kernels.use("fused"):
        grads = mx.grad(loss, argnums=(0, 1, 2, 3))(params, x, h0, dt)
        rng = np.random.RandomState(0)
        for _ in range(4):
            v = tree_map(lambda a: mx.array(rng.standard_normal(a.shape).astype(np.float32)), (params, x, h0, dt))
            eps = 2e-3
            plus = tree_map(lambda a, d: a + eps * d, (params, x, h0, dt), v)
            minus = tree_map(lambda a, d: a - eps * d, (params, x, h0, dt), v)
            fd = (loss(*plus).item() - loss(*minus).item()) / (2 * eps)
            an = sum((g * d).sum().item() for g, d in zip(leaves(grads), leaves(v)))
            assert math.isclose(fd, an, rel_tol=1e-3, abs_tol=1e-3), (fd, an)
        cell.update(params)


def test_training_lowers_the_loss(spy):
    mx.random.seed(0)
    model = ncps.CfC(2, AutoNCP(10, 1, seed=0))
    t = np.linspace(0, 3 * np.pi, 40, dtype=np.float32)
    x = mx.array(np.stack([np.sin(t), np.cos(t)], -1)[None].repeat(4, 0))
    y = mx.array(np.sin(2 * t)[None, :, None].repeat(4, 0))
    opt = optim.Adam(learning_rate=0.02)
    vg = nn.value_and_grad(model, lambda m, x, y: ((m(x)[0] - y) ** 2).mean())
    losses = []
    with kernels.use("fused"):
        for _ in range(60):
            loss, grads = vg(model, x, y)
            opt.update(model, grads)
            mx.eval(model.parameters(), opt.state)
            losses.append(loss.item())
    assert spy.calls >= 60
    assert losses[-1] < 0.5 * losses[0]


# -- input validation ------------------------------------------------------------------------------


def test_bad_shapes_raise_before_dispatch():
    cell = ncps.CfCCell(3, 4)
    x, h0, dt = mx.zeros((2, 5, 3)), mx.zeros((2, 4)), mx.ones((2, 5))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, time, input_size\) = \(B, T, 3\)"):
        fused_cfc.cfc_sequence(cell, mx.zeros((2, 5, 4)), h0, dt)
    with pytest.raises(ValueError, match=r"h0 must have shape .* = \(2, 4\)"):
        fused_cfc.cfc_sequence(cell, x, mx.zeros((2, 5)), dt)
    with pytest.raises(ValueError, match=r"dt must have shape .* = \(2, 5\)"):
        fused_cfc.cfc_sequence(cell, x, h0, mx.ones((2, 4)))
    lstm = ncps.LSTMCell(3, 4)
    with pytest.raises(ValueError, match=r"c0 must have shape"):
        fused_cfc.cfc_sequence(cell, x, h0, dt, lstm, mx.zeros((3, 4)))
    with pytest.raises(ValueError, match="c0 is only for mixed memory"):
        fused_cfc.cfc_sequence(cell, x, h0, dt, None, mx.zeros((2, 4)))
    with pytest.raises(ValueError, match="mixed-memory LSTM must map 3 inputs to 4 units"):
        fused_cfc.cfc_sequence(cell, x, h0, dt, ncps.LSTMCell(3, 5), mx.zeros((2, 4)))


def test_extension_validates_shapes_and_options():
    ext = fused_cfc._ext
    cell = ncps.CfCCell(3, 4, backbone_units=6)
    params = fused_cfc._unit_params(cell)
    x, h0, dt = mx.zeros((2, 5, 3)), mx.zeros((2, 4)), mx.ones((2, 5))
    args = dict(unit_sizes=[4], backbone=[[6]], masked=[False], mode="default", activation="lecun_tanh")
    mx.eval(ext.cfc_sequence(x, h0, dt, params, **args))
    bad = list(params)
    bad[2] = mx.zeros((4, 5))  # ff1.weight
    with pytest.raises(ValueError, match=r"ff1.weight must have shape \(4, 6\), got \(4, 5\)"):
        ext.cfc_sequence(x, h0, dt, bad, **args)
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 4\)"):
        ext.cfc_sequence(x, mx.zeros((3, 4)), dt, params, **args)
    with pytest.raises(ValueError, match=r"dt must have shape \(2, 5\)"):
        ext.cfc_sequence(x, h0, mx.ones((5, 2)), params, **args)
    with pytest.raises(ValueError, match=r"x must have shape"):
        ext.cfc_sequence(mx.zeros((2, 0, 3)), h0, dt, params, **args)
    with pytest.raises(ValueError, match="expected 10 parameter arrays"):
        ext.cfc_sequence(x, h0, dt, params[:-1], **args)
    with pytest.raises(ValueError, match="mode must be"):
        ext.cfc_sequence(x, h0, dt, params, **{**args, "mode": "fast"})
    with pytest.raises(ValueError, match="activation must be one of"):
        ext.cfc_sequence(x, h0, dt, params, **{**args, "activation": "elu"})
    with pytest.raises(ValueError, match="backbone must give one list"):
        ext.cfc_sequence(x, h0, dt, params, **{**args, "backbone": []})
    with pytest.raises(ValueError, match="floating-point"):
        ext.cfc_sequence(x, h0.astype(mx.int32), dt, params, **args)


def test_layer_rejects_bad_shapes_in_fused_mode():
    layer = ncps.CfC(3, 4)
    with kernels.use("fused"):
        with pytest.raises(ValueError, match="3 features"):
            layer(mx.zeros((2, 5, 4)))
        with pytest.raises(ValueError, match="state must have shape"):
            layer(mx.zeros((2, 5, 3)), mx.zeros((2, 5)))
        with pytest.raises(ValueError, match="timespans"):
            layer(mx.zeros((2, 5, 3)), None, mx.ones((3, 5)))
