"""Kernel sources of the ncps kernel dialect and their assembly for each back-end.

A kernel is one body file in ``kernels/`` (the text inside the kernel function) plus a
:class:`KernelSpec` naming its inputs, outputs and template constants in launch order. The same
spec drives all three back-ends: ``mx.fast.metal_kernel``, ``mx.fast.cuda_kernel`` and the C++
emulation in :mod:`ncps.backends.gpu.emulate`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

BACKENDS = ("metal", "cuda", "emulate")


def kernel_dir() -> Path:
    """The folder with the dialect preludes and kernel bodies: installed with the package next to
    this file as ``ncps/backends/gpu/kernels`` (CMakeLists.txt), or the source tree's top-level
    ``kernels/`` (this file is ``python/ncps/backends/gpu/_source.py``)."""
    here = Path(__file__).resolve().parent
    candidates = (here / "kernels", here.parents[3] / "kernels")
    for cand in candidates:
        if (cand / "dialect" / "cpu.h").is_file():
            return cand
    raise FileNotFoundError(f"the ncps kernel sources were not found (looked in {' and '.join(map(str, candidates))})")


# The storage types of per-sample inputs and outputs (the kernels' ``IOT`` template type), by MLX
# dtype name: the C++ type on each back-end and the element size. State, sums and accumulation are
# float32 whatever the storage type.
IO_TYPES = {
    "float32": dict(metal="float", cuda="float", emulate="float", size=4),
    "float16": dict(metal="half", cuda="__half", emulate="ncps_emu::half_t", size=2),
    "bfloat16": dict(metal="bfloat16_t", cuda="__nv_bfloat16", emulate="ncps_emu::bfloat16_t", size=2),
}


@dataclass(frozen=True)
class KernelSpec:
    """A kernel's interface: ``inputs`` are ``(name, "float" | "io" | "int")`` pairs (``"io"``: a
    per-sample array stored as the launch's ``IOT``), ``outputs`` array names (float32, but those
    in ``io_outputs``, stored as ``IOT``), ``template`` the int constants (compile-time on the GPU
    back-ends). The storage type travels in the launch's template dict as ``template["IOT"]`` (a
    key of :data:`IO_TYPES`; float32 when absent)."""

    name: str
    body: str
    inputs: tuple
    outputs: tuple
    template: tuple
    io_outputs: tuple = ()

    @property
    def input_names(self) -> list[str]:
        return [n for n, _ in self.inputs]

    def output_kinds(self) -> list[str]:
        """``"io"`` or ``"float"`` per output, in order."""
        return ["io" if n in self.io_outputs else "float" for n in self.outputs]


def io_type(template: dict) -> str:
    """The storage type name of a launch (``template["IOT"]``, float32 by default), checked."""
    name = template.get("IOT", "float32")
    if name not in IO_TYPES:
        raise ValueError(f"IOT must be one of {list(IO_TYPES)}, got {name!r}")
    return name


@cache
def read_text(relpath: str) -> str:
    return (kernel_dir() / relpath).read_text()


def body(spec: KernelSpec) -> str:
    return read_text(spec.body)


def assemble(spec: KernelSpec, backend: str) -> tuple[str, str]:
    """``(source, header)`` for ``mx.fast.metal_kernel`` / ``mx.fast.cuda_kernel``."""
    if backend == "metal":
        # The id macros must stand in the source: MLX declares thread-position arguments only for
        # names it finds there.
        return read_text("dialect/metal_ids.h") + body(spec), read_text("dialect/metal.h")
    if backend == "cuda":
        return body(spec), read_text("dialect/cuda.cuh")
    raise ValueError(f"backend must be 'metal' or 'cuda' for an MLX kernel, got {backend!r}")


def source_hash(spec: KernelSpec, *extra: str) -> str:
    h = hashlib.sha256()
    for part in (
        spec.name,
        body(spec),
        read_text("dialect/cpu.h"),
        repr(spec.inputs),
        repr(spec.outputs),
        repr(spec.io_outputs),
        repr(spec.template),
        *extra,
    ):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


# What MLX 0.32.4's cuda_kernel puts before the header (its ``default_header``, read in the
# mlx-cuda-13 wheel's libmlx.so). utils.cuh is embedded in that library, not in the CPU wheel:
# scripts/gpu_prelude.py extracts it for the checks that include it.
_MLX_CUDA_DEFAULT_HEADER = '\n#include "mlx/backend/cuda/device/utils.cuh"\n\n#include <cooperative_groups.h>\n\n'


def cuda_wrapper_source(spec: KernelSpec, template: dict, mlx_prelude: bool = False) -> str:
    """The translation unit ``mx.fast.cuda_kernel`` builds for ``spec`` (MLX 0.32.4's layout:
    default header, our header, ``namespace mlx::core::cu``, one ``__global__`` function with the
    inputs, outputs, ``constexpr int`` template constants and the storage type ``using IOT = ...``
    (``template["IOT"]``), then the body). Without ``mlx_prelude`` the ``utils.cuh`` include is
    left out (it needs MLX's CUDA headers). Used to compile-check the CUDA kernels with nvcc."""
    source, header = assemble(spec, "cuda")
    default = _MLX_CUDA_DEFAULT_HEADER
    if not mlx_prelude:
        default = default.replace('#include "mlx/backend/cuda/device/utils.cuh"\n', "")
    iot = io_type(template)
    ctype = {"int": "int32_t", "float": "float", "io": IO_TYPES[iot]["cuda"]}
    params = [f"    const {ctype[t]}* {n}" for n, t in spec.inputs]
    params += [f"    {ctype[t]}* {n}" for n, t in zip(spec.outputs, spec.output_kinds())]
    consts = "".join(f"  constexpr int {c} = {int(template[c])};\n" for c in spec.template)
    consts += f"  using IOT = {IO_TYPES[iot]['cuda']};\n"
    name = "custom_kernel_" + spec.name + "".join(f"_{int(template[c])}" for c in spec.template) + f"_{iot}"
    return (
        default + header + "namespace mlx::core::cu {\n\nnamespace cg = cooperative_groups;\n\n"
        f"__global__ void {name}(\n"
        + ",\n".join(params)
        + ") {\n"
        + consts
        + "\n"
        + source
        + "\n}\n\n} // namespace mlx::core::cu\n"
    )
