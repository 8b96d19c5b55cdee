"""What the scripts that run the official package in a subprocess (``official_torch.py``,
``official_keras.py``, ``official_parity.py``) share. They import it by name from their own
directory (first on ``sys.path``: the oracle's bootstrap puts it there, as ``python script.py``
does); it imports no ``ncps`` at module level, so the parity tests can use :func:`build_layer` on
our package too."""

from __future__ import annotations

from typing import Any


def official_units(units: Any) -> Any:
    """An int, or a fresh official wiring from ``{"wiring", "args", "kwargs"}``."""
    if isinstance(units, dict):
        import ncps  # the official package: the subprocess's bootstrap puts it first on sys.path

        cls = getattr(ncps.wirings, units["wiring"])
        return cls(*units.get("args", []), **units.get("kwargs", {}))
    return int(units)


def build_layer(lib: Any, layer: str, n_in: int, units: Any, kw: dict) -> Any:
    """The layer or cell named ``layer`` of ``lib``: the official ``ncps.torch`` or our ``ncps``,
    whose constructors agree (``n_in`` input features, ``units`` an int or a wiring, ``kw`` the
    remaining constructor keywords)."""
    if layer == "LTC":
        return lib.LTC(n_in, units, **kw)
    if layer == "CfC":
        return lib.CfC(n_in, units, **kw)
    if layer == "LTCCell":
        return lib.LTCCell(units, in_features=n_in, **kw)
    if layer == "CfCCell":
        return lib.CfCCell(n_in, units, **kw)
    if layer == "WiredCfCCell":
        return lib.WiredCfCCell(n_in, units, **kw)
    raise ValueError(f"unknown layer {layer!r}")
