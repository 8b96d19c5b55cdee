"""Fused C++ kernels or the pure-MLX reference path: the one place that decides.

Every layer asks :func:`select` whether a fused primitive covers its call. The answer depends on
the mode:

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
from typing import Any, Iterator, Optional

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
    """Set the kernel mode for this thread (and the default for new threads)."""
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


def select(kernel: str, why_not: Optional[str]) -> bool:
    """Decide whether a call runs fused.

    ``kernel`` names the fused primitive; ``why_not`` is None when it covers this call, otherwise
    the reason it does not. Returns True for the fused path, False for the reference path, and
    raises in ``"fused"`` mode when the fused path is impossible.
    """
    mode = get_mode()
    if mode == "reference":
        return False
    if _ext is None:  # the root cause, whatever the cell would say
        why_not = f"the extension ncps._ext is not loaded ({_EXT_ERROR})"
    if why_not is None and mx.default_device() != mx.cpu:
        why_not = "the fused kernels run on the CPU stream only (no GPU kernel is built yet)"
    if why_not is None:
        return True
    if mode == "fused":
        raise NotImplementedError(f"No fused kernel '{kernel}' for this call: {why_not}")
    return False


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
