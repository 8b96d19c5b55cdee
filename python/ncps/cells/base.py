"""What every cell shares: the :class:`Cell` base (checked step, streaming inference, the
fused-kernel hooks) and the sizes and wiring copy of cells built on a wiring.

A cell implements the math of one time step and nothing else:

- ``step(x, state, ts) -> new_state``: the reference step, inputs already checked (``x``
  ``(B, input_size)``, ``state`` ``(B, state_size)``, ``ts`` a float or ``(B, 1)``);
- ``readout(state) -> output``: the output ``(..., output_size)`` of a state;
- ``input_size``, ``state_size``, ``output_size`` and ``get_config()`` (constructor arguments).

A cell with fused kernels names its hook modules with the class attributes ``fused`` (the CPU
backend, :mod:`ncps.backends.cpu`) and ``gpu_fused`` (the GPU backend, :mod:`ncps.backends.gpu`);
:class:`ncps.backends.hooks.Hooks` is the one description of what such a module provides.
:func:`ncps.kernels.plan` decides, once per call, which module (or the reference path) runs.
"""

from __future__ import annotations

from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from .. import _checks, _dtypes, kernels
from ..backends.hooks import Hooks
from ..wirings import Wiring

Timespan = float | mx.array | np.ndarray


def shape_of(a: Any) -> tuple:
    """The shape of an array-like, for error messages."""
    return tuple(np.shape(a))


_NUMPY_FLOATS = {np.dtype(np.float16): mx.float16, np.dtype(np.float32): mx.float32}


class Cell(nn.Module):
    """Base of the ncps cells: ``cell(x, state=None, ts=1.0) -> (output, new_state)``."""

    # The hook modules of the cell's CPU and GPU kernels (:class:`~ncps.backends.hooks.Hooks`).
    fused: Hooks | None = None
    gpu_fused: Hooks | None = None
    # The prepared streaming step of :meth:`infer` (the CPU hook module's ``prepared_step``), built
    # at the first checked call; an instance attribute from then on.
    _prepared: Any = None
    # The cell's dtype when it is not float32 (the prepared step returns float32), set with
    # ``_prepared``: :meth:`infer` then casts the results (README "Precision").
    _prepared_dtype: Any = None

    # -- what a subclass provides -----------------------------------------------------------
    input_size: int

    @property
    def state_size(self) -> int:
        raise NotImplementedError

    @property
    def output_size(self) -> int:
        raise NotImplementedError

    def step(self, x: mx.array, state: mx.array, ts: float | mx.array) -> mx.array:
        raise NotImplementedError

    def readout(self, state: mx.array) -> mx.array:
        return state

    def get_config(self) -> dict:
        """The constructor arguments that rebuild this cell (with fresh parameters)."""
        return dict(self._config)

    def _extra_repr(self) -> str:
        """``repr(cell)`` shows the sizes (and the wiring of a wired cell), as ``mlx.nn`` layers do."""
        parts = [f"input_size={self.input_size}", f"state_size={self.state_size}", f"output_size={self.output_size}"]
        wiring = getattr(self, "_wiring", None)
        if wiring is not None:
            parts.append(f"wiring={wiring!r}")
        return ", ".join(parts)

    # -- fused-kernel hooks -------------------------------------------------------------------
    def fused_why_not(self, mixed_memory: bool = False) -> str | None:
        """None when the cell's fused kernel covers it (inside a layer with ``mixed_memory``),
        else the reason it does not."""
        if self.fused is None:
            return f"no fused kernel is implemented for {type(self).__name__}"
        return self.fused.why_not(self, mixed_memory)

    # -- checked calls ------------------------------------------------------------------------
    def check_inputs(self, x: Any, state: Any, ts: Timespan):
        """Validate one step's arguments: ``(x, state, ts)`` with ``state`` zeros when None and
        ``ts`` a float or ``(B, 1)`` float32 array. Integer and float64 ``x`` and ``state`` are
        cast to the cell's dtype, the zero state has the compute dtype (README "Precision")."""
        x = _checks.as_array(x, "x")
        _checks.real_array(x, "x")
        dtype = _dtypes.model_dtype(self)
        x = _checks.infinite_to_nan(_dtypes.as_compute_input(x, dtype))
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"x must have shape (batch, input_size) = (B, {self.input_size}), got {shape_of(x)}")
        B, N = x.shape[0], self.state_size
        if B == 0:
            raise ValueError("x has an empty batch (B = 0); pass at least one sample")
        if state is None:
            state = mx.zeros((B, N), dtype=_dtypes.compute_dtype(x, dtype))
        else:
            state = _dtypes.as_compute_input(state if isinstance(state, mx.array) else mx.array(state), dtype)
        if state.shape != (B, N):
            raise ValueError(f"state must have shape (batch, state_size) = ({B}, {N}), got {shape_of(state)}")
        if isinstance(ts, (int, float)) and not isinstance(ts, bool):
            return x, state, _checks.timespan(ts, "ts")
        ts = _checks.as_array(ts, "ts")
        _checks.real_array(ts, "ts")
        if ts.ndim == 0:
            return x, state, _checks.timespan(ts.item(), "ts")
        if ts.shape not in ((B,), (B, 1)):
            raise ValueError(f"ts must be a float or have shape (B,) or (B, 1) with B = {B}, got {shape_of(ts)}")
        return x, state, _checks.invalid_timespans_to_nan(ts.reshape(B, 1).astype(mx.float32))

    def __call__(self, x: mx.array, state: mx.array | None = None, ts: Timespan = 1.0):
        """One checked step: ``x`` ``(B, input_size)``, ``state`` ``(B, state_size)`` (zeros if
        None), ``ts`` a float, ``(B,)`` or ``(B, 1)``; returns ``(output, new_state)``. Runs the
        fused kernel's step where :func:`ncps.kernels.plan` allows (the streaming, control-loop
        case), the reference :meth:`step` otherwise."""
        x, state, ts = self.check_inputs(x, state, ts)
        return self._step(x, state, ts, kernels.plan(self))

    def _step(self, x: mx.array, state: mx.array, ts, plan: kernels.Plan):
        if plan.fused:
            new_state = plan.kernel.step(self, x, state, ts, **plan.hook_args())
        else:
            if isinstance(ts, mx.array):  # the reference multiplies with Δt in the compute dtype
                ts = _dtypes.cast(ts, _dtypes.compute_dtype(x, state, _dtypes.model_dtype(self)))
            new_state = self.step(x, state, ts)
        return self.readout(new_state), new_state

    def __getstate__(self) -> dict:
        """Copies and pickles leave the prepared step out (it is not copyable and belongs to
        this cell's arrays): a copy prepares its own at its first :meth:`infer`."""
        state = dict(vars(self))
        state.pop("_prepared", None)
        state.pop("_constraint_memo", None)  # LTCCell's kept constraint values, likewise
        return state

    def infer(self, x: mx.array, state: mx.array | None = None, ts: Timespan = 1.0):
        """Streaming inference for control loops: one step, evaluated ``(output, new_state)``.

        ``x`` ``(B, input_size)``, ``state`` ``(B, state_size)`` (zeros if None), ``ts`` a float
        >= 0, ``(B,)`` or ``(B, 1)``, as for :meth:`__call__`, whose result it equals.

        Where the fused module has an immediate form (CfC, wired CfC and LTC cells) the new state is
        computed on the calling thread: no graph is built and MLX's hand-off to its stream
        worker, which dominates a batch-1 step, is skipped. The cell keeps that step prepared
        (parameters gathered, validated and converted, the kernel planned) while its parameters
        and options stay the same objects, so a step costs the kernel and a few identity checks;
        any replaced parameter (training, ``update``, ``load_weights``, ``set_dtype``) or option
        prepares it again at the next call, and an argument the prepared step does not take goes
        through the checks of :meth:`__call__` (which raise for bad input). Otherwise this is
        ``cell(x, state, ts)`` followed by ``mx.eval``. Do not use it inside ``mx.grad`` or
        ``mx.compile``.
        """
        prepared = self._prepared
        # The prepared step answers None for anything it does not take (a non-finite x included).
        if prepared is not None and kernels.prepared_step_allowed():
            out = prepared.step(x, state, ts)
            if out is not None:
                return out if self._prepared_dtype is None else self._in_dtype(out, x, state)
        return self._infer_checked(x, state, ts)

    def _in_dtype(self, out: tuple, x: Any, state: Any) -> tuple:
        """The evaluated ``(output, state)`` of a CPU kernel's immediate step in the compute dtype
        of ``x``, ``state`` and the cell (README "Precision"): as they are when the step returned
        that dtype (a prepared step does, for arrays), else converted."""
        dtype = _dtypes.model_dtype(self)

        def dtype_of(a: Any) -> mx.Dtype:
            if isinstance(a, mx.array):
                return _dtypes.as_compute_input(a, dtype).dtype
            # None, numbers and lists: the model's dtype; numpy keeps float16/float32 (as mx.array would)
            return _NUMPY_FLOATS.get(np.asarray(a).dtype if a is not None else None, dtype)

        dtype = _dtypes.compute_dtype(dtype_of(x), dtype_of(state), dtype)
        if all(o.dtype == dtype for o in out):
            return out
        out = tuple(o.astype(dtype) for o in out)
        mx.eval(out)
        return out

    def _infer_checked(self, x: Any, state: Any, ts: Timespan):
        """:meth:`infer` with every check and the plan: (re)prepares the step where it can."""
        x, state, ts = self.check_inputs(x, state, ts)
        plan = kernels.plan(self)
        if not plan.fused or not hasattr(plan.kernel, "infer"):
            output, new_state = self._step(x, state, ts, plan)
            mx.eval(output, new_state)
            return output, new_state
        if plan.backend == "cpu" and hasattr(plan.kernel, "prepared_step"):
            prepared = self._prepared
            if prepared is None or not prepared.valid():
                dtype = _dtypes.model_dtype(self)
                object.__setattr__(self, "_prepared_dtype", None if dtype == mx.float32 else dtype)
                prepared = self._prepared = plan.kernel.prepared_step(self)
            out = prepared.step(x, state, ts)
            if out is not None:
                return out if self._prepared_dtype is None else self._in_dtype(out, x, state)
        # What the prepared step does not take (an integer x: the kernel names it) or cannot build.
        return self._in_dtype(plan.kernel.infer(self, x, state, ts), x, state)


def built_copy(wiring: Wiring, input_dim: int | None, name: str = "input_size") -> Wiring:
    """The private copy of ``wiring`` a cell keeps, built for ``input_dim`` when given.

    An unbuilt ``wiring`` is first built in place, as upstream does, so that the caller's object
    shows the synapses the cell uses (``wiring.draw_graph()``, ``synapse_count``); the cell then
    keeps a copy, so that later edits of the caller's object do not change a trained cell.
    """
    if not isinstance(wiring, Wiring):
        raise TypeError(f"wiring must be an ncps.wirings.Wiring, got {type(wiring).__name__}")
    if input_dim is not None:
        input_dim = _checks.integer(input_dim, name)
        if not wiring.is_built():
            wiring.build(input_dim)
        elif wiring.input_dim != input_dim and type(wiring) is not Wiring:
            # Built for another input size: a fresh wiring of the same configuration (seed
            # included), as the unbuilt original would have built for this size.
            wiring = type(wiring)(**wiring._init_config())
    wiring = wiring.copy()
    if input_dim is not None:
        wiring.build(int(input_dim))
    if not wiring.is_built():
        raise ValueError("Wiring must be built before use: call wiring.build(input_dim) or pass input_size")
    return wiring


class WiredSizes:
    """Sizes of a cell whose neurons are those of its wiring ``self._wiring``."""

    _wiring: Wiring

    @property
    def wiring(self) -> Wiring:
        return self._wiring

    @property
    def state_size(self) -> int:
        return self._wiring.units

    @property
    def input_size(self) -> int:
        return self._wiring.input_dim

    @property
    def sensory_size(self) -> int:
        return self._wiring.input_dim

    @property
    def motor_size(self) -> int:
        """The wiring's ``output_dim``; every neuron when it sets none (a bare ``Wiring``), as
        the CfC cells read such a wiring."""
        out = self._wiring.output_dim
        return self._wiring.units if out is None else out

    @property
    def output_size(self) -> int:
        return self.motor_size

    @property
    def synapse_count(self) -> int:
        return self._wiring.synapse_count

    @property
    def sensory_synapse_count(self) -> int:
        return self._wiring.sensory_synapse_count
