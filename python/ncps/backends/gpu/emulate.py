"""CPU emulation of the dialect kernels: each kernel body compiled as C++ with the CPU prelude
(``kernels/dialect/cpu.h``: every threadgroup's threads are std::threads sharing a std::barrier).

The generated program reads its inputs from ``in_<k>.bin`` files and writes ``out_<k>.bin``, so the
same build can run under ThreadSanitizer (a sanitized program cannot be loaded into Python).
Builds are cached by a hash of the source and flags under ``$NCPS_GPU_EMU_CACHE`` (default: the
system temp folder), so only a changed kernel recompiles.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ._source import IO_TYPES, KernelSpec, body, io_type, kernel_dir, source_hash

TSAN_FLAGS = ("-fsanitize=thread", "-O1", "-g")
DEFAULT_FLAGS = ("-O2",)

# Compiler flags of the builds ncps.backends.gpu's "emulate" back-end runs, and where their stderr goes.
_options = {"flags": DEFAULT_FLAGS, "reports": None}


@contextmanager
def configured(flags=DEFAULT_FLAGS, reports=None):
    """Run the ``"emulate"`` back-end with other compiler ``flags`` (e.g. :data:`TSAN_FLAGS`, or
    ``-DNCPS_DROP_BARRIER=<tag>``), appending each run's stderr to the list ``reports``."""
    saved = dict(_options)
    _options.update(flags=tuple(flags), reports=reports)
    try:
        yield
    finally:
        _options.update(saved)


def cache_root() -> Path:
    return Path(os.environ.get("NCPS_GPU_EMU_CACHE", Path(tempfile.gettempdir()) / "ncps-gpu-emu"))


def cxx() -> str:
    exe = os.environ.get("CXX", "g++")
    if shutil.which(exe) is None:
        raise RuntimeError(f"the kernel emulation needs a C++20 compiler; {exe!r} is not on PATH")
    return exe


def program_source(spec: KernelSpec, iot: str = "float32") -> str:
    """The C++ program that runs ``spec`` under the CPU prelude with per-sample arrays stored as
    ``iot`` (a key of :data:`~ncps.backends.gpu._source.IO_TYPES`)."""
    ctype = {"int": "int", "float": "float", "io": "IOT"}
    params = [f"const {ctype[t]}* {n}" for n, t in spec.inputs]
    params += [f"{ctype[t]}* {n}" for n, t in zip(spec.outputs, spec.output_kinds())]
    consts = "".join(f"  const int {c} = ncps_tmpl[{k}];\n" for k, c in enumerate(spec.template))
    args = [f"reinterpret_cast<const {ctype[t]}*>(ins[{k}].data())" for k, (_, t) in enumerate(spec.inputs)]
    args += [f"reinterpret_cast<{ctype[t]}*>(outs[{k}].data())" for k, t in enumerate(spec.output_kinds())]
    sizes = ", ".join(str(IO_TYPES[iot]["size"] if t == "io" else 4) for t in spec.output_kinds())
    path = (kernel_dir() / spec.body).as_posix()
    return f"""#include "cpu.h"
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

using IOT = {IO_TYPES[iot]["emulate"]};

static void ncps_kernel({", ".join(params)}, int ncps_groups, const int* ncps_tmpl) {{
{consts}  ncps_emu::launch(ncps_groups, NT, [&](ncps_emu::Ctx& ncps_ctx) {{
#line 1 "{path}"
{body(spec)}
  }});
}}

static std::vector<char> slurp(const std::string& p) {{
  std::ifstream f(p, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}}

int main(int argc, char** argv) {{
  if (argc != 2) return 2;
  const std::string dir = argv[1];
  std::ifstream meta(dir + "/meta.txt");
  int groups = 0;
  meta >> groups;
  std::vector<int> tmpl({len(spec.template)});
  for (int& v : tmpl) meta >> v;
  std::vector<std::vector<char>> ins;
  for (int k = 0; k < {len(spec.inputs)}; ++k) ins.push_back(slurp(dir + "/in_" + std::to_string(k) + ".bin"));
  const int out_size[] = {{{sizes}}};  // bytes per element of each output
  std::vector<std::vector<char>> outs({len(spec.outputs)});
  for (size_t k = 0; k < outs.size(); ++k) {{ long n = 0; meta >> n; outs[k].assign(n * out_size[k], 0); }}
  ncps_kernel({", ".join(args)}, groups, tmpl.data());
  for (size_t k = 0; k < outs.size(); ++k) {{
    std::ofstream f(dir + "/out_" + std::to_string(k) + ".bin", std::ios::binary);
    f.write(outs[k].data(), static_cast<std::streamsize>(outs[k].size()));
  }}
  std::ofstream(dir + "/tg_bytes.txt") << ncps_emu::tg_bytes_declared << "\\n";
  return 0;
}}
"""


def build(spec: KernelSpec, flags: Sequence[str] = DEFAULT_FLAGS, iot: str = "float32") -> Path:
    """Compile (or reuse) the emulation program of ``spec`` with storage type ``iot``; returns the
    executable's path."""
    flags = tuple(flags)
    src = program_source(spec, iot)
    out_dir = cache_root() / f"{spec.name}-{source_hash(spec, src, *flags)}"
    exe = out_dir / "kernel"
    if exe.is_file():
        return exe
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "kernel.cpp").write_text(src)
    tmp = out_dir / f"kernel.{os.getpid()}.tmp"
    cmd = [
        cxx(),
        "-std=c++20",
        "-pthread",
        *flags,
        "-I",
        str(kernel_dir() / "dialect"),
        str(out_dir / "kernel.cpp"),
        "-o",
        str(tmp),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"compiling the emulation of {spec.name} failed:\n{' '.join(cmd)}\n{res.stderr}")
    os.replace(tmp, exe)  # atomic: concurrent builders never see a half-written program
    return exe


def run(
    spec: KernelSpec,
    inputs: Sequence[np.ndarray],
    output_shapes: Sequence[tuple],
    template: dict,
    groups: int,
    flags: Sequence[str] | None = None,
    tg_bytes: int | None = None,
) -> tuple[list[np.ndarray], subprocess.CompletedProcess]:
    """Run ``spec`` on ``groups`` threadgroups of ``template["NT"]`` threads. Outputs start at
    zero. Per-sample arrays (kind ``"io"``, ``spec.io_outputs``) are stored as ``template["IOT"]``:
    16-bit ones travel as their bit patterns (``np.uint16``; an ``np.float16`` input is viewed as
    such). Returns the outputs (float32, or ``np.uint16`` bits for 16-bit storage) and the finished
    process (its stderr holds TSan reports).
    ``flags`` default to those of :func:`configured`. ``tg_bytes``: the threadgroup memory the
    launch layer computed (CUDA's dynamic shared memory); a body that declares another amount
    raises RuntimeError, so every emulated launch checks that count."""
    flags = _options["flags"] if flags is None else flags
    if len(inputs) != len(spec.inputs):
        raise ValueError(f"{spec.name}: expected {len(spec.inputs)} inputs, got {len(inputs)}")
    iot = io_type(template)
    half = IO_TYPES[iot]["size"] == 2
    exe = build(spec, flags, iot)
    with tempfile.TemporaryDirectory(prefix="ncps-emu-") as d:
        for k, ((name, kind), a) in enumerate(zip(spec.inputs, inputs)):
            if kind == "io" and half:
                a = np.ascontiguousarray(a)
                if a.dtype == np.float16:
                    a = a.view(np.uint16)
                if a.dtype != np.uint16:
                    raise ValueError(f"{spec.name}: {name} must hold {iot} bits (np.uint16), got {a.dtype}")
                a.tofile(os.path.join(d, f"in_{k}.bin"))
                continue
            dtype = np.int32 if kind == "int" else np.float32
            np.ascontiguousarray(a, dtype=dtype).tofile(os.path.join(d, f"in_{k}.bin"))
        sizes = [int(np.prod(s)) for s in output_shapes]
        tmpl = [int(template[c]) for c in spec.template]
        Path(d, "meta.txt").write_text(" ".join(map(str, [groups, *tmpl, *sizes])) + "\n")
        proc = subprocess.run([str(exe), d], capture_output=True, text=True)
        if proc.returncode != 0 and "ThreadSanitizer" not in proc.stderr:
            raise RuntimeError(f"the emulation of {spec.name} failed (exit {proc.returncode}):\n{proc.stderr}")
        if _options["reports"] is not None:
            _options["reports"].append(proc.stderr)
        kinds = spec.output_kinds()
        outs = [
            np.fromfile(
                os.path.join(d, f"out_{k}.bin"), dtype=np.uint16 if kinds[k] == "io" and half else np.float32
            ).reshape(s)
            for k, s in enumerate(output_shapes)
        ]
        declared = int(Path(d, "tg_bytes.txt").read_text())
    if tg_bytes is not None and groups > 0 and declared != tg_bytes:
        raise RuntimeError(
            f"{spec.name}: the body declares {declared} bytes of threadgroup memory, the launch computed {tg_bytes}"
        )
    return outs, proc
