"""Fused C++ kernels or the pure-MLX reference path: the one place that decides.

Every layer call and every cell step asks :func:`plan` once (the Python twin of an MLX
primitive's ``use_fallback(stream)``); nothing else decides. The answer depends on the mode:

- ``"auto"`` (default): the fused primitive where one exists for the configuration and device,
  the reference implementation otherwise. Never raises.
- ``"fused"``: the fused primitive, or a ``NotImplementedError`` saying why none applies.
- ``"reference"``: always the pure-MLX reference implementation (the oracle in tests).

The mode is set with :func:`set_mode`, temporarily with ``with use("reference"): ...``, or at
import time with the environment variable ``NCPS_KERNELS``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Union

import mlx.core as mx

MODES = ("auto", "fused", "reference")

try:  # the extension is optional: without it every layer runs on the reference path
    from . import _ext  # type: ignore[attr-defined]

    _EXT_ERROR: Optional[str] = None
except Exception as exc:  # ImportError, or an ABI mismatch surfacing as another error
    _ext = None
    _EXT_ERROR = f"{type(exc).__name__}: {exc}"


def _mode_from_env() -> str:
    mode = os.environ.get("NCPS_KERNELS", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"NCPS_KERNELS must be one of {MODES}, got {mode!r}")
    return mode


_state = threading.local()
_default_mode = _mode_from_env()


def get_mode() -> str:
    """The kernel mode in force on this thread: ``"auto"``, ``"fused"`` or ``"reference"``."""
    return getattr(_state, "mode", _default_mode)


def set_mode(mode: str) -> None:
    """Set the kernel mode for the calling thread, and make it the default of threads that have
    not set their own (a ``with use(...)`` block still overrides it inside the block)."""
    global _default_mode
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    _state.mode = mode
    _default_mode = mode


@contextlib.contextmanager
def use(mode: str) -> Iterator[None]:
    """Run a block in the given kernel mode: ``with ncps.kernels.use("reference"): ...``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    previous = getattr(_state, "mode", None)
    _state.mode = mode
    try:
        yield
    finally:
        if previous is None:
            del _state.mode
        else:
            _state.mode = previous


def extension_available() -> bool:
    """True when the compiled extension ``ncps._ext`` loaded."""
    return _ext is not None


@dataclass(frozen=True)
class Plan:
    """How one call runs: on ``backend`` ``"cpu"`` (the fused C++ primitive, through the cell's
    ``fused`` module ``kernel``) or ``"reference"`` (pure MLX; ``reason`` says why not fused,
    None when the mode asked for the reference path)."""

    backend: str
    kernel: Any = None
    reason: Optional[str] = None

    @property
    def fused(self) -> bool:
        return self.backend != "reference"


REFERENCE = Plan("reference")


def _device_type(stream: Union[None, mx.Stream, mx.Device, mx.DeviceType]) -> mx.DeviceType:
    """``mx.cpu`` or ``mx.gpu``: the kind of device ``stream`` (a stream, device or device type;
    the default device when None) runs on."""
    device = mx.default_device() if stream is None else stream
    device = device.device if isinstance(device, mx.Stream) else device
    return device.type if isinstance(device, mx.Device) else device


def _backend_for(device: mx.DeviceType) -> tuple[Optional[str], Optional[str]]:
    """The fused backend serving ``device``, or None and the reason there is none.

    A GPU backend slots in here: return ``("gpu", None)`` for ``mx.gpu`` once its kernels are
    built (the cells' ``fused`` modules then dispatch on ``Plan.backend``).
    """
    if device == mx.cpu:
        return "cpu", None
    return None, "the fused kernels run on the CPU stream only (no GPU kernel is built yet)"


def plan(cell: Any, *, mixed_memory: bool = False, stream: Union[None, mx.Stream, mx.Device] = None) -> Plan:
    """Decide how a call of ``cell`` (a step, or a layer's sequence) runs.

    ``cell.fused`` is the cell's fused-kernel module (None when it has none) and
    ``cell.fused_why_not(mixed_memory)`` says why that kernel does not cover this configuration
    (None when it does). In ``"fused"`` mode an impossible fused path raises
    ``NotImplementedError`` with the reason; ``"auto"`` falls back to the reference path.
    """
    if not callable(getattr(cell, "fused_why_not", None)):
        raise TypeError(f"plan takes an ncps cell (ncps.cells.Cell), got {type(cell).__name__}")
    mode = get_mode()
    if mode == "reference":
        return REFERENCE
    kernel = getattr(cell, "fused", None)
    backend, why_not = None, None
    if kernel is None:
        why_not = f"no fused kernel is implemented for {type(cell).__name__}"
    elif _ext is None:  # the root cause, whatever the cell would say
        why_not = f"the extension ncps._ext is not loaded ({_EXT_ERROR})"
    else:
        why_not = cell.fused_why_not(mixed_memory)
        if why_not is None:
            backend, why_not = _backend_for(_device_type(stream))
    if why_not is None:
        return Plan(backend, kernel)
    if mode == "fused":
        name = kernel.kernel_name(mixed_memory) if kernel is not None else type(cell).__name__
        raise NotImplementedError(f"No fused kernel '{name}' for this call: {why_not}")
    return Plan("reference", None, why_not)


def info() -> dict[str, Any]:
    """What the extension is and what it can do: a plain dict for logs and bug reports."""
    out: dict[str, Any] = {
        "extension_loaded": _ext is not None,
        "mode": get_mode(),
        "mlx_version_runtime": mx.__version__,
    }
    if _ext is None:
        out.update(
            reason=_EXT_ERROR,
            backends=[],
            mlx_version_built=None,
            simd=None,
            threads=1,
        )
        return out
    built = dict(_ext.build_info())
    out.update(
        reason=None,
        backends=built.pop("backends").split(","),
        mlx_version_built=built.pop("mlx_version"),
        threads=int(_ext.max_threads()),
        **built,
    )
    out["kernels"] = sorted(n for n in dir(_ext) if not n.startswith("_") and n not in ("build_info", "max_threads"))
    return out
