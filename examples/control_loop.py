"""A trained policy in a fixed-rate control loop: ``cell.infer`` latency (p50 / p99) and tracking.

The plant is a point mass with friction, ``x'' = u - 0.5 x'``, integrated at the loop's rate; the
task is to follow a setpoint ``r(t)`` that jumps every few seconds. A PD expert
``u = clip(4 (r - x) - 2.5 x', ±3)`` generates demonstrations; the policy, an LTC on an
``AutoNCP(16, 1)`` wiring (or ``--model cfc``: a CfC on the same wiring) reading ``(r - x, x')``,
learns to imitate it (behaviour cloning with ``ncps.training.fit``). Then it drives the plant
alone, one ``cell.infer`` step per tick at ``--hz`` (default 100 Hz): the step runs immediately on
the calling thread (no MLX graph), the loop sleeps until the next tick, and every step's latency
is recorded.

Reported: latency p50 / p99 / max, deadline misses (a step slower than the period), the same
steps' latency back to back (no sleep: warm caches), and the tracking error of the policy against
the expert's. Plots: the closed-loop trajectory and the
latency histogram.

    python examples/control_loop.py             # 30 s of control at 100 Hz after training
    python examples/control_loop.py --quick     # a few epochs and 2 s of control, for CI
"""

from __future__ import annotations

import sys
import time

import _common
import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ncps import LTC, CfC, training
from ncps.optimizers import adam
from ncps.wirings import AutoNCP

NAME = "control_loop"
FRICTION, KP, KD, U_MAX = 0.5, 4.0, 2.5, 3.0


def expert(err: np.ndarray, vel: np.ndarray) -> np.ndarray:
    """The PD controller the policy imitates."""
    return np.clip(KP * err - KD * vel, -U_MAX, U_MAX)


def plant_step(x: np.ndarray, v: np.ndarray, u: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Semi-implicit Euler step of ``x'' = u - FRICTION x'``."""
    v = v + dt * (u - FRICTION * v)
    return x + dt * v, v


def setpoints(rng: np.random.Generator, n: int, steps: int, hold: int) -> np.ndarray:
    """``(n, steps)`` piecewise-constant setpoints in [-1, 1], a new value every ``hold`` steps."""
    levels = rng.uniform(-1.0, 1.0, (n, steps // hold + 1))
    return np.repeat(levels, hold, axis=1)[:, :steps]


def demonstrations(rng: np.random.Generator, n: int, steps: int, dt: float, hold: int) -> tuple:
    """Expert rollouts: observations ``(n, steps, 2)`` = (r - x, x') and actions ``(n, steps, 1)``."""
    r = setpoints(rng, n, steps, hold)
    x, v = rng.uniform(-1, 1, n), np.zeros(n)
    obs, act = np.zeros((n, steps, 2), np.float32), np.zeros((n, steps, 1), np.float32)
    for t in range(steps):
        obs[:, t] = np.stack([r[:, t] - x, v], axis=1)
        u = expert(r[:, t] - x, v) + 0.3 * rng.standard_normal(n)  # noisy actions: visit off-path states
        act[:, t, 0] = expert(r[:, t] - x, v)
        x, v = plant_step(x, v, u, dt)
    return obs, act


def control(cell, r: np.ndarray, dt: float, hz: float, policy: bool) -> dict:
    """Run the loop for ``len(r)`` ticks at ``hz`` (policy: ``cell.infer``; else the expert)."""
    period = 1.0 / hz
    x, v = np.zeros(1), np.zeros(1)
    h = mx.zeros((1, cell.state_size))
    xs, latencies = np.zeros(len(r)), np.zeros(len(r))
    deadline = time.perf_counter()
    for t in range(len(r)):
        obs = np.array([[r[t] - x[0], v[0]]], np.float32)
        t0 = time.perf_counter()
        if policy:
            y, h = cell.infer(mx.array(obs), h)
            u = np.array(y)[0, :1]
        else:
            u = expert(obs[:, 0], obs[:, 1])
        latencies[t] = time.perf_counter() - t0
        x, v = plant_step(x, v, np.clip(u, -U_MAX, U_MAX), dt)
        xs[t] = x[0]
        deadline += period
        pause = deadline - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    return {"x": xs, "latency_s": latencies}


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--model", choices=("ltc", "cfc"), default="ltc", help="The policy's cell: an LTC or a CfC.")
    p.add_argument("--hz", type=float, default=100.0, help="Control rate in Hz: one policy step per period.")
    p.add_argument("--seconds", type=float, default=30.0, help="Length of the closed-loop run in seconds.")
    p.add_argument("--epochs", type=int, default=60, help="Epochs of behaviour cloning before the closed-loop run.")
    args = p.parse_args(argv)
    epochs = min(args.epochs, 3) if args.quick else args.epochs
    seconds = min(args.seconds, 2.0) if args.quick else args.seconds
    timer = _common.Timer()
    rng = np.random.default_rng(args.seed)
    dt = 1.0 / args.hz
    hold = int(3.0 * args.hz)  # a new setpoint every 3 s

    obs, act = demonstrations(rng, 64 if args.quick else 256, 200, dt * 5, hold // 5)
    mx.random.seed(args.seed)
    wiring = AutoNCP(16, 1)
    model = (LTC if args.model == "ltc" else CfC)(2, wiring, return_sequences=True)

    def loss_fn(model, x, y):
        return nn.losses.mse_loss(model(x)[0], y)

    history = training.fit(
        model,
        loss_fn,
        (mx.array(obs), mx.array(act)),
        optimizer=adam(0.01),
        epochs=epochs,
        batch_size=32,
        clip_norm=1.0,
        progress=False,
        seed=args.seed,
    )
    print(f"trained {args.model.upper()} + AutoNCP(16, 1) for {epochs} epochs: loss {history.history['loss'][-1]:.4f}")

    cell = model.rnn_cell
    ticks = int(seconds * args.hz)
    r = setpoints(rng, 1, ticks, hold)[0]
    run = control(cell, r, dt, args.hz, policy=True)
    ref = control(cell, r, dt, 1e6, policy=False)  # the expert, unpaced
    # The same policy steps back to back (no sleep between them): what a step costs with warm
    # caches. The paced figure adds what the idle period costs (caches and the core given to
    # other processes while the loop sleeps), which on a busy machine is most of it.
    unpaced = control(cell, r, dt, 1e6, policy=True)["latency_s"] * 1e6
    lat = run["latency_s"] * 1e6
    p50, p99, worst = np.percentile(lat, 50), np.percentile(lat, 99), lat.max()
    u50, u99 = np.percentile(unpaced, 50), np.percentile(unpaced, 99)
    misses = int(np.sum(run["latency_s"] > dt))
    err, ref_err = np.mean(np.abs(run["x"] - r)), np.mean(np.abs(ref["x"] - r))
    print(
        f"{ticks} steps at {args.hz:g} Hz: cell.infer latency p50 {p50:.1f} µs, p99 {p99:.1f} µs, max {worst:.1f} µs;"
        f" {misses} deadline misses; mean |r - x| policy {err:.3f}, expert {ref_err:.3f}"
    )
    print(f"the same steps back to back (no sleep): p50 {u50:.1f} µs, p99 {u99:.1f} µs")

    metrics = {
        "example": NAME,
        "model": args.model,
        "epochs": epochs,
        "hz": args.hz,
        "steps": ticks,
        "latency_p50_us": float(p50),
        "latency_p99_us": float(p99),
        "latency_max_us": float(worst),
        "unpaced_latency_p50_us": float(u50),
        "unpaced_latency_p99_us": float(u99),
        "deadline_misses": misses,
        "tracking_error": float(err),
        "expert_tracking_error": float(ref_err),
        "final_train_loss": history.history["loss"][-1],
        "total_seconds": timer(),
    }
    _common.write_metrics(args.out, NAME, metrics)
    with _common.plotting():
        plt = _common.plt()
        fig, ax = plt.subplots(figsize=(8, 3.2))
        tt = np.arange(ticks) * dt
        ax.plot(tt, r, "k", lw=1.5, label="setpoint r")
        ax.plot(tt, ref["x"], ":", label="PD expert")
        ax.plot(tt, run["x"], "--", label=f"{args.model.upper()} policy (cell.infer)")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("position x")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        ax.set_title(f"Closed loop at {args.hz:g} Hz")
        _common.save(fig, args.out, f"{NAME}_trajectory.png")
        fig, ax = plt.subplots(figsize=(6, 3.2))
        ax.hist(lat, bins=60, color="#1f77b4")
        for q, name in ((p50, "p50"), (p99, "p99")):
            ax.axvline(q, color="k", ls="--", lw=1)
            ax.text(q, ax.get_ylim()[1] * 0.9, f" {name} {q:.0f} µs", fontsize=8)
        ax.set_xlabel("cell.infer latency per step (µs)")
        ax.set_ylabel("steps")
        ax.set_title(f"{ticks} steps, batch 1")
        _common.save(fig, args.out, f"{NAME}_latency.png")
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
