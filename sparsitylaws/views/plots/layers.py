"""Per-layer activation ratios across depth (kind ``layers``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure

from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.views.plots.common import (
    PCT,
    STYLE,
    _grid,
    _new_figure,
    _panel_legend,
    _panel_size,
    series_styles,
)

# ============================================================================ layers


def plot_layers(table: pd.DataFrame | None, *, runs: Sequence[str] | None = None,
                checkpoint: str | None = None, metric: str | None = None,
                size: tuple[float, float] | None = None, lawset: Any = None, **_: Any) -> Figure:
    """Per-layer activation ratio across depth, last (or named) checkpoint: one panel per run
    (a broken or flagged model never shares a panel with another), one line per metric."""
    from sparsitylaws.tables.rows import excluded_runs

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
