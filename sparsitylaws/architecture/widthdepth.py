"""Width/depth law: A0 against the width/depth ratio as a hinge (linear below a bottleneck,
flat above), fitted exactly, compared with rivals, its breakpoint tested and bracketed.

The hinge is fitted exactly (profile over r_b, closed-form least squares per segment),
compared by AICc with a smooth hinge, a straight line and a constant, and a
likelihood-ratio test calibrated by a parametric bootstrap under the fitted line says
whether a breakpoint is supported at all (the breakpoint is not identified under the
null, so chi-square theory does not apply).  The breakpoint interval is a profile
likelihood interval whose cutoff is calibrated by a parametric bootstrap; it may be
asymmetric and is flagged when it runs into the edge of the sweep.  The limits A0 per
run come from the runs' fits or from their final measurements.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from sparsitylaws.architecture.common import _num
from sparsitylaws.architecture.runs import RunSummary
from sparsitylaws.errors import FitInputError

#: the paper's bottleneck (0.1B ReLU sweep), where the fixed-breakpoint test puts the hinge
PAPER_BREAKPOINT = 114.0
#: the rise (activation ratio, from the sweep's smallest ratio to the breakpoint) whose
#: detection probability is reported with every verdict: 2 percentage points
POWER_RISE = 0.02
#: no three runs may carry more than this share of the width/depth law's weight
MAX_TOP3 = 0.5


def _wls_rss(X: np.ndarray, Y: np.ndarray, sw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares of each row of Y (m, n) on X (n, p): (beta (m, p), rss (m,))."""
    Xw = X * sw[:, None]
    Yw = Y * sw[None, :]
    beta, *_ = np.linalg.lstsq(Xw, Yw.T, rcond=None)
    resid = Yw - (Xw @ beta).T
    return beta.T, np.einsum("ij,ij->i", resid, resid)


def _breakpoint_range(r: np.ndarray) -> tuple[float, float]:
    """Allowed breakpoints: at least two distinct ratios on each side (else not a hinge)."""
    u = np.unique(r)
    if u.size < 4:
        raise FitInputError(
            f"width/depth law: a hinge needs at least 4 distinct width/depth ratios, got {u.size}")
    return float(u[1]), float(u[-2])


def hinge_profile_rss(r: Sequence[float], y: np.ndarray, grid: Sequence[float],
                      sw: Sequence[float] | None = None) -> np.ndarray:
    """Weighted RSS of the hinge with the breakpoint fixed at each grid value.

    ``y`` may be (n,) or (m, n); the result is (len(grid),) or (m, len(grid)).  Used for
    profile intervals and as the brute-force reference in tests.
    """
    r = np.asarray(r, float)
    Y = np.atleast_2d(np.asarray(y, float))
    w = np.ones_like(r) if sw is None else np.asarray(sw, float) ** 2
    x = np.minimum(r[None, :], np.asarray(grid, float)[:, None])  # (g, n)
    ybar = (Y @ w) / w.sum()
    Yc = Y - ybar[:, None]
    xbar = (x @ w) / w.sum()
    xc = x - xbar[:, None]
    sxx = (xc * xc) @ w  # (g,)
    sxy = (Yc * w[None, :]) @ xc.T  # (m, g)
    syy = (Yc * Yc) @ w  # (m,)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.where(sxx > 0, sxy**2 / np.where(sxx > 0, sxx, 1.0), 0.0)
    out = np.maximum(syy[:, None] - gain, 0.0)
    return out if np.ndim(y) == 2 else out[0]


def _hinge_exact(r: np.ndarray, Y: np.ndarray, sw: np.ndarray):
    """Exact least-squares hinge for every row of Y (same sorted r): (rb, plateau, slope, rss).

    Within a segment between consecutive distinct ratios the hinge is a line on the left
    points and a constant on the right ones joined at rb = (q - p) / s; the unconstrained
    3-parameter fit is the segment optimum when its rb lies inside the segment, otherwise
    the optimum is at a segment end (the profile RSS is a ratio of quadratics with a
    single interior minimum), so segment ends are evaluated too.
    """
    lo, hi = _breakpoint_range(r)
    u = np.unique(r)
    m = Y.shape[0]
    cand_rb = [np.full(m, x) for x in u[(u >= lo) & (u <= hi)]]
    cand_rss = [hinge_profile_rss(r, Y, [x], sw)[:, 0] for x in u[(u >= lo) & (u <= hi)]]
    for a, b in zip(u[:-1], u[1:], strict=True):
        if a < lo or b > hi:
            continue
        left = r <= a
        X = np.column_stack([left.astype(float), np.where(left, r, 0.0), (~left).astype(float)])
        beta, rss = _wls_rss(X, Y, sw)
        p, s, q = beta[:, 0], beta[:, 1], beta[:, 2]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            rb = (q - p) / s
        ok = np.isfinite(rb) & (rb >= a) & (rb <= b)
        cand_rb.append(np.where(ok, rb, np.nan))
        cand_rss.append(np.where(ok, rss, np.inf))
    RB = np.vstack(cand_rb)
    RSS = np.vstack(cand_rss)
    best = np.argmin(RSS, axis=0)
    idx = np.arange(m)
    rb = RB[best, idx]
    rss = RSS[best, idx]
    # plateau and slope at the chosen breakpoint: 2-parameter WLS, vectorized over rows
    w = sw**2
    x = np.minimum(r[None, :], rb[:, None]) - rb[:, None]
    sw_ = w.sum()
    sx = x @ w
    sy = Y @ w
    sxx = (x * x) @ w
    sxy = np.einsum("ij,ij,j->i", x, Y, w)
    det = sw_ * sxx - sx * sx
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (sw_ * sxy - sx * sy) / det
    plateau = (sy - slope * sx) / sw_
    return rb, plateau, slope, rss


def _line_fit(r: np.ndarray, Y: np.ndarray, sw: np.ndarray):
    X = np.column_stack([np.ones_like(r), r])
    return _wls_rss(X, Y, sw)


def _const_fit(r: np.ndarray, Y: np.ndarray, sw: np.ndarray):
    return _wls_rss(np.ones((r.size, 1)), Y, sw)


def smooth_hinge(r: np.ndarray, plateau: float, slope: float, rb: float, delta: float) -> np.ndarray:
    """Smooth hinge: plateau + slope*(rb - delta*softplus((rb - r)/delta) - rb).

    Tends to the hinge plateau + slope*(min(r, rb) - rb) as delta -> 0; its breakpoint has
    a gradient, so gradient-based fitters and delta-method intervals can use it.
    """
    z = (rb - np.asarray(r, float)) / delta
    return plateau - slope * delta * np.logaddexp(0.0, z)


def aicc(rss: float, n: int, k: int) -> float:
    """AICc of a Gaussian least-squares fit with k parameters (sigma counted in k)."""
    if rss <= 0 or n - k - 1 <= 0:
        return math.inf if n - k - 1 <= 0 else -math.inf
    return n * math.log(rss / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def _fit_smooth(r: np.ndarray, y: np.ndarray, sw: np.ndarray, start: tuple[float, float, float]):
    span = float(np.ptp(r))
    lo, hi = _breakpoint_range(r)

    def resid(t):
        return sw * (smooth_hinge(r, t[0], t[1], t[2], math.exp(t[3])) - y)

    best = None
    for frac in (0.01, 0.05, 0.15):
        t0 = np.array([start[0], start[1], min(max(start[2], lo), hi), math.log(frac * span)])
        try:
            res = optimize.least_squares(
                resid, t0, max_nfev=400, bounds=([-np.inf, -np.inf, lo, math.log(1e-4 * span)],
                                   [np.inf, np.inf, hi, math.log(span)]))
        except ValueError:
            continue
        if best is None or res.cost < best.cost:
            best = res
    t = best.x
    return {"plateau": float(t[0]), "slope": float(t[1]), "breakpoint": float(t[2]),
            "delta": float(math.exp(t[3])), "rss": float(2 * best.cost)}


@dataclass
class HingeFit:
    """Result of :func:`fit_hinge`: the hinge, its rivals, the breakpoint test and interval."""

    r: np.ndarray
    y: np.ndarray
    se: np.ndarray | None
    breakpoint: float
    plateau: float
    slope: float
    rss: float
    breakpoint_interval: tuple[float, float]
    interval_censored: tuple[bool, bool]
    level: float
    models: dict[str, dict]
    preferred: str
    test: dict
    draws: dict[str, np.ndarray]
    intervals: dict[str, tuple[float, float]]
    warnings: list[str] = field(default_factory=list)
    tau: float = 0.0  # scatter added to every se in the weights (>= the between-run sd)
    fixed: dict | None = None  # the fixed-breakpoint test (fixed_breakpoint_test)
    groups: np.ndarray | None = None  # design labels (runs that differ only by seed)
    between_run_sd_estimate: float = 0.0  # the run random effect as estimated

    def weights(self) -> np.ndarray:
        """sqrt of the fit's weights: 1/sqrt(se^2 + tau^2), or ones without se."""
        if self.se is None:
            return np.ones_like(self.r)
        return 1.0 / np.sqrt(self.se ** 2 + self.tau ** 2)

    def predict(self, r: Sequence[float]) -> np.ndarray:
        """The hinge's A0 at width/depth ratios r."""
        r = np.asarray(r, float)
        return self.plateau + self.slope * (np.minimum(r, self.breakpoint) - self.breakpoint)

    def to_dict(self) -> dict:
        """JSON-safe summary (draws included, as lists)."""
        return {
            "n": int(self.r.size),
            "ratios": [float(x) for x in self.r],
            "a0": [float(x) for x in self.y],
            "a0_se": None if self.se is None else [float(x) for x in self.se],
            "between_run_sd": float(self.between_run_sd_estimate),
            "weight_scatter": float(self.tau),
            "designs": design_spread(self.r, self.y, self.groups),
            "form": "A0 = plateau + slope * (min(r, breakpoint) - breakpoint)",
            "breakpoint": {
                "estimate": self.breakpoint,
                "interval": list(self.breakpoint_interval),
                "censored": list(self.interval_censored),
                "level": self.level,
                "method": "profile likelihood, cutoff calibrated by parametric bootstrap",
            },
            "plateau": {"estimate": self.plateau, "interval": list(self.intervals["plateau"])},
            "slope": {"estimate": self.slope, "interval": list(self.intervals["slope"])},
            "models": self.models,
            "preferred": self.preferred,
            "test": self.test,
            "fixed_breakpoint_test": self.fixed,
            "warnings": list(self.warnings),
        }


def between_run_sd(r: np.ndarray, y: np.ndarray, se: np.ndarray,
                   groups: np.ndarray | None = None) -> float:
    """Between-run standard deviation tau of A0, a run random effect (Paule-Mandel).

    Each run's A0 carries its own fit's error ``se``, but runs of one design also differ by
    seed and data order: weights 1/se^2 alone let two or three runs with tight intervals
    decide the law and the breakpoint test.  tau is the smallest value >= 0 for which the
    generalized residual sum of squares, sum (y - f)^2 / (se^2 + tau^2), equals its degrees
    of freedom (the meta-regression moment estimator), where f is

    * with ``groups`` (design labels: runs of one shape that differ only by seed) and at
      least one design run more than once: each design's weighted mean (dof = runs -
      designs).  The seeds measure the run-to-run scatter directly, whatever the shape of
      the law in width/depth;
    * otherwise a weighted line in width/depth (dof = n - 2), the breakpoint test's null,
      so that a hinge must stand out against the scatter that runs show anyway (under a
      real hinge tau then comes out larger and the test is conservative).

    ``r`` must be sorted.
    """
    replicated = groups is not None and np.unique(groups).size < np.asarray(groups).size
    if replicated:
        labels, inv = np.unique(groups, return_inverse=True)
        dof = r.size - labels.size
        X = np.zeros((r.size, labels.size))
        X[np.arange(r.size), inv] = 1.0
    else:
        dof = r.size - 2
        X = np.column_stack([np.ones_like(r), r])

    def q(tau: float) -> float:
        w = 1.0 / np.sqrt(se ** 2 + tau ** 2)
        return float(_wls_rss(X, y[None, :], w)[1][0])

    if dof <= 0 or q(0.0) <= dof:
        return 0.0
    lo, hi = 0.0, max(float(np.std(y)) * 4.0, float(np.max(se)), 1e-12)
    while q(hi) > dof and hi < 1e6:
        hi *= 2.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if q(mid) > dof else (lo, mid)
    return hi


def top_share(w: np.ndarray, k: int = 3) -> float:
    """Share of the total weight carried by the ``k`` heaviest runs."""
    w = np.sort(np.asarray(w, float))[::-1]
    return float(w[:k].sum() / w.sum()) if w.sum() > 0 else 1.0


def spread_weights(se: np.ndarray, tau: float, max_top3: float = MAX_TOP3) -> tuple[float, bool]:
    """The scatter used in the weights 1/(se^2 + t^2): ``tau``, or the smallest larger t under
    which the three heaviest runs carry at most ``max_top3`` of the weight (larger t makes
    the weights more equal; equal weights give 3/n).  Returns (t, whether it was raised)."""
    def share(t: float) -> float:
        return top_share(1.0 / (se ** 2 + t ** 2))

    if se.size <= 3 or share(tau) <= max_top3 or 3.0 / se.size > max_top3:
        return tau, False
    lo, hi = tau, max(tau, float(np.max(se)), 1e-12)
    cap = 1e6 * hi  # weights are then equal to 1e-12: the limit when 3/n is the target itself
    while share(hi) > max_top3 and hi < cap:
        hi *= 2.0
    if share(hi) > max_top3:
        return hi, True
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if share(mid) > max_top3 else (lo, mid)
    return hi, True


def _slopes(X: np.ndarray, Y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares slopes: every row of X (P, n) against every row of Y (S, n),
    weights w (n,) staying with the runs: (P, S)."""
    Xc = X - ((X @ w) / w.sum())[:, None]
    denom = (Xc * Xc) @ w
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((Xc * w[None, :]) @ Y.T) / denom[:, None]


def fixed_breakpoint_test(r: Sequence[float], y: Sequence[float], w: Sequence[float] | None = None, *,
                          breakpoint: float = PAPER_BREAKPOINT, alpha: float = 0.05,
                          n_perm: int = 9999, power_rise: float = POWER_RISE, n_sim: int = 500,
                          seed: int = 0, level: float = 0.95) -> dict:
    """The hinge with its breakpoint fixed (the paper's 114): does A0 rise with width/depth
    below it?

    A0 = plateau + slope * (min(r, breakpoint) - breakpoint) by weighted least squares
    (weights ``w``, e.g. 1/(se^2 + tau^2); equal when None).  Reported as the *rise*: slope
    times the span of min(r, breakpoint) in the sweep (from its smallest ratio to the
    breakpoint, or to its largest ratio when all lie below), with a t interval.  The
    p-value (two-sided) is a permutation test: the width/depth labels are shuffled among
    the runs (each run keeps its A0 and its weight) ``n_perm`` times; under "A0 does not
    depend on width/depth" every shuffle is as likely as the sweep, whatever the noise's
    distribution.  ``power``: the share of ``n_sim`` simulated sweeps (same ratios and
    weights, residual scale of this fit, a true rise of ``power_rise``) in which the same
    test (199 shuffles each) rejects at ``alpha``.
    """
    r = np.asarray(r, float)
    y = np.asarray(y, float)
    w = np.ones_like(r) if w is None else np.asarray(w, float)
    x = np.minimum(r, breakpoint)
    n = r.size
    span = float(x.max() - x.min())
    out: dict = {"breakpoint": float(breakpoint), "n": int(n), "alpha": alpha,
                 "statistic": "rise = slope * (min(r_max, breakpoint) - r_min), weighted least squares",
                 "method": f"permutation of the width/depth labels among runs ({n_perm} shuffles)",
                 "power_rise": power_rise}
    if np.unique(x).size < 2 or n < 4:
        return {**out, "available": False,
                "reason": "fewer than 2 distinct ratios below the breakpoint, or fewer than 4 runs"}
    X = np.column_stack([np.ones(n), x])
    sw = np.sqrt(w)
    beta, rss = _wls_rss(X, y[None, :], sw)
    slope = float(beta[0, 1])
    phi = float(rss[0]) / (n - 2)
    sxx = float(((x - (x @ w) / w.sum()) ** 2) @ w)
    se_rise = math.sqrt(phi / sxx) * span if sxx > 0 else math.inf
    tq = float(stats.t.ppf(0.5 + level / 2, n - 2))
    rise = slope * span
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((n_perm, n)), axis=1)
    null = np.abs(_slopes(x[perms], y[None, :], w)[:, 0])
    p_value = float((1 + np.sum(null >= abs(slope) * (1 - 1e-12))) / (n_perm + 1))
    # power: a true rise of power_rise, noise sd_i = sqrt(phi / w_i), the same test
    sims = (power_rise / span) * (x - x.min())[None, :] + \
        rng.standard_normal((n_sim, n)) * np.sqrt(phi / w)[None, :]
    small = np.argsort(rng.random((199, n)), axis=1)
    b_obs = np.abs(_slopes(x[None, :], sims, w)[0])
    b_null = np.abs(_slopes(x[small], sims, w))
    p_sim = (1 + np.sum(b_null >= b_obs[None, :] * (1 - 1e-12), axis=0)) / 200
    power = float(np.mean(p_sim < alpha))
    return {**out, "available": True, "rise": rise, "rise_interval": [rise - tq * se_rise, rise + tq * se_rise],
            "level": level, "slope": slope, "plateau": float(beta[0, 0] + slope * breakpoint),
            "p_value": p_value, "rejects": bool(p_value < alpha), "power": power,
            # the runs' typical residual sd, sqrt(phi * mean(1/w)) (sqrt(phi) with equal weights)
            "residual_sd": math.sqrt(phi * float(np.mean(1.0 / w)))}


def design_spread(r: np.ndarray, y: np.ndarray, groups: np.ndarray | None) -> list[dict]:
    """Per design (runs that differ only by seed): ratio, runs, mean and sd of their A0."""
    if groups is None:
        return []
    out = []
    for g in dict.fromkeys(groups.tolist()):
        m = groups == g
        vals = y[m]
        out.append({"design": str(g), "ratio": float(r[m][0]), "runs": int(m.sum()),
                    "mean": float(vals.mean()),
                    "sd": float(vals.std(ddof=1)) if vals.size > 1 else None})
    return out


def fit_hinge(
    r: Sequence[float],
    a0: Sequence[float],
    se: Sequence[float] | None = None,
    *,
    level: float = 0.9,
    alpha: float = 0.05,
    n_boot: int = 499,
    seed: int = 0,
    smooth_fit: bool = True,
    influence: bool = True,
    groups: Sequence | None = None,
    fixed_breakpoint: float = PAPER_BREAKPOINT,
    power_rise: float = POWER_RISE,
    n_perm: int = 9999,
    extras: bool = True,
) -> HingeFit:
    """Fit A0 against width/depth r as a hinge; test and bracket the breakpoint.

    * the hinge is fitted exactly (all segments, closed form), weighted by 1/(se^2 + t^2)
      when ``se`` is given, t the runs' scatter beyond their own errors (a run random
      effect, :func:`between_run_sd`, from the seeds when ``groups`` labels runs of one
      design), raised where needed so that no three runs carry more than half the weight
      (:func:`spread_weights`); the residual scale is still estimated
      (sigma_i^2 = phi * (se_i^2 + t^2));
    * ``models``: constant, line, hinge, smooth hinge, each with RSS and AICc;
    * ``test`` (the free-breakpoint test): LR = n log(RSS_line / RSS_alt), RSS_alt the
      better of the hinge and the line (the alternative contains the null, so LR >= 0),
      p-value from ``n_boot`` parametric bootstrap samples under the fitted line;
      ``supported`` when p < ``alpha``; ``power``: the share of sweeps simulated with a
      hinge rising by ``power_rise`` from the smallest ratio up to ``fixed_breakpoint``, flat
      above (same ratios, weights and residual scale), in which it rejects (low when the
      sweep has too few ratios above that breakpoint for the test's own breakpoints);
    * ``fixed`` (``extras``): :func:`fixed_breakpoint_test` at ``fixed_breakpoint`` with
      the same weights (permutation p-value, rise with interval, power);
    * breakpoint interval: {rb : n log(RSS(rb)/RSS_min) <= q}, q the ``level`` quantile of
      the same statistic at the true breakpoint over ``n_boot`` samples from the fitted
      hinge (a bootstrap-calibrated profile likelihood interval; asymmetric as needed);
    * ``draws``: (plateau, slope, breakpoint) refitted on those hinge samples, used for
      the plateau and slope intervals and for propagation into predictions.

    * influence (``influence=True``, when the test supports a breakpoint and n >= 6): the
      test is redone leaving out each run in turn (``test["leave_one_out_p"]``, aligned
      with the sorted ratios); ``test["robust"]`` is False, with a warning, when leaving
      out one run lifts p to ``alpha`` or above.

    ``smooth_fit=False`` skips the (slower, iterative) smooth-hinge rival.
    """
    r0 = np.asarray(r, float)
    y0 = np.asarray(a0, float)
    if r0.shape != y0.shape or r0.ndim != 1:
        raise FitInputError("width/depth law: 'ratio' and 'A0' must be 1-d and of equal length")
    if not (np.all(np.isfinite(r0)) and np.all(np.isfinite(y0))):
        raise FitInputError("width/depth law: ratios and A0 values must be finite")
    if np.any(r0 <= 0):
        raise FitInputError("width/depth law: width/depth ratios must be > 0")
    if se is None:
        sw0 = np.ones_like(r0)
        se0 = None
    else:
        se0 = np.asarray(se, float)
        if se0.shape != r0.shape or not np.all(np.isfinite(se0)) or np.any(se0 <= 0):
            raise FitInputError("width/depth law: 'se' must be finite, > 0, one per ratio")
        sw0 = 1.0 / se0
    order = np.argsort(r0, kind="stable")
    r_s, y_s, sw = r0[order], y0[order], sw0[order]
    g_s = None if groups is None else np.asarray([str(g) for g in groups], dtype=object)[order]
    if g_s is not None and g_s.size != r0.size:
        raise FitInputError("width/depth law: 'groups' must label every run")
    n = r_s.size
    if n < 5:
        raise FitInputError(f"width/depth law: need at least 5 runs for a hinge, got {n}")
    tau, own_se, scatter, raised = 0.0, None, 0.0, False
    if se0 is not None:  # runs differ by more than their own fits' errors (seeds, data order)
        own_se = 1.0 / sw
        tau = between_run_sd(r_s, y_s, own_se, g_s)
        scatter, raised = spread_weights(own_se, tau)
        sw = 1.0 / np.sqrt(own_se ** 2 + scatter ** 2)
    Y = y_s[None, :]
    rng = np.random.default_rng(seed)
    lo, hi = _breakpoint_range(r_s)

    rb, plat, slope, rss_h = (v[0] for v in _hinge_exact(r_s, Y, sw))
    beta_l, rss_l = _line_fit(r_s, Y, sw)
    beta_c, rss_c = _const_fit(r_s, Y, sw)
    rss_l, rss_c = float(rss_l[0]), float(rss_c[0])
    smooth = _fit_smooth(r_s, y_s, sw, (plat, slope, rb)) if smooth_fit else None
    tiny = 1e-300
    models = {
        "constant": {"k": 2, "rss": rss_c, "aicc": aicc(rss_c, n, 2),
                     "params": {"level": float(beta_c[0, 0])}},
        "line": {"k": 3, "rss": rss_l, "aicc": aicc(rss_l, n, 3),
                 "params": {"intercept": float(beta_l[0, 0]), "slope": float(beta_l[0, 1])}},
        "hinge": {"k": 4, "rss": float(rss_h), "aicc": aicc(float(rss_h), n, 4),
                  "params": {"plateau": float(plat), "slope": float(slope), "breakpoint": float(rb)}},
    }
    if smooth is not None:
        models["smooth_hinge"] = {
            "k": 5, "rss": smooth["rss"], "aicc": aicc(smooth["rss"], n, 5),
            "params": {k: smooth[k] for k in ("plateau", "slope", "breakpoint", "delta")}}
    finite = {k: v["aicc"] for k, v in models.items() if math.isfinite(v["aicc"])}
    preferred = min(finite, key=finite.get) if finite else "line"

    # --- breakpoint test: LR of hinge vs line, parametric bootstrap under the fitted line
    # the alternative (a hinge, or no breakpoint inside the sweep: the line) contains the
    # null, so LR >= 0; a hinge whose breakpoint must lie inside the sweep can fit worse
    # than the line, and LR went negative (-0.05 on the first lab-cpu table)
    def _lr(rss_line, rss_hinge):
        return n * np.log(np.maximum(rss_line, tiny) / np.maximum(np.minimum(rss_hinge, rss_line), tiny))

    lr_obs = float(_lr(rss_l, float(rss_h)))
    sig_l = math.sqrt(rss_l / (n - 2))
    fit_l = beta_l[0, 0] + beta_l[0, 1] * r_s
    Yb = fit_l[None, :] + rng.standard_normal((n_boot, n)) * (sig_l / sw)[None, :]
    _, _, _, rss_hb = _hinge_exact(r_s, Yb, sw)
    _, rss_lb = _line_fit(r_s, Yb, sw)
    lr_b = _lr(rss_lb, rss_hb)
    p_value = float((1 + np.sum(lr_b >= lr_obs - 1e-12)) / (n_boot + 1))
    power = None
    if extras:  # the paper's shape: rising by power_rise up to the fixed breakpoint, flat
        # above (a line through the sweep when it ends below), with this fit's noise; the
        # test's own breakpoints may not reach it, and then its power is low, as it should be
        slope_alt = power_rise / max(fixed_breakpoint - r_s[0], 1e-12)
        Ya = slope_alt * (np.minimum(r_s, fixed_breakpoint) - fixed_breakpoint)[None, :] + \
            rng.standard_normal((n_boot, n)) * (sig_l / sw)[None, :]
        lr_a = _lr(_line_fit(r_s, Ya, sw)[1], _hinge_exact(r_s, Ya, sw)[3])
        p_a = (1 + np.sum(lr_b[None, :] >= lr_a[:, None] - 1e-12, axis=1)) / (n_boot + 1)
        power = float(np.mean(p_a < alpha))
    w_used = sw ** 2
    test = {
        "statistic": "LR = n*log(RSS_line/RSS_alt), RSS_alt = min(RSS_hinge, RSS_line)",
        "value": lr_obs,
        "p_value": p_value,
        "alpha": alpha,
        "supported": bool(p_value < alpha),
        "n_boot": int(n_boot),
        "method": "parametric bootstrap under the fitted line (Gaussian residuals)",
        "weights": "equal" if se0 is None else (
            "1/(se^2 + tau^2), tau: between-run sd (Paule-Mandel"
            + (", from the seeds" if g_s is not None and np.unique(g_s).size < n else ", under the line")
            + ")" + (", raised so that no three runs carry more than half the weight" if raised else "")),
        "between_run_sd": float(tau),
        "weight_scatter": float(scatter),
        "top3_weight_share": top_share(w_used),
        "power": power,
        "power_rise": power_rise,
        "power_breakpoint": float(fixed_breakpoint),
    }

    # --- breakpoint interval: bootstrap-calibrated profile likelihood
    sig_h = math.sqrt(float(rss_h) / (n - 3))
    fit_h = plat + slope * (np.minimum(r_s, rb) - rb)
    Yh = fit_h[None, :] + rng.standard_normal((n_boot, n)) * (sig_h / sw)[None, :]
    rb_b, plat_b, slope_b, rss_hb2 = _hinge_exact(r_s, Yh, sw)
    rss_at_true = hinge_profile_rss(r_s, Yh, [rb], sw)[:, 0]
    lr_true = n * np.log(np.maximum(rss_at_true, tiny) / np.maximum(rss_hb2, tiny))
    q = max(float(np.quantile(lr_true, level)), 0.0)  # >= 0 (rounding can push it below)
    grid = np.unique(np.concatenate([np.geomspace(lo, hi, 800), [rb]]))
    prof_rss = hinge_profile_rss(r_s, Y, grid, sw)[0]
    # against the profile's own minimum where rounding puts it above the exact one (the grid
    # holds rb, so the two agree up to rounding; a hinge through every point has RSS 0 in
    # one and 1e-17 in the other, and the region would otherwise be empty)
    prof = n * np.log(np.maximum(prof_rss, tiny) / max(float(rss_h), float(prof_rss.min()), tiny))
    inside = prof <= q
    idx = np.flatnonzero(inside)
    i0, i1 = idx[0], idx[-1]

    def _edge(i_in: int, i_out: int) -> float:
        # linear interpolation of the profile between the last point inside and first outside
        a, b = prof[i_in], prof[i_out]
        t = (q - a) / (b - a) if b != a else 0.0
        return float(grid[i_in] + t * (grid[i_out] - grid[i_in]))

    low = grid[0] if i0 == 0 else _edge(i0, i0 - 1)
    high = grid[-1] if i1 == grid.size - 1 else _edge(i1, i1 + 1)
    censored = (bool(i0 == 0), bool(i1 == grid.size - 1))
    warnings = []
    if influence and test["supported"] and n >= 6:
        # does the breakpoint survive leaving out any one run? (one run with a tight A0 can
        # make it; the lab's gpu sweep did, docs/lab.md)
        loo = []
        for i in range(n):
            keep = np.arange(n) != i
            sub = fit_hinge(r_s[keep], y_s[keep], None if own_se is None else own_se[keep],
                            level=level, alpha=alpha, n_boot=min(n_boot, 199), seed=seed + 1 + i,
                            smooth_fit=False, influence=False,
                            groups=None if g_s is None else g_s[keep], extras=False)
            loo.append(float(sub.test["p_value"]))
        worst = int(np.argmax(loo))
        test["leave_one_out_p"] = loo
        test["robust"] = bool(loo[worst] < alpha)
        if not test["robust"]:
            warnings.append(
                f"the breakpoint rests on one run: without the run at width/depth {r_s[worst]:.3g} "
                f"the test gives p = {loo[worst]:.2g} (>= {alpha}); treat the bottleneck as "
                "unconfirmed")
    power_txt = "" if power is None else f"; power {power:.0%} against a {100 * power_rise:g} pp rise"
    if not test["supported"]:
        warnings.append(
            f"no breakpoint supported (free-breakpoint test p = {p_value:.3g} >= {alpha}{power_txt}); "
            "the hinge's breakpoint and its interval are shown for reference only")
    fixed = None
    if extras:
        fixed = fixed_breakpoint_test(r_s, y_s, w_used, breakpoint=fixed_breakpoint, alpha=alpha,
                                      n_perm=n_perm, power_rise=power_rise, seed=seed + 7)
        if fixed["available"]:
            lo_r, hi_r = fixed["rise_interval"]
            warnings.append(
                f"fixed breakpoint at width/depth {fixed_breakpoint:g}: A0 rises by "
                f"{100 * fixed['rise']:+.2f} pp ({fixed['level']:.0%} interval {100 * lo_r:+.2f} to "
                f"{100 * hi_r:+.2f}) from {r_s[0]:.3g} to {min(fixed_breakpoint, r_s[-1]):.3g}, "
                f"permutation p = {fixed['p_value']:.3g}; power {fixed['power']:.0%} against a "
                f"{100 * power_rise:g} pp rise")
    if raised:
        warnings.append(
            f"weights: the three heaviest runs would carry {top_share(1 / (own_se ** 2 + tau ** 2)):.0%} "
            f"of the weight; the scatter in the weights was raised from {tau:.3g} to {scatter:.3g} "
            "so that they carry at most half")
    if censored[0] or censored[1]:
        warnings.append(
            "breakpoint interval reaches the edge of the sweep "
            f"({'low' if censored[0] else ''}{' and ' if all(censored) else ''}"
            f"{'high' if censored[1] else ''}); the true interval may be wider")
    if np.any(~inside[i0:i1 + 1]):
        warnings.append("profile likelihood region is not connected; the interval is its hull")
    a = (1 - level) / 2
    intervals = {
        "plateau": tuple(float(x) for x in np.quantile(plat_b, [a, 1 - a])),
        "slope": tuple(float(x) for x in np.quantile(slope_b, [a, 1 - a])),
    }
    return HingeFit(
        r=r_s, y=y_s, se=own_se, tau=float(scatter), breakpoint=float(rb),
        fixed=fixed, groups=g_s, between_run_sd_estimate=float(tau),
        plateau=float(plat), slope=float(slope), rss=float(rss_h),
        breakpoint_interval=(float(low), float(high)), interval_censored=censored, level=level,
        models=models, preferred=preferred, test=test,
        draws={"plateau": plat_b, "slope": slope_b, "breakpoint": rb_b},
        intervals=intervals, warnings=warnings,
    )


# ============================================================================ limits per run


def limits_from_fits(summaries: Sequence[RunSummary]) -> pd.DataFrame:
    """A0 per run from its data-law fit, with the fit's interval carried as a standard error."""
    return pd.DataFrame({
        "run": [s.name for s in summaries],
        "ratio": [s.ratio for s in summaries],
        "n_params": [s.n_params for s in summaries],
        "a0": [s.a0 for s in summaries],
        "a0_se": [s.a0_se for s in summaries],
        "source": "fit",
    })


def limits_from_final(table: pd.DataFrame, runs: Sequence[str] | None = None,
                      n_last: int = 3) -> pd.DataFrame:
    """A0 per run as the mean of its last ``n_last`` measurements (a sweep's final values).

    The standard error is the spread of those points over sqrt(n_last); it ignores any
    remaining trend, so use it only for runs trained well past convergence.
    """
    need = {"run", "tokens", "activation_ratio"}
    missing = need - set(table.columns)
    if missing:
        raise FitInputError(f"limit_from='final' needs table columns {sorted(missing)}")
    if "metric" in table.columns and table.groupby("run")["metric"].nunique().max() > 1:
        raise FitInputError("limit_from='final': a run holds several metrics; filter the table to one")
    rows = []
    for run, g in table.groupby("run", sort=True):
        if runs is not None and run not in runs:
            continue
        g = g.sort_values("tokens")
        last = g["activation_ratio"].to_numpy(float)[-n_last:]
        se = float(np.std(last, ddof=1) / math.sqrt(last.size)) if last.size >= 2 else None
        w = g["width"].iloc[-1] if "width" in g else None
        d = g["depth"].iloc[-1] if "depth" in g else None
        rows.append({"run": run, "ratio": (float(w) / float(d)) if _num(w) and _num(d) else None,
                     "n_params": _num(g["n_params"].iloc[-1]) if "n_params" in g else None,
                     "a0": float(np.mean(last)), "a0_se": se if se and se > 0 else None,
                     "source": f"final (mean of last {last.size})"})
    return pd.DataFrame(rows)


def fit_widthdepth(limits: pd.DataFrame, **kwargs: Any) -> HingeFit:
    """Fit the width/depth hinge to a limits frame (columns ratio, a0, a0_se)."""
    bad = limits["ratio"].isna()
    if bad.any():
        raise FitInputError(
            "width/depth law: runs without width and depth: " + ", ".join(limits.loc[bad, "run"]))
    se = limits["a0_se"]
    use_se = se.notna().all()
    kwargs.setdefault("groups", design_labels(limits))
    return fit_hinge(limits["ratio"].to_numpy(float), limits["a0"].to_numpy(float),
                     se.to_numpy(float) if use_se else None, **kwargs)


def design_labels(limits: pd.DataFrame) -> list[str]:
    """One label per design: runs with the same width/depth ratio and parameter count (in a
    lab plan, the seeds of one [[model]]) share it."""
    n = limits["n_params"] if "n_params" in limits else pd.Series([None] * len(limits))
    return [f"r={float(r):.6g}, N={'?' if pd.isna(k) else int(k)}"
            for r, k in zip(limits["ratio"], n, strict=True)]
