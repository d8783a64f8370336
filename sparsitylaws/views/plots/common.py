"""Shared pieces of the figures: styles, grid/legend/axis helpers, token units, saving.

Kept apart so each figure module holds only its own drawing code.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps, rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple

from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.tables.atomic import atomic_path

FORMATS = ("png", "svg", "pdf")
DEFAULT_DPI = 150
LEVEL = 0.9
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1)), (0, (1, 1)))
#: Matplotlib settings applied only while a figure is built and saved.
STYLE = {
    "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.grid": True, "grid.alpha": 0.3,
    "grid.linewidth": 0.5, "figure.dpi": 100, "savefig.dpi": DEFAULT_DPI, "svg.fonttype": "none",
    "axes.spines.top": False, "axes.spines.right": False,
}
PCT = 100.0
#: Overlaid panels shade the 90% bands only up to this many runs (more become unreadable).
OVERLAY_MAX_BANDS = 3
TOKENS_LABEL = "tokens trained (billions)"
TOKENS_LOG_LABEL = "tokens trained (billions, log scale)"
#: Token axis units (size in billions, name): the largest one the axis reaches 1 of.
TOKEN_UNITS = ((1.0, "billions"), (1e-3, "millions"), (1e-6, "thousands"))
RATIO_LABEL = "activation ratio (% of neurons active)"


# ============================================================================ styling


def series_styles(n: int) -> list[dict]:
    """n distinguishable styles: colour of monotone lightness + marker + line style."""
    cmap = colormaps["viridis"]
    pos = [0.12] if n == 1 else np.linspace(0.0, 0.6 if n <= 2 else 0.82, n)
    return [{"color": cmap(float(p)), "marker": MARKERS[i % len(MARKERS)],
             "linestyle": LINESTYLES[i % len(LINESTYLES)]} for i, p in enumerate(pos)]


def _new_figure(size: tuple[float, float]) -> Figure:
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _grid(fig: Figure, n: int, ncols: int | None = None, **kw: Any) -> list[Axes]:
    ncols = ncols or min(4, n)
    nrows = math.ceil(n / ncols)
    axs = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False, **kw)).ravel()
    for ax in axs[n:]:
        ax.set_visible(False)
    return list(axs[:n])


def _group_sorted(srcs: list) -> list:
    """Sources grouped by activation (first-appearance order), order kept within a group."""
    order = list(dict.fromkeys(s.activation for s in srcs))
    return sorted(srcs, key=lambda s: order.index(s.activation))


def _grid_by_activation(srcs: list, size: tuple[float, float] | None, h: float = 2.7,
                        extra_h: float = 0.6) -> tuple[list[Axes], Figure]:
    """One axes per source; each activation starts a new row (ncols <= 4)."""
    groups: dict[str, int] = {}
    for s in srcs:
        groups[s.activation] = groups.get(s.activation, 0) + 1
    if len(srcs) <= 4:  # few panels: one row, whatever the activations
        fig = _new_figure(size or _panel_size(len(srcs), h=h + 0.3, extra_h=extra_h))
        return _grid(fig, len(srcs)), fig
    ncols = min(4, max(groups.values()))
    nrows = sum(math.ceil(n / ncols) for n in groups.values())
    fig = _new_figure(size or (max(4.5, 3.3 * ncols), h * nrows + extra_h))
    grid = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).reshape(nrows, ncols)
    used, row = [], 0
    for act in dict.fromkeys(s.activation for s in srcs):
        n = groups[act]
        slots = [grid[row + i // ncols, i % ncols] for i in range(n)]
        used.extend(slots)
        row += math.ceil(n / ncols)
    for ax in grid.ravel():
        if not any(ax is u for u in used):
            ax.set_visible(False)
    return used, fig


def _panel_size(n: int, ncols: int | None = None, w: float = 3.3, h: float = 2.7,
                extra_h: float = 0.6) -> tuple[float, float]:
    ncols = ncols or min(4, n)
    return (max(4.5, w * ncols), h * math.ceil(n / ncols) + extra_h)


# ============================================================================ data helpers


def _rows_for_run(table: pd.DataFrame | None, run: str, info: dict | None) -> pd.DataFrame | None:
    """The table rows of one run in the metric the law was fitted on (sorted by tokens)."""
    if table is None or table.empty:
        return None
    sub = table[table["run"] == run]
    if sub.empty:
        return None
    metric = (info or {}).get("metric")
    if metric is None:
        from sparsitylaws.tables.rows import DEFAULT_METRIC

        have = set(sub["metric"])
        metric = DEFAULT_METRIC if DEFAULT_METRIC in have else (next(iter(have)) if len(have) == 1 else None)
        if metric is None:
            return None
    sub = sub[sub["metric"] == metric]
    arg = (info or {}).get("metric_arg")
    if arg is not None and "metric_arg" in sub:
        sub = sub[np.isclose(sub["metric_arg"].astype(float), float(arg))]
    return sub.sort_values("tokens") if not sub.empty else None


def _label_grid(fig: Figure, axs: list[Axes], xlabel: str, ylabel: str) -> None:
    """Axis labels on every panel (short grids) so each axis states its unit."""
    for ax in axs:
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)


def _shared_legend(fig: Figure, axs: list[Axes], right: bool = False) -> None:
    """One legend outside the panels (never on top of data), merging every panel's entries;
    below them, or to the right (``right``, for a single panel)."""
    seen: dict[str, Any] = {}
    for ax in axs:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(lab, h)
    if seen and right:
        fig.legend(list(seen.values()), list(seen), loc="outside right center", frameon=False)
    elif seen:
        width_in = fig.get_size_inches()[0]
        longest = max(len(lab) for lab in seen)
        fit = max(1, int(width_in * 72 / (longest * 4.4 + 30)))  # ~4.4 pt per character at 8 pt
        fig.legend(list(seen.values()), list(seen), loc="outside lower center",
                   ncols=min(len(seen), 3, fit), frameon=False)


def _panel_legend(ax: Axes, ncols: int = 2, fontsize: float | None = None,
                  extra: Sequence[tuple] = ()) -> None:
    """A legend below one panel, for entries that belong to that panel only (its runs, its
    law); ``extra`` (handle, label) pairs go second; constrained layout makes room for it."""
    handles, labels = ax.get_legend_handles_labels()
    for i, (h, lab) in enumerate(extra):
        handles.insert(min(1 + i, len(handles)), h)
        labels.insert(min(1 + i, len(labels)), lab)
    if not handles:
        return
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=ncols, frameon=False,
              handler_map={tuple: HandlerTuple(ndivide=None, pad=0.3)}, fontsize=fontsize,
              handlelength=3.2 if any(isinstance(h, tuple) for h in handles) else None)


def _legend_below(ax: Axes, title: str | None = None) -> None:
    """The panel's own legend under it (runs overlaid in one panel): never on the data."""
    n = len(ax.get_legend_handles_labels()[1])
    if n:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=min(3, n), frameon=False,
                  title=title, fontsize=7.5)


def _suptitle(fig: Figure, lawset: Any, what: str) -> None:
    fig.suptitle(f"{what}  ({lawset_label(lawset)})", fontsize=10)


def lawset_label(lawset: Any) -> str:
    """Who made the law set: 'fitted by sparsitylaws plot', 'law set laws.json', ..."""
    by = (lawset.provenance or {}).get("created_by") or ""
    if lawset.name.startswith("fitted by "):
        return lawset.name
    if not lawset.runs and not by:
        return f"law set: {lawset.name}"
    return f"law set: {lawset.name}" + (f", {by}" if by and by not in lawset.name else "")


#: Panel-title note when a band leaves the drawn range (it is clipped at the frame).
CUT_NOTE = "(band cut at the frame)"


def _g3(v: np.ndarray) -> str:
    return ", ".join(f"{x:.3g}" for x in v)


def _fence(v: np.ndarray, is_log: bool, k: float = 10.0) -> tuple[float, float]:
    """Quartiles -/+ k interquartile ranges (in log10 on log axes); the range counts as at
    least a decade there, or a quarter of the quartiles' size, so only wild values fall out."""
    v = np.asarray(v, float)
    v = v[np.isfinite(v) & ((v > 0) if is_log else True)]
    if v.size < 4:
        return -np.inf, np.inf
    w = np.log10(v) if is_log else v
    q1, q3 = np.quantile(w, [0.25, 0.75])
    iqr = max(q3 - q1, 1.0 if is_log else 1e-12, 0.25 * max(abs(q1), abs(q3)))
    lo, hi = q1 - k * iqr, q3 + k * iqr
    return (10 ** lo, 10 ** hi) if is_log else (lo, hi)


def _inliers(v: np.ndarray, is_log: bool) -> np.ndarray:
    """Runs inside the quartile fence (a degenerate fit's coefficient, e.g. b = 2e5 among
    values near -3, would otherwise set the panel's range); with fewer than 4 runs, all."""
    lo, hi = _fence(v, is_log)
    v = np.asarray(v, float)
    return ~np.isfinite(v) | ((v >= lo) & (v <= hi))


def _widen_for_bands(ax: Axes, edges: list[np.ndarray], is_log: bool) -> None:
    """Show a band whole when it leaves the robust y range by little (at most half the
    range's height on that side); a runaway band leaves the range as it is, cut at the frame."""
    f = np.log10 if is_log else (lambda v: v)
    lo, hi = (f(v) for v in ax.get_ylim())
    v = np.concatenate([np.asarray(e, float) for e in edges])
    v = v[np.isfinite(v) & ((v > 0) if is_log else True)]
    if not v.size:
        return
    span = hi - lo
    pad = 0.03 * span  # a band shown whole keeps off the frame
    if f(v.min()) < lo and f(v.min()) - pad >= lo - 0.5 * span:
        lo = f(v.min()) - pad
    if f(v.max()) > hi and f(v.max()) + pad <= hi + 0.5 * span:
        hi = f(v.max()) + pad
    ax.set_ylim(*((10 ** lo, 10 ** hi) if is_log else (lo, hi)))


def _beyond(v: np.ndarray, lo: float, hi: float, tol: float, is_log: bool) -> bool:
    """Whether a band edge leaves [lo, hi] by more than ``tol`` (in log10 units on log axes)."""
    v = np.asarray(v, float)
    v = v[np.isfinite(v)]
    if is_log:
        v = np.log10(np.clip(v, 1e-300, None))
        lo, hi = np.log10(lo), np.log10(hi)
    return bool(v.size and (v.min() < lo - tol or v.max() > hi + tol))


def _clean_log_ticks(ax: Axes, which: str = "y", unit: float = 1.0) -> None:
    """Log axis labels without clutter: decades only; under about two decades, plain numbers
    at 1-2-5 steps; minor ticks unlabelled. Labels show value / ``unit``."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.yaxis if which == "y" else ax.xaxis
    lo, hi = ax.get_ylim() if which == "y" else ax.get_xlim()
    span = np.log10(hi / lo) if lo > 0 and hi > 0 else 99
    if span < 2.2:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / unit:g}"))
    else:
        axis.set_major_locator(LogLocator(base=10, numticks=6))
        if unit != 1.0:
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / unit:g}"))
    axis.set_minor_formatter(NullFormatter())


def token_unit(max_b: float) -> tuple[float, str]:
    """(size in billions, name) of the token unit for an axis reaching ``max_b`` billion:
    billions from 1B, millions from 1M, else thousands (so ticks read 2, 4, 6, not 0.002)."""
    for size, name in TOKEN_UNITS:
        if max_b >= size:
            return size, name
    return TOKEN_UNITS[-1]


def _token_axes(axs: list[Axes], log_x: bool) -> None:
    """Each panel's token unit (runs of a million and of a hundred billion tokens may share a
    figure), named in its x label; log axes get clean ticks."""
    from matplotlib.ticker import FuncFormatter

    for ax in axs:
        unit, name = token_unit(ax.get_xlim()[1])
        ax.set_xlabel(f"tokens trained ({name}" + (", log scale)" if log_x else ")"), fontsize=8)
        if log_x:
            _clean_log_ticks(ax, "x", unit)
        elif unit != 1.0:
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _, u=unit: f"{v / u:g}"))


def format_params(n: float | None) -> str:
    """A parameter count as people write it: 12K, 190K, 2.7M, 0.45B."""
    if n is None or not np.isfinite(n):
        return "? params"
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= 0.1 * size if suffix == "B" else n >= size:
            v = n / size
            return f"{v:.2g}{suffix} params" if v < 100 else f"{v:.0f}{suffix} params"
    return f"{n:.0f} params"


def _row_legend(axs: list[Axes], spare: Axes | None = None) -> None:
    """One legend per row of panels (one activation, one colour): in the row's empty slot
    (``spare``) when it has one, else right of its last panel."""
    if not axs:
        return
    seen: dict[str, Any] = {}
    for ax in axs:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(lab, h)
    seen = dict(sorted(seen.items(), key=lambda kv: "band" not in kv[0]))  # bands first, as drawn
    if spare is not None:
        spare.legend(list(seen.values()), list(seen), loc="center left", frameon=False, fontsize=7.5)
        return
    axs[-1].legend(list(seen.values()), list(seen), loc="center left", bbox_to_anchor=(1.03, 0.5),
                   frameon=False, fontsize=7.5)


def _robust_ylim(ax: Axes, core: np.ndarray, is_log: bool) -> None:
    """Y range from the point estimates and the trend line, so one wild bootstrap draw
    cannot flatten the panel; bands and error bars beyond it are cut at the frame."""
    v = core[np.isfinite(core)]
    if is_log:
        v = v[v > 0]
        if v.size:
            lo, hi = np.log10(v.min()), np.log10(v.max())
            pad = max(0.5, 0.6 * (hi - lo))
            ax.set_ylim(10 ** (lo - pad), 10 ** (hi + pad))
    elif v.size:
        lo, hi = v.min(), v.max()
        pad = max(0.6 * (hi - lo), 0.05 * max(abs(lo), abs(hi)), 1e-3)
        ax.set_ylim(lo - pad, hi + pad)


def output_format(path: str | os.PathLike) -> str:
    """The image format from a file name's suffix; an error names the argument."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise SparsityLawsError(f"-o {path}: unknown image format {fmt or '(none)'!r} "
                                f"(use .{', .'.join(FORMATS)})")
    return fmt


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, with the path named, when the output cannot be written."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise SparsityLawsError(f"-o {path}: is a directory")
    if not parent.is_dir():
        raise SparsityLawsError(f"-o {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SparsityLawsError(f"-o {path}: not writable")
    return path


#: Smallest share of their natural size that texts shrink to in a figure drawn smaller than
#: its layout needs (below it, text would be unreadable anyway).
MIN_TEXT_SCALE = 0.35


def shrink_text(fig: Figure, natural: tuple[float, float]) -> float:
    """Scale every text of ``fig`` (titles, labels, tick labels, legends) by the share of its
    ``natural`` size (inches) that the figure now has, when it is smaller: a figure asked for
    at a few hundred pixels keeps its panels instead of collapsing under full-size text.
    Returns the factor applied (1 when nothing changed)."""
    from matplotlib.text import Text

    w, h = fig.get_size_inches()
    r = max(MIN_TEXT_SCALE, min(1.0, w / natural[0], h / natural[1]))
    if r >= 0.999:
        return 1.0
    sizes = []
    for ax in fig.axes:
        for axis, which in ((ax.xaxis, "x"), (ax.yaxis, "y")):
            ticks = axis.get_major_ticks()
            if ticks:
                sizes.append((ax, which, ticks[0].label1.get_fontsize()))
    for t in fig.findobj(Text):
        t.set_fontsize(t.get_fontsize() * r)
    for ax, which, size in sizes:  # ticks made at draw time take the axis' label size
        ax.tick_params(axis=which, which="both", labelsize=size * r)
    return r


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = DEFAULT_DPI) -> Path:
    """Write ``fig`` to ``path`` (png/svg/pdf by suffix) at its exact size; no tight bbox."""
    fmt = output_format(path)
    path = check_writable(path)
    meta = {"png": {"Software": "sparsitylaws"}, "svg": {"Creator": "sparsitylaws"},
            "pdf": {"Creator": "sparsitylaws"}}[fmt]
    with rc_context(STYLE):
        try:
            with atomic_path(path, make_parents=False) as tmp:
                fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta)
        except OSError as exc:
            raise SparsityLawsError(f"-o {path}: cannot write ({exc.strerror or exc})") from None
    return path


def sign_runs_pvalue(residuals: np.ndarray) -> tuple[int, float]:
    """(runs, p): the number of runs of equal sign in ``residuals`` (in order, zeros dropped)
    and the exact one-sided p-value of so few runs if the signs were in random order
    (Wald-Wolfowitz runs test, exact distribution given the counts of each sign).  Few runs
    mean long stretches above, then below the law: the form misses the curve's shape
    (a U or an S in the residuals), which point noise cannot explain.
    """
    from math import comb

    s = np.sign(np.asarray(residuals, float))
    s = s[s != 0]
    n1, n2 = int(np.sum(s > 0)), int(np.sum(s < 0))
    if n1 == 0 or n2 == 0:
        return (1 if s.size else 0), 1.0
    runs = 1 + int(np.sum(s[1:] != s[:-1]))
    total = comb(n1 + n2, n1)

    def prob(r: int) -> float:
        k = r // 2
        if r % 2 == 0:
            return 2 * comb(n1 - 1, k - 1) * comb(n2 - 1, k - 1) / total
        return (comb(n1 - 1, k - 1) * comb(n2 - 1, k) + comb(n1 - 1, k) * comb(n2 - 1, k - 1)) / total

    return runs, float(min(1.0, sum(prob(r) for r in range(2, runs + 1))))
