"""Form comparison (AICc/BIC, Akaike weights) and backtests."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparsitylaws.runfit.backtest import (
    backtest,
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


def test_backtest_rows() -> None:
    D, y = _data("convergent_power", SILU, 8e-4, 3, n=30)
    rows = backtest(D, y, "convergent_power", run="r", activation="silu", cutoffs=(0.3, 0.5, 0.7))
    assert {r["cutoff"] for r in rows} == {0.3, 0.5, 0.7}
    for r in rows:
        t_cut = D.min() + r["cutoff"] * (D.max() - D.min())
        assert r["tokens_b"] > t_cut >= r["d_cut"]
        assert r["horizon"] == pytest.approx(np.log(r["tokens_b"] / r["d_cut"]))
        assert r["cand_last"] == y[np.flatnonzero(t_cut >= D)[-1]]
    # every held-out point appears once per cutoff, and the first row of each cut carries its state
    for f in (0.3, 0.5, 0.7):
        rs = [r for r in rows if r["cutoff"] == f]
        t_cut = D.min() + f * (D.max() - D.min())
        assert [r["index"] for r in rs] == list(np.flatnonzero(t_cut < D))
        assert rs[0]["state"] is not None and all(r["state"] is None for r in rs[1:])


def test_backtest_law_matches_a_fit_of_the_earlier_points() -> None:
    """The law candidate is the law fitted (warm-up average included) to the points before
    the cut alone: an independent fit_run on them gives the same forecasts."""
    from sparsitylaws.runfit.run import fit_run

    D, y = _data("convergent_power", SILU, 8e-4, 5, n=30)
    rows = backtest(D, y, "convergent_power", run="r", activation="silu", cutoffs=(0.5,))
    t_cut = D.min() + 0.5 * (D.max() - D.min())
    rf = fit_run(D[t_cut >= D] * 1e9, y[t_cut >= D], run="r", activation="silu", n_boot=0, compare=False,
                 backtest=False)
    law = rf.predict(D[t_cut < D] * 1e9)["law_estimate"].to_numpy()
    np.testing.assert_allclose([r["cand_law"] for r in rows], law, rtol=1e-6)


def test_backtest_does_not_see_the_future() -> None:
    """Changing held-out values leaves every forecast made at the cut unchanged."""
    D, y = _data("convergent_power", SILU, 8e-4, 4, n=30)
    a = backtest(D, y, "convergent_power", run="r", activation="silu", cutoffs=(0.5,))
    y2 = y.copy()
    y2[D.min() + 0.5 * (D.max() - D.min()) < D] += 0.05
    b = backtest(D, y2, "convergent_power", run="r", activation="silu", cutoffs=(0.5,))
    for k in ("cand_law", "cand_line", "cand_last", "sigma"):
        assert [r[k] for r in a] == [r[k] for r in b]


def test_forms_are_compared_on_the_headline_fits_warm_up_weights() -> None:
    """Every form in a run's comparison is fitted and charged on the headline fit's warm-up
    weights (a form charged for warm-up points the law's fit down-weights would lose to the law
    for that alone), by maximum likelihood (no prior: AICc is defined at the maximum, and the
    law's binding prior once cost it RSS the 3-parameter forms did not pay).  Each row's RSS
    equals a refit of that form with the fit's weights (the lower RSS of the fit without the
    prior and the MAP fit), and n is their sum."""
    from sparsitylaws.runfit.pointfit import fit_points_fast
    from sparsitylaws.runfit.run import fit_run

    D, y = _data("logspace_power", RELU, 2e-4, seed=5, n=24)
    y[:3] += np.array([0.08, 0.05, 0.03])  # a warm-up far off the law
    rf = fit_run(D * 1e9, y, run="w", activation="relu", n_boot=0, backtest=False)
    w = np.asarray(rf.extra["warmup_average"]["inclusion"], float)
    assert w[:3].max() < 0.5 and w[-1] == 1.0
    rows = {r["form"]: r for r in rf.comparison}
    for name in ("convergent_power", "power_offset", "sigmoid", "logspace_power"):
        ml = fit_points_fast(name, D, y, incl=w, prior=None)
        ref = min(ml.rss, fit_points_fast(name, D, y, incl=w, prior="auto").rss)
        assert rows[name]["n"] == pytest.approx(float(np.sum(w)), rel=1e-6)
        assert rows[name]["rss"] == pytest.approx(ref, rel=1e-6)
        assert rows[name]["rss"] <= ml.rss * (1 + 1e-9)  # at least as good as the plain maximum
        assert rows[name]["rss"] < float(np.sum((get_form(name).evaluate(D, ml.theta) - y) ** 2))
