"""Builds the packaged forecast model (``sparsitylaws/runfit/forecast_default.json``).

The model of :mod:`sparsitylaws.runfit.calibration`, calibrated on the Sparsing Law paper's 8
published runs (Luo et al. 2024, arXiv:2411.02335): a single run fitted without a law set
(``fit_run``), and law sets with too few runs of a recipe, band their forecasts with it.  Its
analog curves are the runs' fitted laws (no measured data ships).  Kept apart from
:mod:`.calibration` because it fits runs (:mod:`.run`), which use the calibration.
``python -m sparsitylaws.runfit.packaged DIR`` rewrites the file from the published runs in
DIR (../shared/reference/sparsinglaw-data); a test checks that it reproduces.
"""

from __future__ import annotations

import dataclasses
import json

import pandas as pd

from sparsitylaws.runfit.backtest import backtest
from sparsitylaws.runfit.calibration import DEFAULT_RESOURCE, LEVEL, RunBacktest, calibrate_runs
from sparsitylaws.runfit.forecast import ForecastModel, RunCurve
from sparsitylaws.runfit.run import fit_run
from sparsitylaws.tables.ingest import read_sparsinglaw_dir

__all__ = ["build_default", "default_from", "default_model", "published_backtests"]

SOURCE = ("packaged default: rolling-origin backtests of the Sparsing Law paper's published runs "
          "(arXiv:2411.02335), built by python -m sparsitylaws.runfit.packaged")


def published_backtests(source: str | pd.DataFrame) -> list[RunBacktest]:
    """The paper's published runs (a directory of them, or that directory's table as read by
    :func:`~sparsitylaws.tables.ingest.read_sparsinglaw_dir`), each fitted and backtested, its
    analog curve its fitted law (no measured data ships)."""
    df = source if isinstance(source, pd.DataFrame) else read_sparsinglaw_dir(source)
    runs = []
    for run in sorted(df["run"].unique()):
        sub = df[df["run"] == run].sort_values("tokens")
        t, y = sub["tokens"].to_numpy(float), sub["activation_ratio"].to_numpy(float)
        act = str(sub["activation"].iloc[0])
        n = float(sub["n_params"].iloc[0]) if "n_params" in sub else None
        rf = fit_run(t, y, run=str(run), activation=act, n_boot=0, compare=False, backtest=False, n_params=n)
        law = RunCurve.from_law(str(run), act, n, rf.form, rf.estimate, rf.tokens_b_min, rf.tokens_b_max)
        rows = backtest(t / 1e9, y, rf.form, run=str(run), activation=act, n_params=n)
        runs.append(RunBacktest(str(run), act, n, rows, law))
    return runs


def default_model(runs: list[RunBacktest]) -> ForecastModel:
    """The packaged default's model calibrated on ``runs``: :func:`calibrate_runs`, with each
    activation's band quantiles pooled over both activations (no cross weights) and its scale
    without the projected move (``move`` 0).

    The default bands runs of recipes it never saw (a lone run, too few runs of a recipe).  A
    cross weight below 1 is chosen in-sample on the paper's runs; out of sample it moved the
    paper's lone runs by at most 0.005 pp (docs/fitting.md, "A lone run") and, weighing SiLU's
    wider scores 0 in ReLU's band, took the lone ReLU runs of the lab's recipes from 0.43 to 0.20
    of later points covered (lab-cpu; lab-gpu 0.49 -> 0.47).  Likewise the move term: the
    paper's runs, whose projected moves are large beside their misses, make its quantiles
    small, and a lone run of another recipe (no analog: its law, projecting little) then got a
    band too narrow for its noise (lab-cpu 0.43 -> 0.17 of later points covered, lab-gpu
    0.49 -> 0.32; docs/fitting.md, "The projected move")."""
    model, *_ = calibrate_runs(runs, level=LEVEL, source=SOURCE, moves=(0.0,))
    return dataclasses.replace(model, cross={}, score_activation={})


def default_from(runs: list[RunBacktest]) -> dict:
    """The packaged default's document (model and analog curves) calibrated on ``runs``."""
    return {"model": default_model(runs).to_dict(), "curves": [r.curve.to_dict() for r in runs]}


def build_default(directory: str) -> dict:
    """Backtest the paper's published runs in ``directory`` and calibrate on all of them (the
    packaged default)."""
    return default_from(published_backtests(directory))


if __name__ == "__main__":  # pragma: no cover - maintenance command
    import sys
    from pathlib import Path

    doc = build_default(sys.argv[1])
    out = Path(__file__).with_name(DEFAULT_RESOURCE)
    out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(out, doc["model"]["weights"], doc["model"]["beta"])
