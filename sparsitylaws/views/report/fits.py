"""The report's fitted data laws (estimates with intervals, figures) and the
comparison of law forms.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.views.report.blocks import Block, _g, _interval, _level, _pct, _try_figure
from sparsitylaws.views.report.inputs import ReportInputs

#: Per-run figures in a report show at most this many runs (the tables list them all).
MAX_PANELS = 16


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
                "hollow points are warm-up checkpoints (weight below 1/2 in the fit); shading is the 90% band; grey bars are "
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


def comparison_blocks(ls: Any) -> list[Block]:
    """AICc comparison of the law forms: one row per fitted run, one column per form."""
    if not ls.runs:
        return []
    out = [Block("h2", "Comparison of law forms"),
           Block("p", "Each run refitted with every form on the same points, at its maximum "
                      "likelihood (without the weak prior the reported fit carries) and with the "
                      "reported fit's warm-up weights. Cells: ΔAICc (Akaike weight); 0 is the best "
                      "form, ΔAICc < 2 means the data do not tell the forms apart, > 10 means the "
                      "form is clearly worse. * marks the form used. \"not converged\": the fit "
                      "ran along a flat valley toward a parameter's edge (a form more flexible "
                      "than the curve needs); its RSS is then an upper bound, so its ΔAICc is "
                      "at most what is shown.")]
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
