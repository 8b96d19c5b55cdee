"""Data-parallel helpers for :mod:`ncps.training`, and a launcher that fails loudly.

:func:`ncps.training.fit` runs data-parallel on its own when the program is started by
``mlx.launch`` (``mx.distributed.init()`` then has more than one process); nothing here has to be
called for that. This module holds the few collectives ``fit`` needs and :func:`launch`, a thin
wrapper around ``mlx.launch``:

.. code-block:: shell

    mlx.launch -n 2 --backend ring python train.py                        # mlx's launcher
    python -m ncps.distributed --timeout 600 -n 2 --backend ring train.py  # the same, plus:

- the exit status is non-zero when any process fails (``mlx.launch`` 0.32.4 prints a warning
  and still exits with 0), with one line per failed rank;
- ``--timeout SECONDS`` ends every process after that long (exit status 124), so that a
  process stuck in a collective can never hang a job or a test forever.

Every other argument goes to ``mlx.launch`` unchanged (``--hostfile``, ``--hosts``, ``--env``,
...); the script runs with the current Python interpreter unless a ``python`` executable is
named first.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

import mlx.core as mx
from mlx.utils import tree_flatten, tree_unflatten

Group = Any  # mx.distributed.Group


def init(group: Group | None = None) -> Group:
    """The process group: ``group`` if given, else ``mx.distributed.init()``.

    Outside ``mlx.launch`` (or any configured backend) this is a group of one process and
    costs nothing.
    """
    if group is not None:
        return group
    if not mx.distributed.is_available():
        return None
    return mx.distributed.init()


def world_size(group: Group | None = None) -> int:
    """Number of processes in ``group`` (default: the global group)."""
    group = init(group)
    return 1 if group is None else group.size()


def rank(group: Group | None = None) -> int:
    """This process's rank in ``group`` (default: the global group); 0 when not distributed."""
    group = init(group)
    return 0 if group is None else group.rank()


def is_main_process(group: Group | None = None) -> bool:
    """True on rank 0: the process that writes checkpoints, logs and progress bars."""
    return rank(group) == 0


def all_sum(x: mx.array, group: Group | None) -> mx.array:
    """Sum ``x`` over the processes of ``group`` (identity for one process)."""
    if group is None or group.size() == 1:
        return x
    return mx.distributed.all_sum(x, group=group)


def broadcast(tree: Any, group: Group | None) -> Any:
    """Rank 0's values of every array in ``tree``, on every process (one collective).

    Implemented as a sum in which every other rank contributes zeros, which is exact.
    """
    if group is None or group.size() == 1:
        return tree
    flat = tree_flatten(tree)
    if not flat:
        return tree
    keys = [k for k, _ in flat]
    arrays = [v for _, v in flat]
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) > 1:  # rare (mixed precision): one collective per array
        src = arrays if group.rank() == 0 else [mx.zeros_like(a) for a in arrays]
        out = [mx.distributed.all_sum(a, group=group) for a in src]
    else:
        sizes = [a.size for a in arrays]
        flat_src = mx.concatenate([a.reshape(-1) for a in arrays])
        if group.rank() != 0:
            flat_src = mx.zeros_like(flat_src)
        summed = mx.distributed.all_sum(flat_src, group=group)
        offsets = [0]
        for s in sizes:
            offsets.append(offsets[-1] + s)
        out = [summed[offsets[i] : offsets[i + 1]].reshape(a.shape) for i, a in enumerate(arrays)]
    return tree_unflatten(list(zip(keys, out)))


def all_gather_ints(values: Sequence[int], group: Group | None) -> list[list[int]]:
    """Every process's ``values`` (a short list of ints), as a list indexed by rank."""
    if group is None or group.size() == 1:
        return [list(values)]
    local = mx.array(list(values), dtype=mx.int32)
    gathered = mx.distributed.all_gather(local, group=group).reshape(group.size(), len(values))
    return [[int(v) for v in row] for row in gathered.tolist()]


def broadcast_int(value: int, group: Group | None = None) -> int:
    """Rank 0's ``value`` (an int in ``[0, 2**62)``) on every process of ``group``."""
    group = init(group)
    value = int(value)
    if group is None or group.size() == 1:
        return value
    if not 0 <= value < 2**62:
        raise ValueError(f"broadcast_int takes an int in [0, 2**62), got {value}")
    words = mx.array([value >> 31, value & 0x7FFFFFFF], dtype=mx.int32)
    hi, lo = broadcast(words, group).tolist()
    return (int(hi) << 31) | int(lo)


def shard_bounds(n: int, world: int) -> list[int]:
    """Split ``n`` items into ``world`` contiguous, near-equal shards: rank ``r`` owns
    ``range(bounds[r], bounds[r + 1])``. Shards differ in size by at most one."""
    return [(n * r) // world for r in range(world + 1)]


# -- the launcher -------------------------------------------------------------------------------

_USAGE = "usage: python -m ncps.distributed [--timeout SECONDS] [mlx.launch options] script.py [args...]"


def launch(argv: Sequence[str], timeout: float | None = None) -> int:
    """Run ``mlx.launch`` with ``argv`` and return an exit status that reflects every process.

    Args:
        argv: the arguments for ``mlx.launch`` (options, then the program and its arguments).
            A program ending in ``.py`` is run with the current interpreter (unless ``--python``
            names one).
        timeout: seconds after which every process is ended; the status is then 124.

    Returns:
        0 when every process exited with 0; otherwise the first failing rank's exit code (1 if
        that was a signal), or 124 on timeout. The failed ranks are printed to stderr.
    """
    # mlx's own launcher. Its module is private: this wrapper is written for mlx 0.32.4 (the version
    # ncps pins) and refuses clearly if the launcher's shape ever changes.
    from mlx._distributed_utils import launch as mlx_launch

    if not (hasattr(mlx_launch, "RemoteProcess") and hasattr(mlx_launch, "main")):
        print(f"ncps.distributed: mlx {mx.__version__}'s launcher is not supported; use mlx.launch", file=sys.stderr)
        return 2
    argv = list(argv)
    commands: list[Any] = []
    exits: dict[int, tuple] = {}
    lock = threading.Lock()

    base = mlx_launch.RemoteProcess

    class _Recorded(base):  # records each rank's exit status; mlx.launch itself drops them
        def __init__(self, rank, *args, **kwargs):
            super().__init__(rank, *args, **kwargs)
            self._ncps_rank = rank
            with lock:
                commands.append(self)

        @property
        def exit_status(self):
            status = base.exit_status.fget(self)
            if status[0] is not None:
                with lock:
                    exits[self._ncps_rank] = status
            return status

    timed_out = threading.Event()

    def _on_timeout():
        timed_out.set()
        with lock:
            running = list(commands)
        for command in running:
            try:
                if command.process.poll() is None:
                    command.terminate()
            except Exception:  # already gone
                pass

    program = _program_index(argv)
    if program is not None and argv[program].endswith(".py") and "--python" not in argv[:program]:
        argv.insert(program, sys.executable)

    timer = threading.Timer(timeout, _on_timeout) if timeout else None
    saved_argv, saved_class = sys.argv, mlx_launch.RemoteProcess
    mlx_launch.RemoteProcess = _Recorded
    sys.argv = ["mlx.launch", *argv]
    try:
        if timer:
            timer.daemon = True
            timer.start()
        mlx_launch.main()
    finally:
        if timer:
            timer.cancel()
        sys.argv = saved_argv
        mlx_launch.RemoteProcess = saved_class

    if timed_out.is_set():
        print(f"ncps.distributed: timed out after {timeout:g} s; every process was ended", file=sys.stderr)
        return 124
    failed = {r: s for r, s in sorted(exits.items()) if s[0] != 0}
    if not failed:
        return 0
    for r, (code, killed) in failed.items():
        if killed or code < 0:
            signal = -code if code and code < 0 else "killed"
            why = f"was ended by a signal ({signal}), usually after another process failed"
        else:
            why = f"exited with code {code}"
        print(f"ncps.distributed: rank {r} {why}", file=sys.stderr)
    culprits = [code for code, killed in failed.values() if code > 0 and not killed]
    n_failed = len(culprits) or len(failed)
    print(f"ncps.distributed: the launch failed ({n_failed} of {len(commands)} processes failed)", file=sys.stderr)
    return culprits[0] if culprits else 1


def _program_index(argv: Sequence[str]) -> int | None:
    """Index of the first argument that is not an ``mlx.launch`` option (the program)."""
    with_value = {
        "--hosts",
        "--repeat-hosts",
        "-n",
        "--hostfile",
        "--backend",
        "--env",
        "--mpi-arg",
        "--connections-per-ip",
        "--starting-port",
        "-p",
        "--cwd",
        "--nccl-port",
        "--python",
    }
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            return i + 1 if i + 1 < len(argv) else None
        if a in with_value:
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return i
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m ncps.distributed [--timeout S] [mlx.launch options] script.py``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    timeout = None
    if argv[:1] in (["-h"], ["--help"]):
        print(_USAGE)
        print(__doc__)
        return 0
    if argv and argv[0].startswith("--timeout"):
        if "=" in argv[0]:
            value = argv.pop(0).split("=", 1)[1]
        else:
            argv.pop(0)
            if not argv:
                print(_USAGE, file=sys.stderr)
                return 2
            value = argv.pop(0)
        try:
            timeout = float(value)
        except ValueError:
            print(f"ncps.distributed: --timeout needs a number of seconds, got {value!r}", file=sys.stderr)
            return 2
    if _program_index(argv) is None:
        print(_USAGE, file=sys.stderr)
        return 2
    return launch(argv, timeout=timeout)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
