"""The forecast as an outside checker runs it: the largest runs cut, fitted with the rest (issue 19).

For each study (the paper's 8 published runs from ../shared, and each committed lab table), the
runs of the largest size (within 10%) are cut at 30, 50 and 70% of their token range; the cut
runs and every other run, whole, are fitted together with `fit_table` as `sparsitylaws fit`
does; and `LawSet.predict` forecasts the cut runs' later checkpoints. Beside it, the ruler an
outsider brings: the last fitted value and the local line in ln D (both from the run's own
forecast origin), each with the band +-q h, h = ln(D / D_cut) and q the split-conformal 90%
quantile of |error| / h over the *other* runs' backtests of the same activation (each run
weighing 1); and the nearest run at equal tokens per parameter (the law set's smaller run of the
activation nearest in size, its logit move from the cut's tokens per parameter on), with the
same kind of band. Reported per
activation: mean interval score (width + 20 x miss, pp) over the forecasts, points and last
checkpoints covered, each forecast's line.

On the published runs the two largest sizes (0.4B and 0.8B) are also cut together, fitted with
the 0.1B and 0.2B runs whole: an outsider's larger runs come several at once, and the larger of
them then borrows from a cut one.

Not nested the way benchmarks/forecast_eval.py is: the law set chooses its forecast weights on
every run it holds, the cut ones included (as a user's `fit` would); bands leave the forecast
run out. It is the end-to-end path, not the calibration check.

    python benchmarks/outsider_check.py [--study published|lab-cpu|lab-gpu|all] [--write | --check]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from docblocks import publish  # noqa: E402
from forecast_eval import available_studies, study_tables  # noqa: E402

from sparsitylaws.lawset.build import fit_table  # noqa: E402
from sparsitylaws.runfit.backtest import REPORTED_CUTOFFS, interval_score  # noqa: E402
from sparsitylaws.runfit.calibration import conformal_q  # noqa: E402
from sparsitylaws.runfit.coverage import clopper_pearson  # noqa: E402
from sparsitylaws.runfit.forecast import candidates  # noqa: E402

DOC = HERE.parent / "docs" / "fitting.md"
LEVEL = 0.9
RULERS = (("last", "last value +-q h"), ("line", "local line +-q h"), ("nearest", "nearest run +-q h"))


def cut_table(df: pd.DataFrame, runs: list[str], cut: float) -> pd.DataFrame:
    """``df`` with each run of ``runs`` kept up to ``cut`` of its token range (linear, as the
    backtests cut)."""
    parts = []
    for run, sub in df.groupby("run"):
        if run in runs:
            t = sub["tokens"]
            sub = sub[t <= (t.min() + cut * (t.max() - t.min())) * (1 + 1e-12)]
        parts.append(sub)
    return pd.concat(parts, ignore_index=True)


def ruler_q(backtests: Iterable[tuple[str, list[dict]]], key: str, activation: str) -> float:
    """The conformal quantile of |error| / h of candidate ``key`` over the backtest rows of the
    runs given as (activation, rows) of ``activation``, each run weighing 1 and each of its
    cuts equally."""
    v, w = [], []
    for act, backtest in backtests:
        if act != activation:
            continue
        rows = [r for r in backtest if r.get(f"cand_{key}") is not None and r["horizon"] > 0]
        cuts = sorted({r["cutoff"] for r in rows})
        for c in cuts:
            rc = [r for r in rows if r["cutoff"] == c]
            for r in rc:
                v.append(abs(r["measured"] - r[f"cand_{key}"]) / r["horizon"])
                w.append(1.0 / (len(cuts) * len(rc)))
    return conformal_q(np.asarray(v), np.asarray(w), LEVEL) if v else float("nan")


def score_forecast(ls, run: str, later: pd.DataFrame, backtests: list[tuple[str, list[dict]]],
                   cut: float) -> dict:
    """One forecast (run x cut) of ``later`` (its checkpoints past the cut) by the law set and
    by the ruler (q over ``backtests``: other runs only): interval score, points covered, last
    point covered, per forecast.  The nearest run (the move of the run nearest in size among the
    law set's smaller runs of the activation, at equal tokens per parameter) is a ruler only
    where it has a value at every later point and ``backtests`` give its q."""
    y = later["activation_ratio"].to_numpy(float)
    p = ls.predict(run, later["tokens"].to_numpy(float))
    fc = {"combined": (p["pred_low"].to_numpy(float), p["pred_high"].to_numpy(float))}
    rf = ls.runs[run]
    st = rf.forecast_state()
    d_b = later["tokens"].to_numpy(float) / 1e9
    cand = candidates(st, d_b, rf.forecast_model()[1])
    h = np.log(d_b / st.d_cut)
    for k, name in RULERS:
        q = ruler_q(backtests, k, rf.activation)
        if not (np.isfinite(q) and np.isfinite(cand[k]).all()):
            continue
        fc[name] = (np.clip(cand[k] - q * h, 0, 1), np.clip(cand[k] + q * h, 0, 1))
    row = {"run": run, "activation": rf.activation, "cut": cut, "points": int(y.size)}
    for name, (lo, hi) in fc.items():
        cov = (lo <= y) & (y <= hi)
        row[name] = {"interval_score": float(np.mean(interval_score(lo, hi, y, LEVEL))),
                     "covered": int(cov.sum()), "last_covered": bool(cov[-1])}
    return row


def largest_runs(df: pd.DataFrame, sizes: int = 1) -> list[str]:
    """The runs of the ``sizes`` largest sizes (a size: runs within 10% of its largest)."""
    n = df.groupby("run")["n_params"].first().astype(float)
    tops: list[float] = []
    for v in sorted(set(n), reverse=True):
        if not tops or v < tops[-1] / 1.1:
            tops.append(v)
    return sorted(n[n >= tops[min(sizes, len(tops)) - 1] / 1.1].index)


def check(df: pd.DataFrame, sizes: int = 1) -> list[dict]:
    """One row per cut run x cut: each forecast's interval score, coverage, last point covered
    (the runs of the ``sizes`` largest sizes cut together)."""
    big = largest_runs(df, sizes)
    out = []
    for cut in REPORTED_CUTOFFS:
        part = cut_table(df, big, cut)
        ls = fit_table(part, n_boot=0, architecture=False, name="outsider")
        others = [(ls.runs[m].activation, ls.runs[m].backtest) for m in ls.run_names() if m not in big]
        for run in big:
            if run not in ls.runs:
                continue
            full = df[df["run"] == run].sort_values("tokens")
            d_cut = part[part["run"] == run]["tokens"].max()
            later = full[full["tokens"] > d_cut]
            if not later.empty:
                out.append(score_forecast(ls, run, later, others, cut))
    return out


def tables(study: str, rows: list[dict]) -> list[str]:
    """Per activation: each forecast's mean interval score and coverage; a ruler only where it
    forecast every one of the activation's rows."""
    md = []
    for act in sorted({r["activation"] for r in rows}):
        ra = [r for r in rows if r["activation"] == act]
        names = ["combined"] + [n for _, n in RULERS if all(n in r for r in ra)]
        runs = sorted({r["run"] for r in ra})
        md += [f"**{study}, {act}: {', '.join(runs)} cut at 30/50/70% ({len(ra)} forecasts, "
               f"{sum(r['points'] for r in ra)} later points)**", "",
               "| forecast | mean interval score (pp) | later points covered | last checkpoints covered "
               "[90% CI of the rate] |", "|---|---|---|---|"]
        for m in names:
            isc = 100 * np.mean([r[m]["interval_score"] for r in ra])
            cov = sum(r[m]["covered"] for r in ra)
            npts = sum(r["points"] for r in ra)
            last = sum(r[m]["last_covered"] for r in ra)
            lo, hi = clopper_pearson(last, len(ra))
            label = "**combined (`fit`, `predict`)**" if m == "combined" else m
            md.append(f"| {label} | {isc:.3f} | {cov}/{npts} ({cov / npts:.2f}) | {last}/{len(ra)} "
                      f"[{lo:.2f}, {hi:.2f}] |")
        short = " / ".join(["combined"] + [n.removesuffix(" +-q h") for n in names[1:]])
        md += ["", f"Interval score per forecast ({short}, pp): " + "; ".join(
            f"{r['run']} at {r['cut']:.0%} " + " / ".join(f"{100 * r[m]['interval_score']:.2f}" for m in names)
            for r in ra) + ".", ""]
    return md


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", default="all")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the tables into docs/fitting.md")
    mode.add_argument("--check", action="store_true", help="check docs/fitting.md against them")
    a = ap.parse_args(argv)
    md = []
    for st in available_studies(a.study):
        t0 = time.process_time()
        df = study_tables(st)
        md += tables(st, check(df))
        if st == "published":  # as the larger runs an outsider holds would be: two sizes, cut together
            md += tables("published, the two largest sizes cut together", check(df, sizes=2))
        print(f"{st}: {time.process_time() - t0:.0f} CPU-s", file=sys.stderr)
    body = "\n".join(md)
    print(body)
    return publish(DOC, {"outsider-check": body}, write=a.write, check=a.check)


if __name__ == "__main__":
    raise SystemExit(main())
