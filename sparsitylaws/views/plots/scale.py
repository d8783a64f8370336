"""A0 and the data-law coefficients against parameter count (kind ``scale``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sparsitylaws.views.plots.common import (
    CUT_NOTE,
    LEVEL,
    PCT,
    STYLE,
    _beyond,
    _clean_log_ticks,
    _fence,
    _g3,
    _inliers,
    _new_figure,
    _robust_ylim,
    _row_legend,
    _suptitle,
    _widen_for_bands,
    format_params,
    series_styles,
)
from sparsitylaws.views.plots.widthdepth import _arch

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
        drawn = []
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
                cut = _draw_scale_param(ax, sc, p, act, st, _at_bound(lawset, sc, p))
                ax.set_ylabel(SCALE_UNITS.get(p, p), fontsize=8)
                drawn.append(ax)
                ax.set_title(f"{act}: {SCALE_TITLES.get(p, p)}" + (f"\n{CUT_NOTE}" if cut else ""))
                row_axes.append(ax)
            _row_legend(row_axes, spare)
        unit, unit_name = _count_unit(max(ax.get_xlim()[1] for ax in drawn) if drawn else 1.0)
        for ax in drawn:  # one unit for the whole figure
            _clean_log_ticks(ax, "x", unit)
            ax.set_xlabel(f"non-embedding parameters ({unit_name}, log)", fontsize=8)
        _suptitle(fig, lawset, "Data-law coefficients against scale (lines: trends in log10 N, bands: 90%)")
        return fig


def _count_unit(top: float) -> tuple[float, str]:
    """(size, name) of the unit for a parameter-count axis reaching ``top``, so ticks read 5,
    10, 20 (millions) rather than 5x10^6, 10^7, 2x10^7."""
    for size, name in ((1e9, "billions"), (1e6, "millions"), (1e3, "thousands")):
        if top >= 2 * size:
            return size, name
    return 1.0, "count"


SCALE_UNITS = {"A0": "A0 (% of neurons active)", "alpha": "alpha (exponent, dimensionless)",
               "c": "c (coefficient, dimensionless)", "b": "b (log-offset, dimensionless)"}
SCALE_TITLES = {"A0": "A0, limit as tokens → ∞", "alpha": "alpha, speed exponent",
                "c": "c, amplitude", "b": "b, offset"}


def _at_bound(lawset: Any, sc: dict, p: str) -> np.ndarray:
    """Per run of the trend: whether its fit left parameter ``p`` at its bound (warning
    ``param_at_bound``): its value says where the optimizer stopped, not what the data say."""
    names = sc.get("runs") or []
    runs = getattr(lawset, "runs", None) or {}
    out = np.zeros(len(np.asarray(sc["log10_n"])), bool)
    for i, name in enumerate(names[:out.size]):
        warns = getattr(runs.get(name), "warnings", None) or []
        out[i] = any(w.get("code") == "param_at_bound" and w.get("parameter") == p for w in warns)
    return out


#: A log panel shows at most this many decades beyond the runs whose values the data identify;
#: a trend or band running further (an alpha trend to 1e-120) is cut at the frame, and says so.
LOG_ROOM = 3.0


#: Forward transforms of the trend coordinates (as sparsitylaws.architecture.TRANSFORMS names them).
TRANSFORMS_FWD = {"log": lambda v: float(np.log(v)) if v > 0 else float("nan"), "none": float,
                  "identity": float, "logit": lambda v: float(np.log(v) - np.log1p(-v)) if 0 < v < 1 else float("nan")}


def _draw_scale_param(ax: Axes, sc: dict, p: str, act: str, st: dict,
                      at_bound: np.ndarray | None = None) -> bool:
    """One coefficient's panel; returns whether a band (or the trend) was cut at the frame.
    Runs at their bound (``at_bound``) are drawn apart and set no part of the y range."""
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

    # what predictions use: the slope shrunk toward 0 by empirical Bayes (none carried with
    # fewer than 5 runs); the stored least-squares line is drawn beside it when they differ
    from sparsitylaws.architecture.compose import _shrunk_lines

    G = np.asarray([TRANSFORMS_FWD[TRANSFORMS.get(p, "none")](v) for v in theta], float)[:, None]
    sh, _, _, _ = _shrunk_lines(x, G)
    shrunk = sh[0, 0] + sh[1, 0] * (xs - x.mean())
    differs = not np.allclose(shrunk, line, rtol=1e-6, atol=1e-9)
    bands = []
    tag = " (least-squares trend)" if differs else ""
    if drawn(mult * back(glo), mult * back(ghi), mult * back(line)):
        bands.append((mult * back(glo), mult * back(ghi), 0.12, "90% band for a new scale" + tag))
    if drawn(mult * back(lo), mult * back(hi), mult * back(line)) and not np.allclose(lo, glo):
        bands.append((mult * back(lo), mult * back(hi), 0.3, "90% band of the trend line" + tag))
    if differs:
        ax.plot(n, mult * back(line), color=c, linestyle=":", linewidth=1.0, label="least-squares trend (not used)")
        line = shrunk
        ax.plot(n, mult * back(line), color=c, linestyle=st["linestyle"], linewidth=1.4,
                label="trend in log10 N, shrunk (as predictions use)")
    else:
        ax.plot(n, mult * back(line), color=c, linestyle=st["linestyle"], linewidth=1.4, label="trend in log10 N")
    rd = sc.get("run_draws")
    yerr = None
    if rd is not None:
        d = np.asarray(rd, float)[:, :, j]
        if np.nanmax(np.nanstd(d, axis=0)) > 0:
            rlo, rhi = _quantiles(d)
            yerr = [mult * np.clip(theta - rlo, 0, None), mult * np.clip(rhi - theta, 0, None)]
    bound = np.zeros(theta.size, bool) if at_bound is None else np.asarray(at_bound, bool)
    ok = ~bound
    if yerr is not None:
        yerr = [e[ok] for e in yerr]
    ax.errorbar(10 ** x[ok], mult * theta[ok], yerr=yerr, fmt=st["marker"], color=c, mec="black", mew=0.5,
                markersize=5, capsize=2, linestyle="none",
                label="runs" + (" (90% interval)" if yerr is not None else " (no interval published)"))
    if bound.any():
        ax.plot(10 ** x[bound], mult * theta[bound], linestyle="none", marker="X", mfc="white", mec=c,
                mew=1.0, markersize=6, label="run whose fit left it at its bound (not identified)")
    if is_log:
        ax.set_yscale("log")
    keep = _inliers(mult * theta, is_log) & ok
    lo_f, hi_f = _fence(mult * theta[keep], is_log)
    ln = mult * back(line)
    if is_log and keep.any():  # the trend shown at most LOG_ROOM decades beyond the runs
        vals = mult * theta[keep][theta[keep] > 0]
        if vals.size:
            lo_f = max(lo_f, float(vals.min()) / 10 ** LOG_ROOM)
            hi_f = min(hi_f, float(vals.max()) * 10 ** LOG_ROOM)
    _robust_ylim(ax, np.r_[mult * theta[keep], np.clip(ln, lo_f, hi_f)], is_log)
    if bands:
        _widen_for_bands(ax, [b for blo, bhi, _, _ in bands for b in (blo, bhi)], is_log)
    if is_log and keep.any() and np.any(theta[keep] > 0):  # never more than LOG_ROOM decades beyond
        vals = mult * theta[keep][theta[keep] > 0]
        y0, y1 = ax.get_ylim()
        ax.set_ylim(max(y0, float(vals.min()) / 10 ** LOG_ROOM), min(y1, float(vals.max()) * 10 ** LOG_ROOM))
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
    cut = any(_beyond(b, ylo, yhi, tol, is_log) for blo, bhi, _, _ in bands for b in (blo, bhi)) or \
        _beyond(ln, ylo, yhi, tol, is_log)
    notes = []
    off = ~keep & ok
    if off.any():
        notes.append(f"{int(off.sum())} run(s) off scale ({_g3(mult * theta[off])})")
    out_of_frame = bound & ((mult * theta < ylo) | (mult * theta > yhi))
    if out_of_frame.any():
        notes.append(f"{int(out_of_frame.sum())} run(s) at the bound, off scale: {_g3(mult * theta[out_of_frame])}")
    if p == "A0":
        from sparsitylaws.planning.configs import A0_BOUND_TOL

        top = np.flatnonzero(back(line) >= 1 - A0_BOUND_TOL)
        if top.size:
            notes.append(f"trend at its bound 100% from {format_params(n[top[0]])} on: A0 not identified")
    if notes:
        import textwrap

        text = "\n".join(textwrap.fill(t, 34) for t in notes)  # kept inside a panel's width
        ax.text(0.98, 0.03, text, transform=ax.transAxes, ha="right", va="bottom", fontsize=6.5,
                color="0.25", bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.75, "pad": 1.5})
    return cut
