"""Event-based bit-stream XOR (parity) with a CfC, the CfC paper's benchmark (mini_keras).

A random bit string of length 2…31 is turned into events: one step per change of the bit (plus a
closing step), with the number of bits since the previous event as the elapsed time and padding
after the last event (``ncps.datasets.bitstream_xor``, bit for bit the paper's encoding). The label
is the parity of the ones, so the model has to turn elapsed times into run lengths and count them
mod 2; a model that ignores time cannot do better than chance.

The model is the paper's best one for this task, a mixed-memory CfC (CfC-mmRNN, 64 units, relu
backbone 64), fed ``(events, timespans, mask)``. The paper's code trains on 100,000 strings for
200 epochs (its comments report 99.7 % test accuracy); to get somewhere in a few CPU minutes this
example uses a curriculum instead: strings of at most 3, 5, 7, … bits first, then longer ones, 2,000 fresh strings
per stage, with the learning rate shrinking by a factor 0.75 from one stage to the next. Time is measured in bit periods (the dataset's ``elapsed / pad_size`` times
``pad_size``), so that every stage shares one time unit. The test set is the paper's (10,000
strings, seed 48736).

Plots (in ``--out``): an encoded example, accuracy through the curriculum, test accuracy by string
length, and the hidden state over one test sequence.

    python examples/xor_cfc.py
    python examples/xor_cfc.py --quick
"""

from __future__ import annotations

import sys

import mlx.core as mx
import numpy as np

import _common
from ncps import mini_keras as keras
from ncps.datasets import XOR_TEST_SEED, bitstream_xor
from ncps.optimizers import make_optimizer

NAME = "xor_cfc"
PAD = 32


def inputs(data, pad: int):
    """``(events, timespans in bit periods, mask)`` and labels of a :func:`bitstream_xor` set."""
    return (data.x, data.timespans * pad, data.mask), data.y


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--stages", default="4,6,8,12,16,24,32", help="pad sizes of the curriculum (strings < pad bits)")
    p.add_argument("--samples", type=int, default=2000, help="training strings per stage")
    p.add_argument("--epochs", type=int, default=3, help="epochs per stage")
    p.add_argument("--units", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.002, help="Adam learning rate of the first stage (keras.optimizers.Adam's update)")
    p.add_argument("--decay", type=float, default=0.75, help="learning-rate factor per stage")
    p.add_argument("--test-samples", type=int, default=10_000)
    args = p.parse_args(argv)
    stages = [int(s) for s in args.stages.split(",")]
    n, epochs, n_test = args.samples, args.epochs, args.test_samples
    if args.quick:
        stages, n, epochs, n_test = [4, 8], 128, 1, 256
    timer = _common.Timer()

    test = bitstream_xor(n_test, pad_size=PAD, seed=XOR_TEST_SEED)
    x_test, y_test = inputs(test, PAD)
    probe = min(len(test.y), 2000)  # the curriculum curve uses the first 2,000 test strings
    x_probe, y_probe = tuple(a[:probe] for a in x_test), y_test[:probe]
    mx.random.seed(args.seed)
    model = keras.Sequential([
        keras.layers.InputLayer((None, 1)),
        keras.layers.CfC(args.units, mixed_memory=True, backbone_units=64, backbone_layers=1, activation="relu"),
        keras.layers.Dense(1),
    ])  # fmt: skip
    optimizer = make_optimizer("adam", args.lr, convention="keras")
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"], clipnorm=1.0)
    model.summary()

    curve = []
    for i, pad in enumerate(stages):
        optimizer.learning_rate = args.lr * args.decay**i  # longer strings, smaller steps
        train = bitstream_xor(n, pad_size=pad, seed=args.seed * 1000 + pad)
        val = bitstream_xor(max(n // 4, 64), pad_size=pad, seed=args.seed * 1000 + pad + 500)
        t = _common.Timer()
        history = model.fit(*inputs(train, pad), epochs=epochs, batch_size=64, validation_data=inputs(val, pad),
                            seed=args.seed + i, verbose=0)  # fmt: skip
        test_acc = model.evaluate(x_probe, y_probe, batch_size=500)[1]
        curve.append({"pad": pad, "val_accuracy": history.history["val_accuracy"][-1], "test_accuracy": test_acc})
        print(f"stage {i + 1}/{len(stages)}: strings < {pad:2d} bits, val acc {curve[-1]['val_accuracy']:.3f}, "
              f"test acc (first {probe} test strings) {test_acc:.3f}  [{t():.0f}s]", flush=True)  # fmt: skip

    logits = np.array(model.predict(x_test, batch_size=500))[:, 0]
    correct = (logits > 0) == (test.y == 1)
    accuracy = float(correct.mean())
    print(f"test accuracy: {accuracy:.4f} on {len(test.y)} strings (chance 0.5)")

    # -- plots --------------------------------------------------------------------------------
    out = args.out
    plt = _common.plt()
    example = bitstream_xor(1, pad_size=PAD, seed=XOR_TEST_SEED)
    k = int(example.mask[0].sum())
    fig, axes = plt.subplots(2, 1, figsize=(8, 4), gridspec_kw={"height_ratios": [1, 1.2]})
    # the bit string behind the events: event j sits at bit cumsum(elapsed)[j] - 1 and holds until the next
    ev, el = example.x[0, :k, 0], np.rint(example.timespans[0, :k] * PAD).astype(int)
    at = np.cumsum(el) - 1
    bits = ev[np.searchsorted(at, np.arange(at[-1] + 1), side="right") - 1]
    axes[0].step(np.arange(1, len(bits) + 1), bits, where="mid", color="k")
    axes[0].set_title(f"bit string ({len(bits)} bits, {int(bits.sum())} ones, label {int(example.y[0])})", fontsize=9)
    axes[0].set_yticks([0, 1])
    axes[1].stem(np.arange(k), el, basefmt=" ")
    for j in range(k):
        axes[1].annotate(f"bit {int(ev[j])}", (j, el[j]), textcoords="offset points", xytext=(0, 4), ha="center",
                         fontsize=7)  # fmt: skip
    axes[1].set_xlabel("event (padding to 32 not shown)")
    axes[1].set_ylabel("elapsed bits")
    fig.suptitle("Event-based encoding: one step per change of the bit, with the elapsed time")
    fig.tight_layout()
    _common.save(fig, out, f"{NAME}_encoding.png")

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    pads = [c["pad"] for c in curve]
    axes[0].plot(range(len(pads)), [c["val_accuracy"] for c in curve], "o-", label="stage validation (short strings)")
    axes[0].plot(range(len(pads)), [c["test_accuracy"] for c in curve], "s-",
                 label=f"test (first {probe} strings of 2…31 bits)")  # fmt: skip
    axes[0].set_xticks(range(len(pads)), [f"<{q}" for q in pads])
    axes[0].set_xlabel("curriculum stage (string length)")
    axes[0].set_ylabel("accuracy")
    axes[0].axhline(0.5, color="0.6", ls=":", label="chance")
    axes[0].legend(fontsize=8)
    axes[0].grid(alpha=0.3)
    lengths = np.rint(test.timespans.sum(axis=1) * PAD).astype(int)
    uniq = np.unique(lengths)
    axes[1].bar(uniq, [correct[lengths == L].mean() for L in uniq], color="tab:blue")
    axes[1].axhline(0.5, color="0.6", ls=":")
    axes[1].set_xlabel("string length (bits)")
    axes[1].set_ylabel("test accuracy")
    axes[1].set_ylim(0, 1)
    fig.suptitle(f"CfC-mmRNN on event-based XOR: test accuracy {accuracy:.3f}")
    _common.save(fig, out, f"{NAME}_accuracy.png")

    i = int(np.flatnonzero(test.mask.sum(axis=1) >= 8)[0])
    k = int(test.mask[i].sum())
    states, _ = model.layers[0].sequences(mx.array(x_test[0][i : i + 1, :k]), mx.array(x_test[1][i : i + 1, :k]))
    _common.plot_activity(np.array(states[0]), out, f"{NAME}_activity.png",
                          f"CfC-mmRNN hidden state over the events of one test string (label {int(test.y[i])})",
                          times=np.cumsum(x_test[1][i, :k]))  # fmt: skip

    metrics = {"example": NAME, "test_accuracy": accuracy, "test_strings": len(test.y), "stages": stages,
               "strings_per_stage": n, "epochs_per_stage": epochs, "curriculum": curve,
               "total_seconds": timer()}  # fmt: skip
    _common.write_metrics(out, NAME, metrics)
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
