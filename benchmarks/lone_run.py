"""A lone run forecast as its user would, out of sample (issue 19).

`sparsitylaws fit` on a table holding one run (or fewer than 3 runs of a recipe) bands its
forecasts with the packaged default, which the paper's 8 published runs calibrate. Here each
published run is held out in turn: the default is rebuilt on the other seven
(`runfit.packaged.default_model`, as `runfit.packaged` builds it on all eight: weights, band
and analog curves all without the run), the run is cut at 30, 50 and 70% of its token range,
fitted alone by `fit_table` and its later checkpoints forecast by `LawSet.predict`. Beside it, the ruler of benchmarks/outsider_check.py:
the last value and the local line from the same origin, +-q h with q the split-conformal 90%
quantile of |error| / h over the other seven runs' backtests of the same activation. Out of
sample for every run scored.

Then the same path for a run of *another recipe*: each run of each committed lab table fitted
alone, cut at 30/50/70%, banded by the packaged default as shipped (the paper's eight runs; it
never saw a lab run), the ruler's q from the paper's runs too (the same knowledge). Whether the
default's promise transfers across recipes.

    python benchmarks/lone_run.py [--write | --check]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from docblocks import publish  # noqa: E402
from forecast_eval import SHARED, STUDIES, study_tables  # noqa: E402
from outsider_check import cut_table, score_forecast, tables  # noqa: E402

from sparsitylaws.lawset.build import fit_table  # noqa: E402
from sparsitylaws.runfit.backtest import REPORTED_CUTOFFS  # noqa: E402
from sparsitylaws.runfit.calibration import RunBacktest, use_default_forecast  # noqa: E402
from sparsitylaws.runfit.packaged import default_model, published_backtests  # noqa: E402
from sparsitylaws.tables.ingest import read_sparsinglaw_dir  # noqa: E402

DOC = HERE.parent / "docs" / "fitting.md"


def fitted_alone(full: pd.DataFrame, run: str, ruler_rows: list[tuple[str, list[dict]]]) -> list[dict]:
    """One row per cut: ``run`` (its measurements ``full``) cut at 30/50/70%, fitted alone by
    ``fit_table`` (the default in force bands it) and its later checkpoints scored beside the
    ruler (q from ``ruler_rows``)."""
    full = full.sort_values("tokens")
    out = []
    for cut in REPORTED_CUTOFFS:
        part = cut_table(full, [run], cut)
        ls = fit_table(part, n_boot=0, architecture=False, name="lone run")
        later = full[full["tokens"] > part["tokens"].max()]
        if run in ls.runs and not later.empty:
            out.append(score_forecast(ls, run, later, ruler_rows, cut))
    return out


def check(df: pd.DataFrame, runs: list[str] | None = None,
          backtests: list[RunBacktest] | None = None) -> list[dict]:
    """One row per held-out run x cut of the published runs' table ``df`` (``runs``: only these
    held out; default every one; ``backtests``: their backtests when already made)."""
    backtests = backtests if backtests is not None else published_backtests(df)
    out = []
    for held in backtests:
        if runs is not None and held.run not in runs:
            continue
        others = [rb for rb in backtests if rb.run != held.run]
        model = default_model(others)
        with use_default_forecast(model, [rb.curve for rb in others]):
            out += fitted_alone(df[df["run"] == held.run], held.run, [(rb.activation, rb.rows) for rb in others])
    return out


def transfer_check(study: str, backtests: list[RunBacktest]) -> list[dict]:
    """One row per run of a lab table x cut: the run fitted alone with the packaged default as
    shipped; the ruler's q from the published runs' ``backtests``."""
    rows = [(rb.activation, rb.rows) for rb in backtests]
    out = []
    for run, full in sorted(study_tables(study).groupby("run")):
        out += fitted_alone(full, run, rows)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the tables into docs/fitting.md")
    mode.add_argument("--check", action="store_true", help="check docs/fitting.md against them")
    a = ap.parse_args(argv)
    if not SHARED.is_dir():
        print(f"{SHARED} absent: nothing to check")
        return 0
    t0 = time.process_time()
    df = read_sparsinglaw_dir(str(SHARED))
    backtests = published_backtests(df)
    md = tables("published, one run fitted alone", check(df, backtests=backtests))
    for study in STUDIES[1:]:
        if (HERE.parent / "measurements" / f"{study}.parquet").is_file():
            md += [line for line in tables(f"{study}, one run fitted alone with the packaged default",
                                           transfer_check(study, backtests))
                   if not line.startswith("Interval score per forecast")]
    body = "\n".join(md)
    print(f"{time.process_time() - t0:.0f} CPU-s", file=sys.stderr)
    print(body)
    return publish(DOC, {"lone-run": body}, write=a.write, check=a.check)


if __name__ == "__main__":
    raise SystemExit(main())
