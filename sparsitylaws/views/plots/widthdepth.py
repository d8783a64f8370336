"""Limit A0 against the width/depth ratio (kind ``width-depth``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps, rc_context
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from sparsitylaws.errors import LawSetError
from sparsitylaws.views.plots.common import (
    LEVEL,
    PCT,
    STYLE,
    _grid,
    _new_figure,
    _panel_legend,
    _suptitle,
    format_params,
)

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
    r_lo = max(1.0, 0.5 * min(rng[0], band[0]))
    log_x = r_hi / r_lo > 10  # sweeps span decades of width/depth: equal room per factor
    r = np.geomspace(r_lo, r_hi, 300) if log_x else np.linspace(r_lo, r_hi, 300)
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
            own = "" if abs(level - PCT * plat) < 0.05 else f"\n(the hinge's own: {PCT * plat:.1f}%)"
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
    sweep = set((wd or {}).get("runs") or [])
    in_sweep = lim["run"].isin(sweep) if sweep else pd.Series(True, index=lim.index)
    first = "sweep runs' A0 (90% interval)" if sweep else "fitted runs' A0 (90% interval)"
    for part, colour, label in ((lim[in_sweep], "black", first),
                                (lim[~in_sweep], "0.55", "other runs' A0 (other sizes)")):
        if part.empty:
            continue
        ax.errorbar(part["ratio"], PCT * part["a0"],
                    yerr=[PCT * (part["a0"] - part["low"]).clip(lower=0), PCT * (part["high"] - part["a0"]).clip(lower=0)],
                    fmt="o", mfc="white", mec=colour, ecolor=colour, markersize=4.5, capsize=2, label=label)
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
    if log_x:
        from matplotlib.ticker import FixedLocator, NullFormatter, StrMethodFormatter

        ax.set_xscale("log")
        nice = [t * 10.0 ** k for k in range(0, 4) for t in (1, 2, 5)]
        ax.xaxis.set_major_locator(FixedLocator([t for t in nice if r[0] <= t <= r[-1]]))
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    # room for the law's band and the runs' estimates; intervals running to the 0-100% bounds
    # leave the frame (their caps then show they are open-ended) rather than flatten the rest
    tops = [float(np.nanmax(pr["a0_high"]))] + ([float(lim["a0"].max())] if not lim.empty else [])
    ax.set_ylim(0, min(100.0, PCT * 1.15 * max(tops) + 2.0))
    from sparsitylaws.planning.configs import A0_BOUND_TOL

    a0 = np.asarray(pr["a0"], float)
    edge = (a0 >= 1 - A0_BOUND_TOL) | (a0 <= A0_BOUND_TOL)
    if edge.any():  # flagged wherever the limit is used (planning.configs.a0_at_bound)
        where = "100%" if float(np.median(a0[edge])) > 0.5 else "0%"
        ax.text(0.97, 0.08, f"A0 at its bound {where} at {format_params(n_ref)}:\nnot identified by these runs",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color="#a01010",
                bbox={"facecolor": "white", "edgecolor": "#a01010", "alpha": 0.85, "pad": 3})
    return [law_entry]
