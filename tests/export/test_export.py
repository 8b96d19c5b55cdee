"""ncps.export: every form reproduces the model's reference path over 100 steps (to 1e-5).

C through a harness compiled with gcc here (tests/export/harness.c), ONNX through onnxruntime,
.mlxfn through mx.import_function in a subprocess where ``import ncps`` fails.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest

import ncps
from ncps import CTGRU, CTRNN, LTC, CfC, CfCCell, LTCCell, wirings
from ncps.export import to_c, to_mlxfn, to_onnx

HERE = Path(__file__).parent
T, B = 100, 3
TOL = 1e-5
GCC = shutil.which("gcc") or shutil.which("cc")
ARM_GCC = shutil.which("arm-none-eabi-gcc")
C_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def _models() -> dict:
    mx.random.seed(7)
    ncp = wirings.NCP(6, 4, 2, 3, 3, 2, 3)
    return {
        "cfc_default": CfC(5, 12, backbone_units=16),
        "cfc_pure_gelu_2layers": CfC(5, 12, mode="pure", activation="gelu", backbone_units=[8, 9]),
        "cfc_no_gate_mixed_proj": CfC(5, 12, mode="no_gate", mixed_memory=True, proj_size=3, activation="silu"),
        "cfc_relu_last_step": CfC(5, 12, activation="relu", backbone_units=8, return_sequences=False),
        "cfc_seed_style_wiring": CfC(cell=CfCCell(5, wiring=wirings.AutoNCP(10, 3), backbone_layers=0)),
        "wired_cfc_autoncp": CfC(5, wirings.AutoNCP(16, 3), mode="default"),
        "wired_cfc_ncp_pure_mixed": CfC(5, ncp, mode="pure", mixed_memory=True),
        "ltc_ncp": LTC(5, ncp, ode_unfolds=4),
        "ltc_random_linear_mixed": LTC(
            5, wirings.Random(8, 3, sparsity_level=0.5), input_mapping="linear", output_mapping=None, mixed_memory=True
        ),
        "ltc_cell_explicit_constraints": LTC(cell=LTCCell(wirings.FullyConnected(6, 2), 5, ode_unfolds=3)),
        "ctrnn": CTRNN(5, 8, activation="softplus"),
        "ctgru": CTGRU(5, 4, num_timescales=3),
    }


MODELS = _models()
SEQUENCE_ONLY = {
    "cfc_bidirectional": CfC(5, 8, backbone_units=8, bidirectional=True),
    "ltc_bidirectional_ave_last_mixed": LTC(
        5, 6, bidirectional=True, merge_mode="ave", return_sequences=False, mixed_memory=True
    ),
    "cfc_bidirectional_tuple_time_major": CfC(
        5, 6, backbone_units=8, bidirectional=True, merge_mode=None, batch_first=False
    ),
}


def _inputs(model, batch: int = B):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, T, model.input_size)).astype(np.float32)
    dt = rng.uniform(0.1, 1.5, size=(batch, T)).astype(np.float32)
    dt[:, 7] = 0.0  # a zero elapsed time (LTC: the state is kept)
    return x, dt


def _state_arrays(state) -> list[np.ndarray]:
    if isinstance(state, (tuple, list)):
        return [a for s in state for a in _state_arrays(s)]
    return [np.array(state)]


def _reference(model, x, dt, state=None):
    """``model(x)`` on the reference path, batch-first outputs and flat state arrays."""
    batch_first = model.batch_first
    with ncps.kernels.use("reference"):
        xs = mx.array(x) if batch_first else mx.array(x).transpose(1, 0, 2)
        ts = mx.array(dt) if batch_first else mx.array(dt).T
        y, s = model(xs, state, timespans=ts)
    ys = list(y) if isinstance(y, tuple) else [y]
    ys = [np.array(a) for a in ys]
    if not batch_first and model.return_sequences:
        ys = [a.transpose(1, 0, 2) for a in ys]
    return ys, _state_arrays(s)


def _close(got, want, what: str = ""):
    assert len(got) == len(want), what
    for g, w in zip(got, want):
        assert g.shape == w.shape, what
        np.testing.assert_allclose(g, w, atol=TOL, rtol=0, err_msg=what)


# -- C99 -----------------------------------------------------------------------------------------


def _build_c(model, directory: Path, name: str = "policy") -> Path:
    to_c(model, directory, name)
    up, exe = name.upper(), directory / name
    defs = [f'-DH_HEADER="{name}.h"', f"-DH_INPUTS={up}_INPUTS", f"-DH_OUTPUTS={up}_OUTPUTS"]
    defs += [f"-DH_STATE={up}_STATE_SIZE", f"-DH_STEP={name}_step"]
    cmd = [GCC, *C_FLAGS, *defs, "-I", str(directory), str(HERE / "harness.c"), str(directory / f"{name}.c")]
    subprocess.run([*cmd, "-o", str(exe), "-lm"], check=True, capture_output=True, text=True)
    return exe


def _run_c(exe: Path, x: np.ndarray, dt: np.ndarray, state: np.ndarray, outputs: int):
    rows = np.concatenate([x, dt[:, None]], axis=1).astype(np.float32)
    feed = np.int32(len(x)).tobytes() + rows.tobytes() + state.astype(np.float32).tobytes()
    out = np.frombuffer(subprocess.run([str(exe)], input=feed, capture_output=True, check=True).stdout, np.float32)
    return out[: len(x) * outputs].reshape(len(x), outputs), out[len(x) * outputs :]


@pytest.mark.skipif(GCC is None, reason="no C compiler (gcc) on this machine")
@pytest.mark.parametrize("key", sorted(MODELS))
def test_c_matches_model(key, tmp_path):
    model = MODELS[key]
    x, dt = _inputs(model, 1)
    rng = np.random.default_rng(1)
    N = model.state_size
    state = [rng.normal(size=(1, N)).astype(np.float32) for _ in range(2 if model.mixed_memory else 1)]
    ys, s = _reference(model, x, dt, tuple(mx.array(a) for a in state) if model.mixed_memory else mx.array(state[0]))
    exe = _build_c(model, tmp_path)
    y_c, s_c = _run_c(exe, x[0], dt[0], np.concatenate([a[0] for a in state]), model.output_size)
    y_ref = ys[0][0] if model.return_sequences else ys[0]
    _close([y_c if model.return_sequences else y_c[-1:]], [y_ref])
    _close([s_c], [np.concatenate([a[0] for a in s])])


@pytest.mark.skipif(GCC is None, reason="no C compiler (gcc) on this machine")
def test_c_invalid_dt_gives_nan_and_reset_zeroes(tmp_path):
    model = MODELS["ltc_ncp"]
    exe = _build_c(model, tmp_path)
    x = np.ones((2, model.input_size), np.float32)
    _, s = _run_c(exe, x, np.array([1.0, -1.0], np.float32), np.zeros(model.state_size), model.output_size)
    assert np.isnan(s).all()
    header = (tmp_path / "policy.h").read_text()
    source = (tmp_path / "policy.c").read_text()
    assert f"#define POLICY_STATE_SIZE {model.state_size}" in header
    assert "void policy_reset(float *state);" in header
    assert "malloc(" not in source and "#include <math.h>" in source
    includes = [l for l in source.splitlines() if l.startswith("#include")]
    assert includes == ['#include "policy.h"', "#include <math.h>"]
    # No mutable global: every file-scope array is static const.
    assert all(l.startswith("static const ") for l in source.splitlines() if l.endswith("] = {"))


def test_c_sparse_wiring_storage_grows_with_synapses(tmp_path):
    """The LTC's recurrent synapses are stored per synapse (compressed rows), not units²."""
    wiring = wirings.NCP(12, 6, 1, 6, 4, 6, 6)
    model = LTC(32, wiring)
    to_c(model, tmp_path, "lane")
    source = (tmp_path / "lane.c").read_text()
    synapses = model.rnn_cell.synapse_count
    assert synapses < 19 * 19
    assert "static const float lane_ltc_r_w" in source
    line = next(l for l in source.splitlines() if l.startswith("static const float lane_ltc_r_w"))
    assert line.endswith(f"[{synapses}] = {{")


def test_c_refuses_bidirectional_and_bad_names(tmp_path):
    with pytest.raises(NotImplementedError, match="bidirectional"):
        to_c(SEQUENCE_ONLY["cfc_bidirectional"], tmp_path)
    with pytest.raises(ValueError, match="C identifier"):
        to_c(MODELS["ctrnn"], tmp_path, "my-policy")
    assert list(tmp_path.iterdir()) == []


def test_c_writes_atomically(tmp_path, monkeypatch):
    model = MODELS["ctrnn"]
    to_c(model, tmp_path)
    before = (tmp_path / "policy.c").read_text()

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(ncps.persistence.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        to_c(MODELS["ctgru"], tmp_path)
    assert (tmp_path / "policy.c").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.c", "policy.h"]


ARM_MATH_H = """#define NAN (__builtin_nanf(""))
#define INFINITY (__builtin_inff())
float expf(float);
float tanhf(float);
float fabsf(float);
float erff(float);
float log1pf(float);
"""


@pytest.mark.skipif(ARM_GCC is None, reason="arm-none-eabi-gcc is not installed (Debian package gcc-arm-none-eabi)")
@pytest.mark.parametrize("which", ["lane_keeping_ltc", "autoncp_64_8_cfc"])
def test_c_compiles_for_cortex_m4(which, tmp_path):
    if which == "lane_keeping_ltc":  # the NCP paper's 19-neuron lane-keeping network, 32 inputs
        model = LTC(32, wirings.NCP(12, 6, 1, 6, 4, 6, 6))
    else:
        model = CfC(32, wirings.AutoNCP(64, 8))
    to_c(model, tmp_path, "policy")
    obj = tmp_path / "policy.o"
    flags = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
    probe = subprocess.run(
        [ARM_GCC, *flags, "-E", "-x", "c", "-"], input="#include <math.h>\n", capture_output=True, text=True
    )
    if probe.returncode != 0:
        # The compiler without its C library (Debian's libnewlib-arm-none-eabi, a Recommends of
        # gcc-arm-none-eabi): compile against a header with the C99 declarations the file uses.
        (tmp_path / "libc").mkdir()
        (tmp_path / "libc" / "math.h").write_text(ARM_MATH_H)
        flags += ["-isystem", str(tmp_path / "libc")]
    subprocess.run([ARM_GCC, *C_FLAGS, *flags, "-c", str(tmp_path / "policy.c"), "-o", str(obj)], check=True)
    size = shutil.which("arm-none-eabi-size")
    if size:
        text, data, bss = (
            subprocess.run([size, str(obj)], capture_output=True, text=True).stdout.split("\n")[1].split()[:3]
        )
        assert int(data) == 0 and int(bss) == 0  # no mutable globals: everything is in flash
        assert 0 < int(text) < 128 * 1024


# -- ONNX ----------------------------------------------------------------------------------------

ort = pytest.importorskip("onnxruntime")


def _session(path):
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the optional inputs are initializers by design: no warning
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("key", sorted(MODELS) + sorted(SEQUENCE_ONLY))
def test_onnx_sequence_matches_model(key, tmp_path):
    model = {**MODELS, **SEQUENCE_ONLY}[key]
    x, dt = _inputs(model)
    sess = _session(to_onnx(model, tmp_path / "m.onnx"))
    assert [i.name for i in sess.get_inputs()] == ["x"]  # the others are optional
    assert [i.name for i in sess.get_overridable_initializers()][:1] == ["timespans"]
    ys, s = _reference(model, x, dt)
    _close(sess.run(None, {"x": x, "timespans": dt}), ys + s)
    # Optional inputs left out: Δt = 1 and a zero state; another batch and length.
    x2 = x[:2, :37]
    ys2, s2 = _reference(model, x2, np.ones(x2.shape[:2], np.float32))
    _close(sess.run(None, {"x": x2}), ys2 + s2)


@pytest.mark.parametrize("key", ["cfc_no_gate_mixed_proj", "wired_cfc_autoncp", "ltc_ncp", "ctgru"])
def test_onnx_one_step_matches_model(key, tmp_path):
    import onnx

    model = MODELS[key]
    x, dt = _inputs(model)
    path = to_onnx(model, tmp_path / "step.onnx", one_step=True)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    sess = _session(path)
    ys, s = _reference(model, x, dt)
    names = ["h0", "c0"] if model.mixed_memory else ["h0"]
    state = [np.zeros((B, model.state_size), np.float32) for _ in names]
    for t in range(T):
        y, *state = sess.run(None, {"x": x[:, t], "dt": dt[:, t : t + 1], **dict(zip(names, state))})
        if model.return_sequences:
            np.testing.assert_allclose(y, ys[0][:, t], atol=TOL, rtol=0)
    _close(state, s)


def test_onnx_uses_a_scan_and_opset(tmp_path):
    import onnx

    proto = onnx.load(to_onnx(MODELS["ltc_ncp"], tmp_path / "m.onnx", opset=18))
    assert [n.op_type for n in proto.graph.node].count("Scan") == 1
    assert proto.opset_import[0].version == 18
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims[:2]] == ["batch", "time"]
    with pytest.raises(ValueError, match="opset"):
        to_onnx(MODELS["ltc_ncp"], tmp_path / "old.onnx", opset=13)
    with pytest.raises(NotImplementedError, match="bidirectional"):
        to_onnx(SEQUENCE_ONLY["cfc_bidirectional"], tmp_path / "s.onnx", one_step=True)
    assert not (tmp_path / "s.onnx").exists() and not (tmp_path / "old.onnx").exists()


# -- .mlxfn --------------------------------------------------------------------------------------

IMPORTER = r"""
import sys
sys.modules["ncps"] = None  # this process must not be able to import ncps
import numpy as np, mlx.core as mx
try:
    import ncps
except ImportError:
    pass
else:
    raise SystemExit("ncps is importable")
jobs = __import__("json").load(open(sys.argv[1]))
for job in jobs:
    f = mx.import_function(job["path"])
    args = [mx.array(a) for a in np.load(job["inputs"]).values()]
    if job["one_step"]:  # a control loop: x (B, F) and dt (B, 1) per step, the state carried
        x, dt, state, ys = args[0], args[-1], list(args[1:-1]), []
        for t in range(x.shape[1]):
            y, *state = f(x[:, t], *state, dt[:, t : t + 1])
            ys.append(y)
        out = [mx.stack(ys, axis=1)] + state
    else:
        out = f(*args)
    np.savez(job["outputs"], *[np.array(o) for o in out])
"""


def test_mlxfn_runs_without_ncps(tmp_path):
    cases = [(k, False) for k in sorted(MODELS)] + [(k, False) for k in sorted(SEQUENCE_ONLY)]
    cases += [(k, True) for k in ("cfc_no_gate_mixed_proj", "ltc_ncp", "wired_cfc_autoncp", "ctgru")]
    jobs, expected = [], []
    rng = np.random.default_rng(3)
    for i, (key, one_step) in enumerate(cases):
        model = {**MODELS, **SEQUENCE_ONLY}[key]
        x, dt = _inputs(model, 2)
        per = 2 if model.mixed_memory else 1
        dirs = 2 if getattr(model, "bidirectional", False) else 1
        state = [rng.normal(size=(2, model.state_size)).astype(np.float32) for _ in range(per * dirs)]
        path = to_mlxfn(model, str(tmp_path / f"m{i}.mlxfn"), one_step=one_step, batch_sizes=(2,), steps=(T,))
        np.savez(tmp_path / f"in{i}.npz", x, *state, dt)
        jobs.append(
            dict(
                path=path, inputs=str(tmp_path / f"in{i}.npz"), outputs=str(tmp_path / f"out{i}.npz"), one_step=one_step
            )
        )
        structured = [
            tuple(mx.array(a) for a in state[j : j + per]) if per == 2 else mx.array(state[j])
            for j in range(0, len(state), per)
        ]
        ys, s = _reference(model, x, dt, tuple(structured) if dirs == 2 else structured[0])
        if one_step and not model.return_sequences:
            ys = [None]
        expected.append((key, one_step, ys + s))
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    subprocess.run([sys.executable, "-c", IMPORTER, str(tmp_path / "jobs.json")], check=True, env=dict(os.environ))
    for i, (key, one_step, want) in enumerate(expected):
        got = list(np.load(tmp_path / f"out{i}.npz").values())
        if want[0] is None:
            got, want = got[1:], want[1:]
        _close(got, want, f"{key}, one_step={one_step}")


def test_mlxfn_refuses_one_step_bidirectional(tmp_path):
    with pytest.raises(NotImplementedError, match="bidirectional"):
        to_mlxfn(SEQUENCE_ONLY["cfc_bidirectional"], str(tmp_path / "b.mlxfn"), one_step=True)
    assert list(tmp_path.iterdir()) == []


def test_deploy_example_quick(tmp_path):
    """examples/deploy_policy.py --quick trains, exports all three forms and checks their agreement."""
    example = HERE.parent.parent / "examples" / "deploy_policy.py"
    proc = subprocess.run(
        [sys.executable, str(example), "--quick", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    metrics = json.loads((tmp_path / "deploy_policy_metrics.json").read_text())
    assert metrics["mlxfn_max_abs_diff"] < 1e-5 and metrics["onnx_max_abs_diff"] < 1e-5
    if GCC is not None:
        assert metrics["c_max_abs_diff"] < 1e-5
