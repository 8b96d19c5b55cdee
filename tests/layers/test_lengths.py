"""Variable-length batches (``lengths=``): every layer, on the fused and the reference path,
against each sequence run alone, cut to its length, on the reference path (the oracle).

The padding holds NaN (inputs and elapsed times) in every comparison: nothing of it may reach an
output, a state or a gradient. Outputs within 1e-5, gradients (parameters, inputs, initial
states, elapsed times) within 1e-4 relative to the largest entry.
"""

import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten, tree_map

from ncps import CTGRU, CTRNN, LTC, CfC, kernels
from ncps.wirings import AutoNCP

OUT_TOL = 1e-5
GRAD_TOL = 1e-4
F, B, T = 3, 3, 5
LENGTHS = [5, 2, 4]

FUSED = "fused" if kernels.extension_available() else "reference"


def build(kind: str, **kw):
    mx.random.seed(1)
    if kind == "ltc":
        return LTC(F, 5, **kw)
    if kind == "ltc_ncp":
        return LTC(F, AutoNCP(8, 3), **kw)
    if kind == "ltc_mixed":
        return LTC(F, 4, mixed_memory=True, **kw)
    if kind in ("cfc_default", "cfc_no_gate", "cfc_pure"):
        mode = kind[4:]
        layer = CfC(F, 5, mode=mode, backbone_units=8, backbone_layers=1, **kw)
        if mode == "pure":  # w_tau starts at 0, where |w_tau| has no informative gradient
            layer.update(tree_map(lambda a: a + 0.3, layer.parameters()))
        return layer
    if kind == "cfc_mixed":
        return CfC(F, 5, mixed_memory=True, backbone_units=8, **kw)
    if kind == "cfc_proj":
        return CfC(F, 5, proj_size=2, backbone_units=8, **kw)
    if kind == "wired_cfc":
        return CfC(F, AutoNCP(7, 2), **kw)
    if kind == "ctrnn":
        return CTRNN(F, 4, **kw)
    if kind == "ctgru":
        return CTGRU(F, 3, num_timescales=3, **kw)
    raise ValueError(kind)


FUSABLE = [
    "ltc",
    "ltc_ncp",
    "ltc_mixed",
    "cfc_default",
    "cfc_no_gate",
    "cfc_pure",
    "cfc_mixed",
    "cfc_proj",
    "wired_cfc",
]
ALL = FUSABLE + ["ctrnn", "ctgru"]


def leaves(tree):
    if tree is None:
        return []
    return [tree] if isinstance(tree, mx.array) else [v for _, v in tree_flatten(tree)]


def padded_inputs(layer, seed=0, timespans=False, state=False, batch_first=True):
    """``(x, ts, state)`` for a batch with NaN in the padding of ``x`` and ``ts``."""
    rng = np.random.RandomState(seed)
    x = rng.standard_normal((B, T, F)).astype(np.float32)
    ts = rng.uniform(0.5, 1.5, (B, T)).astype(np.float32)
    for b, L in enumerate(LENGTHS):
        x[b, L:] = np.nan
        ts[b, L:] = np.nan
    if not batch_first:
        x, ts = x.transpose(1, 0, 2), ts.T
    s = None
    if state:
        N = layer.state_size
        one = lambda: mx.array(rng.standard_normal((B, N)).astype(np.float32))  # noqa: E731
        s = (one(), one()) if layer.mixed_memory else one()
        if layer.bidirectional:
            s = (s, tree_map(lambda a: a * 0.5, s))
    return mx.array(x), (mx.array(ts) if timespans else None), s


def _slice(a, b, L, batch_first):
    """Sequence ``b`` of a batched input, cut to ``L`` steps, as a batch of one."""
    if a is None:
        return None
    if a.ndim == 1:
        return a[b : b + 1]
    return a[b : b + 1, :L] if batch_first else a[:L, b : b + 1]


def _pad(out, L, batch_first):
    """A batch-of-one output of ``L`` steps padded with zeros to ``T`` steps."""
    if out.ndim == 2:  # return_sequences=False
        return out
    axis = 1 if batch_first else 0
    widths = [(0, 0)] * out.ndim
    widths[axis] = (0, T - L)
    return mx.pad(out, widths)


def alone(layer, x, state, ts):
    """Run every sequence alone, cut to its length (reference path), and stack the results as a
    padded batch (zeros after each length): the oracle for ``layer(x, state, ts, lengths=LENGTHS)``."""
    bf = layer.batch_first
    outs, states = [], []
    with kernels.use("reference"):
        for b, L in enumerate(LENGTHS):
            s = tree_map(lambda a: a[b : b + 1], state) if state is not None else None
            o, st = layer(_slice(x, b, L, bf), s, _slice(ts, b, L, bf))
            outs.append(tuple(_pad(a, L, bf) for a in o) if isinstance(o, tuple) else _pad(o, L, bf))
            states.append(st)

    def cat(parts, axis):
        if isinstance(parts[0], (tuple, list)):
            return tuple(cat([p[i] for p in parts], axis) for i in range(len(parts[0])))
        return mx.concatenate(parts, axis=axis)

    first = outs[0][0] if isinstance(outs[0], tuple) else outs[0]
    return cat(outs, 0 if (first.ndim == 2 or bf) else 1), cat(states, 0)


def loss_terms(out, state, seed=5):
    rng = np.random.RandomState(seed)
    weights = [mx.array(rng.standard_normal(a.shape).astype(np.float32)) for a in leaves((out, state))]
    return lambda o, s: sum((a * w).sum() for a, w in zip(leaves((o, s)), weights))


def gradients(layer, fn, x, state, ts):
    """Gradients of ``fn(x, state, ts)`` w.r.t. the parameters, x, the state and ts."""
    params = layer.trainable_parameters()

    def loss(params, x, state, ts):
        layer.update(params)
        return fn(x, state, ts)

    argnums = [0, 1] + ([2] if state is not None else []) + ([3] if ts is not None else [])
    grads = mx.grad(loss, argnums=argnums)(params, x, state, ts)
    layer.update(params)
    return grads


def assert_close(a, b, tol, what, relative=False):
    la, lb = leaves(a), leaves(b)
    assert len(la) == len(lb), what
    for u, v in zip(la, lb):
        assert u.shape == v.shape, (what, u.shape, v.shape)
        u, v = np.array(u), np.array(v)
        assert np.isfinite(u).all(), f"{what}: non-finite values"
        scale = max(1.0, float(np.abs(v).max())) if relative else 1.0
        err = float(np.abs(u - v).max()) / scale if u.size else 0.0
        assert err <= tol, f"{what}: max error {err:.3g} > {tol}"


def check(layer, mode, x, state, ts):
    """The batched run with lengths equals the per-sequence oracle: outputs, states, gradients."""
    want_out, want_state = alone(layer, x, state, ts)
    lengths = mx.array(LENGTHS)
    with kernels.use(mode):
        out, st = layer(x, state, ts, lengths=lengths)
    assert_close(out, want_out, OUT_TOL, "outputs")
    assert_close(st, want_state, OUT_TOL, "final state")

    R = loss_terms(want_out, want_state)

    def batched(x, state, ts):
        with kernels.use(mode):
            return R(*layer(x, state, ts, lengths=lengths))

    got = gradients(layer, batched, x, state, ts)
    want = gradients(layer, lambda x, state, ts: R(*alone(layer, x, state, ts)), x, state, ts)
    assert_close(got, want, GRAD_TOL, "gradients", relative=True)


def modes_for(kind):
    return [FUSED, "reference"] if kind in FUSABLE else ["reference"]


def fused_or_auto(kind, mode):
    """``mode``, or "auto" for a cell that has no fused kernel (CTRNN, CTGRU)."""
    return mode if kind in FUSABLE else "auto"


CASES = [(k, m) for k in ALL for m in modes_for(k)]


@pytest.mark.parametrize("kind,mode", CASES)
def test_sequences_with_timespans_and_state(kind, mode):
    layer = build(kind)
    x, ts, state = padded_inputs(layer, timespans=True, state=True)
    check(layer, mode, x, state, ts)


@pytest.mark.parametrize("kind,mode", CASES)
def test_last_output_only(kind, mode):
    layer = build(kind, return_sequences=False)
    x, ts, _ = padded_inputs(layer, seed=1, timespans=True)
    check(layer, mode, x, None, ts)


@pytest.mark.parametrize("kind", ["ltc", "cfc_default", "cfc_mixed", "ltc_mixed", "ctgru"])
@pytest.mark.parametrize("mode", [FUSED, "reference"])
def test_time_major(kind, mode):
    layer = build(kind, batch_first=False)
    x, ts, state = padded_inputs(layer, seed=2, timespans=True, state=True, batch_first=False)
    check(layer, fused_or_auto(kind, mode), x, state, ts)


@pytest.mark.parametrize("kind", ["ltc_ncp", "ltc_mixed", "cfc_default", "cfc_mixed", "wired_cfc", "ctrnn"])
@pytest.mark.parametrize("merge_mode", ["concat", None, "mul"])
@pytest.mark.parametrize("mode", [FUSED, "reference"])
def test_bidirectional(kind, merge_mode, mode):
    layer = build(kind, bidirectional=True, merge_mode=merge_mode)
    x, ts, state = padded_inputs(layer, seed=3, timespans=True, state=True)
    check(layer, fused_or_auto(kind, mode), x, state, ts)


@pytest.mark.parametrize("kind,merge_mode", [("ltc", "sum"), ("cfc_mixed", "ave"), ("cfc_proj", "concat")])
@pytest.mark.parametrize("mode", [FUSED, "reference"])
def test_bidirectional_last_output(kind, merge_mode, mode):
    layer = build(kind, bidirectional=True, merge_mode=merge_mode, return_sequences=False)
    x, _, _ = padded_inputs(layer, seed=4)
    check(layer, mode, x, None, None)


@pytest.mark.parametrize("mode", [FUSED, "reference"])
def test_timespans_of_every_shape(mode):
    layer = build("cfc_default")
    x, _, _ = padded_inputs(layer, seed=6)
    for ts in (0.7, mx.array([0.5, 1.0, 2.0]), mx.random.uniform(0.5, 1.5, (B, T, 1))):
        with kernels.use(mode):
            got = layer(x, None, ts, lengths=LENGTHS)[0]
        for b, L in enumerate(LENGTHS):
            ts_b = ts if isinstance(ts, float) else ts[b : b + 1, :L] if ts.ndim == 3 else ts[b : b + 1]
            with kernels.use("reference"):
                want = layer(x[b : b + 1, :L], None, ts_b)[0]
            assert_close(got[b : b + 1, :L], want, OUT_TOL, "outputs")
            assert np.all(np.array(got[b, L:]) == 0.0)


def test_padding_outputs_are_exactly_zero_and_state_frozen():
    layer = build("cfc_proj")  # the projection's bias would make padded outputs nonzero
    x, _, _ = padded_inputs(layer)
    for mode in (FUSED, "reference"):
        with kernels.use(mode):
            out, h = layer(x, lengths=LENGTHS)
        for b, L in enumerate(LENGTHS):
            assert np.all(np.array(out[b, L:]) == 0.0)
            alone = layer(x[b : b + 1, :L])[1]
            assert_close(h[b : b + 1], alone, OUT_TOL, "state")


def test_lengths_equal_to_T_change_nothing():
    layer = build("ltc_mixed", bidirectional=True)
    x = mx.random.normal((B, T, F))
    for mode in (FUSED, "reference"):
        with kernels.use(mode):
            assert_close(layer(x, lengths=[T] * B), layer(x), 1e-6, "outputs and states")


@pytest.mark.parametrize("kind", ["ltc", "cfc_mixed"])
def test_unbatched_takes_a_single_length(kind):
    layer = build(kind)
    x = mx.random.normal((T, F))
    for mode in (FUSED, "reference"):
        with kernels.use(mode):
            out, state = layer(x, lengths=3)
            want_out, want_state = layer(x[:3])
        assert out.shape == (T, layer.output_size)
        assert_close(out[:3], want_out, OUT_TOL, "outputs")
        assert np.all(np.array(out[3:]) == 0.0)
        assert_close(state, want_state, OUT_TOL, "state")


@pytest.mark.parametrize("mode", [FUSED, "reference"])
def test_compile_and_value_and_grad(mode):
    layer = build("cfc_mixed", bidirectional=True)
    x, ts, _ = padded_inputs(layer, timespans=True)
    lengths = mx.array(LENGTHS)

    def loss(model, x, ts, lengths):
        out, _ = model(x, timespans=ts, lengths=lengths)
        return (out**2).sum()

    with kernels.use(mode):
        value, grads = nn.value_and_grad(layer, loss)(layer, x, ts, lengths)
        compiled = mx.compile(lambda x, ts, lengths: layer(x, timespans=ts, lengths=lengths)[0])
        assert_close(compiled(x, ts, lengths), layer(x, timespans=ts, lengths=lengths)[0], 1e-6, "compiled")
        other = mx.array([1, 2, 3])  # new values, same shapes: no retrace needed, still right
        assert_close(compiled(x, ts, other), layer(x, timespans=ts, lengths=other)[0], 1e-6, "compiled")
    assert math.isfinite(value.item())
    assert all(np.isfinite(np.array(g)).all() for g in leaves(grads))


def test_fused_primitives_run_with_lengths(monkeypatch):
    from types import SimpleNamespace

    from ncps.backends.cpu import cfc as cpu_cfc
    from ncps.backends.cpu import ltc as cpu_ltc

    if not kernels.extension_available():
        pytest.skip("ncps._ext is not built")
    calls = []

    def spy(module, names):
        real = module._ext
        fns = {n: (lambda n, fn: lambda *a, **k: calls.append(n) or fn(*a, **k))(n, getattr(real, n)) for n in names}
        monkeypatch.setattr(
            module,
            "_ext",
            SimpleNamespace(**{**{k: getattr(real, k) for k in dir(real) if not k.startswith("_")}, **fns}),
        )

    spy(cpu_ltc, ["ltc_sequence", "ltc_mixed_sequence"])
    spy(cpu_cfc, ["cfc_sequence"])
    with kernels.use("fused"):
        for kind, name in (
            ("ltc", "ltc_sequence"),
            ("ltc_mixed", "ltc_mixed_sequence"),
            ("cfc_mixed", "cfc_sequence"),
            ("wired_cfc", "cfc_sequence"),
        ):
            calls.clear()
            layer = build(kind, bidirectional=True)
            mx.eval(layer(mx.zeros((B, T, F)), lengths=LENGTHS))
            assert calls == [name, name], kind  # one whole-sequence call per direction, no fallback


@pytest.mark.parametrize(
    "lengths,error,match",
    [
        ([1, 2], ValueError, r"lengths must have shape \(B,\) = \(3,\)"),
        ([[1, 2, 3]], ValueError, r"lengths must have shape \(B,\)"),
        ([1.0, 2.0, 3.0], TypeError, "lengths must be an integer array"),
        (mx.array([1.0, 2.0, 3.0]), TypeError, "lengths must be an integer array"),
        (mx.array([True, True, True]), TypeError, "lengths must hold integers"),
        ([0, 2, 3], ValueError, r"1 <= lengths\[b\] <= T = 5"),
        ([1, 6, 3], ValueError, r"1 <= lengths\[b\] <= T = 5"),
        (np.array([1, -1, 3]), ValueError, r"1 <= lengths\[b\] <= T = 5"),
    ],
)
def test_bad_lengths(lengths, error, match):
    layer = build("cfc_default")
    with pytest.raises(error, match=match):
        layer(mx.zeros((B, T, F)), lengths=lengths)


def test_bad_lengths_unbatched():
    layer = build("ltc")
    with pytest.raises(ValueError, match=r"lengths for unbatched input \(T, F\) must be a single int"):
        layer(mx.zeros((T, F)), lengths=[3])
    with pytest.raises(ValueError, match=r"1 <= lengths\[b\] <= T = 5"):
        layer(mx.zeros((T, F)), lengths=6)
