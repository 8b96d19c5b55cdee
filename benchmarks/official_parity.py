"""Runs the official `ncps` PyTorch package (ncps==1.0.1) as a numerical oracle, in its own process.

Our package is also imported as `ncps`, so the official one cannot live in the same environment:
`benchmarks/oracle.py` (`run_parity(spec)`) runs this script in a subprocess whose bootstrap puts
the official install (`.oracle/`, made by scripts/bootstrap.sh) first. By hand:

    pip install --no-deps --target .oracle ncps==1.0.1
    PYTHONPATH=.oracle python benchmarks/official_parity.py spec.json out.npz

spec.json (all keys but "layer" and "input_size" optional):
    {"layer": "CfC" | "LTC" | "CfCCell" | "LTCCell" | "WiredCfCCell",
     "input_size": 8,
     "units": 16                                   # or a wiring:
     "units": {"wiring": "AutoNCP", "args": [16, 4], "kwargs": {"seed": 3}},
     "kwargs": {...},                              # constructor keyword arguments of the official class
     "batch": 3, "time": 7, "seed": 0,
     "batch_first": true,                          # layout of x for the sequence layers
     "timespans": "none" | "per_sample",          # per_sample: (B, T) values in [0.2, 2.0]
     "initial_state": false,                       # random initial state (and c for mixed memory)
     "grad": true}                                 # also gradients of sum(output * R), R fixed random

out.npz holds: x, [timespans], [h0, c0], output, state (and state_c for mixed memory), R,
every entry of the module's state_dict as "param/<key>", and with grad: "grad/x" and "grad/<key>".
With per-sample timespans the official sequence wrappers are broken (ncps issues #81-#83), so the
oracle runs the wrappers' own loop over the official cells with the elapsed time shaped (B, 1).
"""

import json
import sys

import numpy as np
import torch

import ncps.torch as nt  # the official package, thanks to the bootstrap
from ncps.torch.lstm import LSTMCell  # noqa: F401  (imported by the wrappers too)
from official_common import build_layer, official_units


def build(spec):
    kw = dict(spec.get("kwargs", {}))
    return build_layer(nt, spec["layer"], spec["input_size"], official_units(spec.get("units", 16)), kw)


def run_sequence(m, x, ts, hx, batch_first):
    """The official wrappers' loop (ncps/torch/cfc.py, ltc.py) with ts shaped (B, 1)."""
    seq_dim = 1 if batch_first else 0
    B, T = x.shape[1 - seq_dim], x.shape[seq_dim]
    mixed = m.use_mixed
    is_cfc = isinstance(m, nt.CfC)
    h, c = hx if mixed else (hx, None)
    outputs = []
    for t in range(T):
        x_t = x[:, t] if batch_first else x[t]
        t_t = (ts[:, t] if batch_first else ts[t]).reshape(B, 1)
        if mixed:
            h, c = m.lstm(x_t, (h, c))
        out, h = m.rnn_cell.forward(x_t, h, t_t)
        if m.return_sequences:
            outputs.append(m.fc(out) if is_cfc else out)
    if m.return_sequences:
        readout = torch.stack(outputs, dim=seq_dim)
    else:
        readout = m.fc(out) if is_cfc else out
    return readout, ((h, c) if mixed else h)


def main(spec_path, out_path):
    spec = json.load(open(spec_path))
    torch.manual_seed(spec.get("seed", 0))
    rng = np.random.default_rng(spec.get("seed", 0))
    m = build(spec)
    B, T, n_in = spec.get("batch", 3), spec.get("time", 7), spec["input_size"]
    layer = spec["layer"]
    sequence = layer in ("CfC", "LTC")
    batch_first = spec.get("kwargs", {}).get("batch_first", True)
    shape = ((B, T, n_in) if batch_first else (T, B, n_in)) if sequence else (B, n_in)
    out = {"x": rng.normal(size=shape).astype(np.float32)}
    x = torch.tensor(out["x"], requires_grad=True)
    ts = None
    if spec.get("timespans", "none") == "per_sample":
        tshape = ((B, T) if batch_first else (T, B)) if sequence else (B, 1)
        out["timespans"] = rng.uniform(0.2, 2.0, size=tshape).astype(np.float32)
        ts = torch.tensor(out["timespans"])
    cell = m.rnn_cell if sequence else m
    state_size = getattr(cell, "state_size", None) or cell.hidden_size
    hx = None
    if spec.get("initial_state", False) or not sequence:
        out["h0"] = rng.normal(scale=0.5, size=(B, state_size)).astype(np.float32)
        hx = torch.tensor(out["h0"])
        if sequence and m.use_mixed:
            out["c0"] = rng.normal(scale=0.5, size=(B, state_size)).astype(np.float32)
            hx = (hx, torch.tensor(out["c0"]))
    if sequence and ts is not None:
        if hx is None:
            z = torch.zeros(B, state_size)
            hx = (z, torch.zeros(B, state_size)) if m.use_mixed else z
        output, state = run_sequence(m, x, ts, hx, batch_first)
    elif sequence:
        output, state = m(x, hx)
    elif layer == "LTCCell":
        output, state = m(x, hx, ts if ts is not None else 1.0)
    else:
        output, state = m(x, hx, ts if ts is not None else 1.0)
    out["output"] = output.detach().numpy()
    if isinstance(state, tuple):
        out["state"], out["state_c"] = state[0].detach().numpy(), state[1].detach().numpy()
    else:
        out["state"] = state.detach().numpy()
    for k, v in m.state_dict().items():
        out["param/" + k] = v.detach().numpy()
    if spec.get("grad", True):
        out["R"] = rng.normal(size=out["output"].shape).astype(np.float32)
        (output * torch.tensor(out["R"])).sum().backward()
        out["grad/x"] = x.grad.numpy()
        for k, p in m.named_parameters():
            if p.grad is not None:
                out["grad/" + k] = p.grad.numpy()
    np.savez(out_path, **out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
