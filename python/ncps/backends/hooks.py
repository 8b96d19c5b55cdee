"""The fused-kernel hook interface: what a backend module provides so that a cell runs on its kernels.

A cell names its hook modules with two class attributes: ``fused`` (the CPU backend,
:mod:`ncps.backends.cpu`) and ``gpu_fused`` (the GPU backend, :mod:`ncps.backends.gpu`), None where
it has none. :func:`ncps.kernels.plan` asks their ``why_not`` once per call and hands the chosen
module to the caller as ``Plan.kernel``; the layer (:class:`ncps.layers.RNN`) then calls its
``sequence`` and a cell (:meth:`ncps.cells.base.Cell.__call__` / ``infer``) its ``step``, ``infer``
or ``prepared_step``. Each hook module is a plain module that satisfies :class:`Hooks` (CPU modules
also :class:`StreamingHooks`); ``tests/kernels/test_hooks.py`` checks every one against these
classes (names, signatures, constants).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import mlx.core as mx

__all__ = ["Hooks", "StreamingHooks", "PreparedStep"]


@runtime_checkable
class Hooks(Protocol):
    """The hooks every backend module provides (a module, so ``self`` below is the module).

    Shapes: ``B`` batch, ``T`` steps, ``I = cell.input_size`` (the layer's input, before any input
    mapping: an LTC hook maps it itself), ``N = cell.state_size``. Every array argument was checked
    by the caller (the layer or :meth:`ncps.cells.base.Cell.check_inputs`); the hooks do not check
    again. Results are those of the cell's reference path (float32: outputs within 1e-5, gradients
    within 1e-4 relative), in the dtype the reference path returns, and differentiable with
    ``mx.grad`` / ``mx.compile`` like any MLX op.

    - ``KERNEL: str``: the name of the kernel that runs a sequence without mixed memory (what
      ``kernel_name(False)`` returns).
    - ``kernel_name(mixed_memory=False) -> str``: the kernel that runs a layer with or without the
      mixed-memory LSTM, named in :func:`ncps.kernels.plan`'s errors.
    - ``why_not(cell, mixed_memory=False) -> str | None``: None when this backend's kernels cover
      ``cell`` inside a layer with ``mixed_memory``, else the reason they do not (shown to the user
      in ``Plan.reason`` and in ``"fused"`` mode's ``NotImplementedError``). Cheap: called per call.
    - ``sequence(cell, x, h0, dt, lstm=None, c0=None, *, backend, stream=None) -> (states, cells)``:
      a whole sequence. ``x`` ``(B, T, I)``, ``h0`` ``(B, N)``, ``dt`` ``(B, T)`` elapsed times;
      ``lstm`` the mixed-memory :class:`~ncps.LSTMCell` (``I`` inputs, ``N`` units) that runs before
      every step from cell state ``c0`` ``(B, N)`` (zeros if None), or None. Returns ``states``
      ``(B, T, N)``, the state after every step, and ``cells`` ``(B, T, N)``, the LSTM's cell state
      after every step (None without ``lstm``).
    - ``step(cell, x, h, ts, *, backend, stream=None) -> new_state``: one step (a cell called on one
      step, e.g. a control loop under ``mx.grad``). ``x`` ``(B, I)``, ``h`` ``(B, N)``, ``ts`` a
      float or ``(B, 1)`` float32; returns ``(B, N)``.

    ``backend`` and ``stream`` come from the plan (:meth:`ncps.kernels.Plan.hook_args`):
    ``backend`` is ``"cpu"``, ``"metal"``, ``"cuda"`` or ``"emulate"`` (the GPU kernels' C++
    emulation, in tests); the kernels run on ``stream`` (None: the default stream).

    Variable lengths (``lengths=`` of a layer) need nothing from a hook. The layer sanitizes the
    padding once, before any path runs: the padded steps get zero inputs and ``dt = 0`` (no time
    passes), so ``sequence`` sees an ordinary sequence. It then takes each sequence's final state
    (and LSTM cell) at its own last step from the per-step outputs and masks the padded outputs;
    a causal run's valid steps do not depend on the steps after them. So a kernel must only keep
    the padded steps finite (their cotangents are zero); it may skip them: ``dt = 0`` leaves an
    LTC state unchanged, and the plain LTC primitive skips every group of samples that all have
    ``dt = 0``.
    """

    KERNEL: str

    def kernel_name(self, mixed_memory: bool = False) -> str: ...

    def why_not(self, cell: Any, mixed_memory: bool = False) -> str | None: ...

    def sequence(
        self,
        cell: Any,
        x: mx.array,
        h0: mx.array,
        dt: mx.array,
        lstm: Any = None,
        c0: mx.array | None = None,
        *,
        backend: str,
        stream: Any = None,
    ) -> tuple[mx.array, mx.array | None]: ...

    def step(
        self, cell: Any, x: mx.array, h: mx.array, ts: float | mx.array, *, backend: str, stream: Any = None
    ) -> mx.array: ...


class PreparedStep(Protocol):
    """A cell's streaming step prepared once from its current parameters (``ncps._ext.CfCStep``,
    ``ncps._ext.LTCStep``): parameters gathered, validated and converted, synapse lists built.

    - ``step(x, h, ts) -> (output, state) | None``: what :meth:`StreamingHooks.infer` returns, or
      None when the cell changed since it was prepared or an argument is not one it takes (the
      caller then runs the checked path, which raises for bad input).
    - ``valid() -> bool``: False once any array or option of the cell was replaced (it compares
      the identities :func:`ncps.backends.cpu.streaming.module_edges` lists).
    """

    def step(self, x: Any, h: Any, ts: Any) -> tuple[mx.array, mx.array] | None: ...

    def valid(self) -> bool: ...


@runtime_checkable
class StreamingHooks(Hooks, Protocol):
    """:class:`Hooks` plus the immediate forms :meth:`ncps.cells.base.Cell.infer` uses (the CPU
    backend's modules), computed on the calling thread with no graph node and no gradient.

    - ``infer(cell, x, h, ts) -> (output, state)``: one step, evaluated; ``x``, ``h``, ``ts`` as
      for ``step``; ``output`` ``(B, cell.output_size)``, ``state`` ``(B, N)``.
    - ``prepared_step(cell) -> PreparedStep``: the step of ``infer`` prepared once
      (:class:`PreparedStep`); ``Cell.infer`` keeps one per cell while its parameters stay the same.
    """

    def infer(self, cell: Any, x: mx.array, h: mx.array, ts: float | mx.array) -> tuple[mx.array, mx.array]: ...

    def prepared_step(self, cell: Any) -> PreparedStep: ...
