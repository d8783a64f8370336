"""Law forms for the activation ratio A as a function of training data D.

D is always in **billions of tokens**, as in the paper (Luo et al. 2024, arXiv:2411.02335).

Each :class:`LawForm` carries its formula, its ordered parameters with meaning and physical
bounds, a vectorized ``evaluate(D, theta)``, a map to and from an *unconstrained*
parameterization (log for positive parameters, logit for parameters in an open interval),
data-driven starting points, and the name of the parameter that is the limit A0 (None when
the form has no finite limit parameter).

Forms (see docs/laws.md):

* ``logspace_power``   A = exp(-c*D^alpha + b) + A0   (ReLU; decreasing, converges to A0)
* ``convergent_power`` A = -c*D^(-alpha) + A0         (SiLU; increasing, converges to A0)
* ``power_offset``     A = c*D^(-alpha) + A0          (decreasing, converges to A0)
* ``log``              A = c*log(a*D + 1) + A0        (the paper's c*log(a*D+b)+A0 with b absorbed)
* ``sigmoid``          A = a - 1/(1 + exp(c*D + d))   (the paper's a - 1/(1+b*exp(c*D+d)), b absorbed)
* ``constant``         A = A0

Public API: :class:`Parameter`, :class:`LawForm`, :data:`FORMS`, :func:`get_form`,
:func:`default_form_for`, :func:`known_forms`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sparsitylaws.errors import FitInputError

__all__ = [
    "FORMS",
    "LawForm",
    "Parameter",
    "RELU_LIKE",
    "default_form_for",
    "get_form",
    "known_forms",
]

_LOGIT_EPS = 1e-300


@dataclass(frozen=True)
class Parameter:
    """One law parameter: name, meaning and open physical bounds (lower < value < upper)."""

    name: str
    meaning: str
    lower: float = -np.inf
    upper: float = np.inf

    @property
    def transform(self) -> str:
        """How the parameter maps to an unconstrained number: identity, log, neglog or logit."""
        lo, hi = np.isfinite(self.lower), np.isfinite(self.upper)
        if lo and hi:
            return "logit"
        if lo:
            return "log"
        if hi:
            return "neglog"
        return "identity"

    def to_unconstrained(self, value: np.ndarray) -> np.ndarray:
        """Natural value -> unconstrained value (vectorized)."""
        v = np.asarray(value, dtype=float)
        t = self.transform
        with np.errstate(divide="ignore", invalid="ignore"):
            if t == "identity":
                return v.copy()
            if t == "log":
                return np.log(v - self.lower)
            if t == "neglog":
                return np.log(self.upper - v)
            p = (v - self.lower) / (self.upper - self.lower)
            return np.log(p) - np.log1p(-p)

    def from_unconstrained(self, u: np.ndarray) -> np.ndarray:
        """Unconstrained value -> natural value, always strictly inside the bounds when finite."""
        u = np.asarray(u, dtype=float)
        t = self.transform
        with np.errstate(over="ignore"):
            if t == "identity":
                return u.copy()
            if t == "log":
                return self.lower + np.exp(u)
            if t == "neglog":
                return self.upper - np.exp(u)
            return self.lower + (self.upper - self.lower) / (1.0 + np.exp(-u))

    def dnatural_du(self, u: np.ndarray) -> np.ndarray:
        """Derivative of the natural value with respect to the unconstrained one."""
        u = np.asarray(u, dtype=float)
        t = self.transform
        with np.errstate(over="ignore"):
            if t == "identity":
                return np.ones_like(u)
            if t == "log":
                return np.exp(u)
            if t == "neglog":
                return -np.exp(u)
            s = 1.0 / (1.0 + np.exp(-u))
            return (self.upper - self.lower) * s * (1.0 - s)

    def inside(self, value: float) -> bool:
        """True when the value lies strictly inside the bounds."""
        return bool(np.isfinite(value) and self.lower < value < self.upper)


@dataclass(frozen=True)
class LawForm:
    """A law A(D; theta) with ordered parameters, bounds, evaluation and starting points."""

    name: str
    formula: str
    description: str
    parameters: tuple[Parameter, ...]
    limit_param: str | None
    _func: Callable[[np.ndarray, np.ndarray], np.ndarray]
    _starts: Callable[[np.ndarray, np.ndarray], list[list[float]]]
    #: optional joint reparameterization (natural (..., k) <-> unconstrained (..., k)) for
    #: forms whose per-parameter transforms leave a curved valley (see logspace_power)
    _to_u: Callable[[np.ndarray], np.ndarray] | None = None
    _from_u: Callable[[np.ndarray], np.ndarray] | None = None
    #: its Jacobian d(theta)/d(u) at one u, (k, k) (central differences when absent)
    _dfrom_u: Callable[[np.ndarray], np.ndarray] | None = None
    #: weakly informative prior on the unconstrained parameters from the data: (D, y) ->
    #: (mean (k,), sd (k,)); None for forms fitted without one (see :meth:`prior`)
    _prior: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
    #: what each unconstrained coordinate is, for messages (default: the parameters' names)
    _u_names: tuple[str, ...] | None = None
    #: analytic Jacobian of the curve in the unconstrained parameters: (D (n,), U (m, k)) ->
    #: (m, n, k); central differences when absent (:meth:`jacobian_u`)
    _jac_u: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None

    @property
    def param_names(self) -> list[str]:
        """Parameter names in the order of theta."""
        return [p.name for p in self.parameters]

    @property
    def n_params(self) -> int:
        """Number of free parameters k."""
        return len(self.parameters)

    def evaluate(self, D: np.ndarray | Sequence[float] | float, theta: np.ndarray) -> np.ndarray:
        """A(D; theta). theta of shape (k,) gives shape (len(D),); (m, k) gives (m, len(D))."""
        d = np.atleast_1d(np.asarray(D, dtype=float))
        th = np.asarray(theta, dtype=float)
        if th.shape[-1] != self.n_params:
            raise FitInputError(
                f"theta for form {self.name!r} needs {self.n_params} values "
                f"({', '.join(self.param_names)}), got shape {th.shape}"
            )
        cols = th.T[..., None] if th.ndim == 2 else th[:, None]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            out = self._func(d[None, :], cols)
        shape = (th.shape[0], d.size) if th.ndim == 2 else (1, d.size)
        if out.shape != shape:
            out = np.array(np.broadcast_to(out, shape), dtype=float)
        return out if th.ndim == 2 else out[0]

    def to_unconstrained(self, theta: np.ndarray) -> np.ndarray:
        """Natural parameters (..., k) -> unconstrained parameters (..., k)."""
        th = np.asarray(theta, dtype=float)
        if self._to_u is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                return self._to_u(th)
        return np.stack([p.to_unconstrained(th[..., i]) for i, p in enumerate(self.parameters)], axis=-1)

    def from_unconstrained(self, u: np.ndarray) -> np.ndarray:
        """Unconstrained parameters (..., k) -> natural parameters (..., k), inside the bounds."""
        uu = np.asarray(u, dtype=float)
        if self._from_u is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                return self._from_u(uu)
        return np.stack([p.from_unconstrained(uu[..., i]) for i, p in enumerate(self.parameters)], axis=-1)

    def dtheta_du(self, u: np.ndarray) -> np.ndarray:
        """Jacobian d(theta)/d(u) at one u, shape (k, k) (analytic; central differences for a
        joint map without its own)."""
        uu = np.asarray(u, dtype=float)
        if self._from_u is None:
            return np.diag([p.dnatural_du(uu[i]) for i, p in enumerate(self.parameters)])
        if self._dfrom_u is not None:
            return self._dfrom_u(uu)
        k = uu.size
        h = 1e-6 * np.maximum(1.0, np.abs(uu))
        up = uu[None, :] + np.diag(h)
        um = uu[None, :] - np.diag(h)
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf at a parameter's edge -> NaN
            return ((self.from_unconstrained(up) - self.from_unconstrained(um)) / (2 * h[:, None])).T.reshape(k, k)

    def in_bounds(self, theta: Sequence[float]) -> bool:
        """True when every parameter is finite and strictly inside its physical bounds."""
        return all(p.inside(float(v)) for p, v in zip(self.parameters, theta, strict=True))

    def starting_points(self, D: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Several data-driven starting points, shape (n_starts, k), all finite and in bounds."""
        d = np.asarray(D, dtype=float)
        yy = np.asarray(y, dtype=float)
        rows = []
        for th in self._starts(d, yy):
            th = np.array([_clip_inside(p, v) for p, v in zip(self.parameters, th, strict=True)])
            if np.all(np.isfinite(th)):
                rows.append(th)
        if not rows:  # pragma: no cover - every form has a fallback start
            raise FitInputError(f"form {self.name!r}: no finite starting point for these data")
        return np.unique(np.array(rows), axis=0)

    def prior(self, D: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Weakly informative Gaussian prior on the unconstrained parameters, (mean, sd), or None.

        Why: where the data do not identify a parameter (a ReLU curve that is a pure power law,
        alpha -> 0 with c -> inf; a SiLU curve that does not rise, so A0 slides along a flat
        valley) the least-squares optimum is a flat valley and the smallest perturbation of the
        data moves the estimate along it.  A prior a few units wide in the log/logit
        coordinates picks one point of the valley (the one nearest the prior's centre) and
        leaves identified parameters where the data put them (docs/fitting.md, "Priors").
        """
        if self._prior is None:
            return None
        d = np.asarray(D, dtype=float)
        yy = np.asarray(y, dtype=float)
        mean, sd = self._prior(d, yy)
        return np.asarray(mean, dtype=float), np.asarray(sd, dtype=float)

    def jacobian_u(self, D: np.ndarray, U: np.ndarray) -> np.ndarray | None:
        """d A(D) / d u for rows U (m, k) at D (n,), shape (m, n, k); None without an analytic one."""
        if self._jac_u is None:
            return None
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._jac_u(np.asarray(D, float), np.atleast_2d(np.asarray(U, float)))

    @property
    def u_names(self) -> list[str]:
        """What each unconstrained coordinate is (the parameter's name, or a combination)."""
        return list(self._u_names) if self._u_names is not None else self.param_names

    def limit_index(self) -> int | None:
        """Index of the limit parameter in theta, or None."""
        return None if self.limit_param is None else self.param_names.index(self.limit_param)


def _clip_inside(p: Parameter, v: float) -> float:
    """Move a starting value strictly inside the parameter's bounds."""
    if not np.isfinite(v):
        return float("nan")
    lo, hi = p.lower, p.upper
    if np.isfinite(lo) and np.isfinite(hi):
        margin = 1e-4 * (hi - lo)
        return float(min(max(v, lo + margin), hi - margin))
    if np.isfinite(lo) and v <= lo:
        return float(lo + max(1e-6, 1e-3 * abs(lo)))
    if np.isfinite(hi) and v >= hi:
        return float(hi - max(1e-6, 1e-3 * abs(hi)))
    return float(v)


def _linfit(x: np.ndarray, z: np.ndarray) -> tuple[float, float]:
    """Least-squares line z = intercept + slope * x; returns (intercept, slope)."""
    ok = np.isfinite(x) & np.isfinite(z)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0:
        return float(np.nanmean(z[ok])) if ok.any() else 0.0, 0.0
    slope, intercept = np.polyfit(x[ok], z[ok], 1)
    return float(intercept), float(slope)


def _spread(y: np.ndarray) -> float:
    """Range of y, never zero."""
    return float(max(np.ptp(y), 1e-3 * max(abs(float(np.mean(y))), 1e-6), 1e-9))


# --------------------------------------------------------------------------- the forms


def _f_logspace(D: np.ndarray, t: np.ndarray) -> np.ndarray:
    alpha, b, c, a0 = t
    return np.exp(-c * D**alpha + b) + a0


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _to_u_logspace(t: np.ndarray) -> np.ndarray:
    """(alpha, b, c, A0) -> (log alpha, b - c, log(c*alpha), logit A0).

    As alpha -> 0 with c*alpha fixed the law tends to exp(b - c) * D^(-c*alpha) + A0 (the
    power_offset form); in these coordinates that limit is a straight ray (log alpha -> -inf)
    rather than a curved valley, so Levenberg-Marquardt settles instead of crawling.
    """
    alpha, b, c, a0 = (t[..., i] for i in range(4))
    return np.stack([np.log(alpha), b - c, np.log(c) + np.log(alpha), _logit(a0)], axis=-1)


def _from_u_logspace(u: np.ndarray) -> np.ndarray:
    alpha = np.exp(u[..., 0])
    c = np.exp(u[..., 2] - u[..., 0])
    return np.stack([alpha, u[..., 1] + c, c, 1.0 / (1.0 + np.exp(-u[..., 3]))], axis=-1)


def _dfrom_u_logspace(u: np.ndarray) -> np.ndarray:
    """d(alpha, b, c, A0) / d(u0..u3) of :func:`_from_u_logspace` at one u (exact: no central
    differences across a parameter's edge).  c = exp(u2 - u0) overflows to inf only where the
    derivative itself is unbounded (alpha -> 0 with c * alpha fixed)."""
    with np.errstate(over="ignore"):
        alpha = float(np.exp(u[0]))
        c = float(np.exp(u[2] - u[0]))
        s = float(1.0 / (1.0 + np.exp(-u[3])))
    return np.array([[alpha, 0.0, 0.0, 0.0],
                     [-c, 1.0, c, 0.0],
                     [-c, 0.0, c, 0.0],
                     [0.0, 0.0, 0.0, s * (1.0 - s)]])


def _j_logspace(D: np.ndarray, U: np.ndarray) -> np.ndarray:
    """Analytic d A / d u of logspace_power in its joint coordinates (see :func:`_to_u_logspace`).

    With x = alpha ln D and E = exp(-c D^alpha + b): d/du0 = E c (expm1(x) - x e^x) (the alpha
    direction at fixed c alpha: small where the law is close to its power-law limit, written
    with expm1 so it does not cancel), d/du1 = E, d/du2 = -E c (D^alpha - 1) - ... = -E c expm1(x),
    d/du3 = s (1 - s), s = A0.
    """
    alpha = np.exp(U[:, 0])[:, None]
    c = np.exp(U[:, 2] - U[:, 0])[:, None]
    b = U[:, 1][:, None] + c
    s = 1.0 / (1.0 + np.exp(-U[:, 3]))
    x = alpha * np.log(D)[None, :]
    E = np.exp(-c * np.exp(x) + b)
    em1 = np.expm1(x)
    J = np.empty((U.shape[0], D.size, 4))
    J[:, :, 0] = E * c * (em1 - x * np.exp(x))
    J[:, :, 1] = E
    J[:, :, 2] = -E * c * em1
    J[:, :, 3] = (s * (1.0 - s))[:, None]
    return J


def _j_power(sign: float):
    """Analytic d A / d u of A = sign c D^-alpha + A0 in (log alpha, log c, logit A0)."""

    def jac(D: np.ndarray, U: np.ndarray) -> np.ndarray:
        alpha = np.exp(U[:, 0])[:, None]
        c = np.exp(U[:, 1])[:, None]
        s = 1.0 / (1.0 + np.exp(-U[:, 2]))
        lnD = np.log(D)[None, :]
        P = np.exp(-alpha * lnD)
        J = np.empty((U.shape[0], D.size, 3))
        J[:, :, 0] = -sign * c * P * lnD * alpha
        J[:, :, 1] = sign * c * P
        J[:, :, 2] = (s * (1.0 - s))[:, None]
        return J

    return jac


def _s_logspace(D: np.ndarray, y: np.ndarray) -> list[list[float]]:
    lo, r = float(np.min(y)), _spread(y)
    out = []
    for q in (0.02, 0.2, 1.0):
        a0 = lo - q * r
        z = np.log(np.clip(y - a0, 1e-12, None))
        for alpha in (0.2, 0.6, 1.2):
            b, slope = _linfit(D**alpha, z)
            out.append([alpha, b, max(-slope, 1e-6), a0])
    return out


#: Prior centre and sd of log(alpha): alpha of the 11 published runs spans 0.1-1.5 (Table 2 of
#: Luo et al. 2024; geometric mean 0.6, sd of log alpha 0.8); sd 2.5, three times that spread,
#: puts 95% of the prior mass on 0.004-67.  Wider (3.5) left the lab runs' limits moving by up
#: to 0.07 points under 0.001-point noise; this width keeps them under 0.03 (docs/fitting.md).
ALPHA_PRIOR = (math.log(0.5), 2.5)
#: Prior sd of logit(A0) around the data's end level (2 logit units: from 1.2% to 45% around
#: a 9% level), and of the log scale parameters (very wide: they only break flat valleys).
A0_PRIOR_SD = 2.0
SCALE_PRIOR_SD = 5.0


def _clip01(v: float) -> float:
    return float(min(max(v, 1e-4), 1.0 - 1e-4))


def _end_level(D: np.ndarray, y: np.ndarray) -> float:
    """Mean of the last fifth of the points in token order (at least 2): where the curve is
    heading, robust to one noisy checkpoint and not pulled by warm-up points."""
    order = np.argsort(D, kind="stable")
    m = max(2, int(round(0.2 * y.size)))
    return float(np.mean(np.asarray(y, float)[order][-m:]))


def _p_logspace(D: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log alpha, b - c, log(c*alpha), logit A0): alpha as :data:`ALPHA_PRIOR`; the log excess
    at D = 1 and the power-law slope c*alpha wide around the data's scale; A0 around the
    curve's end level (:func:`_end_level`)."""
    r = _spread(y)
    mean = [ALPHA_PRIOR[0], math.log(r), math.log(0.05), float(_logit(np.float64(_clip01(_end_level(D, y)))))]
    return np.array(mean), np.array([ALPHA_PRIOR[1], SCALE_PRIOR_SD, SCALE_PRIOR_SD, A0_PRIOR_SD])


def _p_power(D: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log alpha, log c, logit A0) for the power laws with offset: c (the gap to A0 at D = 1
    billion tokens) around the data's range carried to D = 1 with alpha = 0.5, A0 around the
    curve's end level (:func:`_end_level`)."""
    r = _spread(y)
    end = _end_level(D, y)
    dgeo = float(np.exp(np.mean(np.log(D))))
    mean = [ALPHA_PRIOR[0], math.log(r) + 0.5 * math.log(dgeo), float(_logit(np.float64(_clip01(end))))]
    return np.array(mean), np.array([ALPHA_PRIOR[1], SCALE_PRIOR_SD, A0_PRIOR_SD])




def _f_convergent(D: np.ndarray, t: np.ndarray) -> np.ndarray:
    alpha, c, a0 = t
    return -c * D ** (-alpha) + a0


def _s_convergent(D: np.ndarray, y: np.ndarray) -> list[list[float]]:
    hi, r = float(np.max(y)), _spread(y)
    out = []
    for q in (0.02, 0.2, 1.0):
        a0 = hi + q * r
        logc, slope = _linfit(np.log(D), np.log(np.clip(a0 - y, 1e-12, None)))
        out.append([max(-slope, 1e-3), float(np.exp(logc)), a0])
    return out


def _f_power_offset(D: np.ndarray, t: np.ndarray) -> np.ndarray:
    alpha, c, a0 = t
    return c * D ** (-alpha) + a0


def _s_power_offset(D: np.ndarray, y: np.ndarray) -> list[list[float]]:
    lo, r = float(np.min(y)), _spread(y)
    out = []
    for q in (0.02, 0.2, 1.0):
        a0 = lo - q * r
        logc, slope = _linfit(np.log(D), np.log(np.clip(y - a0, 1e-12, None)))
        out.append([max(-slope, 1e-3), float(np.exp(logc)), a0])
    return out


def _f_log(D: np.ndarray, t: np.ndarray) -> np.ndarray:
    a, c, a0 = t
    return c * np.log1p(a * D) + a0


def _s_log(D: np.ndarray, y: np.ndarray) -> list[list[float]]:
    med = float(np.median(D))
    out = []
    for s in (0.1, 1.0, 10.0):
        a = s / med
        a0, c = _linfit(np.log1p(a * D), y)
        out.append([a, c, a0])
    return out


def _f_sigmoid(D: np.ndarray, t: np.ndarray) -> np.ndarray:
    a, c, d = t
    return a - 1.0 / (1.0 + np.exp(c * D + d))


def _s_sigmoid(D: np.ndarray, y: np.ndarray) -> list[list[float]]:
    lo, hi, r = float(np.min(y)), float(np.max(y)), _spread(y)
    out = []
    for q in (0.05, 0.5):
        for a in (hi + q * r, 1.0 + lo - q * r):  # increasing / decreasing branch
            w = a - y
            z = np.log(np.clip(1.0 / np.clip(w, 1e-12, 1 - 1e-12) - 1.0, 1e-300, None))
            d, c = _linfit(D, z)
            out.append([a, c, d])
    return out


def _f_constant(D: np.ndarray, t: np.ndarray) -> np.ndarray:
    (a0,) = t
    return a0 + 0.0 * D


def _s_constant(D: np.ndarray, y: np.ndarray) -> list[list[float]]:
    return [[float(np.mean(y))], [float(np.median(y))]]


_A0 = Parameter("A0", "limit activation ratio as D -> infinity", 0.0, 1.0)

FORMS: dict[str, LawForm] = {
    f.name: f
    for f in (
        LawForm(
            "logspace_power",
            "A = exp(-c*D^alpha + b) + A0",
            "Paper's ReLU law: decreasing power law in log space, converging to A0.",
            (
                Parameter("alpha", "exponent of D inside the exponential", 0.0, np.inf),
                Parameter("b", "log of the excess activation ratio at D -> 0"),
                Parameter("c", "rate of decay of the log excess ratio", 0.0, np.inf),
                _A0,
            ),
            "A0",
            _f_logspace,
            _s_logspace,
            _to_u_logspace,
            _from_u_logspace,
            _dfrom_u_logspace,
            _p_logspace,
            ("alpha", "b - c", "c*alpha", "A0"),
            _j_logspace,
        ),
        LawForm(
            "convergent_power",
            "A = -c*D^(-alpha) + A0",
            "Paper's SiLU law: increasing power law converging to A0 from below.",
            (
                Parameter("alpha", "exponent of the vanishing power term", 0.0, np.inf),
                Parameter("c", "size of the deficit A0 - A at D = 1 (billion tokens)", 0.0, np.inf),
                _A0,
            ),
            "A0",
            _f_convergent,
            _s_convergent,
            _prior=_p_power,
            _jac_u=_j_power(-1.0),
        ),
        LawForm(
            "power_offset",
            "A = c*D^(-alpha) + A0",
            "Decreasing power law with offset, converging to A0 from above.",
            (
                Parameter("alpha", "exponent of the vanishing power term", 0.0, np.inf),
                Parameter("c", "excess A - A0 at D = 1 (billion tokens)", 0.0, np.inf),
                _A0,
            ),
            "A0",
            _f_power_offset,
            _s_power_offset,
            _prior=_p_power,
            _jac_u=_j_power(1.0),
        ),
        LawForm(
            "log",
            "A = c*log(a*D + 1) + A0",
            "Paper's log alternative c*log(a*D+b)+A0; b > 0 is absorbed (c*log(b) into A0, a/b "
            "into a), which leaves the same family with identifiable parameters. No finite limit.",
            (
                Parameter("a", "scale of D inside the logarithm (1/billion tokens)", 0.0, np.inf),
                Parameter("c", "change of A per e-fold of (a*D + 1); negative = decreasing"),
                Parameter("A0", "activation ratio at D = 0 (not a limit)"),
            ),
            None,
            _f_log,
            _s_log,
        ),
        LawForm(
            "sigmoid",
            "A = a - 1/(1 + exp(c*D + d))",
            "Paper's sigmoid-like alternative a - 1/(1+b*exp(c*D+d)); b > 0 is absorbed into d "
            "(log b + d). Limit is a (c > 0) or a - 1 (c < 0), so no single limit parameter.",
            (
                Parameter("a", "upper asymptote of the curve", 0.0, 2.0),
                Parameter("c", "rate in D (1/billion tokens); sign gives the direction"),
                Parameter("d", "offset of the logistic argument"),
            ),
            None,
            _f_sigmoid,
            _s_sigmoid,
        ),
        LawForm(
            "constant",
            "A = A0",
            "No dependence on D (a null model for comparisons).",
            (_A0,),
            "A0",
            _f_constant,
            _s_constant,
        ),
    )
}

#: Activation names treated as ReLU-like (exact zeros; the paper's logspace law applies).
RELU_LIKE = frozenset({"relu", "relu2", "relu^2", "squared_relu", "sqrelu", "reglu", "dyrelu"})


def known_forms() -> list[str]:
    """Names of all law forms."""
    return list(FORMS)


def get_form(name: str | LawForm) -> LawForm:
    """The law form called ``name``; FitInputError listing the known names otherwise."""
    if isinstance(name, LawForm):
        return name
    try:
        return FORMS[str(name)]
    except KeyError:
        raise FitInputError(
            f"unknown law form {name!r} (argument 'form'); known forms: {', '.join(FORMS)}"
        ) from None


def default_form_for(activation: str) -> str:
    """Default law for an activation: ReLU-like -> logspace_power, anything else -> convergent_power."""
    act = str(activation).strip().lower().replace("-", "_")
    return "logspace_power" if act in RELU_LIKE else "convergent_power"
