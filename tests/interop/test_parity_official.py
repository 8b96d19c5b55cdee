"""Numerical parity with the official ncps.torch 1.0.1 (run as an oracle in its own process).

Each case builds the official module in the oracle, copies its weights into the equivalent ncps
model with ``load_torch_state_dict``, runs the same inputs (per-sample timespans, initial states)
and compares outputs, final states (1e-5) and gradients of ``sum(output * R)`` (1e-4 relative).
"""

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from benchmarks.official_common import build_layer
from mlx.utils import tree_flatten

import ncps
from ncps import kernels
from ncps.interop import _renumber_backbone, load_torch_state_dict
from tests.official import run_oracle  # noqa: F401  (the oracle_cache fixture's runner)

AUTO = {"wiring": "AutoNCP", "args": [12, 3], "kwargs": {"seed": 3}}
NCP = {"wiring": "NCP", "args": [5, 4, 3, 3, 2, 3, 2]}
FC = {"wiring": "FullyConnected", "args": [6, 2]}

CASES = {
    # CfC, unwired: modes, backbones, activations, mixed memory, projections, layouts
    "cfc_default": {"layer": "CfC", "input_size": 4, "units": 8, "timespans": "per_sample", "initial_state": True},
    "cfc_no_gate": {
        "layer": "CfC",
        "input_size": 4,
        "units": 8,
        "kwargs": {"mode": "no_gate"},
        "timespans": "per_sample",
    },
    "cfc_pure": {
        "layer": "CfC",
        "input_size": 4,
        "units": 8,
        "kwargs": {"mode": "pure"},
        "timespans": "per_sample",
        "initial_state": True,
    },
    "cfc_backbone2_silu": {
        "layer": "CfC",
        "input_size": 3,
        "units": 6,
        "kwargs": {"backbone_units": 16, "backbone_layers": 2, "activation": "silu"},
    },
    "cfc_backbone3_gelu_proj": {
        "layer": "CfC",
        "input_size": 3,
        "units": 6,
        "kwargs": {"backbone_units": 10, "backbone_layers": 3, "activation": "gelu", "proj_size": 2},
        "timespans": "per_sample",
    },
    "cfc_no_backbone_relu": {
        "layer": "CfC",
        "input_size": 3,
        "units": 5,
        "kwargs": {"backbone_layers": 0, "activation": "relu"},
    },
    "cfc_mixed_proj": {
        "layer": "CfC",
        "input_size": 4,
        "units": 8,
        "kwargs": {"mixed_memory": True, "proj_size": 3, "activation": "tanh"},
        "timespans": "per_sample",
        "initial_state": True,
    },
    "cfc_time_major_last": {
        "layer": "CfC",
        "input_size": 4,
        "units": 8,
        "kwargs": {"batch_first": False, "return_sequences": False},
        "timespans": "per_sample",
    },
    # CfC, wired
    "cfc_wired_default": {
        "layer": "CfC",
        "input_size": 4,
        "units": AUTO,
        "timespans": "per_sample",
        "initial_state": True,
    },
    "cfc_wired_pure": {
        "layer": "CfC",
        "input_size": 4,
        "units": NCP,
        "kwargs": {"mode": "pure"},
        "timespans": "per_sample",
    },
    "cfc_wired_no_gate_mixed_proj": {
        "layer": "CfC",
        "input_size": 4,
        "units": AUTO,
        "kwargs": {"mode": "no_gate", "mixed_memory": True, "proj_size": 2},
        "initial_state": True,
    },
    # LTC: wirings, mappings, constraint modes, mixed memory
    "ltc_fc_softplus": {"layer": "LTC", "input_size": 3, "units": 6, "timespans": "per_sample", "initial_state": True},
    "ltc_ncp_explicit": {
        "layer": "LTC",
        "input_size": 3,
        "units": NCP,
        "kwargs": {"implicit_param_constraints": False},
        "timespans": "per_sample",
    },
    "ltc_auto_linear": {
        "layer": "LTC",
        "input_size": 3,
        "units": AUTO,
        "kwargs": {"input_mapping": "linear", "output_mapping": "linear", "ode_unfolds": 3},
        "timespans": "per_sample",
    },
    "ltc_fc_identity_mixed": {
        "layer": "LTC",
        "input_size": 3,
        "units": FC,
        "kwargs": {"input_mapping": "none", "output_mapping": "none", "mixed_memory": True},
        "initial_state": True,
    },
    "ltc_time_major_last": {
        "layer": "LTC",
        "input_size": 3,
        "units": 5,
        "kwargs": {"batch_first": False, "return_sequences": False},
    },
    # Cells
    "cell_cfc": {
        "layer": "CfCCell",
        "input_size": 4,
        "units": 7,
        "kwargs": {"mode": "no_gate"},
        "timespans": "per_sample",
    },
    "cell_ltc": {"layer": "LTCCell", "input_size": 4, "units": AUTO, "timespans": "per_sample"},
    "cell_ltc_softplus": {
        "layer": "LTCCell",
        "input_size": 4,
        "units": NCP,
        "kwargs": {"implicit_param_constraints": True},
    },
    "cell_wired_cfc": {
        "layer": "WiredCfCCell",
        "input_size": 4,
        "units": NCP,
        "kwargs": {"mode": "default"},
        "timespans": "per_sample",
    },
}


def make_units(units):
    if isinstance(units, dict):
        return getattr(ncps.wirings, units["wiring"])(*units.get("args", []), **units.get("kwargs", {}))
    return units


def build_ours(spec):
    kw = dict(spec.get("kwargs", {}))
    return build_layer(ncps, spec["layer"], spec["input_size"], make_units(spec["units"]), kw)


def run_ours(model, ref, spec):
    x = mx.array(ref["x"])
    sequence = spec["layer"] in ("CfC", "LTC")
    ts = mx.array(ref["timespans"]) if "timespans" in ref else None
    state = None
    if "h0" in ref:
        state = mx.array(ref["h0"])
        if "c0" in ref:
            state = (state, mx.array(ref["c0"]))
    R = mx.array(ref["R"])

    def loss_fn(model, x):
        if sequence:
            out, st = model(x, state, timespans=ts)
        else:
            out, st = model(x, state, 1.0 if ts is None else ts)
        return (out * R).sum(), (out, st)

    grad_fn = nn.value_and_grad(model, loss_fn)
    (_, (out, st)), grads = grad_fn(model, x)
    x_grad = mx.grad(lambda x: loss_fn(model, x)[0])(x)
    return out, st, dict(tree_flatten(grads)), x_grad


def assert_close(ours, theirs, tol, what, relative=False):
    """Max abs error <= tol, or <= tol * max(1, max|theirs|) when relative."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} vs official {theirs.shape}"
    err = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
    scale = max(1.0, float(np.max(np.abs(theirs)))) if relative and theirs.size else 1.0
    assert err <= tol * scale, f"{what}: max abs error {err:.3e} > {tol:.0e} x {scale:.3g}"
    return err


@pytest.mark.parametrize("mode", ["reference", "auto"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_parity_with_official(name, mode, oracle_cache):
    spec = dict(CASES[name], seed=7)
    ref = oracle_cache(name, spec)
    model = build_ours(spec)
    params = {k[len("param/") :]: v for k, v in ref.items() if k.startswith("param/")}
    load_torch_state_dict(model, params)
    with kernels.use(mode):
        out, st, grads, x_grad = run_ours(model, ref, spec)
    assert_close(out, ref["output"], 1e-5, "output")
    if isinstance(st, tuple):
        assert_close(st[0], ref["state"], 1e-5, "state h")
        assert_close(st[1], ref["state_c"], 1e-5, "state c")
    else:
        assert_close(st, ref["state"], 1e-5, "state")
    assert_close(x_grad, ref["grad/x"], 1e-4, "grad x", relative=True)
    renamed = _renumber_backbone([k[len("grad/") :] for k in ref if k.startswith("grad/") and k != "grad/x"])
    assert renamed, "the oracle returned no parameter gradients"
    for key, ours_key in renamed.items():
        assert ours_key in grads, f"no gradient for {ours_key}"
        assert_close(grads[ours_key], ref["grad/" + key], 1e-4, f"grad {ours_key}", relative=True)


def test_load_rejects_mismatched_state_dict(oracle_cache):
    ref = oracle_cache("cfc_default", dict(CASES["cfc_default"], seed=7))
    params = {k[len("param/") :]: v for k, v in ref.items() if k.startswith("param/")}
    with pytest.raises(ValueError, match="missing keys"):
        load_torch_state_dict(ncps.CfC(4, 8, mixed_memory=True), params)
    with pytest.raises(ValueError, match="shape mismatches.*backbone.0.weight"):
        load_torch_state_dict(ncps.CfC(4, 8, backbone_units=64), params)
    with pytest.raises(ValueError, match="unexpected keys"):
        load_torch_state_dict(ncps.CfC(4, 8), dict(params, extra=np.zeros(3)))
