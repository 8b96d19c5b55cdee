"""The one runner of the official ``ncps.torch`` package (the oracle), for tests and benchmarks.

The official package and ours share the import name ``ncps``. It is installed on its own
(``pip install --no-deps --target .oracle ncps==1.0.1``, done by ``scripts/bootstrap.sh``) in the
directory ``NCPS_ORACLE_DIR`` (default ``<repo>/.oracle``), and every job runs in a subprocess
whose bootstrap drops our editable-install finder from ``sys.meta_path`` and puts that directory
first on ``sys.path``:

- :func:`run_parity` runs ``official_parity.py`` on a spec (numerical parity: outputs, states,
  parameters and gradients of one official module, as an npz);
- :func:`run_code` runs a snippet against the official package (wirings, interop checks);
- :class:`PeerSession` keeps one of those scripts running and times its jobs round by round (the
  interleaved peer comparisons of the benchmark);
- :func:`run_jobs` runs ``official_torch.py`` (timing jobs of the benchmark), or with
  ``peer="keras-jax"`` ``official_keras.py``: the official ``ncps.keras`` on Keras 3 + JAX under
  ``jax.jit``, with JAX and Keras from the peers directory ``NCPS_PEERS_DIR`` (default
  ``<repo>/.peers``, ``pip install --target .peers jax keras``, done by ``scripts/bootstrap.sh``).

Without the oracle directory or torch, :func:`missing` says why: the tests skip (fail in CI) and
every official entry of the benchmark report reads "official: not installed — run scripts/bootstrap.sh".
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common.paths import HERE, REPO

SCRIPT = HERE / "official_torch.py"
KERAS_SCRIPT = HERE / "official_keras.py"
PEERS = ("torch", "torch.compile", "keras-jax")  # the official package on each framework
PARITY_SCRIPT = HERE / "official_parity.py"
INSTALL_HINT = "run scripts/bootstrap.sh"

# Our editable install puts a finder in front of sys.path that would shadow the official
# ``ncps``; drop it and put the oracle directory first. Then run the script ``sys.argv[1]`` with
# its own directory first on sys.path, as ``python script.py`` would (the scripts import their
# neighbours ``timing`` and ``official_common`` by name), or the code on stdin when it is "-".
_BOOTSTRAP = """
import os, runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
sys.path.insert(0, {oracle!r})
sys.argv = sys.argv[1:]
if sys.argv[0] == "-":
    exec(compile(sys.stdin.read(), "<oracle>", "exec"), {{"__name__": "__main__"}})
else:
    sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _command(script: str, *args: str) -> list:
    return [sys.executable, "-c", _BOOTSTRAP.format(oracle=str(oracle_dir())), script, *args]


def _env(threads: int = 1, peer: str = "torch") -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(oracle_dir())
    if peer == "keras-jax":
        env["PYTHONPATH"] += os.pathsep + str(peers_dir())
        env["KERAS_BACKEND"] = "jax"
        env["JAX_PLATFORMS"] = "cpu"
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    return env


def oracle_dir() -> Path:
    """Where the official package lives: ``$NCPS_ORACLE_DIR`` or ``<repo>/.oracle``."""
    return Path(os.environ.get("NCPS_ORACLE_DIR", REPO / ".oracle")).resolve()


def peers_dir() -> Path:
    """Where JAX and Keras (benchmark peers only) live: ``$NCPS_PEERS_DIR`` or ``<repo>/.peers``."""
    return Path(os.environ.get("NCPS_PEERS_DIR", REPO / ".peers")).resolve()


def missing(peer: str = "torch") -> str | None:
    """None when the official package and ``peer``'s framework are usable, otherwise why not."""
    d = oracle_dir()
    if not (d / "ncps" / "torch").is_dir():
        return f"official ncps not found in {d}"
    if peer == "keras-jax":
        p = peers_dir()
        if not ((p / "jax").is_dir() and (p / "keras").is_dir()):
            return f"jax and keras not found in {p}"
        return None
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed"
    return None


def peer_versions() -> dict:
    """The versions of JAX and Keras in the peers directory, from their dist-info (no import)."""
    out = {}
    for name in ("jax", "jaxlib", "keras"):
        for info in sorted(peers_dir().glob(f"{name}-*.dist-info")):
            out[name] = info.name[len(name) + 1 : -len(".dist-info")]
    return out


def official_version() -> str | None:
    """The official package's version from its dist-info (its ``__version__`` is stale upstream)."""
    for info in sorted(oracle_dir().glob("ncps-*.dist-info")):
        return info.name[len("ncps-") : -len(".dist-info")]
    return None


def torch_version() -> str | None:
    """torch's version without importing it in this process."""
    try:
        from importlib.metadata import version

        return version("torch")
    except Exception:
        return None


def pinned(cpus: int | None):
    """A ``preexec_fn`` that pins the child process to the first ``cpus`` CPUs this process may
    use (None: no pinning; a no-op where the OS has no affinity call). It is what bounds the
    threads of a framework without a thread setting of its own (XLA's CPU client)."""
    if cpus is None or not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))[: max(1, cpus)]
    return lambda: os.sched_setaffinity(0, allowed)


def run_jobs(
    jobs: list[dict],
    threads: int = 2,
    timeout: float = 1800,
    peer: str = "torch",
    script: Path | None = None,
    cpus: int | None = None,
) -> dict:
    """Run ``jobs`` in the official package's process, on ``peer``: "torch" (eager), "torch.compile"
    (each job's module under ``torch.compile``) or "keras-jax" (``official_keras.py``). The jobs
    are timing jobs (``official_torch.py``, the default ``script``) or training jobs
    (``accuracy_torch.py``), which share one protocol.

    ``cpus`` pins the process to that many CPUs (:func:`pinned`; the thread-scaling section).

    Returns ``{"available": bool, "reason": str | None, "torch_version" | "peer_version",
    "threads", "results": {id: measurement}}``; never raises for a missing or failing oracle.
    """
    if peer not in PEERS:
        raise ValueError(f"peer must be one of {PEERS}, got {peer!r}")
    why = missing(peer)
    if why is not None:
        return {"available": False, "reason": f"{why} — {INSTALL_HINT}", "results": {}}
    if not jobs:
        return {"available": True, "reason": None, "results": {}}
    # torch runs with the same number of threads as our fused kernels (the machine's cores).
    env = _env(threads, peer)
    with tempfile.TemporaryDirectory() as tmp:
        jobs_path, out_path = Path(tmp) / "jobs.json", Path(tmp) / "out.json"
        jobs_path.write_text(json.dumps({"threads": threads, "compile": peer == "torch.compile", "jobs": jobs}))
        if script is None:
            script = KERAS_SCRIPT if peer == "keras-jax" else SCRIPT
        cmd = _command(str(script), str(jobs_path), str(out_path))
        try:
            proc = subprocess.run(
                cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=timeout, preexec_fn=pinned(cpus)
            )
        except subprocess.TimeoutExpired:
            return {"available": False, "reason": f"official {peer} run timed out after {timeout:.0f} s", "results": {}}
        if proc.returncode != 0 or not out_path.is_file():
            tail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            return {
                "available": False,
                "reason": f"official {peer} run failed: {tail[0]}",
                "stderr": proc.stderr[-4000:],
                "results": {},
            }
        out = json.loads(out_path.read_text())
    ncps_file = str(out.get("ncps_file", ""))
    if not ncps_file.startswith(str(oracle_dir())):
        why = f"the subprocess imported {ncps_file}, not the official package"
        return {"available": False, "reason": why, "results": {}}
    out.update(available=True, reason=None)
    return out


class PeerSession:
    """The official package on one ``peer`` kept running to time ``jobs`` round by round, so that
    a benchmark can alternate its own measurements with the peer's (ours, peer, ours, peer ...)
    without starting the process, importing the framework and compiling every model again.

    ``measure(ids, policy)`` times the named jobs once under ``policy`` (each job is built and
    compiled at its first round: :func:`official_common.serve`) and returns ``{"available",
    "reason", <versions>, "results": {id: measurement}}`` like :func:`run_jobs`; after a failure
    (the process died or a round ran past ``timeout``) every later round answers unavailable with
    the reason. Use it as a context manager (``close`` ends the process)."""

    def __init__(self, jobs: list[dict], threads: int = 2, peer: str = "torch", timeout: float = 1800) -> None:
        if peer not in PEERS:
            raise ValueError(f"peer must be one of {PEERS}, got {peer!r}")
        self.peer, self.timeout = peer, timeout
        self.reason: str | None = None
        self._proc: subprocess.Popen | None = None
        why = missing(peer)
        if why is not None:
            self.reason = f"{why} — {INSTALL_HINT}"
            return
        self._tmp = tempfile.TemporaryDirectory()
        tmp = Path(self._tmp.name)
        jobs_path = tmp / "jobs.json"
        jobs_path.write_text(json.dumps({"threads": threads, "compile": peer == "torch.compile", "jobs": jobs}))
        script = KERAS_SCRIPT if peer == "keras-jax" else SCRIPT
        self._stderr = open(tmp / "stderr.txt", "w+")  # a file: a full pipe would block the peer
        self._proc = subprocess.Popen(
            _command(str(script), str(jobs_path), "--serve"),
            env=_env(threads, peer),
            cwd=tmp,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )

    def _fail(self, reason: str) -> dict:
        self._stderr.seek(0)
        tail = self._stderr.read()[-4000:]
        last = (tail.strip().splitlines() or [""])[-1]
        self.reason = f"official {self.peer} run failed: {reason}" + (f" ({last})" if last else "")
        self.close()
        return {"available": False, "reason": self.reason, "stderr": tail, "results": {}}

    def measure(self, ids: list[str], policy: dict) -> dict:
        """One round: every job of ``ids`` timed once under ``policy`` (a :class:`timing.Policy` dict)."""
        if self._proc is None:
            return {"available": False, "reason": self.reason, "results": {}}
        try:
            self._proc.stdin.write(json.dumps({"ids": list(ids), "policy": policy}) + "\n")
            self._proc.stdin.flush()
        except OSError as exc:
            return self._fail(f"{type(exc).__name__}: {exc}")
        ready, _, _ = select.select([self._proc.stdout], [], [], self.timeout)
        line = self._proc.stdout.readline() if ready else None
        if line is None:
            return self._fail(f"a round timed out after {self.timeout:.0f} s")
        if not line:
            return self._fail(f"the process ended (exit status {self._proc.wait()})")
        out = json.loads(line)
        ncps_file = str(out.get("ncps_file", ""))
        if not ncps_file.startswith(str(oracle_dir())):
            return self._fail(f"the subprocess imported {ncps_file}, not the official package")
        out.update(available=True, reason=None)
        return out

    def close(self) -> None:
        """End the process (EOF on its stdin, then a kill if it lingers) and remove its files."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
            proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        self._stderr.close()
        self._tmp.cleanup()

    def __enter__(self) -> PeerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_code(code: str, timeout: float = 300) -> dict:
    """Run Python ``code`` against the official package; it must ``json.dump`` a result to the
    file named by the variable ``OUT``. Returns the decoded JSON; raises RuntimeError if it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        script = f"OUT = {str(out)!r}\n" + code
        proc = subprocess.run(
            _command("-"), input=script, env=_env(), cwd=tmp, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(f"official ncps script failed:\n{proc.stderr[-4000:]}")
        return json.loads(out.read_text())


_ARRAYS_IO = """
import numpy as _np
with _np.load({inputs!r}) as _data:
    INPUTS = {{k: _data[k] for k in _data.files}}
OUTPUTS = {{}}
{code}
_np.savez({outputs!r}, **{{k: _np.asarray(v) for k, v in OUTPUTS.items()}})
"""


def run_arrays(code: str, inputs: dict, timeout: float = 300) -> dict:
    """Run Python ``code`` against the official package with arrays in and out: ``code`` reads the
    dict ``INPUTS`` (``inputs`` as numpy arrays) and fills the dict ``OUTPUTS``, which comes back
    as numpy arrays. Raises RuntimeError if it fails."""
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        in_path, out_path = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        np.savez(in_path, **{k: np.asarray(v) for k, v in inputs.items()})
        script = _ARRAYS_IO.format(inputs=str(in_path), outputs=str(out_path), code=code)
        proc = subprocess.run(
            _command("-"), input=script, env=_env(), cwd=tmp, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(f"official ncps script failed:\n{proc.stderr[-4000:]}")
        with np.load(out_path) as data:
            return {k: data[k] for k in data.files}


def run_parity(spec: dict, timeout: float = 300) -> dict:
    """Run ``official_parity.py`` on ``spec`` (see its docstring); returns its npz as a dict of arrays."""
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.npz"
        spec_path.write_text(json.dumps(spec))
        proc = subprocess.run(
            _command(str(PARITY_SCRIPT), str(spec_path), str(out_path)),
            env=_env(),
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"oracle failed for {spec}:\n{proc.stderr[-4000:]}")
        with np.load(out_path) as data:
            return {k: data[k] for k in data.files}
