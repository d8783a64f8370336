"""Fitting a law form to one training curve: multi-start, bounded, optionally robust.

What lives here (see docs/fitting.md for the method and its reasons):

* :func:`fit_points` - the headline fit: every data-driven starting point is fitted with
  the batched solver, then lmfit (scipy ``least_squares`` underneath, in the unconstrained
  parameterization) from the best end, the best optimum is kept, and a multi-start report
  says how many starts reached it and how far apart near-optimal solutions are.  Covariance
  by Gauss-Newton, diagnostics as :class:`FitWarning` records.
* :func:`fit_points_fast` / :func:`fit_subsets` - the same objective by the batched solver
  alone (subsets of the same points in one batch): for comparisons, backtests and the
  warm-up average.

Elsewhere, and re-exported here (imports from this module are unchanged):

* :mod:`.lmbatch` - :func:`lm_batch`, the batched Levenberg-Marquardt solver in numpy that
  fits many replicates at once in the *unconstrained* parameterization of the form (log /
  logit transforms), so physical bounds hold by construction.  Used by the fits here, the
  bootstrap, the warm-up average (:mod:`.warmup`), form comparison and backtests.
* :mod:`.prior` - :class:`Prior` / :func:`make_prior`, the weakly informative prior on the
  unconstrained parameters that every fit of a form with one carries (a maximum a posteriori
  fit): it picks one point of a flat valley, so estimates do not slide along it under tiny noise.

All D values are in billions of tokens.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field

import lmfit
import numpy as np
from scipy import stats

from sparsitylaws.errors import FitInputError
from sparsitylaws.runfit.forms import LawForm, get_form
from sparsitylaws.runfit.lmbatch import (  # noqa: F401 - private names re-exported for old imports
    LMResult,
    _cost,
    _jacobian,
    _residuals,
    _rho,
    _rho_prime,
    _sw3,
    curve_gradient_u,
    lm_batch,
)
from sparsitylaws.runfit.prior import (  # noqa: F401 - pilot_noise re-exported for old imports
    Prior,
    _resolve_prior,
    make_prior,
    pilot_noise,
    rescale,
)

__all__ = [
    "LOSSES",
    "FitWarning",
    "LMResult",
    "MultiStartReport",
    "PointFit",
    "Prior",
    "check_inputs",
    "fit_points",
    "fit_points_fast",
    "fit_subsets",
    "lm_batch",
    "make_prior",
]

LOSSES = ("linear", "soft_l1", "huber")
#: Iteration cap of the point fits' solver (:func:`~sparsitylaws.runfit.lmbatch.lm_batch`;
#: rows that settle on a flat valley stop earlier).  At 100, a prefix the law barely describes
#: (gpu-silu-w64-d2 cut at 20%) ended its starts wherever the cap caught them, so the best start
#: changed under 1e-7 of noise and its limit, noise and forecast jumped (the law 0.3 points, the
#: noise 4%); at 300 and more every start reaches the same optimum there, and across lab-gpu's
#: backtests no cut state moves by more than a few times the noise (docs/fitting.md, "Continuity").
FIT_MAX_ITER = 1000

#: Condition number of the parameter correlation matrix above which we warn.
COND_WARN = 1e8
#: Relative RSS excess below which a start counts as having reached the best optimum.
BEST_RTOL = 1e-6
#: Relative RSS excess below which a start counts as near-optimal.
NEAR_RTOL = 1e-2


@dataclass(frozen=True)
class FitWarning:
    """A structured diagnostic: a short code, a readable message, the parameter concerned."""

    code: str
    message: str
    parameter: str | None = None

    def to_dict(self) -> dict:
        """JSON-safe dict."""
        return asdict(self)


@dataclass(frozen=True)
class MultiStartReport:
    """How the multi-start fit went.

    ``n_at_best``: starts whose RSS is within ``BEST_RTOL`` (relative) of the best.
    ``n_near_optimal``: starts within ``near_rtol`` of the best RSS; ``max_spread`` gives, per
    parameter, the largest distance between a near-optimal solution and the best one, and
    ``max_spread_se`` the same in units of that parameter's standard error (largest over
    parameters; None when standard errors are unavailable).
    """

    n_starts: int
    n_converged: int
    n_at_best: int
    near_rtol: float
    n_near_optimal: int
    max_spread: dict[str, float]
    max_spread_se: float | None


#: Starts kept (by their initial cost) in the batched fits of subsets and backtests.
FAST_STARTS = 3


def _best_starts(form: LawForm, D: np.ndarray, y: np.ndarray, sw: np.ndarray, U0: np.ndarray,
                 m: int = FAST_STARTS) -> np.ndarray:
    """The ``m`` starts with the lowest initial weighted RSS (all when fewer): where the data
    leave one basin the nearest starts find it, at a third of the cost of all of them."""
    if U0.shape[0] <= m:
        return U0
    with np.errstate(all="ignore"):
        r = (form.evaluate(D, form.from_unconstrained(U0)) - y[None, :]) * sw[None, :]
        c = np.sum(r**2, axis=1)
    return U0[np.argsort(np.where(np.isfinite(c), c, np.inf), kind="stable")[:m]]


@dataclass
class PointFit:
    """A fit of one form to one set of points (D in billions)."""

    form: LawForm
    D: np.ndarray
    y: np.ndarray
    sw: np.ndarray  # sqrt of weights (1/se), ones when unweighted
    loss: str
    f_scale: float
    theta: np.ndarray
    u: np.ndarray
    rss: float  # unweighted residual sum of squares
    wrss: float  # weighted residual sum of squares (== rss when unweighted)
    converged: bool
    cov_u: np.ndarray  # covariance in the unconstrained parameterization
    cov: np.ndarray  # covariance of the natural parameters (delta method)
    se: np.ndarray
    sigma: float  # residual sd (ratio units), sqrt(rss / (n - k))
    sigma_w: float  # weighted residual scale, sqrt(wrss / (n - k))
    cond: float
    multistart: MultiStartReport | None
    warnings: list[FitWarning] = field(default_factory=list)
    #: the prior the fit carries (None: plain least squares)
    prior: Prior | None = None
    #: inclusion weight of each point in [0, 1] (the warm-up average); None: all 1
    incl: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of points fitted."""
        return int(self.D.size)

    @property
    def n_eff(self) -> float:
        """Effective number of points: the sum of the inclusion weights."""
        return float(self.n if self.incl is None else np.sum(self.incl))

    @property
    def k(self) -> int:
        """Number of parameters."""
        return self.form.n_params

    @property
    def dof(self) -> float:
        """Residual degrees of freedom n_eff - k (fractional with warm-up weights)."""
        return self.n_eff - self.k

    @property
    def fit_sw(self) -> np.ndarray:
        """Square-root weights of the objective: precision weights times sqrt(inclusion)."""
        return self.sw if self.incl is None else self.sw * np.sqrt(self.incl)

    def predict_se(self, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Curve A(D) and its delta-method standard error at new D."""
        d = np.asarray(D, dtype=float)
        g = curve_gradient_u(self.form, d, self.u)
        est = self.form.evaluate(d, self.theta)
        var = np.einsum("ni,ij,nj->n", g, self.cov_u, g)
        return est, np.sqrt(np.clip(var, 0.0, None))


# --------------------------------------------------------------------------- input checks


def check_inputs(D: np.ndarray, y: np.ndarray, se: np.ndarray | None, *, run: str) -> None:
    """FitInputError for non-finite values, D <= 0, ratios outside [0, 1], bad se."""
    if D.ndim != 1 or y.ndim != 1 or D.size != y.size:
        raise FitInputError(
            f"run {run!r}: 'tokens' and 'ratio' must be 1-D of equal length, got {D.shape} and {y.shape}"
        )
    for name, arr in (("tokens", D), ("ratio", y)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise FitInputError(f"run {run!r}: argument {name!r} has a non-finite value ({arr[bad[0]]}) at index {bad[0]}")
    bad = np.flatnonzero(D <= 0)
    if bad.size:
        raise FitInputError(f"run {run!r}: argument 'tokens' must be > 0, got {D[bad[0]]} at index {bad[0]}")
    bad = np.flatnonzero((y < 0) | (y > 1))
    if bad.size:
        raise FitInputError(f"run {run!r}: argument 'ratio' must lie in [0, 1], got {y[bad[0]]} at index {bad[0]}")
    if se is not None:
        if se.shape != y.shape:
            raise FitInputError(f"run {run!r}: argument 'se' must have one value per point, got shape {se.shape}")
        bad = np.flatnonzero(~np.isfinite(se) | (se <= 0))
        if bad.size:
            raise FitInputError(f"run {run!r}: argument 'se' must be finite and > 0, got {se[bad[0]]} at index {bad[0]}")


# --------------------------------------------------------------------------- covariance & diagnostics


def _covariances(form: LawForm, D: np.ndarray, u: np.ndarray, sw: np.ndarray, sigma_w: float,
                 wt: np.ndarray, prior: Prior | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Gauss-Newton covariance in u and natural space, and the correlation condition number.

    With a prior, the posterior covariance inv(J'J / sigma_w^2 + diag(1 / sd^2)); the
    condition number is the data's own (J'J), which says what the data leave undetermined.
    """
    J = _jacobian(form, D, u[None, :], sw)[0] * np.sqrt(wt)[:, None]
    A = J.T @ J
    k = u.size
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = A / sigma_w**2
        if prior is not None:
            prec = prec + np.diag(1.0 / np.asarray(prior.sd, float) ** 2)
    try:
        inv = np.linalg.inv(prec)
        if not np.all(np.isfinite(inv)):
            raise np.linalg.LinAlgError
    except np.linalg.LinAlgError:
        inv = np.linalg.pinv(prec) if np.all(np.isfinite(prec)) else np.full((k, k), np.nan)
    cov_u = inv
    T = form.dtheta_du(u)
    with np.errstate(invalid="ignore", over="ignore"):  # a parameter at its edge (d theta/du = inf):
        cov = T @ cov_u @ T.T  # its natural variance is undefined (NaN), as the delta method says
    with np.errstate(invalid="ignore", over="ignore"):
        sd = np.sqrt(np.clip(np.diag(A), 1e-300, None))
        corr = A / np.outer(sd, sd)
    if not np.all(np.isfinite(corr)):  # a parameter run off to its edge (a maximum-likelihood fit
        return cov_u, cov, math.inf    # without the prior): nothing to decompose, unidentified
    sv = np.linalg.svd(corr, compute_uv=False) if k > 1 else np.array([1.0, 1.0])
    cond = float(sv[0] / sv[-1]) if sv[-1] > 0 else math.inf
    return cov_u, cov, cond


def _bound_warnings(form: LawForm, theta: np.ndarray, se: np.ndarray) -> list[FitWarning]:
    """Parameters on (numerically at) or within 2 standard errors of a physical bound."""
    out = []
    for p, v, s in zip(form.parameters, theta, se, strict=True):
        for bound, side in ((p.lower, "lower"), (p.upper, "upper")):
            if not np.isfinite(bound):
                continue
            dist = abs(v - bound)
            scale = (p.upper - p.lower) if np.isfinite(p.upper - p.lower) else max(1.0, abs(bound))
            if dist <= 1e-6 * scale:
                out.append(FitWarning("param_at_bound", f"{p.name} = {v:.6g} sits at its {side} bound {bound:g}; "
                                      "the data push it outside the physical range", p.name))
            elif np.isfinite(s) and dist < 2.0 * s:
                out.append(FitWarning("param_near_bound", f"{p.name} = {v:.6g} is within 2 standard errors "
                                      f"({s:.3g}) of its {side} bound {bound:g}; intervals are asymmetric", p.name))
    return out


def _diagnostics(pf: PointFit, run: str) -> list[FitWarning]:
    w: list[FitWarning] = []
    if not pf.converged:
        w.append(FitWarning("not_converged", f"run {run!r}: the optimizer did not report convergence"))
    if pf.dof < 3:
        w.append(FitWarning("few_points", f"run {run!r}: only {pf.n} points for {pf.k} parameters "
                            f"({pf.dof} residual degrees of freedom); intervals are unreliable"))
    if not np.isfinite(pf.cond) or pf.cond > COND_WARN:
        w.append(FitWarning("ill_conditioned", f"run {run!r}: parameter correlation matrix has condition "
                            f"number {pf.cond:.3g} (> {COND_WARN:g}); some parameter combinations are "
                            "not determined by the data"))
    w.extend(_bound_warnings(pf.form, pf.theta, pf.se))
    w.extend(_prior_dominated(pf, run))
    return w


#: Posterior sd / prior sd (unconstrained scale) above which the data barely inform a parameter.
PRIOR_DOMINATED = 0.5


def _prior_dominated(pf: PointFit, run: str) -> list[FitWarning]:
    """``weakly_identified``: alpha or the limit whose posterior sd is more than half the
    prior's (in the unconstrained coordinates): the prior, not the data, holds it."""
    if pf.prior is None or not np.all(np.isfinite(pf.cov_u)):
        return []
    out = []
    post = np.sqrt(np.clip(np.diag(pf.cov_u), 0.0, None))
    sd = np.asarray(pf.prior.sd, float)
    names = pf.form.u_names
    for j, name in enumerate(names):
        if name not in ("alpha", pf.form.limit_param):  # scale coordinates (defined at D = 1
            continue  # billion tokens, often far from the data) say nothing a user can act on
        ratio = float(post[j] / sd[j])
        if ratio > PRIOR_DOMINATED:
            i = pf.form.param_names.index(name)
            out.append(FitWarning("weakly_identified", (
                f"run {run!r}: {name} = {pf.theta[i]:.4g} is weakly identified: its posterior sd is "
                f"{ratio:.2f} of its weakly informative prior's (unconstrained scale); the prior, not "
                "the data, holds it"), name))
    return out


# --------------------------------------------------------------------------- headline fit


def _f_scale(form: LawForm, D: np.ndarray, y: np.ndarray, sw: np.ndarray, loss: str,
             f_scale: float | None) -> float:
    """Scale for robust losses: given, or 1.4826 * MAD of residuals of a plain fit (>0)."""
    if loss == "linear":
        return 1.0
    if f_scale is not None:
        return float(f_scale)
    lin = fit_points_fast(form, D, y, sw=sw, loss="linear")
    r = (form.evaluate(D, lin.theta) - y) * sw
    mad = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    return mad if mad > 0 else float(np.std(r)) or 1e-12


def _finish(form: LawForm, D: np.ndarray, y: np.ndarray, sw: np.ndarray, u: np.ndarray, loss: str,
            f_scale: float, converged: bool, ms: MultiStartReport | None, prior: Prior | None = None,
            incl: np.ndarray | None = None) -> PointFit:
    """The fit at u: residual scales over the effective points (inclusion-weighted), covariance."""
    theta = form.from_unconstrained(u)
    r = form.evaluate(D, theta) - y
    pi = np.ones(D.size) if incl is None else np.asarray(incl, float)
    rss = float(np.sum(pi * r**2))
    wrss = float(np.sum(pi * (r * sw) ** 2))
    dof = float(np.sum(pi)) - form.n_params
    sigma = math.sqrt(rss / dof) if dof > 0 else math.nan
    sigma_w = math.sqrt(wrss / dof) if dof > 0 else math.nan
    wt = _rho_prime(((r * sw) / f_scale) ** 2, loss) * pi
    cov_u, cov, cond = _covariances(form, D, u, sw, sigma_w, wt, prior)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    return PointFit(form, D, y, sw, loss, f_scale, theta, u, rss, wrss, converged, cov_u, cov, se,
                    sigma, sigma_w, cond, ms, prior=prior, incl=None if incl is None else pi)


def fit_points_fast(form: LawForm | str, D: np.ndarray, y: np.ndarray, *, sw: np.ndarray | None = None,
                    loss: str = "linear", f_scale: float | None = None, prior: Prior | str | None = "auto",
                    incl: np.ndarray | None = None, starts: np.ndarray | None = None) -> PointFit:
    """Multi-start fit with the batched solver only (no lmfit): for comparisons and backtests.

    ``prior``: "auto" (the form's own, :func:`make_prior`), a :class:`Prior` or None;
    ``incl``: inclusion weights in [0, 1] (the warm-up average), None for all 1;
    ``starts``: more starts (unconstrained parameters, shape (k,) or (m, k)) beside the form's
    own, e.g. a rolling backtest's fit at the previous cut (:func:`~sparsitylaws.runfit.backtest.cut_states`).
    """
    form = get_form(form)
    D, y = np.asarray(D, float), np.asarray(y, float)
    sw = np.ones(D.size) if sw is None else np.asarray(sw, float)
    pr = _resolve_prior(prior, form, D, y, sw)
    fsw = sw if incl is None else sw * np.sqrt(np.asarray(incl, float))
    fs = _f_scale(form, D, y, fsw, loss, f_scale) if loss != "linear" else 1.0
    U0 = _best_starts(form, D, y, fsw, form.to_unconstrained(form.starting_points(D, y)))
    if starts is not None:
        extra = np.atleast_2d(np.asarray(starts, float))
        U0 = np.vstack([U0, extra[np.all(np.isfinite(extra), axis=1)]])
    res = lm_batch(form, D, y, U0, sw=fsw, loss=loss, f_scale=fs, prior=pr, max_iter=FIT_MAX_ITER)
    best = int(np.argmin(res.cost))
    pr2 = _refined_prior(form, D, y, sw, res.u[best], loss, fs, pr, incl)
    if pr2 is not pr:  # second pass: the prior in the units of the residuals, from every end
        res = lm_batch(form, D, y, res.u, sw=fsw, loss=loss, f_scale=fs, prior=pr2, max_iter=FIT_MAX_ITER)
        best, pr = int(np.argmin(res.cost)), pr2
    ms = _multistart_report(form, res.u, res.cost, res.converged, None)
    return _finish(form, D, y, sw, res.u[best], loss, fs, bool(res.converged[best]), ms, pr, incl)


def _refined_prior(form: LawForm, D: np.ndarray, y: np.ndarray, sw: np.ndarray, u: np.ndarray,
                   loss: str, fs: float, prior: Prior | None, incl: np.ndarray | None) -> Prior | None:
    """The prior rescaled to the residual sd of the fit at u (:func:`rescale`)."""
    if prior is None:
        return None
    r = (form.evaluate(D, form.from_unconstrained(u)) - y) * sw
    pi = np.ones(D.size) if incl is None else np.asarray(incl, float)
    dof = float(np.sum(pi)) - form.n_params
    if dof <= 0:
        return prior
    return rescale(prior, math.sqrt(float(np.sum(pi * r**2)) / dof))


def fit_subsets(form: LawForm | str, D: np.ndarray, y: np.ndarray, masks: list[np.ndarray], *,
                sw: np.ndarray | None = None, prior: bool = True) -> list[PointFit]:
    """Least-squares multi-start fits of several subsets of the same points in one batch.

    Every (subset, start) pair is a row of one :func:`lm_batch` call; points outside a subset
    get weight zero.  Same objective, starts and prior (each subset's own, ``prior=True``) as
    :func:`fit_points_fast` on each subset.
    """
    form = get_form(form)
    D, y = np.asarray(D, float), np.asarray(y, float)
    sw = np.ones(D.size) if sw is None else np.asarray(sw, float)
    U0, W, owner, pmean, pscale = [], [], [], [], []
    priors = []
    for i, mk in enumerate(masks):
        st = _best_starts(form, D[mk], y[mk], sw[mk], form.to_unconstrained(form.starting_points(D[mk], y[mk])))
        pr = make_prior(form, D[mk], y[mk], sw[mk]) if prior else None
        priors.append(pr)
        U0.append(st)
        W.append(np.repeat((sw * mk)[None, :], st.shape[0], axis=0))
        owner += [i] * st.shape[0]
        if pr is not None:
            pmean.append(np.repeat(np.asarray(pr.mean, float)[None, :], st.shape[0], axis=0))
            pscale += [float(pr.scale)] * st.shape[0]
    batch_prior = (Prior(np.vstack(pmean), priors[0].sd, np.asarray(pscale))
                   if priors and priors[0] is not None else None)
    res = lm_batch(form, D, y, np.vstack(U0), sw=np.vstack(W), prior=batch_prior, max_iter=FIT_MAX_ITER)
    owner_arr = np.array(owner)
    if batch_prior is not None:  # second pass, each subset's prior at its residual sd
        scales = np.asarray(pscale, float).copy()
        for i, mk in enumerate(masks):
            rows = np.flatnonzero(owner_arr == i)
            best = rows[int(np.argmin(res.cost[rows]))]
            refined = _refined_prior(form, D[mk], y[mk], sw[mk], res.u[best], "linear", 1.0,
                                     priors[i], None)
            if refined is not priors[i]:
                priors[i] = refined
                scales[rows] = float(refined.scale)
        batch_prior = Prior(batch_prior.mean, batch_prior.sd, scales)
        res = lm_batch(form, D, y, res.u, sw=np.vstack(W), prior=batch_prior, max_iter=FIT_MAX_ITER)
    out = []
    for i, mk in enumerate(masks):
        rows = np.flatnonzero(owner_arr == i)
        best = rows[int(np.argmin(res.cost[rows]))]
        ms = _multistart_report(form, res.u[rows], res.cost[rows], res.converged[rows], None)
        out.append(_finish(form, D[mk], y[mk], sw[mk], res.u[best], "linear", 1.0,
                           bool(res.converged[best]), ms, priors[i]))
    return out


def _lmfit_one(form: LawForm, D: np.ndarray, y: np.ndarray, sw: np.ndarray, u0: np.ndarray,
               loss: str, f_scale: float, prior: Prior | None = None) -> tuple[np.ndarray, float, bool]:
    """One lmfit least_squares fit from u0 in the unconstrained parameterization (the prior's
    pseudo-residuals appended; the returned cost counts them quadratically, as lm_batch does)."""
    params = lmfit.Parameters()
    for j, name in enumerate(form.param_names):
        params.add(f"u_{name}", value=float(u0[j]))

    def resid(p: lmfit.Parameters) -> np.ndarray:
        u = np.array([p[f"u_{n}"].value for n in form.param_names])
        r = (form.evaluate(D, form.from_unconstrained(u)) - y) * sw
        if prior is not None:
            r = np.r_[r, prior.residuals(u[None, :])[0]]
        return np.where(np.isfinite(r), r, 1e3)

    kws = {"loss": loss, "f_scale": f_scale, "x_scale": "jac", "ftol": 1e-10, "xtol": 1e-10,
           "gtol": 1e-10, "max_nfev": 2000}
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # lmfit's stderr of a singular fit
            out = lmfit.minimize(resid, params, method="least_squares", **kws)
    except (ValueError, FloatingPointError):
        return u0, math.inf, False
    u = np.array([out.params[f"u_{n}"].value for n in form.param_names])
    r = (form.evaluate(D, form.from_unconstrained(u)) - y) * sw
    c = float(_cost(r[None, :], loss, f_scale)[0])
    if prior is not None:
        c += 0.5 * float(np.sum(prior.residuals(u[None, :]) ** 2))
    return u, c, bool(out.success) and np.isfinite(c)


def _param_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| elementwise, where a start that ran to a parameter's edge (+-inf) is 0 from the
    same edge and infinitely far from anything else (no inf - inf)."""
    same = a == b[None, :]
    out = np.zeros(np.broadcast_shapes(a.shape, b[None, :].shape))
    np.subtract(a, b[None, :], out=out, where=~same)
    return np.abs(out)


def _multistart_report(form: LawForm, U: np.ndarray, cost: np.ndarray, conv: np.ndarray,
                       se: np.ndarray | None) -> MultiStartReport:
    best = int(np.argmin(cost))
    cb = cost[best]
    rel = (cost - cb) / max(cb, 1e-300)
    at_best = rel <= BEST_RTOL
    near = rel <= NEAR_RTOL
    th = form.from_unconstrained(U)
    diff = _param_distance(th[near], th[best])
    spread = {n: float(np.max(diff[:, j])) for j, n in enumerate(form.param_names)}
    spread_se = None
    if se is not None and np.all(np.isfinite(se)) and np.all(se > 0):
        spread_se = float(np.max(diff / se))
    return MultiStartReport(int(U.shape[0]), int(np.sum(conv)), int(np.sum(at_best)), NEAR_RTOL,
                            int(np.sum(near)), spread, spread_se)


def fit_points(form: LawForm | str, D: np.ndarray, y: np.ndarray, *, se: np.ndarray | None = None,
               loss: str = "linear", f_scale: float | None = None, run: str = "?",
               prior: Prior | str | None = "auto", incl: np.ndarray | None = None) -> PointFit:
    """Headline fit: every starting point by the batched solver, then lmfit from the best end
    (an independent optimizer), polished; diagnosed.

    ``se`` (per-point standard errors) turns into weights 1/se^2; the covariance is scaled by
    the weighted residual variance (like ``curve_fit(absolute_sigma=False)``).  ``prior`` and
    ``incl`` as in :func:`fit_points_fast`.
    """
    form = get_form(form)
    if loss not in LOSSES:
        raise FitInputError(f"unknown loss {loss!r} (argument 'loss'); known: {', '.join(LOSSES)}")
    D, y = np.asarray(D, float), np.asarray(y, float)
    if D.size < form.n_params:
        raise FitInputError(f"run {run!r}: {D.size} points are fewer than the {form.n_params} parameters "
                            f"of form {form.name!r}")
    sw = np.ones(D.size) if se is None else 1.0 / np.asarray(se, float)
    pr = _resolve_prior(prior, form, D, y, sw)
    fsw = sw if incl is None else sw * np.sqrt(np.asarray(incl, float))
    fs = _f_scale(form, D, y, fsw, loss, f_scale)
    starts = form.to_unconstrained(form.starting_points(D, y))
    # every start by the batched solver; then lmfit (scipy's trust-region least squares, an
    # independent optimizer) from the best end, whose result is polished by the batch again
    res = lm_batch(form, D, y, starts, sw=fsw, loss=loss, f_scale=fs, prior=pr, max_iter=FIT_MAX_ITER)
    U, cost, conv = res.u.copy(), res.cost.copy(), res.converged.copy()
    b0 = int(np.argmin(cost))
    u_l, c_l, ok_l = _lmfit_one(form, D, y, fsw, U[b0], loss, fs, pr)
    if c_l < cost[b0]:
        pol = lm_batch(form, D, y, u_l[None, :], sw=fsw, loss=loss, f_scale=fs, prior=pr, max_iter=FIT_MAX_ITER)
        if pol.cost[0] <= c_l:
            u_l, c_l, ok_l = pol.u[0], float(pol.cost[0]), ok_l or bool(pol.converged[0])
        U[b0], cost[b0], conv[b0] = u_l, c_l, conv[b0] or ok_l
    best = b0
    pr2 = _refined_prior(form, D, y, sw, U[best], loss, fs, pr, incl)
    if pr2 is not pr:  # second pass: the prior in the units of the residuals, from every end
        pol = lm_batch(form, D, y, U, sw=fsw, loss=loss, f_scale=fs, prior=pr2, max_iter=FIT_MAX_ITER)
        U, cost, pr = pol.u, pol.cost, pr2
        conv = pol.converged | (pol.stalled & conv)  # settled on a flat valley it had converged in
        best = int(np.argmin(cost))
    pf = _finish(form, D, y, sw, U[best], loss, fs, bool(conv[best]), None, pr, incl)
    pf.multistart = _multistart_report(form, U, cost, conv, pf.se)
    pf.warnings = _diagnostics(pf, run)
    return pf


def t_quantile(level: float, dof: float) -> float:
    """Two-sided Student-t quantile for a central interval of ``level``; +inf when dof <= 0
    (no residual degrees of freedom: the noise is unknown, so no finite interval)."""
    q = 0.5 + level / 2.0
    return float(stats.t.ppf(q, dof)) if dof > 0 else math.inf
