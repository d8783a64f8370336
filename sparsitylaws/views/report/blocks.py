"""The report's building block and the small shared formatters.

A report is a list of :class:`Block` (heading, paragraph, list, table, figure or
preformatted text); the helpers here turn numbers, counts, shapes and paths into the
short strings every section shows, and a matplotlib figure into a figure block.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sparsitylaws.errors import SparsityLawsError

FIG_DPI = 110


@dataclass
class Block:
    """One element of the report: kind is h1, h2, h3, p, list, table, figure or pre."""

    kind: str
    text: str = ""
    items: list[str] = field(default_factory=list)
    frame: pd.DataFrame | None = None
    png: bytes | None = None
    name: str = ""


def _fig_block(fig: Any, name: str, caption: str) -> Block:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIG_DPI)
    return Block("figure", text=caption, png=buf.getvalue(), name=name)


def _try_figure(blocks: list[Block], name: str, caption: str, build: Any) -> None:
    """Add a figure; a figure that cannot be drawn becomes a sentence saying why."""
    try:
        fig = build()
    except SparsityLawsError as exc:
        blocks.append(Block("p", f"({name}: not drawn: {exc})"))
        return
    blocks.append(_fig_block(fig, name, caption))


def _pct(x: float | None, digits: int = 2) -> str:
    if x is None or not isinstance(x, int | float | np.floating) or not math.isfinite(float(x)):
        return "n/a"
    return f"{100 * float(x):.{digits}f}%"


def _g(x: float | None, digits: int = 4) -> str:
    """A number; an infinite interval end (a parameter without a bound on that side) reads
    "inf"/"-inf", and "n/a" is kept for a value that is missing."""
    if x is None or not isinstance(x, int | float | np.floating) or math.isnan(float(x)):
        return "n/a"
    if math.isinf(float(x)):
        return "inf" if x > 0 else "-inf"
    return f"{float(x):.{digits}g}"


def _interval(est: float, lo: float | None, hi: float | None, pct: bool = False) -> str:
    f = (lambda v: _pct(v, 2)) if pct else _g
    return f"{f(est)} [{f(lo)}, {f(hi)}]"


def _count(n: float | None) -> str:
    """A count as people read it: 45.1K, 2.27M, 41.6B, 2T (three significant digits)."""
    if n is None or not np.isfinite(n):
        return "n/a"
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= size:
            return f"{n / size:.3g}{suffix}"
    return f"{n:.3g}"


def _metric_name(row: pd.Series) -> str:
    arg = row["metric_arg"]
    return str(row["metric"]) + ("" if pd.isna(arg) else f" {arg:g}")


def _first(sub: pd.DataFrame, col: str) -> float | None:
    if col not in sub.columns:
        return None
    v = sub[col].dropna()
    return float(v.iloc[0]) if len(v) else None


def _shape(sub: pd.DataFrame) -> str:
    w, d = _first(sub, "width"), _first(sub, "depth")
    return f"{int(w)} × {int(d)} (d/L {w / d:.3g})" if w and d else "unknown"


def _shown(path: os.PathLike | str) -> str:
    """A table's path as the reader typed it: relative to the working folder when inside it
    (a report shows no machine's absolute paths it does not need)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _level(ls: Any) -> float:
    return next(iter(ls.runs.values())).level if ls.runs else 0.9
