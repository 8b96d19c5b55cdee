"""Run the official ncps (PyTorch) package as an oracle in a separate process.

Both packages import as ``ncps``, so the official one lives in its own directory
(``NCPS_ORACLE_DIR``, default ``<repo>/.oracle``, made by ``pip install --no-deps --target .oracle
ncps==1.0.1``) and runs in a subprocess with that directory first on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ORACLE_DIR = Path(os.environ.get("NCPS_ORACLE_DIR", REPO / ".oracle"))
SHARED_DIR = Path(os.environ.get("NCPS_SHARED_DIR", REPO.parent / "shared"))
ORACLE_SCRIPT = SHARED_DIR / "oracle" / "ncps_torch_oracle.py"


def _missing() -> str | None:
    if not (ORACLE_DIR / "ncps" / "torch").is_dir():
        return f"official ncps not installed in {ORACLE_DIR} (pip install --no-deps --target {ORACLE_DIR} ncps==1.0.1)"
    try:
        import importlib.util

        if importlib.util.find_spec("torch") is None:
            return "torch is not installed (pip install torch==2.13.0)"
    except Exception as exc:  # pragma: no cover
        return str(exc)
    return None


def require_official() -> None:
    """Skip locally when the oracle is missing; fail in CI, where it must be installed."""
    why = _missing()
    if why is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"oracle unavailable in CI: {why}")
    pytest.skip(why)


# An editable install of our package puts a finder in front of sys.path that would shadow the
# official ``ncps``; the bootstrap drops such finders and puts the oracle directory first.
_BOOTSTRAP = """
import runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
sys.path.insert(0, {oracle!r})
sys.argv = sys.argv[1:]
{body}
"""


def _python(body: str) -> list:
    return [sys.executable, "-c", _BOOTSTRAP.format(oracle=str(ORACLE_DIR), body=body)]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ORACLE_DIR)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_official(code: str, timeout: float = 300) -> dict:
    """Run Python ``code`` against the official package; it must ``json.dump`` a result to
    the file named by the variable ``OUT``. Returns the decoded JSON."""
    require_official()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        script = f"OUT = {str(out)!r}\n" + code
        proc = subprocess.run(
            _python(script) + ["-"], env=_env(), cwd=tmp, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(f"official ncps script failed:\n{proc.stderr[-4000:]}")
        return json.loads(out.read_text())


def run_oracle(spec: dict, timeout: float = 300) -> dict[str, np.ndarray]:
    """Run ``../shared/oracle/ncps_torch_oracle.py`` on ``spec``; returns its npz as a dict."""
    require_official()
    if not ORACLE_SCRIPT.is_file():
        pytest.fail(f"oracle script not found at {ORACLE_SCRIPT} (set NCPS_SHARED_DIR)")
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.npz"
        spec_path.write_text(json.dumps(spec))
        proc = subprocess.run(
            _python("runpy.run_path(sys.argv[0], run_name='__main__')")
            + [str(ORACLE_SCRIPT), str(spec_path), str(out_path)],
            env=_env(), cwd=tmp, capture_output=True, text=True, timeout=timeout,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"oracle failed for {spec}:\n{proc.stderr[-4000:]}")
        with np.load(out_path) as data:
            return {k: data[k] for k in data.files}


_SCRIPT_IO = """
import numpy as _np
with _np.load({inputs!r}) as _data:
    INPUTS = {{k: _data[k] for k in _data.files}}
OUTPUTS = {{}}
{code}
_np.savez({outputs!r}, **{{k: _np.asarray(v) for k, v in OUTPUTS.items()}})
"""


def run_oracle_script(code: str, inputs: dict[str, np.ndarray], timeout: float = 300) -> dict[str, np.ndarray]:
    """Run the self-contained Python ``code`` against the official package (its ``ncps`` and torch).

    ``code`` reads the dict ``INPUTS`` (``inputs`` as numpy arrays) and fills the dict ``OUTPUTS``
    with arrays; those come back. It runs in a fresh process whose ``sys.path`` starts with the
    oracle directory, so ``import ncps`` there is the official package.
    """
    require_official()
    with tempfile.TemporaryDirectory() as tmp:
        in_path, out_path = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        np.savez(in_path, **{k: np.asarray(v) for k, v in inputs.items()})
        body = _SCRIPT_IO.format(inputs=str(in_path), outputs=str(out_path), code=code)
        proc = subprocess.run(_python(body) + ["-"], env=_env(), cwd=tmp, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"official ncps script failed:\n{proc.stderr[-4000:]}")
        with np.load(out_path) as data:
            return {k: data[k] for k in data.files}
