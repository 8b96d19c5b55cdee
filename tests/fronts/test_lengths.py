"""Variable-length sequences in the fronts: ncps.training (fit / evaluate / predict), the
scikit-learn estimators and ncps.mini_keras take a list of sequences of different lengths
(padded for the user) or a padded array with ``lengths=``, and both give the same training."""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten

import ncps
from ncps import mini_keras as keras
from ncps import optimizers
from ncps.training import evaluate, fit, pad_sequences, predict

F = 2


def ragged(n=20, seed=0, lo=2, hi=9):
    """Sequences of 2..8 steps; the target (its class) depends on the length and the data."""
    rng = np.random.default_rng(seed)
    seqs = [rng.normal(size=(int(L), F)).astype(np.float32) for L in rng.integers(lo, hi, n)]
    labels = np.array([int(s.shape[0] > 5) ^ int(s[:, 0].sum() > 0) for s in seqs], dtype=np.int32)
    return seqs, labels


def params_of(model):
    return [np.array(v) for _, v in tree_flatten(model.parameters())]


def assert_same_params(a, b, tol=1e-6):
    for u, v in zip(params_of(a), params_of(b)):
        np.testing.assert_allclose(u, v, atol=tol, rtol=tol)


def test_pad_sequences():
    padded, lengths = pad_sequences([np.ones((2, 3)), np.ones((4, 3)) * 2])
    assert padded.shape == (2, 4, 3) and padded.dtype == np.float32
    assert lengths.tolist() == [2, 4] and lengths.dtype == np.int32
    assert np.all(padded[0, 2:] == 0) and np.all(padded[1] == 2)
    with pytest.raises(ValueError, match=r"sequence 1 must have shape \(T_i, 3\)"):
        pad_sequences([np.ones((2, 3)), np.ones((4, 2))])
    with pytest.raises(ValueError, match="T_i >= 1"):
        pad_sequences([np.ones((2, 3)), np.ones((0, 3))])


# -- ncps.training ------------------------------------------------------------------------------


def _layer():
    mx.random.seed(0)
    return ncps.CfC(F, 8, proj_size=2, backbone_units=8, return_sequences=False)


def _loss(model, x, y, lengths):
    return nn.losses.cross_entropy(model(x, lengths=lengths)[0], y, reduction="mean")


def test_fit_on_a_list_equals_fit_on_padded_with_lengths():
    seqs, y = ragged()
    a = _layer()
    ha = fit(a, _loss, (seqs, y), optimizer=optimizers.adam(1e-2), epochs=3, batch_size=8, seed=0, progress=False)
    padded, lengths = pad_sequences(seqs)
    padded[0, lengths[0] :] = np.nan  # whatever the padding holds
    b = _layer()
    hb = fit(
        b, _loss, (padded, y, lengths), optimizer=optimizers.adam(1e-2), epochs=3, batch_size=8, seed=0, progress=False
    )
    assert ha.compiled and hb.compiled
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-6)
    assert_same_params(a, b)
    assert np.isfinite(ha.history["loss"]).all()
    assert ha.history["loss"][-1] < ha.history["loss"][0]
    assert evaluate(a, _loss, (seqs, y))["loss"] == pytest.approx(evaluate(b, _loss, (padded, y, lengths))["loss"])


def test_predict_on_a_list_equals_each_sequence_alone():
    seqs, _ = ragged(7, seed=1)
    layer = _layer()
    out = predict(layer, seqs, batch_size=3)
    for s, o in zip(seqs, np.array(out)):
        np.testing.assert_allclose(o, np.array(layer(mx.array(s[None]))[0][0]), atol=1e-5)
    padded, lengths = pad_sequences(seqs)
    np.testing.assert_allclose(np.array(predict(layer, (padded, lengths))), np.array(out), atol=1e-6)
    seq_layer = ncps.LTC(F, 4)
    full = np.array(predict(seq_layer, (padded, mx.ones(padded.shape[:2]), lengths)))
    assert full.shape == (7, padded.shape[1], 4)
    for i, L in enumerate(lengths):
        assert np.all(full[i, L:] == 0)


# -- scikit-learn -------------------------------------------------------------------------------


def test_sklearn_classifier_list_equals_padded_with_lengths():
    pytest.importorskip("sklearn")
    from ncps.sklearn import LiquidClassifier, LiquidRegressor

    seqs, y = ragged(24, seed=2)
    kw = dict(units=8, epochs=3, batch_size=8, random_state=0, backbone_units=8)
    a = LiquidClassifier(**kw).fit(seqs, y)
    padded, lengths = pad_sequences(seqs)
    b = LiquidClassifier(**kw).fit(padded, y, lengths=lengths)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-6)
    np.testing.assert_allclose(a.predict_proba(seqs), b.predict_proba(padded, lengths=lengths), atol=1e-6)
    # Each sequence alone gives its own row.
    alone = np.concatenate([a.predict_proba(s[None]) for s in seqs[:4]])
    np.testing.assert_allclose(a.predict_proba(seqs[:4]), alone, atol=1e-5)
    assert 0.0 <= a.score(seqs, y) <= 1.0
    with pytest.raises(ValueError, match=r"lengths must have shape \(n_samples,\)"):
        a.predict(padded, lengths=lengths[:-1])
    with pytest.raises(ValueError, match="lengths is for a padded array X"):
        a.predict(seqs, lengths=lengths)

    # Per-step regression: the loss only counts each sequence's own steps.
    targets = [s[:, :1].cumsum(axis=0) for s in seqs]
    reg = LiquidRegressor(return_sequences=True, **kw).fit(seqs, targets)
    pred = reg.predict(seqs)
    assert pred.shape == (24, padded.shape[1], 1)
    for i, L in enumerate(lengths):
        assert np.all(pred[i, L:] == 0)


# -- mini_keras ---------------------------------------------------------------------------------


def _keras_model():
    mx.random.seed(0)
    model = keras.Sequential([keras.layers.InputLayer((None, F)), keras.layers.CfC(8), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_mini_keras_list_equals_padded_with_lengths_and_mask():
    seqs, y = ragged(16, seed=3)
    padded, lengths = pad_sequences(seqs)
    a = _keras_model()
    ha = a.fit(seqs, y, epochs=2, batch_size=8, verbose=0, seed=0)
    b = _keras_model()
    hb = b.fit(padded, y, epochs=2, batch_size=8, verbose=0, seed=0, lengths=lengths)
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-6)
    assert_same_params(a, b)
    mask = np.arange(padded.shape[1])[None] < lengths[:, None]
    np.testing.assert_allclose(
        np.array(a.predict(seqs)), np.array(b.predict((padded, np.ones(mask.shape), mask))), atol=1e-6
    )
    # The masked layer runs each sequence only over its own steps: equal to it alone.
    for s, o in zip(seqs[:3], np.array(a.predict(seqs[:3]))):
        np.testing.assert_allclose(o, np.array(a.predict(s[None]))[0], atol=1e-5)
    assert a.evaluate(seqs, y) == pytest.approx(b.evaluate(padded, y, lengths=lengths))


def test_mini_keras_mask_of_the_wrong_length_is_an_error():
    model = _keras_model()
    x = mx.zeros((2, 5, F))
    for T in (7, 3):  # a longer mask used to crash the process, a shorter one was accepted
        with pytest.raises(ValueError, match=r"mask must have shape \(batch, T\) = \(2, 5\)"):
            model((x, mx.ones((2, 5)), mx.ones((2, T), dtype=mx.bool_)))
    with pytest.raises(ValueError, match="either a mask .* or lengths"):
        model.predict((x, mx.ones((2, 5)), mx.ones((2, 5))), lengths=[2, 3])
    with pytest.raises(ValueError, match=r"lengths must satisfy 1 <= lengths\[i\] <= T = 5"):
        model.predict(x, lengths=[0, 3])
