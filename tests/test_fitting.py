"""Fitting: optimum against scipy, bounds, warm-up average, robust loss, weights, diagnostics, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import curve_fit

from sparsitylaws.errors import FitInputError
from sparsitylaws.runfit.forms import get_form
from sparsitylaws.runfit.pointfit import (
    fit_points,
    fit_points_fast,
    fit_subsets,
    lm_batch,
)
from sparsitylaws.runfit.run import fit_run
from sparsitylaws.runfit.warmup import PI_FULL, PI_MIN, fit_weights, select_points, warmup_average

RELU = np.array([0.45, -3.05, 0.286, 0.0674])
SILU = np.array([0.84, 0.208, 0.39])


def relu_f(d, alpha, b, c, a0):
    return np.exp(-c * d**alpha + b) + a0


def silu_f(d, alpha, c, a0):
    return -c * d ** (-alpha) + a0


def data(form: str, theta: np.ndarray, n: int = 30, dmax: float = 90.0, sd: float = 3e-4, seed: int = 0):
    rng = np.random.default_rng(seed)
    D = dmax * np.arange(1, n + 1) / n
    return D, get_form(form).evaluate(D, theta) + sd * rng.standard_normal(n)


@pytest.mark.parametrize("form,theta,f", [("logspace_power", RELU, relu_f), ("convergent_power", SILU, silu_f)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_optimum_matches_scipy_curve_fit(form, theta, f, seed) -> None:
    """Independent check: scipy's curve_fit started at the truth finds no lower RSS than our
    plain least-squares fit; with the prior (the default, a MAP fit) the RSS is within 0.01% of
    it on data that identify every parameter, and the limit within a tenth of its se."""
    D, y = data(form, theta, seed=seed)
    pf = fit_points(form, D, y, prior=None)
    p, _ = curve_fit(f, D, y, p0=theta, maxfev=20000)
    rss_scipy = float(np.sum((f(D, *p) - y) ** 2))
    assert pf.rss <= rss_scipy * (1 + 1e-6)
    if get_form(form).in_bounds(p):  # same optimum, same place
        np.testing.assert_allclose(pf.rss, rss_scipy, rtol=1e-5)
    assert pf.converged
    mp = fit_points(form, D, y)
    assert mp.prior is not None and mp.converged
    assert mp.rss <= rss_scipy * (1 + 1e-4)
    assert abs(mp.theta[-1] - p[-1]) <= 0.1 * pf.se[-1]


def test_noiseless_recovery() -> None:
    D, y = data("convergent_power", SILU, sd=0.0)
    pf = fit_points("convergent_power", D, y)
    np.testing.assert_allclose(pf.theta, SILU, rtol=1e-6)


def test_lm_batch_rows_are_independent_fits() -> None:
    """Batched rows equal one-at-a-time fits (same x, different y)."""
    form = get_form("convergent_power")
    D, y0 = data("convergent_power", SILU, seed=3)
    rng = np.random.default_rng(4)
    Y = y0 + 5e-4 * rng.standard_normal((5, D.size))
    u0 = form.to_unconstrained(SILU)
    batch = lm_batch(form, D, Y, np.repeat(u0[None], 5, axis=0))
    for i in range(5):
        one = lm_batch(form, D, Y[i], u0[None])
        np.testing.assert_allclose(batch.cost[i], one.cost[0], rtol=1e-9)
        p, _ = curve_fit(silu_f, D, Y[i], p0=SILU, maxfev=20000)
        np.testing.assert_allclose(2 * batch.cost[i], np.sum((silu_f(D, *p) - Y[i]) ** 2), rtol=1e-6)


def test_fit_subsets_equals_separate_fits() -> None:
    D, y = data("logspace_power", RELU, seed=5)
    masks = [np.arange(D.size) >= 1, np.arange(D.size) >= 3]
    for mk, pf in zip(masks, fit_subsets("logspace_power", D, y, masks), strict=True):
        ref = fit_points_fast("logspace_power", D[mk], y[mk])
        np.testing.assert_allclose(pf.rss, ref.rss, rtol=1e-7)


def test_lm_batch_reports_nonconvergence() -> None:
    form = get_form("logspace_power")
    D, y = data("logspace_power", RELU)
    res = lm_batch(form, D, y, form.to_unconstrained(form.starting_points(D, y)), max_iter=1)
    assert not res.converged.any()


def test_bounds_hold_where_naive_least_squares_goes_negative() -> None:
    """Data whose unconstrained best fit has A0 < 0: our fit stays at A0 >= 0 and says so."""
    rng = np.random.default_rng(3)
    D = np.linspace(1, 100, 30)
    y = 0.1 * D**-0.3 - 0.01 + 2e-4 * rng.standard_normal(30)
    naive, _ = curve_fit(lambda d, a, c, a0: c * d**-a + a0, D, y, p0=[0.3, 0.1, 0.0])
    assert naive[2] < 0  # the trap is real
    pf = fit_points("power_offset", D, y)
    assert 0.0 <= pf.theta[2] < 1.0
    assert pf.form.in_bounds(pf.theta) or pf.theta[2] < 1e-6
    codes = {(w.code, w.parameter) for w in pf.warnings}
    # the prior keeps A0 a hair inside the bound: at or near it, flagged either way
    assert codes & {("param_at_bound", "A0"), ("param_near_bound", "A0")}


def test_multistart_report() -> None:
    D, y = data("logspace_power", RELU, seed=7)
    pf = fit_points("logspace_power", D, y)
    ms = pf.multistart
    assert ms.n_starts == len(get_form("logspace_power").starting_points(D, y))
    assert 1 <= ms.n_at_best <= ms.n_near_optimal <= ms.n_starts
    assert set(ms.max_spread) == {"alpha", "b", "c", "A0"}
    assert all(v >= 0 for v in ms.max_spread.values())


def test_robust_loss_resists_an_outlier() -> None:
    D, y = data("convergent_power", SILU, sd=5e-4, seed=11)
    y[20] += 0.03  # one wild checkpoint
    lin = fit_points("convergent_power", D, y, loss="linear")
    rob = fit_points("convergent_power", D, y, loss="soft_l1")
    hub = fit_points("convergent_power", D, y, loss="huber")
    err = lambda t: abs(t[2] - SILU[2])  # noqa: E731
    assert err(rob.theta) < err(lin.theta)
    assert err(hub.theta) < err(lin.theta)


def test_weights_match_curve_fit_sigma() -> None:
    D, y = data("convergent_power", SILU, seed=12)
    se = np.linspace(2e-4, 2e-3, D.size)
    pf = fit_points("convergent_power", D, y, se=se)
    p, pcov = curve_fit(silu_f, D, y, p0=SILU, sigma=se, maxfev=20000)
    np.testing.assert_allclose(pf.theta, p, rtol=1e-5)
    # covariance scaled like absolute_sigma=False: same standard errors
    np.testing.assert_allclose(pf.se, np.sqrt(np.diag(pcov)), rtol=1e-3)


def test_standard_errors_match_curve_fit() -> None:
    D, y = data("convergent_power", SILU, seed=13, sd=8e-4)
    pf = fit_points("convergent_power", D, y)
    _, pcov = curve_fit(silu_f, D, y, p0=SILU, maxfev=20000)
    np.testing.assert_allclose(pf.se, np.sqrt(np.diag(pcov)), rtol=1e-3)


# ----------------------------------------------------------------------------- warm-up


def test_warmup_average_weights_injected_warmup_down_and_clean_curves_up() -> None:
    """Rates over 20 simulated curves: clean curves keep (nearly) full weight on every point; a
    3-point warm-up far off the law (> 15 sd) gets weight ~0 and the points after it ~1."""
    clean, found = [], []
    for seed in range(20):
        D, y = data("convergent_power", SILU, n=32, sd=8e-4, seed=100 + seed)
        clean.append(warmup_average("convergent_power", D, y).inclusion[:10].min())
        yw = y.copy()
        yw[:3] -= [0.03, 0.02, 0.015]  # warm-up checkpoints sit well below the law (> 15 sd)
        incl = warmup_average("convergent_power", D, yw).inclusion
        found.append(incl[:3].max() < 0.01 and incl[5:].min() > 0.9)
    assert np.mean(np.array(clean) > 0.5) >= 0.9
    assert np.mean(found) >= 0.9


def test_warmup_average_is_capped_at_a_third() -> None:
    D, y = data("convergent_power", SILU, n=30, sd=8e-4, seed=5)
    y[:20] -= 0.05  # nonsense: most of the run off the law
    wa = warmup_average("convergent_power", D, y)
    assert wa.cuts[-1] == 10 and np.all(wa.inclusion[10:] == 1.0)
    assert np.all(np.diff(wa.inclusion) >= 0) and abs(wa.weights.sum() - 1) < 1e-12


def test_warmup_weights_match_a_brute_force_posterior() -> None:
    """Independent computation: each warm-up length's MAP fit by scipy's least_squares (the
    same prior's pseudo-residuals), its log-likelihood written out, normalized by hand."""
    from scipy.optimize import least_squares

    from sparsitylaws.runfit.pointfit import make_prior, rescale

    D, y = data("convergent_power", SILU, n=18, sd=2e-3, seed=3)
    y[:2] -= [0.02, 0.008]
    wa = warmup_average("convergent_power", D, y)
    form = get_form("convergent_power")
    R = np.ptp(y)
    ll = []
    for c in wa.cuts:
        Dc, yc = D[c:], y[c:]
        pr = make_prior(form, Dc, yc)
        best = None
        for _ in range(2):  # the prior's noise scale follows the fit's residual sd
            def f(u, pr=pr, Dc=Dc, yc=yc):
                return np.r_[form.evaluate(Dc, form.from_unconstrained(u)) - yc, pr.residuals(u[None])[0]]
            starts = form.to_unconstrained(form.starting_points(Dc, yc))
            best = min((least_squares(f, s, xtol=1e-14, ftol=1e-14, gtol=1e-14) for s in starts),
                       key=lambda r: r.cost)
            r = form.evaluate(Dc, form.from_unconstrained(best.x)) - yc
            pr = rescale(pr, float(np.sqrt(np.sum(r**2) / (Dc.size - 3))))
        r = form.evaluate(Dc, form.from_unconstrained(best.x)) - yc
        s2 = np.mean(r**2)
        ll.append(-0.5 * Dc.size * (np.log(2 * np.pi * s2) + 1) - c * np.log(R))
    w = np.exp(np.array(ll) - max(ll))
    w /= w.sum()
    np.testing.assert_allclose(wa.weights, w, atol=1e-3)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), bump=st.floats(0.0, 0.03))
def test_warmup_weights_move_continuously(seed: int, bump: float) -> None:
    """A perturbation 1/100 of the noise moves no inclusion weight by more than 0.05."""
    D, y = data("convergent_power", SILU, n=20, sd=2e-3, seed=seed)
    y[:2] -= bump
    a = warmup_average("convergent_power", D, y).inclusion
    eps = np.random.default_rng(seed).normal(0, 2e-5, y.size)
    b = warmup_average("convergent_power", D, y + eps).inclusion
    assert np.max(np.abs(a - b)) < 0.05


@settings(max_examples=200, deadline=None)
@given(p=st.floats(0.0, 1.0), dp=st.floats(-1e-6, 1e-6))
def test_fit_weights_taper_continuously_from_the_cut(p: float, dp: float) -> None:
    """A warm-up probability's weight in the fit: 0 below PI_MIN, the probability itself from
    PI_FULL on, within [0, p] and Lipschitz in between (a slope of at most 1 + 1/ln(10), the
    ramp p * log10(p / PI_MIN) differentiated), so no weight jumps at the cut."""
    q = min(max(p + dp, 0.0), 1.0)
    w, v = fit_weights(np.array([p, q]))
    assert 0.0 <= w <= p
    if p < PI_MIN:
        assert w == 0.0
    if p >= PI_FULL:
        assert w == pytest.approx(p, rel=1e-12)
    assert abs(w - v) <= (1.0 + 1.0 / np.log(PI_FULL / PI_MIN)) * abs(p - q) + 1e-15


def test_a_warmup_point_crossing_the_cut_moves_the_limit_continuously() -> None:
    """Raise a ReLU run's first point step by step (0.0001) so that its probability of lying
    past the warm-up crosses PI_MIN: the limit moves by less than 5e-6 per step.  A hard cut at
    PI_MIN (the point out of the fit below it, in at its full probability above) moved it
    3e-5 in one step here, and 0.33 points on a lab-cpu run (tests/test_stability.py)."""
    rng = np.random.default_rng(3)
    D = np.geomspace(1, 100, 14)
    y0 = relu_f(D, 0.4, 0.5, 0.9, 0.1) + rng.normal(0, 0.002, D.size)
    probs, limits = [], []
    for bump in np.linspace(0.028, 0.032, 41):
        y = y0.copy()
        y[0] += bump
        probs.append(select_points("logspace_power", D, y).weight[0])
        rf = fit_run(D * 1e9, y, run="sweep", activation="relu", n_boot=0, compare=False, backtest=False)
        limits.append(rf.limit()["estimate"])
    assert max(probs) > PI_MIN > min(probs)  # the sweep does cross the cut
    assert np.max(np.abs(np.diff(limits))) < 5e-6


def test_manual_overrides() -> None:
    D, y = data("convergent_power", SILU)
    sel = select_points("convergent_power", D, y, drop_first=4)
    assert sel.n_dropped == 4 and not sel.keep[:4].any() and sel.keep[4:].all()
    assert "drop_first=4" in sel.rule and all("drop_first" in d["reason"] for d in sel.dropped)
    sel = select_points("convergent_power", D, y, min_tokens=10.0)
    assert np.array_equal(sel.keep, D >= 10.0)
    sel = select_points("convergent_power", D, y, drop_first=0)
    assert sel.n_dropped == 0
    with pytest.raises(FitInputError, match="drop_first"):
        select_points("convergent_power", D, y, drop_first=-1)


def test_fit_run_overrides_use_raw_tokens() -> None:
    D, y = data("convergent_power", SILU)
    rf = fit_run(D * 1e9, y, run="r", activation="silu", min_tokens=20e9, n_boot=50,
                 compare=False, backtest=False)
    assert rf.n_points == int(np.sum(D >= 20.0))
    assert all(d["tokens"] < 20e9 for d in rf.dropped)
    assert rf.tokens_b_min >= 20.0


# ----------------------------------------------------------------------------- diagnostics


def test_few_points_warning_and_fewer_points_error() -> None:
    D, y = data("convergent_power", SILU, n=5)
    pf = fit_points("convergent_power", D, y, run="tiny")
    assert "few_points" in {w.code for w in pf.warnings}
    with pytest.raises(FitInputError, match="'tiny'.*2 points are fewer than the 3 parameters"):
        fit_points("convergent_power", D[:2], y[:2], run="tiny")
    with pytest.raises(FitInputError, match="run 'tiny2'.*fewer than the 4 parameters"):
        fit_run(D[:3] * 1e9, y[:3], run="tiny2", activation="relu")


def test_well_conditioned_fit_has_no_conditioning_warning() -> None:
    well = fit_points("convergent_power", *data("convergent_power", SILU))
    assert "ill_conditioned" not in {w.code for w in well.warnings}
    assert well.cond < 1e8


def test_ill_conditioned_fires_on_degenerate_fit() -> None:
    rng = np.random.default_rng(3)
    D = np.linspace(1, 100, 30)
    y = 0.1 * D**-0.3 - 0.01 + 2e-4 * rng.standard_normal(30)
    pf = fit_points("power_offset", D, y, prior=None)  # A0 pinned at 0: its direction is flat
    # the flat direction is flagged: as ill-conditioned, or (with the analytic Jacobian, whose
    # tiny A0 column the correlation scaling does not call singular) as a parameter at its bound
    assert {"ill_conditioned", "param_at_bound"} & {w.code for w in pf.warnings}
    # with the prior the direction is held by it, and the bound is still flagged
    assert "param_near_bound" in {w.code for w in fit_points("power_offset", D, y).warnings}


@pytest.mark.parametrize(
    "tokens,ratio,match",
    [
        ([1e9, 2e9, np.nan, 4e9, 5e9], [0.3] * 5, "'tokens' has a non-finite value"),
        ([1e9, 2e9, 3e9, 4e9, 5e9], [0.3, 0.3, np.nan, 0.3, 0.3], "'ratio' has a non-finite value"),
        ([1e9, 2e9, 3e9, np.inf, 5e9], [0.3] * 5, "'tokens' has a non-finite value"),
        ([0.0, 2e9, 3e9, 4e9, 5e9], [0.3] * 5, "'tokens' must be > 0"),
        ([-1e9, 2e9, 3e9, 4e9, 5e9], [0.3] * 5, "'tokens' must be > 0"),
        ([1e9, 2e9, 3e9, 4e9, 5e9], [0.3, 1.2, 0.3, 0.3, 0.3], r"'ratio' must lie in \[0, 1\]"),
        ([1e9, 2e9, 3e9], [0.3, 0.3], "equal length"),
    ],
)
def test_bad_input_raises_fit_input_error(tokens, ratio, match) -> None:
    with pytest.raises(FitInputError, match=match) as err:
        fit_run(tokens, ratio, run="bad", activation="silu")
    assert "'bad'" in str(err.value) and "\n" not in str(err.value)


def test_unknown_form_and_loss_and_se() -> None:
    D, y = data("convergent_power", SILU)
    with pytest.raises(FitInputError, match="unknown law form 'cubic'.*convergent_power"):
        fit_run(D * 1e9, y, run="r", activation="silu", form="cubic")
    with pytest.raises(FitInputError, match="unknown loss 'l3'"):
        fit_run(D * 1e9, y, run="r", activation="silu", loss="l3")
    with pytest.raises(FitInputError, match="'se' must be finite and > 0"):
        fit_run(D * 1e9, y, run="r", activation="silu", se=np.zeros(D.size))
    with pytest.raises(FitInputError, match="'level'"):
        fit_run(D * 1e9, y, run="r", activation="silu", level=1.5)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(["logspace_power", "convergent_power", "power_offset"]),
       seed=st.integers(0, 10_000), scale=st.floats(0.01, 1.5))
def test_analytic_jacobians_match_central_differences(name: str, seed: int, scale: float) -> None:
    """The forms' analytic d A / d u (used by every fit) against central differences, over a
    wide range of parameters around the published ones."""
    from sparsitylaws.runfit import pointfit

    form = get_form(name)
    base = {"logspace_power": RELU, "convergent_power": SILU, "power_offset": np.array([0.3, 0.1, 0.05])}[name]
    rng = np.random.default_rng(seed)
    U = form.to_unconstrained(base)[None] + scale * rng.standard_normal((2, form.n_params))
    D = np.geomspace(0.01, 200.0, 30)
    Ja = form.jacobian_u(D, U)
    saved = form._jac_u
    object.__setattr__(form, "_jac_u", None)
    try:
        Jn = pointfit._jacobian(form, D, U, np.ones(D.size))
    finally:
        object.__setattr__(form, "_jac_u", saved)
    ok = np.isfinite(Jn) & np.isfinite(Ja)
    assert ok.mean() > 0.99
    np.testing.assert_allclose(Ja[ok], Jn[ok], rtol=1e-4, atol=1e-7 * np.max(np.abs(Jn[ok])))


def test_extra_starts_join_the_forms_own_and_nonfinite_ones_are_ignored():
    """``fit_points_fast(starts=)``: a start at a known optimum can only help (the cost of the
    fit is no higher than without it, and it lands there), and a start with a non-finite entry
    is dropped rather than poisoning the batch (the result equals the fit without it)."""
    form = get_form("logspace_power")
    rng = np.random.default_rng(3)
    D = np.geomspace(0.5, 200.0, 24)
    y = form.evaluate(D, np.array([0.4, -1.0, 2.0, 0.08])) + rng.normal(0, 2e-4, D.size)
    plain = fit_points_fast(form, D, y)
    nan = fit_points_fast(form, D, y, starts=np.full(form.n_params, np.nan))
    np.testing.assert_array_equal(nan.theta, plain.theta)
    seeded = fit_points_fast(form, D, y, starts=plain.u)
    assert seeded.rss <= plain.rss * (1 + 1e-9)
    np.testing.assert_allclose(seeded.theta, plain.theta, rtol=1e-4, atol=1e-6)
