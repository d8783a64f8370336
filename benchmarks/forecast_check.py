"""Leave-one-run-out rolling-origin check of the forecast bands on the 8 published runs.

Usage (from the repository root)::

    python benchmarks/forecast_check.py [--n-boot 1000]

Fits the published runs (../shared/reference/sparsinglaw-data) as ``sparsitylaws fit`` does
(automatic warm-up, bootstrap, backtests at 30/50/70% of each run's token range), so every
run's forecast band is calibrated on the other 7 runs only.  Prints, as Markdown: per run and
cut, the last checkpoint's error, band and coverage for the law and the two naive forecasts
(last value; straight line in ln D through the last third of the fitted points) with their
mean interval scores over all later points; the pooled coverage and median band width; and
the same check when the largest scale (0.8B) is left out of the calibration entirely.
The tables in docs/fitting.md come from this script.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "reference" / "sparsinglaw-data"
sys.path.insert(0, str(REPO))

from sparsitylaws.lawset.build import fit_table  # noqa: E402
from sparsitylaws.runfit.backtest import backtest_skill, calibrate_backtest  # noqa: E402
from sparsitylaws.runfit.forecast import ForecastCalibration  # noqa: E402
from sparsitylaws.tables.ingest import read_sparsinglaw_dir  # noqa: E402


def pp(x: float) -> str:
    return f"{100 * x:+.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"published data not found at {DATA}")
    ls = fit_table(read_sparsinglaw_dir(DATA), n_boot=args.n_boot, architecture=False)
    print("| run | cut | law: last error (pp) | 90% band (pp) | covered | later points covered | "
          "IS law | IS last value | IS local line | best by IS |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows_all = []
    for name in ls.run_names():
        bt = ls.runs[name].backtest
        rows_all += [{**r, "run": name} for r in bt]
        for e in backtest_skill(bt):
            sub = [r for r in bt if r["cutoff"] == e["cutoff"]]
            last = max(sub, key=lambda r: r["tokens_b"])
            print(f"| {name} | {e['cutoff']:.0%} | {pp(last['error'])} | [{pp(last['pred_low'] - last['predicted'])}, "
                  f"{pp(last['pred_high'] - last['predicted'])}] | {'yes' if last['covered'] else 'NO'} | "
                  f"{sum(r['covered'] for r in sub)}/{len(sub)} | {100 * e['law']['interval_score']:.3f} | "
                  f"{100 * e['last value']['interval_score']:.3f} | {100 * e['local line']['interval_score']:.3f} | "
                  f"{e['best']} |")
    last = [r for r in rows_all if r["is_last"]]

    def summary(rows: list[dict], lst: list[dict], label: str) -> None:
        w = np.median([r["pred_high"] - r["pred_low"] for r in lst])
        wl = np.median([r["law_high"] - r["law_low"] for r in lst])
        print(f"\n{label}: last checkpoint covered {sum(r['covered'] for r in lst)}/{len(lst)} "
              f"({np.mean([r['covered'] for r in lst]):.3f}), all later points "
              f"{sum(r['covered'] for r in rows)}/{len(rows)} ({np.mean([r['covered'] for r in rows]):.3f}); "
              f"median band width at the last checkpoint {100 * w:.3f} pp (law band alone {100 * wl:.3f} pp, "
              f"covering {np.mean([r['law_covered'] for r in lst]):.3f} / {np.mean([r['law_covered'] for r in rows]):.3f})")
        for name in ("law", "naive_last", "naive_line"):
            col = "predicted" if name == "law" else name
            mae = np.mean([abs(r[col] - r["measured"]) for r in lst])
            print(f"  {name}: mean |error| at the last checkpoint {100 * mae:.3f} pp")

    summary(rows_all, last, "Leave-one-run-out, 8 runs x 30/50/70% cuts")
    small = [r for r in rows_all if not r["run"].startswith("0.8b")]
    cal = ForecastCalibration.from_scores(small, source="0.1B-0.4B runs")
    big = [r for n in ls.run_names() if n.startswith("0.8b") for r in calibrate_backtest(ls.runs[n].backtest, cal)]
    summary(big, [r for r in big if r["is_last"]], "0.8B runs with a calibration from the 0.1B-0.4B runs only")
    for act in ("relu", "silu"):
        sub = [r for r in rows_all if r["run"].endswith(act)]
        print(f"  {act}: later points covered {np.mean([r['covered'] for r in sub]):.3f}")
    print(f"\nprovenance: {ls.provenance['forecast_calibration']}")
    print("\n| run | estimates [reported 90% interval] | A0: bootstrap / profile | warnings |")
    print("|---|---|---|---|")
    for name in ls.run_names():
        rf = ls.runs[name]
        lim = rf.limit()
        cells = ", ".join(f"{p} {e:.4g} [{lo:.3g}, {hi:.3g}]" for p, e, lo, hi in
                          zip(rf.param_names, rf.estimate, rf.boot_low, rf.boot_high, strict=True))
        codes = sorted({w["code"] + (f" ({w['parameter']})" if w.get("parameter") else "") for w in rf.warnings})
        print(f"| {name} | {cells} | [{lim['pct_low']:.4f}, {lim['pct_high']:.4f}] / [{lim['profile_low']:.4f}, "
              f"{lim['profile_high']:.4f}] | {', '.join(codes) or '-'} |")


if __name__ == "__main__":
    main()
