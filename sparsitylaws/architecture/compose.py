"""Composing a prediction for a configuration: limit A0 and A(D) with intervals for many
(n_params, width/depth, tokens) at once, from an architecture section.

Valid by construction.  Every curve, for the point estimate and for every draw behind an
interval, is ``A(D) = A0 + sign * E(D)`` with a limit ``A0`` in (0, 1) and an excess
``E(D) > 0`` that never grows with D, so ReLU curves (sign +1) never rise and SiLU curves
(sign -1) never fall:

* A0 is composed in log-odds: the scale trend of logit(A0) plus the width/depth law's
  shift of log-odds between the configuration's ratio and the trend's reference ratio;
* the excess is built from law parameters composed in spaces where every value is a valid
  law (log alpha, log c, b), or as a convex mix of fitted runs' excesses.

The only way out of [0, 1] is the form itself: SiLU's ``A0 - c D^-alpha`` goes below 0
as D -> 0, and ReLU's ``A0 + exp(b - c D^alpha)`` can exceed 1 there.  Those values are
clamped (a clamp keeps a curve monotone) and the rows are flagged (``floor``/``ceiling``)
so every output can say so.  Percentiles of monotone draws are monotone; the interval is
widened to contain the plug-in point and the nearest fitted scale's own curve at the same
tokens per parameter (a min/max of monotone curves stays monotone): the leave-one-scale-out
table in docs/architecture.md shows that naive forecast is often as good as any trend.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparsitylaws.architecture.common import DEFAULT_METHOD, METHODS
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

    coef: np.ndarray  # (2, k)
    dcoef32: np.ndarray  # (2, k, M)
    jitter32: np.ndarray  # (k, M) between-scale scatter at unit leverage


@dataclass
class _Compiled:
    form: str
    names: list[str]
    xc: float
    xtx_inv: np.ndarray
    log10_n: np.ndarray
    run_theta: np.ndarray  # (n_runs, k) natural parameters
    run_draws64: np.ndarray  # (n_runs, k, M)
    wd_model: str
    wd_point: dict
    wd_draws: dict
    ratio_ref: float | None
    spaces: dict[str, _Space] = field(default_factory=dict)

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


def _build_space(c: _Compiled, space: str, rng: np.random.Generator) -> _Space:
    n, k, M = c.run_draws64.shape
    X = np.column_stack([np.ones(n), c.log10_n - c.xc])
    distinct = np.unique(np.round(c.log10_n, 6)).size
    if distinct < 2:
        X = X[:, :1]
    H = np.linalg.inv(X.T @ X) @ X.T
    G = _to_space(c, c.run_theta, c.log10_n, space)
    coef = H @ G
    dof = n - X.shape[1]
    Gd = _to_space(c, np.transpose(c.run_draws64, (2, 0, 1)), c.log10_n[None, :], space)  # (M,n,k)
    cd = np.einsum("pn,mnk->mpk", H, Gd)
    if X.shape[1] == 1:
        coef = np.vstack([coef, np.zeros((1, k))])
        cd = np.concatenate([cd, np.zeros_like(cd)], axis=1)
    if dof > 0:
        resid = G - X @ (H @ G)
        cov = resid.T @ resid / dof
        lam, V = np.linalg.eigh(cov)
        L = V * np.sqrt(np.clip(lam, 0, None))[None, :]
        z = rng.standard_normal((M, k)) @ L.T
        jitter = z * np.sqrt(dof / rng.chisquare(dof, M))[:, None]
    else:
        jitter = np.zeros((M, k))
    return _Space(coef=coef, dcoef32=_as_float32(np.transpose(cd, (1, 2, 0))),
                  jitter32=_as_float32(jitter.T))


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
    xtx = np.asarray(sc["xtx_inv"], float)
    c = _Compiled(
        form=sc["form"], names=list(sc["param_names"]), xc=float(sc["x_center"]), xtx_inv=xtx,
        log10_n=np.asarray(sc["log10_n"], float), run_theta=theta, run_draws64=rd,
        wd_model=model, wd_point=dict((wd or {}).get("point") or {}),
        wd_draws={k: (None if v is None else np.asarray(v, float))
                  for k, v in ((wd or {}).get("draws") or {}).items()},
        ratio_ref=None if sc.get("ratio_ref") is None else float(sc["ratio_ref"]),
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
    include_nearest: bool = True,
) -> dict[str, np.ndarray]:
    """Limit A0 and A(D) with ``level`` intervals for many configurations of one activation.

    Point estimates plug in the fitted lines; intervals are percentiles of the section's
    draws (trend refits through bootstrap draws of the runs + between-scale scatter +
    width/depth draws), widened to contain the point.  Arrays broadcast to one length.

    Methods (A0 is the same under all; docs/architecture.md compares them):

    * ``curve`` (default, :data:`DEFAULT_METHOD`): the fitted runs' own excess curves at
      equal tokens per parameter, mixed geometrically with convex weights between the two
      nearest fitted scales (log10 N) and held at the nearest one beyond them;
    * ``excess``: the law's coefficients with c expressed per D / D_budget(N) (equal
      tokens per parameter), trended in log10 N as (log alpha, log c, b);
    * ``coef``: the same trend with c in absolute tokens (the paper's framing).

    Every curve is monotone in D and in [0, 1] for every draw (module docstring).  Extra
    keys: ``floor``/``ceiling`` (bool: the form left [0, 1] at this budget and was
    clamped), ``wd_clamped`` (the width/depth law left (0, 1) at this ratio).  The band of
    A(D) also contains the nearest fitted scale's own curve at the same tokens per parameter
    (``include_nearest``; docs/architecture.md says why).  With
    ``noise_sd > 0`` also ``pred_low``/``pred_high``: the band for a single measured point.
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
    N, R, D = np.broadcast_arrays(np.asarray(n_params, float), np.asarray(ratio, float),
                                  np.asarray(tokens_b, float))
    N, R, D = N.ravel(), R.ravel(), D.ravel()
    n = N.size
    M = c.run_draws64.shape[2]
    a = (1 - level) / 2
    klo = int(math.floor(a * (M - 1)))
    khi = int(math.ceil((1 - a) * (M - 1)))
    keys = ("a0", "a0_low", "a0_high", "ratio", "ratio_low", "ratio_high")
    out: dict[str, np.ndarray] = {key: np.empty(n) for key in keys}
    for key in ("floor", "ceiling", "wd_clamped"):
        out[key] = np.zeros(n, bool)
    if noise_sd > 0:
        out["pred_low"] = np.empty(n)
        out["pred_high"] = np.empty(n)
        rng = np.random.default_rng(seed)
    for s in range(0, n, chunk):
        sl = slice(s, min(s + chunk, n))
        part = _predict_chunk(c, method, N[sl], R[sl], D[sl], klo, khi, include_nearest)
        for key, val in part.items():
            if key in out:
                out[key][sl] = val
        if noise_sd > 0:
            ad = np.clip(part["ratio_draws"], 0.0, 1.0)
            q = np.partition(ad + rng.normal(0.0, noise_sd, ad.shape), [klo, khi], axis=1)
            out["pred_low"][sl] = q[:, klo]
            out["pred_high"][sl] = q[:, khi]
    return out


def _predict_chunk(c: _Compiled, method: str, N: np.ndarray, R: np.ndarray, D: np.ndarray,
                   klo: int, khi: int, include_nearest: bool = True) -> dict[str, np.ndarray]:
    x0 = np.log10(N)
    dx = x0 - c.xc
    h0 = c.xtx_inv[0, 0] + 2 * dx * c.xtx_inv[0, 1] + dx * dx * c.xtx_inv[1, 1]
    infl = np.sqrt(1.0 + h0)
    names = c.names
    ia0 = names.index("A0")
    space = c.spaces["abs" if method == "coef" else "budget"]
    # --- point: plug-in lines
    g_pt = space.coef[0][None, :] + dx[:, None] * space.coef[1][None, :]  # (m, k)
    # --- draws (m, M), float32: percentiles of a few hundred draws need no more
    dx32 = dx.astype(np.float32)[:, None]
    infl32 = infl.astype(np.float32)[:, None]

    def g_draw(j: int, sp: _Space = space) -> np.ndarray:
        g = sp.dcoef32[0, j][None, :] + dx32 * sp.dcoef32[1, j][None, :]
        g += infl32 * sp.jitter32[j][None, :]
        return g

    # limit A0 in log-odds (the same draws under every method), plus the width/depth shift
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
    near = _nearest_curve(c, x0, D)
    res = {}
    for key, pt, dr in (("a0", a0_pt, a0_d), ("ratio", ratio_pt, ratio_d)):
        q = np.partition(dr.astype(np.float32, copy=False), [klo, khi], axis=1)  # float32: cheaper
        lo = np.minimum(q[:, klo].astype(float), pt)
        hi = np.maximum(q[:, khi].astype(float), pt)
        if key == "ratio" and include_nearest:  # honest about the naive forecast that often wins (docs/architecture.md)
            lo, hi = np.minimum(lo, near), np.maximum(hi, near)
        if key == "ratio":
            res["floor"] = lo < 0
            res["ceiling"] = hi > 1
        res[key] = np.clip(pt, 0.0, 1.0)
        res[f"{key}_low"] = np.clip(lo, 0.0, 1.0)
        res[f"{key}_high"] = np.clip(hi, 0.0, 1.0)
    res["wd_clamped"] = wd_out
    res["ratio_draws"] = ratio_d
    return res


def _nearest_curve(c: _Compiled, x0: np.ndarray, D: np.ndarray) -> np.ndarray:
    """The nearest fitted scale's own curve (its A0 included) at the same tokens per
    parameter: the naive forecast every band is widened to contain."""
    i = np.argmin(np.abs(c.log10_n[None, :] - x0[:, None]), axis=1)
    th = c.run_theta[i]
    names = c.names
    ib = names.index("b") if "b" in names else None
    logd = np.log(D) + (c.log10_n[i] - x0) * math.log(10.0)
    le = _log_excess(c.form, th[:, names.index("alpha")], th[:, names.index("c")],
                     None if ib is None else th[:, ib], logd)
    with np.errstate(over="ignore", under="ignore"):
        return th[:, names.index("A0")] + c.sign * np.exp(np.clip(le, -700, 50))


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
