#!/usr/bin/env python
"""MLX 0.32.4's CUDA device prelude, taken from the ``mlx-cuda-13`` wheel, for compile checks of
the kernel bodies exactly as ``mx.fast.cuda_kernel`` builds them (see kernels/README.md).

What MLX's runtime compiler sees (read in the wheel's ``libmlx.so`` and MLX's
``mlx/backend/cuda/{custom_kernel,jit_module}.cpp``):

- every custom kernel starts with ``#include "mlx/backend/cuda/device/utils.cuh"`` and
  ``#include <cooperative_groups.h>`` (``default_header``), then our header, then
  ``namespace mlx::core::cu { __global__ void custom_kernel_<name>_<template values>(...) {...} }``;
- the ``mlx/backend/cuda/device/*.cuh`` headers are not files in the wheel: ``bin2h.cmake`` embeds
  them in ``libmlx.so`` as NUL-terminated arrays handed to NVRTC by name; this script finds them
  there (each starts with MLX's copyright line, whose "©" bin2h turned into spaces);
- NVRTC options: ``--device-as-default-execution-space``,
  ``--gpu-architecture=sm_<cc>`` plus ``a`` from compute capability 9 (e.g. ``sm_90a``),
  ``--include-path`` of the wheel's ``mlx/include`` and ``mlx/include/cccl`` and of the CUDA
  runtime headers (``site-packages/nvidia/cu13/include``, else ``$CUDA_HOME/include``).

``download DEST`` fetches the two wheels a GPU run needs (``mlx`` cp312 and ``mlx-cuda-13``,
manylinux x86-64, no dependencies: the GPU machine has the CUDA 13 libraries) into ``DEST``,
skipping those already there. ``extract WHEEL OUT`` writes
``OUT/include/mlx/backend/cuda/device/{utils.cuh, complex.cuh, config.h}`` (utils.cuh and what it
includes from MLX) and ``OUT/include/cccl`` (the wheel's CCCL).
:func:`nvcc_flags` and :func:`arch_flag` give nvcc's closest equivalent of MLX's NVRTC options
(nvcc has no ``--device-as-default-execution-space``: unannotated functions stay host-only, which is
stricter; NVRTC defines ``__CUDACC_RTC__``, which utils.cuh does not test).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

MLX_VERSION = "0.32.4"
WHEELS = {  # requirement -> the file pip saves
    f"mlx=={MLX_VERSION}": f"mlx-{MLX_VERSION}-cp312-cp312-manylinux_2_35_x86_64.whl",
    f"mlx-cuda-13=={MLX_VERSION}": f"mlx_cuda_13-{MLX_VERSION}-py3-none-manylinux_2_35_x86_64.whl",
}
PLATFORMS = ("manylinux_2_35_x86_64", "manylinux_2_31_x86_64", "manylinux_2_28_x86_64", "manylinux_2_17_x86_64")
DEVICE = "mlx/backend/cuda/device/"
# How each embedded header of utils.cuh's include closure is recognised (each must match exactly
# one distinct embedded text). A new include in a later MLX fails the extraction loudly.
SIGNATURES = {
    "utils.cuh": ('#include "mlx/backend/cuda/device/complex.cuh"', '#include "mlx/backend/cuda/device/config.h"'),
    "complex.cuh": ("LIBCUDACXX_ENABLE_SIMPLIFIED_COMPLEX_OPERATIONS", "cuda/std/complex"),
    "config.h": ("#define MAX_NDIM",),
}
DEFAULT_HEADER = '\n#include "mlx/backend/cuda/device/utils.cuh"\n\n#include <cooperative_groups.h>\n\n'
NVRTC_OPTIONS = ("--device-as-default-execution-space", "--gpu-architecture=sm_{cc}{a}")


def download(dest: Path) -> dict[str, Path]:
    """The wheels of :data:`WHEELS` in ``dest`` (downloaded with pip where missing), by requirement.
    Raises RuntimeError with pip's message when the download fails (no network, say)."""
    dest.mkdir(parents=True, exist_ok=True)
    missing = [req for req, name in WHEELS.items() if not (dest / name).is_file()]
    if missing:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", "3.12"]
        cmd += ["--implementation", "cp", *(f"--platform={p}" for p in PLATFORMS), "-d", str(dest), *missing]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if res.returncode != 0 or any(not (dest / WHEELS[r]).is_file() for r in missing):
            tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"pip download of {missing} failed: {' | '.join(tail)}")
    return {req: dest / name for req, name in WHEELS.items()}


def embedded_headers(lib: bytes) -> list[str]:
    """Every distinct MLX source text embedded in ``libmlx.so`` (bin2h arrays)."""
    texts = set()
    for m in re.finditer(rb"\x00(// Copyright +20\d\d Apple Inc\.\n)", lib):
        start = m.start(1)
        texts.add(lib[start : lib.index(b"\x00", start)].decode("utf-8", "replace"))
    return sorted(texts)


def prelude_headers(lib: bytes) -> dict[str, str]:
    """``{name: text}`` of utils.cuh and the MLX device headers it includes (transitively)."""
    texts = embedded_headers(lib)
    found, todo = {}, ["utils.cuh"]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        if name not in SIGNATURES:
            raise RuntimeError(f"{DEVICE}{name} is included by the prelude but has no signature here")
        hits = [t for t in texts if all(s in t for s in SIGNATURES[name])]
        if len(hits) != 1:
            raise RuntimeError(f"{DEVICE}{name}: {len(hits)} embedded texts match its signature (want 1)")
        found[name] = hits[0]
        todo += re.findall(r'#include "mlx/backend/cuda/device/([^"]+)"', hits[0])
    return found


def extract(wheel: Path, out: Path) -> Path:
    """Write the prelude of ``wheel`` under ``out`` (see the module docstring); returns ``out``."""
    if (out / "SOURCE").is_file():
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(wheel) as z:
        lib = z.read("mlx/lib/libmlx.so")
        for name, text in prelude_headers(lib).items():
            path = tmp / "include" / DEVICE / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        for info in z.infolist():
            if info.filename.startswith("mlx/include/cccl/") and not info.is_dir():
                target = tmp / "include" / info.filename[len("mlx/include/") :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(info))
    (tmp / "SOURCE").write_text(wheel.name + "\n")  # written last: marks a complete extraction
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def nvcc_flags(prelude: Path) -> list[str]:
    """The include flags of an extracted prelude (``-I`` the CCCL of the wheel first, as MLX)."""
    inc = prelude / "include"
    return ["-std=c++17", f"-I{inc / 'cccl'}", f"-I{inc}"]


def arch_flag(cc: int) -> str:
    """nvcc's ``-arch`` for compute capability ``cc`` (e.g. 90 -> ``sm_90a``), as MLX's NVRTC call."""
    return f"-arch=sm_{cc}{'a' if cc >= 90 else ''}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("command", choices=("download", "extract"))
    ap.add_argument("paths", type=Path, nargs="+", help="download: DEST; extract: WHEEL OUT")
    args = ap.parse_args()
    if args.command == "download":
        for path in download(args.paths[0]).values():
            print(f"{path} ({path.stat().st_size} bytes)")
        return 0
    wheel, out = args.paths
    out = extract(wheel, out)
    print(f"MLX CUDA prelude of {wheel.name} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
