"""The band's scale widens with the forecast's projected move (``ForecastModel.move``).

A forecast that projects a large move (a steep local line, a law still rising, a larger run's
fall borrowed at equal tokens per parameter) misses by a share of that move, not by a fixed
amount per unit of horizon: S(h) = sqrt(sigma^2 + (kappa h)^2 + (mu |F(h) - level|)^2).
Checked here against that formula by hand, for the model's band, for agreement between the
scores the model stores and the table's normalized errors, and for the file format.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from forecast_helpers import assert_monotone_valid_band, cut_state
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsitylaws.errors import LawSetError
from sparsitylaws.lawset.fileformat import READABLE_VERSIONS, version_for
from sparsitylaws.runfit.backtesttable import BacktestTable
from sparsitylaws.runfit.forecast import MOVE_SCALE, ForecastModel, error_scale, kappa_at
from sparsitylaws.runfit.selection import SMALLER_ONLY, _forecast_rows, model_for
from sparsitylaws.runfit.simulate import simulate_study

KAPPA = 0.002
SCORES = [(f"r{i}", 50.0, float(z), 1.0 / 9) for i in range(4) for z in np.linspace(-1.0, 1.0, 9)]


def test_error_scale_adds_the_move_in_quadrature() -> None:
    # sqrt(0.01^2 + (0.02 * 0.5)^2 + (0.5 * 0.04)^2) = sqrt(1e-4 + 1e-4 + 4e-4)
    assert float(error_scale(0.01, 0.5, 0.02, "additive", 0.04, 0.5)) == pytest.approx(math.sqrt(6e-4), rel=1e-12)
    # the sign of the move does not matter; no share (or no move) is the scale without it
    assert float(error_scale(0.01, 0.5, 0.02, "additive", -0.04, 0.5)) == pytest.approx(math.sqrt(6e-4), rel=1e-12)
    assert float(error_scale(0.01, 0.5, 0.02, "additive", 0.04, 0.0)) == pytest.approx(math.sqrt(2e-4), rel=1e-12)
    assert float(error_scale(0.01, 0.5, 0.02, "additive", np.nan, 0.5)) == pytest.approx(math.sqrt(2e-4), rel=1e-12)


@pytest.mark.parametrize("act", ["relu", "silu"])
def test_the_band_widens_by_the_projected_move(act: str) -> None:
    """With weight 1 on the local line, F(h) - level = slope h: each band end is
    F + s q S(h), S from the formula above (worked here), and wider than without the move."""
    state = cut_state(act, d_cut=10.0)
    slope, s = state.line_slope, state.direction
    d = 10.0 * np.exp(np.linspace(0.0, 2.0, 9))
    h = np.log(d / 10.0)
    plain = ForecastModel({"line": 1.0}, 0.0, {"*": {"kappa": KAPPA}}, SCORES)
    moved = ForecastModel({"line": 1.0}, 0.0, {"*": {"kappa": KAPPA}}, SCORES, move=MOVE_SCALE)
    q_lo, q_hi = moved.quantiles(state.tau_cut, activation=act)
    f = state.line_intercept + slope * np.log(d)
    S = np.sqrt(state.sigma**2 + (KAPPA * h) ** 2 + (MOVE_SCALE * slope * h) ** 2)
    ends = np.sort(np.vstack([f + s * q_lo * S, f + s * q_hi * S]), axis=0)
    b = moved.band(state, d)
    assert b["estimate"] == pytest.approx(f, abs=1e-12)
    assert b["low"] == pytest.approx(ends[0], abs=1e-12)
    assert b["high"] == pytest.approx(ends[1], abs=1e-12)
    b0 = plain.band(state, d)
    width, width0 = b["high"] - b["low"], b0["high"] - b0["low"]
    assert width[0] == pytest.approx(width0[0], abs=1e-15)  # no move yet at the cut
    assert np.all(width[1:] > width0[1:])


@settings(max_examples=30, deadline=None)
@given(act=st.sampled_from(["relu", "silu"]), d_cut=st.floats(0.5, 100.0), hmax=st.floats(0.01, 6.0),
       spread=st.floats(0.1, 20.0), mu=st.floats(0.0, 4.0))
def test_moved_bands_are_monotone_valid_and_hold_the_estimate(act: str, d_cut: float, hmax: float,
                                                              spread: float, mu: float) -> None:
    m = ForecastModel({"law": 0.5, "line": 0.5}, 0.0, {"*": {"kappa": 0.004}},
                      [(r, t, z * spread, w) for r, t, z, w in SCORES], move=mu)
    d = d_cut * np.exp(np.linspace(0.0, hmax, 12))
    assert_monotone_valid_band(m.band(cut_state(act, d_cut=d_cut, run="x"), d), act)


def test_the_model_scores_are_errors_in_the_moved_scale() -> None:
    """The scores a model stores (every forecast's band quantiles) are the calibrating rows'
    errors over the scale with the move, as selection scores them: recomputed here row by row
    from the table with :func:`error_scale`."""
    runs = simulate_study("silu_law", n_runs=3, n_points=14, seed=3)
    T = BacktestTable(runs)
    calib = np.ones(T.y.size, bool)
    amask = np.ones(len(T.analog_names), bool)
    choice = {"weights": {"line": 0.5, "pool": 0.5}, "beta": 0.0, "omega": 0.0, "by_activation": {},
              "move": MOVE_SCALE}
    model = model_for(T, calib, amask, choice)
    assert model.move == MOVE_SCALE
    C = T.candidates(amask, SMALLER_ONLY)
    f, _ = _forecast_rows(T, C, T.own_drift({k: T.y - C[k] for k in C}), choice)
    e = T.s * (T.y - f)
    kap = model.kappa.get("silu", model.kappa["*"])
    S = np.array([float(error_scale(T.sigma[i], T.h[i], kappa_at(kap, T.runs[T.row_run[i]].n_params), "additive",
                                    f[i] - T.unit_state[T.row_unit[i]].level, MOVE_SCALE))
                  for i in range(T.y.size)])
    z = np.array([sc[2] for sc in model.scores])
    assert z == pytest.approx(e / S, rel=1e-9, abs=1e-9)
    # and the move did matter somewhere: without it the scores differ
    z0 = np.array([sc[2] for sc in model_for(T, calib, amask, {**choice, "move": 0.0}).scores])
    assert np.max(np.abs(z0 - z)) > 1e-3


def test_the_move_survives_the_file_and_bad_ones_are_refused() -> None:
    m = ForecastModel({"last": 1.0}, 0.0, {"*": {"kappa": KAPPA}}, SCORES, move=0.5)
    d = m.to_dict()
    assert ForecastModel.from_dict(d).move == 0.5
    plain = ForecastModel({"last": 1.0}, 0.0, {"*": {"kappa": KAPPA}}, SCORES).to_dict()
    # files written before the move scale have no key and read as no move (their scores were
    # computed without it)
    assert "move" not in plain and ForecastModel.from_dict(plain).move == 0.0
    assert version_for({"models": {"a": d}}) == 6 == max(READABLE_VERSIONS)
    assert version_for({"models": {"a": plain}}) == 3
    for bad in (-0.5, math.nan, math.inf):
        with pytest.raises(LawSetError, match="move scale"):
            ForecastModel.from_dict({**d, "move": bad})


def test_the_packaged_default_leaves_the_move_out() -> None:
    """A law set's own calibration widens its bands with the projected move; the packaged
    default, which bands lone runs of recipes it never saw (no analog, their law projecting
    little), does not (docs/fitting.md, "The projected move"), and the shipped file says so."""
    import json
    from importlib import resources

    from sparsitylaws.runfit.calibration import DEFAULT_RESOURCE, calibrate_runs
    from sparsitylaws.runfit.packaged import default_model

    runs = simulate_study("relu_law", n_runs=3, n_points=12, seed=4) + simulate_study(
        "silu_law", n_runs=3, n_points=12, seed=5)
    own, *_ = calibrate_runs(runs)
    assert own.move == MOVE_SCALE
    default = default_model(runs)
    assert default.move == 0.0
    plain, *_ = calibrate_runs(runs, moves=(0.0,))
    assert [s[2] for s in default.scores] == pytest.approx([s[2] for s in plain.scores], abs=1e-12)
    assert [s[2] for s in default.scores] != pytest.approx([s[2] for s in own.scores], abs=1e-6)
    shipped = json.loads(resources.files("sparsitylaws.runfit").joinpath(DEFAULT_RESOURCE).read_text("utf-8"))
    assert "move" not in shipped["model"]
