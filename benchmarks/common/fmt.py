"""Numbers and markdown tables, one way for every section.

Cells of the timing tables read ``median / min`` (both in the median's unit); ratios are of the
medians; a ratio to a peer of the official package is the median over interleaved rounds of each
round's ratio, with its range over the rounds (:func:`fmt_spread`). An entry that did not run
shows ``n/a`` (no fused kernel, official package absent), ``skipped`` (too slow for this run) or
``error``, with the reason listed under its table.
"""

from __future__ import annotations

import math

IMPL_NAMES = {
    "fused": "ncps fused",
    "reference": "ncps reference",
    "official": "official ncps.torch",
    "torch.compile": "official ncps.torch + torch.compile",
    "keras-jax": "official ncps.keras, Keras 3 + JAX (jit)",
    "mlx.nn": "mlx.nn",
    "eager": "ncps eager",
    "mx.compile": "ncps mx.compile",
    "infer": "ncps cell.infer",
}
# The official package's frameworks as table columns: (impl, short name)
PEER_COLUMNS = (("official", "torch"), ("torch.compile", "torch.compile"), ("keras-jax", "Keras 3 + JAX"))


def _unit(seconds: float) -> tuple[float, str]:
    if seconds >= 1.0:
        return 1.0, "s"
    if seconds >= 1e-3:
        return 1e3, "ms"
    return 1e6, "µs"


def num(v: float) -> str:
    """Three significant digits, or the whole number from 1000 on."""
    return f"{v:.3g}" if v < 1000 else f"{v:.0f}"


def fmt_time(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    scale, unit = _unit(seconds)
    return f"{num(seconds * scale)} {unit}"


def fmt_pair(median: float, minimum: float) -> str:
    """``12.3 / 11.9 ms``: median and minimum in the median's unit."""
    scale, unit = _unit(median)
    return f"{num(median * scale)} / {num(minimum * scale)} {unit}"


def fmt_ratio(r: float | None) -> str:
    if r is None or not math.isfinite(r):
        return "—"
    if r >= 100:
        return f"{r:.0f}×"
    if r >= 10:
        return f"{r:.1f}×"
    return f"{r:.2f}×"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    if n >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    if n >= 2**20:
        return f"{n / 2**20:.1f} MiB"
    return f"{n / 2**10:.0f} KiB"


def fmt_rate(v: float | None, unit: str) -> str:
    return "—" if v is None else f"{num(v)} {unit}/s"


def fmt_fraction(v: float | None) -> str:
    if v is None:
        return "—"
    if v > 1.0:  # the probe ran in a busier moment than the row: the limit is understated
        return f"{100 * v:.0f} % (limit understated: busy machine)"
    return f"{100 * v:.2g} %"


def ok(r: dict | None) -> bool:
    return bool(r) and r.get("status") == "ok"


def median(r: dict | None) -> float | None:
    return r["median_s"] if ok(r) and "median_s" in r else None


def minimum(r: dict | None) -> float | None:
    return r["min_s"] if ok(r) and "min_s" in r else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b not in (None, 0) else None


def round_ratios(a: dict | None, b: dict | None) -> list[float]:
    """``a``'s median ÷ ``b``'s median in each interleaved round (paired by index: the rounds
    alternate the two, :meth:`benchmarks.common.context.Context.interleaved`); empty when either
    did not run or has no rounds."""
    if not (ok(a) and ok(b)):
        return []
    ra, rb = a.get("rounds") or [], b.get("rounds") or []
    if len(ra) != len(rb):
        return []
    return [x["median_s"] / y["median_s"] for x, y in zip(ra, rb) if y["median_s"] > 0]


def spread(ratios: list[float]) -> dict | None:
    """``{"median", "min", "max", "rounds"}`` of per-round ratios, None without any."""
    if not ratios:
        return None
    ordered = sorted(ratios)
    mid = len(ordered) // 2
    med = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return {"median": med, "min": ordered[0], "max": ordered[-1], "rounds": len(ordered)}


def fmt_spread(a: dict | None, b: dict | None) -> str:
    """``2.41× (2.30–2.52)``: the median over the interleaved rounds of ``a`` ÷ ``b`` (each
    round's medians) and its range over the rounds; the ratio of the pooled medians where there
    are no rounds."""
    s = spread(round_ratios(a, b))
    if s is None:
        return fmt_ratio(ratio(median(a), median(b)))
    if s["rounds"] == 1:
        return fmt_ratio(s["median"])
    return f"{fmt_ratio(s['median'])} ({fmt_ratio(s['min'])[:-1]}–{fmt_ratio(s['max'])})"


class Notes:
    """Reasons of the entries that did not run, listed once under a table."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, impl: str, r: dict | None) -> None:
        if not r or r.get("status") == "ok":
            return
        text = f"{IMPL_NAMES.get(impl, impl)}: {r.get('status')} — {r.get('reason')}"
        if text not in self.items:
            self.items.append(text)

    def lines(self) -> list[str]:
        return [f"- {t}" for t in self.items]

    def under(self, lines: list[str]) -> list[str]:
        """``lines`` and, after a blank line, the notes (when there are any)."""
        return lines + (["", *self.lines()] if self.items else [])


def cell(r: dict | None, notes: Notes, impl: str) -> str:
    """A timing cell ``median / min``, or the entry's status (its reason goes to ``notes``)."""
    notes.add(impl, r)
    if not r:
        return "—"
    if r.get("status") != "ok":
        return str(r.get("status"))
    return fmt_pair(r["median_s"], r["min_s"])


def min_cell(r: dict | None, notes: Notes, impl: str) -> str:
    """A timing cell with the minimum alone, or the entry's status."""
    notes.add(impl, r)
    if not r:
        return "—"
    return fmt_time(r["min_s"]) if ok(r) else str(r.get("status"))


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def index(rows: list[dict]) -> dict:
    """``{(model, pass, impl): row}``."""
    return {(r["model"], r.get("pass"), r["impl"]): r for r in rows}
