"""ncps.training: fit / evaluate / predict / iterate_batches, and the LiquidNeuralNetwork wrapper."""

import sys

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
import pytest
from mlx.utils import tree_flatten

import ncps
from ncps.training import Callback, History, StopTraining, evaluate, fit, iterate_batches, predict


def make_task(n=96, T=6, F=2, seed=0):
    """A smooth sequence regression task: y = scaled sum of the inputs."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, F)).astype(np.float32)
    y = (X.sum(axis=(1, 2)) / np.sqrt(T * F))[:, None].astype(np.float32)
    return X, y


def make_model(seed=0, return_sequences=False):
    mx.random.seed(seed)
    model = ncps.CfC(2, 8, proj_size=1, backbone_units=16, return_sequences=return_sequences)
    mx.eval(model.parameters())
    return model


def mse(model, x, y):
    return nn.losses.mse_loss(model(x)[0], y)


def mae(model, x, y):
    return nn.losses.l1_loss(model(x)[0], y)


def train(model, data, loss=mse, optimizer=None, **kwargs) -> History:
    """``fit(model, loss, data, ...)`` as most tests here call it: ``optimizer`` defaults to
    Adam at 1e-2 (a fresh one per call) and the progress bar is off unless asked for."""
    kwargs.setdefault("progress", False)
    return fit(model, loss, data, optimizer=optimizer or optim.Adam(learning_rate=1e-2), **kwargs)


def params_of(model):
    return {k: np.array(v) for k, v in tree_flatten(model.parameters())}


def assert_params_equal(a, b, atol=0.0):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=atol, err_msg=k)


# -- fit ---------------------------------------------------------------------------------------


def test_loss_decreases_and_history():
    X, y = make_task()
    model = make_model()
    initial = evaluate(model, mse, (X[:32], y[:32]))["loss"]
    h = train(model, (X, y), epochs=8, batch_size=16, validation_data=(X[:32], y[:32]), metrics={"mae": mae}, seed=0)
    assert isinstance(h, History)
    assert set(h.history) == {"loss", "mae", "val_loss", "val_mae"}
    assert all(len(v) == 8 for v in h.history.values())
    assert h.epoch == list(range(8)) and len(h.epoch_times) == 8 and all(t > 0 for t in h.epoch_times)
    assert h.history["loss"][-1] < 0.5 * h.history["loss"][0]
    # The last epoch's validation loss is noisy (Adam at lr 1e-2 on 6 batches an epoch): over fit
    # seeds 0-4 it ends at 0.20-0.42 x initial on the reference and on the fused path alike, and
    # float-rounding differences between the two paths grow into a different trajectory.
    assert h.history["val_loss"][-1] < 0.5 * initial
    assert h.monitor == "val_loss"
    assert h.best_epoch == int(np.argmin(h.history["val_loss"]))
    assert h.best_value == min(h.history["val_loss"])
    assert not h.stopped_early and h.world_size == 1


def test_validation_metrics_match_evaluate():
    X, y = make_task()
    model = make_model()
    val = (X[:40], y[:40])
    h = train(
        model, (X, y), epochs=2, batch_size=16, validation_data=val, metrics={"mae": mae}, restore_best=False, seed=0
    )
    ev = evaluate(model, mse, val, batch_size=7, metrics={"mae": mae})
    assert ev.keys() == {"loss", "mae"}
    assert ev["loss"] == pytest.approx(h.history["val_loss"][-1], rel=1e-5)
    assert ev["mae"] == pytest.approx(h.history["val_mae"][-1], rel=1e-5)


def test_evaluate_weights_batches_by_size():
    X, y = make_task(n=50)
    model = make_model()
    full = float(mse(model, mx.array(X), mx.array(y)))
    for bs in (1, 7, 16, 50, 64):  # uneven last batches must not bias the mean
        assert evaluate(model, mse, (X, y), batch_size=bs)["loss"] == pytest.approx(full, rel=1e-5)


def test_train_metrics_are_batch_weighted_means():
    X, y = make_task(n=40)
    model = make_model()
    seen = []

    def count(model, x, y):  # the batch size, so the weighted mean is sum(b^2) / n
        seen.append(x.shape[0])
        return mx.array(float(x.shape[0]))

    h = train(
        model,
        (X, y),
        optimizer=optim.SGD(learning_rate=0.0),
        epochs=1,
        batch_size=16,
        metrics={"count": count},
        compile=False,
    )
    assert seen == [16, 16, 8]
    assert h.history["count"] == [pytest.approx((16 * 16 + 16 * 16 + 8 * 8) / 40)]


def mse_and_mae(model, x, y):
    """The loss and, from the same forward pass, the MAE (for ``loss_metrics=["mae"]``)."""
    pred = model(x)[0]
    return nn.losses.mse_loss(pred, y), [nn.losses.l1_loss(pred, y)]


@pytest.mark.parametrize("compile_step", [True, False])
def test_loss_metrics_match_separate_metrics(compile_step):
    """Metrics returned by loss_fn (one forward pass) give the history and the parameters that
    the same metrics as separate functions (a second forward pass) give."""
    X, y = make_task(n=48)
    runs = []
    for loss, kw in ((mse, dict(metrics={"mae": mae})), (mse_and_mae, dict(loss_metrics=["mae"]))):
        model = make_model()
        h = train(
            model,
            (X, y),
            loss,
            epochs=2,
            batch_size=16,
            validation_data=(X[:20], y[:20]),
            restore_best=False,
            seed=0,
            compile=compile_step,
            **kw,
        )
        runs.append((h, params_of(model)))
    (h_sep, p_sep), (h_one, p_one) = runs
    assert list(h_one.history) == list(h_sep.history) == ["loss", "mae", "val_loss", "val_mae"]
    for k in h_sep.history:
        np.testing.assert_allclose(h_one.history[k], h_sep.history[k], rtol=1e-5, err_msg=k)
    for k in p_sep:
        np.testing.assert_allclose(p_one[k], p_sep[k], rtol=1e-5, atol=1e-7, err_msg=k)
    ev = evaluate(make_model(), mse_and_mae, (X, y), batch_size=7, loss_metrics=["mae"])
    ev_sep = evaluate(make_model(), mse, (X, y), batch_size=7, metrics={"mae": mae})
    assert list(ev) == ["loss", "mae"] and ev == pytest.approx(ev_sep, rel=1e-6)


def test_loss_metrics_run_the_model_once_per_batch():
    """What loss_metrics saves: ``metrics`` functions call the model again on every batch."""
    X, y = make_task(n=40)
    calls = []
    model = make_model()
    forward = type(model).__call__

    class Counting(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def __call__(self, x):
            calls.append(x.shape[0])
            return forward(self.inner, x)

    counting = Counting()
    common = dict(optimizer=optim.SGD(learning_rate=0.0), epochs=1, batch_size=16, compile=False)
    train(counting, (X, y), mse_and_mae, loss_metrics=["mae"], **common)
    assert calls == [16, 16, 8]
    calls.clear()
    train(counting, (X, y), mse, metrics={"mae": mae}, **common)
    assert len(calls) == 6


@pytest.mark.parametrize(
    "loss_fn, kwargs, match",
    [
        (mse, dict(loss_metrics=["mae"]), "loss_fn must return \\(loss, values\\)"),
        (lambda m, x, y: (mse(m, x, y), []), dict(loss_metrics=["mae"]), "1 scalar value"),
        (mse_and_mae, dict(loss_metrics=["mae"], metrics={"mae": mae}), "unique"),
        (mse_and_mae, dict(loss_metrics=["val_mae"]), "metric names"),
        (mse_and_mae, dict(loss_metrics="mae"), "sequence of names"),
    ],
)
def test_loss_metrics_errors(loss_fn, kwargs, match):
    X, y = make_task(n=8)
    with pytest.raises((ValueError, TypeError), match=match):
        train(make_model(), (X, y), loss_fn, optim.SGD(learning_rate=0.1), epochs=1, compile=False, **kwargs)


@pytest.mark.parametrize("compiled", [True, False])
def test_metrics_do_not_change_the_update(compiled):
    """The metrics are auxiliary outputs of the differentiated function (so that a front can
    compute them from the loss's forward pass): no gradient may flow from them, and they must
    still be the metric of the parameters before each update."""
    X, y = make_task(n=48)
    runs = []
    for metrics in (None, {"mae": mae, "double_mse": lambda m, x, y: 2 * mse(m, x, y)}):
        model = make_model()
        adam = optim.Adam(learning_rate=1e-2, bias_correction=True)
        h = train(model, (X, y), optimizer=adam, epochs=2, batch_size=16, metrics=metrics, seed=0, compile=compiled)
        assert h.compiled == compiled
        runs.append((params_of(model), h.history))
    assert_params_equal(runs[0][0], runs[1][0], atol=1e-7)
    np.testing.assert_allclose(runs[1][1]["loss"], runs[0][1]["loss"], rtol=1e-6)
    np.testing.assert_allclose(runs[1][1]["double_mse"], 2 * np.array(runs[1][1]["loss"]), rtol=1e-5)


def test_clipping_matches_manual_clip_grad_norm():
    X, y = make_task(n=32)
    clip, lr = 0.05, 0.1
    model = make_model()
    before = params_of(model)
    # One full-batch SGD step, unshuffled: the update must be -lr * clipped gradient.
    grads = nn.value_and_grad(model, lambda x, y: mse(model, x, y))(mx.array(X), mx.array(y))[1]
    flat = {k: np.array(g, dtype=np.float64) for k, g in tree_flatten(grads)}
    norm = np.sqrt(sum((g**2).sum() for g in flat.values()))
    assert norm > 10 * clip  # clipping really changes the step

    def one_step(**kwargs):
        """The parameters after one full-batch unshuffled SGD step from ``before``."""
        model = make_model()
        train(model, (X, y), optimizer=optim.SGD(learning_rate=lr), epochs=1, batch_size=32, shuffle=False, **kwargs)
        after = params_of(model)
        return after, np.sqrt(sum(((after[k] - before[k]) ** 2).sum() for k in before))

    for compile_step in (True, False):
        after, step = one_step(clip_norm=clip, compile=compile_step)
        for k in before:
            expected = before[k] - lr * flat[k] * (clip / norm)
            np.testing.assert_allclose(after[k], expected, rtol=1e-4, atol=1e-6, err_msg=k)
        assert step == pytest.approx(lr * clip, rel=1e-3)
    # and without clipping the step is the full gradient step
    assert one_step()[1] == pytest.approx(lr * norm, rel=1e-3)


@pytest.mark.parametrize("restore_best", [True, False])
def test_early_stopping_and_restore_best(restore_best):
    """Early stopping ends ``patience`` epochs after the best one; the model then holds the best
    epoch's weights (``restore_best=True``) or the last epoch's (``False``)."""
    X, y = make_task()
    snapshots = []
    # Validation targets are the negated training targets: the better the fit, the worse val_loss.
    model = make_model()
    h = train(
        model,
        (X, y),
        epochs=30,
        batch_size=16,
        validation_data=(X[:32], -y[:32]),
        early_stopping_patience=2,
        restore_best=restore_best,
        seed=0,
        callbacks=[lambda epoch, logs: snapshots.append(params_of(model))],
    )
    assert h.stopped_early and len(h.epoch) < 30
    assert len(h.epoch) == h.best_epoch + 1 + 2  # patience epochs after the best one
    assert h.restored_best == restore_best
    assert_params_equal(params_of(model), snapshots[h.best_epoch if restore_best else -1])
    if restore_best:
        assert evaluate(model, mse, (X[:32], -y[:32]))["loss"] == pytest.approx(h.best_value, rel=1e-5)


def test_checkpoint_of_ncps_layer(tmp_path):
    X, y = make_task()
    path = tmp_path / "ckpt" / "best.safetensors"
    model = make_model()
    h = train(model, (X, y), epochs=4, batch_size=16, validation_data=(X[:32], y[:32]), checkpoint_path=path, seed=0)
    assert path.is_file() and h.checkpoint_path == str(path)
    assert not list(path.parent.glob(".*tmp*"))  # the atomic write left nothing behind
    loaded = ncps.load(path)
    assert type(loaded) is ncps.CfC
    # restore_best: the model ends at the best epoch, which is what the checkpoint holds
    np.testing.assert_allclose(np.array(loaded(mx.array(X))[0]), np.array(model(mx.array(X))[0]), atol=1e-6)


def test_checkpoint_of_other_module_uses_save_weights(tmp_path):
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = ncps.CfC(2, 8, backbone_units=16, return_sequences=False)
            self.out = nn.Linear(8, 1)

        def __call__(self, x):
            return self.out(self.rnn(x)[0])

    X, y = make_task()
    mx.random.seed(0)
    model = Head()
    path = tmp_path / "head.npz"
    train(model, (X, y), lambda m, x, y: nn.losses.mse_loss(m(x), y), epochs=2, batch_size=32, checkpoint_path=path)
    assert path.is_file()
    mx.random.seed(1)
    other = Head()
    other.load_weights(str(path))
    assert_params_equal(params_of(other), params_of(model))


def test_same_seed_same_parameters_and_other_seed_differs():
    X, y = make_task()

    def run(seed, compile_step=True):
        model = make_model(0)
        train(model, (X, y), epochs=2, batch_size=16, seed=seed, compile=compile_step)
        return params_of(model)

    a, b, c = run(3), run(3), run(4)
    assert_params_equal(a, b)
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    assert_params_equal(a, run(3, compile_step=False), atol=1e-5)


def test_dropout_is_seeded():
    X, y = make_task()

    def run():
        mx.random.seed(0)
        model = ncps.CfC(2, 8, proj_size=1, backbone_units=16, backbone_dropout=0.3, return_sequences=False)
        model.train()
        train(model, (X, y), epochs=2, batch_size=32, seed=5)
        return params_of(model)

    assert_params_equal(run(), run())


def test_untraceable_step_falls_back_to_uncompiled():
    X, y = make_task(n=32)

    def loss_with_item(model, x, y):  # .item() cannot be traced by mx.compile
        loss = mse(model, x, y)
        assert loss.item() >= 0
        return loss

    model = make_model()
    adam = optim.Adam(learning_rate=1e-2)
    with pytest.warns(RuntimeWarning, match="uncompiled") as caught:
        h = fit(model, loss_with_item, (X, y), optimizer=adam, epochs=2, batch_size=16, progress=False, seed=0)
    assert not h.compiled
    assert [w.filename for w in caught if "uncompiled" in str(w.message)] == [__file__]  # the line calling fit
    reference = make_model()
    train(reference, (X, y), epochs=2, batch_size=16, seed=0, compile=False)
    assert_params_equal(params_of(model), params_of(reference), atol=1e-6)  # the failed trace changed nothing


def test_fallback_with_dropout_and_no_seed():
    # The failed trace draws dropout masks from a traced mx.random.state; the fallback must reset it.
    X, y = make_task(n=32)
    mx.random.seed(0)
    model = ncps.CfC(2, 8, proj_size=1, backbone_units=16, backbone_dropout=0.3, return_sequences=False)

    def loss_with_item(model, x, y):
        loss = mse(model, x, y)
        loss.item()
        return loss

    with pytest.warns(RuntimeWarning, match="uncompiled"):
        h = train(model, (X, y), loss_with_item, epochs=2, batch_size=16)
    assert np.isfinite(h.history["loss"]).all()
    mx.random.uniform(shape=(2,)).tolist()  # the global random state is usable afterwards


def test_errors_in_loss_fn_are_not_masked():
    X, y = make_task(n=16)

    def broken(model, x, y):
        raise KeyError("my bug")

    with pytest.raises(KeyError, match="my bug"):
        train(make_model(), (X, y), broken, optim.SGD(learning_rate=0.1), epochs=1)


def test_timespans_reach_the_loss():
    X, y = make_task(n=32)
    ts = np.random.default_rng(1).uniform(0.5, 1.5, size=X.shape[:2]).astype(np.float32)
    model = make_model()
    shapes = []

    def loss(model, x, y, t):
        shapes.append(tuple(t.shape))
        return nn.losses.mse_loss(model(x, timespans=t)[0], y)

    h = train(model, (X, y, ts), loss, epochs=1, batch_size=8, compile=False)
    assert shapes == [(8, 6)] * 4 and len(h.history["loss"]) == 1


def test_callbacks_hooks_and_stop_training():
    events = []

    class Recorder(Callback):
        def on_train_begin(self, logs):
            events.append("begin")

        def on_epoch_begin(self, epoch, logs):
            events.append(f"epoch{epoch}")

        def on_batch_end(self, batch, logs):
            assert "loss" in logs

        def on_epoch_end(self, epoch, logs):
            assert {"loss", "val_loss"} <= logs.keys()
            if epoch == 1:
                raise StopTraining

        def on_train_end(self, logs):
            events.append("end")

    X, y = make_task(n=32)
    h = train(make_model(), (X, y), epochs=5, batch_size=16, validation_data=(X, y), callbacks=[Recorder()])
    assert events == ["begin", "epoch0", "epoch1", "end"]
    assert h.stopped_early and len(h.epoch) == 2


def test_optimizer_state_carries_over():
    X, y = make_task(n=32)
    model, opt = make_model(), optim.Adam(learning_rate=1e-2)
    fit(model, mse, (X, y), optimizer=opt, epochs=1, batch_size=16, progress=False)
    fit(model, mse, (X, y), optimizer=opt, epochs=1, batch_size=16, progress=False)
    assert int(opt.step) == 4


def test_progress_bar_and_plain_fallback(capsys, monkeypatch):
    X, y = make_task(n=32)
    fit(make_model(), mse, (X, y), optimizer=optim.Adam(learning_rate=1e-2), epochs=2, batch_size=16)
    err = capsys.readouterr().err
    assert "Epoch 1/2" in err and "Epoch 2/2" in err and "loss" in err
    fit(make_model(), mse, (X, y), optimizer=optim.Adam(learning_rate=1e-2), epochs=1, progress=False)
    assert capsys.readouterr().err == ""
    monkeypatch.setitem(sys.modules, "tqdm", None)  # tqdm missing: one plain line per epoch
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    fit(make_model(), mse, (X, y), optimizer=optim.Adam(learning_rate=1e-2), epochs=2, batch_size=16)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("Epoch")]
    assert len(lines) == 2 and "loss:" in lines[0]


_FIT_SCRIPT = """
import numpy as np, ncps
from ncps.optimizers import adam
from ncps.training import fit
import mlx.nn as nn
X = np.random.default_rng(0).normal(size=(40, 5, 2)).astype(np.float32)
y = X.sum(axis=(1, 2))[:, None]
model = ncps.CfC(2, 8, proj_size=1, backbone_units=16, return_sequences=False)
fit(model, lambda m, x, t: nn.losses.mse_loss(m(x)[0], t), (X, y), optimizer=adam(1e-2), epochs=3,
    batch_size=8, validation_data=(X[:8], y[:8]))
"""


def test_progress_off_a_terminal_is_one_line_per_epoch():
    """With stderr a pipe (a log file, CI) and tqdm installed, every epoch prints exactly one
    line and no carriage-return redraws of a bar."""
    import subprocess

    pytest.importorskip("tqdm")
    proc = subprocess.run([sys.executable, "-c", _FIT_SCRIPT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "\r" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert [line.split(" - ")[0] for line in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"], proc.stderr
    assert all("loss:" in line and "val_loss:" in line for line in lines)


def test_zero_epochs_and_mx_inputs():
    X, y = make_task(n=16)
    model = make_model()
    before = params_of(model)
    h = fit(model, mse, (mx.array(X), mx.array(y)), optimizer=optim.SGD(learning_rate=0.1), epochs=0, progress=False)
    assert h.history == {} and h.best_epoch is None
    assert_params_equal(params_of(model), before)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(train_data=(np.zeros((4, 3, 2)), np.zeros((5, 1)))), ValueError, "share their first axis"),
        (dict(epochs=-1), ValueError, "epochs"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(clip_norm=0), ValueError, "clip_norm"),
        (dict(early_stopping_patience=0), ValueError, "early_stopping_patience"),
        (dict(metrics={"loss": mae}), ValueError, "metric names"),
        (dict(optimizer="adam"), TypeError, "Optimizer"),
        (dict(train_data=()), ValueError, "empty"),
        (dict(train_data=(np.zeros((0, 3, 2)), np.zeros((0, 1)))), ValueError, "no samples"),
    ],
)
def test_fit_rejects_bad_arguments(kwargs, error, match):
    X, y = make_task(n=8)
    args = dict(train_data=(X, y), optimizer=optim.SGD(learning_rate=0.1), epochs=1, progress=False)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        fit(make_model(), mse, **args)


# -- batches and prediction ---------------------------------------------------------------------


def test_iterate_batches():
    X = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10, dtype=np.int32)
    batches = list(iterate_batches((X, y), 4, shuffle=False))
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    shuffled = [b[1].tolist() for b in iterate_batches((X, y), 4, shuffle=True, seed=1)]
    assert sorted(sum(shuffled, [])) == list(range(10)) and sum(shuffled, []) != list(range(10))
    assert shuffled == [b[1].tolist() for b in iterate_batches((X, y), 4, shuffle=True, seed=1)]
    for xb, yb in iterate_batches((X, y), 3, seed=2):
        np.testing.assert_array_equal(np.array(xb)[:, 0], np.array(yb))  # rows stay paired
    single = list(iterate_batches(X, 5, shuffle=False))
    assert isinstance(single[0], mx.array) and single[0].shape == (5, 1)
    with pytest.raises(ValueError, match="batch_size"):
        next(iterate_batches(X, 0))


def test_predict():
    X, _ = make_task(n=21)
    model = make_model()
    full = np.array(model(mx.array(X))[0])
    out = predict(model, X, batch_size=8)
    assert isinstance(out, mx.array) and out.shape == (21, 1)
    np.testing.assert_allclose(np.array(out), full, atol=1e-6)
    ts = np.full(X.shape[:2], 0.5, dtype=np.float32)
    with_ts = np.array(predict(model, (X, ts), batch_size=5))
    np.testing.assert_allclose(with_ts, np.array(model(mx.array(X), timespans=mx.array(ts))[0]), atol=1e-6)
    doubled = predict(model, X, fn=lambda m, x: 2 * m(x)[0])
    np.testing.assert_allclose(np.array(doubled), 2 * full, atol=1e-6)
    with pytest.raises(TypeError, match="fn="):
        predict(nn.Linear(2, 1), (X, X))


# -- LiquidNeuralNetwork -----------------------------------------------------------------------


def sine_task(T=30):
    t = np.linspace(0, 4 * np.pi, T)
    X = np.stack([np.sin(t), np.cos(t)], -1)[None].astype(np.float32)  # one (1, T, 2) sequence
    y = np.sin(2 * t)[None, :, None].astype(np.float32)
    return X, y


@pytest.mark.parametrize("model_type", ["LTC", "CfC"])
def test_liquid_neural_network_fits_and_predicts(model_type, tmp_path):
    X, y = sine_task()
    lnn = ncps.LiquidNeuralNetwork(n_neurons=12, model_type=model_type, seed=0)
    assert lnn.fit(X, y, epochs=40, clip_value=1, learning_rate=0.02, n_jobs=8) is lnn
    assert type(lnn.model).__name__ == model_type and isinstance(lnn.wiring, ncps.wirings.AutoNCP)
    assert lnn.wiring.output_dim == 1 and lnn.model.output_size == 1  # motor neurons are the outputs
    loss = lnn.history.history["loss"]
    assert loss[-1] < 0.5 * loss[0]
    pred = lnn.predict(X)
    assert pred.shape == (1, 30, 1) and pred.dtype == np.float32
    assert lnn.predict(X[0]).shape == (30, 1)  # one unbatched sequence
    assert lnn.metadata["is_trained"] and lnn.metadata["out_features"] == 1 and lnn.metadata["in_features"] == 2
    lnn.save_model(tmp_path / "lnn.safetensors")
    again = ncps.LiquidNeuralNetwork().load_model(tmp_path / "lnn.safetensors")
    assert again.model_type == model_type and again.n_neurons == 12
    np.testing.assert_array_equal(again.predict(X), pred)


def test_liquid_neural_network_shapes_and_errors():
    X, y = sine_task(T=12)
    Xb, yb = np.repeat(X, 3, axis=0), np.repeat(y[..., 0], 3, axis=0)  # (3, T, 2) and (3, T) targets
    lnn = ncps.LiquidNeuralNetwork(n_neurons=10, model_type="CfC", seed=1).fit(Xb, yb, epochs=2, batch_size=2)
    assert lnn.predict(Xb).shape == (3, 12, 1)
    with pytest.raises(ValueError, match="known ones"):
        ncps.LiquidNeuralNetwork(model_type="GRU")
    with pytest.raises(RuntimeError, match="fit"):
        ncps.LiquidNeuralNetwork().predict(X)
    with pytest.raises(ValueError, match="every step"):
        ncps.LiquidNeuralNetwork(n_neurons=10).fit(Xb, yb[:, :5], epochs=1)
    a = ncps.LiquidNeuralNetwork(n_neurons=10, seed=3).fit(X, y, epochs=2).predict(X)
    b = ncps.LiquidNeuralNetwork(n_neurons=10, seed=3).fit(X, y, epochs=2).predict(X)
    np.testing.assert_array_equal(a, b)
