"""LTCCell keeps the softplus of its constrained parameters between calls (``_constrained``): the
kept values must follow every change of the parameters and never leak a transform's tracers."""

import copy
import pickle

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten

from ncps import LTC, kernels
from ncps.wirings import AutoNCP

F = 4


def _layer(seed: int = 0) -> LTC:
    mx.random.seed(seed)
    layer = LTC(F, AutoNCP(10, 3), ode_unfolds=3)  # implicit constraints: softplus
    mx.eval(layer.parameters())
    return layer


def _fresh_output(layer: LTC, x: mx.array) -> mx.array:
    """The output of a new layer holding ``layer``'s parameters (it has no memo yet)."""
    twin = _layer(seed=1)
    twin.update(layer.parameters())
    return twin(x)[0]


X = mx.array(np.random.default_rng(0).normal(size=(3, 5, F)).astype(np.float32))


@pytest.mark.parametrize("mode", ["auto", "reference"])
def test_kept_values_follow_replaced_parameters(mode):
    layer = _layer()
    with kernels.use(mode):
        for _ in range(3):  # the second call keeps the values, the third uses them
            mx.eval(layer(X))
        assert layer.rnn_cell.__dict__["_constraint_memo"].values is not None
        layer.rnn_cell.w = layer.rnn_cell.w + 0.5  # an assignment replaces the array
        changed = layer(X)[0]
        assert np.allclose(np.array(changed), np.array(_fresh_output(layer, X)), atol=1e-6)
        layer.rnn_cell.implicit_param_constraints = False  # an option, not an array
        assert not np.allclose(np.array(layer(X)[0]), np.array(changed), atol=1e-4)


@pytest.mark.parametrize("mode", ["auto", "reference"])
def test_kept_values_follow_in_place_updates(mode):
    """``w[...] = v`` keeps the array object and swaps its descriptor: the kept values must not
    survive it (the prepared streaming step's guard sees it the same way)."""
    layer = _layer()
    with kernels.use(mode):
        for _ in range(3):
            mx.eval(layer(X))
        cell = layer.rnn_cell
        assert cell.__dict__["_constraint_memo"].values is not None
        w = cell.w
        cell.w[...] = cell.w + 0.5
        assert cell.w is w
        expected = _fresh_output(layer, X)
        assert np.allclose(np.array(layer(X)[0]), np.array(expected), atol=1e-6)
        cell.sensory_w += 0.25
        expected = _fresh_output(layer, X)
        assert np.allclose(np.array(layer(X)[0]), np.array(expected), atol=1e-6)
        x0, h0 = X[:, 0], mx.zeros((3, cell.state_size))
        assert np.allclose(np.array(cell.infer(x0, h0)[1]), np.array(cell(x0, h0)[1]), atol=1e-6)


def test_training_steps_use_the_updated_parameters():
    layer = _layer()
    w0 = layer.rnn_cell.w
    opt = optim.Adam(learning_rate=0.05)
    loss_and_grad = nn.value_and_grad(layer, lambda m, x: (m(x)[0] ** 2).mean())
    for _ in range(3):
        mx.eval(layer(X))  # eager calls between steps keep values of the current parameters
        mx.eval(layer(X))
        loss, grads = loss_and_grad(layer, X)
        opt.update(layer, grads)
        mx.eval(layer.parameters(), opt.state)
    # kept values of old parameters inside the step would cut w out of the graph (zero gradient)
    assert float(mx.max(mx.abs(layer.rnn_cell.w - w0))) > 1e-3
    assert np.allclose(np.array(layer(X)[0]), np.array(_fresh_output(layer, X)), atol=1e-6)


def test_gradients_through_kept_tracer_values():
    """Two calls inside one value_and_grad: the second keeps the tracers' softplus (evaluated
    inside the transform); the gradients must equal the reference's, which keeps nothing."""

    def loss(m, x):
        return (m(x)[0] ** 2).sum() + (m(x[:, :2])[0] ** 3).sum()

    grads = {}
    for mode in ("auto", "reference"):
        layer = _layer()
        with kernels.use(mode):
            _, g = nn.value_and_grad(layer, loss)(layer, X)
            mx.eval(g)
        grads[mode] = dict(tree_flatten(g))
    for k, ref in grads["reference"].items():
        scale = max(1.0, float(mx.max(mx.abs(ref))))
        assert float(mx.max(mx.abs(grads["auto"][k] - ref))) <= 1e-4 * scale, k


def test_compile_keeps_no_placeholders():
    layer = _layer()
    eager = layer(X)[0]
    compiled = mx.compile(lambda x: layer(x)[0] + layer(x)[0], inputs=layer.state, outputs=layer.state)
    assert np.allclose(np.array(compiled(X)), 2 * np.array(eager), atol=1e-5)
    mx.eval(layer(X))  # eager calls after tracing: no placeholder may have been kept
    assert np.allclose(np.array(layer(X)[0]), np.array(eager), atol=1e-6)


def test_copies_and_pickles_leave_the_kept_values_out():
    layer = _layer()
    mx.eval(layer(X), layer(X))
    for twin in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert "_constraint_memo" not in twin.rnn_cell.__dict__
        assert np.allclose(np.array(twin(X)[0]), np.array(layer(X)[0]), atol=1e-6)
