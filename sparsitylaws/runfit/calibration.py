"""Builds the packaged forecast calibration (``sparsitylaws/runfit/forecast_default.json``).

Rolling-origin backtests of the paper's published runs (:func:`build_default`); kept apart
from :mod:`.forecast` (the calibration itself) because it fits runs (:mod:`.run`), which
use the calibration: no import circle.  ``python -m sparsitylaws.runfit.calibration DIR``
rewrites the file from the published runs in DIR (../shared/reference/sparsinglaw-data).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sparsitylaws.runfit.forecast import DEFAULT_RESOURCE, ForecastCalibration, analog_spec
from sparsitylaws.runfit.run import backtest_rows_for_calibration, fit_run
from sparsitylaws.tables.ingest import read_sparsinglaw_dir

__all__ = ["build_default"]


def build_default(directory: str, runs: Sequence[str] | None = None) -> ForecastCalibration:
    """Backtest every published run in ``directory`` and pool the scores (the packaged default)."""
    df = read_sparsinglaw_dir(directory)
    rows, analogs = [], []
    for run in sorted(df["run"].unique()):
        if runs and run not in runs:
            continue
        sub = df[df["run"] == run].sort_values("tokens")
        t, y = sub["tokens"].to_numpy(float), sub["activation_ratio"].to_numpy(float)
        act = str(sub["activation"].iloc[0])
        rows += backtest_rows_for_calibration(t, y, run=str(run), activation=act)
        full = fit_run(t, y, run=str(run), activation=act, n_boot=0, compare=False, backtest=False)
        spec = analog_spec(str(run), full, sub["n_params"].iloc[0] if "n_params" in sub else None)
        if spec is not None:
            analogs.append(spec)
    cal = ForecastCalibration.from_scores(
        rows, source="packaged default: rolling-origin backtests of the Sparsing Law paper's "
        "published runs (arXiv:2411.02335), built by python -m sparsitylaws.forecast")
    cal.analogs = analogs
    return cal


if __name__ == "__main__":  # pragma: no cover - maintenance command
    import sys
    from pathlib import Path

    cal = build_default(sys.argv[1])
    out = Path(__file__).with_name(DEFAULT_RESOURCE)
    out.write_text(json.dumps(cal.to_dict(), indent=1) + "\n", encoding="utf-8")
    print(out, cal.summary())
