"""The choice of forecast weights (runfit.selection.select), checked against a brute-force
computation from each run's own score: the soft choice (configurations within SOFTNESS of the
lowest mean score share it), one argmin at SOFTNESS 0, and the bagged choice (the average of
the argmins over Bayesian-bootstrap reweightings of the calibrating runs)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from forecast_helpers import sim_backtests

import sparsitylaws.runfit.selection as selection
from sparsitylaws.runfit.calibration import BacktestTable
from sparsitylaws.runfit.forecast import SMALLER_ONLY
from sparsitylaws.runfit.selection import (
    BETAS,
    OMEGAS,
    SOFTNESS,
    bag_weights,
    score_config,
    select,
    soft_weights,
    weight_grid,
)

NAMES = ("law", "line", "last")


@pytest.fixture(scope="module")
def table() -> BacktestTable:
    # runs that fall faster the larger they are (the law flattens too early), 16 points each:
    # the candidates are close, so the choice is uncertain
    return BacktestTable(sim_backtests(shift_big=0.001, n_runs=4, seed=3, points=16))


def _per_run_scores(T: BacktestTable) -> tuple[list[tuple[dict, float]], np.ndarray]:
    """Every configuration of the grid (weights over NAMES, beta) and its mean interval score on
    each run alone (score_config restricted to that run's rows; its band still from the others)."""
    calib = np.ones(T.y.size, bool)
    amask = np.ones(len(T.analog_names), bool)
    C = T.candidates(amask, SMALLER_ONLY, False)
    own = T.own_drift({k: T.y - C[k] for k in NAMES})
    grid = sorted(weight_grid(list(NAMES)), key=lambda w: sum(v > 0 for v in w.values()))
    configs = [(w, b) for b in BETAS for w in grid]
    runs = sorted(set(T.row_run.tolist()))
    P = np.array([[score_config(T, C, own, w, b, calib, omega=OMEGAS[0], score_rows=T.row_run == r, mu=0.0)
                   for r in runs] for w, b in configs])
    return configs, P


def test_bag_weights_are_fixed_points_of_the_simplex() -> None:
    W = bag_weights(5, 40)
    assert W.shape == (40, 5)
    assert np.allclose(W.sum(axis=1), 1.0, atol=1e-12) and (W > 0).all()
    assert np.array_equal(W, bag_weights(5, 40))  # a function of the data alone


def test_at_softness_zero_the_choice_is_the_argmin_of_the_mean_score(table: BacktestTable, monkeypatch) -> None:
    configs, P = _per_run_scores(table)
    best = int(np.argmin(P.mean(axis=1)))  # the first of the lowest: fewer candidates first
    monkeypatch.setattr(selection, "SOFTNESS", 0.0)
    ch = select(table, np.ones(table.y.size, bool), np.ones(len(table.analog_names), bool),
                names=NAMES, moves=(0.0,), bags=0)
    assert ch["weights"] == {k: v for k, v in configs[best][0].items() if v > 0}
    assert ch["beta"] == configs[best][1]
    assert ch["score"] == pytest.approx(P[best].mean(), rel=1e-9)


@pytest.mark.parametrize("softness", [SOFTNESS, 0.05])
def test_the_soft_choice_averages_the_configurations_near_the_lowest(table: BacktestTable, monkeypatch,
                                                                     softness: float) -> None:
    """By hand: each configuration weighs max(0, 1 - (mean - lowest) / (softness * lowest))."""
    configs, P = _per_run_scores(table)
    mean = P.mean(axis=1)
    lowest = mean.min()
    k = [max(0.0, 1.0 - (m - lowest) / (softness * lowest)) for m in mean]
    weights = {n: sum(k[i] * configs[i][0][n] for i in range(len(configs))) / sum(k) for n in NAMES}
    beta = sum(k[i] * configs[i][1] for i in range(len(configs))) / sum(k)
    monkeypatch.setattr(selection, "SOFTNESS", softness)
    ch = select(table, np.ones(table.y.size, bool), np.ones(len(table.analog_names), bool),
                names=NAMES, moves=(0.0,), bags=0)
    if softness > SOFTNESS:
        assert sum(v > 0 for v in k) > 1  # several configurations share the choice here
    for n in NAMES:
        assert ch["weights"].get(n, 0.0) == pytest.approx(weights[n], abs=1e-9), n  # stored to 1e-10
    assert ch["beta"] == pytest.approx(beta, abs=1e-9)
    assert ch["score"] == pytest.approx(lowest, rel=1e-9)


def test_soft_weights_are_the_argmin_where_the_lowest_leads_and_shared_on_a_tie() -> None:
    assert soft_weights([1.0, 1.0 + 2 * SOFTNESS, math.inf]).tolist() == [1.0, 0.0, 0.0]
    w = soft_weights([1.0, 1.0 + SOFTNESS / 2, 1.0])
    assert w == pytest.approx([0.4, 0.2, 0.4], abs=1e-12)
    assert soft_weights([2.0, 1.0], softness=0.0).tolist() == [0.0, 1.0]
    assert soft_weights([math.inf, math.inf]).tolist() == [1.0, 0.0]


def test_soft_weights_move_continuously_with_the_scores() -> None:
    """Property: scores moved by a relative 1e-9 move every weight by at most a few 1e-9 /
    SOFTNESS (one argmin would jump by 1 where two scores trade places)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.floats(0.01, 0.012), min_size=2, max_size=10), st.data())
    def check(scores: list[float], data) -> None:
        s = np.asarray(scores)
        e = np.asarray(data.draw(st.lists(st.floats(-1e-9, 1e-9), min_size=s.size, max_size=s.size)))
        moved = np.max(np.abs(soft_weights(s * (1 + e)) - soft_weights(s)))
        assert moved <= 4 * s.size * 1e-9 / SOFTNESS * s.max() / s.min()

    check()


def test_the_bagged_choice_averages_each_bags_argmin(table: BacktestTable) -> None:
    bags = 60
    configs, P = _per_run_scores(table)
    W = bag_weights(P.shape[1], bags)
    weights: dict[str, float] = {}
    beta = 0.0
    for b in range(bags):  # by hand: each bag's reweighted mean score, its lowest configuration
        scores = [sum(W[b, j] * P[i, j] for j in range(P.shape[1])) for i in range(len(configs))]
        win = min(range(len(configs)), key=lambda i: (scores[i], i))
        for k, v in configs[win][0].items():
            weights[k] = weights.get(k, 0.0) + v / bags
        beta += configs[win][1] / bags
    ch = select(table, np.ones(table.y.size, bool), np.ones(len(table.analog_names), bool),
                names=NAMES, moves=(0.0,), bags=bags)
    assert len({tuple(sorted(c[0].items())) + (c[1],) for c in ch["bagged"]}) > 1  # the choice is uncertain here
    got = ch["weights"]
    for k in NAMES:
        assert got.get(k, 0.0) == pytest.approx(weights.get(k, 0.0), abs=1e-9), k  # stored to 1e-10
    assert math.isclose(sum(got.values()), 1.0, abs_tol=1e-9)
    assert ch["beta"] == pytest.approx(beta, abs=1e-9)


def test_the_runner_up_and_its_margin_are_the_second_lowest_mean_score(table: BacktestTable) -> None:
    """`select` reports the next-best configuration and how far (relative) it lies behind: checked
    against each configuration's mean score computed run by run."""
    configs, P = _per_run_scores(table)
    mean = P.mean(axis=1)
    order = sorted(range(len(configs)), key=lambda i: (mean[i], i))
    best, second = order[0], order[1]
    ch = select(table, np.ones(table.y.size, bool), np.ones(len(table.analog_names), bool),
                names=NAMES, moves=(0.0,), bags=0)
    assert ch["margin"] == pytest.approx((mean[second] - mean[best]) / mean[best], rel=1e-6, abs=1e-12)
    ru = ch["runner_up"]
    assert ru["weights"] == {k: v for k, v in configs[second][0].items() if v > 0}
    assert ru["beta"] == configs[second][1]
    # the stake: the largest difference between the two configurations' backtest forecasts
    assert math.isfinite(ru["stake"]) and ru["stake"] >= 0.0
    if ru["weights"] != ch["weights"] or ru["beta"] != ch["beta"]:
        assert ru["stake"] > 0.0


def test_runner_up_is_absent_without_a_second_finite_score() -> None:
    from sparsitylaws.runfit.selection import runner_up

    configs = [({"last": 1.0}, 0.0), ({"line": 1.0}, 0.0)]
    assert runner_up(configs, np.array([0.02, math.inf]), 0) == {}
    got = runner_up(configs, np.array([0.02, 0.021]), 0)
    assert got["margin"] == pytest.approx(0.05, rel=1e-12)
    assert got["runner_up"] == {"weights": {"line": 1.0}, "beta": 0.0}  # no forecasts given: no stake
    f = {"last": np.array([0.10, 0.20]), "line": np.array([0.10, 0.23])}
    got = runner_up(configs, np.array([0.02, 0.021]), 0, lambda c: f[next(iter(c[0]))])
    assert got["runner_up"]["stake"] == pytest.approx(0.03, abs=1e-12)


def test_runner_up_is_the_lowest_of_the_others_over_wide_inputs() -> None:
    """Property: for any scores (some infinite), the runner-up is the lowest finite score other
    than the chosen one's and its margin is non-negative when the chosen one is the lowest."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from sparsitylaws.runfit.selection import runner_up

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.one_of(st.floats(1e-6, 1e3), st.just(math.inf)), min_size=1, max_size=12))
    def check(scores: list[float]) -> None:
        mean = np.asarray(scores)
        best = int(np.argmin(mean))
        configs = [({"c": 1.0}, float(i)) for i in range(mean.size)]  # beta carries the index
        got = runner_up(configs, mean, best)
        others = [i for i in range(mean.size) if i != best and math.isfinite(mean[i])]
        if not others or not math.isfinite(mean[best]):
            assert got == {}
            return
        j = int(got["runner_up"]["beta"])
        assert j != best and mean[j] == min(mean[i] for i in others)
        assert got["margin"] >= 0.0
        assert got["margin"] == pytest.approx((mean[j] - mean[best]) / mean[best], rel=1e-12)

    check()
