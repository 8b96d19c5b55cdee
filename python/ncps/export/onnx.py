"""Export to ONNX: the sequence layer as a graph whose recurrence is one ``Scan`` node.

Sequence form (``to_onnx(model, path)``):

- inputs ``x`` ``(batch, time, features)`` float32 (both dims dynamic); optional ``timespans``
  ``(batch, time)`` (default 1.0) and initial states ``h0`` (and ``c0`` with mixed memory; with
  ``_backward`` twins when bidirectional), ``(batch, state_size)``, default zeros. Optional inputs
  are graph inputs that are also initializers (ONNX's default-value mechanism): feed them or not.
- outputs ``y`` (the layer's output: ``(batch, time, ·)`` or ``(batch, ·)`` as
  ``return_sequences`` says; ``y_forward``/``y_backward`` with ``merge_mode=None``), then the final
  states ``h`` (``c``), ``h_backward`` (``c_backward``).

The layout is batch-first whatever the layer's ``batch_first`` (the issue's convention).

One-step form (``one_step=True``): inputs ``x`` ``(batch, features)``, ``dt`` ``(batch, 1)``
(default 1.0), ``h0`` (``c0``); outputs ``y``, ``h`` (``c``) — a control loop's step.

The cells' math is written with standard ONNX operators from the same effective parameters as the
reference path (:mod:`ncps.export._params`); the LTC's ODE unfolds are unrolled inside one step,
the time loop never is. Invalid elapsed times (negative, NaN, inf) give NaN states as in the layers.
"""

from __future__ import annotations

import os

import numpy as np

from ..persistence import atomic_write
from ._params import Dense, DirectionSpec, LayerSpec, describe, extract

DEFAULT_OPSET = 17


def _onnx():
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - the extra is installed in tests
        raise ImportError("ncps.export.to_onnx needs the onnx package: pip install 'ncps[export]'") from exc
    return onnx


class _Graph:
    """Nodes of one (sub)graph; constants go to the shared outer initializers (a ``Scan`` body
    reads them from the outer scope)."""

    def __init__(self, inits: list, prefix: str):
        self.onnx = _onnx()
        self.nodes: list = []
        self.inits = inits
        self.prefix = prefix
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{self.prefix}{hint}_{self._n}"

    def const(self, value, hint: str = "c") -> str:
        arr = np.asarray(value)
        arr = arr.astype(np.int64) if np.issubdtype(arr.dtype, np.integer) else arr.astype(np.float32)
        name = self.name(hint)
        self.inits.append(self.onnx.numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs) -> str | list[str]:
        outs = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0] if outputs == 1 else outs

    # -- building blocks -------------------------------------------------------------------
    def linear(self, layer: Dense, x: str) -> str:
        y = self.op("MatMul", x, self.const(layer.weight.T, "w"))
        return y if layer.bias is None else self.op("Add", y, self.const(layer.bias, "b"))

    def act(self, name: str, x: str) -> str:
        if name == "lecun_tanh":
            return self.op("Mul", self.const(1.7159), self.op("Tanh", self.op("Mul", self.const(0.666), x)))
        if name == "tanh":
            return self.op("Tanh", x)
        if name == "relu":
            return self.op("Relu", x)
        if name == "silu":
            return self.op("Mul", x, self.op("Sigmoid", x))
        if name == "sigmoid":
            return self.op("Sigmoid", x)
        if name == "softplus":
            return self.op("Softplus", x)
        if name == "gelu":  # MLX's exact GELU: x (1 + erf(x / sqrt 2)) / 2
            erf = self.op("Erf", self.op("Div", x, self.const(np.sqrt(2.0))))
            return self.op("Div", self.op("Mul", x, self.op("Add", self.const(1.0), erf)), self.const(2.0))
        raise NotImplementedError(f"ONNX export of activation {name!r}")

    def last_axis(self, x: str, start: int, stop: int) -> str:
        return self.op("Slice", x, self.const([start]), self.const([stop]), self.const([-1]))

    def sum_axis(self, x: str, axis: int) -> str:
        return self.op("ReduceSum", x, self.const([axis]), keepdims=0)


def _cfc(g: _Graph, c, x: str, h: str, dt: str) -> str:
    z = g.op("Concat", x, h, axis=-1)
    for layer in c.backbone:
        z = g.act(c.activation, g.linear(layer, z))
    ff1 = g.linear(c.ff1, z)
    if c.mode == "pure":
        rate = g.op("Add", g.op("Abs", g.const(c.w_tau)), g.op("Abs", ff1))
        decay = g.op("Exp", g.op("Mul", g.op("Neg", dt), rate))
        A = g.const(c.A)
        return g.op("Add", g.op("Mul", g.op("Mul", g.op("Neg", A), decay), ff1), A)
    ff1, ff2 = g.op("Tanh", ff1), g.op("Tanh", g.linear(c.ff2, z))
    gate = g.op("Sigmoid", g.op("Add", g.op("Mul", g.linear(c.time_a, z), dt), g.linear(c.time_b, z)))
    if c.mode == "no_gate":
        return g.op("Add", ff1, g.op("Mul", gate, ff2))
    return g.op("Add", g.op("Mul", ff1, g.op("Sub", g.const(1.0), gate)), g.op("Mul", gate, ff2))


def _synapses(g: _Graph, v: str, w, sigma, mu, erev) -> tuple[str, str]:
    """``(Σ_k a_ki E_ki, Σ_k a_ki)`` of ``a = w σ(σ_ki (v_k − μ_ki))`` over presynaptic ``k``."""
    pre = g.op("Unsqueeze", v, g.const([2]))
    a = g.op("Mul", g.const(w), g.op("Sigmoid", g.op("Mul", g.const(sigma), g.op("Sub", pre, g.const(mu)))))
    return g.sum_axis(g.op("Mul", a, g.const(erev)), 1), g.sum_axis(a, 1)


def _ltc(g: _Graph, c, x: str, v: str, dt: str) -> str:
    p = c.p
    if c.input_w is not None:
        x = g.op("Mul", x, g.const(c.input_w))
    if c.input_b is not None:
        x = g.op("Add", x, g.const(c.input_b))
    num_s, den_s = _synapses(
        g, x, p["sensory_w"] * p["sensory_mask"], p["sensory_sigma"], p["sensory_mu"], p["sensory_erev"]
    )
    moving = g.op("Not", g.op("Equal", dt, g.const(0.0)))  # Δt = 0 keeps the state
    hstep = g.op("Div", g.op("Where", moving, dt, g.const(1.0)), g.const(float(c.ode_unfolds)))
    cm_t = g.op("Div", g.const(p["cm"]), hstep)
    gleak, leak, v0 = g.const(p["gleak"]), g.const(c.leak), v
    cm_gl = g.op("Add", cm_t, gleak)
    w = p["w"] * p["mask"]
    for _ in range(c.ode_unfolds):
        num, den = _synapses(g, v, w, p["sigma"], p["mu"], p["erev"])
        top = g.op("Add", g.op("Add", g.op("Mul", cm_t, v), leak), g.op("Add", num, num_s))
        bottom = g.op("Add", g.op("Add", cm_gl, g.op("Add", den, den_s)), g.const(c.epsilon))
        v = g.op("Div", top, bottom)
    return g.op("Where", moving, v, v0)


def _ctrnn(g: _Graph, c, x: str, h: str, dt: str) -> str:
    drive = g.linear(c.input_map, x)
    hstep = g.op("Div", dt, g.const(float(c.ode_unfolds)))
    decay = g.const(c.decay)
    for _ in range(c.ode_unfolds):
        f = g.act(c.activation, g.op("Add", drive, g.linear(c.recurrent_map, h)))
        h = g.op("Add", h, g.op("Mul", hstep, g.op("Add", g.op("Mul", g.op("Neg", h), decay), f)))
    return h


def _ctgru(g: _Graph, c, x: str, state: str, dt: str) -> str:
    H, M = c.hidden, c.timescales
    traces = g.op("Reshape", state, g.const([0, H, M]))
    ln_tau = g.const(c.ln_tau)

    def scale(layer: Dense, z: str) -> str:
        d = g.op("Sub", g.op("Reshape", g.linear(layer, z), g.const([0, H, M])), ln_tau)
        return g.op("Softmax", g.op("Neg", g.op("Mul", d, d)), axis=-1)

    z = g.op("Concat", x, g.sum_axis(traces, 2), axis=-1)
    retrieved = g.sum_axis(g.op("Mul", scale(c.tau_r, z), traces), 2)
    q = g.op("Unsqueeze", g.op("Tanh", g.linear(c.detect, g.op("Concat", x, retrieved, axis=-1))), g.const([2]))
    s = scale(c.tau_s, z)
    decay = g.op("Exp", g.op("Div", g.op("Neg", g.op("Unsqueeze", dt, g.const([2]))), g.const(c.tau)))
    new = g.op("Mul", g.op("Add", g.op("Mul", g.op("Sub", g.const(1.0), s), traces), g.op("Mul", s, q)), decay)
    return g.op("Reshape", new, g.const([0, H * M]))


def _readout(g: _Graph, c, h: str) -> str:
    if c.kind == "cfc":
        return h if c.readout is None else g.last_axis(h, 0, c.readout)
    if c.kind == "wired_cfc":
        return g.last_axis(h, c.hidden - c.layers[-1].hidden, c.hidden)
    if c.kind == "ltc":
        y = g.last_axis(h, 0, c.motor)
        if c.output_w is not None:
            y = g.op("Mul", y, g.const(c.output_w))
        if c.output_b is not None:
            y = g.op("Add", y, g.const(c.output_b))
        return y
    if c.kind == "ctgru":
        return g.sum_axis(g.op("Reshape", h, g.const([0, c.hidden, c.timescales])), 2)
    return h


def _step(g: _Graph, d: DirectionSpec, x: str, states: list[str], dt: str) -> tuple[str, list[str]]:
    """One step of a direction (batched): ``(y, new_states)``; ``dt`` ``(B, 1)``."""
    h, c_mem = states[0], (states[1] if d.lstm is not None else None)
    if d.lstm is not None:
        N = d.state_size
        gates = g.op("Add", g.linear(d.lstm.input_map, x), g.linear(d.lstm.recurrent_map, h))
        i, ig, fg, og = g.op("Split", gates, g.const([N] * 4), axis=-1, outputs=4)
        c_mem = g.op(
            "Add",
            g.op("Mul", c_mem, g.op("Sigmoid", g.op("Add", fg, g.const(1.0)))),
            g.op("Mul", g.op("Tanh", i), g.op("Sigmoid", ig)),
        )
        h = g.op("Mul", g.op("Tanh", c_mem), g.op("Sigmoid", og))
    cell = d.cell
    if cell.kind == "cfc":
        h = _cfc(g, cell, x, h, dt)
    elif cell.kind == "wired_cfc":
        parts, inp, off = [], x, 0
        for layer in cell.layers:
            inp = _cfc(g, layer, inp, g.last_axis(h, off, off + layer.hidden), dt)
            parts.append(inp)
            off += layer.hidden
        h = g.op("Concat", *parts, axis=-1)
    else:
        h = {"ltc": _ltc, "ctrnn": _ctrnn, "ctgru": _ctgru}[cell.kind](g, cell, x, h, dt)
    y = _readout(g, cell, h)
    if d.proj is not None:
        y = g.linear(d.proj, y)
    return y, [h] if c_mem is None else [h, c_mem]


def _sanitize_dt(g: _Graph, dt: str) -> str:
    valid = g.op("And", g.op("GreaterOrEqual", dt, g.const(0.0)), g.op("Less", dt, g.const(np.inf)))
    return g.op("Where", valid, dt, g.const(np.nan))


def _value(name: str, dims: list) -> object:
    onnx = _onnx()
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims)


def _state_names(spec: LayerSpec, suffix: str) -> list[str]:
    names = ["h", "c"] if spec.mixed_memory else ["h"]
    return [n + suffix for n in names]


def _optional_input(g: _Graph, inputs: list, inits: list, name: str, default: np.ndarray, dims: list) -> None:
    """A graph input that defaults to ``default`` when not fed (an initializer of the same name)."""
    onnx = _onnx()
    inputs.append(_value(name, dims))
    inits.append(onnx.numpy_helper.from_array(default.astype(np.float32), name))


def _sequence_graph(spec: LayerSpec):
    onnx = _onnx()
    inits: list = []
    g = _Graph(inits, "")
    inputs = [_value("x", ["batch", "time", spec.input_size])]
    _optional_input(g, inputs, inits, "timespans", np.ones((1, 1)), ["batch", "time"])
    directions = [("", spec.forward)] + ([("_backward", spec.backward)] if spec.bidirectional else [])
    for suffix, d in directions:
        for n in _state_names(spec, suffix):
            _optional_input(g, inputs, inits, n + "0", np.zeros((1, d.state_size)), ["batch", d.state_size])
    shape = g.op("Shape", "x")
    bt = g.op("Slice", shape, g.const([0]), g.const([2]))
    ts = _sanitize_dt(g, g.op("Expand", "timespans", bt))
    outputs, finals = [], []
    for suffix, d in directions:
        S = d.state_size
        b_n = g.op("Concat", g.op("Slice", shape, g.const([0]), g.const([1])), g.const([S]), axis=0)
        starts = [g.op("Expand", n + "0", b_n) for n in _state_names(spec, suffix)]
        body = _Graph(inits, f"body{suffix}_")
        state_in = [f"body{suffix}_{n}_in" for n in _state_names(spec, "")]
        x_t, dt_t = f"body{suffix}_x_t", f"body{suffix}_dt_t"
        y, new = _step(body, d, x_t, state_in, body.op("Unsqueeze", dt_t, body.const([1])))
        # Scan body outputs must be distinct names produced in the body
        new = [body.op("Identity", s) for s in new]
        y = body.op("Identity", y)
        body_graph = onnx.helper.make_graph(
            body.nodes,
            f"step{suffix}",
            [_value(n, ["batch", S]) for n in state_in]
            + [_value(x_t, ["batch", spec.input_size]), _value(dt_t, ["batch"])],
            [_value(n, ["batch", S]) for n in new] + [_value(y, ["batch", d.output_size])],
        )
        reverse = 1 if suffix else 0
        results = g.op(
            "Scan",
            *starts,
            "x",
            ts,
            outputs=len(starts) + 1,
            body=body_graph,
            num_scan_inputs=2,
            scan_input_axes=[1, 1],
            scan_input_directions=[reverse, reverse],
            scan_output_axes=[1],
            scan_output_directions=[reverse],
        )
        seq = results[-1]
        if not spec.return_sequences:  # the last step the direction processed
            seq = g.op("Gather", seq, g.const(0 if reverse else -1), axis=1)
        outputs.append(seq)
        finals += list(zip(_state_names(spec, suffix), results[:-1]))
    if spec.bidirectional and spec.merge_mode is not None:
        a, b = outputs
        mode = spec.merge_mode
        if mode == "concat":
            merged = g.op("Concat", a, b, axis=-1)
        elif mode == "sum":
            merged = g.op("Add", a, b)
        elif mode == "mul":
            merged = g.op("Mul", a, b)
        else:  # ave
            merged = g.op("Div", g.op("Add", a, b), g.const(2.0))
        outputs = [merged]
    out_names = ["y"] if len(outputs) == 1 else ["y_forward", "y_backward"]
    y_dims = ["batch", "time"] if spec.return_sequences else ["batch"]
    graph_outputs = []
    for name, src in zip(out_names, outputs):
        g.op("Identity", src)
        g.nodes[-1].output[0] = name
        graph_outputs.append(_value(name, y_dims + [None]))
    for name, src in finals:
        g.op("Identity", src)
        g.nodes[-1].output[0] = name
        graph_outputs.append(_value(name, ["batch", None]))
    return onnx.helper.make_graph(g.nodes, f"ncps_{spec.name or 'model'}", inputs, graph_outputs, inits)


def _one_step_graph(spec: LayerSpec):
    onnx = _onnx()
    if spec.bidirectional:
        raise NotImplementedError(
            f"one-step ONNX export of a bidirectional layer ({describe(spec)}): its backward direction "
            "starts at the sequence's last step, so it has no step form; export the sequence form"
        )
    inits: list = []
    g = _Graph(inits, "")
    d = spec.forward
    inputs = [_value("x", ["batch", spec.input_size])]
    _optional_input(g, inputs, inits, "dt", np.ones((1, 1)), ["batch", 1])
    names = _state_names(spec, "")
    for n in names:
        _optional_input(g, inputs, inits, n + "0", np.zeros((1, d.state_size)), ["batch", d.state_size])
    b_1 = g.op("Concat", g.op("Slice", g.op("Shape", "x"), g.const([0]), g.const([1])), g.const([1]), axis=0)
    dt = _sanitize_dt(g, g.op("Expand", "dt", b_1))
    b_n = g.op("Concat", g.op("Slice", g.op("Shape", "x"), g.const([0]), g.const([1])), g.const([d.state_size]), axis=0)
    y, new = _step(g, d, "x", [g.op("Expand", n + "0", b_n) for n in names], dt)
    outputs = []
    for name, src in zip(["y"] + names, [y] + new):
        g.op("Identity", src)
        g.nodes[-1].output[0] = name
        outputs.append(_value(name, ["batch", None]))
    return onnx.helper.make_graph(g.nodes, f"ncps_{spec.name or 'model'}_step", inputs, outputs, inits)


def to_onnx(model, path: str | os.PathLike, *, one_step: bool = False, opset: int = DEFAULT_OPSET) -> str:
    """Write ``model`` (an ncps layer or cell) as an ONNX model to ``path`` (atomically).

    Args:
        model: ``CfC`` (every mode, wired, mixed memory, ``proj_size``, bidirectional), ``LTC``
            (any wiring, unfolds, mappings), ``CTRNN``, ``CTGRU``, or a bare cell.
        path: the ``.onnx`` file.
        one_step: write the one-step form (state in, state out) instead of the sequence form.
        opset: the ONNX opset (17 or later).

    Returns ``path``. The graph passes ``onnx.checker.check_model(full_check=True)``.
    """
    onnx = _onnx()
    if int(opset) < 17:
        raise ValueError(f"opset must be 17 or later, got {opset}")
    spec = extract(model)
    graph = _one_step_graph(spec) if one_step else _sequence_graph(spec)
    proto = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", int(opset))], producer_name="ncps.export"
    )
    proto.ir_version = min(proto.ir_version, 9)  # readable by current onnxruntime releases
    onnx.checker.check_model(proto, full_check=True)
    path = os.fspath(path)
    atomic_write(path, lambda tmp: onnx.save(proto, tmp))
    return path


__all__ = ["to_onnx"]
