"""Property tests: random layer configurations give the same outputs and gradients on the fused
and the reference path (outputs 1e-5, gradients 1e-4 relative), and survive save -> load.

Configurations span the wiring kind and size, CfC modes and backbones, LTC mappings and ODE
unfolds, mixed memory, bidirectional layers, batch and sequence sizes, elapsed times (0
included), input dtypes and non-contiguous (strided, time-major) inputs. Examples are
derandomized and bounded, so the module runs in well under a minute.
"""

from __future__ import annotations

import os
import tempfile

import mlx.core as mx
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlx.utils import tree_flatten

import ncps
from ncps import wirings as W

SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def wirings(draw, units_max: int = 10):
    kind = draw(st.sampled_from(["full", "random", "autoncp"]))
    if kind == "full":
        n = draw(st.integers(1, units_max))
        return W.FullyConnected(n, output_dim=draw(st.integers(1, n)), erev_init_seed=draw(st.integers(0, 99)))
    if kind == "random":
        n = draw(st.integers(2, units_max))
        return W.Random(
            n,
            output_dim=draw(st.integers(1, n)),
            sparsity_level=draw(st.sampled_from([0.0, 0.3, 0.6])),
            random_seed=draw(st.integers(0, 99)),
        )
    n = draw(st.integers(6, max(6, units_max)))
    return W.AutoNCP(
        n,
        draw(st.integers(1, n - 3)),
        sparsity_level=draw(st.sampled_from([0.2, 0.5, 0.8])),
        seed=draw(st.integers(0, 99)),
    )


@st.composite
def layers(draw):
    """A layer and its input size."""
    F = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["cfc", "wired_cfc", "ltc"]))
    common = dict(
        mixed_memory=draw(st.booleans()),
        bidirectional=draw(st.booleans()),
        merge_mode=draw(st.sampled_from(["concat", "sum", "ave"])),
        return_sequences=draw(st.booleans()),
        batch_first=draw(st.booleans()),
    )
    mx.random.seed(draw(st.integers(0, 2**16)))
    if kind == "cfc":
        layers_n = draw(st.integers(0, 2))
        widths = draw(st.lists(st.integers(1, 12), min_size=layers_n, max_size=layers_n))
        layer = ncps.CfC(
            F,
            draw(st.integers(1, 10)),
            mode=draw(st.sampled_from(["default", "pure", "no_gate"])),
            activation=draw(st.sampled_from(["lecun_tanh", "tanh", "relu", "silu", "gelu"])),
            backbone_units=widths or 8,
            backbone_layers=layers_n,
            proj_size=draw(st.one_of(st.none(), st.integers(1, 4))),
            **common,
        )
    elif kind == "wired_cfc":
        layer = ncps.CfC(F, draw(wirings()), mode=draw(st.sampled_from(["default", "pure", "no_gate"])), **common)
    else:
        layer = ncps.LTC(
            F,
            draw(wirings()),
            input_mapping=draw(st.sampled_from(["affine", "linear", None])),
            output_mapping=draw(st.sampled_from(["affine", "linear", None])),
            ode_unfolds=draw(st.integers(1, 4)),
            implicit_param_constraints=draw(st.booleans()),
            **common,
        )
    return layer, F


@st.composite
def inputs(draw, F: int, batch_first: bool):
    B, T = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    r = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = r.normal(size=(B, 2 * T, F)).astype(np.float32)[:, ::2]  # a strided view
    dt = r.uniform(0.2, 2.0, size=(B, T)).astype(np.float32)
    dt[r.uniform(size=(B, T)) < 0.2] = 0.0  # Δt = 0 leaves the state unchanged
    dtype = draw(st.sampled_from([mx.float32, mx.float16]))
    xm = mx.array(x).astype(dtype)
    if not batch_first:
        xm, dt = xm.transpose(1, 0, 2), dt.T
    ts = draw(st.sampled_from(["none", "scalar", "array"]))
    ts = {"none": None, "scalar": 0.7, "array": mx.array(dt)}[ts]
    return xm, ts


def _run(layer, x, ts, mode):
    with ncps.kernels.use(mode):
        out = layer(x, timespans=ts)[0]
        out = mx.concatenate([o.reshape(-1) for o in out]) if isinstance(out, tuple) else out.reshape(-1)

        def loss(params):
            layer.update(params)
            y = layer(x, timespans=ts)[0]
            y = mx.concatenate([o.reshape(-1) for o in y]) if isinstance(y, tuple) else y.reshape(-1)
            w = mx.cos(mx.arange(y.size, dtype=mx.float32))
            return (y.astype(mx.float32) * w).sum()

        params = layer.trainable_parameters()
        grads = mx.grad(loss)(params)
        layer.update(params)
        mx.eval(out, grads)
    return out, dict(tree_flatten(grads))


@SETTINGS
@given(st.data())
def test_fused_equals_reference(data):
    layer, F = data.draw(layers())
    x, ts = data.draw(inputs(F, layer.batch_first))
    out_f, g_f = _run(layer, x, ts, "fused")
    out_r, g_r = _run(layer, x, ts, "reference")
    assert out_f.dtype == out_r.dtype and out_f.shape == out_r.shape
    tol = 1e-5 if x.dtype == mx.float32 else 2e-3  # float16 outputs are rounded to float16
    np.testing.assert_allclose(
        np.array(out_f.astype(mx.float32)), np.array(out_r.astype(mx.float32)), rtol=tol, atol=tol
    )
    if x.dtype != mx.float32:
        return
    assert g_f.keys() == g_r.keys()
    for k in g_r:
        a, b = np.array(g_f[k]), np.array(g_r[k])
        scale = max(1.0, float(np.abs(b).max())) if b.size else 1.0
        assert np.all(np.isfinite(a)), k
        assert np.abs(a - b).max(initial=0.0) <= 1e-4 * scale, (k, np.abs(a - b).max())


@SETTINGS
@given(st.data())
def test_save_load_same_outputs(data):
    layer, F = data.draw(layers())
    x, ts = data.draw(inputs(F, layer.batch_first))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.safetensors")
        ncps.save(layer, path)
        back = ncps.load(path)
    a, b = layer(x, timespans=ts)[0], back(x, timespans=ts)[0]
    for p, q in zip(a if isinstance(a, tuple) else [a], b if isinstance(b, tuple) else [b]):
        np.testing.assert_array_equal(np.array(p.astype(mx.float32)), np.array(q.astype(mx.float32)))
