"""A training run for tests/reliability/test_interruption.py (``python -m tests.reliability.train_child
DIR MODE``). MODE ``full``: train 4 epochs; ``resume``: continue from DIR/state.safetensors;
``hang-in-write``: train, and in the 3rd checkpoint write stop half-way (a partial temporary file
on disk) and wait to be killed."""

from __future__ import annotations

import os
import sys
import time

import mlx.core as mx
import numpy as np

import ncps
from tests.reliability.training_run import fit_sequences, noise_task, params_of

EPOCHS = 4


def run(folder: str, mode: str) -> None:
    mx.random.seed(3)
    model = ncps.CfC(3, 6, backbone_units=8, backbone_dropout=0.1)
    data = noise_task(np.random.default_rng(0), 24, 5, 3, 6)
    if mode == "hang-in-write":
        real_save, calls = mx.save_safetensors, [0]

        def slow_save(path, arrays, metadata=None):
            if os.path.basename(path).startswith(".best.safetensors"):
                calls[0] += 1
                if calls[0] == 3:  # half a file, then wait for SIGKILL
                    with open(path, "wb") as f:
                        f.write(b"\x00" * 100)
                        f.flush()
                        os.fsync(f.fileno())
                    open(os.path.join(folder, "in-write"), "w").close()
                    time.sleep(600)
            return real_save(path, arrays, metadata=metadata)

        mx.save_safetensors = slow_save

    def on_epoch(epoch, logs):
        # The checkpoint of this epoch is written; keep a copy of its weights for the parent.
        if mode != "resume":
            np.savez(os.path.join(folder, f"weights-{epoch}.npz"), **params_of(model))

    fit_sequences(
        model,
        data,
        1e-2,
        epochs=EPOCHS,
        batch_size=8,
        seed=5,
        checkpoint_path=os.path.join(folder, "best.safetensors"),
        state_path=os.path.join(folder, "state.safetensors"),
        resume=mode == "resume",
        callbacks=[on_epoch],
        restore_best=False,
    )
    np.savez(os.path.join(folder, f"final-{mode}.npz"), **params_of(model))


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2])
