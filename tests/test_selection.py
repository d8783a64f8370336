"""Form comparison (AICc/BIC, Akaike weights) and backtests."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparsitylaws.runfit.backtest import (
    backtest,
    backtest_summary,
    compare_forms,
    information_criteria,
)
from sparsitylaws.runfit.forms import FORMS, get_form

SILU = np.array([0.84, 0.208, 0.39])
RELU = np.array([0.45, -3.05, 0.286, 0.0674])


def _data(form: str, theta: np.ndarray, sd: float, seed: int, n: int = 32, dmax: float = 90.0):
    rng = np.random.default_rng(seed)
    D = dmax * np.arange(1, n + 1) / n
    return D, get_form(form).evaluate(D, theta) + sd * rng.standard_normal(n)


def test_information_criteria_match_gaussian_likelihood() -> None:
    """Independent: -2 log L at the MLE sigma^2 = RSS/n, plus the usual penalties."""
    rss, n, k = 3.7e-5, 31, 4
    p = k + 1
    m2ll = n * math.log(2 * math.pi * rss / n) + n
    const = n * (math.log(2 * math.pi) + 1)  # dropped by information_criteria
    ic = information_criteria(rss, n, k)
    assert ic["aic"] == pytest.approx(m2ll + 2 * p - const, rel=1e-12)
    assert ic["aicc"] == pytest.approx(m2ll + 2 * p + 2 * p * (p + 1) / (n - p - 1) - const, rel=1e-12)
    assert ic["bic"] == pytest.approx(m2ll + p * math.log(n) - const, rel=1e-12)
    assert information_criteria(1e-5, 5, 4)["aicc"] is None
    assert information_criteria(0.0, 10, 2)["aic"] is None


def test_compare_forms_ranks_and_weights() -> None:
    D, y = _data("convergent_power", SILU, 8e-4, 0)
    rows = compare_forms(D, y)
    assert {r["form"] for r in rows} == set(FORMS)
    assert all(r["n"] == D.size for r in rows)  # the same points for every form
    aicc = [r["aicc"] for r in rows]
    assert aicc == sorted(aicc)
    assert rows[0]["delta_aicc"] == 0.0
    assert sum(r["akaike_weight"] for r in rows) == pytest.approx(1.0)
    assert rows[0]["form"] == "convergent_power" and rows[0]["akaike_weight"] > 0.9
    for r in rows:  # each row's criteria recomputed independently from its RSS
        ic = information_criteria(r["rss"], r["n"], r["k"])
        assert r["aicc"] == pytest.approx(ic["aicc"]) and r["bic"] == pytest.approx(ic["bic"])


def test_compare_forms_prefers_relu_law_on_relu_data() -> None:
    D, y = _data("logspace_power", RELU, 3e-4, 1, n=40, dmax=145.0)
    rows = compare_forms(D, y, forms=["logspace_power", "convergent_power", "log", "constant"])
    assert rows[0]["form"] == "logspace_power"


def test_compare_forms_reuses_given_rss() -> None:
    D, y = _data("convergent_power", SILU, 8e-4, 2)
    rows = compare_forms(D, y, forms=["convergent_power"], given={"convergent_power": 1.0})
    assert rows[0]["rss"] == 1.0


def test_backtest_rows_and_summary() -> None:
    D, y = _data("convergent_power", SILU, 8e-4, 3, n=30)
    rows = backtest(D, y, "convergent_power", n_boot=200, seed=0)
    assert {r["cutoff"] for r in rows} == {0.3, 0.5, 0.7}
    for r in rows:
        t_cut = D.min() + r["cutoff"] * (D.max() - D.min())
        assert r["tokens_b"] > t_cut == pytest.approx(r["cutoff_tokens_b"])
        assert r["n_train"] + r["n_dropped"] == int(np.sum(t_cut >= D))
        assert r["error"] == pytest.approx(r["predicted"] - r["measured"])
        assert r["covered"] == (r["pred_low"] <= r["measured"] <= r["pred_high"])
        assert r["law_low"] <= r["predicted"] <= r["law_high"]
    # every held-out point appears once per cutoff
    for f in (0.3, 0.5, 0.7):
        held = [r["index"] for r in rows if r["cutoff"] == f]
        t_cut = D.min() + f * (D.max() - D.min())
        assert held == list(np.flatnonzero(t_cut < D))
    summ = backtest_summary(rows)
    assert [s["cutoff"] for s in summ] == [0.3, 0.5, 0.7]
    for s in summ:
        rs = [r for r in rows if r["cutoff"] == s["cutoff"]]
        assert s["n_heldout"] == len(rs)
        assert s["coverage"] == pytest.approx(np.mean([r["covered"] for r in rs]))
        assert s["last_error"] == rs[-1]["error"]


def test_backtest_prediction_intervals_cover_on_simulated_runs() -> None:
    """On curves that follow the law, about 90% of held-out points fall in the 90% band."""
    covered = []
    for seed in range(12):
        D, y = _data("convergent_power", SILU, 8e-4, 100 + seed, n=30)
        covered += [r["covered"] for r in backtest(D, y, "convergent_power", cutoffs=(0.7,), n_boot=300,
                                                   seed=seed)]
    assert 0.75 <= np.mean(covered) <= 0.99


def test_backtest_does_not_see_the_future() -> None:
    """Changing held-out values leaves the predictions unchanged."""
    D, y = _data("convergent_power", SILU, 8e-4, 4, n=30)
    a = backtest(D, y, "convergent_power", cutoffs=(0.5,), n_boot=100)
    y2 = y.copy()
    y2[D.min() + 0.5 * (D.max() - D.min()) < D] += 0.05
    b = backtest(D, y2, "convergent_power", cutoffs=(0.5,), n_boot=100)
    assert [r["predicted"] for r in a] == [r["predicted"] for r in b]
    assert [r["pred_low"] for r in a] == [r["pred_low"] for r in b]
