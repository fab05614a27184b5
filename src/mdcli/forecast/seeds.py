"""Claims over several training seeds: the mean and its standard error."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def mean_se(values: Sequence[float]) -> dict[str, float]:
    """``{"mean", "se", "n"}``; ``se`` is the sample standard deviation over sqrt(n) (NaN
    for one value)."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(vals)
    if not n:
        return {"mean": float("nan"), "se": float("nan"), "n": 0}
    mean = sum(vals) / n
    se = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1) / n) if n > 1 else float("nan")
    return {"mean": mean, "se": se, "n": n}


def aggregate(tables: Sequence[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict]]:
    """``{row: {figure: mean_se}}`` over tables ``{row: {figure: value}}`` (one per seed)."""
    rows: dict[str, dict[str, list[float]]] = {}
    for table in tables:
        for row, figures in table.items():
            for key, value in figures.items():
                if isinstance(value, int | float):
                    rows.setdefault(row, {}).setdefault(key, []).append(value)
    return {row: {k: mean_se(v) for k, v in figs.items()} for row, figs in rows.items()}


def paired_difference(tables: Sequence[dict[str, dict[str, float]]], better: str, worse: str,
                      key: str) -> dict[str, Any]:
    """Per-seed ``worse - better`` on figure ``key``: its mean, SE and how many SEs from 0."""
    diffs = [t[worse][key] - t[better][key] for t in tables
             if better in t and worse in t and key in t[better] and key in t[worse]]
    out: dict[str, Any] = mean_se(diffs)
    out["z"] = out["mean"] / out["se"] if out["se"] and out["se"] == out["se"] else float("nan")
    return out


def format_aggregate(agg: dict[str, dict[str, dict]], keys: Sequence[tuple[str, str, str]]
                     ) -> str:
    """Rows of ``mean ± se`` for the figures ``(key, label, format)`` present."""
    cols = [c for c in keys if any(c[0] in figs for figs in agg.values())]
    width = max((len(r) for r in agg), default=4) + 2
    lines = ["".ljust(width) + "".join(f"{label:>22s}" for _, label, _ in cols)]
    for row, figs in agg.items():
        cells = []
        for key, _, fmt in cols:
            if key in figs:
                m, s = figs[key]["mean"], figs[key]["se"]
                cells.append(f"{fmt.format(m)} ± {fmt.format(s)}")
            else:
                cells.append("-")
        lines.append(row.ljust(width) + "".join(f"{c:>22s}" for c in cells))
    return "\n".join(lines)
