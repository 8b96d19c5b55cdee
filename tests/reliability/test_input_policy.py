"""The bad-input policy of docs/reliability.md, for the classes of issue 21: options that take
true/false refuse anything else, integers (seeds included) refuse floats and strings, infinite
inputs follow NaN's path on every path (fused, reference, streaming), and the messages name the
argument and what it must be."""

from __future__ import annotations

import io
import math

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest

import ncps
from ncps import kernels, training
from ncps.optimizers import adam
from ncps.wirings import AutoNCP, FullyConnected, Random, Wiring

PATHS = ("fused", "reference")
LAYER_PATHS = ("auto", "reference")  # auto: the fused kernel where the layer has one


# -- booleans and integers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda v: ncps.LTC(3, 8, return_sequences=v), "return_sequences"),
        (lambda v: ncps.CfC(3, 8, batch_first=v), "batch_first"),
        (lambda v: ncps.CfC(3, 8, mixed_memory=v), "mixed_memory"),
        (lambda v: ncps.LTC(3, 8, bidirectional=v), "bidirectional"),
        (lambda v: ncps.LTC(3, 8, implicit_param_constraints=v), "implicit_param_constraints"),
        (lambda v: ncps.LTCCell(FullyConnected(4), 3, implicit_param_constraints=v), "implicit_param_constraints"),
        (lambda v: FullyConnected(4, self_connections=v), "self_connections"),
        (lambda v: ncps.mini_keras.layers.CfC(4, return_sequences=v), "return_sequences"),
    ],
)
@pytest.mark.parametrize("value", ["False", "True", 0, 1, None, 0.0, [True]])
def test_boolean_options_refuse_truthy_values(make, name, value):
    with pytest.raises(TypeError, match=name) as info:
        make(value)
    assert "True or False" in str(info.value) and repr(value) in str(info.value)
    assert isinstance(info.value, ValueError)  # ArgumentTypeError: old `except ValueError` still works


def test_numpy_bools_are_bools():
    layer = ncps.LTC(3, 8, return_sequences=np.bool_(False))
    assert layer.return_sequences is False
    assert layer(mx.zeros((2, 4, 3)))[0].shape == (2, 8)
    assert FullyConnected(3, self_connections=np.False_).synapse_count == 6


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda v: AutoNCP(10, 2, seed=v), "seed"),
        (lambda v: ncps.wirings.NCP(4, 3, 2, 2, 2, 2, 2, seed=v), "seed"),
        (lambda v: Random(5, random_seed=v), "random_seed"),
        (lambda v: FullyConnected(5, erev_init_seed=v), "erev_init_seed"),
    ],
)
@pytest.mark.parametrize("value", [1.5, 2.0, "7", None, True, -1, 2**40])
def test_seeds_are_integers_named_in_the_message(make, name, value):
    with pytest.raises((TypeError, ValueError), match=name):
        make(value)


def test_numpy_integer_seed_is_an_int_in_the_config():
    assert AutoNCP(10, 2, seed=np.int64(5)).get_config()["seed"] == 5
    assert type(Random(5, random_seed=np.uint32(3)).random_seed) is int


# -- inf in the inputs ---------------------------------------------------------------------------


def _with_inf(shape, where):
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    x[where] = np.inf
    return mx.array(x)


@pytest.mark.parametrize("path", LAYER_PATHS)
@pytest.mark.parametrize(
    "make",
    [
        lambda: ncps.LTC(3, AutoNCP(8, 2)),
        lambda: ncps.LTC(3, 5, mixed_memory=True),
        lambda: ncps.CfC(3, 6, backbone_units=7),
        lambda: ncps.CfC(3, AutoNCP(9, 2)),
        lambda: ncps.CTRNN(3, 4),
        lambda: ncps.CfC(3, 4, bidirectional=True),
    ],
    ids=["ltc", "ltc_mixed", "cfc", "wired_cfc", "ctrnn", "cfc_bidirectional"],
)
@pytest.mark.parametrize("sign", [1, -1])
def test_an_infinite_input_makes_its_sample_nan_as_nan_does(path, make, sign):
    mx.random.seed(0)
    layer = make()
    x = _with_inf((2, 5, 3), (0, 2, 1))
    x = x * sign
    nan_x = mx.where(mx.isinf(x), math.nan, x)
    with kernels.use(path):
        y = np.array(layer(x)[0])
        y_nan = np.array(layer(nan_x)[0])
    np.testing.assert_array_equal(np.isnan(y), np.isnan(y_nan))  # exactly NaN's path
    assert np.isfinite(y[1]).all()  # the other sample is unaffected
    if layer.bidirectional:  # forward half NaN from step 2 on, backward half up to step 2
        half = y.shape[-1] // 2
        assert np.isnan(y[0, 2:, :half]).all() and np.isnan(y[0, :3, half:]).all()
    else:
        assert np.isnan(y[0, 2:]).all()  # never a plausible number
        assert np.isfinite(y[0, :2]).all()  # the steps before it are unaffected


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "cell",
    [lambda: ncps.LTCCell(AutoNCP(8, 2), 3), lambda: ncps.CfCCell(3, 4), lambda: ncps.WiredCfCCell(3, AutoNCP(8, 2))],
    ids=["ltc", "cfc", "wired_cfc"],
)
def test_cells_and_streaming_inference_turn_inf_into_nan(path, cell):
    cell = cell()
    h = mx.zeros((1, cell.state_size))
    finite = mx.ones((1, 3))
    bad = mx.array([[1.0, math.inf, 0.0]])
    mx.eval(h, finite, bad)
    with kernels.use(path):
        assert np.isnan(np.array(cell(bad, h)[0])).all()
        for _ in range(2):  # the second call takes the prepared step where there is one
            assert np.isfinite(np.array(cell.infer(finite, h)[0])).all()
            assert np.isnan(np.array(cell.infer(bad, h)[0])).all()
            assert np.isnan(np.array(cell.infer(-bad, h)[0])).all()


def test_the_prepared_step_leaves_a_non_finite_x_to_the_checked_path():
    """The C++ step reads x as it is: for any non-finite entry it answers None (the checked path
    then gives NaN), at every batch size, without a Python-side scan of x."""
    cell = ncps.LTCCell(AutoNCP(8, 2), 3)
    for B in (1, 256):
        h, x = mx.zeros((B, cell.state_size)), mx.ones((B, 3))
        mx.eval(cell.infer(x, h))
        assert cell._prepared is not None and cell._prepared.step(x, h, 1.0) is not None
        for bad in (math.inf, -math.inf, math.nan):
            xb = mx.concatenate([x[:-1], mx.array([[0.0, bad, 1.0]])])
            assert cell._prepared.step(xb, h, 1.0) is None
            assert np.isnan(np.array(cell.infer(xb, h)[0][-1])).all()


def test_an_infinite_initial_state_is_not_an_error():
    layer = ncps.CfC(3, 4)
    y, _ = layer(mx.zeros((1, 2, 3)), mx.full((1, 4), math.inf))
    assert y.shape == (1, 2, 4)


# -- the messages of issue 21 --------------------------------------------------------------------


def test_ltc_on_a_bare_wiring_reads_every_neuron_as_cfc_does():
    for layer in (ncps.LTC(3, Wiring(5)), ncps.CfC(3, Wiring(5))):
        assert layer.output_size == 5
        for path in PATHS:
            with kernels.use(path):
                assert layer(mx.zeros((2, 4, 3)))[0].shape == (2, 4, 5)
    cell = ncps.LTCCell(Wiring(5), 3)
    assert cell.motor_size == cell.output_size == 5
    assert cell.infer(mx.ones((1, 3)))[0].shape == (1, 5)


def test_ragged_lengths_name_the_argument():
    with pytest.raises(ValueError, match="lengths must be integers of shape"):
        ncps.CfC(3, 4)(mx.zeros((2, 4, 3)), lengths=[[1], [1, 2]])


def test_mixed_memory_state_of_the_wrong_arity():
    layer = ncps.CfC(3, 4, mixed_memory=True)
    with pytest.raises(RuntimeError, match=r"tuple \(h0, c0\) of two arrays .* got a tuple of 1"):
        layer(mx.zeros((2, 4, 3)), (mx.zeros((2, 4)),))


def _mse(model, x, y):
    return nn.losses.mse_loss(model(x)[0], y)


def test_fit_names_a_non_scalar_loss_and_a_short_validation_tuple():
    model = ncps.CfC(2, 3, return_sequences=False)
    X, y = np.zeros((16, 4, 2), np.float32), np.zeros((16, 3), np.float32)
    per_sample = lambda m, x, y: ((m(x)[0] - y) ** 2).mean(axis=1)  # noqa: E731
    for compile_step in (True, False):
        with pytest.raises(ValueError, match=r"loss_fn must return a scalar .* shape \(16,\)"):
            training.fit(
                model,
                per_sample,
                (X, y),
                optimizer=adam(0.01),
                epochs=1,
                batch_size=16,
                progress=False,
                compile=compile_step,
            )
    with pytest.raises(ValueError, match="validation_data must hold as many arrays as train_data"):
        training.fit(model, _mse, (X, y), optimizer=adam(0.01), validation_data=(X,), progress=False)


@pytest.mark.parametrize(
    "name, value", [("shuffle", "no"), ("progress", 1), ("compile", "False"), ("restore_best", None)]
)
def test_fit_boolean_options(name, value):
    model = ncps.CfC(2, 3, return_sequences=False)
    data = (np.zeros((4, 2, 2), np.float32), np.zeros((4, 3), np.float32))
    with pytest.raises(TypeError, match=name):
        training.fit(model, _mse, data, optimizer=adam(0.01), **{name: value})


@pytest.mark.parametrize("seed", [1.5, "0", -1])
def test_fit_seed_is_an_integer(seed):
    model = ncps.CfC(2, 3, return_sequences=False)
    data = (np.zeros((4, 2, 2), np.float32), np.zeros((4, 3), np.float32))
    with pytest.raises((TypeError, ValueError), match="seed"):
        training.fit(model, _mse, data, optimizer=adam(0.01), seed=seed, progress=False)


def test_save_names_model_and_path(tmp_path):
    with pytest.raises(TypeError, match="model must be an ncps cell or layer"):
        ncps.save(None, tmp_path / "m.safetensors")
    for path in ("", str(tmp_path) + "/"):
        with pytest.raises(ValueError, match="path must name a file"):
            ncps.save(ncps.CfC(2, 3), path)
    with pytest.raises(TypeError, match="path must be a file path"):
        ncps.load(3)


def test_classifier_on_4d_x_says_what_it_takes():
    pytest.importorskip("sklearn")
    from ncps.sklearn import LiquidClassifier

    with pytest.raises(ValueError, match=r"X must be 3-D \(n_samples, n_timesteps, n_features\)"):
        LiquidClassifier(epochs=1).fit(np.zeros((4, 2, 3, 1)), [0, 1, 0, 1])
    with pytest.raises(TypeError, match="early_stopping"):
        LiquidClassifier(epochs=1, early_stopping="yes").fit(np.zeros((4, 2, 3)), [0, 1, 0, 1])
    with pytest.raises((TypeError, ValueError), match="random_state"):
        LiquidClassifier(epochs=1, random_state=1.5).fit(np.zeros((4, 2, 3)), [0, 1, 0, 1])


# -- discoverability -----------------------------------------------------------------------------


def test_repr_shows_sizes_and_wiring():
    text = repr(ncps.LTC(3, AutoNCP(10, 2)))
    for part in ("input_size=3", "state_size=10", "output_size=2", "AutoNCP(units=10, output_size=2"):
        assert part in text, text
    assert "return_sequences=False" in repr(ncps.CfC(3, 4, return_sequences=False))


def test_call_docstrings_carry_the_contract():
    for layer in (ncps.CfC, ncps.LTC, ncps.CTRNN, ncps.CTGRU, ncps.RNN):
        doc = layer.__call__.__doc__ or ""
        for word in ("state", "timespans", "lengths", "Returns", "hidden="):
            assert word in doc, (layer.__name__, word)


def test_hidden_is_the_state():
    layer = ncps.CfC(3, 4)
    x, h0 = mx.ones((2, 5, 3)), mx.ones((2, 4))
    want = layer(x, h0)
    got = layer(x, hidden=h0)
    np.testing.assert_array_equal(np.array(got[0]), np.array(want[0]))
    with pytest.raises(TypeError, match="got both 'hidden'"):
        layer(x, h0, hidden=h0)


@pytest.mark.parametrize(
    "front, hint", [("torch", "from ncps import CfC"), ("keras", "mini_keras as keras"), ("tf", "mini_keras as keras")]
)
def test_official_front_imports_say_what_to_import(front, hint):
    import importlib

    with pytest.raises(ImportError, match=hint) as info:
        importlib.import_module(f"ncps.{front}")
    assert isinstance(info.value, ModuleNotFoundError) and info.value.name == f"ncps.{front}"
    assert importlib.import_module("ncps.mlx").CfC is ncps.CfC


def test_progress_bar_on_a_terminal_that_reports_zero_columns(monkeypatch):
    pytest.importorskip("tqdm")

    class ZeroColumnTerminal(io.StringIO):
        def isatty(self):
            return True

        def fileno(self):
            return 2

    stream = ZeroColumnTerminal()
    monkeypatch.setattr(training.sys, "stderr", stream)
    monkeypatch.setattr(training.os, "get_terminal_size", lambda fd=None: __import__("os").terminal_size((0, 0)))
    bar = training._progress_bar(True, 4, "Epoch 1/1")
    assert bar is not None and bar.ncols == 80 and not bar.dynamic_ncols
    bar.update(2)
    line = str(bar)  # what tqdm draws: a bar 80 columns wide, half full
    bar.close()
    assert line.startswith("Epoch 1/1") and "2/4" in line and "#" in line and len(line) == 80, line
