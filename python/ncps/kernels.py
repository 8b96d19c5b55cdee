"""Fused C++ kernels or the pure-MLX reference path: the one place that decides.

Every layer call and every cell step asks :func:`plan` once (the Python twin of an MLX
primitive's ``use_fallback(stream)``); nothing else decides. The answer depends on the mode:

- ``"auto"`` (default): the fused primitive where one exists for the configuration and device,
  the reference implementation otherwise. Never raises.
- ``"fused"``: the fused primitive, or a ``NotImplementedError`` saying why none applies.
- ``"reference"``: always the pure-MLX reference implementation (the oracle in tests).

The device of the call's stream picks the backend: on the CPU the C++ primitive (``"cpu"``); on a
GPU the cell's GPU kernel (``"metal"`` or ``"cuda"``, :mod:`ncps.backends.gpu`) where one covers the call,
else the C++ primitive on the CPU stream (Apple's unified memory makes that copy-free), else the
reference path. ``"fused"`` mode raises only when neither a GPU kernel nor the CPU primitive covers
the call.

The mode is set with :func:`set_mode`, temporarily with ``with use("reference"): ...``, or at
import time with the environment variable ``NCPS_KERNELS``.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import mlx.core as mx

MODES = ("auto", "fused", "reference")

try:  # the extension is optional: without it every layer runs on the reference path
    from . import _ext  # type: ignore[attr-defined]

    _EXT_ERROR: str | None = None
except Exception as exc:  # ImportError, or an ABI mismatch surfacing as another error
    _ext = None
    _EXT_ERROR = f"{type(exc).__name__}: {exc}"


def _mode_from_env() -> str:
    mode = os.environ.get("NCPS_KERNELS", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"NCPS_KERNELS must be one of {MODES}, got {mode!r}")
    return mode


class _ThreadState(threading.local):
    # None: this thread has set no mode of its own. (A class default instead of getattr with a
    # default: a missing attribute raises internally, which cost ~0.3 µs per streaming step.)
    mode: str | None = None


_state = _ThreadState()
_default_mode = _mode_from_env()


def get_mode() -> str:
    """The kernel mode in force on this thread: ``"auto"``, ``"fused"`` or ``"reference"``."""
    mode = _state.mode
    return _default_mode if mode is None else mode


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
    previous = _state.mode
    _state.mode = mode
    try:
        yield
    finally:
        _state.mode = previous


def extension_available() -> bool:
    """True when the compiled extension ``ncps._ext`` loaded."""
    return _ext is not None


@dataclass(frozen=True)
class Plan:
    """How one call runs: on ``backend`` ``"cpu"`` (the fused C++ primitive), ``"metal"`` or
    ``"cuda"`` (a GPU kernel of :mod:`ncps.backends.gpu`; ``"emulate"`` in tests), through the hook module
    ``kernel``, on ``stream`` (None: the call's own; ``mx.cpu`` when the CPU primitive serves a call
    on a GPU device); or ``"reference"`` (pure MLX). ``reason`` says why the preferred kernel does
    not run (None when it does, or when the mode asked for the reference path)."""

    backend: str
    kernel: Any = None
    reason: str | None = None
    stream: Any = field(default=None, compare=False)  # MLX's Stream/Device refuse == None

    @property
    def fused(self) -> bool:
        return self.backend != "reference"

    def hook_args(self) -> dict:
        """The keyword arguments every fused hook takes: ``backend`` and ``stream``."""
        return {"backend": self.backend, "stream": self.stream}


REFERENCE = Plan("reference")


def _device_type(stream: None | mx.Stream | mx.Device | mx.DeviceType) -> mx.DeviceType:
    """``mx.cpu`` or ``mx.gpu``: the kind of device ``stream`` (a stream, device or device type;
    the default device when None) runs on."""
    device = mx.default_device() if stream is None else stream
    device = device.device if isinstance(device, mx.Stream) else device
    return device.type if isinstance(device, mx.Device) else device


def _metal_why_not() -> str | None:
    """None when MLX has a Metal device, else why not."""
    if mx.metal.is_available():
        return None
    return "no Metal device" + ("" if sys.platform == "darwin" else f" (platform {sys.platform})")


def _cuda_why_not() -> str | None:
    """None when MLX has a CUDA device, else why not."""
    cuda = getattr(mx, "cuda", None)
    if cuda is not None and cuda.is_available():
        return None
    for dist in ("mlx-cuda-13", "mlx-cuda-12", "mlx-cuda"):
        try:
            importlib.metadata.version(dist)
            return "no CUDA device"
        except importlib.metadata.PackageNotFoundError:
            pass
    return "mlx built without CUDA (install mlx[cuda12] or mlx[cuda13])"


# Whether MLX has a GPU here (fixed for the process): without one every call runs on the CPU, and
# a streaming step need not ask for the default device.
_HAS_GPU = _metal_why_not() is None or _cuda_why_not() is None


def prepared_step_allowed() -> bool:
    """Whether a cell's prepared CPU streaming step (``Cell.infer``'s fast path) may run now: the
    mode is not ``"reference"`` and the call is on the CPU. (Everything else :func:`plan` weighs
    is the cell's own configuration, which the prepared step guards itself.) Cheap: it runs at
    every step of a control loop."""
    if get_mode() == "reference":
        return False
    return not _HAS_GPU or _device_type(None) == mx.cpu


def _gpu_backend() -> tuple[str | None, str | None]:
    """``("metal" | "cuda", None)``: the GPU backend MLX runs here; ``(None, reason)`` without one."""
    why = {"metal": _metal_why_not(), "cuda": _cuda_why_not()}
    for name, reason in why.items():
        if reason is None:
            return name, None
    return None, "; ".join(f"{name}: {reason}" for name, reason in why.items())


def gpu_kernels_enabled() -> bool:
    """Whether calls on a GPU device may run the GPU kernels of ``kernels/``.

    They have been checked by emulation (every threadgroup's threads concurrently, ThreadSanitizer),
    compiled for CUDA and front-end checked for Metal, but never run on GPU hardware; until they
    have been, a GPU call runs the validated CPU primitive on the CPU stream (free of copies on
    Apple's unified memory) unless the environment variable ``NCPS_GPU_KERNELS=1`` asks for them.
    """
    return os.environ.get("NCPS_GPU_KERNELS", "").strip() == "1"


def _backend_for(device: mx.DeviceType) -> tuple[str | None, str | None]:
    """The kernel backend serving ``device``, or None and the reason there is none."""
    if device == mx.cpu:
        return "cpu", None
    backend, why_not = _gpu_backend()
    if backend is not None and not gpu_kernels_enabled():
        return None, "the GPU kernels are not yet validated on GPU hardware (NCPS_GPU_KERNELS=1 enables them)"
    return backend, why_not


def _cpu_why_not(cell: Any, mixed_memory: bool) -> str | None:
    """None when the cell's C++ primitive covers the call, else why not."""
    if getattr(cell, "fused", None) is None:
        return f"no fused kernel is implemented for {type(cell).__name__}"
    if _ext is None:  # the root cause, whatever the cell would say
        return f"the extension ncps._ext is not loaded ({_EXT_ERROR})"
    return cell.fused_why_not(mixed_memory)


def _gpu_why_not(cell: Any, mixed_memory: bool) -> str | None:
    """None when the cell's GPU kernel covers the call, else why not."""
    gpu = getattr(cell, "gpu_fused", None)
    if gpu is None:
        return f"no GPU kernel is implemented for {type(cell).__name__}"
    return gpu.why_not(cell, mixed_memory)


def _kernel_name(cell: Any, mixed_memory: bool) -> str:
    kernel = getattr(cell, "fused", None)
    return kernel.kernel_name(mixed_memory) if kernel is not None else type(cell).__name__


_CPU_PLANS: dict = {}


def _cpu_plan(kernel: Any) -> Plan:
    """``Plan("cpu", kernel)`` on the call's own stream, built once per hook module (a frozen
    dataclass costs about a microsecond to build, at every layer call and cell step)."""
    cached = _CPU_PLANS.get(kernel)
    if cached is None:
        cached = _CPU_PLANS[kernel] = Plan("cpu", kernel)
    return cached


def plan(cell: Any, *, mixed_memory: bool = False, stream: None | mx.Stream | mx.Device = None) -> Plan:
    """Decide how a call of ``cell`` (a step, or a layer's sequence) runs on ``stream``'s device.

    ``cell.fused`` is the cell's C++ hook module and ``cell.gpu_fused`` its GPU hook module (None
    when it has none); each module's ``why_not(cell, mixed_memory)`` says why it does not cover this
    configuration (None when it does). On a GPU device the GPU kernel is preferred, then the CPU
    primitive on the CPU stream. In ``"fused"`` mode a call that no kernel covers raises
    ``NotImplementedError`` with the reasons; ``"auto"`` falls back to the reference path.
    """
    if not callable(getattr(cell, "fused_why_not", None)):
        raise TypeError(f"plan takes an ncps cell (ncps.cells.Cell), got {type(cell).__name__}")
    mode = get_mode()
    if mode == "reference":
        return REFERENCE
    cpu_why = _cpu_why_not(cell, mixed_memory)
    device = _device_type(stream)
    backend, why_not = _backend_for(device)
    if device == mx.cpu:
        if cpu_why is None:
            return _cpu_plan(cell.fused) if stream is None else Plan("cpu", cell.fused, stream=stream)
        why_not = cpu_why
    else:
        if backend is not None:
            why_not = _gpu_why_not(cell, mixed_memory)
            if why_not is None:
                return Plan(
                    backend, cell.gpu_fused, stream=stream if isinstance(stream, (mx.Stream, mx.Device)) else None
                )
        if cpu_why is None:
            return Plan(
                "cpu", cell.fused, f"no GPU kernel: {why_not}; the CPU primitive runs on the CPU stream", mx.cpu
            )
        why_not = f"{cpu_why} (GPU: {why_not})"
    if mode == "fused":
        raise NotImplementedError(f"No fused kernel '{_kernel_name(cell, mixed_memory)}' for this call: {why_not}")
    return Plan("reference", None, why_not)


def clear_cache() -> int:
    """``mx.clear_cache()`` and the fused kernels' idle workspace buffers: those come from a pool
    of their own (so that a large batch does not fault its workspace in afresh on every call,
    MLX's cache keeping at most 32 MiB), which ``mx.clear_cache()`` does not reach. Returns the
    bytes the pool released."""
    mx.clear_cache()
    return int(_ext.release_workspaces()) if _ext is not None else 0


def kernel_backends() -> dict[str, str | None]:
    """Each kernel backend (``cpu``, ``metal``, ``cuda``) and None when its kernels can run here,
    else why they cannot."""
    return {
        "cpu": None if _ext is not None else f"the extension ncps._ext is not loaded ({_EXT_ERROR})",
        "metal": _metal_why_not(),
        "cuda": _cuda_why_not(),
    }


def info() -> dict[str, Any]:
    """What the extension is and what it can do: a plain dict for logs and bug reports.

    ``simd`` is the kernel target running (``"avx512"``, ``"avx2"`` or ``"baseline"`` on x86-64,
    chosen at import from the CPU or forced with the environment variable ``NCPS_ISA``;
    ``"neon"`` on aarch64; ``"native"`` for an ``NCPS_NATIVE=ON`` build) and ``simd_compiled``
    every target compiled into the extension, best first. A forced target that is not compiled
    in or that the CPU lacks leaves the extension unloaded, with the reason in ``reason``.
    ``bf16_rounding`` says how the kernels round float32 to bfloat16: ``"avx512_bf16"``
    (VCVTNEPS2BF16: subnormals to zero) or ``"integer"`` (round to nearest even, like MLX);
    ``NCPS_BF16_INSN=0`` forces the latter.
    """
    out: dict[str, Any] = {
        "extension_loaded": _ext is not None,
        "mode": get_mode(),
        "mlx_version_runtime": mx.__version__,
        "kernel_backends": kernel_backends(),
        "gpu_kernels_enabled": gpu_kernels_enabled(),
    }
    if _ext is None:
        out.update(reason=_EXT_ERROR, backends=[], mlx_version_built=None, simd=None, simd_compiled=[], threads=1)
        return out
    built = dict(_ext.build_info())
    out.update(
        reason=None,
        backends=built.pop("backends").split(","),
        # the kernel target running (``simd``: chosen from the CPU at import, or NCPS_ISA) and all
        # compiled in, best first (e.g. ["avx512", "avx2", "baseline"] on x86-64)
        simd_compiled=built.pop("simd_compiled").split(","),
        mlx_version_built=built.pop("mlx_version"),
        threads=int(_ext.max_threads()),
        bf16_rounding="avx512_bf16" if _ext.bf16_instructions() else "integer",
        **built,
    )
    out["kernels"] = sorted(
        n for n in dir(_ext) if not n.startswith("_") and n not in ("build_info", "max_threads", "bf16_instructions")
    )
    return out
