"""Composing a prediction for a configuration: limit A0 and A(D) with intervals for many
(n_params, width/depth, tokens) at once, from an architecture section.

Two families of methods (docs/architecture.md, "Curves at a new scale"):

* ``nearest``/``step``: the scale runs' measured curves at equal tokens per parameter
  (:mod:`~sparsitylaws.architecture.curves`), moved across scale by the scale-step model
  (:mod:`~sparsitylaws.architecture.scalestep`): bands from the law set's own calibrated
  scale steps; ``auto`` (the default) picks one of them by a nested leave-one-scale-out
  (:func:`choose_method`);
* ``curve``/``excess``/``coef``: trends of the runs' law coefficients in log10 N, slopes
  shrunk toward no trend by empirical Bayes; bands from their draws.

Valid by construction.  Every curve, for the point and for every draw behind an interval,
keeps its law's direction (ReLU never rises, SiLU never falls) with A0 in (0, 1):
``nearest``/``step`` mix monotone summaries convexly and shift them by amounts constant in
D; the trend methods compose ``A0 + sign * E(D)`` with A0 in log-odds and an excess built
from valid law parameters (log alpha, log c, b) or a convex mix of fitted runs' excesses.
The only way out of [0, 1] is the form itself (SiLU's ``A0 - c D^-alpha`` below 0 early,
ReLU's ``A0 + exp(b - c D^alpha)`` above 1): those values are clamped (a clamp keeps a
curve monotone) and flagged (``floor``/``ceiling``).  Percentiles of monotone draws are
monotone; the interval is widened only to contain the plug-in point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparsitylaws.architecture.choice import MIN_SCALES, POSITIONS, scoring_points, subset_entry
from sparsitylaws.architecture.common import CANDIDATES, DEFAULT_METHOD, METHODS
from sparsitylaws.architecture.scale import shrinkage
from sparsitylaws.errors import LawSetError, SparsityLawsError

#: The excess of the ``excess`` method is expressed in D / D_budget(N), the tokens trained
#: over the paper's budget for that size (190 tokens per non-embedding parameter).
BUDGET_TOKENS_PER_PARAM = 190.0
#: Log-odds of A0 are computed from values kept this far inside (0, 1).
_EPS = 1e-6


def _eval_form(form: str, th: list[np.ndarray], D: np.ndarray) -> np.ndarray:
    """Elementwise A(D) for the paper forms; th holds one broadcastable array per parameter."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        if form == "logspace_power":
            alpha, b, c, a0 = th
            return np.exp(-c * np.exp(alpha * np.log(D)) + b) + a0
        alpha, c, a0 = th
        return a0 - c * np.exp(-alpha * np.log(D))


def _logit(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) of p kept _EPS inside (0, 1); float32 stays float32."""
    p = np.asarray(p)
    p = np.clip(p, _EPS, 1 - _EPS).astype(p.dtype if p.dtype == np.float32 else float)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        e = np.exp(-z)
        e += 1
        return np.reciprocal(e, out=e)


def _log_excess(form: str, alpha, c, b, logx):
    """log E at log x for valid alpha, c > 0: ReLU b - c x^alpha, SiLU log c - alpha log x."""
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        if form == "logspace_power":
            return b - c * np.exp(alpha * logx)
        return np.log(c) - alpha * logx


@dataclass
class _Space:
    """Trend lines of (log alpha, log c, b, logit A0) in log10 N, with their draws."""

    coef: np.ndarray  # (2, k): mean at the runs' mean log10 N, shrunk slope
    dcoef32: np.ndarray  # (2, k, M)
    jitter32: np.ndarray  # (k, M) between-scale scatter at unit leverage
    shrinkage: np.ndarray  # (k,) B per coefficient: 1 = no trend
    sxx: float
    n: int

    def inflation(self, dx: np.ndarray) -> np.ndarray:
        """(m, k) sqrt(1 + leverage) of a new scale dx decades from the runs' mean: the
        leverage of the shrunk line, 1/n + (1 - B) dx^2 / Sxx."""
        lev = 1.0 / self.n + (np.outer(dx**2, 1.0 - self.shrinkage) / self.sxx if self.sxx > 0
                              else np.zeros((dx.size, self.shrinkage.size)))
        return np.sqrt(1.0 + lev)


@dataclass
class _Compiled:
    form: str
    names: list[str]
    xc: float
    log10_n: np.ndarray
    run_theta: np.ndarray  # (n_runs, k) natural parameters
    run_draws64: np.ndarray  # (n_runs, k, M)
    wd_model: str
    wd_point: dict
    wd_draws: dict
    ratio_ref: float | None
    entry: Mapping = field(default_factory=dict)
    seed: int = 0
    ratios: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (n_runs,) nan = unknown
    spaces: dict[str, _Space] = field(default_factory=dict)
    steps: Any = None  # _StepData, built on first use by 'nearest'/'step'
    choice: Any = None  # the nested method choice of 'auto' (sparsitylaws.architecture.choice)

    @property
    def sign(self) -> float:
        return 1.0 if self.form == "logspace_power" else -1.0


def _to_space(c: _Compiled, theta: np.ndarray, log10_n: np.ndarray, space: str) -> np.ndarray:
    """Natural parameters (..., k) of runs at log10_n (broadcast to theta[..., 0]) -> transformed.

    ``abs``: c for D in billions of tokens; ``budget``: c for x = D / D_budget(N), so the
    excess is compared at equal tokens per parameter (``c_x = c * D_budget^(+-alpha)``).
    """
    g = np.empty_like(theta, dtype=float)
    ia = c.names.index("alpha")
    ic = c.names.index("c")
    alpha = np.clip(theta[..., ia], 1e-300, None)
    cc = np.clip(theta[..., ic], 1e-300, None)
    g[..., ia] = np.log(alpha)
    g[..., ic] = np.log(cc)
    if space == "budget":
        log_budget = np.log(BUDGET_TOKENS_PER_PARAM) + (log10_n - 9.0) * math.log(10.0)
        g[..., ic] += c.sign * alpha * log_budget
    if "b" in c.names:
        g[..., c.names.index("b")] = theta[..., c.names.index("b")]
    ia0 = c.names.index("A0")
    g[..., ia0] = _logit(theta[..., ia0])
    return g


def _shrunk_lines(x: np.ndarray, G: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Lines of the columns of G (n, k) in x, centred, with slopes shrunk toward 0.

    Returns (coef (2, k): mean and shrunk slope, shrinkage B (k,), Sxx, residual dof).
    Empirical Bayes per coefficient (:func:`~sparsitylaws.architecture.scale.shrinkage`:
    with nu = n - 2 <= 2 residual degrees of freedom no slope is carried), the slope kept is
    ``(1 - B) b``.  docs/architecture.md, "Scale laws", has why.
    """
    n, k = G.shape
    dxr = x - x.mean()
    sxx = float(dxr @ dxr)
    mean = G.mean(axis=0)
    if sxx <= 1e-12 or n < 2:
        return np.vstack([mean, np.zeros(k)]), np.ones(k), 0.0, float(n - 1)
    b = dxr @ (G - mean) / sxx
    nu = n - 2
    B = np.ones(k)
    if nu > 2:
        se = np.sqrt(((G - mean - np.outer(dxr, b)) ** 2).sum(axis=0) / nu / sxx)
        B = np.array([shrinkage(float(bj), float(sj), nu) for bj, sj in zip(b, se, strict=True)])
    dof = n - 1 - float(np.mean(1.0 - B))
    return np.vstack([mean, (1.0 - B) * b]), B, sxx, dof


def _build_space(c: _Compiled, space: str, rng: np.random.Generator) -> _Space:
    n, k, M = c.run_draws64.shape
    G = _to_space(c, c.run_theta, c.log10_n, space)
    coef, B, sxx, dof = _shrunk_lines(c.log10_n, G)
    Gd = _to_space(c, np.transpose(c.run_draws64, (2, 0, 1)), c.log10_n[None, :], space)  # (M,n,k)
    dxr = c.log10_n - c.log10_n.mean()
    md = Gd.mean(axis=1)  # (M, k)
    sd = (np.einsum("n,mnk->mk", dxr, Gd - md[:, None, :]) / sxx if sxx > 0
          else np.zeros_like(md)) * (1.0 - B)[None, :]
    cd = np.stack([md, sd], axis=1)  # (M, 2, k)
    if dof > 0 and n > 1:
        resid = G - coef[0][None, :] - np.outer(dxr, coef[1])
        cov = resid.T @ resid / dof
        lam, V = np.linalg.eigh(cov)
        L = V * np.sqrt(np.clip(lam, 0, None))[None, :]
        z = rng.standard_normal((M, k)) @ L.T
        jitter = z * np.sqrt(dof / rng.chisquare(dof, M))[:, None]
    else:
        jitter = np.zeros((M, k))
    return _Space(coef=coef, dcoef32=_as_float32(np.transpose(cd, (1, 2, 0))),
                  jitter32=_as_float32(jitter.T), shrinkage=B, sxx=sxx, n=n)


_F32_MAX = float(np.finfo(np.float32).max)


def _as_float32(a: np.ndarray) -> np.ndarray:
    """Contiguous float32 copy, saturated at float32's largest finite values: a run's draw far
    along a flat valley (alpha ~ 1e64 in the budget space's log c + alpha log D_budget) is
    beyond float32 and stays a huge finite number (not inf, so no inf - inf downstream)."""
    return np.ascontiguousarray(np.clip(a, -_F32_MAX, _F32_MAX), dtype=np.float32)


_CACHE: dict[int, tuple[Any, _Compiled]] = {}


def _compile(entry: Mapping, seed: int = 0) -> _Compiled:
    key = id(entry)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is entry:
        return hit[1]
    sc = entry["scale"]
    wd = entry.get("widthdepth")
    model = "none" if wd is None else wd["model"]
    theta = np.atleast_2d(np.asarray(sc["theta"], float))
    if sc.get("run_draws") is not None:
        rd = np.ascontiguousarray(np.transpose(np.asarray(sc["run_draws"], float), (1, 2, 0)))
    else:
        M = np.asarray(sc["draws_coef"], float).shape[0]
        rd = np.repeat(theta[:, :, None], M, axis=2)
    x = np.asarray(sc["log10_n"], float)
    ratios = np.array([np.nan if r is None else float(r) for r in (sc.get("ratios") or [None] * x.size)])
    c = _Compiled(
        form=sc["form"], names=list(sc["param_names"]), xc=float(np.mean(x)),
        log10_n=x, run_theta=theta, run_draws64=rd,
        wd_model=model, wd_point=dict((wd or {}).get("point") or {}),
        wd_draws={k: (None if v is None else np.asarray(v, float))
                  for k, v in ((wd or {}).get("draws") or {}).items()},
        ratio_ref=None if sc.get("ratio_ref") is None else float(sc["ratio_ref"]),
        entry=entry, seed=int(seed), ratios=ratios,
    )
    rng = np.random.default_rng(seed + 7919)
    for space in ("abs", "budget"):
        c.spaces[space] = _build_space(c, space, rng)
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[key] = (entry, c)
    return c


def _wd_shift(c: _Compiled, r: np.ndarray, *, draws: bool, a0_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log-odds shift of A0 from the reference ratio to r, and where the law left (0, 1).

    The shift is logit(h(r)) - logit(h(r_ref)) with h the width/depth law's own A0 (the
    hinge from its plateau; a line, or a hinge stored without plateau, from the trend's A0
    at r_ref, ``a0_ref``): the law's A0 values are reproduced at the sweep's scale, and
    elsewhere A0 moves by the same odds ratio, which keeps it inside (0, 1).
    Shapes: (m,) for the point, (m, M) for draws.
    """
    if c.wd_model in ("none", "constant") or c.ratio_ref is None:
        z = np.zeros((r.size, 1) if draws else r.size)
        return z, np.zeros(r.size, bool)
    p = c.wd_point
    M = c.run_draws64.shape[2]

    def par(name: str, default: float) -> Any:
        v = p.get(name)
        v = default if v is None else float(v)
        if not draws:
            return v
        d = c.wd_draws.get(name)
        return (np.full(M, v) if d is None else d).astype(np.float32)[None, :]

    slope = par("slope", 0.0)
    rb = par("breakpoint", 0.0)
    rr = r.astype(np.float32)[:, None] if draws else r
    rref = c.ratio_ref
    if c.wd_model == "hinge" and p.get("plateau") is not None:
        plat = par("plateau", 0.0)
        h_ref = plat + slope * (np.minimum(rref, rb) - rb)
        h_r = plat + slope * (np.minimum(rr, rb) - rb)
    elif c.wd_model == "hinge":
        h_ref = a0_ref
        h_r = a0_ref + slope * (np.minimum(rr, rb) - np.minimum(rref, rb))
    else:
        h_ref = a0_ref
        h_r = a0_ref + slope * (rr - rref)
    bad = (h_r <= 0) | (h_r >= 1)
    if draws:
        bad = np.any(bad, axis=1)
    return _logit(h_r) - _logit(h_ref), bad


def predict_section(
    section: Mapping,
    activation: str,
    n_params: np.ndarray,
    ratio: np.ndarray,
    tokens_b: np.ndarray,
    *,
    level: float = 0.9,
    chunk: int = 512,
    noise_sd: float = 0.0,
    seed: int = 0,
    method: str = DEFAULT_METHOD,
) -> dict[str, np.ndarray]:
    """Limit A0 and A(D) with ``level`` intervals for many configurations of one activation.

    Point estimates plug in the fitted model; intervals are percentiles of the section's
    draws, widened only to contain the point.  Arrays broadcast to one length.

    Methods (docs/architecture.md compares them, leave one scale out):

    * ``auto`` (default, :data:`DEFAULT_METHOD`): the method below that a nested
      leave-one-scale-out over the section's own scale runs scores best (interval score;
      :mod:`~sparsitylaws.architecture.choice`); ``nearest`` with fewer than three scales;
    * ``nearest``: the nearest measured scale's curve at equal tokens per parameter, band
      from the calibrated scale-step errors (:mod:`~sparsitylaws.architecture.scalestep`);
    * ``step``: the measured curves interpolated between the two bracketing scales
      (Brownian bridge), beyond them the nearest one plus the shrunk scale drift;
    * ``curve``: the fitted runs' own excess curves at equal tokens per parameter mixed
      between the two nearest scales, on the shrunk A0 trend;
    * ``excess``: the law's coefficients with c per D / D_budget(N), shrunk trends in log10 N;
    * ``coef``: the same with c in absolute tokens (the paper's framing).

    Every curve is monotone in D and in [0, 1] for every draw (module docstring).  Extra
    keys: ``floor``/``ceiling`` (bool: the form left [0, 1] at this budget and was clamped),
    ``wd_clamped`` (the width/depth law left (0, 1) at this ratio), ``method`` (the method
    used, ``auto`` resolved).  With ``noise_sd > 0`` also ``pred_low``/``pred_high``: the
    band for a single measured point (draws plus point noise), never narrower than the
    curve band.
    """
    entry = section["activations"].get(activation)
    if entry is None:
        raise LawSetError(
            f"law set has no architecture law for activation {activation!r} "
            f"(it has: {', '.join(sorted(section['activations']))})")
    if method not in METHODS:
        raise SparsityLawsError(
            f"unknown method {method!r} (argument 'method'); known: {', '.join(METHODS)}")
    c = _compile(entry, int(section.get("seed", 0) or 0))
    used = resolve_method(c, method)
    N, R, D = np.broadcast_arrays(np.asarray(n_params, float), np.asarray(ratio, float),
                                  np.asarray(tokens_b, float))
    N, R, D = N.ravel(), R.ravel(), D.ravel()
    n = N.size
    M = c.run_draws64.shape[2]
    a = (1 - level) / 2
    klo = int(math.floor(a * (M - 1)))
    khi = int(math.ceil((1 - a) * (M - 1)))
    keys = ("a0", "a0_low", "a0_high", "ratio", "ratio_low", "ratio_high")
    out: dict[str, Any] = {key: np.empty(n) for key in keys}
    for key in ("floor", "ceiling", "wd_clamped"):
        out[key] = np.zeros(n, bool)
    if noise_sd > 0:
        out["pred_low"] = np.empty(n)
        out["pred_high"] = np.empty(n)
        rng = np.random.default_rng(seed)
    for s in range(0, n, chunk):
        sl = slice(s, min(s + chunk, n))
        part = _predict_chunk(c, used, N[sl], R[sl], D[sl], klo, khi)
        for key, val in part.items():
            if key in out:
                out[key][sl] = val
        if noise_sd > 0:
            ad = np.clip(part["ratio_draws"], 0.0, 1.0)
            q = np.partition(ad + rng.normal(0.0, noise_sd, ad.shape), [klo, khi], axis=1)
            out["pred_low"][sl] = np.minimum(q[:, klo], out["ratio_low"][sl])
            out["pred_high"][sl] = np.maximum(q[:, khi], out["ratio_high"][sl])
    out["method"] = used
    return out


def resolve_method(c: _Compiled, method: str) -> str:
    """The concrete method behind ``method`` for this compiled entry (``auto`` -> its nested
    choice, computed once per entry)."""
    if method != "auto":
        return method
    if c.choice is None:
        c.choice = choose_method(c.entry, c.seed)
    return str(c.choice["method"])


def choose_method(entry: Mapping, seed: int = 0, *, candidates: Sequence[str] = CANDIDATES,
                  level: float = 0.9) -> dict[str, Any]:
    """The method ``auto`` uses for this entry, with the nested scores behind the choice
    (:mod:`~sparsitylaws.architecture.choice` says how): ``{"method", "scores": {method:
    mean interval score}, "n_folds", "level", "how"}``."""
    from sparsitylaws.runfit.backtest import interval_score

    x = np.asarray(entry["scale"]["log10_n"], float)
    n_scales = np.unique(np.round(x, 6)).size
    if n_scales < MIN_SCALES:
        return {"method": "nearest", "scores": {}, "n_folds": 0, "level": level,
                "how": (f"{n_scales} scale{'s' if n_scales != 1 else ''}: fewer than {MIN_SCALES}, "
                        "no method can be scored on a left-out scale; the nearest-scale baseline")}
    sigma = entry["scale"].get("sigma") or 0.0
    scores: dict[str, list[float]] = {m: [] for m in candidates}
    for i in range(x.size):
        sub = subset_entry(entry, [j for j in range(x.size) if j != i])
        section = {"activations": {"_": sub}, "seed": seed}
        n, r, tok, y = scoring_points(entry, i)
        for m in candidates:
            pr = predict_section(section, "_", n, r, tok, level=level, noise_sd=float(sigma),
                                 seed=seed, method=m)
            lo = pr.get("pred_low", pr["ratio_low"])
            hi = pr.get("pred_high", pr["ratio_high"])
            scores[m] += [float(v) for v in interval_score(lo, hi, y, level)]
    mean = {m: float(np.mean(v)) for m, v in scores.items()}
    best = min(mean.values())
    method = next(m for m in candidates if mean[m] <= best * (1 + 1e-9) + 1e-15)
    return {"method": method, "scores": mean, "n_folds": int(x.size), "level": level,
            "how": (f"nested leave-one-scale-out over this law set's {x.size} scale runs: mean "
                    f"interval score at {'/'.join(POSITIONS)} budgets of each left-out run")}


def _predict_chunk(c: _Compiled, method: str, N: np.ndarray, R: np.ndarray, D: np.ndarray,
                   klo: int, khi: int) -> dict[str, np.ndarray]:
    method = resolve_method(c, method)
    if method in ("nearest", "step"):
        return _step_chunk(c, method, N, R, D, klo, khi)
    x0 = np.log10(N)
    dx = x0 - c.xc
    names = c.names
    ia0 = names.index("A0")
    space = c.spaces["abs" if method == "coef" else "budget"]
    # --- point: plug-in (shrunk) lines
    g_pt = space.coef[0][None, :] + dx[:, None] * space.coef[1][None, :]  # (m, k)
    # --- draws (m, M), float32: percentiles of a few hundred draws need no more
    dx32 = dx.astype(np.float32)[:, None]

    def g_draw(j: int, sp: _Space = space) -> np.ndarray:
        g = sp.dcoef32[0, j][None, :] + dx32 * sp.dcoef32[1, j][None, :]
        g += sp.inflation(dx)[:, j].astype(np.float32)[:, None] * sp.jitter32[j][None, :]
        return g

    # limit A0 in log-odds (the same draws under every trend method), plus the width/depth shift
    sp_a0 = c.spaces["abs"]
    g_a0 = sp_a0.coef[0, ia0] + dx * sp_a0.coef[1, ia0]
    shift_pt, wd_out = _wd_shift(c, R, draws=False, a0_ref=_sigmoid(g_a0))
    a0_pt = _sigmoid(g_a0 + shift_pt)
    gz = g_draw(ia0, sp_a0)
    shift_d, _ = _wd_shift(c, R, draws=True, a0_ref=_sigmoid(gz))
    gz += shift_d.astype(np.float32, copy=False)
    a0_d = _sigmoid(gz)
    # excess
    logD = np.log(D)
    if method == "curve":
        le_pt, le_d = _curve_log_excess(c, x0, D)
    else:
        logx = logD if method == "coef" else logD - (
            np.log(BUDGET_TOKENS_PER_PARAM) + (x0 - 9.0) * math.log(10.0))
        ia, ic = names.index("alpha"), names.index("c")
        ib = names.index("b") if "b" in names else None
        le_pt = _log_excess(c.form, np.exp(g_pt[:, ia]), np.exp(g_pt[:, ic]),
                            None if ib is None else g_pt[:, ib], logx)
        al = np.exp(np.clip(g_draw(ia), -80, 80))
        cc = np.exp(np.clip(g_draw(ic), -80, 80))
        bb = None if ib is None else g_draw(ib)
        le_d = _log_excess(c.form, al, cc, bb, logx.astype(np.float32)[:, None])
    with np.errstate(over="ignore", under="ignore"):
        ratio_pt = a0_pt + c.sign * np.exp(np.clip(le_pt, -700, 50))
        ex = np.exp(np.clip(le_d, -700 if le_d.dtype == float else -100, 50))
        ratio_d = a0_d + ex if c.sign > 0 else a0_d - ex
    res = _bands((("a0", a0_pt, a0_d), ("ratio", ratio_pt, ratio_d)), klo, khi)
    res["floor"] = res.pop("_low_out")
    res["ceiling"] = res.pop("_high_out")
    res["wd_clamped"] = wd_out
    res["ratio_draws"] = ratio_d
    return res


def _bands(items, klo: int, khi: int) -> dict[str, np.ndarray]:
    """Point, and percentile band widened to contain it, for (key, point (m,), draws (m, M));
    ``_low_out``/``_high_out``: where the last item's band left [0, 1] (then clamped)."""
    res: dict[str, np.ndarray] = {}
    for key, pt, dr in items:
        q = np.partition(dr.astype(np.float32, copy=False), [klo, khi], axis=1)  # float32: cheaper
        lo = np.minimum(q[:, klo].astype(float), pt)
        hi = np.maximum(q[:, khi].astype(float), pt)
        res["_low_out"] = lo < 0
        res["_high_out"] = hi > 1
        res[key] = np.clip(pt, 0.0, 1.0)
        res[f"{key}_low"] = np.clip(lo, 0.0, 1.0)
        res[f"{key}_high"] = np.clip(hi, 0.0, 1.0)
    return res


# ------------------------------------------------------------------ nearest and step methods


@dataclass
class _StepData:
    """The scale runs' curve summaries (sorted by log10 N), each standardized to the
    reference width/depth ratio, and the scale-step fits (with and without drift)."""

    curves: list  # CurveSummary, sorted by log10 N
    xs: np.ndarray
    std_shift: np.ndarray  # (n,) logit shift taking each run to the reference ratio
    limits: np.ndarray  # (n,) standardized logit limits
    fits: dict  # (quantity, drift) -> StepFit
    t_draws: dict  # dof -> (M,) t draws
    sources: list[str]
    #: (n,) each run's own uncertainty (logit variance) that a scale step does not carry: its
    #: limit's (from its bootstrap draws) and one measured point's noise (pooled residual sd)
    nugget_limit: np.ndarray | None = None
    nugget_point: float = 0.0


def _step_data(c: _Compiled) -> _StepData:
    if c.steps is not None:
        return c.steps
    from sparsitylaws.architecture.curves import law_curve, summarize
    from sparsitylaws.architecture.scalestep import fit_steps, overlap_grid

    sc = c.entry["scale"]
    stored = sc.get("curves") or [None] * c.log10_n.size
    tpp_rng = (c.entry.get("ranges") or {}).get("tokens_per_param")
    tb = sc.get("tokens_b") or [math.nan, math.nan]
    curves = []
    for i, cur in enumerate(stored):
        if cur is None or not cur.get("tokens_per_param"):  # older sections: the run's law
            n_i = 10.0 ** c.log10_n[i]
            rng_i = tpp_rng if tpp_rng is not None else [float(tb[0]) * 1e9 / n_i, float(tb[1]) * 1e9 / n_i]
            cur = law_curve(str((sc.get("runs") or [""] * c.log10_n.size)[i]), c.form, c.run_theta[i],
                            n_i, rng_i)
        curves.append(summarize(cur, log10_n=c.log10_n[i], form=c.form, theta=c.run_theta[i]))
    order = np.argsort(c.log10_n, kind="stable")
    curves = [curves[i] for i in order]
    xs = c.log10_n[order]
    lim_raw = np.array([cv.limit() for cv in curves])
    r = c.ratios[order]
    shift = np.zeros(xs.size)
    known = np.isfinite(r)
    if np.any(known) and c.wd_model not in ("none", "constant") and c.ratio_ref is not None:
        shift[known] = _wd_shift(c, r[known], draws=False, a0_ref=_sigmoid(lim_raw[known]))[0]
    limits = lim_raw - shift
    dxs, dcur, dlim = [], [], []
    for k in range(xs.size - 1):
        a, b = curves[k], curves[k + 1]
        step = xs[k + 1] - xs[k]
        if step <= 1e-9:
            continue
        grid = overlap_grid(a.knots_u, b.knots_u)
        dcur.append((b.at(grid)[0] - shift[k + 1]) - (a.at(grid)[0] - shift[k]))
        dlim.append(np.array([limits[k + 1] - limits[k]]))
        dxs.append(step)
    fits = {(q, d): fit_steps(dxs, diffs, drift=d)
            for q, diffs in (("curve", dcur), ("limit", dlim)) for d in (False, True)}
    nug_lim = np.zeros(xs.size)
    if "A0" in c.names:
        a0d = np.clip(c.run_draws64[:, c.names.index("A0"), :], 1e-9, 1 - 1e-9)
        nug_lim = np.var(np.log(a0d) - np.log1p(-a0d), axis=1)[order]
    sig = sc.get("sigma")
    mid = float(np.median(_sigmoid(lim_raw))) if lim_raw.size else 0.5
    nug_pt = (float(sig) / max(mid * (1 - mid), 1e-6)) ** 2 if sig is not None and np.isfinite(float(sig)) else 0.0
    c.steps = _StepData(curves=curves, xs=xs, std_shift=shift, limits=limits, fits=fits, t_draws={},
                        sources=sorted({cv.source for cv in curves}), nugget_limit=nug_lim,
                        nugget_point=nug_pt)
    return c.steps


def _t_draws(c: _Compiled, sd: _StepData, dof: float) -> np.ndarray:
    """(M,) Student-t draws (dof), fixed per compiled entry: the same draws for the curve and
    A0, so a draw is one coherent alternative; zeros without steps."""
    key = round(float(dof), 9)
    if key not in sd.t_draws:
        M = c.run_draws64.shape[2]
        rng = np.random.default_rng(c.seed + 104729)
        sd.t_draws[key] = rng.standard_t(dof, M) if dof > 0 else np.zeros(M)
    return sd.t_draws[key]


def _normal_draws(c: _Compiled, sd: _StepData) -> np.ndarray:
    """(M,) standard normal draws, fixed per compiled entry (independent of the t draws)."""
    if "normal" not in sd.t_draws:
        sd.t_draws["normal"] = np.random.default_rng(c.seed + 130363).standard_normal(c.run_draws64.shape[2])
    return sd.t_draws["normal"]


def _step_chunk(c: _Compiled, method: str, N: np.ndarray, R: np.ndarray, D: np.ndarray,
                klo: int, khi: int) -> dict[str, np.ndarray]:
    """``nearest`` / ``step``: measured curves at equal tokens per parameter, moved across
    scale by the scale-step model (:mod:`~sparsitylaws.architecture.scalestep`)."""
    from sparsitylaws.architecture.scalestep import place

    sd = _step_data(c)
    drift = method == "step"
    x0 = np.log10(N)
    u = np.log(D * 1e9 / N)
    pl = place(sd.xs, x0, bridge=drift)
    z = np.zeros(x0.size)
    lim = np.zeros(x0.size)
    floor = np.zeros(x0.size, bool)
    ceil = np.zeros(x0.size, bool)
    for idx, wt in ((pl.lo, 1.0 - pl.w), (pl.hi, pl.w)):
        for i in np.unique(idx):
            m = (idx == i) & (wt > 0)
            if not np.any(m):
                continue
            zi, fl, ce = sd.curves[i].at(u[m])
            z[m] += wt[m] * (zi - sd.std_shift[i])
            lim[m] += wt[m] * sd.limits[i]
            floor[m] |= fl
            ceil[m] |= ce
    # one drift, the curves' (fitted at budgets the runs measured), for the curve and its
    # limit alike: A0 is the curve's own limit; the limits' steps set only A0's band
    fc, fl_ = sd.fits[("curve", drift)], sd.fits[("limit", False)]
    z += fc.drift * pl.dx_end
    lim += fc.drift * pl.dx_end
    z = np.maximum(z, lim) if c.sign > 0 else np.minimum(z, lim)  # a guard: equal drifts keep it
    shift_pt, wd_out = _wd_shift(c, R, draws=False, a0_ref=_sigmoid(lim))
    shift_d, _ = _wd_shift(c, R, draws=True, a0_ref=_sigmoid(lim)[:, None])
    shift_d = np.broadcast_to(shift_d, (x0.size, c.run_draws64.shape[2]))

    # the measured runs' own uncertainty (a step model's Brownian variance is 0 at a measured
    # scale): the mixed runs' limit variance, and one point's noise for the curve
    nug_lim = np.zeros(x0.size)
    for idx, wt in ((pl.lo, 1.0 - pl.w), (pl.hi, pl.w)):
        nug_lim += np.where(pl.lo == pl.hi, 0.0 if idx is pl.hi else 1.0, wt**2) * sd.nugget_limit[idx]

    def draws(pt: np.ndarray, fit, nugget: np.ndarray | float) -> np.ndarray:
        var = (np.nan_to_num(fit.sigma2) * pl.var_factor + fc.drift_var * pl.dx_end**2)
        t = _t_draws(c, sd, fit.dof)
        zn = _normal_draws(c, sd)  # the runs' own noise is known: normal, not the steps' t
        nug = np.broadcast_to(np.sqrt(np.asarray(nugget, float)), pt.shape)
        return (pt[:, None] + np.sqrt(var)[:, None] * t[None, :] + nug[:, None] * zn[None, :]
                + shift_d).astype(np.float32)

    a0_pt = _sigmoid(lim + shift_pt)
    ratio_pt = _sigmoid(z + shift_pt)
    a0_d = _sigmoid(draws(lim, fl_, nug_lim))
    ratio_d = _sigmoid(draws(z, fc, sd.nugget_point))
    ratio_pt = np.where(floor, 0.0, np.where(ceil, 1.0, ratio_pt))
    res = _bands((("a0", a0_pt, a0_d), ("ratio", ratio_pt, ratio_d)), klo, khi)
    res.pop("_low_out")
    res.pop("_high_out")
    res["floor"] = floor
    res["ceiling"] = ceil
    res["wd_clamped"] = wd_out
    res["ratio_draws"] = ratio_d
    return res


def _curve_log_excess(c: _Compiled, x0: np.ndarray, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log excess of the fitted runs at equal tokens per parameter, convex mix in log10 N of
    the two nearest scales (the nearest one beyond the fitted range): (point (m,), draws (m, M))."""
    order = np.argsort(c.log10_n, kind="stable")
    xs = c.log10_n[order]
    nr = xs.size
    if nr == 1:
        lo_i = hi_i = np.zeros(x0.size, int)
        w_hi = np.zeros(x0.size)
    else:
        hi_pos = np.clip(np.searchsorted(xs, x0), 1, nr - 1)
        lo_pos = hi_pos - 1
        span = xs[hi_pos] - xs[lo_pos]
        w_hi = np.clip((x0 - xs[lo_pos]) / np.where(span > 0, span, 1.0), 0.0, 1.0)
        lo_i, hi_i = order[lo_pos], order[hi_pos]
    names = c.names
    ia, ic = names.index("alpha"), names.index("c")
    ib = names.index("b") if "b" in names else None

    def le(idx: np.ndarray, draws: bool):
        logd = np.log(D) + (c.log10_n[idx] - x0) * math.log(10.0)  # same tokens per parameter
        if draws:
            th = c.run_draws64[idx]  # (m, k, M)
            return _log_excess(c.form, th[:, ia], th[:, ic], None if ib is None else th[:, ib],
                               logd[:, None])
        th = c.run_theta[idx]
        return _log_excess(c.form, th[:, ia], th[:, ic], None if ib is None else th[:, ib], logd)

    return _mix(le(lo_i, False), le(hi_i, False), w_hi), _mix(le(lo_i, True), le(hi_i, True), w_hi)


def _mix(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """(1 - w) a + w b per row (w: (m,), a and b: (m,) or (m, M)), exactly a at w = 0 and b at
    w = 1: a log excess of -inf (a draw whose excess has vanished) never meets a zero weight."""
    wa = np.broadcast_to(w.reshape(w.shape + (1,) * (a.ndim - w.ndim)), a.shape)
    out = np.where(wa >= 1.0, b, a)
    mid = (wa > 0.0) & (wa < 1.0)
    if np.any(mid):
        out[mid] = (1.0 - wa[mid]) * a[mid] + wa[mid] * b[mid]
    return out


# ------------------------------------------------------------------ facts for anchoring


def nearest_fitted_range(section: Mapping, activation: str, n_params: Any
                         ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(lowest, highest tokens per parameter, run) of the scale run nearest each ``n_params``
    (log10 N): the budgets its curve was measured (or, without points, assumed) over.  An
    anchor below that range sits where the law's nearest curve is extrapolated into warm-up."""
    c = _compile(section["activations"][activation], int(section.get("seed", 0) or 0))
    sd = _step_data(c)
    x = np.log10(np.atleast_1d(np.asarray(n_params, float)))
    i = np.argmin(np.abs(sd.xs[None, :] - x[:, None]), axis=1)
    lo = np.array([math.exp(float(sd.curves[k].points_u.min())) for k in i])
    hi = np.array([math.exp(float(sd.curves[k].points_u.max())) for k in i])
    return lo, hi, [sd.curves[k].run for k in i]


def scale_step_sigma(section: Mapping, activation: str) -> float:
    """The law set's own scale-step sd (logit per sqrt(decade), no drift): how far curves of
    its recipe move between scales; nan with fewer than two scales."""
    c = _compile(section["activations"][activation], int(section.get("seed", 0) or 0))
    return float(math.sqrt(_step_data(c).fits[("curve", False)].sigma2))
