"""Within-run forecasts past the data: candidate forecasts, their combination, calibrated bands.

A run whose law was fitted up to D_c (its last fitted checkpoint) is forecast at D > D_c.  No
single forecast is trusted: the law fitted to a young run flattens too early when the curve
keeps falling (ReLU) or rises further than it will (SiLU), while a straight line or another
run's shape carries what the law's form does not (docs/fitting.md, "Forecasts").

Candidates (each in [0, 1]; ``h = ln(D / D_c)``):

* ``law``   the run's own fitted law;
* ``line``  a straight line in ln D through the last third of the fitted points, its slope held
  to the law's direction (a ReLU line never rises);
* ``last``  the last fitted measurement carried forward;
* ``pool``  the run's level at the cut moved, in logit space, as other runs of the same
  activation moved between the same tokens per parameter (a young run borrows how older runs
  went on after its age), nearest scales weighing most;
* ``trend`` ``pool`` plus a trend of those moves in log N across the runs, shrunk by half (so
  it can learn that larger runs keep falling faster per token per parameter without trusting
  two or three runs fully);
* ``nearest`` the move of the single run nearest in size (the naive "nearest measured run at
  the same tokens per parameter").

The pooled ones borrow from smaller runs only (:data:`SMALLER_ONLY`), and a forecast made beside
an older replicate (a seed with data past the cut, :func:`has_older_replicate`) from that
replicate too, under a model calibrated the same way (:attr:`ForecastModel.same_scale`).

The point forecast is a weighted mean of the available candidates plus a drift read from the
run's own rolling backtests (how far its earlier forecasts missed, per unit of horizon, known
at forecast time), ``F = sum_k w_k F_k + s * beta * drift * h``; the same drift widens the
run's band (``kappa`` -> ``sqrt(kappa^2 + (omega drift)^2)``).  Its band comes from the
errors of other runs' backtest forecasts: direction-normalized errors ``e = s (y - F)``
(``s`` = -1 for a decreasing law, +1 for an increasing one) in units of
``S(h) = sqrt(sigma^2 + (kappa h)^2 + (mu |F - level|)^2)`` (``mu`` = :data:`MOVE_SCALE`: a
forecast projecting a larger move is less sure of it; ``kappa`` per activation, trending with log N when the
runs say so: the published 0.8B ReLU run drifted twice as far per unit of horizon as the 0.1B
and 0.2B runs), their lower and upper quantiles taken separately
(asymmetric), each run counting once, each of its forecasts equally, and forecasts made at a
similar maturity (tokens per parameter at the cut) weighing most.  The point forecast and both
band ends are made monotone in the law's direction on a fixed grid of horizons (a ReLU band
end never rises with tokens, a SiLU one never falls), and kept in [0, 1].

Weights, ``beta`` and which runs calibrate are chosen by :mod:`sparsitylaws.runfit.calibration`
(leave one run out, by interval score, nested); this module only applies a model.
All D in billions of tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from sparsitylaws.errors import LawSetError
from sparsitylaws.runfit.forms import default_form_for, get_form

__all__ = [
    "CANDIDATES",
    "CROSS_WEIGHTS",
    "OLDER",
    "POOLED",
    "SAME_SCALE",
    "SMALLER_ONLY",
    "CutState",
    "ForecastModel",
    "RunCurve",
    "borrow_limit",
    "candidates",
    "cross_factor",
    "direction_of",
    "expit",
    "has_older_replicate",
    "kappa_of",
    "logit",
    "monotone_on_grid",
    "sorted_weighted_quantiles",
    "weighted_quantile",
]

CANDIDATES = ("law", "line", "last", "pool", "trend", "nearest")
#: The candidates borrowed from analog runs (:func:`pool_moves`); the others are the run's own.
POOLED = ("pool", "trend", "nearest")
#: Kernel bandwidth (ln D) of the smoother of measured curves used as analogs.
SMOOTH_BW = 0.25
#: Kernel bandwidth (decades of N) with which analog runs of other scales weigh in.
POOL_BW = 0.5
#: Share of the cross-run log N trend of moves that ``trend`` keeps.
TREND_SHRINK = 0.5
#: A run's pooled candidates borrow only from runs smaller than it, in its calibrating backtests
#: and in its own forecasts alike: a forecast of a run larger than every other must, and the
#: errors that calibrate a band must be those of forecasts made the same way (errors of
#: extrapolating up in size say nothing of borrowing from larger runs, which errs the other way:
#: in simulation the smallest runs' bands covered 0.57-0.68 of later points when they did).
#: Interpolating between sizes also understates the errors of extrapolating to a new one: the
#: published 0.8B ReLU run falls 25% further between 60 and 190 tokens per parameter than the
#: 0.1-0.4B runs, which agree with each other to 3%.
SMALLER_ONLY = True
#: log10 of the size ratio within which a run of the same activation is a replicate: the same
#: parameter count (to one part in a million), a seed.  A forecast made where a replicate has
#: data well past the cut (:func:`has_older_replicate`) borrows from it as well: a replicate
#: errs neither way and is the best analog.  Such forecasts get a model of their own
#: (:attr:`ForecastModel.same_scale`), selected and calibrated on backtests that borrowed the
#: same way.  Shape variants of nearly one size are not replicates: in lab-cpu, a 4% smaller
#: shape variant counted as one (within 10%) took the end-to-end check of its cut runs from
#: 3.17 to 3.60 pp.  (A table that rounds its parameter counts makes its shape variants
#: replicates.)
SAME_SCALE = math.log10(1.0 + 1e-6)
#: How much further (a factor in tokens per parameter) a replicate's data must reach past the
#: cut to lend: one cut at about the same age would only carry its own last slope.
OLDER = 1.1
#: Kernel bandwidth (ln of tokens per parameter) of the maturity weighting of calibration forecasts.
MATURITY_BW = 0.7
#: Step of the horizon grid on which forecasts are made monotone.
H_STEP = 0.01
#: How forecast errors are scaled: "relative" S(h) = sigma sqrt(1 + (kappa h)^2) (errors in
#: units of the run's own noise, so runs of different noise pool), or "additive"
#: S(h) = sqrt(sigma^2 + (kappa h)^2).
SCALE_MODE = "additive"


#: Share of a forecast's projected move (|forecast - level at the cut|) added, in quadrature, to
#: the unit its errors are calibrated in (:func:`error_scale`): a forecast that projects a large
#: move is uncertain in proportion to it (the law's rise or fall, borrowed from other runs or
#: carried by a line, is off by a share of itself, not by a fixed amount per unit of horizon).
#: A fixed design choice, like ``omega``: chosen on the reported runs (docs/fitting.md, round
#: eight), not selected per law set, where three to eight runs did not pick it.
MOVE_SCALE = 0.5


def error_scale(sigma: np.ndarray | float, h: np.ndarray | float, kappa: float, mode: str = SCALE_MODE,
                move: np.ndarray | float = 0.0, mu: float = 0.0) -> np.ndarray:
    """The unit in which forecast errors are calibrated at horizon h (see :data:`SCALE_MODE`),
    widened in quadrature by ``mu`` times the forecast's projected ``move`` (:data:`MOVE_SCALE`)."""
    s = np.where(np.isfinite(np.asarray(sigma, float)), np.asarray(sigma, float), 0.0)
    h = np.asarray(h, float)
    m = np.asarray(move, float)
    extra = (mu * np.where(np.isfinite(m), np.abs(m), 0.0)) ** 2 if mu else 0.0
    if mode == "relative":
        return np.sqrt((np.maximum(s, 1e-6) ** 2) * (1.0 + (kappa * h) ** 2) + extra)
    return np.sqrt(s**2 + (kappa * h) ** 2 + extra)


_EPS = 1e-6


def logit(p: np.ndarray | float) -> np.ndarray:
    """log(p / (1 - p)), p clipped to [1e-6, 1 - 1e-6]."""
    q = np.clip(np.asarray(p, float), _EPS, 1 - _EPS)
    return np.log(q) - np.log1p(-q)


def expit(x: np.ndarray | float) -> np.ndarray:
    """1 / (1 + exp(-x))."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, float)))


def direction_of(activation: str) -> int:
    """-1 when the activation's law decreases with tokens (ReLU-like), +1 when it increases."""
    return -1 if default_form_for(activation) == "logspace_power" else 1


def _isotonic(y: np.ndarray, w: np.ndarray, increasing: bool) -> np.ndarray:
    """Weighted isotonic regression (pool adjacent violators)."""
    if not increasing:
        return -_isotonic(-y, w, True)
    vals, wts, cnt = [], [], []
    for yi, wi in zip(y, w, strict=True):
        vals.append(float(yi))
        wts.append(float(wi))
        cnt.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            wsum = wts[-2] + wts[-1]
            v = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / wsum if wsum > 0 else 0.5 * (vals[-2] + vals[-1])
            vals[-2:] = [v]
            wts[-2:] = [wsum]
            cnt[-2:] = [cnt[-2] + cnt[-1]]
    return np.repeat(vals, cnt)


@dataclass
class RunCurve:
    """A run's curve as an analog for other runs: smoothed logit activation ratio against
    tokens (billions), monotone in its law's direction, with the run's size.

    Built from measured points (:meth:`from_points`: a local-linear smoother in ln D, then
    isotonic in the law's direction) or from a fitted law (:meth:`from_law`, for the packaged
    default, which ships no measured data).
    """

    run: str
    activation: str
    n_params: float | None
    tokens_b: np.ndarray
    values: np.ndarray  # smoothed logit ratio at tokens_b
    source: str = "measured"

    @property
    def direction(self) -> int:
        """The law's direction of this run's activation."""
        return direction_of(self.activation)

    @classmethod
    def from_points(cls, run: str, activation: str, n_params: float | None, tokens_b: Sequence[float],
                    ratio: Sequence[float], weight: Sequence[float] | None = None) -> RunCurve:
        """Smooth measured points (weights: warm-up inclusion, points of weight 0 ignored)."""
        d = np.asarray(tokens_b, float)
        y = np.asarray(ratio, float)
        w = np.ones(d.size) if weight is None else np.asarray(weight, float)
        order = np.argsort(d, kind="stable")
        d, y, w = d[order], y[order], w[order]
        keep = w > 0
        d, y, w = d[keep], y[keep], w[keep]
        x, z = np.log(d), logit(y)
        sm = np.empty(d.size)
        for i, x0 in enumerate(x):
            k = w * np.exp(-0.5 * ((x - x0) / SMOOTH_BW) ** 2)
            sw = k.sum()
            xm = float(np.sum(k * x) / sw)
            zm = float(np.sum(k * z) / sw)
            sxx = float(np.sum(k * (x - xm) ** 2))
            b = float(np.sum(k * (x - xm) * (z - zm)) / sxx) if sxx > 1e-12 else 0.0
            sm[i] = zm + b * (x0 - xm)
        sm = _isotonic(sm, w, direction_of(activation) > 0)
        return cls(run, activation, None if not n_params else float(n_params), d, sm, "measured")

    @classmethod
    def from_law(cls, run: str, activation: str, n_params: float | None, form: str,
                 theta: Sequence[float], d_min: float, d_max: float, n: int = 48) -> RunCurve:
        """A fitted law evaluated on a log grid over its fitted range."""
        d = np.exp(np.linspace(math.log(d_min), math.log(d_max), n))
        v = logit(get_form(form).evaluate(d, np.asarray(theta, float)))
        return cls(run, activation, None if not n_params else float(n_params), d, v, "law")

    def at(self, tokens_b: np.ndarray | float) -> np.ndarray:
        """Smoothed logit ratio at D (linear in ln D); NaN below the first point, and past the
        last point carried on with the slope of the last third (held to the law's direction)."""
        d = np.atleast_1d(np.asarray(tokens_b, float))
        x, xs = np.log(d), np.log(self.tokens_b)
        out = np.interp(x, xs, self.values)
        out = np.where(x < xs[0] - 1e-12, np.nan, out)
        past = x > xs[-1]
        if past.any():
            m = max(2, math.ceil(xs.size / 3))
            slope = (self.values[-1] - self.values[-m]) / max(xs[-1] - xs[-m], 1e-12) if xs.size > 1 else 0.0
            slope = slope if slope * self.direction > 0 else 0.0
            out = np.where(past, self.values[-1] + slope * (x - xs[-1]), out)
        return out

    def to_dict(self) -> dict:
        """JSON-safe dict (values to 1e-6)."""
        return {"run": self.run, "activation": self.activation, "n_params": self.n_params,
                "source": self.source, "tokens_b": [float(v) for v in self.tokens_b],
                "values": [round(float(v), 6) for v in self.values]}

    @classmethod
    def from_dict(cls, d: Mapping) -> RunCurve:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(str(d["run"]), str(d["activation"]), None if d.get("n_params") is None
                       else float(d["n_params"]), np.asarray(d["tokens_b"], float),
                       np.asarray(d["values"], float), str(d.get("source", "measured")))
        except (KeyError, TypeError, ValueError) as exc:
            raise LawSetError(f"analog curve is malformed ({exc})") from None


@dataclass
class CutState:
    """What is known at a forecast origin: the run's law fitted up to ``d_cut``, its naive
    forecasts and noise, its size, and the drift of its own earlier forecasts."""

    run: str
    activation: str
    n_params: float | None
    d_cut: float
    sigma: float
    form: str
    theta: list[float]
    line_intercept: float
    line_slope: float
    last: float
    #: direction-normalized drift e/h of the run's own rolling backtests up to d_cut, per
    #: candidate (NaN when there were none)
    own: dict[str, float] = field(default_factory=dict)
    #: weight of that drift evidence (its number of forecasts)
    own_n: int = 0

    @property
    def direction(self) -> int:
        """-1 (decreasing law) or +1."""
        return direction_of(self.activation)

    @property
    def tau_cut(self) -> float:
        """Tokens per parameter at the cut (NaN without a size)."""
        return self.d_cut * 1e9 / self.n_params if self.n_params else math.nan

    @property
    def level(self) -> float:
        """The run's smoothed level at the cut: the local line there, in (0, 1)."""
        return float(np.clip(self.line_intercept + self.line_slope * math.log(self.d_cut), _EPS, 1 - _EPS))

    def to_dict(self) -> dict:
        """JSON-safe dict."""
        return {"run": self.run, "activation": self.activation, "n_params": self.n_params,
                "d_cut": self.d_cut, "sigma": _fin(self.sigma), "form": self.form,
                "theta": [float(v) for v in self.theta], "line_intercept": self.line_intercept,
                "line_slope": self.line_slope, "last": self.last,
                "own": {k: _fin(v) for k, v in self.own.items()}, "own_n": self.own_n}

    @classmethod
    def from_dict(cls, d: Mapping) -> CutState:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(str(d["run"]), str(d["activation"]), None if d.get("n_params") is None
                       else float(d["n_params"]), float(d["d_cut"]), _nan(d.get("sigma")), str(d["form"]),
                       [float(v) for v in d["theta"]], float(d["line_intercept"]),
                       float(d["line_slope"]), float(d["last"]),
                       {k: _nan(v) for k, v in (d.get("own") or {}).items()}, int(d.get("own_n", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise LawSetError(f"forecast origin is malformed ({exc})") from None


def borrow_limit(same_scale: bool) -> float:
    """The largest log10 size ratio N_analog / N a run borrows from: strictly smaller runs, or
    (``same_scale``) replicates too (:data:`SAME_SCALE`)."""
    return SAME_SCALE if same_scale else -1e-6


def _fin(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def line_from_points(d: np.ndarray, y: np.ndarray, direction: int, weight: np.ndarray | None = None
                     ) -> tuple[float, float]:
    """(intercept, slope) of a straight line y = a + b ln D through the last third of the
    points (at least 3), each at its ``weight`` (the warm-up average's; weighted least
    squares), slope held to the law's direction (b = 0, the weighted mean, when the points
    move against it).

    The third is counted over every point, whatever its weight: counting only the points of
    positive weight made the window jump by a point when a warm-up point's weight reached 0,
    and the line with it (0.5 points on a lab-gpu cut under 0.001-point noise).  Warm-up points
    lie in the first third (:func:`~sparsitylaws.runfit.warmup.warmup_max`), so the window
    rarely holds one; where it does, its weight enters continuously."""
    d, y = np.asarray(d, float), np.asarray(y, float)
    w = np.ones(d.size) if weight is None else np.clip(np.asarray(weight, float), 0.0, None)
    order = np.argsort(d, kind="stable")
    m = min(d.size, max(3, math.ceil(d.size / 3)))
    x, yy, ww = np.log(d[order][-m:]), y[order][-m:], w[order][-m:]
    if not np.any(ww > 0):
        return float(y[order][-1]), 0.0
    on = ww > 0
    xm = float(np.sum(ww * x) / np.sum(ww))
    ym = float(np.sum(ww * yy) / np.sum(ww))
    sxx = float(np.sum(ww * (x - xm) ** 2))
    slope = float(np.sum(ww * (x - xm) * (yy - ym)) / sxx) if on.sum() >= 2 and sxx > 0 else 0.0
    if slope * direction < 0:
        slope = 0.0
    return float(ym - slope * xm), float(slope)


def has_older_replicate(state: CutState, analogs: Sequence[RunCurve]) -> bool:
    """Whether a replicate of the forecast run (same activation and parameter count,
    :data:`SAME_SCALE`; not the run itself) has data past its cut, :data:`OLDER` times its
    tokens per parameter or more: the forecast may then borrow from it (a replicate cut at
    about the same age would only carry its own last slope)."""
    if not state.n_params or not math.isfinite(state.tau_cut):
        return False
    for a in analogs:
        if (a.run != state.run and a.activation == state.activation and a.n_params
                and abs(math.log10(a.n_params / state.n_params)) <= SAME_SCALE and len(a.tokens_b)
                and float(np.max(a.tokens_b)) * 1e9 / a.n_params >= state.tau_cut * OLDER):
            return True
    return False


def analog_move(a: RunCurve, state: CutState, d: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Analog ``a``'s logit move from the cut to each D at equal tokens per parameter,
    g_a(tau N_a) - g_a(tau_c N_a), and log10 of its size ratio N_a / N; None when it does not
    apply (another activation, no size, the run itself, or its curve does not reach the cut)."""
    if a.run == state.run or a.activation != state.activation or not a.n_params or not state.n_params:
        return None
    scale = a.n_params / state.n_params
    start = a.at(state.d_cut * scale)[0]
    if not np.isfinite(start):
        return None
    return a.at(np.asarray(d, float) * scale) - start, math.log10(scale)


def pool_moves(state: CutState, d: np.ndarray, analogs: Sequence[RunCurve], same_scale: bool = False,
               smaller_only: bool = SMALLER_ONLY) -> dict[str, np.ndarray]:
    """Logit moves from the cut to each D by the analogs, pooled three ways (``pool``: kernel
    mean over log N; ``trend``: plus a shrunk weighted trend in log N; ``nearest``: the run
    nearest in size), NaN where none applies.

    Analog j contributes g_j(tau N_j) - g_j(tau_c N_j) when it is of the same activation, has
    a size, is not the run itself, is smaller than the run (:data:`SMALLER_ONLY`, as in the
    backtests that calibrate the band; ``same_scale``: or a replicate, :func:`borrow_limit`)
    and its curve covers tau_c N_j (it may be carried past its end by its own last slope).
    ``smaller_only=False`` lets larger runs lend too (the reviewer's nearest run, whatever its
    size, :func:`~sparsitylaws.runfit.calibration.fill_rows`).
    """
    d = np.atleast_1d(np.asarray(d, float))
    nan = np.full(d.size, np.nan)
    if not state.n_params:
        return {"pool": nan, "trend": nan.copy(), "nearest": nan.copy()}
    moves = [m for m in (analog_move(a, state, d) for a in analogs)
             if m is not None and not (smaller_only and m[1] > borrow_limit(same_scale))]
    rows, xs = [m for m, _ in moves], [x for _, x in moves]
    if not rows:
        return {"pool": nan, "trend": nan.copy(), "nearest": nan.copy()}
    M = np.vstack(rows)
    x = np.asarray(xs)
    w = np.exp(-0.5 * (x / POOL_BW) ** 2)[:, None] * np.isfinite(M)
    Mz = np.where(np.isfinite(M), M, 0.0)
    sw = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(sw > 0, (w * Mz).sum(axis=0) / sw, np.nan)
        xm = np.where(sw > 0, (w * x[:, None]).sum(axis=0) / sw, 0.0)
        sxx = (w * (x[:, None] - xm) ** 2).sum(axis=0)
        sxy = (w * (x[:, None] - xm) * (Mz - mean)).sum(axis=0)
        b = np.where(sxx > 1e-12, sxy / sxx, 0.0) * TREND_SHRINK
    fin = np.isfinite(M)
    near_idx = np.argmin(np.where(fin, np.abs(x)[:, None], np.inf), axis=0)
    near = np.where(fin.any(axis=0), M[near_idx, np.arange(M.shape[1])], np.nan)
    return {"pool": mean, "trend": mean - b * xm, "nearest": near}


def candidates(state: CutState, d: np.ndarray, analogs: Sequence[RunCurve] = (), same_scale: bool = False,
               smaller_only: bool = SMALLER_ONLY) -> dict[str, np.ndarray]:
    """Every candidate forecast at D (billions, > 0), NaN where a candidate has no value
    (``same_scale``: the pooled ones may borrow from the run's replicates; ``smaller_only``:
    from smaller runs only, :func:`pool_moves`)."""
    d = np.atleast_1d(np.asarray(d, float))
    law = get_form(state.form).evaluate(d, np.asarray(state.theta, float))
    line = state.line_intercept + state.line_slope * np.log(d)
    out = {"law": law, "line": line, "last": np.full(d.size, state.last)}
    moves = pool_moves(state, d, analogs, same_scale, smaller_only)
    base = logit(state.level)
    for k, v in moves.items():
        out[k] = expit(base + v)
    return {k: np.clip(v, 0.0, 1.0) for k, v in out.items()}


def combine(cands: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted mean of the candidates, the weights of candidates missing at a D shared out in
    proportion among those present (``law`` is always present)."""
    num = 0.0
    den = 0.0
    for k, w in weights.items():
        if w <= 0 or k not in cands:
            continue
        v = np.asarray(cands[k], float)
        ok = np.isfinite(v)
        num = num + np.where(ok, w * v, 0.0)
        den = den + np.where(ok, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(np.asarray(den) > 0, num / np.where(np.asarray(den) > 0, den, 1.0), np.nan)
    return np.where(np.isfinite(out), out, cands["law"])


def sorted_weighted_quantiles(v: np.ndarray, w: np.ndarray, qs: Sequence[float] | np.ndarray) -> np.ndarray:
    """Quantiles at ``qs`` of values ``v`` (sorted ascending, finite) with weights ``w`` (> 0):
    the inverse of the weighted empirical cdf averaged over probabilities q -/+ 1 / (2 n_eff)
    (n_eff = (sum w)^2 / sum w^2, Kish's), the lowest and highest value held beyond 0 and 1.

    With equal weights this is Hazen's quantile (linear between the order statistics at
    (k - 1/2) / n, held at the ends).  Unlike interpolating between the midpoints of each
    value's weight, it is continuous in the values: an average of weighted order statistics,
    it moves by at most the largest move of any value (two values of unequal weight trading
    places moved a midpoint-interpolated quantile 0.06 of its unit, and a forecast choice with
    it, under 1e-7 of noise).  Computed exactly from the integral of the step inverse cdf."""
    v, w = np.asarray(v, float), np.asarray(w, float)
    q = np.atleast_1d(np.asarray(qs, float))
    tot = float(w.sum())
    if v.size == 0 or tot <= 0:
        return np.full(q.size, np.nan)
    c = np.concatenate([[0.0], np.cumsum(w) / tot])
    g = np.concatenate([[0.0], np.cumsum(w * v) / tot])
    half = 0.5 * float(np.sum(w**2)) / tot**2  # 1 / (2 n_eff)

    def integral(u: np.ndarray) -> np.ndarray:
        inner = np.interp(np.clip(u, 0.0, 1.0), c, g)
        return inner + v[0] * np.minimum(u, 0.0) + v[-1] * np.maximum(u - 1.0, 0.0)

    return (integral(q + half) - integral(q - half)) / (2.0 * half)


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The q-quantile of a weighted sample (:func:`sorted_weighted_quantiles`: Hazen's with equal
    weights, continuous in the values); NaN when the weights sum to 0."""
    v, w = np.asarray(values, float), np.asarray(weights, float)
    ok = np.isfinite(v) & (w > 0)
    v, w = v[ok], w[ok]
    if v.size == 0:
        return math.nan
    o = np.argsort(v, kind="stable")
    return float(sorted_weighted_quantiles(v[o], w[o], [q])[0])


def monotone_on_grid(h_max: float, values: callable, direction: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid h = 0, H_STEP, ... >= h_max and ``values(h)`` (n, m) made monotone along h in the
    law's direction (running minimum for -1, maximum for +1).  The grid does not depend on
    which D are asked for, so a value at D does not either."""
    n = max(1, math.ceil(max(h_max, 0.0) / H_STEP)) + 1
    h = np.arange(n) * H_STEP
    v = values(h)
    acc = np.minimum.accumulate if direction < 0 else np.maximum.accumulate
    return h, acc(v, axis=0)


def band_on_grid(state: CutState, d: np.ndarray, point: Callable[[np.ndarray], np.ndarray], kappa: float,
                 q_lo: float, q_hi: float, scale_mode: str = SCALE_MODE, move: float = 0.0
                 ) -> dict[str, np.ndarray]:
    """A forecast's band at D (billions, each >= d_cut) as every forecast here is banded:
    ``point(D)`` plus the direction times the quantiles times the scale S(h)
    (:func:`error_scale`; horizon scale ``kappa``, projected-move share ``move``), each end
    made monotone in the law's direction on a fixed grid of h (:func:`monotone_on_grid`),
    clipped to [0, 1] and holding the estimate: estimate, low, high.  The combined forecast
    (:meth:`ForecastModel.band`) and the naive forecasts banded the same way
    (:func:`~sparsitylaws.runfit.calibration.fill_rows`) share it, so they differ in the
    forecast alone."""
    d = np.atleast_1d(np.asarray(d, float))
    hq = np.maximum(np.log(d / state.d_cut), 0.0)
    sig = state.sigma if math.isfinite(state.sigma) else 0.0
    s = state.direction

    def values(h: np.ndarray) -> np.ndarray:
        f = point(state.d_cut * np.exp(h))
        scale = error_scale(sig, h, kappa, scale_mode, f - state.level, move)
        a, b = f + s * q_lo * scale, f + s * q_hi * scale
        return np.vstack([f, np.minimum(a, b), np.maximum(a, b)]).T

    grid, v = monotone_on_grid(float(hq.max()), values, s)
    out = {k: np.clip(np.interp(hq, grid, v[:, i]), 0.0, 1.0) for i, k in enumerate(("estimate", "low", "high"))}
    out["low"] = np.minimum(out["low"], out["estimate"])
    out["high"] = np.maximum(out["high"], out["estimate"])
    return out


#: Weights tried for the other activation's calibration scores in an activation's band: 1 pools
#: them (ReLU's one-sided drift then shapes SiLU's band and back), 0 keeps the activation's own.
CROSS_WEIGHTS = (1.0, 0.5, 0.0)


def cross_factor(cross: Mapping[str, float], activation: str) -> float:
    """Weight of the other activation's calibration scores in ``activation``'s band (1: pooled)."""
    return float(cross.get(activation, 1.0))


@dataclass
class ForecastModel:
    """A calibrated forecast: candidate weights, the own-drift weight ``beta``, the horizon
    scale ``kappa``, and the calibration forecasts' normalized errors with their maturity.

    ``scores``: rows (run, tau_cut, z, weight): direction-normalized error of a calibration
    point in units of S(h), and its weight (each run sums to 1, each of its forecasts equally).
    """

    weights: dict[str, float]
    beta: float
    #: horizon scale per activation ("*": all calibrating runs, for an activation with too
    #: few): {"kappa": flat value, "log_kappa": intercept, "slope": per decade of N, "x_mean"}
    kappa: dict[str, dict]
    scores: list[tuple[str, float, float, float]]
    level: float = 0.9
    source: str = ""
    selection: dict = field(default_factory=dict)
    #: longest horizon ln(D / D_cut) among the calibrating forecasts: beyond it the band is
    #: itself extrapolated
    h_max: float = math.nan
    scale_mode: str = SCALE_MODE
    #: weight of the run's own drift in its horizon scale (:func:`run_kappa`)
    omega: float = 0.0
    #: activation -> {"weights", "beta"}: choices made on that activation's runs alone (where it
    #: has enough); ``weights``/``beta`` above hold for the others
    by_activation: dict = field(default_factory=dict)
    #: whether runs borrow from replicates (:data:`SAME_SCALE`) as well as from smaller runs:
    #: the model of forecasts made beside an older replicate, selected and calibrated on
    #: backtests that borrowed alike
    same_scale: bool = False
    #: activation -> weight of the *other* activation's calibration scores in its band
    #: (:data:`CROSS_WEIGHTS`, chosen on that activation's runs; 1 where absent: scores pooled)
    cross: dict = field(default_factory=dict)
    #: run -> activation of each calibrating run (needed, and stored, only with ``cross``)
    score_activation: dict = field(default_factory=dict)
    #: share of the projected move in the band's scale (:data:`MOVE_SCALE`; 0 in files written
    #: before format version 6)
    move: float = 0.0

    def weights_for(self, activation: str) -> dict[str, float]:
        """The candidate weights a run of this activation uses."""
        return dict((self.by_activation.get(activation) or {}).get("weights") or self.weights)

    def beta_for(self, activation: str) -> float:
        """The own-drift weight of the point forecast for this activation."""
        return float((self.by_activation.get(activation) or {}).get("beta", self.beta))

    def kappa_for(self, activation: str, n_params: float | None = None) -> float:
        """The horizon scale of a run: its activation's (the pooled one when it has none of its
        own), at its size when the activation's scale trends in log N (:func:`kappa_at`)."""
        return kappa_of(self.kappa, activation, n_params)

    def cross_for(self, activation: str | None) -> float:
        """Weight of the other activation's calibration scores in a band for ``activation``."""
        return cross_factor(self.cross, activation) if activation is not None else 1.0

    @property
    def runs(self) -> list[str]:
        """Runs whose backtests calibrate the band."""
        return sorted({s[0] for s in self.scores})

    def tau_range(self, exclude: str | None = None) -> tuple[float, float]:
        """Smallest and largest tokens per parameter at a calibrating cut (NaN without)."""
        t = [s[1] for s in self.scores if s[0] != exclude and math.isfinite(s[1])]
        return (min(t), max(t)) if t else (math.nan, math.nan)

    def quantiles(self, tau: float, exclude: str | None = None, level: float | None = None,
                  activation: str | None = None) -> tuple[float, float]:
        """Lower and upper quantiles (levels (1 -/+ level) / 2) of the calibration scores, runs
        other than ``exclude``, forecasts near maturity ``tau`` weighing most, the other
        activation's runs weighted by :meth:`cross_for` ``activation``; widened by the
        finite-sample factor n / (n + 1) on the miss probability (n = the effective number of
        calibrating runs)."""
        rows = [s for s in self.scores if s[0] != exclude]
        if not rows:
            return -math.inf, math.inf
        z = np.array([r[2] for r in rows])
        w = np.array([r[3] for r in rows])
        lam = self.cross_for(activation)
        if lam != 1.0:
            other = np.array([self.score_activation.get(r[0]) != activation for r in rows])
            if np.sum(w[~other]) > 0:  # with none of its own runs left, the pooled scores
                w = np.where(other, w * lam, w)
        t = np.array([r[1] for r in rows])
        if math.isfinite(tau) and np.isfinite(t).any():
            k = np.where(np.isfinite(t), np.exp(-0.5 * ((np.log(t) - math.log(tau)) / MATURITY_BW) ** 2), 0.0)
            if k.sum() > 0 and np.sum(w * k) > 1e-9 * np.sum(w):
                w = w * k
        runs = np.array([r[0] for r in rows])
        per_run = np.array([w[runs == r].sum() for r in np.unique(runs)])
        n_eff = per_run.sum() ** 2 / np.sum(per_run**2) if per_run.sum() > 0 else 0.0
        lvl = self.level if level is None else float(level)
        miss = (1.0 - lvl) / 2.0 * n_eff / (n_eff + 1.0)
        return weighted_quantile(z, w, miss), weighted_quantile(z, w, 1.0 - miss)

    def point(self, state: CutState, d: np.ndarray, analogs: Sequence[RunCurve] = ()) -> np.ndarray:
        """The combined point forecast before monotone enforcement."""
        d = np.atleast_1d(np.asarray(d, float))
        c = candidates(state, d, analogs, self.same_scale)
        w, beta = self.weights_for(state.activation), self.beta_for(state.activation)
        f = combine(c, w)
        drift = own_drift(state, w)
        h = np.maximum(np.log(d / state.d_cut), 0.0)
        if math.isfinite(drift) and beta:
            f = f + state.direction * beta * drift * h
        return np.clip(f, 0.0, 1.0)

    def band(self, state: CutState, d: np.ndarray, analogs: Sequence[RunCurve] = (),
             exclude: str | None = None, level: float | None = None) -> dict[str, np.ndarray]:
        """Point forecast and band at D (billions, each >= d_cut), monotone in the law's
        direction and in [0, 1]: estimate, low, high (:func:`band_on_grid`)."""
        q_lo, q_hi = self.quantiles(state.tau_cut, exclude, level, state.activation)
        k = run_kappa(self.kappa_for(state.activation, state.n_params),
                      own_drift(state, self.weights_for(state.activation)), self.omega)
        return band_on_grid(state, d, lambda dd: self.point(state, dd, analogs), float(k), q_lo, q_hi,
                            self.scale_mode, self.move)

    def to_dict(self) -> dict:
        """JSON-safe dict (scores to 1e-6)."""
        return {"weights": dict(self.weights), "beta": self.beta, "kappa": dict(self.kappa),
                "level": self.level, "source": self.source, "selection": self.selection,
                "h_max": _fin(self.h_max), "scale_mode": self.scale_mode, "omega": self.omega,
                "by_activation": {a: dict(v) for a, v in self.by_activation.items()},
                **({"same_scale": True} if self.same_scale else {}),
                **({"cross": dict(self.cross), "score_activation": dict(self.score_activation)}
                   if self.cross else {}),
                **({"move": self.move} if self.move else {}),
                "scores": [[r, _fin(t), round(float(z), 6), round(float(w), 9)]
                           for r, t, z, w in self.scores]}

    @classmethod
    def from_dict(cls, d: Mapping) -> ForecastModel:
        """Inverse of :meth:`to_dict`."""
        try:
            m = cls({str(k): float(v) for k, v in d["weights"].items()}, float(d["beta"]),
                       {str(k): dict(v) for k, v in d["kappa"].items()},
                       [(str(r), _nan(t), float(z), float(w)) for r, t, z, w in d["scores"]],
                       float(d.get("level", 0.9)), str(d.get("source", "")), dict(d.get("selection") or {}),
                       _nan(d.get("h_max")), str(d.get("scale_mode", "additive")), float(d.get("omega", 0.0)),
                       {str(a): dict(v) for a, v in (d.get("by_activation") or {}).items()},
                       bool(d.get("same_scale", False)),
                       {str(a): float(v) for a, v in (d.get("cross") or {}).items()},
                       {str(r): str(a) for r, a in (d.get("score_activation") or {}).items()},
                       float(d.get("move", 0.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise LawSetError(f"forecast model is malformed ({exc})") from None
        m._check_cross()
        return m

    def _check_cross(self) -> None:
        """A cross weight must lie in [0, 1] and every calibrating run must have an activation
        (a run without one would silently count as the other activation)."""
        if not (math.isfinite(self.move) and self.move >= 0.0):
            raise LawSetError(f"forecast model is malformed (move scale {self.move} is not a finite number >= 0)")
        bad = {a: v for a, v in self.cross.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise LawSetError(f"forecast model is malformed (cross weights outside [0, 1]: {bad})")
        missing = sorted({s[0] for s in self.scores} - set(self.score_activation)) if self.cross else []
        if missing:
            raise LawSetError("forecast model is malformed (cross weights, but no activation for "
                              f"calibrating runs {missing[:3]})")


#: Lower bound of a size-trended horizon scale, as a share of the flat one.
KAPPA_FLOOR = 0.5


def denoised_drift(z: np.ndarray, noise: np.ndarray) -> float:
    """Mean drift of a run's own earlier forecasts, ``z`` = direction-normalized error / h at
    each point, shrunk by what point noise alone would give: sign(m) sqrt(max(m^2 - se^2, 0))
    with se^2 = sum(noise_i^2) / n^2 (``noise`` = sigma / h per point).  A noisy run's drift
    is not mistaken for a systematic one."""
    z = np.asarray(z, float)
    if z.size == 0:
        return math.nan
    m = float(np.mean(z))
    se2 = float(np.sum(np.asarray(noise, float) ** 2)) / z.size**2
    return math.copysign(math.sqrt(max(m * m - se2, 0.0)), m)


def run_kappa(kappa: np.ndarray | float, drift: np.ndarray | float, omega: float) -> np.ndarray:
    """A run's horizon scale: sqrt(kappa^2 + (omega drift)^2), the calibrated scale widened by
    the run's own drift per unit of horizon (its earlier forecasts' misses, known at forecast
    time; a run whose curve keeps moving past its forecasts gets a wider band)."""
    d = np.where(np.isfinite(np.asarray(drift, float)), np.asarray(drift, float), 0.0)
    return np.sqrt(np.asarray(kappa, float) ** 2 + (omega * d) ** 2)


def kappa_at(k: Mapping, n_params: float | None) -> float:
    """Horizon scale at a size: exp(log_kappa + slope (log10 N - x_mean)) when the entry has a
    trend and the size is known, else the flat value; never below :data:`KAPPA_FLOOR` of the
    flat value (a trend may widen bands for sizes beyond the calibrating runs, not collapse them)."""
    flat = float(k["kappa"])
    if not n_params or not k.get("slope"):
        return flat
    v = math.exp(float(k["log_kappa"]) + float(k["slope"]) * (math.log10(float(n_params)) - float(k["x_mean"])))
    return max(v, KAPPA_FLOOR * flat)


def kappa_of(kappa: Mapping[str, Mapping], activation: str | None, n_params: float | None) -> float:
    """The horizon scale of a run of ``activation`` and size ``n_params`` from a model's
    ``kappa`` entries: its activation's (the pooled ``"*"`` one when it has none of its own) at
    its size (:func:`kappa_at`); 1e-3 when there is neither.  The one lookup the combined band,
    the naive bands and selection share."""
    k = kappa.get(activation, kappa.get("*")) if activation is not None else kappa.get("*")
    return kappa_at(k, n_params) if k is not None else 1e-3


def own_drift(state: CutState, weights: Mapping[str, float]) -> float:
    """The run's own drift for these candidate weights: the weighted mean of the candidates'
    own drifts (NaN when the run had no earlier forecast)."""
    num = den = 0.0
    for k, w in weights.items():
        v = state.own.get(k, math.nan)
        if w > 0 and math.isfinite(v):
            num += w * v
            den += w
    return num / den if den > 0 else math.nan
