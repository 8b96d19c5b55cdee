"""Train the official ``ncps.torch`` package on the accuracy benchmark's tasks — runs in a subprocess.

Started by :func:`benchmarks.oracle.run_jobs` (see there for why the official package, which also
imports as ``ncps``, never runs in the benchmark's own process). Usage::

    python accuracy_torch.py jobs.json results.json

``jobs.json``: ``{"threads": 2, "jobs": [job, ...]}`` with each job

.. code-block:: text

    {"id": "...", "layer": "CfC" | "LTC", "units": 32, "seed": 0,
     "kind": "classification" | "regression", "outputs": 4,
     "data": "/tmp/.../task.npz",          # x_train (n, T, F), y_train, x_test, y_test, y_mean, y_std
     "order": "/tmp/.../order.npy",        # (epochs, n_train) int: the sample order of every epoch
     "init_out": "/tmp/.../init.npz",      # where to write the initial state_dict (for ncps.interop)
     "recipe": {"batch": 32, "lr": 5e-3, "clip": 1.0, "eval_batch": 512}}

The model is the official ``CfC`` / ``LTC`` (``return_sequences=False``) followed by a
``torch.nn.Linear`` head on its last output, built after ``torch.manual_seed(seed)``; it trains
with ``torch.optim.Adam(lr, betas=(0.9, 0.999), eps=1e-8)``, cross-entropy (classification) or
MSE on standardised targets (regression), and ``clip_grad_norm_(parameters, clip)`` before each
step. One untimed forward+backward comes first (``warmup_s``). After every epoch the test metric
is computed (accuracy, or RMSE in the target's units) under ``torch.no_grad()``; only the
training epochs count towards the wall time.

``results.json``: ``{"torch_version", "threads", "ncps_file", "results": {id: run}}`` with each run
``{"status": "ok", "warmup_s", "epochs": [{"epoch", "train_s", "metric", "loss"}, ...]}`` or a failure.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import ncps  # the official package, thanks to the bootstrap
import ncps.torch as nt
import timing


class Net(torch.nn.Module):
    """The official recurrent layer and a linear head on its last output."""

    def __init__(self, layer: str, inputs: int, units: int, outputs: int):
        super().__init__()
        cls = {"CfC": nt.CfC, "LTC": nt.LTC}[layer]
        self.rnn = cls(inputs, units, return_sequences=False)
        self.head = torch.nn.Linear(units, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out)


def loss_fn(kind: str):
    if kind == "classification":
        return torch.nn.functional.cross_entropy
    return lambda pred, y: torch.nn.functional.mse_loss(pred[:, 0], y)


def test_metric(model: Net, data, kind: str, eval_batch: int) -> float:
    """Accuracy, or RMSE in the target's units (the model predicts standardised targets)."""
    x, y = torch.from_numpy(data["x_test"]), data["y_test"]
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i : i + eval_batch]) for i in range(0, len(x), eval_batch)]).numpy()
    model.train()
    if kind == "classification":
        return float((pred.argmax(axis=1) == y).mean())
    pred = pred[:, 0] * float(data["y_std"]) + float(data["y_mean"])
    return float(np.sqrt(np.mean((pred - y) ** 2)))


def warm_up(model: Net, criterion, x: torch.Tensor, y: torch.Tensor) -> float:
    """One untimed forward+backward (no step: the weights stay): torch's first backward pays a
    one-off start-up of seconds that says nothing about training speed."""
    t0 = time.perf_counter()
    criterion(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def train(job: dict) -> dict:
    data = np.load(job["data"])
    order = np.load(job["order"])
    recipe, kind = job["recipe"], job["kind"]
    torch.manual_seed(int(job["seed"]))
    x = torch.from_numpy(data["x_train"])
    y = torch.from_numpy(data["y_train"] if kind == "classification" else data["y_train_std"])
    model = Net(job["layer"], x.shape[-1], int(job["units"]), int(job["outputs"]))
    np.savez(job["init_out"], **{k: v.detach().numpy() for k, v in model.state_dict().items()})
    opt = torch.optim.Adam(model.parameters(), lr=recipe["lr"], betas=(0.9, 0.999), eps=1e-8)
    criterion, batch, train_s, epochs = loss_fn(kind), int(recipe["batch"]), 0.0, []
    warmup_s = warm_up(model, criterion, x[:batch], y[:batch])
    for epoch, perm in enumerate(order):
        t0, losses = time.perf_counter(), []
        for start in range(0, len(perm), batch):
            idx = torch.from_numpy(perm[start : start + batch])
            opt.zero_grad(set_to_none=True)
            loss = criterion(model(x[idx]), y[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe["clip"])
            opt.step()
            losses.append(float(loss))
        train_s += time.perf_counter() - t0
        metric = test_metric(model, data, kind, int(recipe["eval_batch"]))
        epochs.append({"epoch": epoch + 1, "train_s": train_s, "metric": metric, "loss": float(np.mean(losses))})
    return {"status": "ok", "warmup_s": warmup_s, "epochs": epochs}


def main(jobs_path: str, out_path: str) -> None:
    spec = json.loads(Path(jobs_path).read_text())
    torch.set_num_threads(int(spec.get("threads", 2)))
    results = timing.run_each(
        spec["jobs"], train, "official", lambda r: f"{r['epochs'][-1]['metric']} in {r['epochs'][-1]['train_s']:.1f} s"
    )
    out = {
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "ncps_file": ncps.__file__,
        "results": results,
    }
    Path(out_path).write_text(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
