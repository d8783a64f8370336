"""Forecast bands calibrated on one recipe, checked on another.

Usage (from the repository root)::

    python benchmarks/cross_recipe_forecast.py [--n-boot 1000]

``fit`` calibrates a law set's forecast bands leave-one-run-out on that law set's own runs
(docs/fitting.md); a user who fits a single run gets the packaged default, calibrated on the
paper's published runs.  This checks a calibration on recipes that did not make it: the
paper's 8 runs (fitted here from ../shared/reference/sparsinglaw-data) and the two lab plans
(measurements/lab-cpu.laws.json, measurements/lab-gpu.laws.json, whose backtests are stored
in the law sets).  For every pair (calibrated on A, checked on B) it recomputes B's
backtest bands (30/50/70% cuts) with A's calibration and prints, as Markdown, the coverage
of the held-out points and of the last checkpoints, and the median band width there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "reference" / "sparsinglaw-data"
sys.path.insert(0, str(REPO))

from sparsitylaws.runfit.backtest import calibrate_backtest  # noqa: E402
from sparsitylaws.runfit.forecast import ForecastCalibration  # noqa: E402


def backtest_rows(lawset) -> list[dict]:
    """Every stored backtest row of a law set, with its run's name and activation."""
    return [{**r, "run": name, "activation": lawset.runs[name].activation}
            for name in lawset.run_names() for r in (lawset.runs[name].backtest or [])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap draws of the published fit")
    args = ap.parse_args()
    from sparsitylaws.lawset.fileformat import load_lawset

    recipes: dict[str, list[dict]] = {}
    if DATA.is_dir():
        from sparsitylaws.lawset.build import fit_table
        from sparsitylaws.tables.ingest import read_sparsinglaw_dir

        recipes["paper (8 runs)"] = backtest_rows(
            fit_table(read_sparsinglaw_dir(DATA), n_boot=args.n_boot, architecture=False))
    for stem in ("lab-cpu", "lab-gpu"):
        path = REPO / "measurements" / f"{stem}.laws.json"
        if path.is_file():
            ls = load_lawset(path)
            recipes[f"{stem} ({len(ls.run_names())} runs)"] = backtest_rows(ls)
    print("| calibrated on | checked on | activation | later points covered | last checkpoints "
          "covered | median band width at the last checkpoint |")
    print("|---|---|---|---|---|---|")
    for src, rows_a in recipes.items():
        cal = ForecastCalibration.from_scores(rows_a, source=src)
        for dst, rows_b in recipes.items():
            if dst == src:
                continue
            checked = calibrate_backtest(rows_b, cal)
            for act in ("relu", "silu", "all"):
                sub = [r for r in checked if act == "all" or r["activation"] == act]
                if not sub:
                    continue
                last = [r for r in sub if r["is_last"]]
                width = np.median([r["pred_high"] - r["pred_low"] for r in last])
                print(f"| {src} | {dst} | {act} | {sum(r['covered'] for r in sub)}/{len(sub)} "
                      f"({np.mean([r['covered'] for r in sub]):.2f}) | "
                      f"{sum(r['covered'] for r in last)}/{len(last)} | {100 * width:.2f} pp |")


if __name__ == "__main__":
    main()
