"""A batched Levenberg-Marquardt solver in numpy: many fits of one form at once.

* :func:`lm_batch` - fits many replicates at once (same D, different y, or different per-row
  weights and priors) in the *unconstrained* parameterization of the form (log / logit
  transforms), so physical bounds hold by construction; robust losses by iteratively
  reweighted Gauss-Newton; an optional :class:`~.prior.Prior` (a MAP fit).  Used by the
  headline fit (:mod:`.pointfit`), the bootstrap and profile likelihood (:mod:`.uncertainty`),
  the warm-up average (:mod:`.warmup`), form comparison and backtests.
* :func:`curve_gradient_u` - d A(D) / d u, for delta-method bands.

Kept apart from the fits so the numerics can be read and tested on their own (the method:
docs/fitting.md, "Batched solver").  All D values are in billions of tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sparsitylaws.runfit.forms import LawForm
from sparsitylaws.runfit.prior import Prior

__all__ = ["LMResult", "curve_gradient_u", "lm_batch"]


@dataclass
class LMResult:
    """Output of :func:`lm_batch`: unconstrained parameters, costs and convergence per row."""

    u: np.ndarray
    cost: np.ndarray
    converged: np.ndarray
    n_iter: int
    #: not converged, but the cost fell by less than ``stall_rtol`` over ``stall_window``
    #: iterations (such rows stop there): the fit has settled while parameters drift along a flat
    #: valley towards the edge of the parameter space (e.g. alpha -> 0 in logspace_power).
    stalled: np.ndarray | None = None


def _rho_prime(z: np.ndarray, loss: str) -> np.ndarray:
    """Derivative of the robust loss rho(z), z = (r / f_scale)^2 (scipy conventions)."""
    if loss == "linear":
        return np.ones_like(z)
    if loss == "soft_l1":
        return 1.0 / np.sqrt(1.0 + z)
    return np.where(z <= 1.0, 1.0, 1.0 / np.sqrt(np.maximum(z, 1.0)))  # huber


def _rho(z: np.ndarray, loss: str) -> np.ndarray:
    if loss == "linear":
        return z
    if loss == "soft_l1":
        return 2.0 * (np.sqrt(1.0 + z) - 1.0)
    return np.where(z <= 1.0, z, 2.0 * np.sqrt(np.maximum(z, 1.0)) - 1.0)


def _cost(r: np.ndarray, loss: str, f_scale: float) -> np.ndarray:
    """0.5 * sum f^2 rho((r/f)^2) per row; +inf for rows with non-finite residuals."""
    with np.errstate(over="ignore", invalid="ignore"):
        z = (r / f_scale) ** 2
        c = 0.5 * f_scale**2 * np.sum(_rho(z, loss), axis=-1)
    return np.where(np.isfinite(c), c, np.inf)


def _residuals(form: LawForm, D: np.ndarray, Y: np.ndarray, U: np.ndarray, sw: np.ndarray) -> np.ndarray:
    return (form.evaluate(D, form.from_unconstrained(U)) - Y) * sw


def _sw3(sw: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Square-root weights (n,) or (m, n) broadcast against a Jacobian (m, n, k)."""
    w = np.asarray(sw, float)
    return w[None, :, None] if w.ndim == 1 else w[:, :, None]


def curve_gradient_u(form: LawForm, D: np.ndarray, u: np.ndarray) -> np.ndarray:
    """d A(D) / d u at one u (central differences), shape (len(D), k)."""
    J = _jacobian(form, np.atleast_1d(np.asarray(D, float)), np.asarray(u, float)[None, :], np.ones(1))
    return J[0]


def _jacobian(form: LawForm, D: np.ndarray, U: np.ndarray, sw: np.ndarray) -> np.ndarray:
    """Jacobian of the (weighted) curve w.r.t. u, shape (m, n, k): the form's analytic one
    where it has it (tests compare it with central differences), else central differences."""
    Ja = form.jacobian_u(D, U)
    if Ja is not None:
        return Ja * _sw3(sw, Ja.shape)
    m, k = U.shape
    h = 1e-6 * np.maximum(1.0, np.abs(U))
    J = np.empty((m, D.size, k))
    for j in range(k):
        up, um = U.copy(), U.copy()
        up[:, j] += h[:, j]
        um[:, j] -= h[:, j]
        fp = form.evaluate(D, form.from_unconstrained(up))
        fm = form.evaluate(D, form.from_unconstrained(um))
        J[:, :, j] = (fp - fm) / (2.0 * h[:, j, None]) * sw
    return J


@np.errstate(all="ignore")  # non-finite trial steps are rejected explicitly
def lm_batch(
    form: LawForm,
    D: np.ndarray,
    Y: np.ndarray,
    U0: np.ndarray,
    *,
    sw: np.ndarray | None = None,
    loss: str = "linear",
    f_scale: float = 1.0,
    max_iter: int = 100,
    ftol: float = 1e-10,
    xtol: float = 1e-10,
    gtol: float = 1e-8,
    stall_window: int = 20,
    stall_rtol: float = 1e-6,
    fixed: np.ndarray | None = None,
    prior: Prior | None = None,
) -> LMResult:
    """Levenberg-Marquardt on many rows at once: row i fits Y[i] (or Y) from U0[i].

    Square-root weights ``sw`` have shape (n,) or (m, n); a zero weight leaves a point out.

    Works in the unconstrained parameterization; robust losses by iteratively reweighted
    Gauss-Newton (weights rho'(z)).  A row converges when an accepted step changes the cost
    by less than ``ftol`` (relative) or moves u by less than ``xtol`` (relative), or when no
    step can lower the cost any more, or when the gradient scaled by sqrt(diag(J'J) * 2 cost)
    is below ``gtol`` (the cosine between residual and every Jacobian column).
    ``fixed`` (bool, shape (k,)) holds those unconstrained parameters at their U0 values (used
    by the profile likelihood).  ``prior`` adds its pseudo-residuals (a MAP fit; quadratic
    whatever the loss).
    """
    D = np.asarray(D, float)
    U = np.array(U0, dtype=float, ndmin=2)
    m, k = U.shape
    Y = np.broadcast_to(np.asarray(Y, float), (m, D.size))
    sw = np.broadcast_to(np.ones(D.size) if sw is None else np.asarray(sw, float), (m, D.size))
    r = _residuals(form, D, Y, U, sw)
    rp = prior.residuals(U) if prior is not None else None
    cost = _cost(r, loss, f_scale) + (0.5 * np.sum(rp**2, axis=1) if rp is not None else 0.0)
    free = np.ones(k) if fixed is None else (~np.asarray(fixed, bool)).astype(float)
    lam = np.full(m, 1e-3)
    active = np.isfinite(cost)
    converged = np.zeros(m, bool)
    it = 0
    eye = np.eye(k)
    cost_window = cost.copy()
    stalled = np.zeros(m, bool)
    for it in range(1, max_iter + 1):  # noqa: B007 - it is reported
        if it % stall_window == 0:
            # settled rows (cost fell by < stall_rtol over the window while steps are being
            # accepted, lam < 1) stop here: they drift along a flat valley and more
            # iterations would not change the fit
            st = active & (cost_window - cost <= stall_rtol * np.maximum(cost, 1e-300)) & (lam < 1.0)
            stalled |= st
            active &= ~st
            cost_window = cost.copy()
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        Ua, ra = U[idx], r[idx]
        J = _jacobian(form, D, Ua, sw[idx])
        if fixed is not None:
            J[:, :, np.asarray(fixed, bool)] = 0.0
        wt = _rho_prime((ra / f_scale) ** 2, loss)
        Jt = J.transpose(0, 2, 1)
        A = np.matmul(Jt * wt[:, None, :], J)
        g = np.matmul(Jt, (wt * ra)[:, :, None])[:, :, 0]
        if prior is not None:
            _, coef = prior.rows(idx, m)
            coef = coef * free[None, :]
            A = A + coef[:, :, None] ** 2 * eye
            g = g + coef * rp[idx]
        dA = np.maximum(np.einsum("mii->mi", A), 1e-12 * np.max(np.abs(A), axis=(1, 2))[:, None] + 1e-300)
        M = A + lam[idx, None, None] * dA[:, :, None] * eye
        try:
            step = -np.linalg.solve(M, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            step = -np.einsum("mij,mj->mi", np.linalg.pinv(M), g)
        Un = Ua + step
        rn = _residuals(form, D, Y[idx], Un, sw[idx])
        cn = _cost(rn, loss, f_scale)
        if prior is not None:
            rpn = prior.residuals(Un, idx, m)
            cn = cn + 0.5 * np.sum(rpn**2, axis=1)
        ok = np.isfinite(cn) & (cn <= cost[idx])
        small_f = ok & (cost[idx] - cn <= ftol * np.maximum(cost[idx], 1e-300))
        small_x = ok & (np.linalg.norm(step, axis=1) <= xtol * (np.linalg.norm(Ua, axis=1) + xtol))
        acc = idx[ok]
        U[acc], r[acc], cost[acc] = Un[ok], rn[ok], cn[ok]
        if prior is not None:
            rp[acc] = rpn[ok]
        lam[acc] = np.maximum(lam[acc] / 3.0, 1e-12)
        lam[idx[~ok]] *= 4.0
        gscaled = np.abs(g) / np.sqrt(dA * np.maximum(2 * cost[idx, None], 1e-300))
        small_g = np.max(gscaled, axis=1) < gtol
        done = small_f | small_x | small_g
        # stuck: no step lowers the cost; accept as converged when the scaled gradient is tiny
        stuck = ~ok & (lam[idx] > 1e10)
        if stuck.any():
            gn = np.abs(g[stuck]) / np.sqrt(dA[stuck] * np.maximum(2 * cost[idx][stuck, None], 1e-300))
            converged[idx[stuck]] = np.max(gn, axis=1) < 1e-4
            active[idx[stuck]] = False
        converged[idx[done]] = True
        active[idx[done]] = False
    converged &= np.isfinite(cost)
    stalled = (stalled | (active & (cost_window - cost <= stall_rtol * np.maximum(cost, 1e-300)))
               ) & ~converged & np.isfinite(cost)
    return LMResult(u=U, cost=cost, converged=converged, n_iter=it, stalled=stalled)
