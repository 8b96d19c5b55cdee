"""atheris fuzz targets (``python -m tests.reliability.fuzz_targets TARGET [libFuzzer flags]``).

- ``load``: arbitrary bytes as a model file for ``ncps.load``; only ``ValueError`` may come out.
- ``ops``: fuzzed shapes, dtypes, integers and options for the fused entry points
  (``ncps.backends.cpu.ltc.ltc_sequence`` / ``ltc_mixed_sequence``, ``ncps.backends.cpu.cfc.cfc_sequence``
  and ``ncps._ext`` directly); only ``ValueError`` / ``TypeError`` may come out, never a crash.

``run_one(target, data)`` replays one input (the regression tests replay fuzz_corpus/<target>/).
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

_DIR = tempfile.mkdtemp(prefix="ncps-fuzz-")
DTYPES = ("float32", "float16", "bfloat16", "int32", "bool_", "complex64", "float64")


def load_target(data: bytes) -> None:
    import ncps

    path = os.path.join(_DIR, "m.safetensors")
    with open(path, "wb") as f:
        f.write(data)
    try:
        ncps.load(path)
    except ValueError:
        pass


def _array(fdp, shape, dtype_pick: int):
    import mlx.core as mx

    n = int(np.prod(shape)) if shape else 1
    if n > 4096:
        shape, n = (1,), 1
    values = np.array([fdp.ConsumeFloat() for _ in range(min(n, 8))] or [0.0], dtype=np.float64)
    values = np.resize(values, n).reshape(shape)
    with np.errstate(all="ignore"):
        a = mx.array(values.astype(np.float32))
    return a.astype(getattr(mx, DTYPES[dtype_pick % len(DTYPES)]))


def ops_target(data: bytes) -> None:
    import atheris
    import mlx.core as mx

    import ncps
    from ncps.backends.cpu import cfc as cpu_cfc
    from ncps.backends.cpu import ltc as cpu_ltc

    fdp = atheris.FuzzedDataProvider(data)
    B, T, I, N = (fdp.ConsumeIntInRange(0, 4) for _ in range(4))
    which = fdp.ConsumeIntInRange(0, 3)
    bad = fdp.ConsumeIntInRange(-8, 24)  # the one argument (if any) given a fuzzed shape and dtype
    count = [0]

    def shaped(want):
        count[0] += 1
        if count[0] - 1 != bad:
            return _array(fdp, tuple(want), 0)
        shape = tuple(fdp.ConsumeIntInRange(0, 5) for _ in range(fdp.ConsumeIntInRange(0, 3)))
        return _array(fdp, shape, fdp.ConsumeIntInRange(0, 9))

    try:
        if which in (0, 1):
            x, h0, dt = shaped((B, T, I)), shaped((B, N)), shaped((B, T))
            p = {k: shaped((I, N)) for k in cpu_ltc.LTC_PARAMS[:5]}
            p.update({k: shaped((N, N)) for k in cpu_ltc.LTC_PARAMS[5:10]})
            p.update({k: shaped((N,)) for k in cpu_ltc.LTC_PARAMS[10:]})
            K = fdp.ConsumeIntInRange(-2, 12) if bad == -1 else fdp.ConsumeIntInRange(1, 6)
            if which == 0:
                out = cpu_ltc.ltc_sequence(x, h0, dt, p, K)
            else:
                lstm = {"input_w": shaped((4 * N, I)), "input_b": shaped((4 * N,)), "recurrent_w": shaped((4 * N, N))}
                out = cpu_ltc.ltc_mixed_sequence(x, h0, shaped((B, N)), dt, p, shaped((B, T, I)), lstm, K)
        elif which == 2:
            args = [shaped((B, T, I)), shaped((B, N)), shaped((B, T))] + [shaped((I, N)) for _ in range(5)]
            args += [shaped((N, N)) for _ in range(5)] + [shaped((N,)) for _ in range(3)]
            out = ncps.kernels._ext.ltc_sequence(*args, fdp.ConsumeIntInRange(-3, 20), fdp.ConsumeFloat())
        else:
            mx.random.seed(0)
            cell = ncps.CfCCell(
                max(I, 1),
                max(N, 1),
                mode=("default", "pure", "no_gate")[fdp.ConsumeIntInRange(0, 2)],
                backbone_units=fdp.ConsumeIntInRange(1, 4),
                backbone_layers=fdp.ConsumeIntInRange(0, 2),
            )
            params, sizes, backbone, masked, mode, act = cpu_cfc._unit_args([cell])
            if fdp.ConsumeBool():
                params = params[: fdp.ConsumeIntInRange(0, len(params))]
            if fdp.ConsumeBool():
                sizes = [fdp.ConsumeIntInRange(-2, 6) for _ in range(fdp.ConsumeIntInRange(0, 2))]
            if fdp.ConsumeBool():
                backbone = [[fdp.ConsumeIntInRange(-2, 6)] for _ in range(fdp.ConsumeIntInRange(0, 2))]
            if fdp.ConsumeBool():
                mode = fdp.ConsumeUnicodeNoSurrogates(6)
            out = ncps.kernels._ext.cfc_sequence(
                shaped((B, T, I)), shaped((B, N)), shaped((B, T)), params, sizes, backbone, masked, mode, act
            )
        mx.eval(out)
    except (ValueError, TypeError):
        pass


TARGETS = {"load": load_target, "ops": ops_target}


def run_one(target: str, data: bytes) -> None:
    TARGETS[target](data)


def main() -> None:
    import atheris

    target = sys.argv[1]
    with atheris.instrument_imports(include=["ncps"]):
        import ncps  # noqa: F401
        import ncps.backends.cpu.ltc  # noqa: F401
        import ncps.persistence  # noqa: F401
    atheris.Setup([sys.argv[0], *sys.argv[2:]], TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
