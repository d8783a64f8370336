"""Architecture laws: the limit activation ratio A0 against width/depth and against scale.

Two families of laws turn fitted training runs into predictions for unbuilt models
(docs/architecture.md has the statistics and the reasons):

* **Width/depth law** (:func:`fit_widthdepth`): A0 against the width/depth ratio r of a
  sweep at fixed scale.  The paper's shape is a *hinge*: linear below a bottleneck r_b,
  flat above it.  The hinge is fitted exactly (profile over r_b, closed-form least squares
  per segment), compared by AICc with a smooth hinge, a straight line and a constant, and
  a likelihood-ratio test calibrated by a parametric bootstrap under the fitted line says
  whether a breakpoint is supported at all (the breakpoint is not identified under the
  null, so chi-square theory does not apply).  The breakpoint interval is a profile
  likelihood interval whose cutoff is calibrated by a parametric bootstrap; it may be
  asymmetric and is flagged when it runs into the edge of the sweep.
* **Scale laws** (:func:`fit_scale_trends`): the data-law coefficients (alpha, c, b, A0) of
  each activation as straight lines in log10 of the non-embedding parameter count N, in a
  transformed space (log alpha, log c, b, A0).  The A0 slope gets a t interval and a
  verdict on whether it is distinguishable from zero.  Uncertainty of a predicted curve is
  propagated by sampling: each draw refits the trends through one bootstrap draw of every
  run, and adds between-scale scatter (the trend residual covariance, multivariate-t with
  n - 2 degrees of freedom, inflated by the leverage of the new scale).

:func:`build_architecture_section` bundles both into the JSON-safe ``architecture``
section of a law set (versioned inside); :func:`predict_section` evaluates it for many
configurations at once; :func:`cross_scale_check` fits the trends on some runs and scores
the predicted curves of held-out runs against their measurements.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from sparsitylaws.errors import FitInputError, LawSetError, SparsityLawsError

__all__ = [
    "ARCH_FORMAT",
    "ARCH_VERSION",
    "HingeFit",
    "ScaleTrend",
    "aicc",
    "build_architecture_section",
    "check_section",
    "cross_scale_check",
    "fit_hinge",
    "fit_scale_trends",
    "fit_widthdepth",
    "hinge_profile_rss",
    "limits_from_final",
    "limits_from_fits",
    "predict_section",
    "smooth_hinge",
]

ARCH_FORMAT = "sparsitylaws-architecture"
ARCH_VERSION = 1

#: Transform of each data-law coefficient before it is trended in log10 N.
TRANSFORMS = {"alpha": "log", "c": "log", "b": "identity", "A0": "identity"}
#: Parameter order per paper form (matches sparsitylaws.laws).
FORM_PARAMS = {"logspace_power": ["alpha", "b", "c", "A0"], "convergent_power": ["alpha", "c", "A0"]}
PAPER_FORM = {"relu": "logspace_power", "silu": "convergent_power"}
#: Ways to predict a curve at a new scale (see predict_section).
METHODS = ("excess", "curve", "coef")


# ============================================================================ hinge fitting


def _as_sorted(r: np.ndarray, y: np.ndarray, sw: np.ndarray):
    order = np.argsort(r, kind="stable")
    return r[order], y[..., order], sw[order]


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
        with np.errstate(divide="ignore", invalid="ignore"):
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
            "warnings": list(self.warnings),
        }


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
) -> HingeFit:
    """Fit A0 against width/depth r as a hinge; test and bracket the breakpoint.

    * the hinge is fitted exactly (all segments, closed form), weighted by 1/se^2 when
      ``se`` is given (the residual scale is still estimated, so se only sets relative
      weights: sigma_i^2 = phi * se_i^2);
    * ``models``: constant, line, hinge, smooth hinge, each with RSS and AICc;
    * ``test``: LR = n log(RSS_line / RSS_hinge), p-value from ``n_boot`` parametric
      bootstrap samples under the fitted line; ``supported`` when p < ``alpha``;
    * breakpoint interval: {rb : n log(RSS(rb)/RSS_min) <= q}, q the ``level`` quantile of
      the same statistic at the true breakpoint over ``n_boot`` samples from the fitted
      hinge (a bootstrap-calibrated profile likelihood interval; asymmetric as needed);
    * ``draws``: (plateau, slope, breakpoint) refitted on those hinge samples, used for
      the plateau and slope intervals and for propagation into predictions.

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
    r_s, y_s, sw = _as_sorted(r0, y0, sw0)
    n = r_s.size
    if n < 5:
        raise FitInputError(f"width/depth law: need at least 5 runs for a hinge, got {n}")
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
    lr_obs = n * math.log(max(rss_l, tiny) / max(float(rss_h), tiny))
    sig_l = math.sqrt(rss_l / (n - 2))
    fit_l = beta_l[0, 0] + beta_l[0, 1] * r_s
    Yb = fit_l[None, :] + rng.standard_normal((n_boot, n)) * (sig_l / sw)[None, :]
    _, _, _, rss_hb = _hinge_exact(r_s, Yb, sw)
    _, rss_lb = _line_fit(r_s, Yb, sw)
    lr_b = n * np.log(np.maximum(rss_lb, tiny) / np.maximum(rss_hb, tiny))
    p_value = float((1 + np.sum(lr_b >= lr_obs - 1e-12)) / (n_boot + 1))
    test = {
        "statistic": "LR = n*log(RSS_line/RSS_hinge)",
        "value": lr_obs,
        "p_value": p_value,
        "alpha": alpha,
        "supported": bool(p_value < alpha),
        "n_boot": int(n_boot),
        "method": "parametric bootstrap under the fitted line (Gaussian residuals)",
    }

    # --- breakpoint interval: bootstrap-calibrated profile likelihood
    sig_h = math.sqrt(float(rss_h) / (n - 3))
    fit_h = plat + slope * (np.minimum(r_s, rb) - rb)
    Yh = fit_h[None, :] + rng.standard_normal((n_boot, n)) * (sig_h / sw)[None, :]
    rb_b, plat_b, slope_b, rss_hb2 = _hinge_exact(r_s, Yh, sw)
    rss_at_true = hinge_profile_rss(r_s, Yh, [rb], sw)[:, 0]
    lr_true = n * np.log(np.maximum(rss_at_true, tiny) / np.maximum(rss_hb2, tiny))
    q = float(np.quantile(lr_true, level))
    grid = np.unique(np.concatenate([np.geomspace(lo, hi, 800), [rb]]))
    prof = n * np.log(np.maximum(hinge_profile_rss(r_s, Y, grid, sw)[0], tiny) / max(float(rss_h), tiny))
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
    if not test["supported"]:
        warnings.append(
            f"no breakpoint supported (p = {p_value:.3g} >= {alpha}); the hinge's breakpoint "
            "and its interval are shown for reference only")
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
        r=r_s, y=y_s, se=None if se0 is None else 1.0 / sw, breakpoint=float(rb),
        plateau=float(plat), slope=float(slope), rss=float(rss_h),
        breakpoint_interval=(float(low), float(high)), interval_censored=censored, level=level,
        models=models, preferred=preferred, test=test,
        draws={"plateau": plat_b, "slope": slope_b, "breakpoint": rb_b},
        intervals=intervals, warnings=warnings,
    )


# ============================================================================ run summaries


@dataclass
class RunSummary:
    """What the architecture laws need from one fitted run (adapter over RunFit or a dict)."""

    name: str
    activation: str
    form: str
    param_names: list[str]
    theta: np.ndarray
    draws: np.ndarray | None  # (B, k) bootstrap draws of the natural parameters
    a0: float
    a0_interval: tuple[float, float] | None
    a0_level: float
    tokens_b: tuple[float, float]
    sigma: float | None  # residual sd of the run's points around its law
    n_params: float | None = None
    width: float | None = None
    depth: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.width and self.depth:
            return float(self.width) / float(self.depth)
        return None

    @property
    def a0_se(self) -> float | None:
        """Standard error of A0 implied by its interval (normal approximation)."""
        if self.a0_interval is None:
            return None
        z = stats.norm.ppf(0.5 + self.a0_level / 2)
        se = (self.a0_interval[1] - self.a0_interval[0]) / (2 * z)
        return float(se) if se > 0 and math.isfinite(se) else None


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    for n in names:
        if isinstance(obj, Mapping) and n in obj:
            return obj[n]
        if not isinstance(obj, Mapping) and hasattr(obj, n):
            return getattr(obj, n)
    return default


def summarize_run(name: str, fit: Any, info: Mapping | None = None) -> RunSummary:
    """Adapt a :class:`~sparsitylaws.runfit.RunFit` (or a plain dict with the same fields:
    form, params, draws, tokens_b, sigma, activation, a0_interval) to a RunSummary."""
    info = dict(info or {})
    form = _get(fit, "form", "form_name")
    form = getattr(form, "name", form)
    names = list(_get(fit, "param_names", default=None) or FORM_PARAMS.get(str(form), []))
    params = _get(fit, "estimate", "params", "theta", "parameters")
    if isinstance(params, Mapping):
        theta = np.array([float(_get(params[k], "value", "estimate", default=params[k])
                                if isinstance(params[k], Mapping) else params[k]) for k in names])
    else:
        theta = np.asarray(params, float)
    draws = _get(fit, "draws", "boot_draws", "bootstrap_draws")
    if draws is not None and not isinstance(draws, np.ndarray):
        draws = _get(draws, "draws", default=draws)
    draws = None if draws is None else np.asarray(draws, float)
    if draws is not None and (draws.ndim != 2 or draws.shape[1] != len(names) or draws.shape[0] == 0):
        draws = None
    if "A0" not in names:
        raise FitInputError(f"run {name!r}: form {form!r} has no limit A0; refit with the paper form")
    ia0 = names.index("A0")
    a0_int = None
    level = 0.9
    lim = _get(fit, "limit")
    if callable(lim):
        try:
            lim = lim()
        except TypeError:
            lim = None
    if lim is not None:
        lo = _get(lim, "boot_low", "low", "conf_low", "lower", "delta_low")
        hi = _get(lim, "boot_high", "high", "conf_high", "upper", "delta_high")
        level = float(_get(lim, "level", default=0.9))
        if lo is None and isinstance(lim, Sequence) and len(lim) >= 3:
            lo, hi = lim[1], lim[2]
        if lo is not None and hi is not None:
            a0_int = (float(lo), float(hi))
    if a0_int is None:
        given = _get(fit, "a0_interval")
        if given is not None:
            a0_int = (float(given[0]), float(given[1]))
        elif draws is not None:
            a0_int = tuple(float(x) for x in np.quantile(draws[:, ia0], [0.05, 0.95]))
    tok = _get(fit, "token_range_b", "tokens_b")
    if tok is None and _get(fit, "tokens_b_min") is not None:
        tok = (_get(fit, "tokens_b_min"), _get(fit, "tokens_b_max"))
    tok = (float(tok[0]), float(tok[1])) if tok is not None else (float("nan"), float("nan"))
    sigma = _get(fit, "noise_sd", "sigma")
    if sigma is None:
        pf = _get(fit, "point", "point_fit", "fit")
        sigma = _get(pf, "sigma") if pf is not None else None
    act = str(info.get("activation") or _get(fit, "activation", default="") or "").lower()
    return RunSummary(
        name=name, activation=act, form=str(form), param_names=names, theta=theta, draws=draws,
        a0=float(theta[ia0]), a0_interval=a0_int, a0_level=level, tokens_b=tok,
        sigma=None if sigma is None else float(sigma),
        n_params=_num(info.get("n_params")), width=_num(info.get("width")),
        depth=_num(info.get("depth")),
    )


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


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
    return fit_hinge(limits["ratio"].to_numpy(float), limits["a0"].to_numpy(float),
                     se.to_numpy(float) if use_se else None, **kwargs)


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
            "method": ("OLS lines in log10 N of (log alpha, log c, b, A0); draws refit the lines "
                       "through one bootstrap draw per run and add between-scale scatter "
                       "(residual covariance, multivariate t with dof = n_runs - 2, times "
                       "sqrt(1 + leverage))"),
        }


def _floats(a: Any) -> Any:
    """numpy -> nested lists of Python floats (JSON-safe; NaN becomes None)."""
    arr = np.asarray(a, float)
    out = arr.tolist()

    def clean(x):
        if isinstance(x, list):
            return [clean(v) for v in x]
        return None if not math.isfinite(x) else x

    return clean(out)


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
        a0_slope = {"estimate": sl, "se": se, "interval": [sl - tq * se, sl + tq * se],
                    "level": level, "dof": dof, "per": "decade of non-embedding parameters",
                    "distinguishable_from_zero": bool(abs(sl) > tq * se),
                    "method": "OLS of per-run A0 on log10 N, t interval"}
    elif X.shape[1] == 2:
        sl = float(coef[1, ia0])
        a0_slope = {"estimate": sl, "se": None, "interval": None, "level": level, "dof": 0,
                    "per": "decade of non-embedding parameters", "distinguishable_from_zero": None,
                    "method": "exact line through 2 scales; no interval possible"}
    else:
        a0_slope = {"estimate": 0.0, "se": None, "interval": None, "level": level, "dof": dof,
                    "per": "decade of non-embedding parameters", "distinguishable_from_zero": None,
                    "method": "one scale; no slope"}
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
    )


# ============================================================================ the section


def _wd_entry_from_hinge(h: HingeFit, *, n_draws: int, seed: int, ratio_ref: float | None,
                         limit_from: str, runs: Sequence[str], n_params: float | None) -> dict:
    """Width/depth entry: the model used for prediction and its draws (JSON-safe)."""
    rng = np.random.default_rng(seed + 17)
    if h.test["supported"]:
        model = "hinge"
        idx = rng.integers(0, h.draws["slope"].size, n_draws)
        draws = {"slope": h.draws["slope"][idx], "breakpoint": h.draws["breakpoint"][idx]}
        point = {"slope": h.slope, "breakpoint": h.breakpoint, "plateau": h.plateau}
    else:
        lin = h.models["line"]
        const = h.models["constant"]
        n = h.r.size
        if lin["aicc"] < const["aicc"]:
            model = "line"
            sw = np.ones_like(h.r) if h.se is None else 1.0 / h.se
            X = np.column_stack([np.ones_like(h.r), h.r]) * sw[:, None]
            cov = np.linalg.inv(X.T @ X) * lin["rss"] / (n - 2)
            se = math.sqrt(cov[1, 1])
            sl = lin["params"]["slope"]
            draws = {"slope": sl + se * rng.standard_t(n - 2, n_draws), "breakpoint": None}
            point = {"slope": sl, "breakpoint": None}
        else:
            model = "constant"
            draws = {"slope": np.zeros(n_draws), "breakpoint": None}
            point = {"slope": 0.0, "breakpoint": None}
    return {
        "model": model,
        "source": f"fit of {len(runs)} runs ({limit_from} limits)",
        "runs": list(runs),
        "n_params": n_params,
        "ratio_range": [float(h.r.min()), float(h.r.max())],
        "point": point,
        "draws": {k: (None if v is None else _floats(v)) for k, v in draws.items()},
        "fit": h.to_dict(),
        "caveats": list(h.warnings),
    }


def _ranges(summ: Sequence[RunSummary], wd: dict | None) -> dict:
    def rng_of(vals):
        v = [float(x) for x in vals if x is not None and math.isfinite(x)]
        return [min(v), max(v)] if v else None

    ratios = [s.ratio for s in summ]
    if wd is not None:
        ratios += list(wd["ratio_range"])
    toks = [s.tokens_b for s in summ if np.all(np.isfinite(s.tokens_b))]
    return {
        "n_params": rng_of([s.n_params for s in summ]),
        "width": rng_of([s.width for s in summ]),
        "depth": rng_of([s.depth for s in summ]),
        "ratio": rng_of(ratios),
        "tokens": [min(t[0] for t in toks) * 1e9, max(t[1] for t in toks) * 1e9] if toks else None,
    }


def _cluster_scales(summ: Sequence[RunSummary], gap: float = 0.1) -> list[list[RunSummary]]:
    """Group runs whose log10 N lie within ``gap`` of a neighbour (same scale)."""
    ss = sorted(summ, key=lambda s: s.n_params or 0.0)
    groups: list[list[RunSummary]] = []
    for s in ss:
        if groups and s.n_params and groups[-1][-1].n_params and \
                math.log10(s.n_params) - math.log10(groups[-1][-1].n_params) < gap:
            groups[-1].append(s)
        else:
            groups.append([s])
    return groups


def assemble_section(
    activations: Mapping[str, Mapping[str, Any]],
    *,
    n_draws: int,
    seed: int,
    provenance: Mapping[str, Any] | None = None,
    bottleneck: Mapping[str, Any] | None = None,
    stable_band: Sequence[float] | None = None,
) -> dict:
    """Wrap per-activation entries ({scale, widthdepth, ranges, caveats}) into a section."""
    from sparsitylaws import paper

    band = list(stable_band) if stable_band is not None else list(paper.STABLE_WIDTH_DEPTH_BAND)
    return {
        "format": ARCH_FORMAT,
        "format_version": ARCH_VERSION,
        "n_draws": int(n_draws),
        "seed": int(seed),
        "activations": {k: dict(v) for k, v in activations.items()},
        "bottleneck": dict(bottleneck) if bottleneck else {
            "estimate": paper.BOTTLENECK_WIDTH_DEPTH, "interval": None,
            "source": f"paper (0.1B ReLU sweep; no interval published): {paper.CITATION}"},
        "stable_band": {"range": band, "source": f"paper: {paper.CITATION}"},
        "provenance": dict(provenance or {}),
    }


def build_architecture_section(
    runfits: Mapping[str, Any],
    run_info: Mapping[str, Mapping],
    *,
    table: pd.DataFrame | None = None,
    limit_from: str = "fit",
    sweep_runs: Sequence[str] | None = None,
    level: float = 0.9,
    n_draws: int = 400,
    n_boot: int = 999,
    seed: int = 0,
) -> dict:
    """The ``architecture`` section of a law set, from several fitted runs.

    Per activation: runs at (nearly) one scale with >= 5 distinct width/depth ratios form a
    width/depth sweep (or name them in ``sweep_runs``) and get a hinge law (A0 per run from
    the fit, ``limit_from="fit"``, or from the table's final points, ``"final"``); one run
    per scale (the one nearest the median ratio) enters the scale trends.  Runs whose form
    is not the paper's form for their activation are left out, with a caveat.
    """
    if limit_from not in ("fit", "final"):
        raise SparsityLawsError(f"limit_from must be 'fit' or 'final', got {limit_from!r}")
    if limit_from == "final" and table is None:
        raise SparsityLawsError("limit_from='final' needs the measurement table")
    summ: dict[str, list[RunSummary]] = {}
    skipped: list[str] = []
    for name, rf in runfits.items():
        s = summarize_run(name, rf, run_info.get(name, {}))
        if s.activation in PAPER_FORM and s.form != PAPER_FORM[s.activation]:
            skipped.append(f"run {name}: form {s.form} is not the paper form for {s.activation}")
            continue
        if s.n_params is None:
            skipped.append(f"run {name}: n_params unknown")
            continue
        summ.setdefault(s.activation or "unknown", []).append(s)
    entries: dict[str, dict] = {}
    bottleneck = None
    for act, ss in sorted(summ.items()):
        caveats = list(skipped)
        wd = None
        groups = _cluster_scales(ss)
        sweep = None
        if sweep_runs is not None:
            sweep = [s for s in ss if s.name in set(sweep_runs)]
        else:
            for g in groups:
                if len({round(s.ratio, 6) for s in g if s.ratio}) >= 5:
                    sweep = g
        if sweep and len(sweep) >= 5:
            if limit_from == "fit":
                lim = limits_from_fits(sweep)
            else:
                lim = limits_from_final(table, [s.name for s in sweep])
            h = fit_widthdepth(lim, level=level, n_boot=n_boot, seed=seed)
            ns = [s.n_params for s in sweep if s.n_params]
            wd = {"pending": h, "runs": [s.name for s in sweep],
                  "n_params": float(np.exp(np.mean(np.log(ns)))) if ns else None}
        scale_runs = []
        known = [s.ratio for s in ss if s.ratio]
        med = float(np.median(known)) if known else None
        for g in groups:
            if sweep and any(s in sweep for s in g) and len(g) > 1 and med is not None:
                other = [s.ratio for s in ss if s not in sweep and s.ratio]
                target = float(np.median(other)) if other else med
                g = [min(g, key=lambda s, t=target: abs((s.ratio or t) - t))]
            scale_runs.extend(g)
        trend = fit_scale_trends(scale_runs, level=level, n_draws=n_draws, seed=seed)
        if wd is not None:
            h = wd["pending"]
            wd = _wd_entry_from_hinge(h, n_draws=n_draws, seed=seed, ratio_ref=trend.ratio_ref,
                                      limit_from=limit_from, runs=wd["runs"], n_params=wd["n_params"])
            if wd["model"] == "hinge" and bottleneck is None:
                bottleneck = {"estimate": h.breakpoint, "interval": list(h.breakpoint_interval),
                              "activation": act, "source": "width/depth hinge fitted in this law set"}
        else:
            caveats.append(f"no width/depth sweep for {act}: A0 assumed independent of "
                           "width/depth (predictions away from the fitted runs' ratios are "
                           "extrapolations)")
        entries[act] = {"scale": trend.to_dict(), "widthdepth": wd,
                        "ranges": _ranges(ss, wd), "caveats": caveats + trend.warnings}
    if not entries:
        raise FitInputError("architecture laws: no usable runs (" + "; ".join(skipped) + ")")
    return assemble_section(entries, n_draws=n_draws, seed=seed, bottleneck=bottleneck,
                            provenance={"limit_from": limit_from, "level": level,
                                        "n_boot": n_boot, "runs": sorted(runfits)})


def check_section(section: Any, source: str = "law set") -> dict:
    """Validate an architecture section's format and version; LawSetError otherwise."""
    if section is None:
        raise LawSetError(
            f"{source}: has no architecture section (fit several runs with known width, depth "
            "and n_params, or use the default law set)")
    if not isinstance(section, Mapping) or section.get("format") != ARCH_FORMAT:
        raise LawSetError(f"{source}: architecture section is not in format {ARCH_FORMAT!r}")
    v = section.get("format_version")
    if v != ARCH_VERSION:
        raise LawSetError(
            f"{source}: unknown architecture section format version {v!r} (this sparsitylaws "
            f"reads version {ARCH_VERSION})")
    acts = section.get("activations")
    if not isinstance(acts, Mapping) or not acts:
        raise LawSetError(f"{source}: architecture section has no activations")
    for act, e in acts.items():
        sc = e.get("scale") if isinstance(e, Mapping) else None
        if not isinstance(sc, Mapping) or sc.get("form") not in FORM_PARAMS:
            raise LawSetError(f"{source}: architecture entry {act!r} has no usable scale law")
    return dict(section)


# ============================================================================ prediction


def _eval_form(form: str, th: list[np.ndarray], D: np.ndarray) -> np.ndarray:
    """Elementwise A(D) for the paper forms; th holds one broadcastable array per parameter."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        if form == "logspace_power":
            alpha, b, c, a0 = th
            return np.exp(-c * np.exp(alpha * np.log(D)) + b) + a0
        alpha, c, a0 = th
        return a0 - c * np.exp(-alpha * np.log(D))


@dataclass
class _Compiled:
    form: str
    names: list[str]
    xc: float
    coef: np.ndarray
    xtx_inv: np.ndarray
    dcoef: np.ndarray
    jitter: np.ndarray
    wd_model: str
    wd_slope: float
    wd_rb: float
    wd_dslope: np.ndarray | None
    wd_drb: np.ndarray | None
    ratio_ref: float | None
    log10_n: np.ndarray | None = None
    run_theta: np.ndarray | None = None  # (n_runs, k)
    run_draws64: np.ndarray | None = None  # (n_runs, k, M) float64 (b and c may be huge)
    curve_t: np.ndarray | None = None  # (M,)
    runs_fixed: bool = False  # no per-run draws (all rows equal): curve draws need no re-evaluation
    dcoef32: np.ndarray | None = None  # (2, k, M) float32, draws contiguous
    jitter32: np.ndarray | None = None  # (k, M) float32


_CACHE: dict[int, tuple[Any, _Compiled]] = {}


def _compile(entry: Mapping) -> _Compiled:
    key = id(entry)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is entry:
        return hit[1]
    sc = entry["scale"]
    wd = entry.get("widthdepth")
    model = "none" if wd is None else wd["model"]
    dsl = drb = None
    slope = rb = 0.0
    if wd is not None and model != "constant":
        slope = float(wd["point"]["slope"])
        dsl = np.asarray(wd["draws"]["slope"], float)
        if model == "hinge":
            rb = float(wd["point"]["breakpoint"])
            drb = np.asarray(wd["draws"]["breakpoint"], float)
    c = _Compiled(
        form=sc["form"], names=list(sc["param_names"]), xc=float(sc["x_center"]),
        coef=np.asarray(sc["coef"], float), xtx_inv=np.asarray(sc["xtx_inv"], float),
        dcoef=np.asarray(sc["draws_coef"], float), jitter=np.asarray(sc["draws_jitter"], float),
        wd_model=model, wd_slope=slope, wd_rb=rb, wd_dslope=dsl, wd_drb=drb,
        ratio_ref=None if sc.get("ratio_ref") is None else float(sc["ratio_ref"]),
    )
    c.log10_n = np.asarray(sc["log10_n"], float)
    c.run_theta = np.asarray(sc["theta"], float)
    if sc.get("run_draws") is not None:
        c.run_draws64 = np.ascontiguousarray(np.transpose(np.asarray(sc["run_draws"], float), (1, 2, 0)))
        c.curve_t = np.asarray(sc["curve_t"], float)
        c.runs_fixed = bool(np.all(c.run_draws64 == c.run_draws64[:, :, :1]))
    if len(_CACHE) > 64:
        _CACHE.clear()
    c.dcoef32 = np.ascontiguousarray(np.transpose(c.dcoef, (1, 2, 0)), dtype=np.float32)
    c.jitter32 = np.ascontiguousarray(c.jitter.T, dtype=np.float32)
    _CACHE[key] = (entry, c)
    return c


def _wd_delta(c: _Compiled, r: np.ndarray, slope, rb) -> np.ndarray:
    if c.wd_model in ("none", "constant") or c.ratio_ref is None:
        return np.zeros(np.broadcast_shapes(np.shape(r), np.shape(slope)))
    if c.wd_model == "line":
        return slope * (r - c.ratio_ref)
    return slope * (np.minimum(r, rb) - np.minimum(c.ratio_ref, rb))


def predict_section(
    section: Mapping,
    activation: str,
    n_params: np.ndarray,
    ratio: np.ndarray,
    tokens_b: np.ndarray,
    *,
    level: float = 0.9,
    chunk: int = 4096,
    noise_sd: float = 0.0,
    seed: int = 0,
    method: str = "excess",
) -> dict[str, np.ndarray]:
    """Limit A0 and A(D) with ``level`` intervals for many configurations of one activation.

    Point estimates plug in the fitted lines; intervals are percentiles of the section's
    draws (trend refits through bootstrap draws + between-scale scatter + width/depth
    draws).  Arrays are broadcast to a common length.

    ``method="coef"`` evaluates the law with coefficients from the trend lines in log10 N.
    ``method="excess"`` (default) trends the *curves*: every fitted run's excess over its
    own limit, |A_run(D N_run / N) - A0_run| at the same tokens per parameter, is
    extrapolated linearly in log10 N in log space (between-scale scatter of those values,
    t with n - 2 dof) and added to the predicted limit, so A(D) approaches A0 from the
    side the law dictates.  ``method="curve"`` trends the run curves themselves (same
    tokens per parameter), ignoring the limit: the best point accuracy in our cross-scale
    checks, but far from the fitted scales it can land on the wrong side of A0.  A0 is the
    same under all methods.  docs/architecture.md compares them.  With ``noise_sd > 0`` the result
    also has ``pred_low``/``pred_high``: the band for a single measured point (curve draws
    plus Gaussian point noise of that sd).
    """
    entry = section["activations"].get(activation)
    if entry is None:
        raise LawSetError(
            f"law set has no architecture law for activation {activation!r} "
            f"(it has: {', '.join(sorted(section['activations']))})")
    c = _compile(entry)
    N, R, D = np.broadcast_arrays(np.asarray(n_params, float), np.asarray(ratio, float),
                                  np.asarray(tokens_b, float))
    N, R, D = N.ravel(), R.ravel(), D.ravel()
    n = N.size
    k = len(c.names)
    ia0 = c.names.index("A0")
    M = c.dcoef.shape[0]
    a = (1 - level) / 2
    klo = int(math.floor(a * (M - 1)))
    khi = int(math.ceil((1 - a) * (M - 1)))
    out = {key: np.empty(n) for key in ("a0", "a0_low", "a0_high", "ratio", "ratio_low", "ratio_high")}
    if noise_sd > 0:
        out["pred_low"] = np.empty(n)
        out["pred_high"] = np.empty(n)
        rng = np.random.default_rng(seed)
    if method not in METHODS:
        raise SparsityLawsError(
            f"unknown method {method!r} (argument 'method'); known: {', '.join(METHODS)}")
    if method != "coef" and c.run_draws64 is None:
        raise LawSetError(f"this law set stores no per-run draws; method={method!r} is unavailable")
    tr = [TRANSFORMS[nm] == "log" for nm in c.names]
    for s in range(0, n, chunk):
        sl = slice(s, min(s + chunk, n))
        dx = np.log10(N[sl]) - c.xc
        h0 = c.xtx_inv[0, 0] + 2 * dx * c.xtx_inv[0, 1] + dx * dx * c.xtx_inv[1, 1]
        infl = np.sqrt(1.0 + h0)
        r = R[sl]
        d = D[sl]
        # point estimate
        pt = []
        for j in range(k):
            g = c.coef[0, j] + c.coef[1, j] * dx
            pt.append(np.exp(g) if tr[j] else g)
        pt[ia0] = pt[ia0] + _wd_delta(c, r, c.wd_slope, c.wd_rb)
        out["a0"][sl] = pt[ia0]
        out["ratio"][sl] = _eval_form(c.form, pt, d)
        # draws, shape (m, M): draws contiguous so the order statistics are cheap
        # float32 halves the memory traffic; percentiles of 200-400 draws need no more
        dx32 = dx.astype(np.float32)[:, None]
        infl32 = infl.astype(np.float32)[:, None]
        th = []
        for j in range(k):
            if method != "coef" and j != ia0:  # only the limit is needed from the lines
                th.append(None)
                continue
            g = c.dcoef32[0, j][None, :] + dx32 * c.dcoef32[1, j][None, :]
            g += infl32 * c.jitter32[j][None, :]
            if tr[j]:
                np.clip(g, -80, 80, out=g)
                np.exp(g, out=g)
            th.append(g)
        if c.wd_model not in ("none", "constant"):
            dsl = c.wd_dslope.astype(np.float32)[None, :]
            drb = None if c.wd_drb is None else c.wd_drb.astype(np.float32)[None, :]
            th[ia0] = th[ia0] + _wd_delta(c, r.astype(np.float32)[:, None], dsl, drb).astype(np.float32)
        a0d = th[ia0]
        if method == "curve":
            out["ratio"][sl], ad = _curve_values(c, dx, infl, r, d, np.log10(N[sl]))
        elif method == "excess":
            out["ratio"][sl], ad = _curve_trend(c, dx, infl, out["a0"][sl], a0d.astype(float), d,
                                                np.log10(N[sl]))
        else:
            ad = np.clip(_eval_form(c.form, th, d.astype(np.float32)[:, None]), 0.0, 1.0)
        for key, arr in (("a0", a0d), ("ratio", ad)):
            part = np.partition(arr, [klo, khi], axis=1)
            out[f"{key}_low"][sl] = part[:, klo]
            out[f"{key}_high"][sl] = part[:, khi]
        if noise_sd > 0:
            part = np.partition(ad + rng.normal(0.0, noise_sd, ad.shape), [klo, khi], axis=1)
            out["pred_low"][sl] = part[:, klo]
            out["pred_high"][sl] = part[:, khi]
    return out


def _curve_values(c: _Compiled, dx: np.ndarray, infl: np.ndarray, r: np.ndarray, d: np.ndarray,
                  x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pure curve trend (method="curve"): run curves at equal tokens per parameter, trended
    linearly in log10 N.  Returns the point (m,) and draws (m, M)."""
    nr = c.log10_n.size
    Xr = np.column_stack([np.ones(nr), c.log10_n - c.xc])
    w = np.column_stack([np.ones_like(dx), dx]) @ c.xtx_inv @ Xr.T  # (m, n_runs)
    H = Xr @ c.xtx_inv @ Xr.T
    dof = nr - int(np.linalg.matrix_rank(Xr))
    k = c.run_theta.shape[1]
    d_runs = d[:, None] * 10.0 ** (c.log10_n[None, :] - x0[:, None])
    A = np.column_stack([_eval_form(c.form, [c.run_theta[i, j] for j in range(k)], d_runs[:, i])
                         for i in range(nr)])
    point = np.sum(w * A, axis=1) + _wd_delta(c, r, c.wd_slope, c.wd_rb)
    resid = A - A @ H.T
    s2 = np.sum(resid**2, axis=1) / dof if dof > 0 else np.zeros(A.shape[0])
    draws = (np.sqrt(s2) * infl)[:, None] * c.curve_t[None, :]
    if c.runs_fixed:
        draws += np.sum(w * A, axis=1)[:, None]
    else:
        for i in range(nr):
            th = [c.run_draws64[i, j][None, :] for j in range(k)]
            draws += w[:, i][:, None] * _eval_form(c.form, th, d_runs[:, i][:, None])
    if c.wd_model not in ("none", "constant"):
        dsl = c.wd_dslope[None, :]
        drb = None if c.wd_drb is None else c.wd_drb[None, :]
        draws += _wd_delta(c, r[:, None], dsl, drb)
    return np.clip(point, 0.0, 1.0), np.clip(draws, 0.0, 1.0)


def _curve_trend(c: _Compiled, dx: np.ndarray, infl: np.ndarray, a0_point: np.ndarray,
                 a0_draws: np.ndarray, d: np.ndarray, x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Curve-space trend of the excess over the limit (see predict_section).

    For each fitted run i the log excess log|A_i(D N_i / N) - A0_i| (same tokens per
    parameter) is trended linearly in log10 N; the prediction is A0(N, r) + sign * exp(trend),
    so it approaches the predicted limit from the side the law dictates (ReLU from above,
    SiLU from below).  Returns the point (m,) and draws (m, M).
    """
    nr = c.log10_n.size
    Xr = np.column_stack([np.ones(nr), c.log10_n - c.xc])
    w = np.column_stack([np.ones_like(dx), dx]) @ c.xtx_inv @ Xr.T  # (m, n_runs)
    H = Xr @ c.xtx_inv @ Xr.T
    dof = nr - int(np.linalg.matrix_rank(Xr))
    sign = 1.0 if c.form == "logspace_power" else -1.0
    ia0 = c.names.index("A0")
    d_runs = d[:, None] * 10.0 ** (c.log10_n[None, :] - x0[:, None])  # same tokens per parameter
    k = c.run_theta.shape[1]
    E = np.column_stack([
        np.log(np.clip(np.abs(_eval_form(c.form, [c.run_theta[i, j] for j in range(k)], d_runs[:, i])
                              - c.run_theta[i, ia0]), 1e-12, None))
        for i in range(nr)])  # (m, n_runs)
    point = a0_point + sign * np.exp(np.sum(w * E, axis=1))
    resid = E - E @ H.T
    s2 = np.sum(resid**2, axis=1) / dof if dof > 0 else np.zeros(E.shape[0])
    # float64 here: bootstrap draws of b and c can be huge and nearly cancel in b - c D^alpha
    logex = (np.sqrt(s2) * infl)[:, None] * c.curve_t[None, :]
    if c.runs_fixed:
        logex += np.sum(w * E, axis=1)[:, None]
    else:
        for i in range(nr):
            th = [c.run_draws64[i, j][None, :] for j in range(k)]
            ex = np.abs(_eval_form(c.form, th, d_runs[:, i][:, None]) - c.run_draws64[i, ia0][None, :])
            logex += w[:, i][:, None] * np.log(np.clip(ex, 1e-12, None))
    draws = a0_draws + sign * np.exp(np.clip(logex, -700, 50))
    return np.clip(point, 0.0, 1.0), np.clip(draws, 0.0, 1.0)


# ============================================================================ cross-scale check


def _points_of(points: Any, run: str) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(points, pd.DataFrame):
        g = points[points["run"] == run].sort_values("tokens")
        if g.empty:
            raise FitInputError(f"cross-scale check: no measured points for run {run!r}")
        return g["tokens"].to_numpy(float), g["activation_ratio"].to_numpy(float)
    try:
        t, y = points[run]
    except KeyError:
        raise FitInputError(f"cross-scale check: no measured points for run {run!r}") from None
    return np.asarray(t, float), np.asarray(y, float)


def cross_scale_check(
    runfits: Mapping[str, Any],
    run_info: Mapping[str, Mapping],
    points: pd.DataFrame | Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    train: Sequence[str],
    test: Sequence[str],
    level: float = 0.9,
    n_draws: int = 1000,
    seed: int = 0,
    kept_only: bool = True,
    method: str = "excess",
) -> pd.DataFrame:
    """Fit the scale trends on ``train`` runs only and score predicted curves of ``test`` runs.

    For each held-out run the whole curve A(D) is predicted from its n_params alone (the
    trends of its activation, fitted on the training runs of that activation) at its
    measured token counts, and compared with its measured points: errors (MAE, RMSE, max,
    bias, all in activation-ratio units) and the share of points inside the ``level``
    curve band (``coverage_curve``) and the band for a single point (``coverage_point``:
    curve draws plus point noise with the training runs' pooled residual sd).  With
    ``kept_only`` the held-out run's warm-up points (before the first point its own fit
    kept) are left out, as they follow no law.
    """
    overlap = set(train) & set(test)
    if overlap:
        raise FitInputError(f"cross-scale check: runs both in train and test: {sorted(overlap)}")
    summ = {name: summarize_run(name, runfits[name], run_info.get(name, {}))
            for name in list(train) + list(test) if name in runfits}
    missing = [r for r in list(train) + list(test) if r not in summ]
    if missing:
        raise FitInputError(f"cross-scale check: runs not in the fits: {missing}")
    rows = []
    for name in test:
        ts = summ[name]
        tr = [summ[r] for r in train if summ[r].activation == ts.activation]
        if not tr:
            raise FitInputError(f"cross-scale check: no training runs of activation {ts.activation!r}")
        trend = fit_scale_trends(tr, level=level, n_draws=n_draws, seed=seed)
        sec = assemble_section({ts.activation: {"scale": trend.to_dict(), "widthdepth": None,
                                                "ranges": _ranges(tr, None), "caveats": []}},
                               n_draws=n_draws, seed=seed)
        tok, y = _points_of(points, name)
        D = tok / 1e9
        if kept_only and np.isfinite(ts.tokens_b[0]):
            keep = ts.tokens_b[0] * (1 - 1e-9) <= D
            D, y = D[keep], y[keep]
        pr = predict_section(sec, ts.activation, ts.n_params, ts.ratio or 0.0, D, level=level,
                             noise_sd=trend.sigma or 0.0, seed=seed, method=method)
        err = pr["ratio"] - y
        rows.append({
            "run": name, "activation": ts.activation, "method": method, "n_params": ts.n_params,
            "train_runs": ",".join(r.name for r in tr), "n_points": int(D.size),
            "tokens_b_min": float(D.min()), "tokens_b_max": float(D.max()),
            "mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2))),
            "max_abs_error": float(np.max(np.abs(err))), "bias": float(np.mean(err)),
            "coverage_curve": float(np.mean((y >= pr["ratio_low"]) & (y <= pr["ratio_high"]))),
            "coverage_point": float(np.mean((y >= pr["pred_low"]) & (y <= pr["pred_high"])))
            if "pred_low" in pr else math.nan,
            "mean_band_width": float(np.mean(pr.get("pred_high", pr["ratio_high"])
                                             - pr.get("pred_low", pr["ratio_low"]))),
            "a0_predicted": float(pr["a0"][0]), "a0_low": float(pr["a0_low"][0]),
            "a0_high": float(pr["a0_high"][0]), "a0_fitted": ts.a0,
            "level": level,
        })
    return pd.DataFrame(rows)


def cross_scale_from_table(
    table: pd.DataFrame,
    *,
    train: Sequence[str],
    test: Sequence[str],
    methods: Sequence[str] = METHODS,
    n_boot: int = 300,
    level: float = 0.9,
    seed: int = 0,
) -> pd.DataFrame:
    """Cross-scale check straight from a measurement table (any runs a user has).

    Fits each named run's paper law with :func:`sparsitylaws.runfit.fit_run` (automatic
    warm-up rule, ``n_boot`` bootstrap replicates), takes width, depth and n_params from the
    table, and returns :func:`cross_scale_check` rows for every method in ``methods``.
    """
    from sparsitylaws.runfit import fit_run

    need = {"run", "tokens", "activation_ratio", "activation", "n_params"}
    missing = need - set(table.columns)
    if missing:
        raise FitInputError(f"cross-scale check: table lacks column(s) {sorted(missing)}")
    fits, info = {}, {}
    for name in list(train) + list(test):
        sub = table[table["run"] == name].sort_values("tokens")
        if sub.empty:
            raise FitInputError(f"cross-scale check: run {name!r} is not in the table")
        act = str(sub["activation"].iloc[0]).lower()
        fits[name] = fit_run(sub["tokens"].to_numpy(float), sub["activation_ratio"].to_numpy(float),
                             run=name, activation=act, n_boot=n_boot, seed=seed, compare=False,
                             backtest=False)
        first = sub.iloc[0]
        info[name] = {"activation": act, "n_params": _num(first.get("n_params")),
                      "width": _num(first.get("width")), "depth": _num(first.get("depth"))}
    frames = [cross_scale_check(fits, info, table, train=train, test=test, level=level, seed=seed,
                                method=m) for m in methods]
    return pd.concat(frames, ignore_index=True)
