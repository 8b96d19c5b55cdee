"""Launching dialect kernels through MLX (Metal or CUDA) or the C++ emulation."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import mlx.core as mx
import numpy as np

from ._source import BACKENDS, KernelSpec, assemble

# Static threadgroup memory a kernel may use: Metal guarantees 32 KiB; CUDA's static __shared__
# limit is 48 KiB. The smaller bound keeps one launch plan valid on both.
TG_MEMORY_LIMIT = 32 * 1024


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
def mlx_kernel(spec: KernelSpec, backend: str):
    """The ``mx.fast`` kernel object of ``spec`` (built once per back-end)."""
    source, header = assemble(spec, backend)
    names = spec.input_names
    if backend == "metal":
        return mx.fast.metal_kernel(
            name=spec.name, input_names=names, output_names=list(spec.outputs), source=source, header=header
        )
    return mx.fast.cuda_kernel(
        name=spec.name, input_names=names, output_names=list(spec.outputs), source=source, header=header
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
) -> list[mx.array]:
    """Run ``spec`` on ``groups`` threadgroups of ``template["NT"]`` threads; float32 outputs.

    ``zero_init`` starts the outputs at zero (the emulation always does)."""
    nt = int(template["NT"])
    if backend == "emulate":
        from . import emulate

        host = [np.array(a) for a in inputs]
        outs, _ = emulate.run(spec, host, output_shapes, template, groups)
        return [mx.array(o) for o in outs]
    kernel = mlx_kernel(spec, backend)
    kwargs = dict(init_value=0.0) if zero_init else {}
    return kernel(
        inputs=list(inputs),
        output_shapes=[tuple(s) for s in output_shapes],
        output_dtypes=[mx.float32] * len(output_shapes),
        grid=(groups * nt, 1, 1),
        threadgroup=(nt, 1, 1),
        template=[(c, int(template[c])) for c in spec.template],
        verbose=verbose,
        stream=stream,
        **kwargs,
    )
