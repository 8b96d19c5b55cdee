"""Nothing is lost on interruption: a training process killed (SIGKILL) in the middle of writing a
checkpoint leaves the previous checkpoint intact, and ``fit(..., resume=True)`` continues from
the last training state to the parameters of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np

import ncps
from tests.reliability.training_run import params_of

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _child(folder, mode, wait=True):
    cmd = [sys.executable, "-m", "tests.reliability.train_child", str(folder), mode]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if wait:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out.decode()
    return p


def test_kill_during_checkpoint_write_then_resume(tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    full.mkdir()
    killed.mkdir()
    _child(full, "full")

    p = _child(killed, "hang-in-write", wait=False)
    deadline = time.monotonic() + 240
    while not (killed / "in-write").exists():
        assert p.poll() is None, p.stdout.read().decode()
        assert time.monotonic() < deadline, "the child never reached the third checkpoint"
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    # A partial temporary file is on disk; the checkpoint itself is the previous one, whole.
    assert any(name.startswith(".best.safetensors.") for name in os.listdir(killed))
    model = ncps.load(killed / "best.safetensors")
    previous = dict(np.load(killed / "weights-1.npz"))
    got = params_of(model)
    assert got.keys() == previous.keys()
    for k in previous:
        np.testing.assert_array_equal(got[k], previous[k], err_msg=k)

    # The training state of the last finished epoch resumes to the uninterrupted result.
    _child(killed, "resume")
    a, b = dict(np.load(full / "final-full.npz")), dict(np.load(killed / "final-resume.npz"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_save_is_atomic_and_leaves_no_temporary(tmp_path):
    m = ncps.CfC(3, 4, backbone_units=4)
    ncps.save(m, tmp_path / "m.safetensors")
    ncps.save(m, tmp_path / "m.safetensors")  # overwrite in place
    assert os.listdir(tmp_path) == ["m.safetensors"]
