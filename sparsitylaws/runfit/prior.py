"""The weakly informative prior on a form's unconstrained parameters (a maximum a posteriori fit).

* :class:`Prior` - a Gaussian prior u_j ~ N(mean_j, sd_j^2) on the unconstrained parameters,
  added to a least-squares fit as pseudo-residuals; it picks one point of a flat valley, so
  estimates do not slide along it under tiny noise (docs/fitting.md).
* :func:`make_prior` - the form's own prior for given data, its noise scale from
  :func:`pilot_noise` (a robust noise sd without fitting); :func:`rescale` sets that scale to
  a fit's residual sd.

Kept apart from the solver (:mod:`.lmbatch`) and the fits (:mod:`.pointfit`), which both take a
prior, because it needs only the forms.  All D values are in billions of tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sparsitylaws.runfit.forms import LawForm

__all__ = ["Prior", "make_prior", "pilot_noise", "rescale"]


@dataclass(frozen=True)
class Prior:
    """Gaussian prior on the unconstrained parameters u of a form: u_j ~ N(mean_j, sd_j^2).

    In a least-squares fit it adds the pseudo-residuals ``scale * (u - mean) / sd`` (``scale``
    the noise sd of the data, in the fit's weighted units), so the objective is, up to a
    factor, the negative log posterior.  ``mean`` may be (k,) or one row per fitted row (m, k)
    and ``scale`` a float or (m,), for batched fits of different subsets.
    """

    mean: np.ndarray
    sd: np.ndarray
    scale: np.ndarray | float

    def rows(self, idx: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """(mean, coefficient scale / sd) for the rows ``idx`` of an (m, k) batch."""
        mean = np.broadcast_to(np.asarray(self.mean, float), (m, np.size(self.sd)))[idx]
        sc = np.broadcast_to(np.asarray(self.scale, float), (m,))[idx]
        return mean, sc[:, None] / np.asarray(self.sd, float)[None, :]

    def residuals(self, U: np.ndarray, idx: np.ndarray | None = None, m: int | None = None) -> np.ndarray:
        """Pseudo-residuals of rows U (those rows ``idx`` of an m-row batch)."""
        m = U.shape[0] if m is None else m
        idx = np.arange(m) if idx is None else idx
        mean, coef = self.rows(idx, m)
        return coef * (U - mean)


def pilot_noise(D: np.ndarray, y: np.ndarray) -> float:
    """A robust noise sd of a curve without fitting it: 1.4826 * MAD of the second differences
    (in token order) / sqrt(6) (the sd of a second difference of white noise is sqrt(6)
    sigma); a smooth trend barely enters second differences.  Floored at 1e-6."""
    order = np.argsort(np.asarray(D, float), kind="stable")
    z = np.asarray(y, float)[order]
    if z.size < 4:
        return max(float(np.ptp(z)) / 10.0, 1e-6)
    d2 = np.diff(z, 2)
    return max(1.4826 * float(np.median(np.abs(d2 - np.median(d2)))) / math.sqrt(6.0), 1e-6)


def make_prior(form: LawForm, D: np.ndarray, y: np.ndarray, sw: np.ndarray | None = None,
               scale: float | None = None) -> Prior | None:
    """The form's weakly informative prior for these data (None when the form has none).

    ``scale``: the noise sd in the fit's weighted units; default the pilot estimate
    (:func:`pilot_noise`).  The fits refine it with their own residual sd (:func:`rescale`).
    """
    ms = form.prior(D, y)
    if ms is None:
        return None
    if scale is None:
        w = 1.0 if sw is None else float(np.median(np.asarray(sw, float)))
        scale = pilot_noise(D, y) * w
    return Prior(ms[0], ms[1], float(scale))


def rescale(prior: Prior | None, sigma_w: float) -> Prior | None:
    """The prior with its noise scale set to the fit's residual sd when that is larger than the
    pilot: the prior's pseudo-residuals must be in the units of the actual residuals (second
    differences miss slow, correlated wiggles and form error), else it is weaker than meant."""
    if prior is None or not np.isfinite(sigma_w) or sigma_w <= float(np.max(prior.scale)):
        return prior
    return Prior(prior.mean, prior.sd, float(sigma_w))


def _resolve_prior(prior: Prior | str | None, form: LawForm, D: np.ndarray, y: np.ndarray,
                   sw: np.ndarray | None) -> Prior | None:
    return make_prior(form, D, y, sw) if isinstance(prior, str) and prior == "auto" else prior
