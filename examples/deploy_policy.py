"""Deploy a small trained policy three ways: dependency-free C99, ONNX and MLX's .mlxfn.

Trains a wired CfC (AutoNCP) to steer toward a noisy target signal, exports it with
ncps.export.to_c / to_onnx / to_mlxfn, runs each exported form over a test sequence (the C through
gcc, ONNX through onnxruntime, the .mlxfn through mx.import_function) and prints how far each is
from the model's own output.

    python examples/deploy_policy.py            # train, export, compare
    python examples/deploy_policy.py --quick    # a few epochs, for CI
"""

from __future__ import annotations

import shutil
import subprocess

import _common
import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

import ncps
from ncps import CfC, wirings
from ncps.export import to_c, to_mlxfn, to_onnx

HARNESS = r"""
#include <stdio.h>
#include "policy.h"
int main(void)
{
    float x[POLICY_INPUTS], state[POLICY_STATE_SIZE], y[POLICY_OUTPUTS], dt;
    policy_reset(state);
    while (fread(x, sizeof(float), POLICY_INPUTS, stdin) == POLICY_INPUTS && fread(&dt, sizeof(float), 1, stdin) == 1) {
        policy_step(x, dt, state, y);
        fwrite(y, sizeof(float), POLICY_OUTPUTS, stdout);
    }
    return 0;
}
"""


def data(rng: np.random.Generator, n: int, T: int) -> tuple[np.ndarray, np.ndarray]:
    """Sensor readings (a phase-shifted sine plus noise, 4 channels) → the steering command."""
    t = np.arange(T)[None] * 0.1 + rng.uniform(0, 6.28, (n, 1))
    x = np.stack([np.sin(t), np.cos(t), np.sin(2 * t), rng.normal(0, 0.1, t.shape)], axis=-1)
    y = np.sin(t + 0.5)[..., None]
    return x.astype(np.float32), y.astype(np.float32)


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    clock = _common.Timer()
    rng = np.random.default_rng(args.seed)
    mx.random.seed(args.seed)
    model = CfC(4, wirings.AutoNCP(12, 1))
    x, y = data(rng, 64, 50)
    opt = optim.Adam(learning_rate=0.01)
    loss_and_grad = nn.value_and_grad(model, lambda m, a, b: nn.losses.mse_loss(m(a)[0], b))
    for _ in range(5 if args.quick else 60):
        loss, grads = loss_and_grad(model, mx.array(x), mx.array(y))
        opt.update(model, grads)
        mx.eval(model.parameters(), opt.state)
    print(f"trained: mse {loss.item():.4f}")

    xt, _ = data(rng, 1, 100)
    dt = np.full((1, 100), 1.0, np.float32)
    with ncps.kernels.use("reference"):
        want = np.array(model(mx.array(xt), timespans=mx.array(dt))[0])[0]
    metrics = {"example": "deploy_policy", "train_mse": float(loss.item())}

    out = args.out / "deploy_policy"
    out.mkdir(exist_ok=True)
    to_c(model, out, "policy")
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc:
        (out / "main.c").write_text(HARNESS)
        exe = out / "policy_demo"
        cmd = [gcc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", str(out)]
        subprocess.run([*cmd, str(out / "main.c"), str(out / "policy.c"), "-o", str(exe), "-lm"], check=True)
        feed = np.concatenate([xt[0], dt[0][:, None]], axis=1).astype(np.float32).tobytes()
        got = np.frombuffer(subprocess.run([str(exe)], input=feed, capture_output=True, check=True).stdout, np.float32)
        metrics["c_max_abs_diff"] = float(np.abs(got.reshape(want.shape) - want).max())
    else:
        print("C: no compiler found; wrote", out / "policy.c")

    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        sess = ort.InferenceSession(
            str(to_onnx(model, out / "policy.onnx")), options, providers=["CPUExecutionProvider"]
        )
        got = sess.run(None, {"x": xt, "timespans": dt})[0][0]
        metrics["onnx_max_abs_diff"] = float(np.abs(got - want).max())
    except ImportError:
        print("ONNX: onnxruntime not installed (pip install 'ncps[export]')")

    f = mx.import_function(to_mlxfn(model, str(out / "policy.mlxfn"), batch_sizes=(1,), steps=(100,)))
    h0 = mx.zeros((1, model.state_size))
    got = np.array(f(mx.array(xt), h0, mx.array(dt))[0])[0]
    metrics["mlxfn_max_abs_diff"] = float(np.abs(got - want).max())

    for key, value in metrics.items():
        if key.endswith("diff"):
            print(f"{key.replace('_max_abs_diff', ''):>6}: max |exported - model| = {value:.2e}")
            assert value < 1e-5, key
    metrics["total_seconds"] = clock()
    _common.write_metrics(args.out, "deploy_policy", metrics)


if __name__ == "__main__":
    main()
