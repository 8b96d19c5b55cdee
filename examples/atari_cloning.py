"""Atari behaviour cloning: a conv encoder per frame feeding a CfC, trained on
``ncps.datasets.AtariCloningDataset`` (the official chunked ``.npz`` layout).

With the official data (``{root}/data_atari_seq/{env}/train_*.npz``, from
https://people.csail.mit.edu/mlechner/datasets/{env}.zip) this is the official ``atari_torch.py``
example on MLX, with a smaller encoder so that it trains on a laptop CPU. Without it (this
example never downloads) it writes a small **synthetic** stand-in in the same layout, a
Breakout-like toy scene whose "expert" moves the paddle towards the ball, and trains on that; every
plot and printout then says SYNTHETIC.

Plots (in ``--out``): frames with the true and predicted actions, loss and accuracy curves, the
action sequence of a validation chunk, and the CfC's neurons over that chunk.

    python examples/atari_cloning.py                                  # synthetic data
    python examples/atari_cloning.py --root-dir ~/data --env breakout  # the official data
    python examples/atari_cloning.py --quick
"""

from __future__ import annotations

import sys
from pathlib import Path

import _common
import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

from ncps import CfC
from ncps.datasets import AtariCloningDataset, DatasetNotFoundError
from ncps.datasets.atari_cloning import CHUNK_LEN, write_chunk
from ncps.optimizers import adam

NAME = "atari_cloning"
ACTIONS = ["NOOP", "FIRE", "RIGHT", "LEFT"]


# -- a synthetic stand-in for the official data ------------------------------------------------
def _render(ball: tuple[int, int], paddle: int) -> np.ndarray:
    frame = np.zeros((84, 84), np.uint8)
    frame[:, :2] = frame[:, -2:] = frame[:2, :] = 90  # walls
    by, bx = ball
    frame[by - 1 : by + 2, bx - 1 : bx + 2] = 255
    frame[78:80, max(paddle - 6, 2) : paddle + 6] = 180
    return frame


def make_synthetic_atari(root: Path, env: str, n_train: int, n_val: int, seed: int = 0) -> None:
    """Write SYNTHETIC chunks in the official layout: a ball bouncing in a box and a paddle driven
    by an expert (RIGHT / LEFT towards the ball, NOOP when under it, FIRE when the ball is at the
    top wall). Frames are stacked 4 deep, as the DeepMind wrapper does."""
    rng = np.random.default_rng(seed)
    folder = root / "data_atari_seq" / env
    for old in folder.glob("*.npz") if folder.is_dir() else []:
        old.unlink()  # a previous, possibly larger, synthetic set
    for split, n in (("train", n_train), ("val", n_val)):
        for c in range(n):
            by, bx = rng.integers(10, 60), rng.integers(5, 79)
            vy, vx = rng.choice([-3, -2, 2, 3]), rng.choice([-3, -2, 2, 3])
            paddle = int(rng.integers(10, 74))
            history = [_render((by, bx), paddle)] * 4
            obs, actions = [], []
            for _ in range(CHUNK_LEN):
                obs.append(np.stack(history[-4:], axis=-1))
                if by <= 6:
                    action = 1
                elif bx > paddle + 3:
                    action = 2
                elif bx < paddle - 3:
                    action = 3
                else:
                    action = 0
                actions.append(action)
                paddle = int(np.clip(paddle + {2: 4, 3: -4}.get(action, 0), 8, 76))
                by, bx = by + vy, bx + vx
                if not 4 <= by <= 75:
                    vy, by = -vy, int(np.clip(by, 4, 75))
                if not 4 <= bx <= 79:
                    vx, bx = -vx, int(np.clip(bx, 4, 79))
                history.append(_render((by, bx), paddle))
            write_chunk(folder / f"{split}_{c:04d}.npz", np.stack(obs), np.array(actions))


# -- the model ------------------------------------------------------------------------------
class ConvCfC(nn.Module):
    """A conv encoder applied to every frame (channels last), then a CfC over time with a linear
    projection to the action logits (``proj_size``), as in the official example. The encoder is
    much smaller than the official one (4→64→128→128→256 channels at full resolution) so that
    an epoch takes seconds on a CPU: 2×2 average pooling, then two strided convolutions."""

    def __init__(self, n_actions: int, features: int = 64, units: int = 32):
        super().__init__()
        self.conv = nn.Sequential(
            nn.AvgPool2d(2),  # 84 -> 42
            nn.Conv2d(4, 8, kernel_size=6, stride=3),
            nn.ReLU(),  # 42 -> 13
            nn.Conv2d(8, 16, kernel_size=3, stride=2),
            nn.ReLU(),  # 13 -> 6
        )
        self.fc = nn.Linear(6 * 6 * 16, features)
        self.rnn = CfC(features, units, proj_size=n_actions, backbone_units=64)

    def encode(self, x: mx.array) -> mx.array:
        """Per-frame features ``(B, T, features)`` of frames ``(B, T, 84, 84, 4)``."""
        B, T = x.shape[:2]
        z = self.conv(x.reshape(B * T, *x.shape[2:]))
        return nn.relu(self.fc(z.reshape(B * T, -1))).reshape(B, T, -1)

    def __call__(self, x: mx.array, state=None):
        return self.rnn(self.encode(x), state)


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__)
    p.add_argument(
        "--root-dir",
        type=Path,
        default=None,
        help="Folder that holds data_atari_seq/ with the official data; "
        "without it the example writes and uses synthetic data.",
    )
    p.add_argument("--env", default="breakout", help="Atari game of the official data set.")
    p.add_argument("--epochs", type=int, default=20, help="Passes over the training chunks.")
    p.add_argument("--batch-size", type=int, default=8, help="Sequences (chunks of frames) per update.")
    # 3e-3, not torch's usual 1e-3: the run makes only 400 updates (20 epochs of 20 batches), and
    # at 1e-3 the bias-corrected Adam ends at 71.8 % validation accuracy. The 86.9 % this example
    # once reached at 1e-3 came from MLX's uncorrected Adam, whose update is larger by
    # (1 - 0.9^t) / sqrt(1 - 0.999^t): 3.2x at step 1, 6.5x at 10, 3.2x at 100, 1.7x at 400, 2.8x on
    # average over these 400 steps. The corrected Adam with that factor as a learning-rate schedule
    # takes the same steps (norms within 10 %) and follows the same accuracy curve; 3e-3 reaches 90.9 %.
    p.add_argument("--lr", type=float, default=3e-3, help="Learning rate of Adam (updates as torch.optim.Adam does).")
    args = p.parse_args(argv)
    timer = _common.Timer()
    out = args.out

    synthetic = False
    try:
        if args.root_dir is None:
            raise DatasetNotFoundError("no --root-dir given")
        train = AtariCloningDataset(
            args.env, "train", root_dir=args.root_dir, download=False, batch_size=args.batch_size, seed=args.seed
        )
        val = AtariCloningDataset(args.env, "val", root_dir=args.root_dir, download=False, batch_size=args.batch_size)
    except DatasetNotFoundError as exc:
        synthetic = True
        root, env = out / "atari_synthetic", "synthetic_breakout"
        n_train, n_val = (6, 2) if args.quick else (160, 32)
        print(
            f"Official data not used ({str(exc).split('. ')[0]}).\n"
            f"Generating SYNTHETIC stand-in data in {root / 'data_atari_seq' / env} "
            f"({n_train} train / {n_val} val chunks of {CHUNK_LEN} frames).",
            flush=True,
        )
        make_synthetic_atari(root, env, n_train, n_val, seed=args.seed)
        train = AtariCloningDataset(
            env, "train", root_dir=root, download=False, batch_size=args.batch_size, seed=args.seed
        )
        val = AtariCloningDataset(env, "val", root_dir=root, download=False, batch_size=args.batch_size)
    tag = "SYNTHETIC data" if synthetic else f"{args.env} (official data)"
    epochs = 1 if args.quick else args.epochs
    print(train, val, sep="\n")

    mx.random.seed(args.seed)
    model = ConvCfC(len(ACTIONS))
    mx.eval(model.parameters())
    optimizer = adam(args.lr)

    def loss_fn(model, x, y):
        logits, _ = model(x)
        loss = nn.losses.cross_entropy(logits, y, reduction="mean")
        return loss, mx.mean(mx.argmax(logits, axis=-1) == y)  # value_and_grad differentiates the first

    loss_and_grad = nn.value_and_grad(model, loss_fn)

    def evaluate(ds):
        model.eval()
        total_loss = total_acc = count = 0.0
        for x, y in ds:
            loss, acc = loss_fn(model, x, y)
            n = y.size
            total_loss, total_acc, count = total_loss + float(loss) * n, total_acc + float(acc) * n, count + n
        model.train()
        return total_loss / count, total_acc / count

    history = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": []}
    for epoch in range(epochs):
        t = _common.Timer()
        losses, accs, sizes = [], [], []
        for x, y in train:
            (loss, acc), grads = loss_and_grad(model, x, y)
            grads, _ = optim.clip_grad_norm(grads, 1.0)
            optimizer.update(model, grads)
            mx.eval(model.parameters(), optimizer.state, loss, acc)
            losses.append(float(loss))
            accs.append(float(acc))
            sizes.append(y.size)
        val_loss, val_acc = evaluate(val)
        # training values are running means over the epoch's batches (taken before each update)
        values = (np.average(losses, weights=sizes), np.average(accs, weights=sizes), val_loss, val_acc)
        for k, v in zip(history, values):
            history[k].append(float(v))
        print(
            f"epoch {epoch + 1}/{epochs}: loss {values[0]:.4f} acc {values[1]:.3f} | "
            f"val loss {val_loss:.4f} val acc {val_acc:.3f} ({t():.1f}s)",
            flush=True,
        )

    # -- plots --------------------------------------------------------------------------------
    metrics = {
        "example": NAME,
        "data": "synthetic" if synthetic else args.env,
        "epochs": epochs,
        "train_chunks": len(train),
        "val_chunks": len(val),
        "val_accuracy": history["val_accuracy"][-1],
        "val_loss": history["val_loss"][-1],
        "total_seconds": timer(),
    }
    _common.write_metrics(out, NAME, metrics)
    with _common.plotting():
        plt = _common.plt()
        _common.plot_history(
            history, out, f"{NAME}_training.png", f"Conv + CfC behaviour cloning on {tag}", keys=["loss", "accuracy"]
        )
        model.eval()
        x, y = val[0]
        logits, _ = model(x[None])
        pred = np.array(mx.argmax(logits, axis=-1))[0]
        y = np.array(y)
        frames = np.array(x)
        steps = np.linspace(0, CHUNK_LEN - 1, 6).astype(int)
        fig, axes = plt.subplots(1, len(steps), figsize=(2.1 * len(steps), 2.6))
        for ax, s in zip(axes, steps):
            ax.imshow(frames[s, :, :, -1], cmap="gray", vmin=0, vmax=1)
            ok = "ok" if pred[s] == y[s] else "wrong"
            ax.set_title(f"t={s}\ntrue {ACTIONS[y[s]]}\npred {ACTIONS[pred[s]]} ({ok})", fontsize=8)
            ax.axis("off")
        fig.suptitle(f"Validation frames (newest of the 4 stacked) — {tag}", fontsize=10)
        _common.save(fig, out, f"{NAME}_frames.png")

        fig, ax = plt.subplots(figsize=(8, 2.6))
        ax.step(np.arange(CHUNK_LEN), y, where="mid", lw=2, label="expert")
        ax.step(np.arange(CHUNK_LEN), pred, "--", where="mid", label="CfC policy")
        ax.set_yticks(range(len(ACTIONS)), ACTIONS)
        ax.set_xlabel("step")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.set_title(f"Actions over one validation chunk — {tag}")
        _common.save(fig, out, f"{NAME}_actions.png")

        features = model.encode(x[None])
        states = []
        h = mx.zeros((1, model.rnn.state_size))
        for t in range(CHUNK_LEN):
            _, h = model.rnn.rnn_cell(features[:, t], h)
            states.append(h[0])
        _common.plot_activity(
            np.array(mx.stack(states)), out, f"{NAME}_activity.png", f"CfC neurons over one validation chunk — {tag}"
        )
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
