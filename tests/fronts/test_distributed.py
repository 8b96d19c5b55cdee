"""Data-parallel ncps.training.fit under mlx.launch (ring backend, two processes on 127.0.0.1).

The file is also the worker that the launcher starts: ``python tests/test_distributed.py worker
OUT [--fail-rank R] [--hang-rank R] [--mismatch]``.
"""

import argparse
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
TIMEOUT = 50  # seconds per launch; every test stays under a minute


# -- the worker ---------------------------------------------------------------------------------


def train(out: str, fail_rank: int = -1, hang_rank: int = -1, mismatch: str = "") -> dict:
    """Train a small CfC for 3 epochs with fit; every rank writes ``{out}-rank{r}.npz``."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx.utils import tree_flatten

    import ncps
    from ncps.training import fit

    group = mx.distributed.init()
    rank = group.rank()
    rng = np.random.default_rng(0)
    # 61 samples in global batches of 15: shards of 7 and 8, and a last batch of one sample,
    # which leaves rank 0 with nothing (it takes part with weight 0).
    X = rng.normal(size=(61, 5, 2)).astype(np.float32)
    y = (X.sum(axis=(1, 2)) / np.sqrt(10))[:, None].astype(np.float32)
    if mismatch == "size" and rank == 1:
        X, y = X[:-1], y[:-1]
    if mismatch == "values" and rank == 1:
        X = X + 1.0
    if rank == hang_rank:
        time.sleep(600)
    mx.random.seed(100 + rank)  # different initial weights per rank: fit must broadcast rank 0's
    model = ncps.CfC(2, 8, proj_size=1, backbone_units=16, return_sequences=False)

    def fail(epoch, logs):
        if rank == fail_rank and epoch == 1:
            raise RuntimeError(f"simulated failure on rank {rank}")

    history = fit(
        model,
        lambda m, x, y: nn.losses.mse_loss(m(x)[0], y),
        (X, y),
        optimizer=optim.Adam(learning_rate=1e-2),
        epochs=3,
        batch_size=15,
        clip_norm=0.5,
        validation_data=(X[:20], y[:20]),
        seed=7,
        progress=False,
        callbacks=[fail],
    )
    result = {k: np.array(v) for k, v in tree_flatten(model.parameters())}
    result.update({f"history/{k}": np.array(v) for k, v in history.history.items()})
    result["world_size"] = np.array(history.world_size)
    np.savez(f"{out}-rank{rank}.npz", **result)
    return result


def _worker_main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--fail-rank", type=int, default=-1)
    p.add_argument("--hang-rank", type=int, default=-1)
    p.add_argument("--mismatch", choices=("size", "values"), default="")
    p.add_argument("--sklearn", action="store_true")
    a = p.parse_args(argv)
    if a.sklearn:
        train_sklearn(a.out)
    else:
        train(a.out, a.fail_rank, a.hang_rank, a.mismatch)


def train_sklearn(out: str) -> None:
    """LiquidRegressor.fit with random_state=None and a validation split, data-parallel."""
    import mlx.core as mx

    from ncps.sklearn import LiquidRegressor

    rank = mx.distributed.init().rank()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 4, 3))
    y = X.sum(axis=(1, 2))
    np.random.seed(rank)  # the estimator's own draws differ per rank: fit must agree on rank 0's
    reg = LiquidRegressor(
        units=8, backbone_units=16, epochs=2, early_stopping=True, validation_fraction=0.25, compile=False
    )
    reg.fit(X, y)
    np.savez(
        f"{out}-rank{rank}.npz",
        pred=reg.predict(X),
        world_size=reg.history_.world_size,
        val=np.array(reg.validation_scores_),
    )


# -- helpers ------------------------------------------------------------------------------------


def free_port_pair() -> int:
    """A port P on 127.0.0.1 with P and P + 1 free (the ring backend listens on one per rank)."""
    for _ in range(100):
        port = random.randint(20000, 60000)
        socks = []
        try:
            for p in (port, port + 1):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port pair found")


def mlx_launch_cmd() -> list:
    """The ``mlx.launch`` entry point of this interpreter's environment."""
    script = Path(sys.executable).parent / "mlx.launch"
    if script.exists():
        return [str(script)]
    found = shutil.which("mlx.launch")
    if found:
        return [found]
    code = "import sys; from mlx._distributed_utils.launch import main; sys.argv[0] = 'mlx.launch'; main()"
    return [sys.executable, "-c", code]


def launch(args, use_ncps_launcher=False, timeout=TIMEOUT, ncps_timeout=None):
    ring = ["-n", "2", "--backend", "ring", "--starting-port", str(free_port_pair())]
    if use_ncps_launcher:
        cmd = [sys.executable, "-m", "ncps.distributed"]
        if ncps_timeout is not None:
            cmd += ["--timeout", str(ncps_timeout)]
        cmd += ring + [str(HERE), "worker", *args]
    else:
        cmd = mlx_launch_cmd() + ring + [sys.executable, str(HERE), "worker", *args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    proc.elapsed = time.perf_counter() - start
    return proc


pytestmark = pytest.mark.skipif(
    not __import__("mlx.core", fromlist=["distributed"]).distributed.is_available(),
    reason="mlx.distributed is not available",
)


# -- tests --------------------------------------------------------------------------------------


def test_two_processes_match_one(tmp_path):
    out = tmp_path / "params"
    proc = launch([str(out)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r0, r1 = np.load(f"{out}-rank0.npz"), np.load(f"{out}-rank1.npz")
    assert int(r0["world_size"]) == 2 and int(r1["world_size"]) == 2
    assert r0.files == r1.files
    for k in r0.files:  # the replicas are identical, bit for bit
        np.testing.assert_array_equal(r0[k], r1[k], err_msg=k)

    single = train(str(tmp_path / "single"))  # the same run in this (one-process) interpreter
    assert int(single["world_size"]) == 1
    for k in r0.files:
        if k == "world_size":
            continue
        np.testing.assert_allclose(r0[k], single[k], rtol=1e-4, atol=2e-5, err_msg=k)


def test_failing_rank_fails_the_launch(tmp_path):
    proc = launch([str(tmp_path / "p"), "--fail-rank", "1"], use_ncps_launcher=True, ncps_timeout=40)
    assert proc.returncode != 0
    assert "simulated failure on rank 1" in proc.stderr
    assert "ncps.training.fit: rank 1 of 2 failed" in proc.stderr
    # rank 1 usually exits first; rank 0 may also see the lost connection and exit before it
    assert re.search(r"ncps.distributed: rank [01] exited with code 1", proc.stderr), proc.stderr
    assert "the launch failed" in proc.stderr
    assert not Path(f"{tmp_path / 'p'}-rank0.npz").exists()


def test_plain_mlx_launch_does_not_hang_on_a_failing_rank(tmp_path):
    # mlx.launch 0.32.4 ends the other processes and warns, but exits with 0: hence
    # `python -m ncps.distributed`, which reports the failure in its exit status.
    proc = launch([str(tmp_path / "p"), "--fail-rank", "1"])
    assert "simulated failure on rank 1" in proc.stderr
    # Whichever rank mlx.launch sees exit first is reported: rank 1 raising, or rank 0 that lost its
    # peer in the gradient all-reduce and exited with 1 before rank 1's interpreter finished (then
    # rank 1 is ended with SIGTERM, code -15).
    assert re.search(r"Node with rank [01] exited with code 1", proc.stderr), proc.stderr
    assert not Path(f"{tmp_path / 'p'}-rank0.npz").exists()


def test_hanging_rank_is_ended_by_the_timeout(tmp_path):
    proc = launch([str(tmp_path / "p"), "--hang-rank", "1"], use_ncps_launcher=True, ncps_timeout=6)
    assert proc.returncode == 124
    assert "timed out after 6 s" in proc.stderr
    assert proc.elapsed < 30


@pytest.mark.parametrize("mismatch", ["size", "values"])
def test_different_data_per_rank_is_a_clear_error(tmp_path, mismatch):
    proc = launch([str(tmp_path / "p"), "--mismatch", mismatch], use_ncps_launcher=True, ncps_timeout=40)
    assert proc.returncode != 0
    assert "the data sets differ between processes" in proc.stderr
    assert "every process must pass the whole data set" in proc.stderr


def test_sklearn_estimator_is_data_parallel(tmp_path):
    out = tmp_path / "sk"
    proc = launch([str(out), "--sklearn"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r0, r1 = np.load(f"{out}-rank0.npz"), np.load(f"{out}-rank1.npz")
    assert int(r0["world_size"]) == 2
    np.testing.assert_array_equal(r0["pred"], r1["pred"])
    np.testing.assert_array_equal(r0["val"], r1["val"])


def test_example_runs_under_mlx_launch(tmp_path):
    result = tmp_path / "result.json"
    cmd = mlx_launch_cmd() + [
        "-n",
        "2",
        "--backend",
        "ring",
        "--starting-port",
        str(free_port_pair()),
        sys.executable,
        str(ROOT / "examples" / "distributed_training.py"),
        "--quick",
        "--json",
        str(result),
        "--checkpoint",
        str(tmp_path / "best.safetensors"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 process(es)" in proc.stdout and "sequences/s" in proc.stdout
    import json

    data = json.loads(result.read_text())
    assert data["world_size"] == 2 and len(data["loss"]) == 2
    import ncps

    assert type(ncps.load(tmp_path / "best.safetensors")).__name__ == "CfC"


def test_launcher_command_line():
    from ncps import distributed

    assert distributed._program_index(["-n", "2", "--backend", "ring", "train.py", "--epochs", "3"]) == 4
    assert distributed._program_index(["--verbose", "--", "python", "x.py"]) == 2
    assert distributed._program_index(["-n", "2"]) is None
    assert distributed.main(["-n", "2"]) == 2
    assert distributed.main(["--timeout", "soon", "x.py"]) == 2
    assert distributed.shard_bounds(5, 2) == [0, 2, 5]
    assert distributed.shard_bounds(1, 2) == [0, 0, 1]
    assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main_process()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        _worker_main(sys.argv[2:])
    else:
        sys.exit(pytest.main([__file__, "-q"]))
