"""The other activation's calibration scores in a band: weighted by ``cross``, chosen nested.

A band for a SiLU run is calibrated on the normalized errors of every calibrating run; where
ReLU's errors lean one way (its curves keep falling) they shape SiLU's band too.  ``cross``
weights the other activation's scores (1 pooled, 0 apart), chosen leave one run out on the
activation's own runs like ``beta``.  Checked here by hand (the quantile with and without the
other activation's rows), for agreement between the table's quantiles (selection, the naive
bands) and the model's (every forecast), for the choice, and for the file format.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from forecast_helpers import assert_monotone_valid_band, cut_state
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsitylaws.errors import LawSetError
from sparsitylaws.lawset.fileformat import READABLE_VERSIONS, version_for
from sparsitylaws.runfit.backtesttable import BacktestTable
from sparsitylaws.runfit.forecast import ForecastModel, weighted_quantile
from sparsitylaws.runfit.selection import SMALLER_ONLY, _unit_quantiles, model_for, select_cross
from sparsitylaws.runfit.simulate import simulate_study

KAPPA = {"*": {"kappa": 1.0}}


def _scores() -> tuple[list, dict]:
    """Three ReLU runs whose errors all lean up (+2 .. +4), three SiLU runs centred on 0."""
    sc, act = [], {}
    for i in range(3):
        for z in np.linspace(2.0, 4.0, 11) + 0.1 * i:
            sc.append((f"r{i}", 50.0, float(z), 1.0 / 11))
        act[f"r{i}"] = "relu"
        for z in np.linspace(-1.0, 1.0, 7) + 0.05 * i:
            sc.append((f"s{i}", 50.0, float(z), 1.0 / 7))
        act[f"s{i}"] = "silu"
    return sc, act


def _miss(n_eff: float, level: float = 0.9) -> float:
    return (1 - level) / 2 * n_eff / (n_eff + 1)


def test_cross_weight_by_hand() -> None:
    sc, act = _scores()
    z = np.array([s[2] for s in sc])
    w = np.array([s[3] for s in sc])
    silu = np.array([act[s[0]] == "silu" for s in sc])
    for lam in (0.0, 0.5):
        m = ForecastModel({"last": 1.0}, 0.0, KAPPA, sc, cross={"silu": lam}, score_activation=act)
        ww = np.where(silu, w, lam * w)
        # effective number of runs: three of weight 1, three of weight lam
        n_eff = (3 + 3 * lam) ** 2 / (3 + 3 * lam**2)
        lo, hi = m.quantiles(math.nan, activation="silu")
        assert lo == pytest.approx(weighted_quantile(z, ww, _miss(n_eff)), abs=1e-12)
        assert hi == pytest.approx(weighted_quantile(z, ww, 1 - _miss(n_eff)), abs=1e-12)
        # ReLU has no cross weight of its own: its band pools every score, as without cross
        pooled = ForecastModel({"last": 1.0}, 0.0, KAPPA, sc)
        assert m.quantiles(math.nan, activation="relu") == pooled.quantiles(math.nan)
    apart = ForecastModel({"last": 1.0}, 0.0, KAPPA, sc, cross={"silu": 0.0}, score_activation=act)
    lo, hi = apart.quantiles(math.nan, activation="silu")
    assert hi < 2.0  # no ReLU score reaches SiLU's band
    assert ForecastModel({"last": 1.0}, 0.0, KAPPA, sc).quantiles(math.nan)[1] > 3.0


def test_cross_weights_survive_the_file_and_bad_ones_are_refused() -> None:
    sc, act = _scores()
    m = ForecastModel({"last": 1.0}, 0.0, KAPPA, sc, cross={"silu": 0.5}, score_activation=act)
    d = m.to_dict()
    back = ForecastModel.from_dict(d)
    assert back.cross == {"silu": 0.5} and back.score_activation == act
    # scores are stored to 1e-6 (weights to 1e-9)
    assert back.quantiles(40.0, activation="silu") == pytest.approx(m.quantiles(40.0, activation="silu"), abs=1e-5)
    # a model without cross writes neither key (files without it read as before)
    plain = ForecastModel({"last": 1.0}, 0.0, KAPPA, sc).to_dict()
    assert "cross" not in plain and "score_activation" not in plain
    assert version_for({"models": {"a": d}}) == 5 == max(READABLE_VERSIONS) - 1
    assert version_for({"models": {"a": plain}}) == 3
    with pytest.raises(LawSetError, match="outside"):
        ForecastModel.from_dict({**d, "cross": {"silu": 1.5}})
    with pytest.raises(LawSetError, match="no activation"):
        ForecastModel.from_dict({**d, "score_activation": {k: v for k, v in act.items() if k != "r1"}})


@pytest.fixture(scope="module")
def mixed() -> list:
    """A study of three ReLU and three SiLU sizes (each family the law, its own noise)."""
    return (simulate_study("relu_law", n_runs=3, n_points=14, seed=1)
            + simulate_study("silu_law", n_runs=3, n_points=14, seed=2))


def _scatter(runs: list, act: str, scale: float, seed: int = 0) -> list:
    """The runs of ``act`` with every point past a cut moved by heavy-tailed (Cauchy) errors
    growing with the horizon: forecasts of that activation whose misses are wild."""
    from sparsitylaws.runfit.calibration import RunBacktest

    rng = np.random.default_rng(seed)
    out = []
    for r in runs:
        if r.activation != act:
            out.append(r)
            continue
        rows = [{**x, "measured": float(np.clip(x["measured"] + scale * x["horizon"] * rng.standard_cauchy(), 0, 1))}
                for x in r.rows]
        out.append(RunBacktest(r.run, r.activation, r.n_params, rows, r.curve))
    return out


CHOICE = {"weights": {"last": 1.0}, "beta": 0.0, "omega": 1.0, "by_activation": {}}


@pytest.mark.parametrize("lam", [0.0, 0.5, 1.0])
def test_the_table_and_the_model_band_alike(mixed: list, lam: float) -> None:
    """Selection and the naive bands take quantiles from the table (:func:`_unit_quantiles`),
    every forecast from the model: with any cross weight they agree for every unit."""
    T = BacktestTable(mixed)
    calib = np.ones(T.y.size, bool)
    amask = np.ones(len(T.analog_names), bool)
    model = model_for(T, calib, amask, {**CHOICE, "cross": {"silu": lam} if lam != 1 else {}})
    # the model's scores are the calibrating rows in table order (all of them, here)
    assert len(model.scores) == T.y.size
    assert [sc[0] for sc in model.scores] == [T.names[r] for r in T.row_run]
    z = np.array([sc[2] for sc in model.scores])
    units = np.arange(len(T.unit_state))
    lo, hi = _unit_quantiles(T, z, calib, units, 0.9, loro=False, cross=model.cross)
    for u in units:
        act = T.runs[T.unit_run[u]].activation
        qlo, qhi = model.quantiles(float(T.unit_tau[u]), None, 0.9, act)
        assert lo[u] == pytest.approx(qlo, abs=1e-9) and hi[u] == pytest.approx(qhi, abs=1e-9)


def test_a_leaning_activation_stays_out_of_the_others_bands(mixed: list) -> None:
    """With the ReLU runs' forecasts missing wildly (heavy-tailed errors), weighing ReLU's
    scores 0 in SiLU's bands scores best on the SiLU runs (and, so weighted, the SiLU bands no
    longer move with the ReLU runs' measurements); pooled, they do."""
    T = BacktestTable(_scatter(mixed, "relu", 0.01))
    calib = np.ones(T.y.size, bool)
    amask = np.ones(len(T.analog_names), bool)
    silu = T.row_act == "silu"
    C = T.candidates(amask, SMALLER_ONLY)
    own = T.own_drift({k: T.y - C[k] for k in C})
    assert select_cross(T, calib, C, own, CHOICE, silu) == 0.0
    T0 = BacktestTable(mixed)
    for lam, moves in ((0.0, False), (1.0, True)):
        cross = {"silu": lam}
        q = [model_for(t, calib, amask, {**CHOICE, "cross": cross}).quantiles(50.0, None, 0.9, "silu")
             for t in (T0, T)]
        assert (q[0] != pytest.approx(q[1], abs=1e-9)) == moves


@settings(max_examples=30, deadline=None)
@given(lam=st.sampled_from([0.0, 0.5, 1.0]), act=st.sampled_from(["relu", "silu"]),
       d_cut=st.floats(0.5, 100.0), hmax=st.floats(0.01, 4.0), spread=st.floats(0.1, 20.0))
def test_weighted_bands_are_monotone_valid_and_hold_the_estimate(lam: float, act: str, d_cut: float,
                                                                 hmax: float, spread: float) -> None:
    sc, acts = _scores()
    sc = [(r, t, z * spread, w) for r, t, z, w in sc]
    m = ForecastModel({"law": 0.5, "last": 0.5}, 0.0, {"*": {"kappa": 0.004}}, sc,
                      cross={act: lam}, score_activation=acts)
    state = cut_state(act, d_cut=d_cut, run="x")
    d = d_cut * np.exp(np.linspace(0.0, hmax, 12))
    b = m.band(state, d)
    assert_monotone_valid_band(b, act)


def test_fit_names_each_weight_below_one() -> None:
    """``fit -v`` says, per activation, how much the other activation's backtests weigh in its
    bands wherever the law set's model holds a weight below 1 (lab-gpu's does: its ReLU runs)."""
    from pathlib import Path

    from sparsitylaws.cli.fit import render_text
    from sparsitylaws.lawset.fileformat import load_lawset

    ls = load_lawset(Path(__file__).resolve().parents[1] / "measurements" / "lab-gpu.laws.json")
    groups = ls.provenance["forecast_calibration"]["groups"]
    named = [(g, a, lam) for g, d in groups.items() for a, lam in (d.get("cross") or {}).items()]
    assert named, "lab-gpu's model weights no activation's bands: this test checks nothing"
    text = render_text(ls).splitlines()
    for g, a, lam in named:
        line = [x for x in text if x.startswith(f"forecasts of {g} {a}:")]
        assert len(line) == 1 and line[0].endswith(f"the other activation's backtests weigh {lam:g} in its bands")
        assert ls.forecast["models"][g]["cross"][a] == lam


def test_a_band_with_none_of_its_own_runs_left_pools() -> None:
    """Leaving out the only calibrating run of the activation must not leave an empty sample:
    the band then pools every score, as with weight 1."""
    sc, act = _scores()
    sc = [s for s in sc if s[0] in ("r0", "r1", "r2", "s0")]
    m = ForecastModel({"last": 1.0}, 0.0, KAPPA, sc, cross={"silu": 0.0}, score_activation=act)
    pooled = ForecastModel({"last": 1.0}, 0.0, KAPPA, sc)
    lo, hi = m.quantiles(math.nan, exclude="s0", activation="silu")
    assert math.isfinite(lo) and math.isfinite(hi)
    assert (lo, hi) == pooled.quantiles(math.nan, exclude="s0")


def test_the_packaged_default_pools_both_activations(mixed: list) -> None:
    """The packaged default bands runs of recipes it never saw, so it keeps no cross weight:
    where a law set's own calibration weighs the other activation below 1 (the ReLU runs' misses
    wild), the default built from the same runs pools, its SiLU quantiles those of weight 1;
    the shipped file holds none."""
    import json
    from importlib import resources

    from sparsitylaws.runfit.calibration import DEFAULT_RESOURCE, calibrate_runs
    from sparsitylaws.runfit.packaged import default_model

    runs = _scatter(mixed, "relu", 0.01)
    # the default's scale leaves the projected move out (tests/test_move_scale.py): compared
    # here with a law set's own calibration of the same scale
    own, *_ = calibrate_runs(runs, moves=(0.0,))
    assert own.cross_for("silu") < 1.0
    default = default_model(runs)
    assert default.cross == {} and default.cross_for("silu") == 1.0
    pooled = dataclasses.replace(own, cross={}, score_activation={})
    for tau in (10.0, 50.0, 200.0):
        assert default.quantiles(tau, None, 0.9, "silu") == pytest.approx(pooled.quantiles(tau, None, 0.9, "silu"), abs=1e-12)
        assert default.quantiles(tau, None, 0.9, "silu") != pytest.approx(own.quantiles(tau, None, 0.9, "silu"), abs=1e-9)
    shipped = json.loads(resources.files("sparsitylaws.runfit").joinpath(DEFAULT_RESOURCE).read_text("utf-8"))
    assert "cross" not in shipped["model"]
