"""Variable lengths on the fused LTC primitives: a padded batch runs as one primitive call per
direction (no fallback) with dt = 0 on the padded steps, and equals each sequence run alone, with
NaN in the padding.
(The full matrix of layers and options is in tests/layers/test_lengths.py.)"""

from types import SimpleNamespace

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

from ncps import LTC, kernels
from ncps.backends.cpu import ltc as cpu_ltc
from ncps.wirings import NCP

pytestmark = pytest.mark.skipif(not kernels.extension_available(), reason="ncps._ext is not built")


@pytest.mark.parametrize("mixed", [False, True])
def test_padded_batch_is_one_call_per_direction_and_exact(monkeypatch, mixed):
    name = "ltc_mixed_sequence" if mixed else "ltc_sequence"
    calls, dts = [], []
    real = cpu_ltc._ext
    fns = {n: getattr(real, n) for n in ("ltc_sequence", "ltc_mixed_sequence")}
    fns[name] = lambda *a, **k: calls.append(a[0].shape) or dts.append(np.array(a[2])) or getattr(real, name)(*a, **k)
    monkeypatch.setattr(cpu_ltc, "_ext", SimpleNamespace(**fns))

    mx.random.seed(3)
    layer = LTC(4, NCP(4, 3, 2, 2, 2, 2, 2), mixed_memory=mixed, bidirectional=True)
    lengths = [6, 1, 3, 4]
    x = np.random.RandomState(0).standard_normal((4, 6, 4)).astype(np.float32)
    for b, L in enumerate(lengths):
        x[b, L:] = np.nan
    x = mx.array(x)

    def loss(x, lengths=None):
        out, _ = layer(x, lengths=lengths)
        return (out**2).sum(), out

    with kernels.use("fused"):
        (_, out), dx = mx.value_and_grad(loss)(x, lengths)
    assert calls == [(4, 6, 4), (4, 6, 4)]
    # The layer's one padding convention reaches the primitive unchanged: dt = 0 on the padded
    # steps (which the plain primitive skips), the default 1 on the valid ones, both directions.
    valid = np.arange(6)[None] < np.array(lengths)[:, None]
    for dt in dts:
        np.testing.assert_array_equal(dt, np.where(valid, 1.0, 0.0))
    assert np.isfinite(np.array(dx)).all()
    for b, L in enumerate(lengths):
        with kernels.use("reference"):
            (_, want), want_dx = mx.value_and_grad(loss)(x[b : b + 1, :L])
        np.testing.assert_allclose(np.array(out[b, :L]), np.array(want[0]), atol=1e-5)
        assert np.all(np.array(out[b, L:]) == 0.0)
        np.testing.assert_allclose(np.array(dx[b, :L]), np.array(want_dx[0]), atol=1e-4)
        assert np.all(np.array(dx[b, L:]) == 0.0)


def test_whole_lane_groups_past_their_lengths_are_skipped_exactly():
    """Padded steps get dt = 0 in the plain LTC primitive, which skips a group of SIMD lanes once
    all its sequences have ended. A sorted batch of 40 has whole groups frozen early; outputs,
    final states and gradients still equal the reference path."""
    mx.random.seed(4)
    layer = LTC(3, 6)
    lengths = mx.array(np.sort(np.random.RandomState(1).randint(1, 13, 40))[::-1].astype(np.int32))
    x = mx.random.normal((40, 12, 3))
    ts = mx.random.uniform(0.5, 1.5, (40, 12))
    R = mx.random.normal((40, 12, 6))

    def loss(params, x, ts):
        layer.update(params)
        out, h = layer(x, timespans=ts, lengths=lengths)
        return (out * R).sum() + (h**2).sum()

    results = {}
    for mode in ("fused", "reference"):
        with kernels.use(mode):
            out, h = layer(x, timespans=ts, lengths=lengths)
            grads = mx.grad(loss, argnums=[0, 1, 2])(layer.trainable_parameters(), x, ts)
        results[mode] = [out, h, *[v for _, v in tree_flatten(grads)]]
    for i, (a, b) in enumerate(zip(results["fused"], results["reference"])):
        a, b = np.array(a), np.array(b)
        tol = 1e-5 if i < 2 else 1e-4 * max(1.0, np.abs(b).max())  # outputs and states, then gradients
        assert np.isfinite(a).all() and np.abs(a - b).max() <= tol
