"""ncps.mini_keras: layers, Sequential, compile/fit/evaluate/predict, summary, save/load."""

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import pytest

import ncps
from ncps import mini_keras as keras
from ncps.mini_keras import callbacks as kcb
from ncps.mini_keras import losses as klosses
from ncps.wirings import NCP, AutoNCP


def _seq_data(n=24, T=6, F=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, T, F)).astype(np.float32)
    y = x.sum(axis=(1, 2), keepdims=False)[:, None].astype(np.float32) / 4
    return x, y


# -- layers and shapes ------------------------------------------------------------------------
def test_dense_applies_to_last_axis_of_sequences():
    model = keras.Sequential([keras.layers.InputLayer((5, 3)), keras.layers.Dense(4, activation="relu")])
    out = model(mx.ones((2, 5, 3)))
    assert out.shape == (2, 5, 4)
    assert float(mx.min(out)) >= 0.0
    assert model.output_shape == (5, 4)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "softmax", "gelu", "silu", "linear", None, "lecun_tanh"])
def test_dense_activations(activation):
    layer = keras.layers.Dense(3, activation=activation)
    out = layer(mx.array(np.linspace(-2, 2, 8, dtype=np.float32).reshape(2, 4)))
    assert out.shape == (2, 3)
    if activation == "softmax":
        assert np.allclose(np.array(out.sum(axis=-1)), 1.0, atol=1e-6)


def test_unknown_activation_and_loss_raise():
    with pytest.raises(ValueError, match="Unknown activation"):
        keras.layers.Dense(3, activation="nope")
    model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
    with pytest.raises(ValueError, match="Unknown loss"):
        model.compile(loss="nope")
    with pytest.raises(ValueError, match="Unknown optimizer"):
        model.compile(optimizer="nope")


@pytest.mark.parametrize("return_sequences", [False, True])
def test_recurrent_layers_infer_input_size_and_return_sequences(return_sequences):
    model = keras.Sequential(
        [
            keras.layers.InputLayer((None, 3)),
            keras.layers.CfC(8, return_sequences=True),
            keras.layers.LTC(AutoNCP(10, 2), return_sequences=return_sequences),
        ]
    )
    out = model(mx.zeros((4, 7, 3)))
    assert out.shape == ((4, 7, 2) if return_sequences else (4, 2))
    assert model.layers[0].rnn.input_size == 3
    assert model.layers[1].rnn.input_size == 8
    assert model.output_shape == ((None, 2) if return_sequences else (2,))


def test_recurrent_defaults_to_last_step_like_keras():
    layer = keras.layers.CfC(6)
    assert layer.return_sequences is False
    x = mx.random.normal((2, 5, 3))
    last = layer(x)
    full, _ = layer.sequences(x)
    assert np.allclose(np.array(last), np.array(full[:, -1]), atol=1e-6)


def test_cfc_options_reach_the_ncps_layer():
    layer = keras.layers.CfC(8, mixed_memory=True, mode="no_gate", backbone_units=16, backbone_layers=2)
    layer.build((None, 3))
    assert isinstance(layer.rnn, ncps.CfC) and layer.rnn.mixed_memory
    assert layer.rnn.rnn_cell.mode == "no_gate"
    assert layer.rnn.rnn_cell.backbone_layers == 2


def test_wired_cfc_outputs_motor_neurons():
    model = keras.Sequential([keras.layers.CfC(NCP(4, 3, 2, 2, 2, 1, 2), input_shape=(None, 5))])
    assert model(mx.zeros((1, 3, 5))).shape == (1, 2)


def test_timespans_tuple_changes_the_output():
    model = keras.Sequential([keras.layers.InputLayer((None, 2)), keras.layers.CfC(8), keras.layers.Dense(1)])
    x = mx.random.normal((3, 5, 2))
    a = model(x)
    b = model((x, mx.ones((3, 5))))
    c = model((x, 3.0 * mx.ones((3, 5, 1))))
    d = model((x, 3.0))
    assert np.allclose(np.array(a), np.array(b), atol=1e-6)
    assert not np.allclose(np.array(a), np.array(c), atol=1e-4)
    assert np.allclose(np.array(c), np.array(d), atol=1e-6)


def test_mask_selects_last_valid_step():
    layer = keras.layers.CfC(4)
    x = mx.random.normal((2, 6, 3))
    ts = mx.ones((2, 6))
    mask = mx.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=mx.bool_)
    out = layer(x, timespans=ts, mask=mask)
    full, _ = layer.sequences(x, ts)
    assert np.allclose(np.array(out[0]), np.array(full[0, 2]), atol=1e-6)
    assert np.allclose(np.array(out[1]), np.array(full[1, 4]), atol=1e-6)
    seq_layer = keras.layers.CfC(4, return_sequences=True)
    seq_layer.build((6, 3))
    seq_layer.update(layer.parameters())
    seq = seq_layer(x, timespans=ts, mask=mask)
    assert np.allclose(np.array(seq[0, 3:]), np.array(full[0, 2:3]).repeat(3, 0), atol=1e-6)


def test_dropout_only_in_training_mode():
    model = keras.Sequential([keras.layers.Dropout(0.5, input_shape=(100,))])
    x = mx.ones((4, 100))
    model.train()
    assert float((model(x) == 0).mean()) > 0.2
    model.eval()
    assert np.allclose(np.array(model(x)), 1.0)


def test_flatten_reshape_activation_lambda():
    model = keras.Sequential(
        [
            keras.layers.InputLayer((4, 3)),
            keras.layers.Flatten(),
            keras.layers.Reshape((2, -1)),
            keras.layers.Activation("tanh"),
            keras.layers.Lambda(lambda x: x[:, :, :2]),
        ]
    )
    assert model(mx.ones((5, 4, 3))).shape == (5, 2, 2)
    assert model.output_shape == (2, 2)


def test_input_layer_must_come_first_and_names_are_unique():
    model = keras.Sequential([keras.layers.Dense(2, input_shape=(3,)), keras.layers.Dense(2)])
    assert [l.layer_name for l in model.layers] == ["dense", "dense_1"]
    with pytest.raises(ValueError, match="InputLayer must come first"):
        keras.Sequential([keras.layers.Dense(2), keras.layers.InputLayer((3,))])
    with pytest.raises(ValueError, match="expects inputs of shape"):
        model(mx.zeros((1, 4)))


def test_summary_lists_layers_shapes_and_params():
    model = keras.Sequential(
        [
            keras.layers.InputLayer((None, 2)),
            keras.layers.CfC(8, backbone_units=16),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    lines = []
    text = model.summary(print_fn=lines.append)
    assert lines == [text]
    assert "cfc (CfC)" in text and "dense (Dense)" in text
    assert "(None, 8)" in text and "(None, 3)" in text
    total = model.count_params()
    assert f"Total params: {total:,}" in text
    assert total == sum(l.count_params()[0] for l in model.layers) == 8 * 3 + 3 + model.layers[0].count_params()[0]


def test_summary_needs_an_input_shape():
    with pytest.raises(ValueError, match="not built"):
        keras.Sequential([keras.layers.Dense(2)]).summary()


# -- losses and metrics -----------------------------------------------------------------------
def test_string_crossentropy_follows_the_output_activation():
    probs = keras.Sequential([keras.layers.Dense(3, activation="softmax", input_shape=(2,))])
    probs.compile(loss="sparse_categorical_crossentropy")
    logits = keras.Sequential([keras.layers.Dense(3, input_shape=(2,))])
    logits.compile(loss="sparse_categorical_crossentropy")
    assert probs.loss.from_logits is False and logits.loss.from_logits is True
    z = mx.array([[2.0, 0.5, -1.0]])
    y = mx.array([0])
    a = klosses.SparseCategoricalCrossentropy(from_logits=True)(y, z)
    b = klosses.SparseCategoricalCrossentropy()(y, mx.softmax(z, axis=-1))
    assert abs(float(a) - float(b)) < 1e-5
    c = klosses.BinaryCrossentropy(from_logits=True)(mx.array([1.0]), mx.array([[0.3]]))
    d = klosses.BinaryCrossentropy()(mx.array([1.0]), mx.sigmoid(mx.array([[0.3]])))
    assert abs(float(c) - float(d)) < 1e-5


def test_accuracy_resolution():
    from ncps.mini_keras import metrics as km

    _, fn = km.get("accuracy", klosses.SparseCategoricalCrossentropy())
    assert float(fn(mx.array([0, 2]), mx.array([[0.9, 0.1, 0.0], [0.6, 0.3, 0.1]]))) == 0.5
    _, fn = km.get("accuracy", klosses.BinaryCrossentropy(from_logits=True))
    assert float(fn(mx.array([1, 0, 1]), mx.array([[0.2], [-0.1], [-3.0]]))) == pytest.approx(2 / 3)
    assert float(km.get("mae", None)[1](mx.array([1.0, 2.0]), mx.array([[2.0], [2.0]]))) == 0.5


# -- training ---------------------------------------------------------------------------------
def test_fit_reduces_loss_and_returns_history():
    x, y = _seq_data(n=32)
    mx.random.seed(0)
    model = keras.Sequential(
        [keras.layers.InputLayer((None, 2)), keras.layers.CfC(8, backbone_units=8), keras.layers.Dense(1)]
    )
    model.compile(optimizer=optim.Adam(0.02), loss="mse", metrics=["mae"], jit_compile=False)
    before = model.evaluate(x, y)[0]
    history = model.fit(x, y, epochs=8, batch_size=8, verbose=0, validation_split=0.25, seed=0)
    assert set(history.history) == {"loss", "mae", "val_loss", "val_mae"}
    assert len(history.history["loss"]) == 8
    after = model.evaluate(x, y, return_dict=True)
    assert set(after) == {"loss", "mae"}
    assert after["loss"] < before


def test_fit_classification_with_timespans_and_accuracy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 5, 1)).astype(np.float32)
    ts = rng.uniform(0.5, 1.5, size=(40, 5)).astype(np.float32)
    y = (x[:, :, 0].mean(axis=1) > 0).astype(np.int64)
    mx.random.seed(0)
    model = keras.Sequential(
        [keras.layers.InputLayer((5, 1)), keras.layers.CfC(8, backbone_units=8), keras.layers.Dense(2)]
    )
    model.compile(
        optimizer=optim.Adam(0.03), loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=False
    )
    history = model.fit((x, ts), y, epochs=10, batch_size=10, verbose=0, validation_data=((x, ts), y), seed=0)
    assert history.history["val_accuracy"][-1] >= 0.7
    loss, acc = model.evaluate((x, ts), y)
    # the final weights (restore_best defaults to False, as in Keras): evaluate repeats the last validation
    assert acc == pytest.approx(history.history["val_accuracy"][-1], abs=1e-6)
    assert loss == pytest.approx(history.history["val_loss"][-1], rel=1e-5)
    pred = model.predict((x, ts), batch_size=16)
    assert isinstance(pred, mx.array) and pred.shape == (40, 2)


def test_metrics_come_from_the_loss_forward_pass(monkeypatch):
    """As in Keras, the model runs once per training batch whatever the metrics; each metric is
    the batch-size-weighted mean of the metric of the predictions the loss saw."""
    x, y = _seq_data(n=24)
    mx.random.seed(0)
    model = keras.Sequential(
        [keras.layers.InputLayer((None, 2)), keras.layers.CfC(8, backbone_units=8), keras.layers.Dense(1)]
    )
    model.compile(optimizer=optim.SGD(learning_rate=0.0), loss="mse", metrics=["mae", "rmse"], jit_compile=False)
    expected_mae = float(np.mean(np.abs(np.array(model.predict(x)) - np.asarray(y).reshape(24, 1))))
    calls = []
    forward = keras.Sequential.__call__
    monkeypatch.setattr(keras.Sequential, "__call__", lambda self, inputs: calls.append(1) or forward(self, inputs))
    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    assert len(calls) == 3  # three batches, one forward pass each
    assert list(history.history) == ["loss", "mae", "rmse"]
    assert history.history["mae"][0] == pytest.approx(expected_mae, rel=1e-5)


def test_fit_with_mask_and_binary_logits():
    from ncps.datasets import bitstream_xor

    data = bitstream_xor(64, pad_size=8, seed=3)
    model = keras.Sequential(
        [keras.layers.InputLayer((8, 1)), keras.layers.CfC(8, backbone_units=8), keras.layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])  # compiled step
    assert model.loss.from_logits
    history = model.fit((data.x, data.timespans, data.mask), data.y, epochs=1, batch_size=32, verbose=0)
    assert history.compiled and 0.0 <= history.history["accuracy"][0] <= 1.0
    assert model.predict((data.x, data.timespans, data.mask)).shape == (64, 1)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_loss_and_metrics_share_one_forward_pass(jit_compile):
    """As in Keras, fit and evaluate compute the loss and every metric from one forward pass per
    batch (a metric used to cost a whole second forward pass of the model every step), and the
    values are those of separate computations."""
    x, y = _seq_data(n=24)
    calls = []

    def counted(v):
        calls.append(1)
        return v

    model = keras.Sequential(
        [
            keras.layers.InputLayer((6, 2)),
            keras.layers.CfC(4),
            keras.layers.Dense(1),
            keras.layers.Lambda(counted, output_shape=(1,)),
        ]
    )
    model.compile(optimizer=optim.SGD(learning_rate=0.0), loss="mse", metrics=["mae", "mse"], jit_compile=jit_compile)
    model.build((6, 2))
    calls.clear()
    history = model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    assert history.compiled == jit_compile
    assert len(calls) == (1 if jit_compile else 3)  # traced once, or one forward per batch of 8
    calls.clear()
    result = model.evaluate(x, y, batch_size=8, return_dict=True)
    assert len(calls) == 3
    pred = np.array(model.predict(x))
    want_mse, want_mae = float(((pred - y) ** 2).mean()), float(np.abs(pred - y).mean())
    for logs in ({k: v[0] for k, v in history.history.items()}, result):  # lr 0: same weights
        assert logs["loss"] == pytest.approx(want_mse, rel=1e-5)
        assert logs["mse"] == pytest.approx(want_mse, rel=1e-5)
        assert logs["mae"] == pytest.approx(want_mae, rel=1e-5)


def test_xor_configuration_takes_the_fused_path_and_matches_the_reference():
    """examples/xor_cfc.py's model (mixed-memory CfC, relu backbone, (x, timespans, mask) input):
    the plan is the fused kernel, a whole training loss and gradient run without any fallback
    (``fused`` mode raises on one), and both equal the reference path's."""
    from mlx.utils import tree_flatten

    from ncps import kernels
    from ncps.datasets import bitstream_xor

    if not kernels.extension_available():
        pytest.skip("ncps._ext is not built")
    data = bitstream_xor(24, pad_size=16, seed=5)
    inputs = (mx.array(data.x), mx.array(data.timespans * 16), mx.array(data.mask))
    mx.random.seed(1)
    model = keras.Sequential(
        [
            keras.layers.InputLayer((None, 1)),
            keras.layers.CfC(8, mixed_memory=True, backbone_units=16, backbone_layers=1, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"], clipnorm=10.0)
    model.build((None, 1))
    model.train()
    plan = kernels.plan(model.layers[0].rnn.rnn_cell, mixed_memory=True)
    assert plan.fused and plan.backend == "cpu" and plan.reason is None
    loss_fn = model._loss_fn()  # (loss, [accuracy]) from one forward pass: differentiate the loss
    value_and_grad = mx.value_and_grad(lambda p: (model.update(p), loss_fn(model, *inputs, mx.array(data.y))[0])[1])
    results = {}
    for mode in ("fused", "reference"):
        with kernels.use(mode):
            loss, grads = value_and_grad(model.trainable_parameters())
            results[mode] = float(loss), dict(tree_flatten(grads))
    (loss_f, grads_f), (loss_r, grads_r) = results["fused"], results["reference"]
    assert loss_f == pytest.approx(loss_r, rel=1e-5)
    assert grads_f.keys() == grads_r.keys()
    for name, g in grads_r.items():
        g, f = np.array(g), np.array(grads_f[name])
        assert np.abs(f - g).max() <= 1e-4 * max(np.abs(g).max(), 1e-3), name


def test_fit_needs_compile_and_matching_lengths():
    model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(np.zeros((4, 2)), np.zeros((4, 1)))
    model.compile(jit_compile=False)
    with pytest.raises(ValueError, match="samples"):
        model.fit(np.zeros((4, 2)), np.zeros((3, 1)), verbose=0)


def test_verbose_2_prints_one_line_per_epoch(capsys):
    model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
    model.compile(optimizer=optim.SGD(0.1), loss="mse", jit_compile=False)
    model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=3, verbose=2)
    out = capsys.readouterr().out
    assert out.count("Epoch ") == 3 and "Epoch 3/3 - loss:" in out


_FIT_SCRIPT = """
import numpy as np
from ncps import mini_keras as keras
model = keras.Sequential([keras.layers.Dense(1, input_shape=(2,))])
model.compile(optimizer="sgd", loss="mse")
model.fit(np.ones((16, 2)), np.ones((16, 1)), epochs=3, batch_size=4, verbose={verbose})
"""


@pytest.mark.parametrize("verbose", [1, 2])
def test_fit_off_a_terminal_prints_one_line_per_epoch(verbose):
    """verbose=1 (a progress bar on a terminal) and verbose=2 both print one line per epoch, and
    no carriage returns, when the output goes to a pipe."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _FIT_SCRIPT.format(verbose=verbose)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout + proc.stderr
    assert "\r" not in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"], text


def test_early_stopping_and_model_checkpoint(tmp_path):
    x, y = _seq_data(n=16, T=3)
    model = keras.Sequential([keras.layers.InputLayer((3, 2)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(optimizer=optim.SGD(0.0), loss="mse", jit_compile=False)  # lr 0: never improves
    stop = kcb.EarlyStopping(monitor="loss", patience=2, min_delta=1e-6)
    ckpt = kcb.ModelCheckpoint(tmp_path / "best.safetensors", monitor="loss", save_best_only=True)
    seen = []
    history = model.fit(
        x, y, epochs=20, verbose=0, shuffle=False, callbacks=[ckpt, lambda e, logs: seen.append(e), stop]
    )
    assert len(history.history["loss"]) == 3 and stop.stopped_epoch == 2
    assert seen == [0, 1, 2]
    assert (tmp_path / "best.safetensors").is_file()
    reloaded = keras.load_model(tmp_path / "best.safetensors")
    assert np.allclose(np.array(reloaded.predict(x)), np.array(model.predict(x)), atol=1e-6)


def test_early_stopping_restores_best_weights():
    x, y = _seq_data(n=16, T=3)
    model = keras.Sequential([keras.layers.InputLayer((3, 2)), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(optimizer=optim.SGD(1.5), loss="mse", jit_compile=False)  # overshoots sooner or later
    stop = kcb.EarlyStopping(patience=1, restore_best_weights=True)
    history = model.fit(
        x, y, epochs=50, verbose=0, shuffle=False, batch_size=16, callbacks=[stop], validation_data=(x[:8], y[:8])
    )
    val = history.history["val_loss"]
    assert stop.stopped_epoch is not None and val[-1] > min(val)
    assert model.evaluate(x[:8], y[:8]) == pytest.approx(min(val), rel=1e-5)


# -- persistence -----------------------------------------------------------------------------
def test_save_and_load_model_round_trip(tmp_path):
    wiring = AutoNCP(10, 2, seed=7)
    model = keras.Sequential(
        [
            keras.layers.InputLayer((None, 3)),
            keras.layers.LTC(wiring, return_sequences=True, ode_unfolds=3),
            keras.layers.CfC(NCP(3, 3, 2, 2, 2, 1, 2), return_sequences=True, mode="pure"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(4, activation="tanh"),
        ],
        name="stack",
    )
    model.compile(optimizer=optim.Adam(learning_rate=3e-3), loss="mae", metrics=["mse"], clipnorm=1.0)
    path = tmp_path / "model.safetensors"
    model.save(path)
    loaded = keras.models.load_model(path)
    x = mx.random.normal((2, 5, 3))
    model.eval()
    loaded.eval()
    assert np.allclose(np.array(model(x)), np.array(loaded(x)), atol=1e-6)
    assert loaded.model_name == "stack"
    cell = loaded.layers[0].rnn.rnn_cell
    assert np.array_equal(cell.wiring.adjacency_matrix, model.layers[0].rnn.rnn_cell.wiring.adjacency_matrix)
    assert loaded.compiled and isinstance(loaded.optimizer, optim.Adam)
    assert float(loaded.optimizer.learning_rate) == pytest.approx(3e-3)
    assert loaded.clipnorm == 1.0 and list(loaded.metrics_fns) == ["mse"]
    assert not keras.load_model(path, compile=False).compiled


def test_save_refuses_lambda_and_load_checks_file(tmp_path):
    model = keras.Sequential([keras.layers.Lambda(lambda x: x * 2, input_shape=(2,))])
    with pytest.raises(ValueError, match="Lambda"):
        model.save(tmp_path / "m.safetensors")
    with pytest.raises(FileNotFoundError):
        keras.load_model(tmp_path / "missing.safetensors")
    plain = ncps.CfC(2, 4)
    ncps.save(plain, tmp_path / "plain.safetensors")
    with pytest.raises(ValueError, match="no mini_keras model"):
        keras.load_model(tmp_path / "plain.safetensors")
