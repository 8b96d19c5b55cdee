"""Model specs, the models built from them, and the timed calls.

One plain dict describes a model for both packages (ours here, the official one in its subprocess:
``official_torch.py`` reads the same dict)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import mlx.core as mx
import mlx.nn as nn

import ncps
from benchmarks.common.config import RunConfig

IMPLS = ("fused", "reference")  # our two paths; "official" and "mlx.nn" are the others
PASSES = ("forward", "fwd+bwd")


# ---------------------------------------------------------------------------------------------
# Specs
# ---------------------------------------------------------------------------------------------
def wiring(name: str, *args: Any, **kwargs: Any) -> dict:
    return {"wiring": name, "args": list(args), "kwargs": kwargs}


def spec(layer: str, inputs: int, units: int | dict, **kwargs: Any) -> dict:
    return {"layer": layer, "input_size": inputs, "units": units, "kwargs": kwargs}


def units_label(units: int | dict) -> str:
    if isinstance(units, dict):
        args = [str(a) for a in units["args"]] + [f"{k}={v}" for k, v in units["kwargs"].items()]
        return f"{units['wiring']}({', '.join(args)})"
    return str(units)


def units_count(units: int | dict) -> int:
    return int(units["args"][0]) if isinstance(units, dict) else int(units)


def label(s: dict) -> str:
    """A short human name: ``LTC · AutoNCP(64, 8)``, ``CfC(16, 64) · backbone 128×1``."""
    layer, u, kw = s["layer"], s["units"], s.get("kwargs", {})
    if layer.startswith("mlx.nn."):
        return f"{layer}({s['input_size']}, {u})"
    if layer in ("CfC", "CfCCell") and not isinstance(u, dict):
        return (
            f"{layer}({s['input_size']}, {u}) · backbone {kw.get('backbone_units', 128)}×{kw.get('backbone_layers', 1)}"
        )
    return f"{layer} · {units_label(u)}"


def ltc_specs(cfg: RunConfig) -> list[dict]:
    """The two LTC models of the run: the AutoNCP wiring and a fully connected one."""
    kw = {"ode_unfolds": cfg.ode_unfolds}
    return [
        spec("LTC", cfg.inputs, wiring("AutoNCP", cfg.units, cfg.motor), **kw),
        spec("LTC", cfg.inputs, wiring("FullyConnected", cfg.units), **kw),
    ]


def cfc_specs(cfg: RunConfig) -> list[dict]:
    """The two CfC models of the run: fully connected with its backbone, and on AutoNCP."""
    return [
        spec("CfC", cfg.inputs, cfg.units, backbone_units=cfg.backbone_units, backbone_layers=cfg.backbone_layers),
        spec("CfC", cfg.inputs, wiring("AutoNCP", cfg.units, cfg.motor)),
    ]


def make_units(units: int | dict) -> Any:
    """An int, or a fresh wiring of ours from ``{"wiring", "args", "kwargs"}``."""
    if isinstance(units, dict):
        return getattr(ncps.wirings, units["wiring"])(*units["args"], **units["kwargs"])
    return int(units)


def build(s: dict, dtype: str | None = None) -> nn.Module:
    """Our model (or an ``mlx.nn`` baseline) from a spec, with fixed random parameters (drawn in
    float32, then cast to ``dtype``, an ``mlx.core`` dtype name such as ``"bfloat16"``, if given)."""
    mx.random.seed(0)
    layer, n_in, kw, units = s["layer"], s["input_size"], dict(s.get("kwargs", {})), make_units(s["units"])
    constructors: dict[str, Callable[[], nn.Module]] = {
        "LTC": lambda: ncps.LTC(n_in, units, **kw),
        "CfC": lambda: ncps.CfC(n_in, units, **kw),
        "LTCCell": lambda: ncps.LTCCell(units, n_in, **kw),
        "CfCCell": lambda: ncps.CfCCell(n_in, units, **kw),
        "WiredCfCCell": lambda: ncps.WiredCfCCell(n_in, units, **kw),
        "mlx.nn.LSTM": lambda: nn.LSTM(n_in, units),
        "mlx.nn.GRU": lambda: nn.GRU(n_in, units),
    }
    model = constructors[layer]()
    if dtype is not None:
        model.set_dtype(getattr(mx, dtype))
    mx.eval(model.parameters())
    return model


# ---------------------------------------------------------------------------------------------
# Timed callables: each call ends in mx.eval on everything it produced
# ---------------------------------------------------------------------------------------------
def mode_context(impl: str) -> contextlib.AbstractContextManager:
    """``ncps.kernels.use(impl)`` for our two paths, nothing for the ``mlx.nn`` baselines."""
    return ncps.kernels.use(impl) if impl in IMPLS else contextlib.nullcontext()


def _first(out: Any) -> mx.array:
    """The outputs of a sequence layer: ours return ``(output, state)``, nn.LSTM ``(h, c)``."""
    return out[0] if isinstance(out, tuple) else out


def sequence_call(model: nn.Module, x: mx.array, kind: str, impl: str) -> Callable[[], None]:
    """One synchronised forward or forward+backward call of a sequence model; kind "saved": the
    forward alone, under a gradient (``mx.vjp``, only its outputs evaluated), which keeps what its
    backward will read."""
    if kind == "forward":

        def call():
            with mode_context(impl):
                mx.eval(model(x))

        return call
    if kind == "saved":
        with mode_context(impl):
            y = _first(model(x))  # its shape and dtype: the cotangent, made once
        cotangent = mx.zeros(y.shape, y.dtype)
        mx.eval(cotangent)

        def call():
            with mode_context(impl):
                out, _ = mx.vjp(lambda inp: [_first(model(inp))], [x], [cotangent])
                mx.eval(out)

        return call

    def loss_fn(m, inp):
        return _first(m(inp)).sum()

    value_and_grad = nn.value_and_grad(model, loss_fn)

    def call():
        with mode_context(impl):
            loss, grads = value_and_grad(model, x)
            mx.eval(loss, grads)

    return call


def step_call(cell: nn.Module, batch: int, how: str) -> Callable[[], None]:
    """One synchronised cell step at ``batch`` feeding the state back (streaming inference):
    ``cell(x, h)`` eagerly ("eager"), under ``mx.compile``, or through ``cell.infer`` ("infer")."""
    mx.random.seed(1)
    x = mx.random.normal((batch, cell.input_size))
    h = [mx.random.normal((batch, cell.state_size)) * 0.1]
    mx.eval(x, h[0])
    fn = {"eager": cell, "infer": cell.infer, "mx.compile": mx.compile(lambda a, b: cell(a, b), inputs=cell.state)}[how]

    def call():
        out, h[0] = fn(x, h[0])
        mx.eval(out, h[0])

    return call


def sequence_input(cfg: RunConfig, batch: int, time_steps: int, dtype: str | None = None) -> mx.array:
    """``(batch, time_steps, cfg.inputs)``, the same random input for every path (drawn in
    float32, then cast to ``dtype`` if given)."""
    mx.random.seed(2)
    x = mx.random.normal((batch, time_steps, cfg.inputs))
    if dtype is not None:
        x = x.astype(getattr(mx, dtype))
    mx.eval(x)
    return x
