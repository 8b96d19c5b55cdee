"""The bad-input corpus: every public entry point fed the mistakes users make.

Each case is a function that misuses the API once, registered with what must happen:

- ``raises(Type, "word", ...)``: the exception is a ``Type`` and its message names the argument
  (every word must appear, case-insensitive);
- ``nonfinite()``: the call returns, and its result holds NaN or inf where the input was invalid
  (an invalid value never turns into a plausible number; docs/reliability.md);
- ``ok()``: the call returns (the case checks what it returns itself, with ``assert``).

The cases run in subprocesses (tests/reliability/run_corpus.py) so that a case that kills its
process is a named failure, not the end of the suite.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Expect:
    kind: str  # "raises" | "nonfinite" | "ok"
    exc: type | None = None
    words: tuple = field(default_factory=tuple)


def raises(exc: type, *words: str) -> Expect:
    return Expect("raises", exc, words)


def nonfinite() -> Expect:
    return Expect("nonfinite")


def ok() -> Expect:
    return Expect("ok")


CASES: dict[str, tuple[Callable, Expect]] = {}


def case(expect: Expect, name: str | None = None):
    def register(fn):
        key = name or fn.__name__
        assert key not in CASES, key
        CASES[key] = (fn, expect)
        return fn

    return register


def add(name: str, fn: Callable, expect: Expect) -> None:
    assert name not in CASES, name
    CASES[name] = (fn, expect)


def _tmp(name: str) -> str:
    d = tempfile.mkdtemp(prefix="ncps-corpus-")
    return os.path.join(d, name)


# ------------------------------------------------------------------------------------------------
# constructors: wrong types and values (one table per class)
# ------------------------------------------------------------------------------------------------


def _ctor_cases():
    import ncps
    from ncps import wirings as W

    V = ValueError
    T = (TypeError, ValueError)
    table = [
        # (name, callable, expect)
        ("cfc_units_float", lambda: ncps.CfC(4, 2.5), raises(V, "units")),
        ("cfc_units_str", lambda: ncps.CfC(4, "8"), raises(T, "units")),
        ("cfc_units_zero", lambda: ncps.CfC(4, 0), raises(V, "units")),
        ("cfc_units_negative", lambda: ncps.CfC(4, -3), raises(V, "units")),
        ("cfc_units_bool", lambda: ncps.CfC(4, True), raises(T, "units")),
        ("cfc_units_none", lambda: ncps.CfC(4), raises(V, "units")),
        ("cfc_input_size_float", lambda: ncps.CfC(4.5, 8), raises(V, "input_size")),
        ("cfc_input_size_zero", lambda: ncps.CfC(0, 8), raises(V, "input_size")),
        ("cfc_input_size_none", lambda: ncps.CfC(None, 8), raises(V, "input_size")),
        ("cfc_input_size_wiring", lambda: ncps.CfC(W.AutoNCP(10, 2), 8), raises(TypeError, "input_size")),
        ("cfc_mode_unknown", lambda: ncps.CfC(4, 8, mode="fast"), raises(V, "mode")),
        ("cfc_activation_unknown", lambda: ncps.CfC(4, 8, activation="swishy"), raises(V, "activation")),
        ("cfc_backbone_units_zero", lambda: ncps.CfC(4, 8, backbone_units=0), raises(V, "backbone_units")),
        ("cfc_backbone_units_float", lambda: ncps.CfC(4, 8, backbone_units=12.5), raises(V, "backbone_units")),
        ("cfc_backbone_layers_negative", lambda: ncps.CfC(4, 8, backbone_layers=-1), raises(V, "backbone_layers")),
        ("cfc_backbone_layers_float", lambda: ncps.CfC(4, 8, backbone_layers=1.5), raises(V, "backbone_layers")),
        (
            "cfc_backbone_list_mismatch",
            lambda: ncps.CfC(4, 8, backbone_units=[8, 8], backbone_layers=3),
            raises(V, "backbone_layers"),
        ),
        ("cfc_dropout_above_one", lambda: ncps.CfC(4, 8, backbone_dropout=1.5), raises(V, "backbone_dropout")),
        ("cfc_dropout_negative", lambda: ncps.CfC(4, 8, backbone_dropout=-0.1), raises(V, "backbone_dropout")),
        ("cfc_dropout_nan", lambda: ncps.CfC(4, 8, backbone_dropout=float("nan")), raises(V, "backbone_dropout")),
        ("cfc_proj_size_zero", lambda: ncps.CfC(4, 8, proj_size=0), raises(V, "proj_size")),
        ("cfc_proj_size_float", lambda: ncps.CfC(4, 8, proj_size=2.5), raises(V, "proj_size")),
        (
            "cfc_merge_mode_unknown",
            lambda: ncps.CfC(4, 8, bidirectional=True, merge_mode="max"),
            raises(V, "merge_mode"),
        ),
        (
            "cfc_wiring_with_backbone",
            lambda: ncps.CfC(4, W.AutoNCP(10, 2), backbone_units=8),
            raises(V, "backbone_units"),
        ),
        ("cfc_cell_wrong_type", lambda: ncps.CfC(cell=ncps.LTCCell(W.FullyConnected(4), 3)), raises(TypeError, "cell")),
        ("ltc_units_float", lambda: ncps.LTC(4, 2.5), raises(V, "units")),
        ("ltc_units_str", lambda: ncps.LTC(4, "8"), raises(T, "units")),
        ("ltc_units_zero", lambda: ncps.LTC(4, 0), raises(V, "units")),
        ("ltc_units_none", lambda: ncps.LTC(4), raises(V, "units")),
        ("ltc_input_size_none", lambda: ncps.LTC(None, 8), raises(V, "input_size")),
        ("ltc_input_size_float", lambda: ncps.LTC(3.5, 8), raises(V, "input_size")),
        ("ltc_input_size_zero", lambda: ncps.LTC(0, 8), raises(V, "input_size")),
        ("ltc_ode_unfolds_float", lambda: ncps.LTC(4, 8, ode_unfolds=2.5), raises(V, "ode_unfolds")),
        ("ltc_ode_unfolds_zero", lambda: ncps.LTC(4, 8, ode_unfolds=0), raises(V, "ode_unfolds")),
        ("ltc_ode_unfolds_huge", lambda: ncps.LTC(4, 8, ode_unfolds=10**9), raises(V, "ode_unfolds")),
        ("ltc_ode_unfolds_str", lambda: ncps.LTC(4, 8, ode_unfolds="6"), raises(T, "ode_unfolds")),
        ("ltc_input_mapping_unknown", lambda: ncps.LTC(4, 8, input_mapping="affin"), raises(V, "input_mapping")),
        ("ltc_output_mapping_unknown", lambda: ncps.LTC(4, 8, output_mapping="relu"), raises(V, "output_mapping")),
        ("ltc_epsilon_negative", lambda: ncps.LTC(4, 8, epsilon=-1.0), raises(V, "epsilon")),
        ("ltc_epsilon_nan", lambda: ncps.LTC(4, 8, epsilon=float("nan")), raises(V, "epsilon")),
        ("ltc_wiring_other_input_size", lambda: _assert_input(ncps.LTC(5, _built(W.AutoNCP(10, 2), 3)), 5), ok()),
        ("ltc_custom_wiring_conflicting_input", lambda: ncps.LTC(5, _built(_custom_wiring(), 3)), raises(V, "input")),
        ("ltc_cell_wrong_type", lambda: ncps.LTC(cell=ncps.CfCCell(3, 4)), raises(TypeError, "cell")),
        (
            "ltc_merge_mode_unknown",
            lambda: ncps.LTC(4, 8, bidirectional=True, merge_mode="min"),
            raises(V, "merge_mode"),
        ),
        ("ctrnn_units_zero", lambda: ncps.CTRNN(4, 0), raises(V, "units")),
        ("ctrnn_units_float", lambda: ncps.CTRNN(4, 2.5), raises(V, "units")),
        ("ctrnn_ode_unfolds_zero", lambda: ncps.CTRNN(4, 8, ode_unfolds=0), raises(V, "ode_unfolds")),
        ("ctrnn_activation_unknown", lambda: ncps.CTRNN(4, 8, activation="nope"), raises(V, "activation")),
        ("ctgru_units_zero", lambda: ncps.CTGRU(4, 0), raises(V, "units")),
        ("ctgru_timescales_zero", lambda: ncps.CTGRU(4, 8, num_timescales=0), raises(V, "num_timescales")),
        ("ctgru_mixed_memory", lambda: ncps.CTGRU(4, 8, mixed_memory=True), raises(V, "mixed_memory")),
        ("rnn_cell_not_cell", lambda: ncps.RNN("cfc"), raises(TypeError, "cell")),
        ("ltccell_wiring_int", lambda: ncps.LTCCell(8, 3), raises(TypeError, "wiring")),
        ("ltccell_unbuilt_no_input", lambda: ncps.LTCCell(W.FullyConnected(4)), raises(V, "build")),
        ("cfccell_units_float", lambda: ncps.CfCCell(3, 4.5), raises(V, "units")),
        ("cfccell_units_none", lambda: ncps.CfCCell(3), raises(V, "units")),
        (
            "cfccell_sparsity_mask_shape",
            lambda: ncps.CfCCell(3, 4, backbone_layers=0, sparsity_mask=np.ones((2, 2))),
            raises(V, "sparsity_mask"),
        ),
        ("wiredcfccell_wiring_int", lambda: ncps.WiredCfCCell(3, 8), raises(TypeError, "wiring")),
        ("wiredcfccell_mode_unknown", lambda: ncps.WiredCfCCell(3, W.AutoNCP(10, 2), mode="x"), raises(V, "mode")),
        ("lstmcell_hidden_zero", lambda: ncps.LSTMCell(3, 0), raises(V, "hidden_size")),
        ("fc_units_zero", lambda: W.FullyConnected(0), raises(V, "units")),
        ("fc_units_float", lambda: W.FullyConnected(2.5), raises(V, "units")),
        ("fc_output_dim_too_big", lambda: W.FullyConnected(4, output_dim=5), raises(V, "output_dim")),
        ("fc_output_dim_zero", lambda: W.FullyConnected(4, output_dim=0), raises(V, "output_dim")),
        ("random_sparsity_one", lambda: W.Random(4, sparsity_level=1.0), raises(V, "sparsity_level")),
        ("random_sparsity_nan", lambda: W.Random(4, sparsity_level=float("nan")), raises(V, "sparsity_level")),
        ("random_sparsity_str", lambda: W.Random(4, sparsity_level="0.5"), raises(T, "sparsity_level")),
        ("ncp_sensory_fanout_too_big", lambda: W.NCP(3, 3, 2, 4, 2, 2, 2), raises(V, "sensory_fanout")),
        ("ncp_motor_zero", lambda: W.NCP(3, 3, 0, 2, 2, 2, 2), raises(V, "motor_neurons")),
        ("autoncp_output_too_big", lambda: W.AutoNCP(5, 3), raises(V, "output_size")),
        ("autoncp_units_float", lambda: W.AutoNCP(10.5, 2), raises(V, "units")),
        ("autoncp_sparsity_out_of_range", lambda: W.AutoNCP(10, 2, sparsity_level=0.0), raises(V, "sparsity_level")),
        ("autoncp_sparsity_nan", lambda: W.AutoNCP(10, 2, sparsity_level=float("nan")), raises(V, "sparsity_level")),
        ("wiring_build_zero", lambda: W.FullyConnected(4).build(0), raises(V, "input")),
        ("wiring_build_float", lambda: W.FullyConnected(4).build(2.5), raises(V, "input")),
        ("wiring_build_conflict", lambda: _built(W.FullyConnected(4), 3).build(5), raises(V, "input")),
        ("wiring_add_synapse_out_of_range", lambda: W.Wiring(3).add_synapse(0, 7, 1), raises(V, "dest")),
        ("wiring_add_synapse_polarity", lambda: W.Wiring(3).add_synapse(0, 1, 2), raises(V, "polarity")),
        ("wiring_sensory_unbuilt", lambda: W.Wiring(3).add_sensory_synapse(0, 1, 1), raises(V, "build")),
        (
            "wiring_from_config_garbage",
            lambda: W.Wiring.from_config({"units": "x"}),
            raises((V, KeyError, TypeError), ""),
        ),
        ("wiring_from_config_not_dict", lambda: W.Wiring.from_config([1, 2]), raises(T, "config")),
    ]
    for name, fn, expect in table:
        add(name, fn, expect)


def _assert_input(layer, size):
    assert layer.input_size == size


def _custom_wiring():
    from ncps import wirings as W

    w = W.Wiring(3)
    w.add_synapse(0, 1, 1)
    w.set_output_dim(1)
    return w


def _built(wiring, input_dim):
    wiring.build(input_dim)
    return wiring


# ------------------------------------------------------------------------------------------------
# layer and cell calls: shapes, dtypes, invalid values
# ------------------------------------------------------------------------------------------------


def _layer(kind: str, **kw):
    import mlx.core as mx

    import ncps
    from ncps import wirings as W

    mx.random.seed(0)
    if kind == "cfc":
        return ncps.CfC(3, 5, backbone_units=8, **kw)
    if kind == "wcfc":
        return ncps.CfC(3, W.AutoNCP(8, 2), **kw)
    if kind == "ltc":
        return ncps.LTC(3, 5, **kw)
    if kind == "ltcncp":
        return ncps.LTC(3, W.AutoNCP(8, 2), **kw)
    if kind == "ctrnn":
        return ncps.CTRNN(3, 5, **kw)
    return ncps.CTGRU(3, 5, **kw)


def _x(B=2, T=4, F=3, dtype=np.float32):
    return np.random.default_rng(0).normal(size=(B, T, F)).astype(dtype)


def _both_paths(fn):
    """``fn()`` on the fused and the reference path; returns the pair (outputs as numpy)."""
    import ncps

    outs = []
    for mode in ("fused", "reference"):
        with ncps.kernels.use(mode):
            outs.append(np.array(fn()))
    return outs


def _call_cases():
    import mlx.core as mx

    import ncps

    V = ValueError
    for kind in ("cfc", "wcfc", "ltc", "ltcncp", "ctrnn", "ctgru"):
        add(f"{kind}_x_rank1", lambda k=kind: _layer(k)(mx.zeros((3,))), raises(V, "x"))
        add(f"{kind}_x_rank4", lambda k=kind: _layer(k)(mx.zeros((1, 2, 4, 3))), raises(V, "x"))
        add(f"{kind}_x_features", lambda k=kind: _layer(k)(mx.zeros((2, 4, 7))), raises(V, "input_size"))
        add(
            f"{kind}_x_complex",
            lambda k=kind: _layer(k)(mx.zeros((2, 4, 3), dtype=mx.complex64)),
            raises(V, "x", "real"),
        )
        add(f"{kind}_x_string", lambda k=kind: _layer(k)("abc"), raises((TypeError, V), "x"))
        add(f"{kind}_x_list_ragged", lambda k=kind: _layer(k)([[1.0, 2.0, 3.0], [1.0]]), raises((TypeError, V), "x"))
        add(f"{kind}_state_shape", lambda k=kind: _layer(k)(_x(), mx.zeros((2, 99))), raises(V, "state"))
        add(
            f"{kind}_state_batch",
            lambda k=kind: _layer(k)(_x(), mx.zeros((5, _layer(k).state_size))),
            raises(V, "state"),
        )
        add(
            f"{kind}_timespans_shape", lambda k=kind: _layer(k)(_x(), timespans=mx.ones((3, 3))), raises(V, "timespans")
        )
        add(f"{kind}_timespans_str", lambda k=kind: _layer(k)(_x(), timespans="1"), raises((TypeError, V), "timespans"))
        add(
            f"{kind}_timespans_nan_scalar",
            lambda k=kind: _layer(k)(_x(), timespans=float("nan")),
            raises(V, "timespans"),
        )
        add(f"{kind}_timespans_negative_scalar", lambda k=kind: _layer(k)(_x(), timespans=-1.0), raises(V, "timespans"))
        add(
            f"{kind}_timespans_inf_scalar",
            lambda k=kind: _layer(k)(_x(), timespans=float("inf")),
            raises(V, "timespans"),
        )
        add(f"{kind}_batch_zero", lambda k=kind: _layer(k)(mx.zeros((0, 4, 3))), raises(V, "batch"))
        add(f"{kind}_time_zero", lambda k=kind: _layer(k)(mx.zeros((2, 0, 3))), raises(V, "time"))

    # NaN / negative elapsed times inside arrays: NaN, identically on both paths.
    for kind in ("cfc", "wcfc", "ltc", "ltcncp"):
        for label, value in (("nan", np.nan), ("negative", -1.0), ("inf", np.inf)):

            def f(k=kind, v=value):
                layer = _layer(k)
                ts = np.ones((2, 4), np.float32)
                ts[0, 1] = v
                fused, ref = _both_paths(lambda: layer(_x(), timespans=mx.array(ts))[0])
                assert np.array_equal(np.isnan(fused), np.isnan(ref)), (fused, ref)
                assert np.isnan(fused[0, 1:]).all(), fused  # the bad step and everything after it
                assert np.isfinite(fused[1]).all() and np.isfinite(fused[0, 0]).all()
                np.testing.assert_allclose(np.nan_to_num(fused), np.nan_to_num(ref), rtol=1e-5, atol=1e-5)
                return fused

            add(f"{kind}_timespans_{label}_array", f, nonfinite())

        def nan_x(k=kind):
            layer = _layer(k)
            x = _x()
            x[1, 2, 0] = np.nan
            fused, ref = _both_paths(lambda: layer(mx.array(x))[0])
            assert np.array_equal(np.isnan(fused), np.isnan(ref))
            assert np.isfinite(fused[0]).all() and np.isnan(fused[1, 2:]).all()
            return fused

        add(f"{kind}_x_nan", nan_x, nonfinite())

        def inf_state(k=kind):
            layer = _layer(k)
            h = np.zeros((2, layer.state_size), np.float32)
            h[0, 0] = np.inf
            fused, ref = _both_paths(lambda: layer(_x(), mx.array(h))[0])
            assert np.array_equal(np.isfinite(fused), np.isfinite(ref)), (fused, ref)

        add(f"{kind}_state_inf_paths_agree", inf_state, ok())

        def dtypes(k=kind):
            layer = _layer(k)
            for dt in (np.float16, np.float64, np.int32):
                xs = _x().astype(dt)
                outs = []
                for mode in ("fused", "reference"):
                    with ncps.kernels.use(mode):
                        y, h = layer(mx.array(xs) if dt != np.float64 else xs)
                        outs.append((y.dtype, h.dtype))
                assert outs[0] == outs[1], (dt, outs)
            return np.zeros(1) + np.nan

        add(f"{kind}_dtypes_agree", dtypes, nonfinite())

        def half_params(k=kind):
            layer = _layer(k)
            layer.set_dtype(mx.float16)
            for dt in (mx.float32, mx.float16):
                outs = []
                for mode in ("fused", "reference"):
                    with ncps.kernels.use(mode):
                        y, h = layer(mx.array(_x()).astype(dt))
                        outs.append((y.dtype, h.dtype))
                assert outs[0] == outs[1], (dt, outs)

        add(f"{kind}_float16_params_dtypes_agree", half_params, ok())

    # cells, one step
    def cell(kind):
        from ncps import wirings as W

        mx.random.seed(0)
        return {
            "ltc": lambda: ncps.LTCCell(W.FullyConnected(4), 3),
            "cfc": lambda: ncps.CfCCell(3, 4, backbone_units=8),
            "wcfc": lambda: ncps.WiredCfCCell(3, W.AutoNCP(8, 2)),
            "ctrnn": lambda: ncps.CTRNNCell(3, 4),
            "ctgru": lambda: ncps.CTGRUCell(3, 4),
        }[kind]()

    for kind in ("ltc", "cfc", "wcfc", "ctrnn", "ctgru"):
        add(f"cell_{kind}_x_rank3", lambda k=kind: cell(k)(mx.zeros((2, 1, 3))), raises(V, "x"))
        add(f"cell_{kind}_x_features", lambda k=kind: cell(k)(mx.zeros((2, 5))), raises(V, "input_size"))
        add(
            f"cell_{kind}_state_shape", lambda k=kind: cell(k)(mx.zeros((2, 3)), mx.zeros((2, 999))), raises(V, "state")
        )
        add(f"cell_{kind}_ts_shape", lambda k=kind: cell(k)(mx.zeros((2, 3)), None, mx.ones((3, 2))), raises(V, "ts"))
        add(f"cell_{kind}_ts_nan", lambda k=kind: cell(k)(mx.zeros((2, 3)), None, float("nan")), raises(V, "ts"))
        add(f"cell_{kind}_ts_negative", lambda k=kind: cell(k)(mx.zeros((2, 3)), None, -0.5), raises(V, "ts"))
        add(
            f"cell_{kind}_x_complex",
            lambda k=kind: cell(k)(mx.zeros((2, 3), dtype=mx.complex64)),
            raises(V, "x", "real"),
        )
        add(f"cell_{kind}_infer_x_features", lambda k=kind: cell(k).infer(mx.zeros((1, 9))), raises(V, "input_size"))

    def warm(kind):
        """A cell whose streaming step is prepared (infer ran once): bad input must still be
        refused by name, not reach the kernel."""
        c = cell(kind)
        c.infer(mx.zeros((2, 3)), mx.zeros((2, c.state_size)))
        return c, mx.zeros((2, c.state_size))

    def warm_infer(kind, x, state=None, ts=1.0):
        c, h = warm(kind)
        return c.infer(x, h if state is None else state, ts)

    for kind in ("ltc", "cfc", "wcfc"):
        bad_infer = {
            "x_features": ((mx.zeros((2, 5)),), raises(V, "input_size")),
            "x_rank3": ((mx.zeros((2, 1, 3)),), raises(V, "x")),
            "x_complex": ((mx.zeros((2, 3), dtype=mx.complex64),), raises(V, "x", "real")),
            "x_string": (("abc",), raises(V, "x")),
            "state_shape": ((mx.zeros((2, 3)), mx.zeros((2, 999))), raises(V, "state")),
            "state_batch": ((mx.zeros((2, 3)), mx.zeros((3, 4 if kind != "wcfc" else 8))), raises(V, "state")),
            "ts_negative": ((mx.zeros((2, 3)), None, -0.5), raises(V, "ts")),
            "ts_nan": ((mx.zeros((2, 3)), None, float("nan")), raises(V, "ts")),
            "ts_shape": ((mx.zeros((2, 3)), None, mx.ones((3, 2))), raises(V, "ts")),
        }
        for case, (args, expect) in bad_infer.items():
            add(f"cell_{kind}_infer_prepared_{case}", lambda k=kind, a=args: warm_infer(k, *a), expect)

    def ltc_mixed_dt_negative():
        layer = _layer("ltc", mixed_memory=True)
        ts = np.ones((2, 4), np.float32)
        ts[1, 2] = -2.0
        fused, ref = _both_paths(lambda: layer(_x(), timespans=mx.array(ts))[0])
        assert np.array_equal(np.isnan(fused), np.isnan(ref)) and np.isnan(fused[1, 2:]).all()
        return fused

    add("ltc_mixed_timespans_negative_array", ltc_mixed_dt_negative, nonfinite())

    def cfc_complex_fused():
        with ncps.kernels.use("fused"):
            return _layer("cfc")(mx.zeros((2, 4, 3), dtype=mx.complex64))

    add("cfc_x_complex_fused", cfc_complex_fused, raises(V, "x", "real"))

    def bidirectional_state_not_tuple():
        return _layer("cfc", bidirectional=True)(_x(), mx.zeros((2, 5)))

    add("bidirectional_state_not_tuple", bidirectional_state_not_tuple, raises(V, "state"))

    def mixed_state_not_tuple():
        return _layer("cfc", mixed_memory=True)(_x(), mx.zeros((2, 5)))

    add("mixed_state_not_tuple", mixed_state_not_tuple, raises((V, RuntimeError), "state"))

    def both_timespans():
        return _layer("cfc")(_x(), timespans=1.0, time_delta=1.0)

    add("timespans_and_time_delta", both_timespans, raises(V, "timespans"))

    def ltc_huge_unfolds_cell():
        from ncps import wirings as W

        return ncps.LTCCell(W.FullyConnected(4), 3, ode_unfolds=10**9)

    add("ltccell_ode_unfolds_huge", ltc_huge_unfolds_cell, raises(V, "ode_unfolds"))


# ------------------------------------------------------------------------------------------------
# kernels: modes, plan, and the fused entry points called directly
# ------------------------------------------------------------------------------------------------


def _ltc_args(B=2, T=3, I=3, N=4):
    import mlx.core as mx

    r = np.random.default_rng(1)
    p = {
        k: mx.array(r.uniform(0.1, 1.0, (I, N)).astype(np.float32))
        for k in ("sensory_w", "sensory_sigma", "sensory_mu", "sensory_erev", "sensory_mask")
    }
    p.update(
        {k: mx.array(r.uniform(0.1, 1.0, (N, N)).astype(np.float32)) for k in ("w", "sigma", "mu", "erev", "mask")}
    )
    p.update({k: mx.array(r.uniform(0.1, 1.0, (N,)).astype(np.float32)) for k in ("cm", "gleak", "vleak")})
    return mx.array(r.normal(size=(B, T, I)).astype(np.float32)), mx.zeros((B, N)), mx.ones((B, T)), p


def _empty(out) -> None:
    assert out.size == 0, out.shape


def _kernel_cases():
    import mlx.core as mx

    import ncps
    from ncps.backends.cpu import cfc as CF
    from ncps.backends.cpu import ltc as LF

    V = ValueError
    add("kernels_set_mode_unknown", lambda: ncps.kernels.set_mode("fastest"), raises(V, "mode"))
    add("kernels_set_mode_int", lambda: ncps.kernels.set_mode(1), raises((TypeError, V), "mode"))
    add("kernels_use_unknown", lambda: ncps.kernels.use("gpu").__enter__(), raises(V, "mode"))

    def fused_ctrnn():
        with ncps.kernels.use("fused"):
            return ncps.CTRNN(3, 4)(_x())

    add("kernels_fused_ctrnn", fused_ctrnn, raises(RuntimeError, "CTRNN"))
    add("kernels_plan_not_cell", lambda: ncps.kernels.plan("ltc"), raises(TypeError, "cell"))

    def ltc(**over):
        x, h0, dt, p = _ltc_args()
        args = dict(x=x, h0=h0, dt=dt, params=p)
        args.update(over)
        return LF.ltc_sequence(**args)

    x, h0, dt, p = _ltc_args()
    add("ltc_seq_x_numpy", lambda: ltc(x=np.zeros((2, 3, 3), np.float32)), raises((TypeError, V), "x"))
    add("ltc_seq_x_rank2", lambda: ltc(x=mx.zeros((2, 3))), raises(V, "x"))
    add("ltc_seq_h0_shape", lambda: ltc(h0=mx.zeros((2, 5))), raises(V, "h0"))
    add("ltc_seq_dt_shape", lambda: ltc(dt=mx.ones((2,))), raises(V, "dt"))
    add("ltc_seq_dt_list", lambda: ltc(dt=[1.0, 1.0]), raises((TypeError, V), "dt"))
    add("ltc_seq_params_list", lambda: ltc(params=[1, 2]), raises(TypeError, "params"))
    add("ltc_seq_params_missing", lambda: ltc(params={k: v for k, v in p.items() if k != "cm"}), raises(V, "cm"))
    add("ltc_seq_w_not_square", lambda: ltc(params={**p, "w": mx.zeros((4, 5))}), raises(V, "w"))
    add("ltc_seq_sigma_shape", lambda: ltc(params={**p, "sigma": mx.zeros((4, 3))}), raises(V, "sigma"))
    add("ltc_seq_cm_complex", lambda: ltc(params={**p, "cm": p["cm"].astype(mx.complex64)}), raises(V, "cm", "real"))
    add("ltc_seq_x_complex", lambda: ltc(x=x.astype(mx.complex64)), raises(V, "x", "real"))
    add("ltc_seq_unfolds_zero", lambda: ltc(ode_unfolds=0), raises(V, "ode_unfolds"))
    add("ltc_seq_unfolds_float", lambda: ltc(ode_unfolds=2.5), raises(V, "ode_unfolds"))
    add("ltc_seq_unfolds_bool", lambda: ltc(ode_unfolds=True), raises(V, "ode_unfolds"))
    add("ltc_seq_unfolds_str", lambda: ltc(ode_unfolds="3"), raises((TypeError, V), "ode_unfolds"))
    add("ltc_seq_unfolds_huge", lambda: ltc(ode_unfolds=10**9), raises(V, "ode_unfolds"))
    add("ltc_seq_epsilon_str", lambda: ltc(epsilon="tiny"), raises((TypeError, V), "epsilon"))
    # The primitives accept empty batches and sequences (an empty result); the layers refuse them.
    add("ltc_seq_batch_zero", lambda: _empty(ltc(x=mx.zeros((0, 3, 3)), h0=mx.zeros((0, 4)), dt=mx.ones((0, 3)))), ok())
    add("ltc_seq_stream_gpu", lambda: ltc(stream=mx.Device(mx.gpu)), raises((V, RuntimeError), "gpu"))

    def ltc_mixed(**over):
        x, h0, dt, p = _ltc_args()
        args = dict(
            x=x,
            h0=h0,
            c0=mx.zeros((2, 4)),
            dt=dt,
            params=p,
            lstm_input=x,
            lstm={"input_w": mx.zeros((16, 3)), "input_b": mx.zeros((16,)), "recurrent_w": mx.zeros((16, 4))},
        )
        args.update(over)
        return LF.ltc_mixed_sequence(**args)

    add("ltc_mixed_c0_shape", lambda: ltc_mixed(c0=mx.zeros((2, 3))), raises(V, "c0"))
    add("ltc_mixed_lstm_missing", lambda: ltc_mixed(lstm={"input_w": mx.zeros((16, 3))}), raises(V, "input_b"))
    add("ltc_mixed_lstm_input_shape", lambda: ltc_mixed(lstm_input=mx.zeros((2, 5, 3))), raises(V, "lstm_input"))
    add(
        "ltc_mixed_recurrent_w_shape",
        lambda: ltc_mixed(
            lstm={"input_w": mx.zeros((16, 3)), "input_b": mx.zeros((16,)), "recurrent_w": mx.zeros((4, 4))}
        ),
        raises(V, "recurrent_w"),
    )

    def ltc_nan_dt_direct():
        x, h0, dt, p = _ltc_args()
        dt = mx.array(np.array([[1.0, np.nan, 1.0], [1.0, 1.0, 1.0]], np.float32))
        out = np.array(LF.ltc_sequence(x, h0, dt, p))
        assert np.isnan(out[0, 1:]).all() and np.isfinite(out[1]).all(), out
        return out

    add("ltc_seq_dt_nan_direct", ltc_nan_dt_direct, nonfinite())

    def cfc_cell():
        mx.random.seed(0)
        return ncps.CfCCell(3, 4, backbone_units=8)

    add(
        "cfc_seq_x_rank2",
        lambda: CF.cfc_sequence(cfc_cell(), mx.zeros((2, 3)), mx.zeros((2, 4)), mx.ones((2, 1))),
        raises(V, "x"),
    )
    add(
        "cfc_seq_h0_shape",
        lambda: CF.cfc_sequence(cfc_cell(), mx.zeros((2, 5, 3)), mx.zeros((2, 3)), mx.ones((2, 5))),
        raises(V, "h0"),
    )
    add(
        "cfc_seq_dt_shape",
        lambda: CF.cfc_sequence(cfc_cell(), mx.zeros((2, 5, 3)), mx.zeros((2, 4)), mx.ones((5, 2))),
        raises(V, "dt"),
    )
    add(
        "cfc_seq_c0_without_lstm",
        lambda: CF.cfc_sequence(
            cfc_cell(), mx.zeros((2, 5, 3)), mx.zeros((2, 4)), mx.ones((2, 5)), None, mx.zeros((2, 4))
        ),
        raises(V, "c0"),
    )
    add(
        "cfc_seq_x_complex",
        lambda: CF.cfc_sequence(cfc_cell(), mx.zeros((2, 5, 3), dtype=mx.complex64), mx.zeros((2, 4)), mx.ones((2, 5))),
        raises(V, "x", "real"),
    )
    add(
        "cfc_seq_cell_wrong",
        lambda: CF.cfc_sequence("cell", mx.zeros((2, 5, 3)), mx.zeros((2, 4)), mx.ones((2, 5))),
        raises(TypeError, "cell"),
    )

    # ncps._ext directly: nanobind type errors and the C++ validation, never a crash.
    ext = ncps.kernels._ext

    def ext_ltc(**over):
        x, h0, dt, p = _ltc_args()
        args = [x, h0, dt, *(p[k] for k in LF.LTC_PARAMS)]
        kw = dict(ode_unfolds=over.pop("ode_unfolds", 3), epsilon=over.pop("epsilon", 1e-8))
        for k, v in over.items():
            args[int(k[1:])] = v
        out = ext.ltc_sequence(*args, **kw)
        mx.eval(out)
        return out

    add("ext_ltc_unfolds_zero", lambda: ext_ltc(ode_unfolds=0), raises(V, "ode_unfolds"))
    add("ext_ltc_unfolds_negative", lambda: ext_ltc(ode_unfolds=-5), raises(V, "ode_unfolds"))
    add("ext_ltc_unfolds_huge", lambda: ext_ltc(ode_unfolds=10**9), raises(V, "ode_unfolds"))
    add("ext_ltc_x_rank2", lambda: ext_ltc(a0=mx.zeros((2, 3))), raises(V, "x"))
    add("ext_ltc_h0_shape", lambda: ext_ltc(a1=mx.zeros((9,))), raises(V, "h0"))
    add("ext_ltc_dt_shape", lambda: ext_ltc(a2=mx.zeros((2, 9))), raises(V, "dt"))
    add("ext_ltc_mask_shape", lambda: ext_ltc(a12=mx.zeros((1, 4))), raises(V, "mask"))
    add("ext_ltc_vleak_shape", lambda: ext_ltc(a15=mx.zeros((5,))), raises(V, "vleak"))
    add("ext_ltc_x_complex", lambda: ext_ltc(a0=mx.zeros((2, 3, 3), dtype=mx.complex64)), raises(V, "x"))
    add("ext_ltc_x_not_array", lambda: ext_ltc(a0="x"), raises(TypeError, "ltc_sequence"))
    add(
        "ext_ltc_batch_zero",
        lambda: _empty(ext_ltc(a0=mx.zeros((0, 3, 3)), a1=mx.zeros((0, 4)), a2=mx.zeros((0, 3)))),
        ok(),
    )
    add("ext_ltc_time_zero", lambda: _empty(ext_ltc(a0=mx.zeros((2, 0, 3)), a2=mx.zeros((2, 0)))), ok())

    def ext_cfc(mode="default", activation="lecun_tanh", drop=0, sizes=None, backbone=None, masked=None, x=None):
        cell = cfc_cell()
        params, unit_sizes, bb, mk, _, _ = CF._unit_args([cell])
        params = params[: len(params) - drop]
        out = ext.cfc_sequence(
            mx.zeros((2, 5, 3)) if x is None else x,
            mx.zeros((2, 4)),
            mx.ones((2, 5)),
            params,
            sizes or unit_sizes,
            backbone or bb,
            masked or mk,
            mode,
            activation,
        )
        mx.eval(out)
        return out

    add("ext_cfc_mode_unknown", lambda: ext_cfc(mode="warp"), raises(V, "mode"))
    add("ext_cfc_activation_unknown", lambda: ext_cfc(activation="swish9"), raises(V, "activation"))
    add("ext_cfc_params_short", lambda: ext_cfc(drop=3), raises(V, "parameter arrays"))
    add("ext_cfc_unit_sizes_wrong", lambda: ext_cfc(sizes=[7]), raises(V, "h0", "(2, 7)"))
    add("ext_cfc_unit_sizes_negative", lambda: ext_cfc(sizes=[-4]), raises(V, "unit_sizes"))
    add("ext_cfc_backbone_wrong", lambda: ext_cfc(backbone=[[9]]), raises(V, "backbone"))
    add("ext_cfc_masked_wrong_len", lambda: ext_cfc(masked=[False, True]), raises(V, "masked"))
    add("ext_cfc_x_complex", lambda: ext_cfc(x=mx.zeros((2, 5, 3), dtype=mx.complex64)), raises(V, "x"))
    add("ext_cfc_x_rank4", lambda: ext_cfc(x=mx.zeros((2, 5, 3, 1))), raises(V, "x"))


# ------------------------------------------------------------------------------------------------
# save / load
# ------------------------------------------------------------------------------------------------


def _persistence_cases():
    import mlx.core as mx
    import mlx.nn as nn

    import ncps

    V = ValueError
    add("load_missing", lambda: ncps.load(_tmp("nothing.safetensors")), raises(FileNotFoundError, "nothing"))

    def load_without_suffix():
        path = _tmp("model")
        m = _layer("cfc")
        ncps.save(m, path)
        back = ncps.load(path)
        np.testing.assert_array_equal(np.array(back(_x())[0]), np.array(m(_x())[0]))

    add("save_load_without_suffix", load_without_suffix, ok())

    def garbage(content: bytes, name="bad.safetensors"):
        path = _tmp(name)
        with open(path, "wb") as f:
            f.write(content)
        return ncps.load(path)

    add("load_empty_file", lambda: garbage(b""), raises(V, "safetensors"))
    add("load_text_file", lambda: garbage(b"hello world"), raises(V, "safetensors"))
    add("load_huge_header_len", lambda: garbage((2**62).to_bytes(8, "little") + b"{}"), raises(V, "safetensors"))
    add("load_header_not_json", lambda: garbage((5).to_bytes(8, "little") + b"{{{{{"), raises(V, "safetensors"))

    def load_plain_safetensors():
        path = _tmp("plain.safetensors")
        mx.save_safetensors(path, {"a": mx.zeros(3)})
        return ncps.load(path)

    add("load_plain_safetensors", load_plain_safetensors, raises(V, "ncps"))

    def load_with_metadata(meta: str):
        path = _tmp("meta.safetensors")
        mx.save_safetensors(path, {"a": mx.zeros(3)}, metadata={"ncps": meta})
        return ncps.load(path)

    # (case, the metadata's "ncps" entry, a word the error names)
    bad_metadata = [
        ("load_meta_not_json", "{not json", "configuration"),
        ("load_meta_wrong_format", '{"format": "other/9", "model": {}}', "format"),
        (
            "load_meta_unknown_class",
            '{"format": "ncps-model/1", "model": {"__layer__": "Evil", "cell": {}, "options": {}}}',
            "Evil",
        ),
        ("load_meta_list", "[1, 2, 3]", "configuration"),
        ("load_meta_missing_model", '{"format": "ncps-model/1"}', "model"),
        (
            "load_meta_bad_cell_args",
            '{"format": "ncps-model/1", "model": {"__cell__": "CfCCell", "config": {"bogus": 1}}}',
            "config",
        ),
    ]
    for name, meta, word in bad_metadata:
        add(name, lambda meta=meta: load_with_metadata(meta), raises(V, word))

    def load_wrong_weights():
        path = _tmp("w.safetensors")
        m = _layer("cfc")
        ncps.save(m, path)
        _, meta = mx.load(path, return_metadata=True)
        mx.save_safetensors(path, {"rnn_cell.ff1.weight": mx.zeros((2, 2))}, metadata=meta)
        return ncps.load(path)

    add("load_mismatched_weights", load_wrong_weights, raises(V, "weight"))
    add(
        "load_directory",
        lambda: ncps.load(tempfile.mkdtemp()),
        raises((FileNotFoundError, IsADirectoryError, V), "ncps"),
    )
    add("save_not_ncps", lambda: ncps.save(nn.Linear(2, 2), _tmp("lin.safetensors")), raises(TypeError, "save_weights"))
    add(
        "save_to_missing_dir",
        lambda: ncps.save(_layer("cfc"), "/nonexistent-dir-ncps/x.safetensors"),
        raises((FileNotFoundError, OSError), "nonexistent"),
    )
    add("save_path_none", lambda: ncps.save(_layer("cfc"), None), raises(TypeError, "path"))

    def npz_pickle():
        from ncps.datasets.atari_cloning import AtariCloningDataset

        d = tempfile.mkdtemp()
        folder = os.path.join(d, "data_atari_seq", "breakout")
        os.makedirs(folder)
        np.savez(
            os.path.join(folder, "train_0.npz"),
            obs=np.array([object()], dtype=object),
            actions=np.array([{"x": 1}], dtype=object),
        )
        return AtariCloningDataset("breakout", root_dir=d, download=False).load_chunk(0)

    add("atari_pickled_chunk", npz_pickle, raises(V, "train_0.npz", "pickle"))

    def atari_corrupt():
        from ncps.datasets.atari_cloning import AtariCloningDataset

        d = tempfile.mkdtemp()
        folder = os.path.join(d, "data_atari_seq", "breakout")
        os.makedirs(folder)
        with open(os.path.join(folder, "train_0.npz"), "wb") as f:
            f.write(b"PK\x03\x04 not really a zip")
        return AtariCloningDataset("breakout", root_dir=d, download=False).load_chunk(0)

    add("atari_corrupt_chunk", atari_corrupt, raises(V, "train_0.npz"))

    def mini_keras_load_missing():
        from ncps import mini_keras

        return mini_keras.load_model(_tmp("none.safetensors"))

    add("mini_keras_load_missing", mini_keras_load_missing, raises(FileNotFoundError, "none"))


# ------------------------------------------------------------------------------------------------
# fronts
# ------------------------------------------------------------------------------------------------


def _front_cases():
    import mlx.core as mx
    import mlx.nn as nn

    import ncps
    from ncps import optimizers

    V = ValueError

    def fit(**over):
        from ncps import training

        model = _layer("cfc")
        args = dict(optimizer=optimizers.adam(1e-2), epochs=2, batch_size=2, progress=False)
        data = over.pop("data", (_x(4), np.zeros((4, 4, 5), np.float32)))
        args.update(over)
        return training.fit(model, lambda m, x, y: nn.losses.mse_loss(m(x)[0], y), data, **args)

    add("fit_epochs_negative", lambda: fit(epochs=-1), raises(V, "epochs"))
    add("fit_epochs_float", lambda: fit(epochs=2.5), raises(V, "epochs"))
    add("fit_batch_size_zero", lambda: fit(batch_size=0), raises(V, "batch_size"))
    add("fit_clip_norm_negative", lambda: fit(clip_norm=-1.0), raises(V, "clip_norm"))
    add("fit_optimizer_str", lambda: fit(optimizer="adam"), raises(TypeError, "optimizer"))
    add("fit_data_mismatch", lambda: fit(data=(_x(4), np.zeros((3, 4, 5)))), raises(V, "train_data"))
    add("fit_data_empty", lambda: fit(data=(_x(4)[:0], np.zeros((0, 4, 5)))), raises(V, "train_data"))
    add("fit_data_not_tuple", lambda: fit(data=5), raises((TypeError, V), "train_data"))

    def fit_nan():
        x = _x(4)
        x[0, 0, 0] = np.nan
        return fit(data=(x, np.zeros((4, 4, 5), np.float32)))

    add("fit_nan_data", fit_nan, raises(FloatingPointError, "loss"))
    add("fit_patience_zero", lambda: fit(early_stopping_patience=0), raises(V, "early_stopping_patience"))
    add("fit_metrics_bad_name", lambda: fit(metrics={"loss": lambda m, x, y: 0.0}), raises(V, "metric"))
    add(
        "predict_batch_size_zero",
        lambda: ncps.training.predict(_layer("cfc"), _x(), batch_size=0),
        raises(V, "batch_size"),
    )
    add(
        "evaluate_loss_not_scalar",
        lambda: ncps.training.evaluate(_layer("cfc"), lambda m, x, y: m(x)[0], (_x(), np.zeros((2, 4, 5)))),
        raises(V, "scalar"),
    )

    from ncps.datasets import synthetic

    add("xor_n_zero", lambda: synthetic.bitstream_xor(n=0), raises(V, "n"))
    add("xor_n_negative", lambda: synthetic.bitstream_xor(n=-1), raises(V, "n"))
    add("xor_pad_size_small", lambda: synthetic.bitstream_xor(pad_size=2), raises(V, "pad_size"))
    add("sine_seq_len_zero", lambda: synthetic.sine_cosine(seq_len=0), raises(V, "seq_len"))
    add("sine_n_zero", lambda: synthetic.sine_cosine(n=0), raises(V, "n"))
    add("sine_noise_negative", lambda: synthetic.sine_cosine(noise=-1.0), raises(V, "noise"))
    add("sine_seq_len_float", lambda: synthetic.sine_cosine(seq_len=4.5), raises(V, "seq_len"))
    add("irregular_n_zero", lambda: synthetic.irregular_sine_classification(n=0), raises(V, "n"))
    add("irregular_seq_len_zero", lambda: synthetic.irregular_sine_classification(seq_len=0), raises(V, "seq_len"))
    add("irregular_classes_one", lambda: synthetic.irregular_sine_classification(n_classes=1), raises(V, "n_classes"))
    add(
        "irregular_mean_dt_bad",
        lambda: synthetic.irregular_sine_classification(mean_dt=(0.5, 0.1)),
        raises(V, "mean_dt"),
    )

    def atari_missing():
        from ncps.datasets.atari_cloning import AtariCloningDataset

        return AtariCloningDataset("breakout", root_dir=tempfile.mkdtemp(), download=False)

    add("atari_missing_no_download", atari_missing, raises(FileNotFoundError, "download"))

    def icra_missing():
        from ncps.datasets import icra2020_lidar_collision_avoidance as icra

        return icra.load_data(root_dir=tempfile.mkdtemp(), download=False)

    add("icra_missing_no_download", icra_missing, raises(FileNotFoundError, "download"))

    def icra_corrupt():
        from ncps.datasets import icra2020_lidar_collision_avoidance as icra

        path = _tmp("lidar.npz")
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04garbage")
        return icra.load_data(local_path=path, download=False)

    add("icra_corrupt_npz", icra_corrupt, raises(V, "lidar.npz"))

    def icra_pickled():
        from ncps.datasets import icra2020_lidar_collision_avoidance as icra

        path = _tmp("lidar.npz")
        np.savez(path, x_0=np.array([object()], dtype=object), y_0=np.zeros(2))
        return icra.load_data(local_path=path, download=False)

    add("icra_pickled_npz", icra_pickled, raises(V, "lidar.npz", "pickle"))

    # LiquidNeuralNetwork
    def lnn(**kw):
        from ncps import LiquidNeuralNetwork

        return LiquidNeuralNetwork(**kw)

    add("lnn_neurons_small", lambda: lnn(n_neurons=2), raises(V, "n_neurons"))
    add("lnn_model_type", lambda: lnn(model_type="GRU"), raises(V, "Model type"))

    def lnn_nan():
        x = np.zeros((2, 5, 3), np.float32)
        x[0, 0, 0] = np.nan
        return lnn(n_neurons=8, seed=0).fit(x, np.zeros((2, 5, 1), np.float32), epochs=1)

    add("lnn_fit_nan_input", lnn_nan, raises(V, "X"))

    def lnn_y_mismatch():
        return lnn(n_neurons=8, seed=0).fit(np.zeros((2, 5, 3)), np.zeros((3, 5, 1)), epochs=1)

    add("lnn_fit_y_mismatch", lnn_y_mismatch, raises(V, "y"))

    def lnn_predict_unfit():
        return lnn(n_neurons=8).predict(np.zeros((2, 5, 3)))

    add("lnn_predict_before_fit", lnn_predict_unfit, raises(RuntimeError, "fit"))

    # scikit-learn
    def sk(cls="LiquidRegressor", X=None, y=None, **kw):
        from ncps import sklearn as S

        est = getattr(S, cls)(**{"epochs": 1, "units": 4, **kw})
        return est.fit(np.zeros((4, 3, 2)) if X is None else X, np.zeros(4) if y is None else y)

    add("sk_units_zero", lambda: sk(units=0), raises(V, "units"))
    add("sk_epochs_zero", lambda: sk(epochs=0), raises(V, "epochs"))
    add("sk_lr_negative", lambda: sk(learning_rate=-1.0), raises(V, "learning_rate"))
    add("sk_model_type", lambda: sk(model_type="RNN"), raises(V, "model_type"))

    def sk_nan():
        X = np.zeros((4, 3, 2))
        X[0, 0, 0] = np.nan
        return sk(X=X)

    add("sk_nan_X", sk_nan, raises(V, "NaN"))
    add("sk_y_mismatch", lambda: sk(y=np.zeros(5)), raises(V, "samples"))
    add("sk_classifier_one_class", lambda: sk("LiquidClassifier", y=np.zeros(4)), raises(V, "class"))

    # mini_keras
    from ncps import mini_keras as K
    from ncps.mini_keras import layers as KL

    def keras_model(loss="sparse_categorical_crossentropy", out=3):
        m = K.Sequential([KL.Input((4, 2)), KL.CfC(6), KL.Dense(out)])
        m.compile(optimizer="adam", loss=loss)
        return m

    def sparse_labels(labels):
        m = keras_model()
        return m.fit(np.zeros((4, 4, 2), np.float32), np.array(labels), epochs=1, verbose=0)

    add("keras_sparse_label_one_based", lambda: sparse_labels([1, 2, 3, 3]), raises(V, "label"))
    add("keras_sparse_label_huge", lambda: sparse_labels([0, 100000, 1, 2]), raises(V, "label"))
    add("keras_sparse_label_negative", lambda: sparse_labels([0, -1, 1, 2]), raises(V, "label"))
    add("keras_sparse_label_float", lambda: sparse_labels([0.5, 1, 1, 2]), raises(V, "label"))

    def sparse_loss_direct():
        from ncps.mini_keras import losses

        return losses.SparseCategoricalCrossentropy(from_logits=True)(mx.array([0, 7]), mx.zeros((2, 3)))

    add("keras_sparse_loss_direct_out_of_range", sparse_loss_direct, nonfinite())
    add("keras_dense_units_zero", lambda: KL.Dense(0), raises(V, "units"))
    add("keras_dense_units_str", lambda: KL.Dense("4"), raises((TypeError, V), "units"))
    add("keras_cfc_units_float", lambda: KL.CfC(2.5), raises(V, "units"))
    add("keras_compile_unknown_loss", lambda: keras_model(loss="hinge9"), raises(V, "loss"))

    def keras_unknown_opt():
        m = K.Sequential([KL.Input((4, 2)), KL.CfC(6)])
        m.compile(optimizer="adamz", loss="mse")

    add("keras_compile_unknown_optimizer", keras_unknown_opt, raises(V, "optimizer"))

    def keras_fit_uncompiled():
        m = K.Sequential([KL.Input((4, 2)), KL.CfC(6)])
        return m.fit(np.zeros((2, 4, 2)), np.zeros((2, 6)), verbose=0)

    add("keras_fit_uncompiled", keras_fit_uncompiled, raises(RuntimeError, "compile"))

    def keras_fit_x_features():
        m = keras_model(loss="mse", out=1)
        return m.fit(np.zeros((2, 4, 5)), np.zeros((2, 1)), verbose=0, epochs=1)

    add("keras_fit_wrong_features", keras_fit_x_features, raises(V, "inputs", "(None, 4, 2)"))

    def keras_nan_loss():
        m = keras_model(loss="mse", out=1)
        x = np.zeros((4, 4, 2), np.float32)
        x[1, 1, 1] = np.nan
        return m.fit(x, np.zeros((4, 1)), verbose=0, epochs=2)

    add("keras_fit_nan_loss", keras_nan_loss, raises(FloatingPointError, "loss"))

    # interop
    from ncps import interop

    add(
        "interop_state_dict_not_mapping",
        lambda: interop.load_torch_state_dict(_layer("cfc"), [1, 2]),
        raises(TypeError, "state_dict"),
    )
    add("interop_state_dict_missing", lambda: interop.load_torch_state_dict(_layer("cfc"), {}), raises(V, "missing"))
    add(
        "interop_state_dict_wrong_shape",
        lambda: interop.load_torch_state_dict(_layer("cfc"), {"rnn_cell.ff1.weight": np.zeros((1, 1))}),
        raises(V, "ff1"),
    )
    add("interop_from_torch_not_module", lambda: interop.from_torch("model"), raises(TypeError, "module"))
    add(
        "interop_model_not_ncps", lambda: interop.load_torch_state_dict(nn.Linear(2, 2), {}), raises(TypeError, "model")
    )


def build() -> dict:
    if not CASES:
        _ctor_cases()
        _call_cases()
        _kernel_cases()
        _persistence_cases()
        _front_cases()
    return CASES
