"""Launching dialect kernels through MLX (Metal or CUDA) or the C++ emulation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache

import mlx.core as mx
import numpy as np

from ._source import BACKENDS, IO_TYPES, KernelSpec, assemble, io_type

# Threadgroup memory a kernel may use. Metal: static threadgroup arrays, 32 KiB guaranteed. CUDA:
# the arrays come from dynamic shared memory (mx.fast.cuda_kernel's shared_memory=), up to the
# device's opt-in maximum per block (cudaDevAttrMaxSharedMemoryPerBlockOptin), by compute capability.
TG_MEMORY_LIMIT = 32 * 1024
CUDA_SHARED_OPTIN = {(7, 0): 98304, (7, 5): 65536, (8, 0): 166912, (8, 6): 101376, (8, 7): 166912, (8, 9): 101376}
CUDA_SHARED_OPTIN |= {(9, 0): 232448, (10, 0): 232448, (10, 3): 232448, (12, 0): 101376, (12, 1): 101376}
CUDA_SHARED_DEFAULT = 48 * 1024  # a device not in the table: the limit without opt-in
# The "emulate" back-end stands in for CUDA on an H100 / H200 (sm_90), so tests cover the large-N layout.
EMULATE_SHARED = CUDA_SHARED_OPTIN[(9, 0)]
# Threads per group: ptxas gives the kernels 48-134 registers per thread (sm_80 / sm_90, no launch
# bounds) and may use up to 255; CUDA has 65536 registers per block, so 256 threads always fit
# (255 x 256 = 65280) and 512 need not (134 x 512 = 68608).
MAX_THREADS = 256
# Indices in the kernel bodies are 32-bit ints: every array a kernel touches must have fewer elements.
INDEX_LIMIT = 2**31
# The kernels' storage types of per-sample arrays (``IOT``), by name (the keys of _source.IO_TYPES).
IO_DTYPES = {name: getattr(mx, name) for name in IO_TYPES}


# The performance design of kernels/README.md ("Performance design for hardware"), unmeasured on
# hardware: R batch rows per threadgroup in all four kernels (each weight read applied to R rows),
# and in the forwards weight matrices transposed by the launch layer once per call (coalesced
# reads) and (CfC) the weights staged once in threadgroup memory. The defaults reproduce the
# one-row-per-group kernels; perf_options() changes them (the hardware timing run does).
MAX_ROWS = 8
_PERF = {"rows_per_group": 1, "transposed_weights": False, "stage_weights": False}


@contextmanager
def perf_options(**options) -> Iterator[None]:
    """Within the block, calls of ``cfc_sequence_gpu`` / ``ltc_sequence_gpu`` (the layers' GPU
    hooks included) that do not name them use these defaults: ``rows_per_group`` (1..MAX_ROWS,
    forward and backward), ``transposed_weights`` (forward) and ``stage_weights`` (CfC forward)."""
    unknown = set(options) - set(_PERF)
    if unknown:
        raise ValueError(f"perf_options: unknown option(s) {sorted(unknown)}; known: {sorted(_PERF)}")
    saved = dict(_PERF)
    _PERF.update(options)
    try:
        yield
    finally:
        _PERF.clear()
        _PERF.update(saved)


def perf(op: str, rows_per_group=None, transposed_weights=None, stage_weights=None) -> tuple[int, int, int]:
    """``(R, WT, WTG)`` template constants: each argument, or its :func:`perf_options` default;
    ``R`` must be in ``1..MAX_ROWS`` (a ValueError names the bound)."""
    R = int(_PERF["rows_per_group"] if rows_per_group is None else rows_per_group)
    if not 1 <= R <= MAX_ROWS:
        raise ValueError(f"{op}: rows_per_group must be in 1..{MAX_ROWS}, got {R}")
    wt = _PERF["transposed_weights"] if transposed_weights is None else transposed_weights
    wtg = _PERF["stage_weights"] if stage_weights is None else stage_weights
    return R, int(bool(wt)), int(bool(wtg))


def groups_for(B: int, R: int) -> int:
    """Threadgroups for ``B`` batch rows, ``R`` per group (the last may hold fewer)."""
    return -(-int(B) // int(R))


def io_name(dtype: mx.Dtype) -> str:
    """The storage type (``template["IOT"]``) for per-sample arrays of ``dtype``: float16 and
    bfloat16 as they are, float32 for anything else (float32, integers: cast first)."""
    return next((name for name, d in IO_DTYPES.items() if d == dtype), "float32")


def tg_memory_limit(backend: str | None, stream=None) -> int:
    """Bytes of threadgroup memory one group may use on ``backend`` (``None``: Metal's 32 KiB, the
    bound of a plan made without knowing the device)."""
    if backend == "cuda":
        device = stream.device if isinstance(stream, mx.Stream) else stream
        info = mx.device_info(device if isinstance(device, (mx.Device, mx.DeviceType)) else None)
        cc = (int(info.get("compute_capability_major", 0)), int(info.get("compute_capability_minor", 0)))
        return CUDA_SHARED_OPTIN.get(cc, CUDA_SHARED_DEFAULT)
    if backend == "emulate":
        return EMULATE_SHARED
    return TG_MEMORY_LIMIT


def check_threads(op: str, threads: int) -> int:
    """``threads`` as an int in ``1..MAX_THREADS``, else a ValueError naming the bound."""
    nt = int(threads)
    if not 1 <= nt <= MAX_THREADS:
        raise ValueError(
            f"{op}: threads must be in 1..{MAX_THREADS} (one group's threads; above {MAX_THREADS} a CUDA block "
            f"of up to 255 registers per thread can exceed the 65536 registers of a block), got {threads}"
        )
    return nt


def check_index_range(op: str, sizes: dict) -> None:
    """Raise ValueError when an array the kernels index (``sizes``: name -> element count) has
    ``2**31`` elements or more: the bodies index with 32-bit ints. Checked before any launch."""
    name, n = max(sizes.items(), key=lambda kv: kv[1])
    if n >= INDEX_LIMIT:
        raise ValueError(
            f"{op}: the kernels index with 32-bit ints, but {name} would have {n} elements (>= 2**31); "
            "split the batch or the sequence into smaller calls"
        )


def default_backend(stream=None) -> str | None:
    """``"metal"`` or ``"cuda"`` when ``stream`` (a Stream, Device or DeviceType; default: the
    default device) is a GPU with that back-end available, else None (the caller should take the
    reference or CPU path)."""
    if stream is None:
        kind = mx.default_device().type
    elif isinstance(stream, mx.DeviceType):
        kind = stream
    elif isinstance(stream, mx.Device):
        kind = stream.type
    else:  # a Stream
        kind = stream.device.type
    if kind != mx.gpu:
        return None
    if mx.metal.is_available():
        return "metal"
    if hasattr(mx, "cuda") and mx.cuda.is_available():
        return "cuda"
    return None


def resolve_backend(backend: str | None, stream=None) -> str:
    if backend is None:
        backend = default_backend(stream)
        if backend is None:
            raise RuntimeError(
                "no GPU back-end: the default device is not a Metal or CUDA GPU "
                "(pass backend='emulate' to run the kernels' C++ emulation)"
            )
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend


@cache
def mlx_kernel(spec: KernelSpec, backend: str, shared_memory: int = 0):
    """The ``mx.fast`` kernel object of ``spec`` (built once per back-end and, on CUDA, per dynamic
    shared memory size)."""
    source, header = assemble(spec, backend)
    names = spec.input_names
    if backend == "metal":
        return mx.fast.metal_kernel(
            name=spec.name, input_names=names, output_names=list(spec.outputs), source=source, header=header
        )
    return mx.fast.cuda_kernel(
        name=spec.name,
        input_names=names,
        output_names=list(spec.outputs),
        source=source,
        header=header,
        shared_memory=int(shared_memory),
    )


def launch(
    spec: KernelSpec,
    backend: str,
    inputs: Sequence[mx.array],
    output_shapes: Sequence[tuple],
    template: dict,
    groups: int,
    zero_init: bool = False,
    stream=None,
    verbose: bool = False,
    tg_bytes: int | None = None,
) -> list[mx.array]:
    """Run ``spec`` on ``groups`` threadgroups of ``template["NT"]`` threads.

    Inputs are cast by kind (``"float"``: float32, ``"int"``: int32, ``"io"``: the storage dtype
    ``template["IOT"]``, float32 by default; no graph node where they already are); outputs are
    float32, those in ``spec.io_outputs`` the storage dtype. ``zero_init`` starts the outputs at
    zero (the emulation always does). ``tg_bytes``: the threadgroup memory the body declares
    (CUDA: the dynamic shared memory requested; the emulation checks it against the body)."""
    nt = int(template["NT"])
    io = IO_DTYPES[io_type(template)]
    want = {"int": mx.int32, "float": mx.float32, "io": io}
    inputs = [a if a.dtype == want[k] else a.astype(want[k]) for a, (_, k) in zip(inputs, spec.inputs, strict=True)]
    out_dtypes = [io if k == "io" else mx.float32 for k in spec.output_kinds()]
    if backend == "emulate":
        from . import emulate

        bits = io != mx.float32  # 16-bit storage travels as its bit patterns (numpy has no bfloat16)
        host = [
            np.array(a.view(mx.uint16)) if k == "io" and bits else np.array(a) for a, (_, k) in zip(inputs, spec.inputs)
        ]
        outs, _ = emulate.run(spec, host, output_shapes, template, groups, tg_bytes=tg_bytes)
        return [mx.array(o).view(d) if o.dtype == np.uint16 else mx.array(o) for o, d in zip(outs, out_dtypes)]
    if backend == "cuda" and not tg_bytes:
        raise ValueError(
            f"{spec.name}: a CUDA launch needs tg_bytes (its threadgroup arrays are dynamic shared memory)"
        )
    kernel = mlx_kernel(spec, backend, int(tg_bytes) if backend == "cuda" else 0)
    kwargs = dict(init_value=0.0) if zero_init else {}
    return kernel(
        inputs=inputs,
        output_shapes=[tuple(s) for s in output_shapes],
        output_dtypes=out_dtypes,
        grid=(groups * nt, 1, 1),
        threadgroup=(nt, 1, 1),
        template=[(c, int(template[c])) for c in spec.template] + [("IOT", io)],
        verbose=verbose,
        stream=stream,
        **kwargs,
    )
