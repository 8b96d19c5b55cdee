"""Sequence layers: one generic wrapper runs any cell over time.

:class:`RNN` owns everything that is not the cell's math: the ``(B, T, F)`` / ``(T, B, F)`` /
unbatched layouts, elapsed times of every accepted shape, initial states, the mixed-memory LSTM,
the optional projection, ``return_sequences``, variable ``lengths`` and bidirectional merging.
Per direction it either runs the cell's fused sequence kernel where :func:`ncps.kernels.plan`
allows, or the reference loop

.. code-block:: text

    for t in 0..T-1:
        if mixed_memory: h', c' = lstm(x_t, (h, c))
        h' = cell.step(x_t, h', Δt_t)
        h, c = where(t < L_b, (h', c'), (h, c))      # sequence b is frozen after its length L_b
        y_t = where(t < L_b, readout(h), 0)
    output = proj(y) for every t (return_sequences) or y at t = L_b - 1

With ``lengths`` the padded steps are sanitized once, here, before either path runs: inputs 0
and Δt 0 (no time passes in the padding), so garbage or NaN in the padding never enters a cell:
the valid steps of a causal run do not depend on later steps, and every padded step receives a
zero cotangent, whose product with finite Jacobians is zero (with NaN there it would be NaN). The
fused kernels therefore run unchanged over all ``T`` steps (Δt = 0 leaves an LTC state as it is,
and the plain LTC primitive skips the groups of samples whose sequences have all ended); the layer
takes each sequence's final state at ``t = L_b - 1`` from the per-step states (and LSTM cells) the
kernels return, and masks the padded outputs. No kernel hook sees ``lengths``
(:class:`ncps.backends.hooks.Hooks`).

:class:`CfC`, :class:`LTC`, :class:`CTRNN` and :class:`CTGRU` only build their cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from . import _checks, _dtypes, kernels
from ._aliases import official_names
from .cells import Cell, CfCCell, CTGRUCell, CTRNNCell, LSTMCell, LTCCell, WiredCfCCell
from .cells.base import shape_of as _shape
from .wirings import FullyConnected, Wiring

MERGE_MODES = ("concat", "sum", "mul", "ave", None)

Timespans = None | float | mx.array | np.ndarray
Lengths = None | int | Sequence[int] | mx.array | np.ndarray


def _normalize_timespans(ts: Timespans, B: int, T: int, batch_first: bool, batched: bool) -> mx.array | None:
    """Elapsed times as a ``(B, T)`` array, or None for the default of 1.0."""
    if ts is None:
        return None
    if isinstance(ts, (int, float)) and not isinstance(ts, bool):
        return mx.full((B, T), _checks.timespan(ts))
    ts = _checks.as_array(ts, "timespans")
    _checks.real_array(ts, "timespans")
    ts = _checks.invalid_timespans_to_nan(ts.astype(mx.float32))
    if ts.ndim == 0:
        return mx.full((B, T), _checks.timespan(ts.item()))
    if not batched:
        if ts.shape in ((T,), (T, 1)):
            return ts.reshape(1, T)
        raise ValueError(
            f"timespans for unbatched input of length T = {T} must be a float, (T,) or (T, 1); got {_shape(ts)}"
        )
    if ts.shape == (B,):
        return mx.broadcast_to(ts[:, None], (B, T))
    if ts.ndim == 3 and ts.shape[-1] == 1:
        ts = ts[..., 0]
    if batch_first and ts.shape == (B, T):
        return ts
    if not batch_first and ts.shape == (T, B):
        return ts.T
    layout = f"(B, T) = ({B}, {T}) or (B, T, 1)" if batch_first else f"(T, B) = ({T}, {B}) or (T, B, 1)"
    raise ValueError(f"timespans must be None, a float, (B,) = ({B},), {layout}; got {_shape(ts)}")


def _normalize_lengths(lengths: Lengths, B: int, T: int, batched: bool) -> mx.array | None:
    """``lengths`` as a validated int32 ``(B,)`` array (``(1,)`` for unbatched input), or None."""
    if lengths is None:
        return None
    booleans = isinstance(lengths, (mx.array, np.ndarray)) and lengths.dtype in (mx.bool_, np.bool_)
    if isinstance(lengths, bool) or booleans:
        raise TypeError("lengths must hold integers, got booleans")
    if not isinstance(lengths, mx.array):
        try:
            arr = np.asarray(lengths)
        except ValueError:  # a ragged list: numpy's message names no argument
            raise ValueError(
                f"lengths must be integers of shape (B,) = ({B},), one length per sequence, got a ragged "
                f"{type(lengths).__name__}"
            ) from None
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
            raise TypeError(f"lengths must be an integer array of shape (B,) = ({B},), got dtype {arr.dtype}")
        lengths = mx.array(arr.astype(np.int32))
    elif not mx.issubdtype(lengths.dtype, mx.integer):
        raise TypeError(f"lengths must be an integer array of shape (B,) = ({B},), got dtype {lengths.dtype}")
    if not batched:
        if lengths.ndim != 0:
            raise ValueError(f"lengths for unbatched input (T, F) must be a single int, got shape {_shape(lengths)}")
        lengths = lengths.reshape(1)
    elif lengths.shape != (B,):
        raise ValueError(f"lengths must have shape (B,) = ({B},), one length per sequence, got shape {_shape(lengths)}")
    lengths = lengths.astype(mx.int32)
    try:
        lo, hi = mx.min(lengths).item(), mx.max(lengths).item()
    except ValueError:  # a placeholder inside mx.compile / vmap: its values are not known yet
        return lengths
    if lo < 1 or hi > T:
        raise ValueError(f"lengths must satisfy 1 <= lengths[b] <= T = {T}, got values in [{lo}, {hi}]")
    return lengths


_UNIT_TIMESPANS: dict = {}


def _unit_timespans(B: int, T: int) -> mx.array:
    """An evaluated ``(B, T)`` array of ones (Δt = 1 for every step), kept per shape: a graph leaf,
    so that a call without timespans adds no op for it."""
    dt = _UNIT_TIMESPANS.get((B, T))
    if dt is None:
        if len(_UNIT_TIMESPANS) > 64:
            _UNIT_TIMESPANS.clear()
        dt = _UNIT_TIMESPANS[(B, T)] = mx.ones((B, T))
        mx.eval(dt)
    return dt


def _at(a: mx.array, index: mx.array) -> mx.array:
    """``a[b, index[b]]`` for every ``b``: ``(B, T, ...)`` and ``(B,)`` → ``(B, ...)``."""
    index = index.reshape((-1,) + (1,) * (a.ndim - 1))
    return mx.take_along_axis(a, index, axis=1).squeeze(1)


def _reverse_within(lengths: mx.array, T: int) -> mx.array:
    """``(B, T)`` time indices that reverse each sequence within its length and keep its padding in
    place: ``L_b - 1 - t`` for ``t < L_b``, ``t`` after. The map is its own inverse."""
    t = mx.arange(T)[None]
    return mx.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)


def _take_time(a: mx.array, index: mx.array) -> mx.array:
    """``a[b, index[b, t]]``: ``a`` ``(B, T, ...)``, ``index`` ``(B, T)``."""
    return mx.take_along_axis(a, index.reshape(index.shape + (1,) * (a.ndim - 2)), axis=1)


class RNN(nn.Module):
    """Runs a cell over sequences: ``layer(x, state=None, timespans=None, lengths=None) -> (output, state)``.

    Args:
        cell: the cell of the forward direction (``LTCCell``, ``CfCCell``, ``WiredCfCCell``,
            ``CTRNNCell``, ``CTGRUCell``). With ``bidirectional=True`` a second, independently
            initialised cell of the same configuration reads the reversed sequence.
        return_sequences: return every step's output ``(B, T, ·)``, or only the last ``(B, ·)``.
        batch_first: ``x`` is ``(B, T, F)`` if True, ``(T, B, F)`` otherwise; ``(T, F)`` is unbatched.
        mixed_memory: run an LSTM before the cell at every step; the state is then ``(h, c)``.
        proj_size: a linear projection of each output to ``proj_size`` features.
        bidirectional, merge_mode: combine both directions by ``concat``, ``sum``, ``mul``,
            ``ave``, or return them as a tuple (``None``).

    ``timespans`` (alias ``time_delta``): None (1.0), a float, ``(B,)``, ``(B, T)`` or
    ``(B, T, 1)`` (``(T, B)``, ``(T, B, 1)`` when not batch-first); each sample's own elapsed
    time is used. ``state``: ``(B, state_size)``, ``(h, c)`` with mixed memory, and a pair
    ``(forward, backward)`` of those when bidirectional. The returned state has that structure.

    ``lengths``: None (every sequence fills all ``T`` steps) or integers ``(B,)`` (an mx or numpy
    array or a list; a single int for unbatched input) with ``1 <= lengths[b] <= T``, for padded
    batches: sequence ``b`` occupies steps ``0 .. L_b - 1`` (of the time axis, whichever
    ``batch_first`` says) and its padding follows. Steps ``t >= L_b`` leave its state unchanged
    (``h_t = h_{L_b - 1}``) and output zeros; ``return_sequences=False`` returns ``y_{L_b - 1}``; the
    returned state is ``h_{L_b - 1}``; the backward direction of a bidirectional layer reads
    ``x_{L_b - 1}, ..., x_0`` and its outputs are put back in place. Every result, gradients
    included, equals running each sequence alone, cut to its length; what the padding holds
    (NaN included) has no effect.
    """

    def __init__(
        self,
        cell: Cell,
        return_sequences: bool = True,
        batch_first: bool = True,
        mixed_memory: bool = False,
        proj_size: int | None = None,
        bidirectional: bool = False,
        merge_mode: str | None = "concat",
        _backward_cell: Cell | None = None,
    ):
        super().__init__()
        if not isinstance(cell, Cell):
            raise TypeError(f"cell must be an ncps cell (ncps.cells.Cell), got {type(cell).__name__}")
        _checks.choice(merge_mode, "merge_mode", MERGE_MODES)
        if proj_size is not None:
            proj_size = _checks.integer(proj_size, "proj_size")
        self.rnn_cell = cell
        self.return_sequences = _checks.boolean(return_sequences, "return_sequences")
        self.batch_first = _checks.boolean(batch_first, "batch_first")
        self.mixed_memory = _checks.boolean(mixed_memory, "mixed_memory")
        self.proj_size = None if proj_size is None else int(proj_size)
        self.bidirectional = _checks.boolean(bidirectional, "bidirectional")
        self.merge_mode = merge_mode
        if self.mixed_memory:
            self.lstm = LSTMCell(cell.input_size, cell.state_size)
        if self.proj_size is not None:
            self.fc = nn.Linear(cell.output_size, self.proj_size)
        if self.bidirectional:
            back = _backward_cell if _backward_cell is not None else type(cell)(**_cell_kwargs(cell))
            self.backward_layer = RNN(back, True, True, mixed_memory, proj_size)

    # -- sizes -------------------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        return self.rnn_cell.input_size

    @property
    def state_size(self) -> int:
        return self.rnn_cell.state_size

    @property
    def output_size(self) -> int:
        """Features of one output step (after projection and merging)."""
        size = self.proj_size or self.rnn_cell.output_size
        return 2 * size if self.bidirectional and self.merge_mode == "concat" else size

    def _extra_repr(self) -> str:
        """``repr(layer)``: its sizes and the options that differ from the defaults (the cell's
        own line below shows its sizes and wiring)."""
        parts = [f"input_size={self.input_size}", f"state_size={self.state_size}", f"output_size={self.output_size}"]
        defaults = dict(return_sequences=True, batch_first=True, mixed_memory=False, proj_size=None)
        defaults.update(bidirectional=False, merge_mode="concat")
        config = self.get_config()
        parts += [f"{k}={config[k]!r}" for k, v in defaults.items() if config[k] != v]
        return ", ".join(parts)

    def get_config(self) -> dict:
        """The sequence options (the cell has its own ``get_config``)."""
        return dict(
            return_sequences=self.return_sequences,
            batch_first=self.batch_first,
            mixed_memory=self.mixed_memory,
            proj_size=self.proj_size,
            bidirectional=self.bidirectional,
            merge_mode=self.merge_mode,
        )

    # -- one direction ----------------------------------------------------------------------
    def _scan(self, x: mx.array, h: mx.array, c: mx.array | None, ts: mx.array | None, lengths: mx.array | None = None):
        """One direction over batch-first ``x``; returns ``(outputs (B, T, M), h, c)`` with the
        state after step ``lengths - 1`` (the last step when None): the cell's fused ``sequence``
        where :func:`ncps.kernels.plan` allows, the reference loop otherwise. Padded outputs are
        left for the caller to mask."""
        cell = self.rnn_cell
        lstm = self.lstm if self.mixed_memory else None
        plan = kernels.plan(cell, mixed_memory=self.mixed_memory)
        if plan.fused:
            B, T = x.shape[:2]
            dt = _unit_timespans(B, T) if ts is None else ts
            states, cells = plan.kernel.sequence(cell, x, h, dt, lstm, c, **plan.hook_args())
            last = (lambda a: a[:, -1]) if lengths is None else (lambda a: _at(a, lengths - 1))
            return cell.readout(states), last(states), (None if cells is None else last(cells))
        if ts is not None:  # the reference multiplies with Δt: in the compute dtype (README "Precision")
            ts = _dtypes.cast(ts, _dtypes.compute_dtype(x, h, _dtypes.model_dtype(cell)))
        outputs = []
        for t in range(x.shape[1]):
            x_t = x[:, t]
            h_new, c_new = lstm(x_t, (h, c)) if lstm is not None else (h, c)
            h_new = cell.step(x_t, h_new, 1.0 if ts is None else ts[:, t : t + 1])
            if lengths is None:
                h, c = h_new, c_new
            else:  # sequences that ended before t keep their state
                keep = (t < lengths)[:, None]
                h = mx.where(keep, h_new, h)
                c = None if c is None else mx.where(keep, c_new, c)
            outputs.append(cell.readout(h))
        return mx.stack(outputs, axis=1), h, c

    def _run(
        self,
        x: mx.array,
        state: Any,
        ts: mx.array | None,
        lengths: mx.array | None = None,
        dtype: mx.Dtype | None = None,
    ):
        """Batch-first ``x`` (padding sanitized) → ``(outputs (B, T, ·) or (B, ·), final state)``
        for one direction."""
        B, T = x.shape[:2]
        h, c = self._initial_state(state, B, x, dtype)
        outputs, h, c = self._scan(x, h, c, ts, lengths)
        if not self.return_sequences:
            outputs = outputs[:, -1] if lengths is None else _at(outputs, lengths - 1)
        if self.proj_size is not None:
            outputs = self.fc(outputs)
        if lengths is not None and self.return_sequences:  # after the projection, whose bias is not 0
            outputs = mx.where((mx.arange(T)[None] < lengths[:, None])[..., None], outputs, 0.0)
        return outputs, ((h, c) if self.mixed_memory else h)

    def _initial_state(self, state: Any, B: int, x: mx.array, dtype: mx.Dtype | None = None):
        """``(h, c)`` from ``state``: zeros in the compute dtype of ``x`` and the parameters
        (``dtype``: the model's, when the caller has it) when None; integer and float64 states
        cast to the parameters' dtype (README "Precision")."""
        N = self.state_size
        dtype = dtype or _dtypes.model_dtype(self.rnn_cell)
        if state is None:
            zeros = mx.zeros((B, N), dtype=_dtypes.compute_dtype(x, dtype))
            return zeros, (zeros if self.mixed_memory else None)
        if self.mixed_memory:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                got = f"a {type(state).__name__} of {len(state)}" if isinstance(state, (tuple, list)) else None
                raise RuntimeError(
                    "Running a layer with mixed_memory=True requires a tuple (h0, c0) of two arrays "
                    f"(batch, state_size) as state, got {got or type(state).__name__}"
                )
            h, c = (_dtypes.as_compute_input(_checks.as_array(s, f"state[{i}]"), dtype) for i, s in enumerate(state))
            for name, s in (("state[0] (h0)", h), ("state[1] (c0)", c)):
                if s.shape != (B, N):
                    raise ValueError(f"{name} must have shape (batch, state_size) = ({B}, {N}), got {_shape(s)}")
            return h, c
        if isinstance(state, (tuple, list)):
            raise ValueError(
                "state must be an array of shape (batch, state_size); a tuple is only for mixed_memory=True"
            )
        h = _dtypes.as_compute_input(_checks.as_array(state, "state"), dtype)
        if h.shape != (B, N):
            raise ValueError(f"state must have shape (batch, state_size) = ({B}, {N}), got {_shape(h)}")
        return h, None

    # -- the layer ---------------------------------------------------------------------------
    @official_names(input="x", hx="state", hidden="state")
    def __call__(
        self,
        x: mx.array,
        state: Any = None,
        timespans: Timespans = None,
        lengths: Lengths = None,
        *,
        time_delta: Timespans = None,
    ):
        """Run the layer over a batch of sequences: ``layer(x, state=None, timespans=None,
        lengths=None) -> (output, state)``.

        Args:
            x: ``(B, T, input_size)`` when ``batch_first`` (the default), ``(T, B, input_size)``
                otherwise, or one unbatched sequence ``(T, input_size)``. NaN or infinite
                entries make the state of their sample NaN from that step on
                (docs/reliability.md); they never give plausible numbers.
            state: the initial state (zeros when None): ``(B, state_size)``; with
                ``mixed_memory=True`` a tuple ``(h0, c0)`` of two such arrays; with
                ``bidirectional=True`` a tuple ``(forward_state, backward_state)`` of those.
                Also accepted as ``hx=`` (the official ncps.torch name) and ``hidden=``
                (mlx.nn's name).
            timespans: the elapsed time Δt of every step (alias ``time_delta=``): None (1.0), a
                float >= 0, ``(B,)`` (one per sample), ``(B, T)`` or ``(B, T, 1)``
                (``(T, B)`` / ``(T, B, 1)`` when not batch-first; ``(T,)`` for unbatched ``x``).
                Δt = 0 leaves the state unchanged; a negative, NaN or infinite Δt in an array
                makes that sample's state NaN from that step on (a scalar one raises).
            lengths: None (every sequence fills all ``T`` steps) or integers ``(B,)`` with
                ``1 <= lengths[b] <= T`` (a single int for unbatched ``x``): sequence ``b``
                occupies its first ``lengths[b]`` steps; its padding is ignored, outputs zeros,
                and leaves its state unchanged.

        Returns:
            ``(output, state)``: ``output`` is ``(B, T, output_size)`` with ``return_sequences``
            (time-major when not batch-first), else the output of each sequence's last valid
            step ``(B, output_size)``; without a batch axis for unbatched ``x``; with
            ``merge_mode=None`` a tuple ``(forward, backward)``. ``state`` is the final state, in
            the structure ``state`` accepts.
        """
        if time_delta is not None:
            if timespans is not None:
                raise ValueError("pass either timespans or time_delta, not both")
            timespans = time_delta
        x = _checks.as_array(x, "x")
        _checks.real_array(x, "x")
        dtype = _dtypes.model_dtype(self.rnn_cell)  # once per call: it walks the parameter tree
        x = _checks.infinite_to_nan(_dtypes.as_compute_input(x, dtype))
        if x.ndim not in (2, 3):
            layout = "(B, T, F)" if self.batch_first else "(T, B, F)"
            raise ValueError(f"x must have shape {layout} or (T, F), got {_shape(x)}")
        if x.shape[-1] != self.input_size:
            raise ValueError(
                f"x must have {self.input_size} features in its last axis (input_size), got shape {_shape(x)}"
            )
        batched = x.ndim == 3
        if not batched:
            x = x[None]
            state = _map_state(state, lambda s: _checks.as_array(s, "state")[None])
        elif not self.batch_first:
            x = x.transpose(1, 0, 2)
        B, T = x.shape[:2]
        if B == 0 or T == 0:
            raise ValueError(f"x must have at least one sample and one time step, got batch B = {B} and time T = {T}")
        ts = _normalize_timespans(timespans, B, T, self.batch_first or not batched, batched)
        lengths = _normalize_lengths(lengths, B, T, batched)
        if lengths is not None:
            # Padding never reaches a cell (see the module docstring): inputs 0, elapsed time 0.
            valid = mx.arange(T)[None] < lengths[:, None]
            x = mx.where(valid[..., None], x, 0.0)
            ts = mx.where(valid, 1.0 if ts is None else ts, 0.0)

        if self.bidirectional:
            if state is not None and (not isinstance(state, (tuple, list)) or len(state) != 2):
                raise ValueError("a bidirectional layer takes state as a tuple (forward_state, backward_state)")
            fwd_state, bwd_state = (None, None) if state is None else state
            out_f, state_f = self._run(x, fwd_state, ts, lengths, dtype)
            if lengths is None:
                reverse = lambda a: a[:, ::-1]  # noqa: E731
            else:
                index = _reverse_within(lengths, T)
                reverse = lambda a: _take_time(a, index)  # noqa: E731
            back = self.backward_layer
            out_b, state_b = back._run(reverse(x), bwd_state, None if ts is None else reverse(ts), lengths)
            if self.return_sequences:
                out_b = reverse(out_b)
            else:
                out_b = out_b[:, -1] if lengths is None else _at(out_b, lengths - 1)
            output = _merge(out_f, out_b, self.merge_mode)
            state = (state_f, state_b)
        else:
            output, state = self._run(x, state, ts, lengths, dtype)

        if not batched:
            output = _map_output(output, lambda o: o[0])
            state = _map_state(state, lambda s: s[0])
        elif not self.batch_first and self.return_sequences:
            output = _map_output(output, lambda o: o.transpose(1, 0, 2))
        return output, state


def _map_output(output, fn):
    return tuple(fn(o) for o in output) if isinstance(output, tuple) else fn(output)


def _map_state(state, fn):
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(_map_state(s, fn) for s in state)
    return fn(state)


def _merge(a: mx.array, b: mx.array, mode: str | None):
    if mode == "concat":
        return mx.concatenate([a, b], axis=-1)
    if mode == "sum":
        return a + b
    if mode == "mul":
        return a * b
    if mode == "ave":
        return (a + b) / 2
    return a, b


def _cell_kwargs(cell: Cell) -> dict:
    """Constructor arguments that rebuild ``cell`` with fresh parameters."""
    return dict(cell.get_config())


class CfC(RNN):
    """A closed-form continuous-time (CfC) sequence layer.

    ``units`` is an int (a dense :class:`CfCCell` with a backbone MLP) or a wiring (a sparse
    :class:`WiredCfCCell`; backbone arguments are then an error). ``CfC(cell=CfCCell(...), ...)``
    wraps a given cell. See :class:`RNN` for the call and the sequence options and
    :mod:`ncps.cells.cfc` for the math.
    """

    def __init__(
        self,
        input_size: int | None = None,
        units: int | Wiring | None = None,
        proj_size: int | None = None,
        return_sequences: bool = True,
        batch_first: bool = True,
        mixed_memory: bool = False,
        mode: str = "default",
        activation: str = "lecun_tanh",
        backbone_units: int | list | None = None,
        backbone_layers: int | None = None,
        backbone_dropout: float | None = None,
        bidirectional: bool = False,
        merge_mode: str | None = "concat",
        *,
        cell: Cell | None = None,
    ):
        if cell is None:
            if isinstance(input_size, Wiring):
                raise TypeError("CfC(input_size, units): input_size is an int; pass the wiring as units")
            if units is None:
                raise ValueError("CfC needs units (an int or a Wiring) or cell=")
            if input_size is not None:
                input_size = _checks.integer(input_size, "input_size")
            if isinstance(units, Wiring):
                for name, value in (
                    ("backbone_units", backbone_units),
                    ("backbone_layers", backbone_layers),
                    ("backbone_dropout", backbone_dropout),
                ):
                    if value is not None:
                        raise ValueError(f"Cannot use {name} in wired mode (units is a Wiring)")
                cell = WiredCfCCell(input_size, units, mode)
            else:
                if input_size is None:
                    raise ValueError("CfC needs input_size (the number of input features)")
                units = _checks.integer(units, "units")
                cell = CfCCell(
                    input_size,
                    units,
                    mode,
                    activation,
                    128 if backbone_units is None else backbone_units,
                    backbone_layers,
                    0.0 if backbone_dropout is None else backbone_dropout,
                )
        elif not isinstance(cell, (CfCCell, WiredCfCCell)):
            raise TypeError(f"cell must be a CfCCell or WiredCfCCell, got {type(cell).__name__}")
        super().__init__(cell, return_sequences, batch_first, mixed_memory, proj_size, bidirectional, merge_mode)


class LTC(RNN):
    """A liquid time-constant (LTC) sequence layer.

    ``units`` is an int (``FullyConnected(units)``: every neuron is a motor output) or a wiring.
    ``LTC(cell=LTCCell(...), ...)`` wraps a given cell. Note the official default of
    ``implicit_param_constraints=True`` here (softplus), unlike :class:`LTCCell`. See
    :class:`RNN` for the call and :mod:`ncps.cells.ltc` for the math.
    """

    def __init__(
        self,
        input_size: int | None = None,
        units: int | Wiring | None = None,
        return_sequences: bool = True,
        batch_first: bool = True,
        mixed_memory: bool = False,
        input_mapping: str = "affine",
        output_mapping: str = "affine",
        ode_unfolds: int = 6,
        epsilon: float = 1e-8,
        implicit_param_constraints: bool = True,
        bidirectional: bool = False,
        merge_mode: str | None = "concat",
        *,
        cell: LTCCell | None = None,
    ):
        if cell is None:
            if units is None:
                raise ValueError("LTC needs units (an int or a Wiring) or cell=")
            if input_size is None and not (isinstance(units, Wiring) and units.is_built()):
                raise ValueError("LTC needs input_size (the number of input features) unless the wiring is built")
            if input_size is not None:
                input_size = _checks.integer(input_size, "input_size")
            wiring = units if isinstance(units, Wiring) else FullyConnected(_checks.integer(units, "units"))
            cell = LTCCell(
                wiring, input_size, input_mapping, output_mapping, ode_unfolds, epsilon, implicit_param_constraints
            )
        elif not isinstance(cell, LTCCell):
            raise TypeError(f"cell must be an LTCCell, got {type(cell).__name__}")
        super().__init__(cell, return_sequences, batch_first, mixed_memory, None, bidirectional, merge_mode)


def _sizes(layer: str, input_size: int | None, units: int | None) -> tuple[int, int]:
    """``input_size`` and ``units`` of a layer built without ``cell=`` (both required), as ints."""
    if input_size is None or units is None:
        raise ValueError(f"{layer} needs input_size and units (or cell=)")
    return _checks.integer(input_size, "input_size"), _checks.integer(units, "units")


class CTRNN(RNN):
    """A continuous-time RNN sequence layer (:class:`CTRNNCell`); see :class:`RNN` for the call."""

    def __init__(
        self,
        input_size: int | None = None,
        units: int | None = None,
        return_sequences: bool = True,
        batch_first: bool = True,
        mixed_memory: bool = False,
        activation: str = "tanh",
        ode_unfolds: int = 6,
        bidirectional: bool = False,
        merge_mode: str | None = "concat",
        *,
        cell: CTRNNCell | None = None,
    ):
        if cell is None:
            input_size, units = _sizes("CTRNN", input_size, units)
            cell = CTRNNCell(input_size, units, activation, ode_unfolds)
        super().__init__(cell, return_sequences, batch_first, mixed_memory, None, bidirectional, merge_mode)


class CTGRU(RNN):
    """A continuous-time GRU sequence layer (:class:`CTGRUCell`); see :class:`RNN` for the call.

    Its state is the flattened multi-timescale traces, ``(B, units * num_timescales)``.
    """

    def __init__(
        self,
        input_size: int | None = None,
        units: int | None = None,
        return_sequences: bool = True,
        batch_first: bool = True,
        mixed_memory: bool = False,
        num_timescales: int = 8,
        bidirectional: bool = False,
        merge_mode: str | None = "concat",
        *,
        cell: CTGRUCell | None = None,
    ):
        if cell is None:
            input_size, units = _sizes("CTGRU", input_size, units)
            cell = CTGRUCell(input_size, units, num_timescales)
        if mixed_memory:
            raise ValueError("mixed_memory needs a cell whose state is its output; CTGRU's state is its traces")
        super().__init__(cell, return_sequences, batch_first, mixed_memory, None, bidirectional, merge_mode)


# The layers the fronts (``ncps.sklearn``, ``LiquidNeuralNetwork``) build by ``model_type`` name.
MODEL_TYPES = {"CfC": CfC, "LTC": LTC}
