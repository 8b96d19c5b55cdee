"""Sine regression with an LTC on a sparse AutoNCP wiring: the official ``pt_example.py``, in MLX.

The input is ``(sin u, cos u)`` and the target ``sin 2u`` over 48 steps of ``u ∈ [0, 3π]``; the
model is ``LTC(2, AutoNCP(16, 1))`` (16 neurons, one motor neuron as the output), trained with
Adam (lr 0.01) and gradient clipping at 1, as in the official example, via ``ncps.training.fit``.

Plots (in ``--out``): the loss curve, the prediction before and after training, the wiring, and the
activity of all 16 neurons over the sequence.

    python examples/sine_ltc.py            # 400 epochs, as the official example
    python examples/sine_ltc.py --quick    # a few epochs, for CI
"""

from __future__ import annotations

import sys

import _common
import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ncps import LTC, training
from ncps.datasets import sine_cosine
from ncps.optimizers import adam
from ncps.wirings import AutoNCP

NAME = "sine_ltc"


def neuron_states(model: LTC, x: mx.array) -> np.ndarray:
    """The state of every neuron at every step ``(T, units)`` for one sequence ``x (1, T, F)``."""
    cell = model.rnn_cell
    h = mx.zeros((1, cell.state_size))
    states = []
    for t in range(x.shape[1]):
        _, h = cell(x[:, t], h)
        states.append(h[0])
    return np.array(mx.stack(states))


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__)
    p.add_argument(
        "--epochs", type=int, default=400, help="Training epochs (one update each: the data set is one sequence)."
    )
    p.add_argument("--lr", type=float, default=0.01, help="Learning rate of Adam (updates as torch.optim.Adam does).")
    args = p.parse_args(argv)
    epochs = min(args.epochs, 3) if args.quick else args.epochs
    timer = _common.Timer()

    x_np, y_np = sine_cosine(seq_len=48)
    x, y = mx.array(x_np), mx.array(y_np)
    mx.random.seed(args.seed)
    wiring = AutoNCP(16, 1)
    model = LTC(2, wiring, return_sequences=True)
    print(
        f"LTC with {sum(v.size for v in _params(model))} parameters on {wiring.units} neurons "
        f"({model.rnn_cell.wiring.synapse_count} synapses, {model.rnn_cell.wiring.sensory_synapse_count} sensory)"
    )

    def loss_fn(model, x, y):
        return nn.losses.mse_loss(model(x)[0], y)

    before = np.array(model(x)[0])[0, :, 0]
    log_every = max(1, epochs // 10)

    def report(epoch, logs):
        if (epoch + 1) % log_every == 0 or epoch == 0:
            print(f"epoch {epoch + 1:4d}/{epochs}  loss {logs['loss']:.5f}", flush=True)

    history = training.fit(
        model,
        loss_fn,
        (x, y),
        optimizer=adam(args.lr),
        epochs=epochs,
        batch_size=1,
        clip_norm=1.0,
        progress=False,
        seed=args.seed,
        callbacks=[report],
        compile=not args.quick,
    )
    after = np.array(model(x)[0])[0, :, 0]
    mse = float(np.mean((after - y_np[0, :, 0]) ** 2))
    train_time = sum(history.epoch_times)

    out = args.out
    metrics = {
        "example": NAME,
        "epochs": epochs,
        "final_train_loss": history.history["loss"][-1],
        "mse": mse,
        "train_seconds": train_time,
        "total_seconds": timer(),
        "compiled_step": history.compiled,
    }
    _common.write_metrics(out, NAME, metrics)
    with _common.plotting():
        _common.plot_history(history.history, out, f"{NAME}_loss.png", "LTC + AutoNCP(16, 1): training loss (MSE)")
        plt = _common.plt()
        fig, ax = plt.subplots(figsize=(8.5, 3.2))
        steps = np.arange(x.shape[1])
        ax.plot(steps, y_np[0, :, 0], "k", lw=2, label="target sin 2u")
        ax.plot(steps, before, ":", label="before training")
        ax.plot(steps, after, "--", label=f"after {epochs} epochs (MSE {mse:.4f})")
        ax.plot(steps, x_np[0, :, 0], color="0.7", lw=0.8, label="input sin u")
        ax.set_xlabel("step")
        ax.legend(
            loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False
        )  # beside, not over, the curves
        ax.grid(alpha=0.3)
        ax.set_title("LTC prediction vs truth")
        _common.save(fig, out, f"{NAME}_prediction.png")
        built = model.rnn_cell.wiring
        _common.plot_wiring(built, out, f"{NAME}_wiring.png", "AutoNCP(16, 1) wiring of the LTC")
        labels = [f"{i} {built.get_type_of_neuron(i)}" for i in range(built.units)]
        _common.plot_activity(
            neuron_states(model, x),
            out,
            f"{NAME}_activity.png",
            "LTC neuron states over the sequence (neuron 0 is the motor output)",
            labels=labels,
            always=[0],
        )
    return metrics


def _params(model):
    from mlx.utils import tree_flatten

    return [v for _, v in tree_flatten(model.trainable_parameters())]


if __name__ == "__main__":
    main(sys.argv[1:])
