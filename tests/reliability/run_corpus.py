"""Run corpus cases in this process and report each as one JSON line (``python -m
tests.reliability.run_corpus OUT NAME...``). A line ``{"start": name}`` precedes every case, so
that the parent names the case that killed the process."""

from __future__ import annotations

import json
import sys
import traceback
import warnings

import numpy as np


def _nonfinite(value) -> bool:
    import mlx.core as mx

    if isinstance(value, (tuple, list)):
        return any(_nonfinite(v) for v in value)
    if isinstance(value, mx.array) or isinstance(value, np.ndarray):
        a = np.array(value.astype(mx.float32) if isinstance(value, mx.array) else value, dtype=np.float64)
        return not np.isfinite(a).all()
    return False


def run_case(fn, expect) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = fn()
            if isinstance(value, (tuple, list)) or hasattr(value, "shape"):
                import mlx.core as mx

                mx.eval(
                    [v for v in (value if isinstance(value, (tuple, list)) else [value]) if isinstance(v, mx.array)]
                )
    except Exception as exc:  # noqa: BLE001  (the corpus classifies every exception)
        msg = f"{type(exc).__name__}: {exc}"
        if expect.kind != "raises":
            return {"outcome": "wrong_error", "detail": msg + "\n" + traceback.format_exc(limit=4)}
        if not isinstance(exc, expect.exc):
            return {"outcome": "wrong_error", "detail": msg}
        text = str(exc).lower()
        missing = [w for w in expect.words if w.lower() not in text]
        if missing:
            return {"outcome": "unclear_error", "detail": f"{msg} (does not name {missing})"}
        return {"outcome": "pass", "detail": msg}
    if expect.kind == "raises":
        return {"outcome": "no_error", "detail": f"returned {type(value).__name__}"}
    if expect.kind == "nonfinite" and not _nonfinite(value):
        return {"outcome": "no_error", "detail": "all values finite"}
    return {"outcome": "pass", "detail": ""}


def main(out: str, names: list[str]) -> None:
    from tests.reliability.corpus import build

    cases = build()
    with open(out, "a") as f:
        for name in names:
            f.write(json.dumps({"start": name}) + "\n")
            f.flush()
            fn, expect = cases[name]
            result = run_case(fn, expect)
            f.write(json.dumps({"name": name, **result}) + "\n")
            f.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
