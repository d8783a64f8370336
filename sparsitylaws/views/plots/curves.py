"""Activation-ratio curves over training and their residuals (kinds ``curves``, ``residuals``).

Both draw one :class:`CurveSource` per run, so they share this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sparsitylaws.errors import LawSetError, SparsityLawsError
from sparsitylaws.views.plots.common import (
    CUT_NOTE,
    LEVEL,
    OVERLAY_MAX_BANDS,
    PCT,
    RATIO_LABEL,
    STYLE,
    TOKENS_LABEL,
    TOKENS_LOG_LABEL,
    _grid,
    _grid_by_activation,
    _group_sorted,
    _label_grid,
    _legend_below,
    _new_figure,
    _rows_for_run,
    _shared_legend,
    _suptitle,
    _token_axes,
    _widen_for_bands,
    format_params,
    series_styles,
)


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
    #: raw token counts of the points drawn as warm-up (:func:`_warmup_tokens`)
    warmup_tokens: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def band(self, tokens_b: np.ndarray) -> pd.DataFrame:
        """Estimate and 90% band (prediction band for fits; scale-law band for published)."""
        d = np.asarray(tokens_b, float)
        if self.origin == "fit":
            p = self.runfit.predict(d * 1e9, level=LEVEL)
            return pd.DataFrame({"tokens_b": d, "estimate": p["estimate"], "low": p["pred_low"],
                                 "high": p["pred_high"]})
        from sparsitylaws.architecture import predict_section
        from sparsitylaws.runfit.forms import get_form

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
        from sparsitylaws.runfit.forms import get_form

        return get_form(self.form).evaluate(d, np.asarray(self.theta, float))


#: A point whose weight in the fit (its probability of lying past the warm-up) is below this is
#: drawn hollow, as warm-up: the fit all but ignores it.
HOLLOW_BELOW = 0.5


def _warmup_tokens(fit: Any) -> np.ndarray:
    """Raw token counts of the points drawn as warm-up: those dropped (a manual rule, or a
    warm-up probability below 0.001) and those the warm-up average weights below
    :data:`HOLLOW_BELOW` (drawn filled before, though the law passes far from them)."""
    toks = [float(d["tokens"]) for d in fit.dropped]
    down = ((fit.extra or {}).get("warmup_average") or {}).get("downweighted") or []
    toks += [float(d["tokens_b"]) * 1e9 for d in down if float(d.get("weight", 1.0)) < HOLLOW_BELOW]
    return np.asarray(toks, float)


def _is_warmup(tokens: np.ndarray, src: CurveSource) -> np.ndarray:
    """Which of these raw token counts :func:`_warmup_tokens` marks (to 1e-9, relative)."""
    t = np.asarray(tokens, float)
    if src.warmup_tokens.size == 0:
        return np.zeros(t.size, bool)
    return np.any(np.isclose(t[:, None], src.warmup_tokens[None, :], rtol=1e-9, atol=0.0), axis=1)


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
            warmup_tokens=_warmup_tokens(fit))
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
        drop = _is_warmup(rows["tokens"].to_numpy(float), src)
        ms = 3.2 if overlay else 3.8
        ax.plot(tb[~drop], y[~drop], linestyle="none", marker=style["marker"], markersize=ms,
                color=c, markeredgecolor="black", markeredgewidth=0.4,
                label=None if overlay else ("measured (fitted)" if src.origin == "fit" else "measured"))
        if drop.any():
            ax.plot(tb[drop], y[drop], linestyle="none", marker=style["marker"], markersize=ms,
                    markerfacecolor="white", markeredgecolor=c, markeredgewidth=1.0,
                    label="warm-up (weight < 1/2)" if not overlay else None)
    note = ""
    if src.origin == "fit" and src.runfit.backtest and not overlay:
        note = _draw_backtest(ax, src.runfit.backtest, show_measured=rows is None)
    if log_x:
        ax.set_xscale("log")
    return note


def _draw_backtest(ax: Axes, rows: list[dict], show_measured: bool) -> str:
    """Held-out points of the earliest reported cutoff: the forecast and its 90% band."""
    from sparsitylaws.runfit.backtest import REPORTED_CUTOFFS

    cuts = {r["cutoff"] for r in rows}
    cut = min(cuts & set(REPORTED_CUTOFFS) or cuts)
    sub = [r for r in rows if r["cutoff"] == cut and r.get("predicted") is not None]
    if not sub:
        return ""
    x = np.array([r["tokens_b"] for r in sub], float)
    p = PCT * np.array([r["predicted"] for r in sub], float)
    lo = PCT * np.array([r["pred_low"] if r["pred_low"] is not None else np.nan for r in sub], float)
    hi = PCT * np.array([r["pred_high"] if r["pred_high"] is not None else np.nan for r in sub], float)
    ax.errorbar(x, p, yerr=[np.clip(p - lo, 0, None), np.clip(hi - p, 0, None)], fmt="_", color="0.25",
                ecolor="0.45", elinewidth=0.8, capsize=1.5, markersize=5, alpha=0.9,
                label=f"backtest (out of sample): forecast from the first {cut:.0%}, 90% band", zorder=1)
    if show_measured:
        ax.plot(x, PCT * np.array([r["measured"] for r in sub], float), linestyle="none", marker="x",
                color="black", markersize=3.5, label="held-out measured")
    from sparsitylaws.runfit.coverage import poor_coverage

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
        if any(s.warmup_tokens.size for s in group) and table is not None:
            ax.plot([], [], linestyle="none", marker="o", markerfacecolor="white", markeredgecolor="0.3",
                    label="hollow: warm-up (weight < 1/2)")
        ax.set_title(f"{act}: runs by scale\n(lines: laws"
                     + (", shading: 90% bands)" if bands else "; bands: per-run panels)")
                     + (f"\n{CUT_NOTE}" if bands_cut(ax) else ""))
        ax.set_xlabel(TOKENS_LOG_LABEL if log_x else TOKENS_LABEL)
        ax.set_ylabel(RATIO_LABEL)
        _legend_below(ax, title="run")
    _token_axes(axs, log_x)
    _suptitle(fig, lawset, "Activation ratio over training, by scale")
    return fig


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
                _systematic_note(ax, kept)
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
    """Draw one run's residuals (pp); returns (fitted, warm-up) residuals."""
    rows = _rows_for_run(table, src.run, info)
    tb = rows["tokens"].to_numpy(float) / 1e9
    r = PCT * (rows["activation_ratio"].to_numpy(float) - src.fitted(tb))
    drop = _is_warmup(rows["tokens"].to_numpy(float), src)
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
                markerfacecolor="white", markeredgecolor=c, label=None if label else "warm-up (weight < 1/2)")
    return r[~drop], r[drop]


#: A run's residuals are called systematic below this p-value of the sign-runs test (about
#: one false remark per hundred well-fitted runs).
SYSTEMATIC_P = 0.01


def _systematic_note(ax: Axes, kept: np.ndarray) -> bool:
    """Say on the panel when the residuals keep one sign for long stretches (a U or S shape:
    :func:`~sparsitylaws.views.plots.common.sign_runs_pvalue` below :data:`SYSTEMATIC_P`)."""
    from sparsitylaws.views.plots.common import sign_runs_pvalue

    runs, p = sign_runs_pvalue(kept)
    if p >= SYSTEMATIC_P:
        return False
    ax.text(0.02, 0.97, f"systematic: {runs} sign runs in {kept.size} points (p = {p:.1g});\n"
            "the law's form misses this curve's shape", transform=ax.transAxes, ha="left", va="top",
            fontsize=6.5, color="#a01010",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.5})
    return True


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
