"""``ncps.optimizers``: every torch-convention optimizer updates like ``torch.optim`` (run in the
oracle process), every Keras-convention one like Keras 3's update formulas with Keras' defaults;
``fit`` warns once about an uncorrected Adam."""

import warnings

import mlx.core as mx
import mlx.optimizers as optim
import numpy as np
import pytest

from ncps import optimizers, training  # noqa: E402
from tests.official import run_oracle_script  # noqa: E402

STEPS = 30

# Each torch.optim class with its defaults only (lr too): the defaults are what must agree.
TORCH = """
import torch
for name in INPUTS["names"]:
    p = torch.nn.Parameter(torch.tensor(INPUTS["w0"]))
    opt = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "adamax": torch.optim.Adamax,
           "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}[str(name)]([p])
    for g in INPUTS["grads"]:
        p.grad = torch.tensor(g)
        opt.step()
    OUTPUTS[str(name)] = p.detach().numpy()
"""


def _data():
    rng = np.random.default_rng(0)
    # Gradients over three orders of magnitude, so that eps placement and bias correction show.
    scale = 10.0 ** rng.uniform(-3, 0, size=(1, 16))
    return rng.normal(size=16).astype(np.float32), (rng.normal(size=(STEPS, 16)) * scale).astype(np.float32)


def _run_ours(opt: optim.Optimizer, w0: np.ndarray, grads: np.ndarray) -> np.ndarray:
    params = {"w": mx.array(w0)}
    opt.init(params)
    for g in grads:
        params = opt.apply_gradients({"w": mx.array(g)}, params)
        mx.eval(params, opt.state)
    return np.array(params["w"])


def test_torch_convention_matches_torch_optim():
    w0, grads = _data()
    names = ["adam", "adamw", "adamax", "sgd", "rmsprop", "adagrad"]
    ref = run_oracle_script(TORCH, {"names": np.array(names), "w0": w0, "grads": grads})
    for name in names:
        ours = _run_ours(optimizers.make_optimizer(name), w0, grads)
        np.testing.assert_allclose(ours, ref[name], rtol=1e-5, atol=1e-6, err_msg=name)
        assert not np.allclose(ref[name], w0), f"{name}: the parameters did not move"


def _keras_reference(name: str, w0: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Keras 3's update_step of each optimizer, with its default arguments, in float64."""
    w = w0.astype(np.float64)
    m, v = np.zeros_like(w), np.zeros_like(w)
    acc = np.full_like(w, 0.1)
    for t, g in enumerate(grads.astype(np.float64), start=1):
        if name == "adam" or name == "adamw":
            if name == "adamw":
                w = w - w * 0.004 * 1e-3
            m, v = m + (g - m) * 0.1, v + (g * g - v) * 0.001
            w = w - 1e-3 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-7)
        elif name == "adamax":
            m, v = m + (g - m) * 0.1, np.maximum(0.999 * v, np.abs(g))
            w = w - 1e-3 / (1 - 0.9**t) * m / (v + 1e-7)
        elif name == "rmsprop":
            v = 0.9 * v + 0.1 * g * g
            w = w - 1e-3 * g / np.sqrt(v + 1e-7)
        elif name == "adagrad":
            acc = acc + g * g
            w = w - 1e-3 * g / np.sqrt(acc + 1e-7)
        elif name == "sgd":
            w = w - 1e-2 * g
    return w


@pytest.mark.parametrize("name", ["adam", "adamw", "adamax", "rmsprop", "adagrad", "sgd"])
def test_keras_convention_matches_keras_formulas(name):
    w0, grads = _data()
    ours = _run_ours(optimizers.make_optimizer(name, convention="keras"), w0, grads)
    np.testing.assert_allclose(ours, _keras_reference(name, w0, grads), rtol=1e-5, atol=1e-6)


def test_conventions_differ_where_the_libraries_do():
    adam_t, adam_k = optimizers.make_optimizer("adam"), optimizers.make_optimizer("adam", convention="keras")
    assert (adam_t.eps, adam_k.eps) == (1e-8, 1e-7)
    assert optimizers.adamw().weight_decay == 1e-2
    assert optimizers.make_optimizer("adamw", convention="keras").weight_decay == 0.004
    assert optimizers.rmsprop().alpha == 0.99 and optimizers.make_optimizer("rmsprop", convention="keras").rho == 0.9
    assert optimizers.adam(5e-3).learning_rate.item() == pytest.approx(5e-3)
    assert optimizers.adam(5e-3, betas=[0.8, 0.99]).betas == [0.8, 0.99]


def test_make_optimizer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Unknown optimizer 'adamm'"):
        optimizers.make_optimizer("adamm")
    with pytest.raises(ValueError, match="convention must be one of"):
        optimizers.make_optimizer("adam", convention="jax")
    with pytest.raises(TypeError, match=r"torch adam takes no argument\(s\) \['amsgrad'\]"):
        optimizers.adam(1e-3, amsgrad=True)


def test_lacks_bias_correction():
    assert optimizers.lacks_bias_correction(optim.Adam(1e-3))
    assert optimizers.lacks_bias_correction(optim.AdamW(1e-3))
    assert optimizers.lacks_bias_correction(optim.Adamax(1e-3))  # MLX's Adamax is never corrected
    assert not optimizers.lacks_bias_correction(optim.Adam(1e-3, bias_correction=True))
    assert not optimizers.lacks_bias_correction(optim.SGD(1e-3))
    for name in optimizers.NAMES:
        for convention in optimizers.CONVENTIONS:
            assert not optimizers.lacks_bias_correction(optimizers.make_optimizer(name, convention=convention))
    mixed = optim.MultiOptimizer([optim.Adam(1e-3), optim.SGD(1e-3)], [lambda name, w: "bias" in name])
    assert optimizers.lacks_bias_correction(mixed)


def _tiny_fit(opt):
    import mlx.nn as nn

    model = nn.Linear(2, 1)
    X, y = np.ones((4, 2), np.float32), np.ones((4, 1), np.float32)
    training.fit(
        model,
        lambda m, x, t: nn.losses.mse_loss(m(x), t),
        (X, y),
        optimizer=opt,
        epochs=1,
        progress=False,
        compile=False,
    )


def test_fit_warns_once_about_uncorrected_adam(monkeypatch):
    monkeypatch.setattr(training, "_warned_bias_correction", False)
    monkeypatch.delenv("NCPS_BIAS_CORRECTION_WARNING", raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _tiny_fit(optimizers.adam(1e-3))
        _tiny_fit(optim.Adam(1e-3))
        _tiny_fit(optim.Adam(1e-3))
    hits = [w for w in caught if issubclass(w.category, training.BiasCorrectionWarning)]
    assert len(hits) == 1 and issubclass(hits[0].category, UserWarning)
    assert "bias_correction=True" in str(hits[0].message)
    assert hits[0].filename == __file__  # attributed to the line that called fit


def test_bias_correction_warning_can_be_silenced(monkeypatch):
    monkeypatch.setattr(training, "_warned_bias_correction", False)
    monkeypatch.setenv("NCPS_BIAS_CORRECTION_WARNING", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _tiny_fit(optim.Adam(1e-3))
    monkeypatch.delenv("NCPS_BIAS_CORRECTION_WARNING")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=training.BiasCorrectionWarning)
        _tiny_fit(optim.Adam(1e-3))


def test_clip_norm_matches_torch_clip_grad_norm():
    """``fit``'s clipping (``mlx.optimizers.clip_grad_norm``) is torch's ``clip_grad_norm_``: one
    global norm over all parameters, scale ``max_norm / (norm + 1e-6)`` when below 1."""
    grads = {"a": mx.array([3.0, 4.0]), "b": {"c": mx.array([[12.0]])}}  # global norm 13
    clipped, norm = optim.clip_grad_norm(grads, 1.0)
    scale = 1.0 / (13.0 + 1e-6)
    assert float(norm) == pytest.approx(13.0)
    np.testing.assert_allclose(np.array(clipped["a"]), [3 * scale, 4 * scale], rtol=1e-6)
    np.testing.assert_allclose(np.array(clipped["b"]["c"]), [[12 * scale]], rtol=1e-6)
    same, _ = optim.clip_grad_norm(grads, 100.0)
    np.testing.assert_array_equal(np.array(same["a"]), [3.0, 4.0])


def test_mini_keras_names_use_keras_convention_and_reload_alike(tmp_path):
    from ncps import mini_keras as keras

    def build():
        model = keras.Sequential([keras.layers.InputLayer((None, 2)), keras.layers.CfC(4), keras.layers.Dense(1)])
        return model

    model = build()
    model.compile(optimizer="adamw", loss="mse")
    assert isinstance(model.optimizer, optimizers.KerasAdamW) and model.optimizer.weight_decay == 0.004
    model.save(tmp_path / "named.safetensors")
    assert isinstance(keras.load_model(tmp_path / "named.safetensors").optimizer, optimizers.KerasAdamW)

    model = build()
    model.compile(optimizer=optim.Adam(2e-3, betas=[0.8, 0.99], bias_correction=True), loss="mse")
    model.save(tmp_path / "instance.safetensors")
    opt = keras.load_model(tmp_path / "instance.safetensors").optimizer
    assert type(opt) is optim.Adam and opt.bias_correction and opt.betas == [0.8, 0.99]
    assert opt.learning_rate.item() == pytest.approx(2e-3)
