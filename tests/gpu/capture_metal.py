"""Print the Metal sources MLX generates for the ncps.backends.gpu kernels (forward and vjp), by tracing
under mx.export_function with verbose=True (works without a Metal back-end), for each storage type
of the per-sample arrays (float32, float16, bfloat16: the ``IOT`` template argument). Run as a
script: MLX prints from C++, so the caller captures this process's stdout."""

import os
import sys
import tempfile

import mlx.core as mx

from ncps.backends.gpu.ltc import ltc_synapse_plan
from ncps.cells.ltc import SOLVER_PARAMS, LTCCell
from ncps.wirings import AutoNCP

IO = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}


def main() -> None:
    for iot in IO:
        capture(iot)
    sys.stdout.flush()


def capture(iot: str) -> None:
    import ncps.backends.gpu.ltc as gl

    original = gl.launch
    gl.launch = lambda *a, **k: original(*a, **{**k, "verbose": True})
    cell = LTCCell(AutoNCP(10, 2), in_features=3)
    names = list(SOLVER_PARAMS)
    params = cell.solver_params()
    plan = ltc_synapse_plan(params)
    run = gl.LTCLaunch("metal", plan, dict(N=10, I=3, K=6, F=3, MIX=1, NT=32, R=2, WT=1, IOT=iot), 2, 4, 1e-8)
    mixed = [mx.zeros((2, 4, 3)), mx.zeros((40, 3)), mx.zeros((40,)), mx.zeros((40, 10)), mx.zeros((2, 10))]

    def f(x, h0, dt, *p):
        primals = (x, h0, dt, *p, *mixed)
        outputs = gl.ltc_forward(run, primals)
        return [*outputs, *gl.ltc_backward(run, primals, outputs, outputs)]

    import ncps.backends.gpu.cfc as gc
    from ncps.cells.cfc import CfCCell

    gc.launch = gl.launch
    cfc = CfCCell(3, 6, backbone_units=[7, 5])
    hw, hb = gc._heads(cfc)
    nw = gc._weight_floats(3, 6, [7, 5], True)  # two rows per group, transposed weights staged in threadgroup memory
    template = dict(I=3, H=6, L=2, U=7, MODE=0, ACT=0, MIX=1, NT=32, R=2, WT=1, WTG=1, NW=nw, widths=(7, 5), IOT=iot)
    lstm = [mx.zeros((24, 3)), mx.zeros((24,)), mx.zeros((24, 6)), mx.zeros((2, 6))]
    bw = mx.concatenate([layer.weight.reshape(-1) for layer in cfc.backbone])
    bb = mx.concatenate([layer.bias for layer in cfc.backbone])

    def g(x, h0, dt):
        primals = (x, h0, dt, bw, bb, hw, hb, *lstm)
        outputs = gc.cfc_forward("metal", template, primals)
        return [*outputs, *gc.cfc_backward("metal", template, primals, outputs, outputs)]

    # Tracing for export makes MLX generate, and with verbose=True print, both kernels exactly as
    # a Mac would compile them (nothing is evaluated: there is no Metal back-end here).
    with tempfile.TemporaryDirectory() as d:
        mx.export_function(
            os.path.join(d, "ltc.mlxfn"),
            f,
            mx.zeros((2, 4, 3), IO[iot]),
            mx.zeros((2, 10), IO[iot]),
            mx.ones((2, 4)),
            *(params[k] for k in names),
        )
        io = (mx.zeros((2, 4, 3), IO[iot]), mx.zeros((2, 6), IO[iot]))
        mx.export_function(os.path.join(d, "cfc.mlxfn"), g, *io, mx.ones((2, 4)))


if __name__ == "__main__":
    main()
