"""Classify sequences of different lengths with ``lengths=``: no bucketing, no truncation.

The task, generated here: which waveform is it, sine, square, triangle or sawtooth? Every
sequence is sampled at the same rate but lasts 6 to 64 steps, so a short one shows only a
fraction of a period and is harder to tell; the accuracy per length (a plot) shows how much the
length matters. The sequences are given to :func:`ncps.training.fit` as a plain list: it pads
them at the end and hands the lengths to the loss, whose CfC reads each sequence only up to its
own length (``model(x, lengths=lengths)``: the state stops there and the output is the one of
the last real step, exactly as if each sequence ran alone).

Plots (in ``--out``): example sequences of each class, loss and accuracy curves, and the test
accuracy per sequence length.

    python examples/variable_length.py
    python examples/variable_length.py --quick
"""

from __future__ import annotations

import sys

import _common
import mlx.core as mx
import mlx.nn as nn
import numpy as np

from ncps import CfC
from ncps.optimizers import adam
from ncps.training import fit, pad_sequences, predict

NAME = "variable_length"
CLASSES = ["sine", "square", "triangle", "sawtooth"]
MIN_LEN, MAX_LEN = 6, 64
HELPS = {
    "epochs": "Passes over the training set.",
    "samples": "Training sequences, 6 to 64 steps long (the test set has half as many).",
    "units": "Neurons of the mixed-memory CfC.",
}


class Classifier(nn.Module):
    """A CfC read at each sequence's last real step, then a linear layer.

    The CfC has a mixed memory (an LSTM cell in front of it): the plain CfC learns this task too,
    but with large swings between epochs at this learning rate."""

    def __init__(self, units: int, num_classes: int):
        super().__init__()
        self.rnn = CfC(1, units, return_sequences=False, backbone_units=32, mixed_memory=True)
        self.head = nn.Linear(units, num_classes)

    def __call__(self, x: mx.array, lengths: mx.array) -> mx.array:
        h, _ = self.rnn(x, lengths=lengths)
        return self.head(h)


def waveforms(n: int, seed: int = 0) -> tuple[list, np.ndarray]:
    """``n`` sequences ``(T_i, 1)`` (``MIN_LEN <= T_i <= MAX_LEN``) and their classes ``(n,)``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(CLASSES), size=n)
    seqs = []
    for k in y:
        T = int(rng.integers(MIN_LEN, MAX_LEN + 1))
        u = rng.uniform(0.04, 0.07) * np.arange(T) + rng.uniform(0.0, 1.0)  # in cycles, ~16-25 steps each
        frac = u % 1.0
        wave = [np.sin(2 * np.pi * u), np.where(frac < 0.5, 1.0, -1.0), 4 * np.abs(frac - 0.5) - 1.0, 2 * frac - 1.0][k]
        x = wave * rng.uniform(0.5, 1.5) + rng.uniform(-0.3, 0.3) + rng.normal(0.0, 0.05, T)
        seqs.append(x[:, None].astype(np.float32))
    return seqs, y.astype(np.int32)


def loss_fn(model, x, y, lengths):
    return nn.losses.cross_entropy(model(x, lengths), y, reduction="mean")


def accuracy(model, x, y, lengths):
    return mx.mean(mx.argmax(model(x, lengths), axis=-1) == y)


def main(argv: list[str] | None = None) -> dict:
    args = _common.training_args(__doc__, argv, HELPS, epochs=25, samples=3000, units=32, lr=5e-3, quick=(2, 192))
    timer = _common.Timer()

    train_seqs, y_train = waveforms(args.samples, seed=args.seed)
    test_seqs, y_test = waveforms(max(args.samples // 2, 128), seed=args.seed + 1)
    x_test, len_test = pad_sequences(test_seqs)

    mx.random.seed(args.seed)
    model = Classifier(args.units, len(CLASSES))
    history = fit(
        model,
        loss_fn,
        (train_seqs, y_train),
        optimizer=adam(args.lr),
        epochs=args.epochs,
        batch_size=32,
        validation_data=(x_test, y_test, len_test),
        metrics={"accuracy": accuracy},
        clip_norm=1.0,
        seed=args.seed,
        progress=False,
        callbacks=[
            lambda epoch, logs: print(
                f"epoch {epoch + 1}/{args.epochs}: loss {logs['loss']:.4f}, test accuracy {logs['val_accuracy']:.3f}",
                flush=True,
            )
        ],
    )

    pred = np.argmax(np.array(predict(model, (x_test, len_test))), axis=-1)
    edges = np.arange(MIN_LEN, MAX_LEN + 9, 8)
    edges[-1] = MAX_LEN + 1
    which = np.digitize(len_test, edges) - 1
    acc = [
        float(np.mean(pred[which == b] == y_test[which == b])) if np.any(which == b) else np.nan
        for b in range(len(edges) - 1)
    ]
    counts = [int(np.sum(which == b)) for b in range(len(edges) - 1)]
    metrics = {
        "example": NAME,
        "epochs": args.epochs,
        "train_samples": args.samples,
        "test_samples": len(y_test),
        "test_accuracy": float(np.mean(pred == y_test)),
        "accuracy_by_length": dict(zip([f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:])], acc)),
        "total_seconds": timer(),
    }
    _common.write_metrics(args.out, NAME, metrics)
    with _common.plotting():

        def draw(ax, k, shown):
            shown = sorted(shown, key=lambda i: len(train_seqs[i]))
            for i in shown:
                ax.plot(train_seqs[i][:, 0], lw=1)
            ax.set_xlim(0, MAX_LEN)
            return f"{CLASSES[k]} ({', '.join(str(len(train_seqs[i])) for i in shown)} steps)"

        title = f"Generated waveforms of {MIN_LEN} to {MAX_LEN} steps (three per class)"
        _common.plot_classes(args.out, f"{NAME}_data.png", title, CLASSES, y_train, draw, ylabel="value")
        _common.plot_history(
            history.history,
            args.out,
            f"{NAME}_training.png",
            "CfC with lengths= (train on a list of sequences)",
            keys=["loss", "accuracy"],
        )

        plt = _common.plt()
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        bins = np.arange(len(acc))
        ax.bar(bins, acc, width=0.8, color="tab:blue", alpha=0.8, label="test accuracy")
        for b, a, m in zip(bins, acc, counts):
            if np.isfinite(a):
                ax.text(b, a + 0.02, f"n={m}", ha="center", fontsize=7)
        ax.axhline(1 / len(CLASSES), color="gray", ls="--", lw=1, label="chance")
        ax.set_xticks(bins, [f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:])], fontsize=8)
        ax.set_xlabel("sequence length (steps)")
        ax.set_ylabel("test accuracy")
        ax.set_ylim(0, 1.3)
        ax.legend(loc="upper left", fontsize=8, ncol=2)
        ax.set_title(f"Test accuracy per sequence length (overall {np.mean(pred == y_test):.3f})")
        _common.save(fig, args.out, f"{NAME}_by_length.png")
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
