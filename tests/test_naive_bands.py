"""The naive forecasts "banded our way" are banded exactly as the combined forecast is.

The evaluation compares the combined forecast with the last value, the local line and the
nearest run, each banded by the same machinery (:func:`~sparsitylaws.runfit.forecast.band_on_grid`:
the same scale, quantiles and monotone ends).  If the naive bands lacked a step of that machinery,
the comparison would be of band recipes, not of forecasts.  Checked here: a combined forecast
that puts all its weight on one naive candidate gets exactly that candidate's naive band, and
every naive band moves only in its law's direction.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparsitylaws.runfit.backtesttable import BacktestTable
from sparsitylaws.runfit.calibration import _combined_candidates, fill_rows
from sparsitylaws.runfit.selection import model_for
from sparsitylaws.runfit.simulate import simulate_study


def _rows(family: str, weights: dict[str, float], seed: int) -> tuple[list[dict], str]:
    runs = simulate_study(family, n_runs=4, n_points=16, seed=seed)
    T = BacktestTable(runs)
    ri = len(T.runs) - 1  # the largest run, held out
    calib = T.row_run != ri
    amask = np.array([n != T.names[ri] for n in T.analog_names])
    choice = {"weights": weights, "beta": 0.0, "omega": 1.0, "by_activation": {}, "move": 0.5}
    model = model_for(T, calib, amask, choice)
    C, own = _combined_candidates(T, amask)
    return fill_rows(T, ri, model, C, own, calib, amask), T.runs[ri].activation


@pytest.mark.parametrize("family", ["relu_law", "silu_law"])
@pytest.mark.parametrize("name,key", [("last", "naive_last"), ("line", "naive_line")])
def test_a_combination_of_one_naive_candidate_is_that_candidates_band(family: str, name: str, key: str) -> None:
    rows, _ = _rows(family, {name: 1.0}, seed=5)
    assert rows
    for r in rows:
        assert r["pred_low"] == pytest.approx(r[f"{key}_low"], abs=1e-12)
        assert r["pred_high"] == pytest.approx(r[f"{key}_high"], abs=1e-12)
        assert r["interval_score"] == pytest.approx(r[f"{key}_interval_score"], abs=1e-12)


@pytest.mark.parametrize("family", ["relu_keeps_falling", "silu_rise_stalls"])
def test_naive_bands_move_only_in_the_laws_direction(family: str) -> None:
    rows, act = _rows(family, {"law": 0.5, "last": 0.5}, seed=11)
    s = -1 if act == "relu" else 1
    by_cut: dict[float, list[dict]] = {}
    for r in rows:
        by_cut.setdefault(r["cutoff"], []).append(r)
    checked = 0
    for rr in by_cut.values():
        rr.sort(key=lambda r: r["tokens_b"])
        for key in ("naive_last", "naive_line", "naive_nearest"):
            if rr[0].get(f"{key}_low") is None:
                continue
            for end in ("low", "high"):
                v = np.array([r[f"{key}_{end}"] for r in rr])
                assert np.all((v >= 0) & (v <= 1))
                assert np.all(s * np.diff(v) >= -1e-12), (key, end)
                checked += 1
    assert checked >= 6
