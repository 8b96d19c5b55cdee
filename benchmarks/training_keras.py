"""Train the official ``ncps.keras`` on Keras 3 + JAX with ``model.fit`` — runs in a subprocess.

The Keras peer of the training-throughput section (``benchmarks/training.py``), started by
:func:`benchmarks.oracle.run_jobs` with ``peer="keras-jax"`` (the official package also imports as
``ncps``; JAX and Keras come from ``.peers/``). Usage::

    KERAS_BACKEND=jax python training_keras.py jobs.json results.json

``jobs.json``: ``{"threads": 2, "jobs": [job, ...]}`` with each job

.. code-block:: text

    {"id": "...", "units": 32, "outputs": 9, "seed": 0, "epochs": 6, "metrics": [] | ["accuracy"],
     "data": "/tmp/.../data.npz",     # x_train (n, T, F) float32, y_train (n,) int
     "recipe": {"batch": 32, "lr": 5e-3, "clip": 1.0}}

The model is ``keras.Sequential([Input((T, F)), ncps.keras.CfC(units), Dense(outputs)])``
compiled with ``keras.optimizers.Adam(lr, global_clipnorm=clip)`` (bias-corrected; the *global*
norm, as ``torch.nn.utils.clip_grad_norm_``: Keras' ``clipnorm`` would clip every tensor on its
own), sparse cross-entropy on logits and ``jit_compile=True`` (XLA compiles the whole train step);
``model.fit(x, y, batch_size, epochs, shuffle=True, verbose=0)`` is Keras' usual loop, its data
adapter included. A callback takes the wall time of every epoch (the first includes the XLA
compilation). ``results.json``: ``{"peer_version", "threads", "ncps_file", "results": {id: run}}``
with each run ``{"status": "ok", "epoch_times_s": [...], "losses": [...]}`` or a failure.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import keras
import numpy as np

import ncps  # the official package, thanks to the bootstrap
import ncps.keras as nk
import timing


class EpochTimer(keras.callbacks.Callback):
    """The wall time of every epoch of ``model.fit``."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.t0)


def train(job: dict) -> dict:
    with np.load(job["data"]) as data:
        x, y = data["x_train"], data["y_train"].astype(np.int32)
    recipe = job["recipe"]
    keras.utils.set_random_seed(int(job["seed"]))
    model = keras.Sequential(
        [keras.Input(x.shape[1:]), nk.CfC(int(job["units"])), keras.layers.Dense(int(job["outputs"]))]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=recipe["lr"], global_clipnorm=recipe["clip"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=list(job["metrics"]),
        jit_compile=True,
    )
    timer = EpochTimer()
    history = model.fit(
        x, y, batch_size=int(recipe["batch"]), epochs=int(job["epochs"]), shuffle=True, verbose=0, callbacks=[timer]
    )
    return {"status": "ok", "epoch_times_s": timer.times, "losses": [float(v) for v in history.history["loss"]]}


def main(jobs_path: str, out_path: str) -> None:
    spec = json.loads(Path(jobs_path).read_text())
    results = timing.run_each(spec["jobs"], train, "keras-jax", lambda r: f"epochs of {r['epoch_times_s']} s")
    out = {
        "peer_version": f"keras {keras.__version__} + jax {jax.__version__} (jit)",
        "threads": int(spec.get("threads", 2)),
        "ncps_file": ncps.__file__,
        "results": results,
    }
    Path(out_path).write_text(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
