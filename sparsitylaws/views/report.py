"""One self-contained report of a law set and its data: HTML (figures inline) or Markdown.

:func:`make_report` gathers its inputs (:func:`gather`: fit the given tables, or read a
law set, or fall back to the packaged default law set), builds a list of blocks
(:func:`build_blocks`: headings, paragraphs, tables, figures) and renders them either as
one HTML file with every figure embedded as a base64 PNG (no network, no external CSS or
JavaScript, so it can be mailed or archived as is) or as Markdown with the PNG files in a
folder beside it.

Contents: a data summary; the fitted laws with intervals; the comparison of law forms;
backtests with interval coverage; the architecture laws; predictions for a few standard
configurations; measurements that cannot be fitted (described, with their layer profile);
warnings; and provenance (data hashes, versions, seed).
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.runfit.settings import N_BOOT
from sparsitylaws.tables.atomic import atomic_write_bytes
from sparsitylaws.version import __version__

__all__ = ["STANDARD_CONFIGS", "ReportInputs", "build_blocks", "gather", "make_report",
           "render_html", "render_markdown"]

DEFAULT_DATA_DIR = Path("measurements")
FIG_DPI = 110
#: Per-run figures in a report show at most this many runs (the tables list them all).
MAX_PANELS = 16
#: (label, width, depth): the paper's six scales plus two larger shapes, one deeper.
STANDARD_CONFIGS: tuple[tuple[str, int, int], ...] = (
    ("paper 0.1B", 768, 16), ("paper 0.4B", 1280, 24), ("paper 1.2B", 1792, 32),
    ("paper 2.4B", 2304, 40), ("7B-like, 32 layers", 4096, 32), ("7B-like, 48 layers", 4096, 48),
)


# ============================================================================ inputs


@dataclass
class ReportInputs:
    """What a report is about: the law set, the measurements (if any) and how they were got."""

    lawset: Any
    table: pd.DataFrame | None
    files: list[Path]
    origin: str
    notes: list[str] = field(default_factory=list)
    n_boot: int | None = None
    seed: int | None = None


def _default_tables(tables: Sequence[os.PathLike | str]) -> list[Path]:
    if tables:
        return [Path(t) for t in tables]
    if DEFAULT_DATA_DIR.is_dir() and any(DEFAULT_DATA_DIR.rglob("*.parquet")):
        return [DEFAULT_DATA_DIR]
    return []


#: Where a law set written by ``sparsitylaws fit`` (its default ``-o``) is looked for.
FOUND_LAWSET = Path("laws.json")


def lawset_matches(ls: Any, table: pd.DataFrame) -> str | None:
    """None when ``ls`` was fitted on exactly these measurements (every run ``fit`` would fit
    from ``table``, with the same points: :func:`sparsitylaws.lawset.build.data_hash`), else
    why not, in a few words."""
    from sparsitylaws.lawset.build import data_hash
    from sparsitylaws.tables.rows import select_fit_rows

    prov = getattr(ls, "provenance", None) or {}
    hashes = prov.get("data_sha256")
    if not hashes:
        return "it records no data hashes"
    try:
        rows = select_fit_rows(table, prov.get("metric")).rows
    except SparsityLawsError as exc:
        return str(exc)
    skipped = set(prov.get("skipped_runs") or {})
    runs = set(rows["run"]) - skipped
    if runs != set(hashes):
        extra = sorted(runs - set(hashes)) or sorted(set(hashes) - runs)
        return f"its runs differ from the tables' (e.g. {extra[0]})"
    for run, want in hashes.items():
        if data_hash(rows[rows["run"] == run]) != want:
            return f"run {run}'s measurements changed since it was fitted"
    return None


def gather(tables: Sequence[os.PathLike | str] = (), laws: os.PathLike | str | None = None, *,
           n_boot: int = N_BOOT, seed: int = 0, fitted_by: str = "sparsitylaws report",
           find: bool = True, progress: Any = None) -> ReportInputs:
    """Read tables (or ./measurements/), and fit them unless ``laws`` is given.

    With ``find`` and no ``laws``, a ``./laws.json`` (what ``sparsitylaws fit`` writes) that
    was fitted on exactly these tables (:func:`lawset_matches`) is used instead of fitting
    them again; a note says which, and when it does not match, why.  ``progress`` is passed
    to :func:`sparsitylaws.lawset.build.fit_table` when the tables are fitted here.
    A table whose runs cannot be fitted (e.g. one checkpoint per run) is still reported:
    the law set falls back to the packaged default one and a note says why.
    """
    from sparsitylaws.lawset.fileformat import load_lawset
    from sparsitylaws.tables.io import find_parquet_files, read_table

    paths = _default_tables(tables)
    files = find_parquet_files(paths) if paths else []
    table = read_table(files) if files else None
    if laws is not None:
        return ReportInputs(load_lawset(laws), table, files, f"law set file {laws}")
    if table is None:
        return ReportInputs(load_lawset(None), None, [],
                            "the packaged default law set (no tables given, ./measurements/ holds none)")
    notes: list[str] = []
    if find and FOUND_LAWSET.is_file():
        try:
            found = load_lawset(FOUND_LAWSET)
            why = lawset_matches(found, table)
        except SparsityLawsError as exc:
            why = str(exc)
        if why is None:
            note = (f"The laws are {FOUND_LAWSET}, fitted on these same measurements "
                    f"({found.provenance.get('created_by', '?')}, {found.provenance.get('created_at', '?')}); "
                    "it is used as saved (pass --refit to fit the tables again).")
            return ReportInputs(found, table, files, f"law set file {FOUND_LAWSET} (it matches the tables)",
                                [note])
        notes.append(f"{FOUND_LAWSET} was not used ({why}); the tables are fitted here.")
    from sparsitylaws.lawset.build import fit_table

    try:
        ls = fit_table(table, n_boot=n_boot, seed=seed, name=f"fitted by {fitted_by}",
                       sources=[str(f) for f in files], progress=progress)
        ls.provenance["created_by"] = fitted_by
    except SparsityLawsError as exc:
        note = (f"The measurements could not be fitted ({exc}); the laws used are the packaged "
                "default law set, and the measurements are described as they are.")
        return ReportInputs(load_lawset(None), table, files, "the packaged default law set", notes + [note])
    return ReportInputs(ls, table, files, f"fitted here from {len(files)} table(s) "
                        f"(n_boot = {n_boot}, seed = {seed})", notes, n_boot=n_boot, seed=seed)


# ============================================================================ blocks


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


def data_summary(inp: ReportInputs) -> list[Block]:
    """Per run: architecture, metrics, checkpoints, token range, last ratio, fit status."""
    ls = inp.lawset
    out = [Block("h2", "Data summary")]
    if inp.table is None:
        out.append(Block("p", "No measurement table was given: this report describes the law set "
                              "only. Runs behind it:"))
        rows = []
        for act, e in ((ls.architecture or {}).get("activations") or {}).items():
            sc = e["scale"]
            for i, run in enumerate(sc["runs"]):
                rows.append({"run": run, "activation": act,
                             "width": _g((sc.get("widths") or [None] * len(sc["runs"]))[i]),
                             "depth": _g((sc.get("depths") or [None] * len(sc["runs"]))[i]),
                             "non-embedding params": _g(10 ** sc["log10_n"][i], 3),
                             "source": "published coefficients" if not ls.runs else "fitted run"})
        for run, info in ls.run_info.items():
            if not any(r["run"] == run for r in rows):
                rows.append({"run": run, "activation": info.get("activation"), "width": _g(info.get("width")),
                             "depth": _g(info.get("depth")), "non-embedding params": _g(info.get("n_params"), 3),
                             "source": "fitted run"})
        if rows:
            out.append(Block("table", frame=pd.DataFrame(rows)))
        return out
    t = inp.table
    from sparsitylaws.tables.rows import DEFAULT_METRIC, excluded_runs

    flagged = excluded_runs(t)
    law_metric = ls.provenance.get("metric") or DEFAULT_METRIC
    rows = []
    for run, sub in t.groupby("run", sort=True):
        metrics = ", ".join(sorted({m if pd.isna(a) else f"{m} {a:g}"
                                    for m, a in zip(sub["metric"], sub["metric_arg"], strict=True)}))
        info = ls.run_info.get(run, {})
        if run in ls.runs:
            status = "fitted"
            from sparsitylaws.lawset.build import data_hash

            fit_rows = sub[sub["metric"] == info.get("metric", sub["metric"].iloc[0])]
            if info.get("data_sha256") and data_hash(fit_rows) != info["data_sha256"]:
                status = "fitted (on different data than this table: hashes differ)"
        elif run in flagged:
            status = f"not for fitting: {flagged[run]}"
        else:
            why = (ls.provenance.get("skipped_runs") or {}).get(run)
            n_ck = sub["checkpoint"].nunique()
            status = f"not fitted: {why}" if why else (
                f"not fitted: {n_ck} checkpoint(s), not a training curve" if n_ck < 3 else "not in the law set")
        shown = sub[sub["metric"] == info.get("metric", law_metric)]
        last = (shown if not shown.empty else sub).sort_values("tokens").iloc[-1]
        rows.append({
            "run": run, "activation": sub["activation"].iloc[0],
            "width × depth": _shape(sub), "non-embedding params": _count(_first(sub, "n_params")),
            "metrics": metrics, "checkpoints": int(sub["checkpoint"].nunique()),
            "tokens": "–".join(dict.fromkeys((_count(sub["tokens"].min()), _count(sub["tokens"].max())))),
            "last activation ratio": f"{_pct(last['activation_ratio'])} ({_metric_name(last)})",
            "status": status,
        })
    out.append(Block("p", f"{len(t)} rows, {t['run'].nunique()} run(s), from "
                          f"{', '.join(_shown(f) for f in inp.files)}."))
    out.append(Block("table", frame=pd.DataFrame(rows)))
    return out


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


def fit_blocks(inp: ReportInputs) -> list[Block]:
    """Fitted laws with intervals (or the published coefficients), with figures."""
    from sparsitylaws.views import plots

    ls = inp.lawset
    out = [Block("h2", "Data laws: activation ratio against training tokens")]
    if not ls.runs:
        out.append(Block("p", "The law set holds no fitted runs; its scale laws were built from "
                              "published coefficients (below, no per-run intervals were published). "
                              "Bands in the figure are the scale laws' 90% intervals at each run's size."))
        rows = []
        for act, e in ((ls.architecture or {}).get("activations") or {}).items():
            sc = e["scale"]
            for i, run in enumerate(sc["runs"]):
                row = {"run": run, "activation": act, "form": sc["form"]}
                for j, p in enumerate(sc["param_names"]):
                    row[p] = _pct(sc["theta"][i][j]) if p == "A0" else _g(sc["theta"][i][j], 3)
                rows.append(row)
        if rows:
            out.append(Block("table", frame=pd.DataFrame(rows).fillna("–")))
    else:
        out.append(Block("list", items=sorted({f"{f.form}: A = {f.formula.split('=', 1)[-1].strip()}"
                                               if "=" in f.formula else f"{f.form}: {f.formula}"
                                               for f in ls.runs.values()})))
        rows = []
        for name in ls.run_names():
            f = ls.runs[name]
            row = {"run": name, "form": f.form, "points kept": f"{f.n_points}/{f.n_total}",
                   "warm-up dropped": len(f.dropped), "RMSE (pp)": _g(100 * f.rmse, 3)}
            for i, p in enumerate(f.param_names):
                row[p] = _interval(f.estimate[i], f.boot_low[i], f.boot_high[i], pct=(p == "A0"))
            rows.append(row)
        out.append(Block("p", f"Estimates with {int(round(100 * _level(ls)))}% intervals "
                              f"({next(iter(ls.runs.values())).interval_method}). "
                              "A0 is the limit as tokens grow without bound."))
        out.append(Block("table", frame=pd.DataFrame(rows).fillna("–")))
    shown = _runs_shown(ls)
    if shown is not None:
        out.append(Block("p", f"The per-run figures show the first {len(shown)} runs; "
                              "'sparsitylaws plot --run NAME' draws any other."))
    _try_figure(out, "curves", "Activation ratio against tokens, per run: filled points were fitted, "
                "hollow points are excluded warm-up checkpoints; shading is the 90% band; grey bars are "
                "backtest predictions (fitted on the earliest part of the run only).",
                lambda: plots.plot_curves(ls, inp.table, runs=shown))
    _try_figure(out, "curves-overlay", "The same laws overlaid by scale (as the paper's Figure 4).",
                lambda: plots.plot_curves(ls, inp.table, overlay=True))
    if inp.table is not None and ls.runs:
        _try_figure(out, "residuals", "Residuals (measured − fitted) against tokens; shading: the "
                    "90% prediction band around the law.",
                    lambda: plots.plot_residuals(ls, inp.table, runs=shown))
    return out


def _runs_shown(ls: Any) -> list[str] | None:
    """At most :data:`MAX_PANELS` runs in per-run figures (None: all of them)."""
    from sparsitylaws.views.plots import curve_sources

    try:
        names = [s.run for s in curve_sources(ls)]
    except SparsityLawsError:
        return None
    return names[:MAX_PANELS] if len(names) > MAX_PANELS else None


def _level(ls: Any) -> float:
    return next(iter(ls.runs.values())).level if ls.runs else 0.9


def comparison_blocks(ls: Any) -> list[Block]:
    """AICc comparison of the law forms: one row per fitted run, one column per form."""
    if not ls.runs:
        return []
    out = [Block("h2", "Comparison of law forms"),
           Block("p", "Each run refitted with every form on the same points. Cells: ΔAICc (Akaike "
                      "weight); 0 is the best form, ΔAICc < 2 means the data do not tell the forms "
                      "apart, > 10 means the form is clearly worse. * marks the form used.")]
    rows, forms = [], []
    for name in ls.run_names():
        f = ls.runs[name]
        row = {"run": name, "form used": f.form}
        best = None
        for c in f.comparison:
            form = c["form"]
            if form not in forms:
                forms.append(form)
            cell = "n/a" if c.get("delta_aicc") is None else (
                f"{_g(c['delta_aicc'], 3)} ({_g(c.get('akaike_weight'), 2)})")
            if not c.get("converged", True):
                cell += " not converged"
            row[form] = cell + (" *" if form == f.form else "")
            if c.get("delta_aicc") == 0:
                best = form
        row["best by AICc"] = best or "n/a"
        rows.append(row)
    if forms:
        cols = ["run", "form used", "best by AICc"] + forms
        out.append(Block("table", frame=pd.DataFrame(rows).reindex(columns=cols).fillna("–")))
    else:
        out.append(Block("p", "No comparison was run (fitted with compare=False)."))
    return out


def _skill_cells(sub: list[dict], level: float) -> dict:
    """Interval scores (pp, lower is better) of the combined forecast and the naive ones (last
    value, local line, nearest run at equal tokens per parameter), and whether the combined one
    wins; empty for backtests made before the naive forecasts existed."""
    if sub[0].get("naive_last_low") is None:
        return {}
    from sparsitylaws.runfit.backtest import SKILL_METHODS, backtest_skill

    keys = ["measured"] + [k for _, *cols in SKILL_METHODS for k in cols]
    sub = [r for r in sub if all(r.get(k) is not None for k in keys)]  # a band a fit could not give
    if not sub:
        return {}
    e = backtest_skill(sub, level)[0]
    names = [n for n in ("combined", "last value", "local line", "nearest run") if n in e]
    cells = {f"interval score {n} (pp)": _g(100 * e[n]["interval_score"], 3) for n in names}
    worse = [n for n in names[1:] if e[n]["interval_score"] < e["combined"]["interval_score"]]
    cells["combined beats naive?"] = "yes" if not worse else f"NO ({', '.join(worse)} better)"
    return cells


def _paired_sentences(ls: Any) -> list[str]:
    """Per activation: the combined forecast against the last value and the local line, paired
    over runs (:func:`sparsitylaws.runfit.compare.paired_text`)."""
    from sparsitylaws.runfit.backtest import REPORTED_CUTOFFS
    from sparsitylaws.runfit.calibration import summarize
    from sparsitylaws.runfit.compare import paired_text

    out = []
    for act in sorted({ls.runs[n].activation for n in ls.run_names()}):
        rows = [{**r, "run": n} for n in ls.run_names() if ls.runs[n].activation == act
                for r in ls.runs[n].backtest if r.get("predicted") is not None]
        s = summarize(rows, cutoffs=REPORTED_CUTOFFS) if rows else {}
        text = paired_text(s) if "combined" in s else ""
        if text:
            out.append(f"{act}: {text}.")
    return out


def backtest_blocks(ls: Any) -> list[Block]:
    """Per run and cutoff: points held out, interval coverage, errors; overall coverage."""
    if not ls.runs:
        return []
    from sparsitylaws.runfit.coverage import POOR_TAIL, poor_coverage

    out = [Block("h2", "Backtests: predicting the rest of each run from its beginning")]
    rows, n_cov, n_all, poor = [], 0, 0, []
    for name in ls.run_names():
        f = ls.runs[name]
        from sparsitylaws.runfit.backtest import REPORTED_CUTOFFS

        for cut in sorted({r["cutoff"] for r in f.backtest} & set(REPORTED_CUTOFFS)):
            sub = [r for r in f.backtest if r["cutoff"] == cut and r.get("error") is not None]
            if not sub:
                rows.append({"run": name, "fitted on first": f"{cut:.0%}", "held out": 0,
                             "in 90% PI": "fit failed", "coverage": "n/a", "mean |error| (pp)": "n/a",
                             "error at last point (pp)": "n/a", "flag": "–"})
                continue
            cov = sum(bool(r.get("covered")) for r in sub)
            n_cov, n_all = n_cov + cov, n_all + len(sub)
            last = max(sub, key=lambda r: r["tokens_b"])
            bad = poor_coverage(cov, len(sub), f.level)
            if bad:
                poor.append(f"{name} at {cut:.0%} ({cov}/{len(sub)})")
            row = {"run": name, "fitted on first": f"{cut:.0%}", "held out": len(sub),
                   "in 90% PI": f"{cov}/{len(sub)}", "coverage": f"{cov / len(sub):.0%}",
                   "mean |error| (pp)": _g(100 * np.mean([abs(r["error"]) for r in sub]), 3),
                   "error at last point (pp)": f"{100 * last['error']:+.3f}",
                   "flag": "POOR coverage" if bad else "–"}
            row.update(_skill_cells(sub, f.level))
            rows.append(row)
    if not rows:
        out.append(Block("p", "No backtests were run."))
        return out
    lvl = _level(ls)
    out.append(Block("p", f"Each run is refitted on its first share of checkpoints and forecasts the "
                          f"held-out rest (out of sample: the forecast's band is calibrated on the other "
                          f"runs' backtests, leaving the run out; the candidate weights are chosen on all "
                          f"runs of the law set, which is in-sample). Overall {n_cov}/{n_all} held-out "
                          f"points ({n_cov / max(n_all, 1):.0%}) fall in their {lvl:.0%} forecast bands "
                          f"(nominal {lvl:.0%}). Held-out points of one run are correlated, so coverage "
                          "far from nominal in one run is evidence, not proof, of miscalibration. The "
                          "forecast combines the law with naive forecasts and other runs' shapes "
                          "(docs/fitting.md). Interval scores (Gneiting & Raftery 2007: width plus "
                          "2/alpha times the miss) compare it with the naive forecasts: the last value "
                          "carried forward, a straight line in log D through the last third of the fitted "
                          "points, and the nearest run at equal tokens per parameter."))
    paired = _paired_sentences(ls)
    if paired:
        out.append(Block("p", "Combined forecast minus naive forecast, interval score per run at the "
                              "30/50/70% cuts, mean over runs with its 90% paired t interval (pp; "
                              "\"better\" or \"worse\" only where the interval excludes 0, which a "
                              "handful of runs rarely allows): " + " ".join(paired)))
    if poor:
        out.append(Block("p", f"POOR coverage (so few covered points would happen less than "
                              f"{POOR_TAIL:.0%} of the time with calibrated intervals): {', '.join(poor)}. "
                              "Those runs' intervals are likely too narrow for forecasting."))
    out.append(Block("table", frame=pd.DataFrame(rows)))
    return out


def architecture_blocks(inp: ReportInputs) -> list[Block]:
    """Scale trends and width/depth laws, with their figures."""
    from sparsitylaws.views import plots

    ls = inp.lawset
    out = [Block("h2", "Architecture laws: width/depth and scale")]
    sec = ls.architecture
    if not sec:
        note = ls.provenance.get("architecture_note") or "the law set has no architecture section"
        out.append(Block("p", f"None: {note}."))
        return out
    rows = []
    for act, e in sorted(sec["activations"].items()):
        sl = e["scale"].get("a0_slope") or {}
        wd = e.get("widthdepth")
        iv = sl.get("interval")
        if wd is None:
            wd_text = "none (A0 assumed independent of width/depth)"
        else:
            pt = wd.get("point") or {}
            wd_text = wd["model"]
            if pt.get("breakpoint") is not None:
                biv = ((wd.get("fit") or {}).get("breakpoint") or {}).get("interval") or (
                    (sec.get("bottleneck") or {}).get("interval"))
                wd_text += f", breakpoint {_g(pt['breakpoint'], 3)}"
                if biv:
                    wd_text += f" [{_g(biv[0], 3)}, {_g(biv[1], 3)}]"
            if pt.get("plateau") is not None:
                wd_text += f", plateau {_pct(pt['plateau'], 1)}"
        rows.append({
            "activation": act, "scale runs": ", ".join(e["scale"]["runs"]),
            "A0 change per decade of parameters": (
                f"{100 * sl['estimate']:+.2f} pp" + (f" [{100 * iv[0]:+.2f}, {100 * iv[1]:+.2f}]" if iv else "")
                if sl.get("estimate") is not None else "n/a"),
            "slope ≠ 0?": {True: "yes", False: "no", None: "n/a"}[sl.get("distinguishable_from_zero")],
            "width/depth law": wd_text,
        })
    out.append(Block("table", frame=pd.DataFrame(rows)))
    band = sec.get("stable_band", {}).get("range")
    if band:
        out.append(Block("p", f"Stable-training band of width/depth (paper): {band[0]:g}–{band[1]:g}."))
    _try_figure(out, "width-depth", "Limit activation ratio A0 against width/depth: the law used by "
                "predictions with its 90% band, the breakpoint and its interval, the plateau, the "
                "stable-training band.", lambda: plots.plot_width_depth(ls))
    _try_figure(out, "scale", "Data-law coefficients against parameter count: runs, trend lines and "
                "90% bands (dark: the trend line; light: a new scale).", lambda: plots.plot_scale(ls))
    return out


def _test_line(name: str, free: dict | None, fixed: dict | None) -> dict:
    """One row of the width/depth tests table: both tests with p-values and power."""
    row = {"limits": name}
    if free:
        pw = free.get("power")
        row["free breakpoint: p (power vs 2 pp)"] = (
            f"{free['p_value']:.3g}" + (f" ({pw:.0%})" if pw is not None else ""))
    if fixed and fixed.get("available"):
        lo, hi = fixed["rise_interval"]
        row[f"fixed breakpoint {fixed['breakpoint']:g}: rise [95%]"] = (
            f"{100 * fixed['rise']:+.2f} pp [{100 * lo:+.2f}, {100 * hi:+.2f}]")
        row["fixed: permutation p (power vs 2 pp)"] = f"{fixed['p_value']:.3g} ({fixed['power']:.0%})"
    return row


def widthdepth_evidence_blocks(ls: Any) -> list[Block]:
    """The width/depth sweep's seeds and tests: each design's seed mean and spread (fitted
    A0 and plateau mean), the run random effect, and both breakpoint tests with p-values
    and power on both kinds of limits."""
    sec = ls.architecture or {}
    out: list[Block] = []
    for act, e in sorted((sec.get("activations") or {}).items()):
        wd = e.get("widthdepth") or {}
        fit, plat = wd.get("fit") or {}, wd.get("plateau_tests") or {}
        if not fit:
            continue
        out.append(Block("h3", f"Width/depth sweep ({act}): seeds and tests"))
        test = fit.get("test") or {}
        pd_designs = {d["design"]: d for d in plat.get("designs") or []}
        rows = []
        for d in fit.get("designs") or []:
            q = pd_designs.get(d["design"], {})
            row = {"width/depth": _g(d["ratio"], 3), "runs": d["runs"],
                   "fitted A0: mean of seeds": _pct(d["mean"]),
                   "fitted A0: sd across seeds": "n/a" if d["sd"] is None else f"{100 * d['sd']:.2f} pp",
                   "plateau: mean of seeds": _pct(q.get("mean")),
                   "plateau: sd across seeds": "n/a" if q.get("sd") is None else f"{100 * q['sd']:.2f} pp"}
            common = [(ls.run_info.get(r) or {}).get("plateau_common_cett") for r in wd.get("runs") or []
                      if math.isclose((ls.run_info.get(r) or {}).get("width_depth_ratio") or -1.0, d["ratio"],
                                       rel_tol=1e-6)]
            common = [c for c in common if c]
            if common:
                vals = np.array([c["mean"] for c in common])
                row[f"plateau at CETT {common[0]['cett']:g}: mean of seeds"] = _pct(float(vals.mean()))
            rows.append(row)
        if rows:
            out.append(Block("table", frame=pd.DataFrame(rows)))
        out.append(Block("p", (
            f"Run random effect (between-run sd of A0, from the seeds where designs repeat): "
            f"{100 * fit.get('between_run_sd', 0.0):.2f} pp; scatter used in the weights: "
            f"{100 * fit.get('weight_scatter', 0.0):.2f} pp; the three heaviest runs carry "
            f"{test.get('top3_weight_share', float('nan')):.0%} of the weight.")))
        tests = [_test_line("fitted A0, weights 1/(se² + tau²)", test, fit.get("fixed_breakpoint_test"))]
        if plat.get("test"):
            tests.append(_test_line(plat.get("limits", "plateau means"), plat["test"],
                                    plat.get("fixed_breakpoint_test")))
        out.append(Block("table", frame=pd.DataFrame(tests)))
    return out


def prediction_blocks(ls: Any) -> list[Block]:
    """planning.predict for :data:`STANDARD_CONFIGS` (default token budget: the law set's own)."""
    from sparsitylaws.planning import predict

    out = [Block("h2", "Predictions for standard configurations")]
    if not ls.architecture:
        out.append(Block("p", "Not available: the law set has no architecture laws (fit several runs "
                              "with known width, depth and parameter count)."))
        return out
    widths = [c[1] for c in STANDARD_CONFIGS]
    depths = [c[2] for c in STANDARD_CONFIGS]
    try:
        df = predict(widths, depths, activation="all", lawset=ls)
    except SparsityLawsError as exc:
        out.append(Block("p", f"Not available: {exc}"))
        return out
    labels = {(w, d): lab for lab, w, d in STANDARD_CONFIGS}
    rows = []
    for _, r in df.iterrows():
        rows.append({
            "configuration": labels.get((int(r["width"]), int(r["depth"])), ""),
            "width × depth": f"{int(r['width'])} × {int(r['depth'])}",
            "d/L": f"{r['width_depth_ratio']:.3g}", "params (non-emb.)": f"{r['n_params'] / 1e9:.2f}B",
            "tokens": f"{r['tokens'] / 1e9:.0f}B", "activation": r["activation"],
            "activation ratio (90%)": _interval(r["activation_ratio"], r["ratio_low"], r["ratio_high"], pct=True),
            "A0 (90%)": _interval(r["a0"], r["a0_low"], r["a0_high"], pct=True)
            + (" AT ITS BOUND (not identified)" if r.get("a0_at_bound", False) else ""),
            "regime": r["regime"], "warning": r["warning"] or "–",
        })
    tpp = float(df["tokens_per_param"].iloc[0])
    out.append(Block("p", f"Tokens default to the law set's own budget, {tpp:.0f} per non-embedding "
                          "parameter (the most its runs were trained on). Warnings flag requests far "
                          "outside what the laws were fitted on, and a limit A0 at its bound (0% or 100%), "
                          "whose interval is then widened to what the curve guarantees."))
    out.append(Block("table", frame=pd.DataFrame(rows)))
    return out


def unfitted_blocks(inp: ReportInputs) -> list[Block]:
    """Runs in the table that are not in the law set: their measurements and layer profile."""
    from sparsitylaws.views import plots

    t = inp.table
    if t is None:
        return []
    runs = sorted(set(t["run"]) - set(inp.lawset.runs))
    if not runs:
        return []
    from sparsitylaws.tables.rows import excluded_runs

    flagged = {r: why for r, why in excluded_runs(t).items() if r in runs}
    out = [Block("h2", "Measurements without a fitted law"),
           Block("p", "These runs cannot be fitted (a law needs a training curve: several checkpoints "
                      "per run), are marked not for fitting, or were not in the law set; here is what "
                      "was measured.")]
    if flagged:
        out.append(Block("list", items=[f"{r}: marked not for fitting ({why}); left out of the fits and "
                                        "of the comparison with predictions" for r, why in flagged.items()]))
    cols = [c for c in ("run", "checkpoint", "tokens", "metric", "metric_arg", "activation_ratio", "cett",
                        "ppl_dense", "ppl_sparse", "dead_neuron_ratio", "eval_dataset", "eval_tokens",
                        "dtype", "device") if c in t.columns]
    sub = t[t["run"].isin(runs)][cols].copy()
    sub["activation_ratio"] = sub["activation_ratio"].map(_pct)
    if "tokens" in sub:
        sub["tokens"] = sub["tokens"].map(lambda v: f"{v / 1e9:.4g}B")
    for c in ("cett", "ppl_dense", "ppl_sparse", "dead_neuron_ratio", "metric_arg"):
        if c in sub:
            sub[c] = sub[c].map(lambda v: _g(v, 4))
    out.append(Block("table", frame=sub.head(60).reset_index(drop=True)))
    out += measured_vs_predicted(inp, runs)
    if "layer_ratios" in t.columns and t[t["run"].isin(runs)]["layer_ratios"].notna().any():
        from sparsitylaws.tables.rows import DEFAULT_METRIC

        metric = inp.lawset.provenance.get("metric") or DEFAULT_METRIC
        have = t[t["run"].isin(runs) & t["layer_ratios"].notna()]
        if not (have["metric"] == metric).any():
            metric = None  # the laws' metric was not measured per layer: show what was
        else:
            have = have[have["metric"] == metric]
        _try_figure(out, "layers", "Per-layer activation ratio across depth, last checkpoint of each run, one "
                    "panel per run" + (f", metric {metric} (the laws' metric)" if metric else "") + ".",
                    lambda: plots.plot_layers(t, runs=sorted(set(have["run"])), metric=metric))
    return out


def measured_vs_predicted(inp: ReportInputs, runs: Sequence[str]) -> list[Block]:
    """For unfitted runs of known shape: the law set's prediction next to the measured
    CETT-PPL-p% ratio (the metric the laws are about) at the run's last checkpoint."""
    from sparsitylaws.planning import predict
    from sparsitylaws.tables.rows import excluded_runs

    ls, t = inp.lawset, inp.table
    acts = set((ls.architecture or {}).get("activations") or {})
    flagged = excluded_runs(t)
    rows = []
    for run in runs:
        if run in flagged:  # e.g. a deliberately broken model: a prediction says nothing about it
            continue
        sub = t[(t["run"] == run) & (t["metric"] == "ppl-p")]
        if sub.empty or not acts:
            continue
        last = sub.sort_values("tokens").iloc[-1]
        act = str(last["activation"]).lower()
        w, d = _first(sub, "width"), _first(sub, "depth")
        if act not in acts or not w or not d:
            continue
        ffn = _first(sub, "ffn_width")
        kw = {"ffn_ratio": ffn / w} if ffn else {}
        try:
            pr = predict(int(w), int(d), activation=act, tokens=float(last["tokens"]), lawset=ls, **kw).iloc[0]
        except SparsityLawsError:
            continue
        inside = pr["ratio_low"] <= last["activation_ratio"] <= pr["ratio_high"]
        rows.append({"run": run, "checkpoint": last["checkpoint"], "metric": f"ppl-p {last['metric_arg']:g}",
                     "measured": _pct(last["activation_ratio"]),
                     "predicted (90%)": _interval(pr["activation_ratio"], pr["ratio_low"], pr["ratio_high"], pct=True),
                     "inside?": "yes" if inside else "no",
                     "extrapolation (log10)": _g(pr["extrapolation"], 2), "warning": pr["warning"] or "–"})
    if not rows:
        return []
    return [Block("h3", "Measured against predicted"),
            Block("p", f"The law set ({ls.name}) predicts each run's shape and token count; the "
                       "measurement is its CETT-PPL-p% activation ratio. The laws come from the models "
                       "they were fitted on: another architecture, training recipe or evaluation text "
                       "can move the ratio by more than the interval, so a miss says the model differs, "
                       "not only that the law is wrong."),
            Block("table", frame=pd.DataFrame(rows))]


def warning_blocks(inp: ReportInputs) -> list[Block]:
    """Fit warnings, skipped runs, architecture caveats, law-set caveats, report notes."""
    ls = inp.lawset
    items = list(inp.notes)
    for name in ls.run_names():
        for w in ls.runs[name].warnings:
            msg = w.get("message", "")
            items.append(msg if name in msg else f"{name}: {msg}")
    from sparsitylaws.runfit.coverage import poor_coverage

    for name in ls.run_names():
        f = ls.runs[name]
        why = (ls.run_info.get(name) or {}).get("form_choice") or ""
        if "not an activation the paper studied" in why:
            items.append(f"{name}: law form {f.form} chosen by the data's direction ({why})")
        for cut in sorted({r["cutoff"] for r in f.backtest}):
            sub = [r for r in f.backtest if r["cutoff"] == cut and r.get("error") is not None]
            cov = sum(bool(r.get("covered")) for r in sub)
            if sub and poor_coverage(cov, len(sub), f.level):
                items.append(f"{name}: POOR backtest coverage at {cut:.0%} ({cov}/{len(sub)} held-out points in "
                             f"the {f.level:.0%} intervals); its intervals are likely too narrow for forecasting")
    for run, why in (ls.provenance.get("skipped_runs") or {}).items():
        items.append(f"run {run} skipped: {why}")
    for run, why in (ls.provenance.get("not_for_fitting") or {}).items():
        items.append(f"run {run} left out: marked not for fitting ({why})")
    if ls.provenance.get("architecture_note"):
        items.append(ls.provenance["architecture_note"])
    for act, e in sorted(((ls.architecture or {}).get("activations") or {}).items()):
        items.extend(f"{act}: {c}" for c in e.get("caveats") or [])
    items.extend(ls.provenance.get("caveats") or [])
    items = list(dict.fromkeys(items))
    out = [Block("h2", "Warnings and caveats")]
    if not items:
        return out + [Block("p", "None.")]
    general, per_run = group_by_run(items, ls.run_names() + [str(r) for r in
                                    (ls.provenance.get("skipped_runs") or {})]
                                    + [str(r) for r in (ls.provenance.get("not_for_fitting") or {})])
    if general:
        out.append(Block("list", items=general))
    if per_run:
        out.append(Block("p", f"Per run ({sum(len(v) for v in per_run.values())} warnings on "
                              f"{len(per_run)} runs):"))
    for run, msgs in per_run.items():
        out.append(Block("h3", f"{run} ({len(msgs)})"))
        out.append(Block("list", items=msgs))
    return out


def group_by_run(items: Sequence[str], runs: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Split messages into those naming no run and those of each run (the first run a
    message names, as a whole word; runs in ``runs`` order). Every message is kept once."""
    import re

    names = list(dict.fromkeys(runs))
    pats = {r: re.compile(r"(?<![\w.-])" + re.escape(r) + r"(?![\w-])") for r in names}
    general: list[str] = []
    per_run: dict[str, list[str]] = {}
    for msg in items:
        hits = [(m.start(), r) for r, p in pats.items() if (m := p.search(msg))]
        if hits:
            per_run.setdefault(min(hits)[1], []).append(msg)
        else:
            general.append(msg)
    return general, {r: per_run[r] for r in names if r in per_run}


def _shown(path: os.PathLike | str) -> str:
    """A table's path as the reader typed it: relative to the working folder when inside it
    (a report shows no machine's absolute paths it does not need)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def provenance_blocks(inp: ReportInputs) -> list[Block]:
    """Law-set provenance, per-run data hashes, input files with hashes, versions."""
    ls = inp.lawset
    pv = ls.provenance
    out = [Block("h2", "Provenance")]
    where = "" if not ls.source or ls.source in inp.origin else f" ({ls.source})"
    items = [f"Law set: {ls.name}{where}; {inp.origin}."]
    rec = pv.get("recipe") or {}
    if rec.get("name"):  # the training recipe the laws describe (sparsitylaws.planning.recipe)
        items.append(f"recipe: {rec['name']}" + (f" ({rec['description']})" if rec.get("description") else ""))
    for key in ("created_at", "created_by", "built_by", "built_with", "source", "metric"):
        if pv.get(key):
            items.append(f"{key.replace('_', ' ')}: {pv[key]}")
    settings = pv.get("settings")
    if settings:
        items.append("fit settings: " + ", ".join(f"{k} = {v}" for k, v in settings.items()))
    seed = (settings or {}).get("seed", pv.get("seed"))
    if seed is not None:
        items.append(f"random seed: {seed}")
    vers = dict(pv.get("versions") or {})
    if vers:
        items.append("versions at fit time: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    out.append(Block("list", items=items))
    hashes = dict(pv.get("data_sha256") or {})
    for run, info in ls.run_info.items():
        if info.get("data_sha256"):
            hashes.setdefault(run, info["data_sha256"])
    if hashes:
        out.append(Block("h3", "Data hashes (SHA-256 of each run's tokens and ratios)"))
        out.append(Block("table", frame=pd.DataFrame({"run": list(hashes), "sha256": list(hashes.values())})))
    if inp.files:
        out.append(Block("h3", "Input tables"))
        out.append(Block("table", frame=pd.DataFrame({
            "file": [_shown(f) for f in inp.files], "sha256": [_file_sha256(f) for f in inp.files]})))
    out.append(Block("p", "Report written " + datetime.now(timezone.utc).replace(microsecond=0).isoformat()
                     + f" by sparsitylaws {__version__} (Python {platform.python_version()}, "
                     + ", ".join(f"{p} {_version(p)}" for p in ("numpy", "pandas", "matplotlib")) + ")."))
    return out


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "unknown"


def build_blocks(inp: ReportInputs, title: str = "sparsitylaws report") -> list[Block]:
    """The whole report as blocks, in reading order."""
    ls = inp.lawset
    head = [Block("h1", title),
            Block("p", f"Law set: {ls.name} — {inp.origin}. Fitted runs: {len(ls.runs)}; "
                       f"architecture laws: {', '.join(sorted((ls.architecture or {}).get('activations') or {})) or 'none'}.")]
    head += [Block("p", n) for n in inp.notes]
    return (head + data_summary(inp) + fit_blocks(inp) + comparison_blocks(ls) + backtest_blocks(ls)
            + architecture_blocks(inp) + widthdepth_evidence_blocks(ls) + prediction_blocks(ls)
            + unfitted_blocks(inp)
            + warning_blocks(inp) + provenance_blocks(inp))


# ============================================================================ rendering

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1200px;
margin:2em auto;padding:0 1em;color:#1a1a1a;line-height:1.45}
h1{border-bottom:2px solid #333;padding-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #bbb}
table{border-collapse:collapse;margin:.6em 0;font-size:.86em;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#eee}tr:nth-child(even) td{background:#fafafa}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.88em;color:#444}code,pre{font-family:ui-monospace,Menlo,Consolas,monospace}
"""


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _anchors(blocks: Sequence[Block]) -> dict[int, str]:
    """A unique id for each h2 block (its index -> id): the table of contents' targets."""
    out: dict[int, str] = {}
    for i, b in enumerate(blocks):
        if b.kind == "h2":
            slug = "".join(c if c.isalnum() else "-" for c in b.text.lower()).strip("-")
            slug = "-".join(x for x in slug.split("-") if x) or "section"
            while slug in out.values():
                slug += "-2"
            out[i] = slug
    return out


def _toc_html(blocks: Sequence[Block], anchors: dict[int, str]) -> str:
    items = "".join(f'<li><a href="#{a}">{html.escape(blocks[i].text)}</a></li>' for i, a in anchors.items())
    return f'<nav id="contents"><h2>Contents</h2><ol>{items}</ol></nav>'


def render_html(blocks: Sequence[Block], title: str) -> str:
    """One HTML document; a table of contents after the title block; figures inline as data:
    URIs; no external resources."""
    parts = []
    anchors = _anchors(blocks)
    first_h2 = min(anchors) if anchors else None
    for i, b in enumerate(blocks):
        if i == first_h2:
            parts.append(_toc_html(blocks, anchors))
        if b.kind == "h2":
            parts.append(f'<h2 id="{anchors[i]}">{html.escape(b.text)}</h2>')
        elif b.kind in ("h1", "h3", "p"):
            parts.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "list":
            parts.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "table":
            parts.append(_html_table(b.frame))
        elif b.kind == "figure":
            data = base64.b64encode(b.png).decode("ascii")
            parts.append(f'<figure id="fig-{html.escape(b.name)}"><img alt="{html.escape(b.name)} figure" '
                         f'src="data:image/png;base64,{data}"><figcaption>{html.escape(b.text)}</figcaption></figure>')
        elif b.kind == "pre":
            parts.append(f"<pre>{html.escape(b.text)}</pre>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def _md_cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: Sequence[Block], image_dir: str) -> tuple[str, dict[str, bytes]]:
    """Markdown text and the PNG files it links to (relative names under ``image_dir``)."""
    parts, files = [], {}
    anchors = _anchors(blocks)
    first_h2 = min(anchors) if anchors else None
    for i, b in enumerate(blocks):
        if i == first_h2:
            parts.append("**Contents**\n\n" + "\n".join(
                f"{n}. [{blocks[j].text}](#{a})" for n, (j, a) in enumerate(anchors.items(), 1)))
        if b.kind in ("h1", "h2", "h3"):
            anchor = f'<a id="{anchors[i]}"></a>\n\n' if i in anchors else ""
            parts.append(anchor + "#" * int(b.kind[1]) + " " + b.text)
        elif b.kind == "p":
            parts.append(b.text)
        elif b.kind == "list":
            parts.append("\n".join(f"- {i}" for i in b.items))
        elif b.kind == "table":
            df = b.frame
            lines = ["| " + " | ".join(_md_cell(c) for c in df.columns) + " |",
                     "|" + "---|" * len(df.columns)]
            lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
            parts.append("\n".join(lines))
        elif b.kind == "figure":
            rel = f"{image_dir}/{b.name}.png"
            files[rel] = b.png
            parts.append(f"![{b.name}]({rel})\n\n*{b.text}*")
        elif b.kind == "pre":
            parts.append(f"```\n{b.text}\n```")
    return "\n\n".join(parts) + "\n", files


def make_report(tables: Sequence[os.PathLike | str] = (), laws: os.PathLike | str | None = None, *,
                output: os.PathLike | str = "report.html", fmt: str = "html", n_boot: int = N_BOOT,
                seed: int = 0, title: str = "sparsitylaws report", find: bool = True,
                progress: Any = None, notes: Any = None) -> Path:
    """Gather (``find``, ``progress``: see :func:`gather`), build and write the report;
    returns the path written.  ``notes(list_of_str)``, when given, receives gather's notes."""
    from sparsitylaws.views.plots import check_writable

    if fmt not in ("html", "md"):
        raise SparsityLawsError(f"--format {fmt}: unknown report format (html or md)")
    output = check_writable(output)
    inp = gather(tables, laws, n_boot=n_boot, seed=seed, find=find, progress=progress)
    if notes is not None:
        notes(list(inp.notes))
    blocks = build_blocks(inp, title)
    try:
        if fmt == "html":
            atomic_write_bytes(output, render_html(blocks, title).encode("utf-8"))
        else:
            img_dir = f"{output.stem}_files"
            text, files = render_markdown(blocks, img_dir)
            (output.parent / img_dir).mkdir(exist_ok=True)
            for rel, data in files.items():
                atomic_write_bytes(output.parent / rel, data)
            atomic_write_bytes(output, text.encode("utf-8"))
    except OSError as exc:
        raise SparsityLawsError(f"-o {output}: cannot write ({exc.strerror or exc})") from None
    return output
