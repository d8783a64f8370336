"""Scale trends: the data-law coefficients (alpha, c, b, A0) of one activation as straight
lines in log10 of the non-embedding parameter count N, in a transformed space (log alpha,
log c, b, A0), and the empirical-Bayes shrinkage (:func:`shrinkage`) every slope gets
before predictions use it (few scales rarely support a trend).

The A0 slope gets a t interval and a verdict on whether it is distinguishable from zero.
Uncertainty of a predicted curve is propagated by sampling: each draw refits the trends
through one bootstrap draw of every run, and adds between-scale scatter (the trend
residual covariance, multivariate-t with n - 2 degrees of freedom, inflated by the
leverage of the new scale).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from sparsitylaws.architecture.common import TRANSFORMS, _floats
from sparsitylaws.architecture.runs import RunSummary
from sparsitylaws.errors import FitInputError

# ============================================================================ scale trends


def _transform(name: str, v: np.ndarray) -> np.ndarray:
    if TRANSFORMS.get(name) == "log":
        return np.log(np.clip(v, 1e-300, None))
    return np.asarray(v, float)


def _untransform(name: str, g: np.ndarray) -> np.ndarray:
    if TRANSFORMS.get(name) == "log":
        return np.exp(np.clip(g, -700, 700))
    return g


@dataclass
class ScaleTrend:
    """Data-law coefficients of one activation as lines in log10 N (transformed space)."""

    activation: str
    form: str
    param_names: list[str]
    runs: list[str]
    log10_n: np.ndarray
    theta: np.ndarray  # (n_runs, k) natural point values
    x_center: float
    coef: np.ndarray  # (2, k) intercept at x_center and slope per decade, transformed space
    resid_cov: np.ndarray  # (k, k)
    dof: int
    xtx_inv: np.ndarray  # (2, 2)
    draws_coef: np.ndarray  # (M, 2, k)
    draws_jitter: np.ndarray  # (M, k) unit-leverage between-scale scatter
    run_draws: np.ndarray  # (M, n_runs, k) natural parameters of each run, one draw per row
    curve_t: np.ndarray  # (M,) t(dof) draws for the between-scale scatter of curve values
    a0_slope: dict
    ratio_ref: float | None
    sigma: float | None  # pooled residual sd of the runs' points around their laws
    tokens_b: tuple[float, float]
    ratios: list[float | None]
    widths: list[float | None]
    depths: list[float | None]
    warnings: list[str] = field(default_factory=list)
    curves: list[dict | None] | None = None  # each run's measured curve (section version 2)

    def to_dict(self) -> dict:
        f = _floats
        return {
            "form": self.form,
            "param_names": self.param_names,
            "transforms": {k: TRANSFORMS[k] for k in self.param_names},
            "x": "log10(non-embedding parameters)",
            "runs": self.runs,
            "log10_n": f(self.log10_n),
            "theta": f(self.theta),
            "x_center": self.x_center,
            "coef": f(self.coef),
            "resid_cov": f(self.resid_cov),
            "dof": self.dof,
            "xtx_inv": f(self.xtx_inv),
            "draws_coef": f(self.draws_coef),
            "draws_jitter": f(self.draws_jitter),
            "run_draws": f(self.run_draws),
            "curve_t": f(self.curve_t),
            "a0_slope": self.a0_slope,
            "ratio_ref": self.ratio_ref,
            "sigma": self.sigma,
            "tokens_b": list(self.tokens_b),
            "ratios": self.ratios,
            "widths": self.widths,
            "depths": self.depths,
            "warnings": self.warnings,
            "curves": self.curves,
            "method": ("OLS lines in log10 N of (log alpha, log c, b, A0) (stored as fitted); "
                       "predictions use each slope shrunk toward 0 by empirical Bayes and "
                       "refit the lines through one bootstrap draw per run plus between-scale "
                       "scatter (multivariate t around the shrunk lines, times sqrt(1 + "
                       "leverage)); docs/architecture.md"),
        }


def fit_scale_trends(
    summaries: Sequence[RunSummary],
    *,
    level: float = 0.9,
    n_draws: int = 400,
    seed: int = 0,
    ratio_ref: float | None = None,
) -> ScaleTrend:
    """Fit the data-law coefficients of runs of one activation against log10 N.

    Needs runs with the same form and known ``n_params``.  With >= 3 scales the lines have
    a residual covariance (between-scale scatter, dof = n - 2); with 2 scales the lines are
    exact and only the runs' own bootstrap uncertainty is propagated (said in warnings);
    with 1 scale the coefficients are held constant (a warning says so).
    """
    if not summaries:
        raise FitInputError("scale law: no runs given")
    forms = {s.form for s in summaries}
    acts = {s.activation for s in summaries}
    if len(forms) != 1:
        raise FitInputError(f"scale law: runs of one activation must share a form, got {sorted(forms)}")
    missing = [s.name for s in summaries if s.n_params is None]
    if missing:
        raise FitInputError("scale law: runs without n_params: " + ", ".join(missing))
    form = forms.pop()
    names = summaries[0].param_names
    k = len(names)
    n = len(summaries)
    x = np.log10([s.n_params for s in summaries])
    xc = float(np.mean(x))
    theta = np.vstack([s.theta for s in summaries])
    G = np.column_stack([_transform(nm, theta[:, j]) for j, nm in enumerate(names)])
    warnings: list[str] = []
    distinct = np.unique(np.round(x, 6)).size
    if distinct >= 2:
        X = np.column_stack([np.ones(n), x - xc])
    else:
        X = np.ones((n, 1))
        warnings.append("only one scale: coefficients held constant across scale (no trend)")
    xtx_inv_full = np.linalg.inv(X.T @ X)
    H = xtx_inv_full @ X.T  # (p, n)
    coef = H @ G
    dof = n - X.shape[1]
    resid = G - X @ coef
    resid_cov = resid.T @ resid / dof if dof > 0 else np.zeros((k, k))
    if dof <= 0 and distinct >= 2:
        warnings.append(f"{n} scales for a 2-parameter trend: no between-scale scatter can be "
                        "estimated; intervals carry only the runs' own fit uncertainty")
    if X.shape[1] == 1:
        coef = np.vstack([coef, np.zeros((1, k))])
        xtx_inv = np.array([[xtx_inv_full[0, 0], 0.0], [0.0, 0.0]])
    else:
        xtx_inv = xtx_inv_full

    rng = np.random.default_rng(seed)
    Gd = np.empty((n_draws, n, k))
    run_draws = np.empty((n_draws, n, k))
    for i, s in enumerate(summaries):
        if s.draws is not None and s.draws.shape[0] > 0:
            rows = s.draws[rng.integers(0, s.draws.shape[0], n_draws)]
        else:
            rows = np.repeat(s.theta[None, :], n_draws, axis=0)
        run_draws[:, i, :] = rows
        Gd[:, i, :] = np.column_stack([_transform(nm, rows[:, j]) for j, nm in enumerate(names)])
    cd = np.einsum("pn,mnk->mpk", H, Gd)
    if cd.shape[1] == 1:
        cd = np.concatenate([cd, np.zeros_like(cd)], axis=1)
    if dof > 0:
        lam, V = np.linalg.eigh(resid_cov)
        L = V * np.sqrt(np.clip(lam, 0, None))[None, :]
        z = rng.standard_normal((n_draws, k)) @ L.T
        chi = rng.chisquare(dof, n_draws)
        jitter = z * np.sqrt(dof / chi)[:, None]
        curve_t = rng.standard_t(dof, n_draws)
    else:
        jitter = np.zeros((n_draws, k))
        curve_t = np.zeros(n_draws)

    # A0 against log10 N: OLS slope with a t interval
    ia0 = names.index("A0")
    if X.shape[1] == 2 and dof > 0:
        se = math.sqrt(resid_cov[ia0, ia0] * xtx_inv[1, 1])
        tq = stats.t.ppf(0.5 + level / 2, dof)
        sl = float(coef[1, ia0])
        B = shrinkage(sl, se, dof)
        a0_slope = {"estimate": sl, "se": se, "interval": [sl - tq * se, sl + tq * se],
                    "level": level, "dof": dof, "per": "decade of non-embedding parameters",
                    "distinguishable_from_zero": bool(abs(sl) > tq * se),
                    "shrinkage": B, "shrunk_estimate": (1.0 - B) * sl,
                    "method": ("OLS of per-run A0 on log10 N, t interval; predictions use the "
                               "slope shrunk toward 0 by empirical Bayes (shrinkage B, "
                               "docs/architecture.md)")}
    elif X.shape[1] == 2:
        sl = float(coef[1, ia0])
        a0_slope = {"estimate": sl, "se": None, "interval": None, "level": level, "dof": 0,
                    "per": "decade of non-embedding parameters", "distinguishable_from_zero": None,
                    "shrinkage": 1.0, "shrunk_estimate": 0.0,
                    "method": "exact line through 2 scales; no interval possible, no trend carried"}
    else:
        a0_slope = {"estimate": 0.0, "se": None, "interval": None, "level": level, "dof": dof,
                    "per": "decade of non-embedding parameters", "distinguishable_from_zero": None,
                    "shrinkage": 1.0, "shrunk_estimate": 0.0, "method": "one scale; no slope"}
    ratios = [s.ratio for s in summaries]
    if ratio_ref is None:
        known = [r for r in ratios if r is not None]
        ratio_ref = float(np.median(known)) if known else None
    sig = [s.sigma for s in summaries if s.sigma is not None]
    toks = [s.tokens_b for s in summaries if np.all(np.isfinite(s.tokens_b))]
    return ScaleTrend(
        activation=acts.pop() if len(acts) == 1 else "",
        form=form, param_names=list(names), runs=[s.name for s in summaries], log10_n=x,
        theta=theta, x_center=xc, coef=coef, resid_cov=resid_cov, dof=max(dof, 0),
        xtx_inv=xtx_inv, draws_coef=cd, draws_jitter=jitter, run_draws=run_draws,
        curve_t=curve_t, a0_slope=a0_slope,
        ratio_ref=ratio_ref,
        sigma=float(np.sqrt(np.mean(np.square(sig)))) if sig else None,
        tokens_b=(min(t[0] for t in toks), max(t[1] for t in toks)) if toks else (math.nan, math.nan),
        ratios=ratios, widths=[s.width for s in summaries], depths=[s.depth for s in summaries],
        warnings=warnings,
        curves=[s.curve for s in summaries] if any(s.curve for s in summaries) else None,
    )


def shrinkage(slope: float, se: float, dof: float) -> float:
    """Empirical-Bayes shrinkage B of a slope toward 0 (1 = no trend).

    Prior slope ~ N(0, omega^2); the positive-part estimate omega^2 = max(0, b^2 - V_eff)
    gives ``B = min(1, V_eff / b^2)``, with ``V_eff = se^2 dof / (dof - 2)``: the squared
    standard error inflated by its own uncertainty (the variance of a t with ``dof``
    degrees of freedom).  With dof <= 2 that variance is infinite and no slope is carried.
    """
    if not (dof > 2) or slope == 0 or not math.isfinite(se):
        return 1.0
    return float(min(1.0, se * se * dof / (dof - 2) / (slope * slope)))
