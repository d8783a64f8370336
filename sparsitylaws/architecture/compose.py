"""Composing a prediction for a configuration: limit A0 and A(D) with intervals for many
(n_params, width/depth, tokens) at once, from an architecture section."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparsitylaws.architecture.common import METHODS, TRANSFORMS
from sparsitylaws.errors import LawSetError, SparsityLawsError


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
