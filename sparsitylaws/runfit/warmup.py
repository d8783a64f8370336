"""Which points of a training curve a fit uses: warm-up handled by averaging over warm-up lengths.

* :func:`warmup_average` - Bayesian model averaging over warm-up lengths (a uniform density
  for warm-up points), giving each early point a weight in [0, 1] that moves continuously
  with the data (no hard cut a tiny perturbation can flip).
* :func:`select_points` - applies the warm-up average or the ``drop_first`` / ``min_tokens``
  overrides and says which points were dropped or down-weighted and why.

The fits themselves are :mod:`.pointfit`'s.  All D values are in billions of tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sparsitylaws.errors import FitInputError
from sparsitylaws.runfit.forms import LawForm, get_form
from sparsitylaws.runfit.pointfit import fit_subsets

__all__ = ["PI_FULL", "PI_MIN", "PointSelection", "fit_weights", "WarmupAverage", "select_points", "warmup_average"]

#: Warm-up average: points whose probability of lying past the warm-up is below this are
#: reported as dropped and get no weight in the fit; their weight rises continuously from 0 at
#: PI_MIN to the full probability at :data:`PI_FULL` (:func:`fit_weights`), so no fit jumps as
#: a probability crosses the cut.  A warm-up point lies far from the law: a hard cut at 0.001
#: moved a lab-cpu limit 0.33 points under 0.001-point noise, and keeping such points at their
#: small probability lets them pull the fit (0.001 times a squared residual of 30 points moved
#: a lab-gpu limit 1.1 points).
PI_MIN = 1e-3
#: ... and from this probability on a point is fitted at its full probability.
PI_FULL = 1e-2


def fit_weights(prob: np.ndarray) -> np.ndarray:
    """Weight in the fit of points with these probabilities of lying past the warm-up: the
    probability, tapered to 0 log-linearly between :data:`PI_FULL` and :data:`PI_MIN`
    (continuous, and exactly the probability from PI_FULL on)."""
    p = np.asarray(prob, float)
    ramp = np.clip(np.log(np.maximum(p, 1e-300) / PI_MIN) / math.log(PI_FULL / PI_MIN), 0.0, 1.0)
    return p * ramp


@dataclass(frozen=True)
class WarmupAverage:
    """Warm-up handled by averaging over warm-up lengths (points in token order).

    Model c says: the first c points are warm-up (any value in the range of the data, a
    uniform density) and the rest follow the law with Gaussian noise.  Every model explains
    all n points, so their likelihoods compare directly; with a uniform prior over
    c = 0..c_max the posterior weights are ``weights`` (Bayesian model averaging, the law's
    parameters and noise at their maximum for each c: a Laplace/BIC-type approximation with
    the same k in every model).  ``inclusion[i]`` = sum of the weights of c <= i: the
    probability that point i lies past the warm-up, its weight in the fit.  All of it moves
    continuously with the data: no hard cut that a tiny perturbation can flip.
    """

    cuts: np.ndarray  # c = 0..c_max
    weights: np.ndarray  # posterior weight of each c
    loglik: np.ndarray  # its log-likelihood
    limits: np.ndarray  # the limit parameter of each c's fit (NaN when the form has none)
    inclusion: np.ndarray  # per point (token order)

    def limit_spread(self) -> float:
        """Between-warm-up sd of the limit: sqrt(sum w_c (A0_c - mean)^2) (0 without a limit)."""
        ok = np.isfinite(self.limits)
        if not ok.any():
            return 0.0
        w = self.weights[ok] / np.sum(self.weights[ok])
        m = float(np.sum(w * self.limits[ok]))
        return float(math.sqrt(np.sum(w * (self.limits[ok] - m) ** 2)))

    def to_dict(self) -> dict:
        """JSON-safe summary (floats rounded to what matters: weights to 1e-6)."""
        return {"cuts": [int(c) for c in self.cuts],
                "weights": [round(float(w), 6) for w in self.weights],
                "limits": [None if not np.isfinite(v) else float(v) for v in self.limits],
                "limit_spread": self.limit_spread()}


def warmup_max(n: int, k: int) -> int:
    """Most leading points a warm-up may take: n // 3, leaving at least k + 3 points."""
    return max(0, min(n // 3, n - (k + 3)))


def warmup_average(form: LawForm | str, D: np.ndarray, y: np.ndarray, *, sw: np.ndarray | None = None
                   ) -> WarmupAverage:
    """Posterior weights of warm-up lengths c = 0..:func:`warmup_max` (D sorted ascending).

    log L_c = sum_{i >= c} log N(y_i; A_c(D_i), s_c^2) - c log(R), with A_c and s_c^2 (ML) the
    law fitted to points c.. (with its prior) and R the range of the (weighted) data: a
    warm-up point may lie anywhere in it.  Dropping a point that the law describes costs
    about log(R / s) nats; dropping one several s away gains.  One batched fit per c.
    """
    form = get_form(form)
    D, y = np.asarray(D, float), np.asarray(y, float)
    sw = np.ones(D.size) if sw is None else np.asarray(sw, float)
    n, k = D.size, form.n_params
    cmax = warmup_max(n, k)
    cuts = np.arange(cmax + 1)
    if cmax == 0:
        return WarmupAverage(cuts, np.ones(1), np.zeros(1), np.full(1, np.nan), np.ones(n))
    masks = [np.arange(n) >= c for c in cuts]
    fits = fit_subsets(form, D, y, masks, sw=sw)
    R = max(float(np.ptp(y * sw)), 1e-9)
    ia = form.limit_index()
    ll, limits = [], []
    for c, pf in zip(cuts, fits, strict=True):
        r = (y[c:] - form.evaluate(D[c:], pf.theta)) * sw[c:]
        s2 = max(float(np.mean(r**2)), (1e-9 * R) ** 2)
        ll.append(-0.5 * (n - c) * (math.log(2 * math.pi * s2) + 1.0) - c * math.log(R))
        limits.append(float(pf.theta[ia]) if ia is not None else math.nan)
    ll_arr = np.array(ll)
    w = np.exp(ll_arr - np.max(ll_arr))
    w /= w.sum()
    incl = np.ones(n)
    incl[:cmax] = np.minimum(np.cumsum(w)[:cmax], 1.0)  # from point c_max on: weight 1 exactly
    return WarmupAverage(cuts, w, ll_arr, np.array(limits), incl)


@dataclass(frozen=True)
class PointSelection:
    """Which points are fitted and with what weight, plus the reason for each dropped or
    down-weighted point."""

    keep: np.ndarray  # bool: counted as kept (weight >= PI_MIN; a manual rule's points)
    dropped: list[dict]  # {"index": i, "tokens_b": D, "reason": str}: not kept
    rule: str
    weight: np.ndarray | None = None  # inclusion weight per point (None: keep as 0/1)
    warmup: WarmupAverage | None = None
    downweighted: list[dict] = field(default_factory=list)  # fitted with weight < 1

    @property
    def n_dropped(self) -> int:
        """Number of points excluded."""
        return len(self.dropped)

    @property
    def fitted(self) -> np.ndarray:
        """bool: the points the fit sees.  Under the warm-up average all of them (their prior
        and starting points come from the same points whatever the weights), each at its
        weight (:func:`fit_weights`: 0 below :data:`PI_MIN`), so the fit moves continuously
        with the data; under a manual rule the points it keeps."""
        return np.ones(self.keep.size, bool) if self.warmup is not None else self.keep

    @property
    def fit_weight(self) -> np.ndarray | None:
        """Weights in the fit of the :attr:`fitted` points (None: a manual rule, all 1)."""
        return None if self.warmup is None or self.weight is None else fit_weights(self.weight)


def select_points(form: LawForm | str, D: np.ndarray, y: np.ndarray, *, sw: np.ndarray | None = None,
                  drop_first: int | None = None, min_tokens: float | None = None,
                  run: str = "?") -> PointSelection:
    """Apply ``drop_first`` / ``min_tokens`` (billions) when given, else the warm-up average
    (:func:`warmup_average`): points get probabilities of lying past the warm-up (``weight``)
    and are fitted at :func:`fit_weights` of them; those below :data:`PI_MIN` are reported as
    dropped (:attr:`PointSelection.fitted`)."""
    D = np.asarray(D, float)
    keep = np.ones(D.size, bool)
    dropped: list[dict] = []
    if drop_first is not None or min_tokens is not None:
        parts = []
        if drop_first is not None:
            if int(drop_first) < 0:
                raise FitInputError(f"run {run!r}: argument 'drop_first' must be >= 0, got {drop_first}")
            keep[: int(drop_first)] = False
            parts.append(f"drop_first={int(drop_first)}")
        if min_tokens is not None:
            keep &= float(min_tokens) <= D
            parts.append(f"min_tokens={float(min_tokens):g}B")
        rule = "manual: " + ", ".join(parts)
        for i in np.flatnonzero(~keep):
            dropped.append({"index": int(i), "tokens_b": float(D[i]), "reason": rule})
        return PointSelection(keep, dropped, rule, keep.astype(float))
    form = get_form(form)
    order = np.argsort(D, kind="stable")
    wa = warmup_average(form, D[order], np.asarray(y, float)[order],
                        sw=None if sw is None else np.asarray(sw, float)[order])
    weight = np.empty(D.size)
    weight[order] = wa.inclusion
    keep = weight >= PI_MIN
    down = []
    for i in order:
        if weight[i] >= 1.0 - 1e-12:
            continue
        rec = {"index": int(i), "tokens_b": float(D[i]), "weight": float(weight[i]),
               "reason": (f"warm-up: weight {weight[i]:.3g} = probability of lying past the warm-up "
                          "(average over warm-up lengths)")}
        (dropped if not keep[i] else down).append(rec)
    rule = (f"auto: average over warm-up lengths 0-{int(wa.cuts[-1])} (posterior weights; a warm-up "
            "point may lie anywhere in the data's range), points weighted by the probability of "
            "lying past the warm-up")
    return PointSelection(keep, dropped, rule, weight, wa, down)


