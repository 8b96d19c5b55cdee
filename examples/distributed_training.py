"""Data-parallel training of a CfC on an NCP wiring with ``ncps.training.fit`` and ``mlx.launch``.

The task: read a noisy sine wave of random frequency and phase, and regress its frequency. Every
process builds the same data set and calls the same ``fit``; started by ``mlx.launch``, ``fit``
splits each global batch over the processes, averages the gradients, and only rank 0 prints,
shows progress and writes the checkpoint.

    python examples/distributed_training.py                                    # one process
    mlx.launch -n 2 --backend ring python examples/distributed_training.py     # two, over loopback
    mlx.launch --hostfile hosts.json python examples/distributed_training.py   # several machines
    python -m ncps.distributed --timeout 600 -n 2 --backend ring examples/distributed_training.py
        # the same as mlx.launch, but any failing process fails the launch (non-zero exit)

Rank 0 prints the losses and the throughput in sequences per second (all processes together,
epochs after the first, which includes compiling the step).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import _common
import mlx.core as mx
import mlx.nn as nn
import numpy as np

import ncps
from ncps import distributed, training
from ncps.optimizers import adam
from ncps.wirings import AutoNCP

NAME = "distributed_training"


def make_data(n: int, seq_len: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy sine waves ``(n, seq_len, 1)`` and their frequencies ``(n, 1)``."""
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.5, 2.0, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    t = np.linspace(0, 2 * np.pi, seq_len)[None, :]
    x = np.sin(freq * t + phase) + 0.1 * rng.normal(size=(n, seq_len))
    return x[..., None].astype(np.float32), ((freq - 1.25) / 0.45).astype(np.float32)


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__)  # --out, --quick, --seed, as every example
    p.add_argument("--model", choices=("cfc", "ltc"), default="cfc", help="the sequence layer")
    p.add_argument("--units", type=int, default=24, help="neurons of the AutoNCP wiring")
    p.add_argument("--samples", type=int, default=2048, help="training sequences")
    p.add_argument("--seq-len", type=int, default=32, help="steps per sequence")
    p.add_argument("--batch-size", type=int, default=64, help="global batch (split over the processes)")
    p.add_argument("--epochs", type=int, default=10, help="passes over the training sequences")
    p.add_argument("--lr", type=float, default=0.01, help="Adam learning rate")
    p.add_argument("--checkpoint", type=Path, default=None, help="write the best model here (rank 0)")
    p.add_argument(
        "--json", type=Path, default=None, help="also write the metrics to this file (rank 0), besides --out"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.samples, args.epochs, args.seq_len = min(args.samples, 256), min(args.epochs, 2), min(args.seq_len, 16)

    world, rank = distributed.world_size(), distributed.rank()
    main_process = rank == 0
    if main_process:
        print(f"{world} process(es), global batch {args.batch_size} ({args.batch_size // world} per process)")

    X, y = make_data(args.samples, args.seq_len, args.seed)
    X_val, y_val = make_data(max(args.samples // 8, 16), args.seq_len, args.seed + 1)

    mx.random.seed(args.seed)  # the same initial weights everywhere (fit also broadcasts rank 0's)
    layer = ncps.CfC if args.model == "cfc" else ncps.LTC
    model = layer(1, AutoNCP(args.units, 1), return_sequences=False)

    def mse(model: nn.Module, x: mx.array, y: mx.array) -> mx.array:
        return nn.losses.mse_loss(model(x)[0], y)

    start = time.perf_counter()
    history = training.fit(
        model,
        mse,
        (X, y),
        optimizer=adam(args.lr),
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_data=(X_val, y_val),
        clip_norm=1.0,
        checkpoint_path=args.checkpoint,
        seed=args.seed,
        progress=main_process,
    )
    total = time.perf_counter() - start

    steady = history.epoch_times[1:] or history.epoch_times
    result = {
        "example": NAME,
        "world_size": world,
        "model": args.model,
        "samples": args.samples,
        "seq_len": args.seq_len,
        "batch_size": args.batch_size,
        "epochs": len(history.epoch),
        "loss": history.history["loss"],
        "val_loss": history.history["val_loss"],
        "best_epoch": history.best_epoch,
        "compiled": history.compiled,
        "seconds": total,
        "total_seconds": total,
        "sequences_per_s": args.samples * len(steady) / sum(steady),
    }
    if main_process:
        print(
            f"val_loss {result['val_loss'][0]:.4f} -> {result['val_loss'][-1]:.4f} "
            f"(best epoch {history.best_epoch + 1}); {result['sequences_per_s']:.0f} sequences/s "
            f"with {world} process(es), {total:.1f} s in all"
        )
        _common.write_metrics(args.out, NAME, result)
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
