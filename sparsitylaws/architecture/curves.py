"""Each scale run's measured curve, as the architecture section carries it, and its monotone
summary in (ln tokens per parameter, logit activation ratio).

The cross-scale methods ``nearest`` and ``step`` (:mod:`~sparsitylaws.architecture.scalestep`)
start from the measured curve of the nearest run(s) at equal tokens per parameter, so a law
set carries each scale run's kept points (the points its own fit kept, warm-up left out):
``{"run", "tokens_per_param": [...], "ratio": [...], "source": "measured"}``.  A law set
built from published coefficients only (the packaged default) or written before the curves
were stored (architecture section version 1) has no points; its runs' curves are then their
laws sampled over their token range (``"source": "law"``), said in the entry.

The summary is the isotonic regression of logit(ratio) on ln(tokens per parameter) in the
law's direction (ReLU non-increasing, SiLU non-decreasing: the pool-adjacent-violators fit,
:func:`scipy.optimize.isotonic_regression`), kept as one knot at each measured point (its
ln tokens per parameter and fitted value), interpolated linearly between them.  It is monotone by
construction, follows the measurements wherever they are monotone and averages them where
they are not (the lab's SiLU runs dip, then rise).  Beyond its knots a summary continues
with the run's own law, joined at the end knot in logit: ``z(u) = z_end + L(u) - L(u_end)``,
so it stays monotone and tends to the run's limit A0; where the law itself leaves (0, 1)
(the SiLU form below 0 early, the ReLU form above 1) the value is clamped and flagged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import isotonic_regression

#: Values are kept this far inside (0, 1) before the logit.
EPS = 1e-6
#: Points a law-sampled curve gets over its run's token range.
LAW_POINTS = 25


def logit(p: np.ndarray) -> np.ndarray:
    """logit of p kept EPS inside (0, 1)."""
    p = np.clip(np.asarray(p, float), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def expit(z: np.ndarray) -> np.ndarray:
    """Inverse of :func:`logit` (overflow-safe)."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-np.asarray(z, float)))


def eval_law(form: str, theta: Sequence[float], tokens_b: np.ndarray) -> np.ndarray:
    """A(D) of a paper form at D in billions of tokens (unclamped)."""
    D = np.asarray(tokens_b, float)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        if form == "logspace_power":
            alpha, b, c, a0 = theta
            return np.exp(-c * np.exp(alpha * np.log(D)) + b) + a0
        alpha, c, a0 = theta
        return a0 - c * np.exp(-alpha * np.log(D))


def measured_curve(run: str, tokens: np.ndarray, ratio: np.ndarray, n_params: float,
                   start_tokens: float | None = None) -> dict:
    """The section entry of one run's measured curve: its points from ``start_tokens`` on
    (the first point its own fit kept), as tokens per parameter and activation ratio."""
    t = np.asarray(tokens, float)
    y = np.asarray(ratio, float)
    keep = np.isfinite(t) & np.isfinite(y) & (t > 0)
    if start_tokens is not None and math.isfinite(start_tokens):
        keep &= t >= start_tokens * (1 - 1e-9)
    order = np.argsort(t[keep], kind="stable")
    return {"run": run, "tokens_per_param": (t[keep][order] / n_params).tolist(),
            "ratio": y[keep][order].tolist(), "source": "measured"}


def law_curve(run: str, form: str, theta: Sequence[float], n_params: float,
              tpp_range: Sequence[float]) -> dict:
    """A run's law sampled over a range of tokens per parameter (no measured points)."""
    lo, hi = float(tpp_range[0]), float(tpp_range[1])
    tpp = np.geomspace(lo, hi, LAW_POINTS) if hi > lo else np.array([lo])
    y = np.clip(eval_law(form, theta, tpp * n_params / 1e9), EPS, 1 - EPS)
    return {"run": run, "tokens_per_param": tpp.tolist(), "ratio": y.tolist(), "source": "law"}


@dataclass
class CurveSummary:
    """One run's monotone summary and the law that continues it (see the module docstring)."""

    run: str
    log10_n: float
    sign: float  # +1 ReLU (falls), -1 SiLU (rises)
    form: str
    theta: np.ndarray
    knots_u: np.ndarray  # ln tokens per parameter, increasing
    knots_z: np.ndarray  # logit ratio, monotone
    points_u: np.ndarray
    points_y: np.ndarray
    source: str

    @property
    def n_params(self) -> float:
        return 10.0 ** self.log10_n

    def _law(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(logit law, below 0, above 1) at ln tokens per parameter u."""
        raw = eval_law(self.form, self.theta, np.exp(u) * self.n_params / 1e9)
        raw = np.where(np.isfinite(raw), raw, np.where(self.sign > 0, 1.0, 0.0))
        return logit(raw), raw <= 0, raw >= 1

    def at(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(logit value, floor flag, ceiling flag) at ln tokens per parameter ``u``."""
        u = np.asarray(u, float)
        if self.source == "law":  # no measured points: the law itself, exactly
            return self._law(u)
        z = np.interp(u, self.knots_u, self.knots_z)
        floor = np.zeros(u.shape, bool)
        ceil = np.zeros(u.shape, bool)
        for side, end in ((u > self.knots_u[-1], -1), (u < self.knots_u[0], 0)):
            if np.any(side):
                lz, lo, hi = self._law(u[side])
                lz_end = self._law(np.array([self.knots_u[end]]))[0][0]
                ext = self.knots_z[end] + lz - lz_end
                # never back past the end knot (a law is monotone; this guards rounding)
                later = end == -1
                ext = (np.minimum if (self.sign > 0) == later else np.maximum)(ext, self.knots_z[end])
                z[side] = ext
                floor[side] = lo
                ceil[side] = hi
        return z, floor, ceil

    def limit(self) -> float:
        """logit of the summary's limit as tokens -> infinity: the end knot moved by the
        law's remaining change (the law's A0 against its value at the end knot)."""
        a0 = float(self.theta[-1])
        lz_end = self._law(np.array([self.knots_u[-1]]))[0][0]
        return float(self.knots_z[-1] + logit(a0) - lz_end)


def summarize(curve: Mapping, *, log10_n: float, form: str, theta: Sequence[float]) -> CurveSummary:
    """The monotone summary of one stored curve entry (isotonic in the law's direction)."""
    tpp = np.asarray(curve["tokens_per_param"], float)
    y = np.asarray(curve["ratio"], float)
    ok = np.isfinite(tpp) & (tpp > 0) & np.isfinite(y)
    u, z = np.log(tpp[ok]), logit(y[ok])
    order = np.argsort(u, kind="stable")
    u, z, yy = u[order], z[order], y[ok][order]
    sign = 1.0 if form == "logspace_power" else -1.0
    if u.size == 0:
        raise ValueError(f"curve of run {curve.get('run')!r} has no usable points")
    iso = isotonic_regression(z, increasing=sign < 0).x
    # points at one budget (repeated measurements) become one knot at their pooled value
    ku, first = np.unique(u, return_index=True)
    kz = iso[first]
    return CurveSummary(run=str(curve.get("run", "")), log10_n=float(log10_n), sign=sign, form=form,
                        theta=np.asarray(theta, float), knots_u=ku, knots_z=kz, points_u=u,
                        points_y=yy, source=str(curve.get("source", "measured")))
