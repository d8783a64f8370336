"""The scale-step model: how measured curves move from one scale to the next, at equal
tokens per parameter, as a function of the step in log10 N.

At one budget in tokens per parameter u, the logit activation ratio of the runs of one
recipe, as a function of x = log10 N, is modelled as a Brownian motion with drift:
``z(x + dx, u) - z(x, u) ~ N(mu dx, sigma^2 |dx|)``.  A run's nearest measured scale is
then the natural forecast (the "nearest" baseline), a run between two measured scales is
their interpolation (the Brownian bridge), and the error grows as sqrt(step).  Fitted on
the scale steps available (adjacent pairs of measured scales, over the tokens per
parameter both measured):

* **drift** ``mu`` (logit per decade), one number for every budget (a constant shift in
  logit keeps a curve monotone): the steps' total change over their total length, then
  **shrunk toward no trend** by empirical Bayes.  Its prior is ``mu ~ N(0, omega^2)``, and
  the positive-part estimate of omega^2 gives the factor ``B = min(1, V_eff / mu_hat^2)``,
  ``mu = (1 - B) mu_hat``, with ``V_eff = V nu / (nu - 2)`` the drift's squared standard
  error inflated by its own uncertainty (nu = steps - 1 degrees of freedom; the t
  distribution's variance).  With fewer than 4 steps (nu <= 2, a t variance that is
  infinite) no trend is carried: B = 1.
* **sigma^2**, the scale-step variance per decade: the mean over steps of the squared
  step residuals (at every budget both runs measured, ``(d_k(u) - mu dx_k)^2 / dx_k``),
  divided by the residual degrees of freedom ``nu = K - (1 - B)`` (K steps).  Intervals
  use a t quantile with nu degrees of freedom.

The limit A0 (logit of each summary's limit) gets the same model on its own steps.
Nothing here is chosen on the runs it is reported on: the leave-one-scale-out tables fit
it on the training scales of each fold (benchmarks/loso.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: Budgets (ln tokens per parameter) per step at which two summaries are compared.
STEP_GRID = 16


@dataclass
class StepFit:
    """Scale-step model of one quantity (the curve at equal tokens per parameter, or A0)."""

    n_steps: int
    sigma2: float  # logit^2 per decade; nan without steps
    dof: float  # t degrees of freedom of the band; 0 without steps
    drift: float  # shrunk drift, logit per decade
    drift_raw: float
    shrinkage: float  # B in [0, 1]: 1 = no trend
    drift_var: float  # posterior variance of the shrunk drift
    steps: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        def f(v: float) -> float | None:
            return float(v) if np.isfinite(v) else None

        return {"n_steps": self.n_steps, "sigma": f(np.sqrt(self.sigma2)), "dof": f(self.dof),
                "drift": f(self.drift), "drift_raw": f(self.drift_raw),
                "shrinkage": f(self.shrinkage), "drift_sd": f(np.sqrt(self.drift_var)),
                "steps": self.steps}


def fit_steps(dx: Sequence[float], diffs: Sequence[np.ndarray], *, drift: bool = True) -> StepFit:
    """Fit the model on K steps: ``dx[k]`` > 0 decades, ``diffs[k]`` the logit differences
    (later minus earlier scale) at the budgets both runs share (any length >= 1)."""
    dx = np.asarray(dx, float)
    K = dx.size
    if K == 0:
        return StepFit(0, np.nan, 0.0, 0.0, 0.0, 1.0, 0.0)
    means = np.array([float(np.mean(d)) for d in diffs])
    mu_hat = float(means.sum() / dx.sum()) if drift else 0.0

    def rss(mu: float) -> float:
        return float(sum(np.mean((np.asarray(d) - mu * s) ** 2) / s for d, s in zip(diffs, dx, strict=True)))

    B = 1.0
    V = np.nan
    if drift:
        nu_d = K - 1
        V = rss(mu_hat) / max(nu_d, 1) / dx.sum()
        if nu_d > 2 and mu_hat != 0.0:
            B = float(min(1.0, V * nu_d / (nu_d - 2) / mu_hat**2))
    mu = (1.0 - B) * mu_hat
    nu = K - (1.0 - B)
    sigma2 = rss(mu) / nu
    drift_var = (1.0 - B) * (V if np.isfinite(V) else 0.0)
    steps = [{"dx": float(s), "mean": float(m), "rms": float(np.sqrt(np.mean(np.square(d))))}
             for s, m, d in zip(dx, means, diffs, strict=True)]
    return StepFit(K, float(sigma2), float(nu), float(mu), mu_hat, B, float(drift_var), steps)


def overlap_grid(a_u: np.ndarray, b_u: np.ndarray, n: int = STEP_GRID) -> np.ndarray:
    """Budgets (ln tokens per parameter) where two summaries' knots overlap; the midpoint
    of the gap when they do not."""
    lo = max(float(a_u[0]), float(b_u[0]))
    hi = min(float(a_u[-1]), float(b_u[-1]))
    if hi <= lo:
        return np.array([(lo + hi) / 2])
    return np.linspace(lo, hi, n)


@dataclass
class Placement:
    """Where targets sit among the measured scales (vectorized over targets)."""

    lo: np.ndarray  # index (into the sorted scales) of the lower run
    hi: np.ndarray  # index of the upper run (== lo at or beyond an end)
    w: np.ndarray  # weight of the upper run
    var_factor: np.ndarray  # decades of Brownian variance: bridge or |dx| to the end
    dx_end: np.ndarray  # signed decades beyond the nearest end (0 inside)


def place(xs: np.ndarray, x: np.ndarray, *, bridge: bool) -> Placement:
    """Targets ``x`` among sorted scales ``xs``: bracketing runs and Brownian-bridge weights
    inside (``bridge``), else the single nearest run and |dx|."""
    xs = np.asarray(xs, float)
    x = np.asarray(x, float)
    n = xs.size
    near = np.argmin(np.abs(xs[None, :] - x[:, None]), axis=1)
    lo = near.copy()
    hi = near.copy()
    w = np.zeros(x.size)
    var = np.abs(x - xs[near])
    dx_end = np.zeros(x.size)
    out = (x < xs[0]) | (x > xs[-1])
    dx_end[out] = x[out] - xs[near[out]]
    if bridge and n >= 2:
        inside = ~out
        j = np.clip(np.searchsorted(xs, x[inside]), 1, n - 1)
        a, b = xs[j - 1], xs[j]
        span = np.where(b > a, b - a, 1.0)
        wi = np.clip((x[inside] - a) / span, 0.0, 1.0)
        lo[inside], hi[inside], w[inside] = j - 1, j, wi
        var[inside] = (x[inside] - a) * (b - x[inside]) / span
    return Placement(lo=lo, hi=hi, w=w, var_factor=np.maximum(var, 0.0), dx_end=dx_end)
