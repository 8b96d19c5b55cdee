"""Irregularly sampled time-series classification with a CfC and per-sample timespans (mini_keras).

Each sequence is a noisy sinusoid of one of three frequencies, observed at random times, each
sequence at its own mean sampling rate; the task is to name the frequency
(``ncps.datasets.irregular_sine_classification``). A fast signal sampled densely looks like a slow
one sampled sparsely, so the values alone are ambiguous. The gaps are given to the CfC as
``timespans``, passed Keras-``ncps`` style as ``model.fit((x, timespans), y)``. A second, identical
model that is told every gap is 1 shows what the elapsed times are worth.

Plots (in ``--out``): sample sequences on their real time axes, accuracy and loss curves of both
models, the confusion matrix, and the CfC's hidden state over one sequence.

    python examples/irregular_cfc.py
    python examples/irregular_cfc.py --quick
"""

from __future__ import annotations

import sys

import _common
import mlx.core as mx
import numpy as np

from ncps import mini_keras as keras
from ncps.datasets import irregular_sine_classification
from ncps.optimizers import make_optimizer

NAME = "irregular_cfc"
CLASSES = ["0.25 Hz", "0.5 Hz", "0.75 Hz"]
VARIANTS = {"with_timespans": "with timespans", "unit_timespans": "timespans = 1"}
HELPS = {
    "epochs": "Training epochs of each of the two models.",
    "samples": "Training plus validation sequences (a fifth is held out for validation).",
    "units": "CfC neurons (and backbone units).",
    "lr": "Learning rate of Adam (updates as keras.optimizers.Adam does). At 5e-3 the test accuracy "
    "swings between 39 %% and 98 %% with the seed; at 2e-3 it is 97-99 %%.",
}


def build_model(units: int, seq_len: int) -> keras.Sequential:
    return keras.Sequential(
        [
            keras.layers.InputLayer((seq_len, 1)),
            keras.layers.CfC(units, backbone_units=units, backbone_layers=1),
            keras.layers.Dense(len(CLASSES)),
        ]
    )


def main(argv: list[str] | None = None) -> dict:
    args = _common.training_args(__doc__, argv, HELPS, epochs=15, samples=1600, units=32, lr=2e-3, quick=(2, 160))
    seq_len = 32
    timer = _common.Timer()

    train = irregular_sine_classification(n=args.samples, seq_len=seq_len, n_classes=len(CLASSES), seed=args.seed)
    test = irregular_sine_classification(
        n=max(args.samples // 4, 64), seq_len=seq_len, n_classes=len(CLASSES), seed=args.seed + 1
    )

    results, histories, models = {}, {}, {}
    for variant in VARIANTS:
        mx.random.seed(args.seed)
        model = build_model(args.units, seq_len)
        model.compile(
            optimizer=make_optimizer("adam", args.lr, convention="keras"),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            clipnorm=1.0,
        )
        if variant == "with_timespans":
            model.summary()
            x_train, x_test = (train.x, train.timespans), (test.x, test.timespans)
        else:
            x_train = (train.x, np.ones_like(train.timespans))
            x_test = (test.x, np.ones_like(test.timespans))
        print(f"--- CfC {VARIANTS[variant]} ---", flush=True)
        t = _common.Timer()
        history = model.fit(
            x_train, train.y, epochs=args.epochs, batch_size=32, validation_split=0.2, seed=args.seed, verbose=2
        )
        loss, acc = model.evaluate(x_test, test.y, batch_size=128)
        results[variant] = {"test_accuracy": acc, "test_loss": loss, "train_seconds": t()}
        histories[variant], models[variant] = history.history, (model, x_test)
        print(f"{VARIANTS[variant]}: test accuracy {acc:.3f}", flush=True)

    out = args.out
    metrics = {
        "example": NAME,
        "epochs": args.epochs,
        "train_samples": int(args.samples * 0.8),
        "test_samples": len(test.y),
        **{f"{k}_{variant}": v for variant, r in results.items() for k, v in r.items()},
        "total_seconds": timer(),
    }
    _common.write_metrics(out, NAME, metrics)
    with _common.plotting():

        def draw(ax, k, shown):  # the data on their real time axes
            for i in shown:
                ax.plot(np.cumsum(train.timespans[i]), train.x[i, :, 0], ".-", lw=0.8, ms=4)
            return f"class {k}: {CLASSES[k]}"

        title = "Irregularly sampled sinusoids (three samples per class)"
        xlabel = "time (each sample at its own rate)"
        _common.plot_classes(out, f"{NAME}_data.png", title, CLASSES, train.y, draw, xlabel, "observation")

        plt = _common.plt()
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        for (variant, label), color in zip(VARIANTS.items(), ("tab:blue", "tab:orange")):
            h = histories[variant]
            ep = np.arange(1, len(h["loss"]) + 1)
            acc = results[variant]["test_accuracy"]
            axes[0].plot(ep, h["val_accuracy"], color=color, label=f"{label}: validation (test {acc:.2f})")
            axes[0].plot(ep, h["accuracy"], "--", color=color, alpha=0.5, label=f"{label}: training")
            axes[1].plot(ep, h["val_loss"], color=color)
            axes[1].plot(ep, h["loss"], "--", color=color, alpha=0.5)
        axes[0].set_title("accuracy", fontsize=10)
        axes[1].set_title("loss", fontsize=10)
        for ax in axes:
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        # one legend under both panels, where it covers no curve
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=9, frameon=False)
        fig.suptitle("CfC on irregularly sampled data: giving the elapsed time matters")
        _common.save(fig, out, f"{NAME}_training.png")

        model, x_test = models["with_timespans"]
        pred = np.array(mx.argmax(model.predict(x_test, batch_size=128), axis=-1))
        title = "Confusion matrix (test, with timespans)"
        _common.plot_confusion(test.y, pred, CLASSES, out, f"{NAME}_confusion.png", title)

        cfc = model.layers[0]
        i = int(np.flatnonzero(test.y == 1)[0])
        states, _ = cfc.sequences(mx.array(test.x[i : i + 1]), mx.array(test.timespans[i : i + 1]))
        _common.plot_activity(
            np.array(states[0]),
            out,
            f"{NAME}_activity.png",
            f"CfC hidden state over one test sequence ({CLASSES[1]})",
            times=np.cumsum(test.timespans[i]),
        )
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
