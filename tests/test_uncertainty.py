"""Uncertainty: delta method vs independent formulas, block bootstrap mechanics, bands, calibration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import curve_fit

from sparsitylaws.paper import TABLE2
from sparsitylaws.runfit.forms import get_form
from sparsitylaws.runfit.pointfit import fit_points, t_quantile
from sparsitylaws.runfit.run import fit_run
from sparsitylaws.runfit.uncertainty import (
    _block_indices,
    block_length,
    bootstrap,
    curve_bands,
    delta_intervals,
    percentile_intervals,
)

SILU = np.array([0.84, 0.208, 0.39])


def silu_data(seed: int = 0, n: int = 30, sd: float = 8e-4):
    rng = np.random.default_rng(seed)
    D = 90.0 * np.arange(1, n + 1) / n
    return D, get_form("convergent_power").evaluate(D, SILU) + sd * rng.standard_normal(n)


def test_delta_interval_of_unbounded_parameter_is_wald_t() -> None:
    """For an unbounded parameter the interval is estimate +- t * se (se from curve_fit)."""
    form = get_form("sigmoid")  # c and d are unbounded
    D, y = silu_data(1)
    pf = fit_points(form, D, y)
    _, pcov = curve_fit(lambda d, a, c, dd: a - 1.0 / (1.0 + np.exp(c * d + dd)), D, y, p0=pf.theta,
                        maxfev=20000)
    lo, hi = delta_intervals(pf, 0.9)
    q = stats.t.ppf(0.95, D.size - 3)
    for j in (1, 2):
        se = np.sqrt(pcov[j, j])
        np.testing.assert_allclose([lo[j], hi[j]], [pf.theta[j] - q * se, pf.theta[j] + q * se], rtol=1e-3)


def test_delta_interval_of_positive_parameter_is_lognormal() -> None:
    D, y = silu_data(2)
    pf = fit_points("convergent_power", D, y)
    lo, hi = delta_intervals(pf, 0.9)
    q = t_quantile(0.9, pf.dof)
    a = pf.theta[0]
    se_log = pf.se[0] / a
    np.testing.assert_allclose([lo[0], hi[0]], [a * np.exp(-q * se_log), a * np.exp(q * se_log)], rtol=1e-10)
    assert np.all(lo > 0) and lo[2] > 0 and hi[2] < 1


def test_block_indices_are_circular_blocks() -> None:
    rng = np.random.default_rng(0)
    idx = _block_indices(rng, 10, 200, 3)
    assert idx.shape == (200, 10) and idx.min() >= 0 and idx.max() <= 9
    for row in idx:
        for s in (0, 3, 6):  # each block is consecutive modulo n
            blk = row[s:s + 3]
            assert np.all(np.diff(blk) % 10 == 1)
    assert block_length(27) == 3 and block_length(8) == 2 and block_length(1) == 1


def test_bootstrap_reproducible_and_sized() -> None:
    D, y = silu_data(3)
    pf = fit_points("convergent_power", D, y)
    a = bootstrap(pf, 300, seed=5)
    b = bootstrap(pf, 300, seed=5)
    c = bootstrap(pf, 300, seed=6)
    assert np.array_equal(a.draws, b.draws) and not np.array_equal(a.draws, c.draws)
    assert a.draws.shape[0] + a.n_failed == 300 and a.draws.shape[1] == 3
    assert a.block_length == block_length(D.size)


def test_bootstrap_refits_match_single_fits() -> None:
    """Each replicate is a full refit: rebuilding one replicate's data and fitting it alone (by
    scipy's least_squares, with the original fit's prior: a bootstrap keeps its prior) agrees."""
    from scipy.optimize import least_squares

    D, y = silu_data(4)
    pf = fit_points("convergent_power", D, y)
    assert pf.prior is not None
    bs = bootstrap(pf, 20, seed=9)
    fitted = pf.form.evaluate(D, pf.theta)
    e = (y - fitted - np.mean(y - fitted)) * np.sqrt(D.size / (D.size - 3))
    idx = _block_indices(np.random.default_rng(9), D.size, 20, bs.block_length)
    form = pf.form
    for i in (0, 7, 19):
        yi = fitted + e[idx[i]]

        def f(u, yi=yi):
            return np.r_[form.evaluate(D, form.from_unconstrained(u)) - yi, pf.prior.residuals(u[None])[0]]

        ref = least_squares(f, pf.u, xtol=1e-15, ftol=1e-15, gtol=1e-15)
        np.testing.assert_allclose(bs.draws[i], form.from_unconstrained(ref.x), rtol=1e-5)


def test_bootstrap_se_close_to_delta_se_on_a_nearly_linear_problem() -> None:
    D, y = silu_data(5, n=40, sd=2e-4)
    pf = fit_points("convergent_power", D, y)
    bs = bootstrap(pf, 1000, seed=0)
    np.testing.assert_allclose(bs.draws.std(axis=0), pf.se, rtol=0.25)


def test_curve_bands_nest_and_delta_matches_gradient() -> None:
    D, y = silu_data(6)
    pf = fit_points("convergent_power", D, y)
    Dn = np.array([5.0, 50.0, 180.0, 1000.0])
    bs = bootstrap(pf, 500, seed=1)
    for draws in (bs.draws, None):
        b = curve_bands(pf.form, Dn, pf.theta, level=0.9, sigma=pf.sigma, dof=pf.dof, draws=draws, cov_u=pf.cov_u)
        assert np.all(b["pred_low"] <= b["conf_low"]) and np.all(b["conf_high"] <= b["pred_high"])
        assert np.all(b["pred_high"] - b["pred_low"] >= 2 * t_quantile(0.9, pf.dof) * pf.sigma - 1e-15)
    # delta band: independent gradient in natural parameters with curve_fit's covariance
    _, pcov = curve_fit(lambda d, a, c, a0: -c * d ** (-a) + a0, D, y, p0=pf.theta, maxfev=20000)
    a, c, _ = pf.theta
    g = np.stack([c * Dn ** (-a) * np.log(Dn), -(Dn ** (-a)), np.ones_like(Dn)], axis=1)
    se = np.sqrt(np.einsum("ni,ij,nj->n", g, pcov, g))
    b = curve_bands(pf.form, Dn, pf.theta, level=0.9, sigma=pf.sigma, dof=pf.dof, cov_u=pf.cov_u)
    np.testing.assert_allclose(b["conf_high"] - b["estimate"], t_quantile(0.9, pf.dof) * se, rtol=2e-3)


def test_percentile_intervals() -> None:
    draws = np.arange(1001, dtype=float)[:, None] * np.array([1.0, -1.0])
    lo, hi = percentile_intervals(draws, 0.9)
    np.testing.assert_allclose(lo, [50.0, -950.0])
    np.testing.assert_allclose(hi, [950.0, -50.0])


# ----------------------------------------------------------------------------- calibration

#: Simulation design: the paper's published coefficients (Table 2) at the released scales,
#: checkpoints equally spaced up to about the released runs' token budgets, 25-40 points,
#: Gaussian AR(1) noise with rho = 0.1 (the released runs' residual lag-1 autocorrelations
#: span -0.26..0.20), sd near the released fits' residual sd.  The 0.1B ReLU coefficients
#: (alpha = 0.1, next to the alpha -> 0 edge of the law) are NOT calibrated: intervals
#: there under-cover badly (docs/fitting.md); test_weakly_identified_relu_is_flagged checks
#: that such fits at least carry a warning.
SIM_SCALES = {"relu": [("0.2b", 85), ("0.4b", 145), ("0.8b", 272)],
              "silu": [("0.1b", 42), ("0.2b", 93), ("0.4b", 145), ("0.8b", 193)]}
SIM_SD = {"relu": 3e-4, "silu": 8e-4}
SIM_RHO = 0.1


def _simulate(rng: np.random.Generator, act: str, i: int, scales: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    form = get_form("logspace_power" if act == "relu" else "convergent_power")
    scales = scales or SIM_SCALES
    scale, dmax = scales[act][i % len(scales[act])]
    theta = np.array([TABLE2[(act, scale)][p] for p in form.param_names])
    n = int(rng.integers(25, 41))
    D = dmax * np.arange(1, n + 1) / n
    e = np.empty(n)
    e[0] = rng.standard_normal()
    for j in range(1, n):
        e[j] = SIM_RHO * e[j - 1] + np.sqrt(1 - SIM_RHO**2) * rng.standard_normal()
    return D, form.evaluate(D, theta) + SIM_SD[act] * e, theta


@pytest.mark.parametrize("act", ["relu", "silu"])
def test_calibration_of_90_percent_intervals(act: str) -> None:
    """60 data sets per law (120 in all, equally spaced grids, AR(1) rho = 0.1): true parameters
    (the reported intervals: bootstrap, profile likelihood for A0) and the true curve at 2x the
    last token count (the law's own band, ``law_*``, minus point noise is not separable, so the
    bootstrap confidence band via curve_bands) fall inside the 90% intervals 80%-97% of the time.
    The published-grid calibration with rho up to 0.3 is tests/test_simcal.py."""
    rng = np.random.default_rng(20241104 if act == "relu" else 20241105)
    form = get_form("logspace_power" if act == "relu" else "convergent_power")
    hits = []
    for i in range(60):
        D, y, theta = _simulate(rng, act, i)
        rf = fit_run(D * 1e9, y, run=f"sim{i}", activation=act, seed=i, n_boot=300, compare=False,
                     backtest=False)
        d2 = 2 * D[-1]
        true2 = form.evaluate([d2], theta)[0]
        b = curve_bands(form, [d2], np.array(rf.estimate), level=0.9, sigma=rf.noise_sd, dof=rf.dof,
                        draws=np.array(rf.boot_draws))
        hits.append(np.r_[(np.array(rf.boot_low) <= theta) & (theta <= np.array(rf.boot_high)),
                          b["conf_low"][0] <= true2 <= b["conf_high"][0]])
    cov = np.mean(hits, axis=0)
    print(f"{act} coverage:", dict(zip([*form.param_names, "A(2x last)"], cov, strict=True)))
    assert np.all((cov >= 0.80) & (cov <= 0.97)), cov


def test_weakly_identified_relu_is_flagged() -> None:
    """Fits in the 0.1B ReLU regime (alpha ~ 0.1) sit next to the alpha -> 0 edge; most must warn."""
    rng = np.random.default_rng(7)
    flagged = []
    for i in range(20):
        D, y, _ = _simulate(rng, "relu", i, scales={"relu": [("0.1b", 42)]})
        rf = fit_run(D * 1e9, y, run=f"weak{i}", activation="relu", compare=False, backtest=False)
        flagged.append(any(w["code"] in ("param_near_bound", "param_at_bound", "weakly_identified")
                           and w["parameter"] == "alpha" for w in rf.warnings))
    print("weakly identified ReLU fits flagged:", np.mean(flagged))
    assert np.mean(flagged) >= 0.75


def test_failed_replicates_count_as_unbounded_on_their_side() -> None:
    from sparsitylaws.runfit.uncertainty import BootstrapResult

    draws = np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0], [9.0, 1.0]])
    bs = BootstrapResult(draws, 4, 1, 1, 0, failed=np.array([False, False, False, True]),
                         center=np.array([2.0, 6.0]))
    d = bs.interval_draws()
    assert d[3, 0] == np.inf and d[3, 1] == -np.inf and np.array_equal(d[:3], draws[:3])
    lo, hi = percentile_intervals(d, 0.5)
    assert hi[0] == np.inf or hi[0] >= 3.0
    lo, hi = percentile_intervals(d, 0.99)
    assert hi[0] == np.inf and lo[1] == -np.inf


def test_bootstrap_keeps_every_replicate() -> None:
    """Nothing is dropped: every replicate with finite parameters is in the draws."""
    D, y = silu_data(3)
    pf = fit_points("convergent_power", D, y)
    bs = bootstrap(pf, 300, seed=5)
    assert bs.draws.shape[0] == 300 and bs.failed.shape == (300,)


def test_profile_interval_matches_brute_force() -> None:
    """Profile interval of A0 (SiLU law) against a brute-force profile: A0 fixed on a fine grid,
    the other parameters fitted by scipy curve_fit, the same F cut-off."""
    from sparsitylaws.runfit.uncertainty import profile_interval

    D, y = silu_data(7, n=25, sd=1.5e-3)
    pf = fit_points("convergent_power", D, y)
    lo, hi, _ = profile_interval(pf, 2, 0.9)
    grid = np.linspace(pf.theta[2] - 0.02, pf.theta[2] + 0.02, 801)
    prof = []
    for a0 in grid:
        p, _ = curve_fit(lambda d, al, c, a0=a0: -c * d ** (-al) + a0, D, y, p0=pf.theta[:2], maxfev=20000)
        prof.append(np.sum((-p[1] * D ** (-p[0]) + a0 - y) ** 2))
    prof = np.array(prof)
    cut = pf.rss * (1 + stats.f.ppf(0.9, 1, D.size - 3) / (D.size - 3))
    inside = grid[prof <= cut]
    print(f"profile [{lo:.5f}, {hi:.5f}] brute force [{inside.min():.5f}, {inside.max():.5f}]")
    step = grid[1] - grid[0]
    assert abs(lo - inside.min()) < 0.05 * (hi - lo) + step
    assert abs(hi - inside.max()) < 0.05 * (hi - lo) + step
    # the profile interval is close to the Wald interval on this nearly linear problem
    dlo, dhi = delta_intervals(pf, 0.9)
    assert (hi - lo) == pytest.approx(dhi[2] - dlo[2], rel=0.2)
