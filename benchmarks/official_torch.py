"""Time the official ``ncps.torch`` package (ncps 1.0.1, PyTorch, CPU) — runs in a subprocess.

Our package and the official one both import as ``ncps``, so this script never runs in the
benchmark's own process: :mod:`benchmarks.oracle` starts it with a bootstrap that removes the
editable-install finder of our package and puts the oracle directory (``.oracle/``) first on
``sys.path`` (see ``oracle.py``, the one oracle runner). Usage::

    python official_torch.py jobs.json results.json
    python official_torch.py jobs.json --serve     # rounds on demand (official_common.serve)

``jobs.json``: ``{"threads": 2, "jobs": [job, ...]}`` with each job

.. code-block:: text

    {"id": "...", "layer": "LTC" | "CfC" | "LTCCell" | "CfCCell" | "WiredCfCCell",
     "input_size": 16, "units": 64 | {"wiring": "AutoNCP", "args": [64, 8], "kwargs": {}},
     "kwargs": {...},              # constructor keywords of the official class
     "batch": 32, "time": 100,     # time is ignored for cells
     "pass": "forward" | "fwd+bwd" | "step",
     "policy": {"warmup": 1, "reps": 5, "min_reps": 1, "budget_s": 5.0}}

What is timed (``torch.set_num_threads(threads)``, float32, CPU):

- ``forward``: ``model(x)`` under ``torch.no_grad()``;
- ``fwd+bwd``: ``model(x)[0].sum().backward()``, the gradients of every trainable parameter
  (reset to None at the start of each timed call, like a training step's ``zero_grad``);
- ``step``: one cell step at the given batch, ``cell(x, h, 1.0)`` under ``torch.no_grad()``,
  feeding the new state back in, as a streaming application would.

With ``"compile": true`` at the top level the cell's ``forward`` runs under ``torch.compile``
(inductor, CPU): the cell of a sequence layer (the layer's time loop stays in Python: compiling the
whole layer would unroll T steps into one graph, minutes of compilation), or the cell itself for
``step`` jobs. The first (warm-up) call compiles; its time is reported as ``compile_s``.

``results.json``: ``{"torch_version", "threads", "ncps_file", "results": {id: measurement}}``,
each measurement as produced by :func:`timing.measure` or :func:`timing.failure`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

import ncps  # the official package, thanks to the bootstrap
import ncps.torch as nt
import timing
from official_common import build_layer, official_units, serve


def build(job):
    layer, n_in, kw = job["layer"], job["input_size"], dict(job.get("kwargs", {}))
    return build_layer(nt, layer, n_in, official_units(job["units"]), kw)


def state_size(model) -> int:
    if hasattr(model, "state_size"):
        return int(model.state_size)
    return int(model.hidden_size)


def compile_cell(model) -> None:
    """Put the step of ``model`` (a layer's ``rnn_cell``, or the cell itself) under ``torch.compile``."""
    cell = getattr(model, "rnn_cell", model)
    cell.forward = torch.compile(cell.forward, dynamic=False)


def make_call(job, compiled: bool = False):
    torch.manual_seed(0)
    device = torch.device(job.get("device", "cpu"))  # "cuda": the GPU section
    model = build(job).to(device)
    if compiled:
        compile_cell(model)
    B, kind = int(job["batch"]), job["pass"]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if kind == "step":
        model.eval()
        x = torch.randn(B, job["input_size"])
        h = [torch.randn(B, state_size(model)) * 0.1]

        def call():
            with torch.no_grad():
                _, h[0] = model(x, h[0], 1.0)

        return call
    x = torch.randn(B, int(job["time"]), job["input_size"], device=device)
    if kind == "forward":
        model.eval()

        def call():
            with torch.no_grad():
                model(x)
            sync()

        return call
    if kind == "fwd+bwd":
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]

        def call():
            for p in params:
                p.grad = None
            out, _ = model(x)
            out.sum().backward()
            sync()

        return call
    raise ValueError(f"unknown pass {kind!r}")


def prepare(job, compiled: bool = False):
    """``(call, extra)``: the job's timed call, compiled by a first call under torch.compile
    (``extra`` then holds its time, ``compile_s``)."""
    call = make_call(job, compiled)
    if not compiled:
        return call, {}
    t0 = time.perf_counter()
    call()  # compiles
    return call, {"compile_s": time.perf_counter() - t0}


def main(jobs_path: str, out_path: str) -> None:
    """Time every job once (``out_path`` a file), or serve rounds on stdin (``out_path`` is
    ``--serve``: :func:`official_common.serve`, the interleaved rounds of the benchmark)."""
    spec = json.loads(Path(jobs_path).read_text())
    threads = int(spec.get("threads", 2))
    torch.set_num_threads(threads)
    compiled = bool(spec.get("compile", False))
    info = {"torch_version": torch.__version__, "threads": torch.get_num_threads(), "ncps_file": ncps.__file__}
    if out_path == "--serve":
        serve(spec["jobs"], lambda job: prepare(job, compiled), info)
        return
    results = {}
    for job in spec["jobs"]:
        try:
            call, extra = prepare(job, compiled)
            results[job["id"]] = dict(timing.measure(call, timing.Policy.from_dict(job.get("policy", {}))), **extra)
        except Exception as exc:  # one broken job must not lose the others
            results[job["id"]] = timing.failure("error", exc)
        print(
            f"[official] {job['id']}: {results[job['id']].get('median_s', results[job['id']].get('reason'))}",
            file=sys.stderr,
            flush=True,
        )
    Path(out_path).write_text(json.dumps({**info, "results": results}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
