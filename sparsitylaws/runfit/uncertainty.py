"""Uncertainty of a fitted law: parameter intervals and bands for A(D) at new D.

* :func:`delta_intervals` - Wald intervals in the unconstrained parameterization (t quantile,
  n - k degrees of freedom) mapped back through the log/logit transforms, so they respect
  the physical bounds and are asymmetric near them.
* :func:`bootstrap` - moving-block *residual* bootstrap for one training curve (circular
  blocks of residuals; with an AR(1) sieve when the residuals are autocorrelated: blocks of
  whitened innovations filtered back; fixed design D), residuals centred and inflated by
  sqrt(n / (n - k)).  All replicates are refitted at once by the batched Levenberg-Marquardt
  solver of :mod:`sparsitylaws.runfit.lmbatch`, warm-started at the best fit, with the same loss.
  No replicate is dropped: those that neither converge nor stall are refitted from several
  starts with more iterations, and what still fails counts as unbounded on the side it ran to,
  i.e. as reaching that parameter's bound there (:meth:`BootstrapResult.interval_draws`).
  Replicates whose cost has settled while the parameters drift along a flat valley are kept
  and counted as ``n_stalled``.  Expanded percentile intervals.  Why this bootstrap: docs/fitting.md.
* :func:`profile_interval` - profile-likelihood interval of one parameter (the limit A0), with
  an AR(1) variance factor and effective degrees of freedom (:func:`ar_inflation`).
* :func:`curve_bands` - the confidence band (parameter uncertainty only: where the true
  curve lies) and the prediction band (plus point noise: where a new measured checkpoint
  lies) at new D.  With bootstrap draws the confidence band is the percentile band of the
  curves of the draws; without, the delta-method band.  The prediction band adds the noise
  sd sigma in quadrature to each side's half-width: half = sqrt(conf_half^2 + (t*sigma)^2).
  Bootstrap bands use the same expanded percentile level as the parameter intervals.

Everything here is deterministic given its inputs (the bootstrap given its seed), which is
what makes saved fits reproduce predictions bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from sparsitylaws.runfit.forms import LawForm
from sparsitylaws.runfit.pointfit import PointFit, curve_gradient_u, lm_batch, t_quantile

__all__ = [
    "BOOTSTRAP_METHOD",
    "BootstrapResult",
    "block_length",
    "bootstrap",
    "clip_to_bounds",
    "curve_bands",
    "delta_intervals",
    "expanded_level",
    "parameter_bounds",
    "percentile_intervals",
    "profile_interval",
]

BOOTSTRAP_METHOD = "block residual bootstrap (AR(1) sieve, refits, none dropped), expanded percentile"


@dataclass
class BootstrapResult:
    """Bootstrap draws of the natural parameters and what it took to get them.

    ``draws`` holds every replicate with finite parameters: converged, stalled, and the last
    iterate of those that still failed after the refits (their curves are valid laws).
    ``failed`` marks the latter; :meth:`interval_draws` counts them as unbounded on the side
    they ran to, so a failure can only widen an interval.
    """

    draws: np.ndarray  # (m, k)
    n_boot: int
    n_failed: int  # failed even after the refits
    block_length: int
    seed: int
    n_stalled: int = 0  # kept: fit settled while parameters drift along a flat valley
    method: str = BOOTSTRAP_METHOD
    n_refit: int = 0  # replicates that needed the refit stage
    failed: np.ndarray | None = None  # (m,) bool
    center: np.ndarray | None = None  # point estimate (side of each failure)
    lower: np.ndarray | None = None  # (k,) the parameters' physical bounds (default: unbounded)
    upper: np.ndarray | None = None

    def interval_draws(self) -> np.ndarray:
        """Draws for parameter intervals: failed replicates at the parameter's bound on their
        side of the estimate ("unbounded" reaches the bound: A0 in [0, 1] stops at 0 or 1);
        +-inf only where the parameter itself is unbounded on that side."""
        out = np.array(self.draws, dtype=float)
        if self.failed is not None and self.failed.any() and self.center is not None:
            k = out.shape[1]
            lo = np.full(k, -np.inf) if self.lower is None else np.asarray(self.lower, float)
            hi = np.full(k, np.inf) if self.upper is None else np.asarray(self.upper, float)
            bad = out[self.failed]
            out[self.failed] = np.where(bad >= self.center[None, :], hi[None, :], lo[None, :])
        return out


def parameter_bounds(form: LawForm) -> tuple[np.ndarray, np.ndarray]:
    """The physical bounds of each parameter of ``form`` (+-inf where unbounded)."""
    return (np.array([p.lower for p in form.parameters], float),
            np.array([p.upper for p in form.parameters], float))


def clip_to_bounds(form: LawForm, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intervals [lo, hi] cut at the parameters' physical bounds (an end beyond a bound, e.g.
    -inf for A0, means the interval reaches it); NaN (no interval) stays NaN."""
    blo, bhi = parameter_bounds(form)
    return np.maximum(np.asarray(lo, float), blo), np.minimum(np.asarray(hi, float), bhi)


def delta_intervals(pf: PointFit, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Delta-method (Wald) intervals, one per parameter, bounds respected.

    Each parameter's interval is built on its own bound transform g (log for positive, logit
    for an open interval, identity when unbounded): g(theta) +- t * |g'(theta)| * se(theta),
    mapped back with g^-1, so it never leaves the physical range.
    """
    q = t_quantile(level, pf.dof)
    lo, hi = np.empty(pf.k), np.empty(pf.k)
    for j, p in enumerate(pf.form.parameters):
        g = float(p.to_unconstrained(pf.theta[j]))
        slope = float(p.dnatural_du(g))  # d theta / d g
        se_g = pf.se[j] / abs(slope) if slope != 0 and np.isfinite(pf.se[j]) else np.inf
        a, b = p.from_unconstrained(g - q * se_g), p.from_unconstrained(g + q * se_g)
        lo[j], hi[j] = min(a, b), max(a, b)
    return lo, hi


def block_length(n: int) -> int:
    """Block length for the moving-block bootstrap: round(n^(1/3)), at least 1 (n=27 -> 3)."""
    return max(1, int(round(n ** (1.0 / 3.0))))


def _block_indices(rng: np.random.Generator, n: int, n_boot: int, length: int) -> np.ndarray:
    """Circular moving-block resampling indices, shape (n_boot, n)."""
    n_blocks = -(-n // length)
    starts = rng.integers(0, n, size=(n_boot, n_blocks))
    idx = (starts[:, :, None] + np.arange(length)[None, None, :]) % n
    return idx.reshape(n_boot, -1)[:, :n]


#: Refit stage for replicates that did not converge: iterations, and warm starts taken from
#: successful replicates (besides the replicate's own end point, the best fit and the form's
#: data-driven starting points).
REFIT_MAX_ITER = 400
REFIT_WARM = 2
REFIT_FORM_STARTS = 3
REFIT_STAGE1_ITER = 60


#: Largest lag-1 autocorrelation the profile interval is inflated for.
AR_MAX = 0.8


def ar_inflation(pf: PointFit) -> dict:
    """Lag-1 autocorrelation of the residuals (in token order), bias-corrected, clipped to
    [0, 0.8]; the long-run variance factor (1 + rho) / (1 - rho) of AR(1) errors (how much a
    *parameter's* variance grows: it widens the profile-likelihood cut-off); and the effective
    residual degrees of freedom of the *noise variance* estimate, (n_eff - k) (1 - rho^2) /
    (1 + rho^2) (the variance of a sample variance of AR(1) noise grows by (1 + rho^2) /
    (1 - rho^2), Bartlett 1946), floored at min(n_eff - k, 3) so one noisy autocorrelation
    estimate cannot collapse a short run's quantiles.  Bias: -(1 + 3 rho)/n for a sample
    autocorrelation (Marriott & Pope 1954) and about -k/n more for residuals of a k-parameter
    fit, so rho = r + (1 + 3 r + k) / n (unbiased at rho = 0 in simulation, docs/fitting.md).
    Residuals are weighted by sqrt(inclusion) (warm-up points count by their weight)."""
    order = np.argsort(pf.D, kind="stable")
    incl = np.ones(pf.n) if pf.incl is None else np.asarray(pf.incl, float)
    r = ((pf.y - pf.form.evaluate(pf.D, pf.theta)) * np.sqrt(incl))[order]
    den = float(np.sum(r**2))
    n = pf.n_eff
    raw = float(np.sum(r[1:] * r[:-1]) / den) if den > 0 and r.size > 2 else 0.0
    rho = float(np.clip(raw + (1 + 3 * raw + pf.k) / max(n, 1.0), 0.0, AR_MAX))
    v = (1 + rho) / (1 - rho)
    if pf.dof > 0:
        dof_eff = max(pf.dof * (1 - rho**2) / (1 + rho**2), min(pf.dof, 3.0))
    else:
        dof_eff = pf.dof
    return {"lag1": raw, "rho": rho, "variance_factor": v, "dof_eff": float(dof_eff)}


def bootstrap(pf: PointFit, n_boot: int = 1000, seed: int = 0, *, length: int | None = None,
              ar: bool = True) -> BootstrapResult:
    """Moving-block residual bootstrap of a fit; every replicate refitted (batched, robust loss kept).

    Replicates that neither converge nor stall in the first pass are refitted from several
    starts (their own end point, the best fit, successful replicates, the form's starting
    points for their data) with more iterations; the best end point is kept.  What still
    fails is kept and marked (see :class:`BootstrapResult`); nothing is dropped.
    """
    n, k = pf.n, pf.k
    lower, upper = parameter_bounds(pf.form)
    if n_boot <= 0 or pf.dof <= 0:
        return BootstrapResult(np.empty((0, k)), max(n_boot, 0), 0, 0, seed,
                               failed=np.zeros(0, bool), center=pf.theta, lower=lower, upper=upper)
    L = block_length(n) if length is None else int(length)
    fitted = pf.form.evaluate(pf.D, pf.theta)
    sw = pf.fit_sw
    e = (pf.y - fitted) * sw  # standardized residuals (weights applied)
    e = (e - e.mean()) * math.sqrt(pf.n_eff / pf.dof)
    rng = np.random.default_rng(seed)
    idx = _block_indices(rng, n, n_boot, L)
    rho = ar_inflation(pf)["rho"] if ar else 0.0
    if rho > 0:  # AR(1) sieve: resample innovations, filter them back (see docs/fitting.md)
        order = np.argsort(pf.D, kind="stable")
        es = e[order]
        w = np.r_[es[0] * math.sqrt(1 - rho**2), es[1:] - rho * es[:-1]]
        w = (w - w.mean()) * math.sqrt(np.var(es) * (1 - rho**2) / max(np.var(w), 1e-300))
        ws = w[idx]
        estar = np.empty_like(ws)
        estar[:, 0] = ws[:, 0] / math.sqrt(1 - rho**2)
        for j in range(1, n):
            estar[:, j] = rho * estar[:, j - 1] + ws[:, j]
        boot_e = np.empty_like(estar)
        boot_e[:, order] = estar
    else:
        boot_e = e[idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        Y = fitted[None, :] + np.where(sw[None, :] > 0, boot_e / sw[None, :], 0.0)
    U0 = np.repeat(pf.u[None, :], n_boot, axis=0)
    res = lm_batch(pf.form, pf.D, Y, U0, sw=sw, loss=pf.loss, f_scale=pf.f_scale, prior=pf.prior)
    U, cost = res.u.copy(), res.cost.copy()
    good = (res.converged | res.stalled) & np.isfinite(cost)
    stalled = res.stalled & ~res.converged
    bad = np.flatnonzero(~good)
    n_refit = int(bad.size)
    if bad.size:
        U, cost, good, stalled = _refit(pf, Y, U, cost, good, stalled, bad, rng)
    th = pf.form.from_unconstrained(U)
    finite = np.all(np.isfinite(th), axis=1)
    failed = ~good[finite]
    return BootstrapResult(th[finite], n_boot, int(np.sum(~good)), L, seed,
                           n_stalled=int(np.sum(stalled & good)), n_refit=n_refit, failed=failed,
                           center=np.asarray(pf.theta, float), lower=lower, upper=upper)


def _refit(pf: PointFit, Y: np.ndarray, U: np.ndarray, cost: np.ndarray, good: np.ndarray,
           stalled: np.ndarray, bad: np.ndarray, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Multi-start refit of replicates ``bad`` with more iterations (see :func:`bootstrap`)."""
    form = pf.form
    ok_rows = np.flatnonzero(good)
    starts_common = [pf.u[None, :]]
    if ok_rows.size:
        pick = rng.choice(ok_rows, size=min(REFIT_WARM, ok_rows.size), replace=False)
        starts_common.append(U[pick])
    common = np.vstack(starts_common)
    with np.errstate(all="ignore"):  # the form's data-driven starts, from the original data (once)
        fs = form.to_unconstrained(form.starting_points(pf.D, pf.y))
        fs = fs[np.all(np.isfinite(fs), axis=1)]
        curves = form.evaluate(pf.D, form.from_unconstrained(fs))
    rows_u, rows_y, owner = [], [], []
    for i in bad:
        st = [U[i][None, :], common]
        with np.errstate(all="ignore"):
            c0 = np.sum((curves - Y[i]) ** 2, axis=1)
        st.append(fs[np.argsort(np.where(np.isfinite(c0), c0, np.inf))[:REFIT_FORM_STARTS]])
        S = np.vstack(st)
        S = S[np.all(np.isfinite(S), axis=1)]
        rows_u.append(S)
        rows_y.append(np.repeat(Y[i][None, :], S.shape[0], axis=0))
        owner += [i] * S.shape[0]
    Ys = np.vstack(rows_y)
    # stage 1: every start, a normal budget; stage 2: the best start per replicate, a larger one
    res = lm_batch(form, pf.D, Ys, np.vstack(rows_u), sw=pf.fit_sw, loss=pf.loss, f_scale=pf.f_scale,
                   max_iter=REFIT_STAGE1_ITER, prior=pf.prior)
    owner_arr = np.asarray(owner)
    best_rows = []
    for i in bad:
        r = np.flatnonzero(owner_arr == i)
        ok = (res.converged[r] | res.stalled[r]) & np.isfinite(res.cost[r])
        cand = r[ok] if ok.any() else r
        best_rows.append(cand[int(np.argmin(res.cost[cand]))])
    best_rows = np.asarray(best_rows)
    done = (res.converged[best_rows] | res.stalled[best_rows]) & np.isfinite(res.cost[best_rows])
    u_b, c_b = res.u[best_rows].copy(), res.cost[best_rows].copy()
    conv_b, st_b = res.converged[best_rows].copy(), res.stalled[best_rows].copy()
    more = np.flatnonzero(~done)
    if more.size:
        r2 = lm_batch(form, pf.D, Ys[best_rows[more]], u_b[more], sw=pf.fit_sw, loss=pf.loss,
                      f_scale=pf.f_scale, max_iter=REFIT_MAX_ITER, prior=pf.prior)
        u_b[more], c_b[more], conv_b[more], st_b[more] = r2.u, r2.cost, r2.converged, r2.stalled
    for j, i in enumerate(bad):
        ok = bool((conv_b[j] or st_b[j]) and np.isfinite(c_b[j]))
        if ok or c_b[j] <= cost[i]:
            U[i], cost[i], good[i] = u_b[j], c_b[j], ok
            stalled[i] = bool(st_b[j] and not conv_b[j])
    return U, cost, good, stalled


def expanded_level(level: float, dof: int | None) -> float:
    """Percentile level that makes a bootstrap percentile interval as wide as a t interval.

    Hesterberg's "expanded percentile" interval (Hesterberg 2015, The American Statistician
    69(4)): percentile intervals are too narrow in small samples because they ignore the
    uncertainty of the noise scale; using the normal level whose quantile equals the
    Student-t quantile with ``dof`` degrees of freedom corrects that to first order.
    ``dof`` None or <= 0 leaves the level unchanged.
    """
    if dof is None or dof <= 0:
        return float(level)
    return float(2.0 * stats.norm.cdf(t_quantile(level, dof)) - 1.0)


def percentile_intervals(draws: np.ndarray, level: float = 0.9, dof: int | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Percentile intervals of each column of ``draws`` (NaN when there are no draws).

    With ``dof``, the expanded percentile interval (see :func:`expanded_level`).
    """
    a = (1.0 - expanded_level(level, dof)) / 2.0
    if draws.shape[0] == 0:
        k = draws.shape[1]
        return np.full(k, np.nan), np.full(k, np.nan)
    if np.all(np.isfinite(draws)):
        return np.quantile(draws, a, axis=0), np.quantile(draws, 1.0 - a, axis=0)
    # failed replicates sit at +-inf: no interpolation towards them (inf - inf)
    return (np.quantile(draws, a, axis=0, method="lower"),
            np.quantile(draws, 1.0 - a, axis=0, method="higher"))


#: Grid of the profile likelihood: points on each side of the estimate.
PROFILE_GRID = 24


def profile_interval(pf: PointFit, index: int, level: float = 0.9, *, lower: float | None = None,
                     upper: float | None = None, inflation: float = 1.0, dof: int | None = None
                     ) -> tuple[float, float, dict]:
    """Profile-likelihood interval of parameter ``index`` (natural scale), F cut-off.

    The parameter is fixed on a grid between the estimate and each bound of the search range
    (default: the parameter's physical bounds, or +-50 standard errors), the other parameters
    refitted (batched Levenberg-Marquardt from the best fit and the form's starting points);
    the interval holds every value whose profile RSS satisfies
    (RSS - RSS_min) / (RSS_min / (n - k)) <= F(level; 1, n - k) (Venzon & Moolgavkar 1988;
    Bates & Watts 1988, ch. 6), with linear interpolation between grid points.  ``inflation``
    multiplies the F quantile (a variance factor, e.g. (1 + rho) / (1 - rho) for AR(1) errors) and
    ``dof`` replaces its denominator degrees of freedom (effective ones under correlation).  Only for
    parameters whose unconstrained coordinate is their own (A0 in the paper's forms).
    Returns (low, high, info) where info has the grid and its profile RSS.
    """
    form, th, k = pf.form, np.asarray(pf.theta, float), pf.k
    p = form.parameters[index]
    if pf.dof <= 0:
        return math.nan, math.nan, {}
    se = float(pf.se[index]) if np.isfinite(pf.se[index]) and pf.se[index] > 0 else abs(th[index]) + 1e-3
    lo_b = p.lower if lower is None else lower
    hi_b = p.upper if upper is None else upper
    lo_b = max(lo_b, th[index] - 50 * se)
    hi_b = min(hi_b, th[index] + 50 * se)
    eps = 1e-9 * max(1.0, abs(hi_b - lo_b))
    s = np.linspace(0.0, 1.0, PROFILE_GRID + 1)[1:] ** 2
    grid = np.r_[th[index] - (th[index] - (lo_b + eps)) * s[::-1], th[index], th[index] + (hi_b - eps - th[index]) * s]
    starts = form.starting_points(pf.D, pf.y)
    base = np.vstack([th[None, :], starts])
    rows = np.repeat(base[None, :, :], grid.size, axis=0)  # (g, s, k)
    rows[:, :, index] = grid[:, None]
    U0 = form.to_unconstrained(rows.reshape(-1, k))
    fixed = np.zeros(k, bool)
    fixed[index] = True
    res = lm_batch(form, pf.D, pf.y, U0, sw=pf.fit_sw, loss="linear", fixed=fixed, max_iter=200,
                   prior=pf.prior)
    th_fit = form.from_unconstrained(res.u)
    r = form.evaluate(pf.D, th_fit) - pf.y[None, :]
    wrss = np.sum((r * pf.fit_sw[None, :]) ** 2, axis=1)
    if pf.prior is not None:  # the profile of the posterior: the prior's terms count too
        wrss = wrss + np.sum(pf.prior.residuals(res.u) ** 2, axis=1)
    wrss = np.where(np.isfinite(wrss), wrss, np.inf).reshape(grid.size, -1)
    prof = np.min(wrss, axis=1)
    base = float(pf.wrss) + (float(np.sum(pf.prior.residuals(pf.u[None, :]) ** 2))
                             if pf.prior is not None else 0.0)
    rss_min = min(base, float(np.min(prof)))
    dq = pf.dof if dof is None else float(dof)
    fq = stats.f.ppf(level, 1, dq) / pf.dof
    cut = rss_min * (1.0 + float(inflation) * fq)
    low, high = _profile_ends(grid, prof, cut, p, lo_b, hi_b, lower, upper)
    info = {"grid": grid.tolist(), "profile_rss": prof.tolist(), "cutoff_rss": cut, "inflation": float(inflation)}
    if inflation != 1.0:
        info["iid"] = list(_profile_ends(grid, prof, rss_min * (1.0 + fq), p, lo_b, hi_b, lower, upper))
    return low, high, info


def _profile_ends(grid: np.ndarray, prof: np.ndarray, cut: float, p, lo_b: float, hi_b: float,
                  lower: float | None, upper: float | None) -> tuple[float, float]:
    """Ends of the connected run of grid points around the estimate whose profile RSS <= cut."""
    inside = prof <= cut
    c = grid.size // 2
    i = c
    while i > 0 and inside[i - 1]:
        i -= 1
    j = c
    while j < grid.size - 1 and inside[j + 1]:
        j += 1
    low = grid[i] if i == 0 else _cross(grid[i - 1], grid[i], prof[i - 1], prof[i], cut)
    high = grid[j] if j == grid.size - 1 else _cross(grid[j], grid[j + 1], prof[j], prof[j + 1], cut)
    low = p.lower if i == 0 and lower is None and np.isfinite(p.lower) and lo_b == p.lower else low
    high = p.upper if j == grid.size - 1 and upper is None and np.isfinite(p.upper) and hi_b == p.upper else high
    return float(low), float(high)


def _cross(x0: float, x1: float, f0: float, f1: float, cut: float) -> float:
    """Where the line through (x0, f0), (x1, f1) crosses ``cut`` (x1 when degenerate)."""
    if not (np.isfinite(f0) and np.isfinite(f1)) or f0 == f1:
        return float(x1 if f1 <= cut else x0)
    return float(x0 + (cut - f0) * (x1 - x0) / (f1 - f0))


def curve_bands(form: LawForm, D: np.ndarray, theta: np.ndarray, *, level: float, sigma: float,
                dof: int, draws: np.ndarray | None = None, cov_u: np.ndarray | None = None
                ) -> dict[str, np.ndarray]:
    """Estimate, confidence band and prediction band of A at D.

    Confidence band: percentiles of the draws' curves when ``draws`` has rows, else the delta
    method with ``cov_u``.  Prediction band: each side's half-width combined in quadrature with
    t_{dof} * sigma (point noise of a new checkpoint).
    """
    d = np.atleast_1d(np.asarray(D, dtype=float))
    theta = np.asarray(theta, dtype=float)
    est = form.evaluate(d, theta)
    q = t_quantile(level, dof)
    if draws is not None and len(draws) > 0:
        curves = form.evaluate(d, np.asarray(draws, dtype=float))
        a = (1.0 - expanded_level(level, dof)) / 2.0
        lo = np.quantile(curves, a, axis=0)
        hi = np.quantile(curves, 1.0 - a, axis=0)
    elif cov_u is not None:
        u = form.to_unconstrained(theta)
        g = curve_gradient_u(form, d, u)
        se = np.sqrt(np.clip(np.einsum("ni,ij,nj->n", g, np.asarray(cov_u, float), g), 0.0, None))
        lo, hi = est - q * se, est + q * se
    else:
        lo = hi = np.full_like(est, np.nan)
    noise = q * sigma if np.isfinite(sigma) else np.nan
    half_lo = np.maximum(est - lo, 0.0)
    half_hi = np.maximum(hi - est, 0.0)
    return {
        "estimate": est,
        "conf_low": lo,
        "conf_high": hi,
        "pred_low": est - np.sqrt(half_lo**2 + noise**2),
        "pred_high": est + np.sqrt(half_hi**2 + noise**2),
    }
