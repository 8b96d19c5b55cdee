"""ncps.sklearn: LiquidRegressor and LiquidClassifier, with scikit-learn's own estimator checks.

Every applicable check of ``parametrize_with_checks`` runs and passes; none is excluded. (The
pandas and array-API checks skip themselves where pandas / SCIPY_ARRAY_API are absent.)
"""

import pickle
import subprocess
import sys

import mlx.core as mx
import numpy as np
import pytest
from mlx.utils import tree_flatten

pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from ncps.sklearn import LiquidClassifier, LiquidRegressor  # noqa: E402
from ncps.wirings import AutoNCP  # noqa: E402

# Tiny networks and few epochs keep the ~100 checks fast; they still learn the checks' toy data
# well enough (sklearn asks for R² > 0.5 and accuracy > 0.83), so no `poor_score` tag is needed.
# The wired ones take larger Adam steps (torch's bias-corrected Adam: 3-6x smaller first steps
# than MLX's uncorrected default) to get there in so few epochs.
CHECKED = [
    LiquidRegressor(units=8, backbone_units=16, epochs=3, random_state=0),
    LiquidClassifier(units=8, backbone_units=16, epochs=3, random_state=0, compile=False),
    LiquidRegressor(
        units=AutoNCP(12, 2), epochs=5, learning_rate=0.03, random_state=0, compile=False
    ),  # a wiring as a param
    LiquidClassifier(model_type="LTC", units=AutoNCP(10, 3), epochs=3, learning_rate=0.03, random_state=0),
]


@parametrize_with_checks(CHECKED)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# -- data -------------------------------------------------------------------------------------


def sequences(n=120, T=8, seed=0):
    """Classify the sign of a sequence's mean slope; regress the slope."""
    rng = np.random.default_rng(seed)
    slope = rng.uniform(-1, 1, size=n)
    t = np.linspace(0, 1, T)
    x = slope[:, None] * t[None] + 0.05 * rng.normal(size=(n, T))
    X = np.stack([x, np.gradient(x, axis=1)], axis=-1)
    return X, slope


# -- behaviour --------------------------------------------------------------------------------


def test_classifier_on_sequences_with_string_labels():
    X, slope = sequences()
    labels = np.where(slope > 0, "up", "down")
    clf = LiquidClassifier(units=8, backbone_units=16, epochs=15, random_state=0).fit(X[:90], labels[:90])
    assert list(clf.classes_) == ["down", "up"] and clf.n_features_in_ == 2
    proba = clf.predict_proba(X[90:])
    assert proba.shape == (30, 2) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X[90:])), proba)
    pred = clf.predict(X[90:])
    assert set(pred) <= {"up", "down"}
    assert clf.score(X[90:], labels[90:]) > 0.9
    assert clf.n_iter_ == 15 and len(clf.loss_curve_) == 15


def test_regressor_last_step_and_multi_output():
    X, slope = sequences()
    reg = LiquidRegressor(units=8, backbone_units=16, epochs=20, random_state=0).fit(X, 10 * slope + 3)
    pred = reg.predict(X)
    assert pred.shape == (120,) and pred.dtype == np.float64
    assert reg.score(X, 10 * slope + 3) > 0.8  # targets are standardized inside, predictions scaled back
    Y = np.stack([slope, -2 * slope], axis=1)
    reg2 = LiquidRegressor(units=8, backbone_units=16, epochs=2, random_state=0).fit(X, Y)
    assert reg2.predict(X).shape == (120, 2) and reg2.n_outputs_ == 2


def test_regressor_sequence_targets():
    X, _ = sequences(n=40, T=6)
    Y = np.cumsum(X[..., 0], axis=1)  # (n, T): a target per step
    reg = LiquidRegressor(model_type="LTC", units=AutoNCP(10, 1), return_sequences=True, epochs=2, random_state=0)
    reg.fit(X, Y)
    assert reg.model_.head is None  # the wiring's motor neuron is the output
    assert reg.predict(X).shape == (40, 6)
    assert np.isfinite(reg.score(X, Y))
    Y3 = np.stack([Y, -Y], axis=-1)  # (n, T, 2)
    reg3 = LiquidRegressor(units=8, backbone_units=16, return_sequences=True, epochs=2, random_state=0).fit(X, Y3)
    assert reg3.predict(X).shape == (40, 6, 2)
    with pytest.raises(ValueError, match="return_sequences"):
        LiquidRegressor(return_sequences=True, epochs=1).fit(X, Y[:, :3])


def test_wiring_param_is_clone_safe_and_untouched():
    wiring = AutoNCP(10, 1)
    reg = LiquidRegressor(units=wiring, epochs=1, random_state=0)
    cloned = clone(reg)
    assert cloned.get_params()["units"] is not wiring
    assert cloned.get_params()["units"].get_config() == wiring.get_config()
    X, slope = sequences(n=30)
    reg.fit(X, slope)
    assert reg.units is wiring and not wiring.is_built()  # fit works on its own copy
    assert reg.get_params()["units"] is wiring


def test_same_random_state_same_model():
    X, slope = sequences(n=60)
    a = LiquidRegressor(units=8, backbone_units=16, epochs=3, random_state=3).fit(X, slope).predict(X)
    b = LiquidRegressor(units=8, backbone_units=16, epochs=3, random_state=3).fit(X, slope).predict(X)
    c = LiquidRegressor(units=8, backbone_units=16, epochs=3, random_state=4).fit(X, slope).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_mixed_precision_passes_through_to_fit():
    """precision="bf16" trains in bfloat16 on float32 masters: a float32 model that learns, and a
    different trajectory from the float32 fit with the same seed."""
    X, slope = sequences(n=60)
    half = LiquidRegressor(units=8, backbone_units=16, epochs=3, random_state=3, precision="bf16").fit(X, slope)
    full = LiquidRegressor(units=8, backbone_units=16, epochs=3, random_state=3).fit(X, slope)
    assert all(p.dtype == mx.float32 for _, p in tree_flatten(half.model_.parameters()))
    assert half.loss_curve_[-1] < half.loss_curve_[0]
    assert not np.array_equal(half.predict(X), full.predict(X))
    np.testing.assert_allclose(half.predict(X), full.predict(X), atol=0.2 * np.abs(full.predict(X)).max())


def test_partial_fit_continues_training():
    X, slope = sequences()
    labels = (slope > 0).astype(int)
    clf = LiquidClassifier(units=8, backbone_units=16, random_state=0)
    for _ in range(6):
        clf.partial_fit(X, labels, classes=[0, 1])
    assert clf.n_iter_ == 6 and len(clf.loss_curve_) == 6
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    with pytest.raises(ValueError, match="features"):
        clf.partial_fit(X[..., :1], labels)
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X, labels + 5)
    reg = LiquidRegressor(units=8, backbone_units=16, random_state=0)
    reg.partial_fit(X, slope).partial_fit(X, slope)
    assert reg.n_iter_ == 2 and reg.predict(X).shape == (120,)


def test_early_stopping_uses_a_validation_split():
    X, slope = sequences()
    reg = LiquidRegressor(
        units=8,
        backbone_units=16,
        epochs=40,
        early_stopping=True,
        n_iter_no_change=2,
        validation_fraction=0.2,
        learning_rate=0.05,
        random_state=0,
    ).fit(X, slope)
    assert len(reg.validation_scores_) == reg.n_iter_ <= 40
    assert reg.history_.monitor == "val_loss"


def test_pickle_and_pipeline_and_grid_search():
    X, slope = sequences(n=60)
    X2 = X[:, -1, :]  # plain tabular data: (n, F) is a sequence of length 1
    reg = LiquidRegressor(units=8, backbone_units=16, epochs=2, random_state=0).fit(X2, slope)
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(X2), reg.predict(X2))
    pipe = make_pipeline(StandardScaler(), LiquidRegressor(units=8, backbone_units=16, epochs=2, random_state=0))
    assert cross_val_score(pipe, X2, slope, cv=2).shape == (2,)
    search = GridSearchCV(
        LiquidClassifier(units=8, backbone_units=16, epochs=2, random_state=0, compile=False),
        {"learning_rate": [0.01, 0.05]},
        cv=2,
    ).fit(X2, slope > 0)
    assert search.best_params_["learning_rate"] in (0.01, 0.05)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(model_type="GRU"), "model_type"),
        (dict(units=0), "units"),
        (dict(epochs=0), "epochs"),
        (dict(learning_rate=-1.0), "learning_rate"),
        (dict(clip_value=0), "clip_value"),
        (dict(validation_fraction=1.0), "validation_fraction"),
        (dict(precision="fp64"), "precision"),
    ],
)
def test_bad_parameters_raise_at_fit(params, match):
    X, slope = sequences(n=10)
    est = LiquidRegressor(**params)  # the constructor never validates (sklearn convention)
    with pytest.raises(ValueError, match=match):
        est.fit(X, slope)


def test_import_ncps_does_not_import_sklearn():
    code = "import sys, ncps; assert 'sklearn' not in sys.modules; assert 'tqdm' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
