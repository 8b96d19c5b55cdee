"""A property-based generator of bad inputs over the public constructors and call arguments.

For every public constructor and call option the table below names the kind of value it takes;
hypothesis draws a wrong value of every sort (strings for bools, floats for ints, negative, zero,
huge, non-finite, wrong types, wrong ranks) for one argument at a time, the others valid, and
asserts the policy of docs/reliability.md: a ``TypeError`` or ``ValueError`` (or the documented
``NotImplementedError``) whose message names the argument; never another exception type, never a
silently accepted value. Non-finite *array* entries are not errors: they must come out as NaN.
The examples are derandomized and few (``max_examples`` below), so the test stays fast.
"""

from __future__ import annotations

import math

import mlx.core as mx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ncps
from ncps import mini_keras, training
from ncps import wirings as W
from ncps.optimizers import adam
from tests.wirings.small import SMALL_NCP

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
ALLOWED = (TypeError, ValueError, NotImplementedError)

# -- bad values by the kind of argument -----------------------------------------------------------

junk = st.sampled_from([[1, 2], {"a": 1}, object(), b"8", (), 1j])
bad_bool = st.one_of(
    st.sampled_from(["False", "True", "false", "", "yes", "0"]),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.just(None),
    junk,
)
non_integral = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).filter(lambda v: not float(v).is_integer() or True),
    st.sampled_from(["8", "2.5", "", "ten"]),
    st.booleans(),
    junk,
)
bad_size = st.one_of(non_integral, st.integers(-(2**40), 0), st.just(None))  # sizes: >= 1
bad_size0 = st.one_of(non_integral, st.integers(-(2**40), -1))  # counts: >= 0
bad_seed = st.one_of(non_integral, st.integers(-(2**40), -1), st.integers(2**32, 2**70), st.just(None))
bad_unfolds = st.one_of(non_integral, st.integers(-100, 0), st.integers(10_001, 10**12))
bad_real = st.one_of(st.sampled_from([math.nan, math.inf, -math.inf, "0.1", "", None]), st.booleans(), junk)
bad_fraction = st.one_of(bad_real, st.floats(1.0, 1e9), st.floats(-1e9, -1e-6))  # [0, 1)
bad_positive = st.one_of(bad_real, st.floats(-1e9, 0.0))
bad_choice = st.one_of(st.sampled_from(["", "Affine", "concat ", "tanh!", "defualt", "sumx"]), st.integers(), junk)

# -- the constructors: (factory, valid kwargs, {argument: bad values}) -----------------------------


def _fit(**kwargs):
    model = ncps.CfC(2, 3, return_sequences=False)
    data = (np.zeros((4, 2, 2), np.float32), np.zeros((4, 3), np.float32))
    options = dict(optimizer=adam(0.01), epochs=1, progress=False, compile=False) | kwargs
    return training.fit(model, lambda m, x, y: ((m(x)[0] - y) ** 2).mean(), data, **options)


def _regressor(**kwargs):
    from ncps.sklearn import LiquidRegressor

    est = LiquidRegressor(**(dict(units=4, epochs=1) | kwargs))
    return est.fit(np.zeros((6, 3, 2)), np.zeros(6))


# The arguments that CfC and LTC share (the sequence layer's own); each adds its cell's.
LAYER_OPTIONS = dict(
    input_size=bad_size.filter(lambda v: v is not None),
    units=bad_size,
    merge_mode=bad_choice,
    **dict.fromkeys(("return_sequences", "batch_first", "mixed_memory", "bidirectional"), bad_bool),
)
CONSTRUCTORS = {
    "CfC": (
        ncps.CfC,
        dict(input_size=3, units=4),
        LAYER_OPTIONS
        | dict(
            proj_size=bad_size.filter(lambda v: v is not None),
            mode=bad_choice,
            activation=bad_choice,
            backbone_units=bad_size0.filter(lambda v: not isinstance(v, (list, tuple))),
            backbone_layers=bad_size0,
            backbone_dropout=bad_fraction.filter(lambda v: v is not None),
        ),
    ),
    "LTC": (
        ncps.LTC,
        dict(input_size=3, units=4),
        LAYER_OPTIONS
        | dict(
            input_mapping=bad_choice,
            output_mapping=bad_choice,
            ode_unfolds=bad_unfolds,
            epsilon=st.one_of(bad_real, st.floats(-1e9, -1e-9)),
            implicit_param_constraints=bad_bool,
        ),
    ),
    "CTRNN": (ncps.CTRNN, dict(input_size=3, units=4), dict(units=bad_size, ode_unfolds=bad_unfolds)),
    "CTGRU": (ncps.CTGRU, dict(input_size=3, units=4), dict(units=bad_size, num_timescales=bad_size)),
    "CfCCell": (
        ncps.CfCCell,
        dict(input_size=3, units=4),
        dict(input_size=bad_size, units=bad_size, backbone_layers=bad_size0, backbone_dropout=bad_fraction),
    ),
    "LTCCell": (
        lambda **k: ncps.LTCCell(W.FullyConnected(4), **k),
        dict(in_features=3),
        dict(
            in_features=bad_size.filter(lambda v: v is not None),
            ode_unfolds=bad_unfolds,
            implicit_param_constraints=bad_bool,
            input_mapping=bad_choice,
        ),
    ),
    "WiredCfCCell": (
        lambda **k: ncps.WiredCfCCell(wiring=W.AutoNCP(8, 2), **k),
        dict(input_size=3),
        dict(input_size=bad_size.filter(lambda v: v is not None), mode=bad_choice),
    ),
    "LSTMCell": (ncps.LSTMCell, dict(input_size=3, hidden_size=4), dict(input_size=bad_size, hidden_size=bad_size)),
    "FullyConnected": (
        W.FullyConnected,
        dict(units=4),
        dict(units=bad_size, erev_init_seed=bad_seed, self_connections=bad_bool),
    ),
    "Random": (W.Random, dict(units=4), dict(units=bad_size, sparsity_level=bad_fraction, random_seed=bad_seed)),
    "NCP": (
        W.NCP,
        SMALL_NCP,
        dict(inter_neurons=bad_size, command_neurons=bad_size, motor_neurons=bad_size, seed=bad_seed),
    ),
    "AutoNCP": (
        W.AutoNCP,
        dict(units=10, output_size=2),
        dict(
            units=bad_size,
            output_size=bad_size,
            sparsity_level=st.one_of(
                bad_real, st.floats(1.0, 1e9, exclude_min=True), st.floats(-1e9, 0.1, exclude_max=True)
            ),
            seed=bad_seed,
        ),
    ),
    "fit": (
        _fit,
        {},
        dict(
            epochs=bad_size0.filter(lambda v: v is not None),
            batch_size=bad_size,
            clip_norm=bad_positive.filter(lambda v: v is not None),
            early_stopping_patience=bad_size0,
            **dict.fromkeys(("shuffle", "progress", "compile", "restore_best", "resume"), bad_bool),
            seed=st.one_of(non_integral, st.integers(-(2**40), -1)),  # any size: fit reduces it
            on_nonfinite=bad_choice,
        ),
    ),
    "LiquidRegressor": (
        _regressor,
        {},
        dict(
            **dict.fromkeys(("epochs", "batch_size", "n_iter_no_change"), bad_size),
            learning_rate=bad_positive,
            validation_fraction=bad_fraction,
            **dict.fromkeys(("early_stopping", "normalize_y", "compile", "return_sequences"), bad_bool),
            random_state=st.one_of(non_integral, st.integers(-(2**40), -1)),
        ),
    ),
    "mini_keras.CfC": (
        mini_keras.layers.CfC,
        dict(units=4),
        dict(units=bad_size, return_sequences=bad_bool, mixed_memory=bad_bool),
    ),
    "mini_keras.LTC": (
        mini_keras.layers.LTC,
        dict(units=4),
        dict(ode_unfolds=bad_unfolds, epsilon=bad_real, implicit_param_constraints=bad_bool),
    ),
    "mini_keras.Dense": (mini_keras.layers.Dense, dict(units=4), dict(units=bad_size, use_bias=bad_bool)),
}
TARGETS = [(name, arg) for name, (_, _, args) in CONSTRUCTORS.items() for arg in args]


def _names_the_argument(exc: BaseException, arg: str) -> bool:
    return arg.lower() in str(exc).lower()


@pytest.mark.parametrize("name, arg", TARGETS, ids=[f"{n}.{a}" for n, a in TARGETS])
def test_a_bad_constructor_or_fit_argument_is_refused_by_name(name, arg):
    factory, valid, bad = CONSTRUCTORS[name]
    if name == "LiquidRegressor":
        pytest.importorskip("sklearn")

    @SETTINGS
    @given(value=bad[arg])
    def check(value):
        try:
            factory(**(valid | {arg: value}))
        except ALLOWED as exc:
            assert _names_the_argument(exc, arg), f"{name}({arg}={value!r}): {type(exc).__name__}: {exc}"
        except Exception as exc:  # the wrong kind of exception
            raise AssertionError(f"{name}({arg}={value!r}) raised {type(exc).__name__}: {exc}") from exc
        else:
            raise AssertionError(f"{name}({arg}={value!r}) was accepted silently")

    check()


# -- the call: layer(x, state, timespans, lengths) and cell(x, state, ts) ------------------------------

LAYERS = {
    "CfC": lambda: ncps.CfC(3, 4),
    "LTC": lambda: ncps.LTC(3, W.AutoNCP(8, 2)),
    "CfC_mixed": lambda: ncps.CfC(3, 4, mixed_memory=True),
}
B, T, F = 2, 4, 3

bad_x = st.one_of(
    st.sampled_from(["x", None, [["a"]], [[1, 2], [3]]]),
    st.integers(0, 5).map(lambda r: np.zeros((2,) * r, np.float32)),  # wrong ranks (2-D has 2 features)
    st.sampled_from([np.zeros((B, T, F + 1), np.float32), np.zeros((0, T, F), np.float32), np.zeros((B, 0, F))]),
    st.just(np.zeros((B, T, F), np.complex64)),
)
bad_timespans = st.one_of(
    st.sampled_from([-1.0, math.nan, math.inf, -math.inf, "1.0"]),
    st.sampled_from([np.ones((B + 1,)), np.ones((T, B + 1)), np.ones((B, T, 2)), np.ones((1, 1, 1, 1))]),
    junk.filter(lambda v: not isinstance(v, (tuple, list, complex))),  # [1, 2] is a valid (B,)
)
bad_lengths = st.one_of(
    st.sampled_from([[1.5, 2.0], ["1", "2"], [True, False], [[1], [1, 2]], [0, 1], [1, T + 1], [-1, 2], [1, 2, 3]]),
    st.sampled_from([np.array([1.0, 2.0]), np.array([1, 2, 3]), "2", 2.5, True]),
)
bad_state = st.one_of(
    st.sampled_from(["h", [[1.0]], np.zeros((B, 99)), np.zeros((B,)), np.zeros((B, 4, 1)), (np.zeros((B, 4)),)]),
    junk.filter(lambda v: not isinstance(v, (tuple, list, dict))),
)
CALL_ARGS = {"x": bad_x, "timespans": bad_timespans, "lengths": bad_lengths, "state": bad_state}


@pytest.mark.parametrize("layer", list(LAYERS))
@pytest.mark.parametrize("arg", list(CALL_ARGS))
def test_a_bad_call_argument_is_refused_by_name(layer, arg):
    model = LAYERS[layer]()
    x = mx.zeros((B, T, F))

    @SETTINGS
    @given(value=CALL_ARGS[arg])
    def check(value):
        args = {"x": x} | {arg: value}
        try:
            model(**args)
        except RuntimeError as exc:  # the documented error for a mixed-memory state of the wrong structure
            assert layer == "CfC_mixed" and arg == "state" and "(h0, c0)" in str(exc), str(exc)
        except ALLOWED as exc:
            # a bad state of a mixed-memory layer is named as its parts, state[0] (h0) / state[1]
            assert _names_the_argument(exc, arg), f"{layer}({arg}={value!r}): {type(exc).__name__}: {exc}"
        except Exception as exc:
            raise AssertionError(f"{layer}({arg}={value!r}) raised {type(exc).__name__}: {exc}") from exc
        else:
            raise AssertionError(f"{layer}({arg}={value!r}) was accepted silently")

    check()


@SETTINGS
@given(
    layer=st.sampled_from(list(LAYERS) + ["CfC_wired", "LTC_dense"]),
    value=st.sampled_from([math.nan, math.inf, -math.inf]),
    b=st.integers(0, B - 1),
    t=st.integers(0, T - 1),
    f=st.integers(0, F - 1),
    path=st.sampled_from(["auto", "reference"]),
)
def test_non_finite_array_entries_never_give_plausible_numbers(layer, value, b, t, f, path):
    make = (
        LAYERS.get(layer)
        or {"CfC_wired": lambda: ncps.CfC(3, W.AutoNCP(8, 2)), "LTC_dense": lambda: ncps.LTC(3, 5)}[layer]
    )
    mx.random.seed(0)
    model = make()
    x = np.random.default_rng(1).normal(size=(B, T, F)).astype(np.float32)
    x[b, t, f] = value
    with ncps.kernels.use(path):
        y = np.array(model(mx.array(x))[0])
    assert np.isnan(y[b, t:]).all(), (layer, value, y[b])
    assert np.isfinite(y[b, :t]).all() and np.isfinite(np.delete(y, b, axis=0)).all()


@pytest.mark.parametrize("fn", [ncps.save, ncps.load])
@SETTINGS
@given(path=st.one_of(st.sampled_from(["", "/", None, 3, 2.5, b"m.safetensors"]), junk))
def test_persistence_paths(fn, path):
    args = (ncps.CfC(2, 3), path) if fn is ncps.save else (path,)
    with pytest.raises(ALLOWED, match="path"):
        fn(*args)
