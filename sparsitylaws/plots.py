"""Figures of the laws and the data they were fitted on (matplotlib, no display needed).

One public entry point per kind, each returning a :class:`matplotlib.figure.Figure`
built without pyplot (so no global backend or figure registry is touched; rendering
uses the Agg canvas), plus :func:`make_figure` (kind by name) and :func:`save_figure`::

    curves       activation ratio against tokens, per run (or overlaid by scale, as the
                 paper's Figure 4): measured points (kept filled, excluded warm-up hollow),
                 the fitted curve, its 90% prediction band, backtest predictions
    width-depth  limit A0 against the width/depth ratio: hinge, breakpoint and its
                 interval, plateau, the stable-training band, per-run A0 with intervals
    scale        A0 and the data-law coefficients against parameter count, with intervals
    residuals    measured minus fitted against tokens, per run, with the 90% band
    layers       per-layer activation ratios of one measurement per run (depth profile)

Styles are chosen to survive grayscale printing: runs ordered by scale get colours of
monotonically changing lightness (a truncated viridis), and every series also has its own
marker and line style.  Activation ratios are shown in percent; every axis names its unit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps, rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend_handler import HandlerTuple

from sparsitylaws.atomic import atomic_path
from sparsitylaws.errors import LawSetError, SparsityLawsError

__all__ = [
    "DEFAULT_DPI",
    "FORMATS",
    "KINDS",
    "make_figure",
    "plot_curves",
    "plot_layers",
    "plot_residuals",
    "plot_scale",
    "plot_width_depth",
    "save_figure",
]

KINDS = ("curves", "width-depth", "scale", "residuals", "layers")
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
        from sparsitylaws.rows import DEFAULT_METRIC

        have = set(sub["metric"])
        metric = DEFAULT_METRIC if DEFAULT_METRIC in have else (next(iter(have)) if len(have) == 1 else None)
        if metric is None:
            return None
    sub = sub[sub["metric"] == metric]
    arg = (info or {}).get("metric_arg")
    if arg is not None and "metric_arg" in sub:
        sub = sub[np.isclose(sub["metric_arg"].astype(float), float(arg))]
    return sub.sort_values("tokens") if not sub.empty else None


@dataclass
class CurveSource:
    """One run's law as something to draw: a fitted RunFit, or published coefficients."""

    run: str
    activation: str
    n_params: float | None
    tokens_b: tuple[float, float]
    origin: str  # "fit" or "published"
    runfit: Any = None
    form: str | None = None
    theta: np.ndarray | None = None
    ratio: float | None = None
    section: dict | None = None
    dropped_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def band(self, tokens_b: np.ndarray) -> pd.DataFrame:
        """Estimate and 90% band (prediction band for fits; scale-law band for published)."""
        d = np.asarray(tokens_b, float)
        if self.origin == "fit":
            p = self.runfit.predict(d * 1e9, level=LEVEL)
            return pd.DataFrame({"tokens_b": d, "estimate": p["estimate"], "low": p["pred_low"],
                                 "high": p["pred_high"]})
        from sparsitylaws.architecture import predict_section
        from sparsitylaws.laws import get_form

        est = get_form(self.form).evaluate(d, np.asarray(self.theta, float))
        pr = predict_section(self.section, self.activation, np.full(d.size, self.n_params),
                             np.full(d.size, self.ratio if self.ratio else np.nan), d, level=LEVEL)
        return pd.DataFrame({"tokens_b": d, "estimate": est, "low": pr["ratio_low"],
                             "high": pr["ratio_high"]})

    def fitted(self, tokens_b: np.ndarray) -> np.ndarray:
        """Point estimate of the law at token counts (billions)."""
        d = np.asarray(tokens_b, float)
        if self.origin == "fit":
            return self.runfit.predict(d * 1e9, level=LEVEL)["estimate"].to_numpy()
        from sparsitylaws.laws import get_form

        return get_form(self.form).evaluate(d, np.asarray(self.theta, float))


def curve_sources(lawset: Any, runs: Sequence[str] | None = None) -> list[CurveSource]:
    """Drawable laws of a law set: its fitted runs, else the published runs of its scale laws.

    ``runs`` restricts (and orders) them; an unknown name raises a LawSetError listing
    what the law set holds.
    """
    out: dict[str, CurveSource] = {}
    for name, fit in lawset.runs.items():
        info = lawset.run_info.get(name, {})
        out[name] = CurveSource(
            run=name, activation=fit.activation, n_params=info.get("n_params"),
            tokens_b=(fit.tokens_b_min, fit.tokens_b_max), origin="fit", runfit=fit,
            ratio=info.get("width_depth_ratio"),
            dropped_tokens=np.asarray([d["tokens"] for d in fit.dropped], float))
    if not out and lawset.architecture:
        for act, entry in (lawset.architecture.get("activations") or {}).items():
            sc = entry.get("scale") or {}
            for i, name in enumerate(sc.get("runs") or []):
                toks = entry.get("ranges", {}).get("tokens")
                out[name] = CurveSource(
                    run=name, activation=act, n_params=10 ** float(sc["log10_n"][i]),
                    tokens_b=(toks[0] / 1e9, toks[1] / 1e9) if toks else (1.0, 100.0),
                    origin="published", form=sc["form"], theta=np.asarray(sc["theta"][i], float),
                    ratio=(sc.get("ratios") or [None] * (i + 1))[i], section=lawset.architecture)
    if runs:
        missing = [r for r in runs if r not in out]
        if missing:
            held = ", ".join(sorted(out)) or "none"
            raise LawSetError(f"--run {missing[0]}: law set '{lawset.name}' has no such run (runs: {held})")
        return [out[r] for r in runs]
    if not out:
        raise LawSetError(f"law set '{lawset.name}' holds no fitted runs and no scale laws to draw")
    return sorted(out.values(), key=lambda s: (s.activation, s.n_params or 0.0, s.run))


def _published_token_range(src: CurveSource) -> tuple[float, float]:
    """Each published run's own budget: ~190 tokens per parameter (paper), else the range."""
    if src.origin == "published" and src.n_params:
        from sparsitylaws import paper

        hi = paper.TOKENS_PER_PARAM * src.n_params / 1e9
        return (0.05 * hi, hi)
    return src.tokens_b


# ============================================================================ curves


def _token_grid(lo: float, hi: float, log_x: bool, n: int = 160) -> np.ndarray:
    """Token counts (billions) from lo to hi; lo is kept positive relative to hi (a fixed
    floor would start the curve of a run of a few million tokens after its last point)."""
    lo = max(lo, 1e-4 * hi)
    return np.geomspace(lo, hi, n) if log_x else np.linspace(lo, hi, n)


def _draw_curve(ax: Axes, src: CurveSource, table: pd.DataFrame | None, info: dict,
                style: dict, log_x: bool, overlay: bool, bands: bool = True) -> str:
    """One run on one axes; returns a short coverage note for the title ('' if none)."""
    rows = _rows_for_run(table, src.run, info)
    lo, hi = _published_token_range(src)
    if rows is not None:
        tb = rows["tokens"].to_numpy(float) / 1e9
        lo, hi = min(lo, tb.min()), max(hi, tb.max())
    grid = _token_grid(0.9 * lo if log_x else lo, hi * 1.04, log_x)
    band = src.band(grid)
    label = src.run if overlay else None
    c = style["color"]
    band_label = ("90% prediction band" if src.origin == "fit" else "90% scale-law band")
    if not overlay or bands:
        ax.fill_between(grid, PCT * band["low"], PCT * band["high"], color=c, alpha=0.12 if overlay else 0.22,
                        linewidth=0, label=None if overlay else band_label)
    fit_label = None if overlay else ("fitted law" if src.origin == "fit" else "published law (Table 2)")
    ax.plot(grid, PCT * band["estimate"], color=c, linestyle=style["linestyle"] if overlay else "-",
            linewidth=1.4, label=fit_label)
    if overlay:  # one legend entry per run: its line, colour, and marker only when points are drawn
        ax.plot([], [], color=c, linestyle=style["linestyle"], marker=style["marker"] if rows is not None else "",
                markersize=4, markeredgecolor="black", markeredgewidth=0.4, label=label)
    if rows is not None:
        tb = rows["tokens"].to_numpy(float) / 1e9
        y = PCT * rows["activation_ratio"].to_numpy(float)
        drop = np.isin(rows["tokens"].to_numpy(float), src.dropped_tokens)
        ms = 3.2 if overlay else 3.8
        ax.plot(tb[~drop], y[~drop], linestyle="none", marker=style["marker"], markersize=ms,
                color=c, markeredgecolor="black", markeredgewidth=0.4,
                label=None if overlay else ("measured (fitted)" if src.origin == "fit" else "measured"))
        if drop.any():
            ax.plot(tb[drop], y[drop], linestyle="none", marker=style["marker"], markersize=ms,
                    markerfacecolor="white", markeredgecolor=c, markeredgewidth=1.0,
                    label="excluded warm-up" if not overlay else None)
    note = ""
    if src.origin == "fit" and src.runfit.backtest and not overlay:
        note = _draw_backtest(ax, src.runfit.backtest, show_measured=rows is None)
    if log_x:
        ax.set_xscale("log")
    return note


def _draw_backtest(ax: Axes, rows: list[dict], show_measured: bool) -> str:
    """Held-out points of the earliest cutoff: prediction and its 90% interval."""
    cut = min(r["cutoff"] for r in rows)
    sub = [r for r in rows if r["cutoff"] == cut and r.get("predicted") is not None]
    if not sub:
        return ""
    x = np.array([r["tokens_b"] for r in sub], float)
    p = PCT * np.array([r["predicted"] for r in sub], float)
    lo = PCT * np.array([r["pred_low"] if r["pred_low"] is not None else np.nan for r in sub], float)
    hi = PCT * np.array([r["pred_high"] if r["pred_high"] is not None else np.nan for r in sub], float)
    ax.errorbar(x, p, yerr=[np.clip(p - lo, 0, None), np.clip(hi - p, 0, None)], fmt="_", color="0.25",
                ecolor="0.45", elinewidth=0.8, capsize=1.5, markersize=5, alpha=0.9,
                label=f"backtest: fit on first {cut:.0%}, predicted with 90% PI", zorder=1)
    if show_measured:
        ax.plot(x, PCT * np.array([r["measured"] for r in sub], float), linestyle="none", marker="x",
                color="black", markersize=3.5, label="held-out measured")
    from sparsitylaws.coverage import poor_coverage

    covered = sum(bool(r.get("covered")) for r in sub)
    flag = " (POOR)" if poor_coverage(covered, len(sub), LEVEL) else ""
    return f"backtest {cut:.0%}: {covered}/{len(sub)} in 90% PI{flag}"


def _ylim_from_data(ax: Axes, src_rows: list[np.ndarray], pad: float = 0.12) -> None:
    """Keep the y range on the measured points and curves, not on a runaway band."""
    vals = np.concatenate([v[np.isfinite(v)] for v in src_rows if v.size]) if src_rows else np.zeros(0)
    if vals.size < 2:
        return
    lo, hi = np.quantile(vals, [0.0, 1.0])
    span = max(hi - lo, 1e-3)
    ax.set_ylim(lo - pad * span, hi + pad * span)


def plot_curves(lawset: Any, table: pd.DataFrame | None = None, *, runs: Sequence[str] | None = None,
                log_x: bool = False, overlay: bool = False, size: tuple[float, float] | None = None) -> Figure:
    """Activation ratio against tokens: one panel per run, or one per activation (overlay)."""
    srcs = curve_sources(lawset, runs)
    with rc_context(STYLE):
        if overlay:
            return _curves_overlay(lawset, srcs, table, log_x, size)
        srcs = _group_sorted(srcs)
        axs, fig = _grid_by_activation(srcs, size, extra_h=0.9)
        for ax, src in zip(axs, srcs, strict=True):
            info = lawset.run_info.get(src.run, {})
            note = _draw_curve(ax, src, table, info, series_styles(1)[0], log_x, overlay=False)
            _ylim_curves(ax, src, table, info, log_x)
            _show_bands_that_fit(ax)
            scale = f", {format_params(src.n_params)}" if src.n_params else ""
            note = "\n".join(n for n in (note, CUT_NOTE if bands_cut(ax) else "") if n)
            ax.set_title(f"{src.run} ({src.activation}{scale})" + (f"\n{note}" if note else ""))
        _label_grid(fig, axs, (TOKENS_LOG_LABEL if log_x else TOKENS_LABEL), RATIO_LABEL)
        _token_axes(axs, log_x)
        _shared_legend(fig, axs)
        _suptitle(fig, lawset, "Activation ratio over training")
        return fig


def _band_ys(ax: Axes) -> list[np.ndarray]:
    from matplotlib.collections import PolyCollection

    return [p.vertices[:, 1] for c in ax.collections if isinstance(c, PolyCollection) for p in c.get_paths()]


def _show_bands_that_fit(ax: Axes) -> None:
    """Widen a percent axis to hold a band that leaves it by little (never beyond 0-100%)."""
    ys = _band_ys(ax)
    if ys:
        _widen_for_bands(ax, ys, False)
    lo, hi = ax.get_ylim()
    ax.set_ylim(max(lo, 0.0), min(hi, PCT))


def bands_cut(ax: Axes) -> bool:
    """Whether a shaded band (fill_between) of ``ax`` reaches beyond its y range."""
    lo, hi = ax.get_ylim()
    tol = 1e-6 * (hi - lo)
    for y in _band_ys(ax):
        y = y[np.isfinite(y)]
        if y.size and (y.min() < lo - tol or y.max() > hi + tol):
            return True
    return False


def _ylim_curves(ax: Axes, src: CurveSource, table: pd.DataFrame | None, info: dict, log_x: bool) -> None:
    rows = _rows_for_run(table, src.run, info)
    vals = []
    lo, hi = _published_token_range(src)
    d = _token_grid(lo, hi, True, 40)
    vals.append(PCT * src.fitted(d))
    if src.origin == "published":  # the wide scale-law band is the message: keep it in view
        b = src.band(d[d >= np.quantile(d, 0.2)])
        vals += [PCT * b["low"].to_numpy(), PCT * b["high"].to_numpy()]
    if rows is not None:
        vals.append(PCT * rows["activation_ratio"].to_numpy(float))
    _ylim_from_data(ax, vals, pad=0.25 if src.origin == "fit" else 0.05)


def _curves_overlay(lawset: Any, srcs: list[CurveSource], table: pd.DataFrame | None, log_x: bool,
                    size: tuple[float, float] | None) -> Figure:
    acts = sorted({s.activation for s in srcs})
    fig = _new_figure(size or (max(4.5, 4.4 * len(acts)), 3.9))
    axs = _grid(fig, len(acts), ncols=len(acts))
    for ax, act in zip(axs, acts, strict=True):
        group = sorted([s for s in srcs if s.activation == act], key=lambda s: (s.n_params or 0, s.run))
        styles = series_styles(len(group))
        vals = []
        bands = len(group) <= OVERLAY_MAX_BANDS
        for src, st in zip(group, styles, strict=True):
            info = lawset.run_info.get(src.run, {})
            _draw_curve(ax, src, table, info, st, log_x, overlay=True, bands=bands)
            lo, hi = _published_token_range(src)
            vals.append(PCT * src.fitted(_token_grid(lo, hi, True, 40)))
            rows = _rows_for_run(table, src.run, info)
            if rows is not None:
                vals.append(PCT * rows["activation_ratio"].to_numpy(float))
        _ylim_from_data(ax, vals, pad=0.15)
        if any(s.dropped_tokens.size for s in group) and table is not None:
            ax.plot([], [], linestyle="none", marker="o", markerfacecolor="white", markeredgecolor="0.3",
                    label="hollow: excluded warm-up")
        ax.set_title(f"{act}: runs by scale\n(lines: laws"
                     + (", shading: 90% bands)" if bands else "; bands: per-run panels)")
                     + (f"\n{CUT_NOTE}" if bands_cut(ax) else ""))
        ax.set_xlabel(TOKENS_LOG_LABEL if log_x else TOKENS_LABEL)
        ax.set_ylabel(RATIO_LABEL)
        _legend_below(ax, title="run")
    _token_axes(axs, log_x)
    _suptitle(fig, lawset, "Activation ratio over training, by scale")
    return fig


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


# ============================================================================ residuals


def plot_residuals(lawset: Any, table: pd.DataFrame | None, *, runs: Sequence[str] | None = None,
                   log_x: bool = False, overlay: bool = False,
                   size: tuple[float, float] | None = None) -> Figure:
    """Measured minus fitted (percentage points) against tokens, per run, with the 90% band."""
    if table is None or table.empty:
        raise SparsityLawsError("--kind residuals needs measurements: give the table(s) with --data")
    srcs = [s for s in curve_sources(lawset, runs)
            if _rows_for_run(table, s.run, lawset.run_info.get(s.run, {})) is not None]
    if not srcs:
        raise SparsityLawsError(
            f"--data: no table rows match the runs of law set '{lawset.name}' "
            f"(runs: {', '.join(r.run for r in curve_sources(lawset)) or 'none'})")
    with rc_context(STYLE):
        if overlay:
            acts = sorted({s.activation for s in srcs})
            fig = _new_figure(size or (max(4.5, 4.4 * len(acts)), 3.6))
            axs = _grid(fig, len(acts), ncols=len(acts))
            for ax, act in zip(axs, acts, strict=True):
                group = [s for s in srcs if s.activation == act]
                kept, dropped = [], []
                for src, st in zip(group, series_styles(len(group)), strict=True):
                    k, d = _draw_residuals(ax, src, table, lawset.run_info.get(src.run, {}), st, band=False,
                                           label=src.run)
                    kept.append(k)
                    dropped.append(d)
                _residual_ylim(ax, np.concatenate(kept), np.concatenate(dropped), 1.3)
                ax.set_title(f"{act}: residuals by run")
                _legend_below(ax, title="run")
        else:
            srcs = _group_sorted(srcs)
            axs, fig = _grid_by_activation(srcs, size, h=2.4, extra_h=0.8)
            for ax, src in zip(axs, srcs, strict=True):
                kept, dropped = _draw_residuals(ax, src, table, lawset.run_info.get(src.run, {}),
                                                series_styles(1)[0], band=True, label=None)
                _residual_ylim(ax, kept, dropped, 2.2)
                rms = float(np.sqrt(np.mean(kept**2))) if kept.size else float("nan")
                ax.set_title(f"{src.run}  (RMS {rms:.3g} pp)" + (f"\n{CUT_NOTE}" if bands_cut(ax) else ""))
        for ax in axs:
            ax.axhline(0.0, color="black", linewidth=0.8)
            if log_x:
                ax.set_xscale("log")
        _label_grid(fig, axs, (TOKENS_LOG_LABEL if log_x else TOKENS_LABEL),
                    "measured − fitted (percentage points)")
        _token_axes(axs, log_x)
        if not overlay:
            _shared_legend(fig, axs)
        _suptitle(fig, lawset, "Residuals of the data laws")
        return fig


def _draw_residuals(ax: Axes, src: CurveSource, table: pd.DataFrame, info: dict, style: dict,
                    band: bool, label: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Draw one run's residuals (pp); returns (kept, excluded warm-up) residuals."""
    rows = _rows_for_run(table, src.run, info)
    tb = rows["tokens"].to_numpy(float) / 1e9
    r = PCT * (rows["activation_ratio"].to_numpy(float) - src.fitted(tb))
    drop = np.isin(rows["tokens"].to_numpy(float), src.dropped_tokens)
    if band:
        grid = np.linspace(tb.min(), tb.max(), 120)
        b = src.band(grid)
        ax.fill_between(grid, PCT * (b["low"] - b["estimate"]), PCT * (b["high"] - b["estimate"]),
                        color=style["color"], alpha=0.2, linewidth=0,
                        label="90% prediction band" if src.origin == "fit" else "90% scale-law band")
    c = style["color"]
    ax.plot(tb[~drop], r[~drop], linestyle=":" if label else "none", linewidth=0.8, marker=style["marker"],
            markersize=3.5, color=c, markeredgecolor="black", markeredgewidth=0.4,
            label=label or "fitted point")
    if drop.any():
        ax.plot(tb[drop], r[drop], linestyle="none", marker=style["marker"], markersize=3.8,
                markerfacecolor="white", markeredgecolor=c, label=None if label else "excluded warm-up")
    return r[~drop], r[drop]


def _residual_ylim(ax: Axes, kept: np.ndarray, dropped: np.ndarray, factor: float) -> None:
    """Y range from the fitted points; warm-up points beyond it are counted in a note."""
    if not kept.size:
        return
    lim = factor * float(np.max(np.abs(kept))) or 1e-3
    ax.set_ylim(-lim, lim)
    off = dropped[np.abs(dropped) > lim]
    if off.size:
        ax.text(0.98, 0.04, f"{off.size} warm-up point(s) off scale (up to {off[np.argmax(np.abs(off))]:+.2g} pp)",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="0.3")


# ============================================================================ width/depth


def _arch(lawset: Any, kind: str) -> dict:
    from sparsitylaws.architecture import check_section

    try:
        return check_section(lawset.architecture, source=f"law set '{lawset.name}'")
    except LawSetError as exc:
        raise LawSetError(f"--kind {kind}: {exc}") from None


def _run_limits(lawset: Any, activation: str) -> pd.DataFrame:
    """Per fitted run of one activation: width/depth ratio, n_params, A0 and its 90% interval."""
    rows = []
    for name, fit in lawset.runs.items():
        if fit.activation != activation:
            continue
        lim = fit.limit()
        info = lawset.run_info.get(name, {})
        if lim is None:
            continue
        rows.append({"run": name, "ratio": info.get("width_depth_ratio"), "n_params": info.get("n_params"),
                     "a0": lim["estimate"], "low": lim["boot_low"], "high": lim["boot_high"]})
    return pd.DataFrame(rows, columns=["run", "ratio", "n_params", "a0", "low", "high"])


def plot_width_depth(lawset: Any, table: pd.DataFrame | None = None, *, runs: Sequence[str] | None = None,
                     size: tuple[float, float] | None = None, **_: Any) -> Figure:
    """Limit A0 against width/depth: the law with its band, breakpoint, plateau, stable band."""
    sec = _arch(lawset, "width-depth")
    acts = sorted(sec["activations"])
    with rc_context(STYLE):
        fig = _new_figure(size or ((6.4, 4.6) if len(acts) == 1 else (4.9 * len(acts), 4.9)))
        axs = _grid(fig, len(acts), ncols=len(acts))
        for ax, act in zip(axs, acts, strict=True):
            extra = _draw_width_depth(ax, lawset, sec, act, runs)
            _panel_legend(ax, ncols=1 if len(acts) > 1 else 2, extra=extra)
        _suptitle(fig, lawset, "Limit activation ratio A0 against width/depth")
        return fig


def _draw_width_depth(ax: Axes, lawset: Any, sec: dict, act: str, runs: Sequence[str] | None) -> list[tuple]:
    """Draw one activation's panel; returns legend entries (handle, label) not attached to artists."""
    from sparsitylaws.architecture import predict_section

    entry = sec["activations"][act]
    wd = entry.get("widthdepth")
    band = sec["stable_band"]["range"]
    rng = entry.get("ranges", {}).get("ratio") or [48.0, 60.0]
    r_hi = max(320.0, 1.1 * band[1], 1.1 * rng[1])
    r = np.linspace(max(1.0, 0.5 * min(rng[0], band[0])), r_hi, 300)
    n_ref = (wd or {}).get("n_params") or 10 ** float(np.mean(entry["scale"]["log10_n"]))
    pr = predict_section(sec, act, np.full(r.size, n_ref), r, np.full(r.size, 1e4), level=LEVEL)
    # the stable band and the breakpoint interval are bars on the frame (bottom, top), so no
    # area shading overlaps the interval band of A0
    ax.axvspan(band[0], band[1], ymin=0.0, ymax=0.035, facecolor="0.55", edgecolor="none",
               label=f"stable training band {band[0]:g}–{band[1]:g} (paper), bottom bar")
    model = "none" if wd is None else wd["model"]
    col = colormaps["viridis"](0.3)
    ax.fill_between(r, PCT * pr["a0_low"], PCT * pr["a0_high"], color=col, alpha=0.18,
                    linewidth=0, label="90% interval of A0")
    inside = (r >= rng[0]) & (r <= rng[1])
    what = {"none": "A0 flat (no width/depth law)"}.get(model, f"A0 law ({model})")
    solid, = ax.plot(np.where(inside, r, np.nan), PCT * pr["a0"], color=col, linewidth=1.8)
    dashed, = ax.plot(np.where(inside, np.nan, r), PCT * pr["a0"], color=col, linewidth=1.4, linestyle="--")
    where = "runs' d/L" if wd is None else "fitted d/L"
    law_entry = ((solid, dashed), f"{what}, {format_params(n_ref)}\n(solid: {where} "
                                  f"{rng[0]:.0f}–{rng[1]:.0f}; dashed: beyond)")
    bott = sec.get("bottleneck") or {}
    if wd is not None and model == "hinge":
        rb = float(wd["point"]["breakpoint"])
        fit = wd.get("fit") or {}
        iv = (fit.get("breakpoint") or {}).get("interval") or (
            bott.get("interval") if bott.get("activation", act) == act else None)
        ax.axvline(rb, color="black", linestyle=(0, (4, 2)), linewidth=1.0, label=f"breakpoint {rb:.0f}")
        if iv and all(v is not None for v in iv):
            ax.axvspan(iv[0], iv[1], ymin=0.965, ymax=1.0, facecolor="black", edgecolor="none",
                       label=f"breakpoint 90% interval {iv[0]:.0f}–{iv[1]:.0f}, top bar")
        plat = wd["point"].get("plateau")
        beyond = np.asarray(pr["a0"], float)[r >= rb]
        if plat is not None and beyond.size:
            # the plateau of the drawn line (A0 composed in log-odds at this scale); the
            # hinge's own plateau (at the sweep's reference) is named when it differs
            level = PCT * float(np.median(beyond))
            own = "" if abs(level - PCT * plat) < 0.05 else f"; hinge's own {PCT * plat:.1f}%"
            ax.axhline(level, color="0.3", linestyle=":", linewidth=1.2,
                       label=f"plateau {level:.1f}% at {format_params(n_ref)}{own}")
    sweep_fitted_here = bool(wd) and set(wd.get("runs") or []) <= set(lawset.runs)
    if wd is not None and wd.get("fit") and not sweep_fitted_here:  # else: the circles below
        fit = wd["fit"]
        se = fit.get("a0_se")
        ax.errorbar(fit["ratios"], PCT * np.asarray(fit["a0"]), yerr=None if se is None else PCT * 1.645 * np.asarray(se),
                    fmt="D", color="black", markersize=4, capsize=2, label="sweep runs' A0")
    lim = _run_limits(lawset, act)
    if runs:
        lim = lim[lim["run"].isin(runs)]
    lim = lim.dropna(subset=["ratio"])
    if not lim.empty:
        ax.errorbar(lim["ratio"], PCT * lim["a0"],
                    yerr=[PCT * (lim["a0"] - lim["low"]).clip(lower=0), PCT * (lim["high"] - lim["a0"]).clip(lower=0)],
                    fmt="o", mfc="white", mec="black", ecolor="black", markersize=4.5, capsize=2,
                    label="fitted runs' A0 (90% interval)")
    sc = entry["scale"]
    ia0 = sc["param_names"].index("A0")
    ratios = sc.get("ratios") or []
    pts = [(rt, th[ia0]) for rt, th in zip(ratios, sc["theta"], strict=False) if rt is not None]
    if pts and lim.empty and not (wd or {}).get("fit"):
        ax.plot([p[0] for p in pts], [PCT * p[1] for p in pts], linestyle="none", marker="s", mfc="white",
                mec="0.2", markersize=4.5, label="runs' A0 (published, all scales)")
    title = f"{act}: width/depth law = {model}"
    if wd is None:
        title = f"{act}: no width/depth law\n(A0 assumed independent of width/depth)"
    ax.set_title(title)
    ax.set_xlabel("width/depth ratio d/L (hidden size per layer, dimensionless)")
    ax.set_ylabel("limit activation ratio A0 (%)")
    ax.set_xlim(r[0], r[-1])
    return [law_entry]


# ============================================================================ scale


def _quantiles(a: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    q = (1 - LEVEL) / 2
    return np.nanquantile(a, q, axis=axis), np.nanquantile(a, 1 - q, axis=axis)


def plot_scale(lawset: Any, table: pd.DataFrame | None = None, *, runs: Sequence[str] | None = None,
               size: tuple[float, float] | None = None, **_: Any) -> Figure:
    """A0 and the other data-law coefficients against parameter count, trend and intervals.

    One row per activation (A0 levels differ by a factor of five between ReLU and SiLU),
    one column per coefficient.
    """
    sec = _arch(lawset, "scale")
    acts = sorted(sec["activations"])
    names = {a: ["A0"] + [p for p in sec["activations"][a]["scale"]["param_names"] if p != "A0"]
             for a in acts}
    ncols = max(len(v) for v in names.values())
    with rc_context(STYLE):
        fig = _new_figure(size or (2.9 * ncols + 2.4, 2.6 * len(acts) + 0.5))
        grid = np.atleast_1d(fig.subplots(len(acts), ncols, squeeze=False))
        styles = series_styles(max(2, len(acts)))
        for i, (act, st) in enumerate(zip(acts, styles, strict=False)):
            sc = sec["activations"][act]["scale"]
            row_axes, spare = [], None
            for j in range(ncols):
                ax = grid[i, j]
                if j >= len(names[act]):
                    ax.axis("off")
                    spare = spare or ax
                    continue
                p = names[act][j]
                ax.set_xscale("log")
                cut = _draw_scale_param(ax, sc, p, act, st)
                ax.set_ylabel(SCALE_UNITS.get(p, p), fontsize=8)
                ax.set_xlabel("non-embedding parameters (count, log)", fontsize=8)
                ax.set_title(f"{act}: {SCALE_TITLES.get(p, p)}" + (f"\n{CUT_NOTE}" if cut else ""))
                row_axes.append(ax)
            _row_legend(row_axes, spare)
        _suptitle(fig, lawset, "Data-law coefficients against scale (lines: trends in log10 N, bands: 90%)")
        return fig


#: Panel-title note when a band leaves the drawn range (it is clipped at the frame).
CUT_NOTE = "(band cut at the frame)"
SCALE_UNITS = {"A0": "A0 (% of neurons active)", "alpha": "alpha (exponent, dimensionless)",
               "c": "c (coefficient, dimensionless)", "b": "b (log-offset, dimensionless)"}
SCALE_TITLES = {"A0": "A0, limit as tokens → ∞", "alpha": "alpha, speed exponent",
                "c": "c, amplitude", "b": "b, offset"}


def _draw_scale_param(ax: Axes, sc: dict, p: str, act: str, st: dict) -> bool:
    """One coefficient's panel; returns whether a band was cut at the frame."""
    from sparsitylaws.architecture import TRANSFORMS

    j = sc["param_names"].index(p)
    x = np.asarray(sc["log10_n"], float)
    theta = np.asarray(sc["theta"], float)[:, j]
    mult = PCT if p == "A0" else 1.0
    is_log = TRANSFORMS.get(p) == "log"
    back = np.exp if is_log else (lambda g: g)
    xs = np.linspace(x.min() - 0.15, x.max() + 0.15, 80)
    dx = xs - float(sc["x_center"])
    coef = np.asarray(sc["coef"], float)
    dco = np.asarray(sc["draws_coef"], float)
    jit = np.asarray(sc["draws_jitter"], float)
    xtx = np.asarray(sc["xtx_inv"], float)
    line = coef[0, j] + coef[1, j] * dx
    g = dco[:, 0, j][:, None] + dco[:, 1, j][:, None] * dx[None, :]
    lo, hi = _quantiles(g)
    infl = np.sqrt(1.0 + xtx[0, 0] + 2 * dx * xtx[0, 1] + dx * dx * xtx[1, 1])
    glo, ghi = _quantiles(g + infl[None, :] * jit[:, j][:, None])
    n = 10 ** xs
    c = st["color"]
    def drawn(a: np.ndarray, b: np.ndarray, ref: np.ndarray) -> bool:  # visibly wider than a line
        return bool(np.nanmax(np.abs(b - a)) > 1e-3 * max(float(np.nanmax(np.abs(ref))), 1e-12))

    bands = []
    if drawn(mult * back(glo), mult * back(ghi), mult * back(line)):
        bands.append((mult * back(glo), mult * back(ghi), 0.12, "90% band for a new scale"))
    if drawn(mult * back(lo), mult * back(hi), mult * back(line)) and not np.allclose(lo, glo):
        bands.append((mult * back(lo), mult * back(hi), 0.3, "90% band of the trend line"))
    ax.plot(n, mult * back(line), color=c, linestyle=st["linestyle"], linewidth=1.4, label="trend in log10 N")
    rd = sc.get("run_draws")
    yerr = None
    if rd is not None:
        d = np.asarray(rd, float)[:, :, j]
        if np.nanmax(np.nanstd(d, axis=0)) > 0:
            rlo, rhi = _quantiles(d)
            yerr = [mult * np.clip(theta - rlo, 0, None), mult * np.clip(rhi - theta, 0, None)]
    ax.errorbar(10 ** x, mult * theta, yerr=yerr, fmt=st["marker"], color=c, mec="black", mew=0.5,
                markersize=5, capsize=2, linestyle="none",
                label="runs" + (" (90% interval)" if yerr is not None else " (no interval published)"))
    if is_log:
        ax.set_yscale("log")
    keep = _inliers(mult * theta, is_log)
    lo_f, hi_f = _fence(mult * theta[keep], is_log)
    ln = mult * back(line)
    _robust_ylim(ax, np.r_[mult * theta[keep], np.clip(ln, lo_f, hi_f)], is_log)
    if bands:
        _widen_for_bands(ax, [b for blo, bhi, _, _ in bands for b in (blo, bhi)], is_log)
    if p == "A0":  # a share of neurons: never drawn outside 0-100%
        y0, y1 = ax.get_ylim()
        ax.set_ylim(max(y0, 0.0), min(y1, PCT))
    ax.set_xlim(n[0], n[-1])  # the fitted scales plus 0.15 decades each side
    ylo, yhi = ax.get_ylim()
    for blo, bhi, alpha, label in bands:  # drawn inside the frame only
        ax.fill_between(n, np.clip(blo, ylo, yhi), np.clip(bhi, ylo, yhi), color=c, alpha=alpha,
                        linewidth=0, label=label, zorder=0.5)
    if is_log:
        _clean_log_ticks(ax)
    tol = 1e-6 * ((np.log10(yhi) - np.log10(ylo)) if is_log else (yhi - ylo))
    cut = any(_beyond(b, ylo, yhi, tol, is_log) for blo, bhi, _, _ in bands for b in (blo, bhi))
    off = int(np.sum(~keep))
    if off:
        ax.text(0.98, 0.03, f"{off} run(s) off scale ({_g3(mult * theta[~keep])})", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=7, color="0.3")
    return cut


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


# ============================================================================ layers


def plot_layers(table: pd.DataFrame | None, *, runs: Sequence[str] | None = None,
                checkpoint: str | None = None, metric: str | None = None,
                size: tuple[float, float] | None = None, lawset: Any = None, **_: Any) -> Figure:
    """Per-layer activation ratio across depth, last (or named) checkpoint: one panel per run
    (a broken or flagged model never shares a panel with another), one line per metric."""
    from sparsitylaws.rows import excluded_runs

    prof = layer_profiles(table, runs=runs, checkpoint=checkpoint, metric=metric)
    flagged = excluded_runs(table)
    by_run: dict[str, list] = {}
    for run, label, vals, mean in prof:
        by_run.setdefault(run, []).append((label, vals, mean))
    with rc_context(STYLE):
        n = len(by_run)
        fig = _new_figure(size or ((6.4, 3.9) if n == 1 else _panel_size(n, ncols=min(n, 3), w=4.2, h=3.3)))
        axs = _grid(fig, n, ncols=min(n, 3))
        for ax, (run, lines) in zip(axs, by_run.items(), strict=True):
            styles = series_styles(len(lines))
            cks = {label.rsplit(" @ ", 1)[-1] for label, _, _ in lines}
            shared = cks.pop() if len(cks) == 1 and len(lines) > 1 else None
            if shared:  # one checkpoint: named once in the title, not in every entry
                lines = [(label.rsplit(" @ ", 1)[0], v, m) for label, v, m in lines]
            for (label, vals, mean), st in zip(lines, styles, strict=True):
                x = np.arange(1, len(vals) + 1)
                ax.plot(x, PCT * np.asarray(vals), color=st["color"], marker=st["marker"], markersize=3.5,
                        linestyle=st["linestyle"], linewidth=1.2, label=f"{label}: mean {PCT * mean:.1f}%")
            ax.set_xlabel("layer (index, 1 = nearest the input)")
            ax.set_ylabel("per-layer activation ratio (%)")
            ax.set_ylim(bottom=0)
            n_max = max(len(v) for _, v, _ in lines)
            ax.set_xlim(0.5, n_max + 0.5)
            if n_max <= 40:
                ax.set_xticks(np.arange(1, n_max + 1, max(1, n_max // 12)))
            title = run + (f"\ncheckpoint {shared}" if shared else "")
            if run in flagged:
                title += f"\n(not for fitting: {_short(flagged[run])})"
            ax.set_title(title, fontsize=8.5 if run in flagged else None)
            _panel_legend(ax, ncols=1 if len(lines) > 2 else len(lines), fontsize=7)  # below: off the lines
        fig.suptitle("Activation ratio across depth (one measurement per line)", fontsize=10)
        return fig


def _short(text: str, n: int = 48) -> str:
    text = str(text).split(";")[0].split(":")[0].strip()
    return text if len(text) <= n else text[: n - 1] + "…"


def layer_profiles(table: pd.DataFrame | None, *, runs: Sequence[str] | None = None,
                   checkpoint: str | None = None, metric: str | None = None
                   ) -> list[tuple[str, list[float], float]]:
    """(run, label, per-layer ratios, mean ratio) of the last (or named) checkpoint of each run."""
    if table is None or table.empty:
        raise SparsityLawsError("--kind layers needs a measurement table: give it with --data")
    if "layer_ratios" not in table.columns or table["layer_ratios"].isna().all():
        raise SparsityLawsError("--kind layers: the table has no layer_ratios column with values "
                                "(per-layer ratios are recorded by 'sparsitylaws measure')")
    df = table[table["layer_ratios"].notna()]
    if runs:
        missing = [r for r in runs if r not in set(df["run"])]
        if missing:
            raise SparsityLawsError(f"--run {missing[0]}: no rows with layer_ratios for that run "
                                    f"(runs with them: {', '.join(sorted(set(df['run'])))})")
        df = df[df["run"].isin(runs)]
    if metric:
        df = df[df["metric"] == metric.lower()]
        if df.empty:
            raise SparsityLawsError(f"--metric {metric}: no rows with layer_ratios for that metric")
    out = []
    for run, sub in sorted(df.groupby("run"), key=lambda kv: kv[0]):
        if checkpoint is not None:
            pick = sub[sub["checkpoint"] == checkpoint]
            if pick.empty:
                raise SparsityLawsError(f"--checkpoint {checkpoint}: run {run!r} has no such checkpoint")
        else:
            pick = sub[sub["tokens"] == sub["tokens"].max()]
        for _, row in pick.sort_values(["metric", "metric_arg"]).iterrows():
            vals = [float(v) for v in row["layer_ratios"]]
            arg = row["metric_arg"]
            mname = row["metric"] + ("" if pd.isna(arg) else f" {arg:g}")
            ck = Path(str(row["checkpoint"])).name or str(row["checkpoint"])
            ck = ck if len(ck) <= 28 else ck[:27] + "…"
            out.append((run, f"{mname} @ {ck}", vals, float(row["activation_ratio"])))
    if len(out) > 10:
        out = out[:10]
    return out


# ============================================================================ dispatch and save


def make_figure(kind: str, lawset: Any = None, table: pd.DataFrame | None = None, *,
                runs: Sequence[str] | None = None, log_x: bool = False, overlay: bool = False,
                size: tuple[float, float] | None = None, **kw: Any) -> Figure:
    """Build the figure of ``kind`` (one of :data:`KINDS`); ``size`` in inches."""
    if kind not in KINDS:
        raise SparsityLawsError(f"--kind {kind}: unknown kind (known: {', '.join(KINDS)})")
    if kind == "layers":
        return plot_layers(table, runs=runs, size=size, **kw)
    if lawset is None:
        from sparsitylaws.lawset import load_lawset

        lawset = load_lawset()
    fn = {"curves": plot_curves, "residuals": plot_residuals, "width-depth": plot_width_depth,
          "scale": plot_scale}[kind]
    extra = {"log_x": log_x, "overlay": overlay} if kind in ("curves", "residuals") else {}
    return fn(lawset, table, runs=runs, size=size, **extra)


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
