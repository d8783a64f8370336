"""The report's backtests: interval coverage per run and cutoff, and the combined
forecast against the naive ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sparsitylaws.views.report.blocks import Block, _g, _level


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
    """Per activation: the combined forecast against each naive forecast, paired over runs (:func:`sparsitylaws.runfit.compare.paired_text`)."""
    from sparsitylaws.runfit.calibration import summarize_runs
    from sparsitylaws.runfit.compare import paired_text

    out = []
    for act in sorted({ls.runs[n].activation for n in ls.run_names()}):
        s = summarize_runs(ls.runs, act)
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
