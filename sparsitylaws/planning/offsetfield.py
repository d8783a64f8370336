"""The recipe offset as a random field: kriging it from anchors, and how far it drifts.

A recipe's offset from a law set, ``o = logit(measured) - logit(law)``, is not one number:
it moves with the configuration and the budget.  It is modelled as a Brownian field with
a nugget: ``Var[o(x) - o(y)] = tau^2 d(x, y) + eta_x^2 + eta_y^2``, where d is the distance
in decades, ``||(d log10 N, d log10 width/depth)|| + |d log10 tokens|`` (:func:`distances`),
and eta an anchor's measurement noise (its stated noise plus a common nugget estimated
from the anchors when there are enough of them).

* :func:`krige`: ordinary kriging of the offset at targets from anchors, with that
  variogram in the weights (nearer anchors, in configuration *and* budget, weigh more)
  and in the variance.
* :func:`reml`: the drift tau^2 and the nugget from the anchors, by restricted maximum
  likelihood on the contrasts ``o_i - o_0`` (the unknown mean cancels).
* :func:`pool_tau`: a conjugate-style prior on tau^2 (scaled inverse chi-square with
  ``prior_dof`` degrees of freedom around the measured between-recipe value): the
  posterior ``tau^2 = (nu0 tau0^2 + (K - 1) tau_hat^2) / (nu0 + K - 1)`` with a t quantile
  of nu0 + K - 1 degrees of freedom, so anchors that agree (tau_hat small) can only
  narrow the band, and anchors that disagree widen it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import optimize


def distances(a: Any, b: Any) -> np.ndarray:
    """Pairwise distances (decades) between positions: with three columns, log10 of (N,
    tokens, width/depth), ``||(dN, dr)|| + |dD|``; otherwise Euclidean."""
    a = np.atleast_2d(np.asarray(a, float))
    b = np.atleast_2d(np.asarray(b, float))
    if a.shape[1] == 3:
        cfg = np.sqrt(((a[:, None, [0, 2]] - b[None, :, [0, 2]]) ** 2).sum(axis=2))
        return cfg + np.abs(a[:, None, 1] - b[None, :, 1])
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2))


def krige(points: Any, offsets: Any, noise: Any, tau: float, targets: Any
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ordinary kriging of the offset under ``gamma(d) = tau^2 d / 2`` plus the anchors' noise.

    ``points`` (n, k) and ``targets`` (m, k) are positions (:func:`distances`), ``offsets``
    (n,) measured with sd ``noise`` (n,).  Variogram between anchors i != j:
    ``tau^2 d_ij / 2 + (noise_i^2 + noise_j^2) / 2``; to a target ``tau^2 d / 2 + noise_i^2 / 2``.
    Returns (offset (m,), sd (m,), weighted distance sum_k |w_k| d_k (m,)).  One anchor: its
    offset, sd^2 = tau^2 d + noise^2.
    """
    x = np.atleast_2d(np.asarray(points, float))
    o = np.asarray(offsets, float)
    nz2 = np.asarray(noise, float) ** 2
    t = np.atleast_2d(np.asarray(targets, float))
    n = o.size
    dxx = distances(x, x)
    dxt = distances(x, t)  # (n, m)
    g = tau**2 * dxx / 2 + (nz2[:, None] + nz2[None, :]) / 2
    np.fill_diagonal(g, 0.0)
    gt = tau**2 * dxt / 2 + nz2[:, None] / 2
    a = np.zeros((n + 1, n + 1))
    a[:n, :n] = g
    a[:n, n] = a[n, :n] = 1.0
    b = np.vstack([gt, np.ones((1, t.shape[0]))])
    sol = np.linalg.lstsq(a, b, rcond=None)[0]
    w, mu = sol[:n], sol[n]
    var = np.maximum(np.sum(w * gt, axis=0) + mu, 0.0)
    return w.T @ o, np.sqrt(var), np.sum(np.abs(w) * dxt, axis=0)


def _contrast_cov(d: np.ndarray, noise2: np.ndarray, tau2: float, nug2: float) -> np.ndarray:
    """Covariance of the contrasts o_i - o_0 (i >= 1) under the variogram."""
    m = (d[1:, :1] + d[:1, 1:] - d[1:, 1:]) / 2
    e = noise2 + nug2
    return tau2 * m + e[0] + np.diag(e[1:])


def reml(offsets: Any, noise: Any, points: Any) -> tuple[float, float]:
    """(tau^2, nugget^2): restricted maximum likelihood on the contrasts o_i - o_0.

    With three or more anchors the nugget (a noise common to every anchor on top of its
    stated noise) is estimated with tau^2; with two, only tau^2.  Fewer than two anchors,
    or all at one position: (nan, 0).
    """
    o = np.asarray(offsets, float)
    n2 = np.asarray(noise, float) ** 2
    x = np.asarray(points, float).reshape(o.size, -1)
    d = distances(x, x)
    if o.size < 2 or not np.any(d > 0):
        return math.nan, 0.0
    r = o[1:] - o[0]
    scale = max(float(np.var(o)), 1e-12)

    def nll(p: np.ndarray) -> float:
        tau2 = math.exp(p[0])
        nug2 = math.exp(p[1]) if p.size > 1 else 0.0
        c = _contrast_cov(d, n2, tau2, nug2)
        sign, logdet = np.linalg.slogdet(c)
        if sign <= 0:
            return 1e300
        return 0.5 * (logdet + float(r @ np.linalg.solve(c, r)))

    dmax = float(d.max())
    lo, hi = math.log(scale * 1e-8 / dmax), math.log(scale * 1e3 / max(dmax, 1e-6) + 1e-12)
    if o.size == 2:
        res = optimize.minimize_scalar(lambda v: nll(np.array([v])), bounds=(lo, hi), method="bounded")
        return float(math.exp(res.x)), 0.0
    # start: half the variance to each part; Nelder-Mead on the logs, kept inside the bounds
    blo = np.array([lo, math.log(scale * 1e-8)])
    bhi = np.array([hi, math.log(scale * 1e3)])
    p0 = np.clip([math.log(scale / 2 / dmax), math.log(scale / 2)], blo, bhi)
    res = optimize.minimize(lambda p: nll(np.clip(p, blo, bhi)), p0, method="Nelder-Mead",
                            options={"xatol": 1e-4, "fatol": 1e-9, "maxiter": 2000})
    p = np.clip(res.x, blo, bhi)
    return float(math.exp(p[0])), float(math.exp(p[1]))


def pool_tau(tau_hat2: float, n_anchors: int, prior_tau: float, prior_dof: float
             ) -> tuple[float, float]:
    """(tau, dof): the drift after the anchors, pooled with its prior (module docstring);
    the prior alone when it cannot be estimated (``tau_hat2`` nan)."""
    if not math.isfinite(tau_hat2) or n_anchors < 2:
        return float(prior_tau), float(prior_dof)
    k = n_anchors - 1
    dof = prior_dof + k
    return math.sqrt((prior_dof * prior_tau**2 + k * tau_hat2) / dof), float(dof)
