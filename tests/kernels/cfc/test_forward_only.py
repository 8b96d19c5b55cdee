"""A fused CfC forward that nobody differentiates keeps a ring of its last steps' activations
instead of all T (csrc/cfc/problem.h): the states must not change, and a gradient must stay exact
however the graph was built and evaluated.

Which forward saves everything is decided when the graph is evaluated: MLX takes the vjp (and the
forward node learns it is needed) before it evaluates anything. A forward evaluated first (mx.eval
inside the differentiated function) is recomputed by its vjp.
"""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

from ncps import CfC, kernels
from ncps.wirings import AutoNCP

pytestmark = pytest.mark.skipif(not kernels.extension_available(), reason="ncps._ext is not built")

MODELS = {
    "dense": lambda: CfC(16, 24, backbone_units=32, backbone_layers=2),
    "wired": lambda: CfC(16, AutoNCP(24, 4)),
    "mixed": lambda: CfC(16, 24, mixed_memory=True),
    "pure": lambda: CfC(16, 24, mode="pure"),
    "no_gate": lambda: CfC(16, 24, mode="no_gate"),
}
# (B, T): a ring of 256 / B steps shorter than T (8 at B 32), the whole call (T 3 < 128), one
# step per slot (B 300: two threads' tiles in the same slots, when the machine has two cores).
SHAPES = [(32, 50), (2, 3), (300, 5)]


def model_and_input(name, dtype, B, T):
    mx.random.seed(1)
    model = MODELS[name]()
    model.set_dtype(dtype)
    x = mx.random.normal((B, T, 16)).astype(dtype)
    mx.eval(model.parameters(), x)
    return model, x


def outputs_under_vjp(model, x, timespans=None):
    """The layer's outputs from a forward whose vjp was taken (so it saved every step)."""
    cotangents = [mx.zeros_like(v) for v in _flat(model(x, timespans=timespans))]
    saved, _ = mx.vjp(lambda inp: _flat(model(inp, timespans=timespans)), [x], cotangents)
    return saved


def _flat(result):
    out, hx = result
    return [out] + (list(hx) if isinstance(hx, tuple) else [hx])


@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("B,T", SHAPES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_only_states_equal_the_saving_forward(name, B, T, dtype):
    with kernels.use("fused"):
        model, x = model_and_input(name, dtype, B, T)
        # a per-step dt, and one for the call (which folds the time heads)
        for ts in (None, mx.random.uniform(0.5, 1.5, (B, T))):
            ring = _flat(model(x, timespans=ts))
            saved = outputs_under_vjp(model, x, ts)
            mx.eval(ring, saved)
            for a, b in zip(ring, saved):
                assert a.dtype == b.dtype == dtype
                assert np.array_equal(np.array(a.astype(mx.float32)), np.array(b.astype(mx.float32)))


def _grads(model, x, R, eval_inside):
    def loss(m, inp):
        y = m(inp)[0]
        if eval_inside:  # the forward node is evaluated (with its ring) before its vjp is taken
            mx.eval(y)
        return (y * R).sum()

    value, grads = nn.value_and_grad(model, loss)(model, x)
    dx = mx.grad(lambda inp: loss(model, inp))(x)
    arrays = [value, dx] + [g for _, g in tree_flatten(grads)]
    mx.eval(arrays)
    return [np.array(a.astype(mx.float32)) for a in arrays]


@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_forward_evaluated_before_its_vjp_is_recomputed(name, dtype):
    with kernels.use("fused"):
        model, x = model_and_input(name, dtype, 32, 50)
        R = mx.random.normal((32, 50, model(x)[0].shape[-1])).astype(dtype)
        expected = _grads(model, x, R, eval_inside=False)
        got = _grads(model, x, R, eval_inside=True)
    assert len(got) == len(expected) > 3
    for a, b in zip(got, expected):
        assert np.array_equal(a, b)


def test_a_compiled_forward_differentiated_later():
    """mx.compile replays one primitive per traced node: traced forward-only, then called under a
    gradient, the replay's vjp marks the shared primitive, and both uses stay exact."""
    with kernels.use("fused"):
        model, x = model_and_input("wired", mx.float32, 32, 50)
        R = mx.random.normal((32, 50, 4))
        forward = mx.compile(lambda inp: model(inp)[0])
        plain = model(x)[0]
        first = forward(x)  # traced here, without a vjp
        mx.eval(plain, first)
        dx = mx.grad(lambda inp: (forward(inp) * R).sum())(x)
        dx_plain = mx.grad(lambda inp: (model(inp)[0] * R).sum())(x)
        again = forward(x)  # the primitive now saves; same states
        mx.eval(dx, dx_plain, again)
    assert np.array_equal(np.array(first), np.array(plain))
    assert np.array_equal(np.array(again), np.array(plain))
    assert np.array_equal(np.array(dx), np.array(dx_plain))


def test_checkpointed_layer_gradients():
    """nn.utils.checkpoint runs the forward without saving (it is not differentiated) and again
    inside its vjp (saving): the gradients equal the plain ones."""
    with kernels.use("fused"):
        model, x = model_and_input("dense", mx.float32, 32, 50)
        R = mx.random.normal((32, 50, 24))
        step = nn.utils.checkpoint(model, lambda inp: model(inp)[0])
        got = mx.grad(lambda inp: (step(inp) * R).sum())(x)
        want = mx.grad(lambda inp: (model(inp)[0] * R).sum())(x)
        mx.eval(got, want)
    assert np.array_equal(np.array(got), np.array(want))
