"""What the scripts that run the official package in a subprocess (``official_torch.py``,
``official_keras.py``) share. They find it next to themselves (they put their own directory on
``sys.path``), so it imports nothing of ours: ``ncps`` here is the official package."""

from __future__ import annotations

from typing import Any


def official_units(units: Any) -> Any:
    """An int, or a fresh official wiring from ``{"wiring", "args", "kwargs"}``."""
    if isinstance(units, dict):
        import ncps  # the official package: the subprocess's bootstrap puts it first on sys.path

        cls = getattr(ncps.wirings, units["wiring"])
        return cls(*units.get("args", []), **units.get("kwargs", {}))
    return int(units)
