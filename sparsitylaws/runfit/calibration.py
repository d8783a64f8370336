"""Calibrating within-run forecasts on other runs' backtests, and checking them nested.

Input: each run's rolling-origin backtest rows (:func:`sparsitylaws.runfit.backtest.backtest`)
and its curve (:class:`~sparsitylaws.runfit.forecast.RunCurve`).  :class:`BacktestTable` puts
every row of every run into arrays, with each other run's logit move over the same tokens per
parameter, so that any choice of analog runs, candidate weights and drift is a few array
operations.  Then:

* :func:`select` - the candidate weights (a grid on the simplex, step 1/4) and the own-drift
  weight ``beta`` (0, 1/2, 1) with the lowest mean interval score, every run's forecasts
  banded from the *other* runs only (leave one run out), runs weighing equally;
* :func:`model_for` - the :class:`~sparsitylaws.runfit.forecast.ForecastModel` those choices
  give, its scores the normalized errors of the calibrating runs;
* :func:`evaluate` - the nested check: for each held-out group (one run, or every run of the
  largest scale), selection and calibration on the other runs alone (analogs too), then the
  held-out runs' forecasts scored beside the naive ones: last value, local line, nearest run at
  equal tokens per parameter, each with a band calibrated the same way (normalized split
  conformal on |error| / horizon, as a reviewer would build it) and with ours;
* :func:`default_forecast` - the packaged default model (``forecast_default.json``, built from
  the paper's published runs by :mod:`sparsitylaws.runfit.packaged`).

Each run counts once in every calibration (its forecasts equally, their later points
equally): 380 dependent points of eight runs are eight runs' worth of evidence, not 380.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np

from sparsitylaws.runfit.forecast import (
    CANDIDATES,
    MATURITY_BW,
    POOL_BW,
    SCALE_MODE,
    TREND_SHRINK,
    CutState,
    ForecastModel,
    RunCurve,
    analog_move,
    direction_of,
    error_scale,
    expit,
    logit,
)

__all__ = [
    "BETAS",
    "DEFAULT_RESOURCE",
    "BacktestTable",
    "RunBacktest",
    "default_forecast",
    "evaluate",
    "model_for",
    "select",
    "weight_grid",
]

DEFAULT_RESOURCE = "forecast_default.json"
#: Own-drift weights tried: in the point forecast (beta) and in the band's scale (omega).
BETAS = (0.0, 0.5, 1.0)
OMEGAS = (1.0,)  # the run's own (denoised) drift always widens its band: a fixed design choice
#: Step of the weight grid on the simplex.
WEIGHT_STEP = 0.25
#: Fewest calibrating runs (besides the one forecast) for a table's own calibration.
MIN_RUNS = 3
#: Calibrating forecasts borrow only from runs smaller than their own, as a forecast of a run
#: larger than every other must: errors of interpolating between sizes understate those of
#: extrapolating to a new one (the published 0.8B ReLU run falls 25% further between 60 and 190
#: tokens per parameter than the 0.1-0.4B runs, which agree with each other to 3%).
SMALLER_ONLY = True
LEVEL = 0.9


def weight_grid(names: Sequence[str], step: float = WEIGHT_STEP) -> list[dict[str, float]]:
    """Every weight vector on the simplex over ``names`` with entries multiple of ``step``."""
    m = round(1 / step)
    out = []
    for combo in itertools.product(range(m + 1), repeat=len(names)):
        if sum(combo) == m:
            out.append({n: c * step for n, c in zip(names, combo, strict=True)})
    return out


@dataclass
class RunBacktest:
    """What calibration needs of one run: its backtest rows, its curve, its final state."""

    run: str
    activation: str
    n_params: float | None
    rows: list[dict]
    curve: RunCurve
    final: CutState | None = None


class BacktestTable:
    """Every backtest row of every run as arrays (see the module docstring)."""

    def __init__(self, runs: Sequence[RunBacktest], analogs: Sequence[RunCurve] = ()):
        self.runs = list(runs)
        self.names = [r.run for r in self.runs]
        curves = {r.run: r.curve for r in self.runs}
        for a in analogs:
            curves.setdefault(a.run, a)
        self.analog_names = list(curves)
        self.curves = [curves[n] for n in self.analog_names]
        rows, units = [], []
        for ri, rb in enumerate(self.runs):
            states = {}
            for r in rb.rows:
                if r.get("state") is not None:
                    states[r["cutoff"]] = CutState.from_dict(r["state"])
            for r in rb.rows:
                st = states.get(r["cutoff"])
                if st is None:
                    continue
                key = (ri, r["cutoff"])
                if not units or units[-1][0] != key:
                    units.append((key, st))
                rows.append((len(units) - 1, r))
        self.unit_run = np.array([k[0] for k, _ in units], int)
        self.unit_cut = np.array([k[1] for k, _ in units], float)
        self.unit_state = [st for _, st in units]
        self.unit_tau = np.array([st.tau_cut for st in self.unit_state], float)
        self.unit_dcut = np.array([st.d_cut for st in self.unit_state], float)
        n = len(rows)
        self.row_unit = np.array([u for u, _ in rows], int)
        self.row_run = self.unit_run[self.row_unit] if n else np.zeros(0, int)
        self.y = np.array([r["measured"] for _, r in rows], float)
        self.d = np.array([r["tokens_b"] for _, r in rows], float)
        self.h = np.array([r["horizon"] for _, r in rows], float)
        self.sigma = np.array([r["sigma"] if r["sigma"] is not None else np.nan for _, r in rows], float)
        self.s = np.array([direction_of(self.runs[self.unit_run[u]].activation) for u, _ in rows], float)
        self.row_act = np.array([self.runs[self.unit_run[u]].activation for u, _ in rows], dtype=object)
        self.is_last = np.array([bool(r["is_last"]) for _, r in rows])
        self.cut = np.array([r["cutoff"] for _, r in rows], float)
        self.index = np.array([r.get("index", -1) for _, r in rows], int)
        self.own_cands = {k: np.array([r[f"cand_{k}"] for _, r in rows], float) for k in ("law", "line", "last")}
        self._moves(rows)
        # base weight: each run 1, each of its units equally, each unit's rows equally
        w = np.zeros(n)
        for ri in range(len(self.runs)):
            us = np.flatnonzero(self.unit_run == ri)
            for u in us:
                m = self.row_unit == u
                w[m] = 1.0 / (len(us) * m.sum())
        self.w = w

    def _moves(self, rows: list) -> None:
        """Each analog's logit move for each row (NaN where it does not apply) and its log10
        size ratio; the unit's base level (logit of its local line at the cut)."""
        n, m = len(rows), len(self.curves)
        self.move = np.full((n, m), np.nan)
        self.xsize = np.full((n, m), np.nan)
        self.base = np.array([logit(self.unit_state[u].level) for u, _ in rows], float)
        for u, st in enumerate(self.unit_state):
            idx = np.flatnonzero(self.row_unit == u)
            if not st.n_params or idx.size == 0:
                continue
            for j, a in enumerate(self.curves):
                mv = analog_move(a, st, self.d[idx])
                if mv is not None:
                    self.move[idx, j], self.xsize[idx, j] = mv

    # ------------------------------------------------------------------ candidates for a fold
    def candidates(self, analog_mask: np.ndarray, smaller_only: bool = False) -> dict[str, np.ndarray]:
        """All candidates per row, the pooled ones from the analogs in ``analog_mask`` only
        (and ``nearest``: the single nearest-size analog's move); ``smaller_only``: each row
        borrows only from runs smaller than its own (as a run larger than every other would)."""
        M = np.where(analog_mask[None, :], self.move, np.nan)
        if smaller_only:
            M = np.where(self.xsize < -1e-6, M, np.nan)
        fin = np.isfinite(M)
        x = np.where(fin, self.xsize, 0.0)
        w = np.exp(-0.5 * (x / POOL_BW) ** 2) * fin
        Mz = np.where(fin, M, 0.0)
        sw = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(sw > 0, (w * Mz).sum(axis=1) / sw, np.nan)
            xm = np.where(sw > 0, (w * x).sum(axis=1) / sw, 0.0)
            sxx = (w * (x - xm[:, None]) ** 2).sum(axis=1)
            sxy = (w * (x - xm[:, None]) * (Mz - mean[:, None])).sum(axis=1)
            b = np.where(sxx > 1e-12, sxy / sxx, 0.0) * TREND_SHRINK
        near_idx = np.argmin(np.where(fin, np.abs(self.xsize), np.inf), axis=1)
        near = np.where(fin.any(axis=1), M[np.arange(M.shape[0]), near_idx], np.nan)
        out = dict(self.own_cands)
        out["pool"] = np.clip(expit(self.base + mean), 0.0, 1.0)
        out["trend"] = np.clip(expit(self.base + mean - b * xm), 0.0, 1.0)
        out["nearest"] = np.clip(expit(self.base + near), 0.0, 1.0)
        for k in ("pool", "trend", "nearest"):
            out[k] = np.where(np.isfinite(mean if k != "nearest" else near), out[k], np.nan)
        return out

    def own_drift(self, errors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per unit and candidate: the run's own drift, the mean of e/h (direction-normalized)
        over its earlier forecasts' points up to the unit's cut, with the part its point noise
        alone would give taken out (:func:`~sparsitylaws.runfit.forecast.denoised_drift`); NaN
        when there are none."""
        from sparsitylaws.runfit.forecast import denoised_drift

        out = {}
        nu = len(self.unit_state)
        sig = np.where(np.isfinite(self.sigma), self.sigma, 0.0)
        masks = [((self.row_run == self.unit_run[u]) & (self.cut < self.unit_cut[u])
                  & (self.d <= self.unit_dcut[u] * (1 + 1e-12)) & (self.h > 0)) for u in range(nu)]
        for k, e in errors.items():
            z = self.s * e / np.maximum(self.h, 1e-9)
            v = np.full(nu, np.nan)
            for u, m in enumerate(masks):
                m = m & np.isfinite(z)
                if m.any():
                    v[u] = denoised_drift(z[m], sig[m] / self.h[m])
            out[k] = v
        return out


# ---------------------------------------------------------------------- scoring a configuration


def _combine(C: dict[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    num = 0.0
    den = 0.0
    for k, w in weights.items():
        if w <= 0:
            continue
        v = C[k]
        ok = np.isfinite(v)
        num = num + np.where(ok, w * v, 0.0)
        den = den + np.where(ok, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(np.asarray(den) > 0, num / np.where(np.asarray(den) > 0, den, 1.0), np.nan)
    return np.where(np.isfinite(f), f, C["law"])


def _drift(T: BacktestTable, own: dict[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    num = np.zeros(len(T.unit_state))
    den = np.zeros(len(T.unit_state))
    for k, w in weights.items():
        if w <= 0 or k not in own:
            continue
        ok = np.isfinite(own[k])
        num += np.where(ok, w * own[k], 0.0)
        den += np.where(ok, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _forecast(T: BacktestTable, C: dict, own: dict, weights: Mapping[str, float], beta: float) -> np.ndarray:
    f = _combine(C, weights)
    if beta:
        dr = _drift(T, own, weights)[T.row_unit]
        f = f + np.where(np.isfinite(dr), T.s * beta * dr * T.h, 0.0)
    return np.clip(f, 0.0, 1.0)


def _kappa(T: BacktestTable, e: np.ndarray, rows: np.ndarray) -> dict[str, dict]:
    """Horizon scale per activation ("*" pools every activation; an activation with fewer than
    2 calibrating runs uses it): the weighted median over the calibrating rows of |e| / h (of
    |e| / (sigma h) in the relative mode), and its trend in log10 N: each run's own median,
    log-linear least squares across runs, the slope shrunk toward 0 by its standard error
    (positive-part James-Stein factor 1 - se^2 / slope^2; 0 with fewer than 3 sized runs)."""
    from sparsitylaws.runfit.forecast import weighted_quantile

    r = rows & (T.h > 0) & np.isfinite(e)
    den = T.h if SCALE_MODE != "relative" else T.h * np.maximum(np.where(np.isfinite(T.sigma), T.sigma, 0.0), 1e-6)
    v = np.abs(e) / np.maximum(den, 1e-300)

    def entry(m: np.ndarray) -> dict:
        k = weighted_quantile(v[m], T.w[m], 0.5) if m.any() else math.nan
        k = k if math.isfinite(k) and k > 0 else 1e-3
        out = {"kappa": k, "log_kappa": math.log(k), "slope": 0.0, "x_mean": 0.0}
        meds, xs = [], []
        for ri in np.unique(T.row_run[m]):
            n = T.runs[ri].n_params
            mm = m & (T.row_run == ri)
            mj = weighted_quantile(v[mm], T.w[mm], 0.5)
            if n and math.isfinite(mj) and mj > 0:
                meds.append(math.log(mj))
                xs.append(math.log10(n))
        if len(xs) >= 3 and np.ptp(xs) > 0:
            x, yv = np.asarray(xs), np.asarray(meds)
            xm = float(x.mean())
            sxx = float(np.sum((x - xm) ** 2))
            b = float(np.sum((x - xm) * (yv - yv.mean())) / sxx)
            resid = yv - yv.mean() - b * (x - xm)
            se2 = float(np.sum(resid**2) / (x.size - 2) / sxx) if x.size > 2 else math.inf
            shrink = max(0.0, 1.0 - se2 / b**2) if b != 0 else 0.0
            out.update({"log_kappa": float(yv.mean()), "slope": b * shrink, "x_mean": xm})
        return out

    out = {"*": entry(r)}
    for a in sorted(set(T.row_act[r])) if r.any() else []:
        m = r & (T.row_act == a)
        if len(set(T.row_run[m])) >= 2:
            out[str(a)] = entry(m)
    return out


def _scale(T: BacktestTable, kappa: Mapping[str, dict], drift: np.ndarray | None = None,
           omega: float = 0.0) -> np.ndarray:
    """S(h) per row; with ``drift`` (per unit: the run's own drift at that cut) the horizon
    scale of a run that has been drifting widens to hold it (:func:`~sparsitylaws.runfit.forecast.run_kappa`)."""
    from sparsitylaws.runfit.forecast import kappa_at, run_kappa

    k = np.empty(T.y.size)
    for ri, rb in enumerate(T.runs):
        m = T.row_run == ri
        k[m] = kappa_at(kappa.get(rb.activation, kappa["*"]), rb.n_params)
    if drift is not None and omega:
        k = run_kappa(k, drift[T.row_unit], omega)
    return error_scale(T.sigma, T.h, k)


def _unit_quantiles(T: BacktestTable, z: np.ndarray, calib: np.ndarray, targets: np.ndarray,
                    level: float, loro: bool) -> tuple[np.ndarray, np.ndarray]:
    """Lower/upper quantiles of z for each target unit from the calibrating rows (same rules as
    :meth:`ForecastModel.quantiles`): maturity kernel, one run one weight, finite-sample
    factor; ``loro``: a unit's own run never calibrates it."""
    rows = np.flatnonzero(calib & np.isfinite(z))
    o = rows[np.argsort(z[rows], kind="stable")]
    zs = z[o]
    tau_r = T.unit_tau[T.row_unit[o]]
    lo = np.full(targets.size, -np.inf)
    hi = np.full(targets.size, np.inf)
    if o.size == 0:
        return lo, hi
    tu = T.unit_tau[targets]
    with np.errstate(invalid="ignore", divide="ignore"):
        K = np.exp(-0.5 * ((np.log(tau_r)[None, :] - np.log(tu)[:, None]) / MATURITY_BW) ** 2)
    K = np.where(np.isfinite(K), K, 1.0)
    W = K * T.w[o][None, :]
    if loro:
        W = W * (T.row_run[o][None, :] != T.unit_run[targets][:, None])
    # fall back to the unconditioned weights where the kernel leaves (almost) nothing
    base = np.broadcast_to(T.w[o][None, :], W.shape).copy()
    if loro:
        base = base * (T.row_run[o][None, :] != T.unit_run[targets][:, None])
    thin = W.sum(axis=1) <= 1e-9 * np.maximum(base.sum(axis=1), 1e-300)
    W[thin] = base[thin]
    tot = W.sum(axis=1)
    runs = T.row_run[o]
    ur = np.unique(runs)
    per = np.stack([W[:, runs == r].sum(axis=1) for r in ur], axis=1)
    n_eff = per.sum(axis=1) ** 2 / np.maximum((per**2).sum(axis=1), 1e-300)
    miss = (1.0 - level) / 2.0 * n_eff / (n_eff + 1.0)
    c = (np.cumsum(W, axis=1) - 0.5 * W) / np.maximum(tot, 1e-300)[:, None]
    for i in range(targets.size):
        if tot[i] <= 0:
            continue
        lo[i] = np.interp(miss[i], c[i], zs)
        hi[i] = np.interp(1.0 - miss[i], c[i], zs)
    return lo, hi


def _interval_score(lo: np.ndarray, hi: np.ndarray, y: np.ndarray, level: float) -> np.ndarray:
    a = 1.0 - level
    return (hi - lo) + (2.0 / a) * np.maximum(lo - y, 0.0) + (2.0 / a) * np.maximum(y - hi, 0.0)


def _band(T: BacktestTable, f: np.ndarray, S: np.ndarray, qlo: np.ndarray, qhi: np.ndarray,
          rows: np.ndarray, unit_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = f[rows] + T.s[rows] * qlo[unit_pos] * S[rows]
    b = f[rows] + T.s[rows] * qhi[unit_pos] * S[rows]
    return np.clip(np.minimum(a, b), 0.0, 1.0), np.clip(np.maximum(a, b), 0.0, 1.0)


def _run_mean(T: BacktestTable, rows: np.ndarray, v: np.ndarray) -> dict[int, float]:
    """Mean of v over each run's rows, each unit weighing equally."""
    out = {}
    for ri in np.unique(T.row_run[rows]):
        m = T.row_run[rows] == ri
        out[int(ri)] = float(np.sum(v[m] * T.w[rows][m]) / np.sum(T.w[rows][m]))
    return out


def score_config(T: BacktestTable, C: dict, own: dict, weights: Mapping[str, float], beta: float,
                 calib: np.ndarray, level: float = LEVEL, omega: float = 0.0,
                 score_rows: np.ndarray | None = None) -> float:
    """Mean (over calibrating runs, or the runs of ``score_rows``) interval score of a
    configuration, each run's forecasts banded from the other calibrating runs only."""
    f = _forecast(T, C, own, weights, beta)
    e = T.s * (T.y - f)
    kappa = _kappa(T, e, calib)
    S = _scale(T, kappa, _drift(T, own, weights), omega)
    z = e / np.maximum(S, 1e-12)
    units = np.unique(T.row_unit[calib])
    qlo, qhi = _unit_quantiles(T, z, calib, units, level, loro=True)
    pos = np.full(len(T.unit_state), -1)
    pos[units] = np.arange(units.size)
    rows = np.flatnonzero(calib if score_rows is None else calib & score_rows)
    lo, hi = _band(T, f, S, qlo, qhi, rows, pos[T.row_unit[rows]])
    isc = _interval_score(lo, hi, T.y[rows], level)
    per = _run_mean(T, rows, isc)
    return float(np.mean(list(per.values()))) if per else math.inf


def select(T: BacktestTable, calib: np.ndarray, analog_mask: np.ndarray, level: float = LEVEL,
           names: Sequence[str] = CANDIDATES, score_rows: np.ndarray | None = None) -> dict:
    """The configuration (weights, beta) with the lowest leave-one-run-out mean interval score
    (over the calibrating runs, or those of ``score_rows``); ties go to the earlier grid entry
    (fewer candidates first)."""
    C = T.candidates(analog_mask, SMALLER_ONLY)
    own = T.own_drift({k: T.y - C[k] for k in names})
    scored = calib if score_rows is None else calib & score_rows
    avail = [k for k in names if np.isfinite(C[k][scored]).any()]
    best: tuple[float, dict, float, float] | None = None
    grid = sorted(weight_grid(avail), key=lambda w: sum(v > 0 for v in w.values()))
    for omega in OMEGAS:
        for beta in BETAS:
            for w in grid:
                s = score_config(T, C, own, w, beta, calib, level, omega, score_rows)
                if best is None or s < best[0] - 1e-12:
                    best = (s, w, beta, omega)
    assert best is not None
    return {"weights": {k: v for k, v in best[1].items() if v > 0}, "beta": best[2], "omega": best[3],
            "score": best[0], "candidates": avail, "grid": len(grid) * len(BETAS) * len(OMEGAS)}


def select_by_activation(T: BacktestTable, calib: np.ndarray, analog_mask: np.ndarray,
                         level: float = LEVEL) -> dict:
    """:func:`select` on all calibrating runs, and again for each activation with at least
    :data:`MIN_RUNS` calibrating runs (the threshold :func:`calibration_mask` uses), scored on
    that activation's runs alone (bands still calibrated on every run): the combination is the
    default for an activation only where it beats, on that activation's runs, every other
    choice of the grid, the naive forecasts (weight 1 on one of them) included."""
    choice = select(T, calib, analog_mask, level)
    by = {}
    for a in sorted(set(T.row_act[calib])):
        m = T.row_act == a
        if len(set(T.row_run[calib & m])) >= MIN_RUNS:
            ca = select(T, calib, analog_mask, level, score_rows=m)
            by[str(a)] = {"weights": ca["weights"], "beta": ca["beta"], "score": ca["score"]}
    return {**choice, "by_activation": by}


def _forecast_rows(T: BacktestTable, C: dict, own: dict, choice: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """Each row's forecast and its unit's own drift under its activation's choice."""
    f = _forecast(T, C, own, choice["weights"], choice["beta"])
    dr = _drift(T, own, choice["weights"])
    for a, ca in (choice.get("by_activation") or {}).items():
        m = T.row_act == a
        f = np.where(m, _forecast(T, C, own, ca["weights"], ca["beta"]), f)
        um = np.array([T.runs[T.unit_run[u]].activation == a for u in range(len(T.unit_state))])
        dr = np.where(um, _drift(T, own, ca["weights"]), dr)
    return f, dr


def model_for(T: BacktestTable, calib: np.ndarray, analog_mask: np.ndarray, choice: Mapping,
              level: float = LEVEL, source: str = "") -> ForecastModel:
    """The forecast model of a configuration: kappa and the scores of the calibrating rows."""
    C = T.candidates(analog_mask, SMALLER_ONLY)
    own = T.own_drift({k: T.y - C[k] for k in C})
    f, dr = _forecast_rows(T, C, own, choice)
    e = T.s * (T.y - f)
    kappa = _kappa(T, e, calib)
    omega = float(choice.get("omega", 0.0))
    z = e / np.maximum(_scale(T, kappa, dr, omega), 1e-12)
    rows = np.flatnonzero(calib & np.isfinite(z))
    scores = [(T.names[T.row_run[i]], float(T.unit_tau[T.row_unit[i]]), float(z[i]), float(T.w[i]))
              for i in rows]
    sel = {k: v for k, v in choice.items() if k in ("score", "candidates", "grid")}
    h_max = float(np.max(T.h[rows])) if rows.size else math.nan
    return ForecastModel(dict(choice["weights"]), float(choice["beta"]), kappa, scores, level, source, sel,
                         h_max, SCALE_MODE, omega,
                         {a: {"weights": dict(c["weights"]), "beta": float(c["beta"])}
                          for a, c in (choice.get("by_activation") or {}).items()})


def own_drifts_of(T: BacktestTable, analog_mask: np.ndarray, rb: RunBacktest) -> dict[str, float]:
    """The run's own drift over all its backtests (what its final forecast uses), per candidate."""
    ri = T.names.index(rb.run)
    C = T.candidates(analog_mask)
    out = {}
    from sparsitylaws.runfit.forecast import denoised_drift

    sig = np.where(np.isfinite(T.sigma), T.sigma, 0.0)
    for k in C:
        z = T.s * (T.y - C[k]) / np.maximum(T.h, 1e-9)
        m = (T.row_run == ri) & np.isfinite(z) & (T.h > 0)
        out[k] = denoised_drift(z[m], sig[m] / T.h[m]) if m.any() else math.nan
    return out


# ---------------------------------------------------------------------- naive bands and evaluation


def conformal_q(values: np.ndarray, weights: np.ndarray | None, level: float) -> float:
    """Weighted split-conformal quantile of |error| / horizon (the reviewer's naive band)."""
    from sparsitylaws.runfit.forecast import weighted_quantile

    v = np.asarray(values, float)
    w = np.ones(v.size) if weights is None else np.asarray(weights, float)
    return weighted_quantile(v, w, level)


def _combined_rows(T: BacktestTable, ri: int, model: ForecastModel, C: dict, own: dict,
                   analogs: Sequence[RunCurve], exclude: str | None, level: float) -> list[dict]:
    """Rows of run ``ri`` with the combined forecast and band exactly as a prediction makes
    them (:meth:`ForecastModel.band`: monotone, in [0, 1]), the model leaving ``exclude`` out."""
    out = []
    for u in np.unique(T.row_unit[T.row_run == ri]):
        st = T.unit_state[u]
        state = CutState(**{**st.__dict__, "own": {k: float(v[u]) for k, v in own.items()}})
        idx = np.flatnonzero(T.row_unit == u)
        b = model.band(state, T.d[idx], analogs, exclude=exclude)
        for j, i in enumerate(idx):
            r = {"cutoff": float(T.cut[i]), "index": int(T.index[i]), "tokens_b": float(T.d[i]),
                 "measured": float(T.y[i]), "horizon": float(T.h[i]), "is_last": bool(T.is_last[i]),
                 "d_cut": float(st.d_cut),
                 "tau_cut": float(st.tau_cut), "sigma": float(T.sigma[i]),
                 "predicted": float(b["estimate"][j]), "pred_low": float(b["low"][j]),
                 "pred_high": float(b["high"][j])}
            r["error"] = r["predicted"] - r["measured"]
            r["covered"] = bool(r["pred_low"] <= r["measured"] <= r["pred_high"])
            r["interval_score"] = float(_interval_score(b["low"][j], b["high"][j], T.y[i], level))
            for k in ("law", "line", "last", "pool", "trend", "nearest"):
                v = C[k][i]
                r[f"cand_{k}"] = float(v) if np.isfinite(v) else None
            out.append(r)
    return out


def fill_rows(T: BacktestTable, ri: int, model: ForecastModel, C: dict, own: dict,
              calib: np.ndarray, analog_mask: np.ndarray, level: float = LEVEL) -> list[dict]:
    """Calibrated rows of run ``ri``: the combined forecast and its band from ``model`` (run
    left out), and the law alone and the naive forecasts (last value, local line, nearest run
    at equal tokens per parameter) each with a band calibrated the same way on the other
    calibrating runs, and with the reviewer's symmetric +-q h band (q the split-conformal
    quantile of |error| / h)."""
    analogs = [c for c, m in zip(T.curves, analog_mask, strict=True) if m]
    res = _combined_rows(T, ri, model, C, own, analogs, T.names[ri], level)
    rows = np.flatnonzero(T.row_run == ri)
    units = np.unique(T.row_unit[rows])
    pos = np.full(len(T.unit_state), -1)
    pos[units] = np.arange(units.size)
    others = calib & (T.row_run != ri)
    methods = {"law": "law", "last": "naive_last", "line": "naive_line", "nearest": "naive_nearest"}
    for name, key in methods.items():
        f = C[name]
        if not np.isfinite(f[rows]).any() or not (others & np.isfinite(f)).any():
            continue
        e = T.s * (T.y - f)
        # the same band machinery as the combined forecast's (its omega: the candidate's own
        # drift widens the band), so the comparison is of forecasts, not of band recipes
        S = _scale(T, _kappa(T, e, others & np.isfinite(f)), _drift(T, own, {name: 1.0}), model.omega)
        z = e / np.maximum(S, 1e-12)
        qlo, qhi = _unit_quantiles(T, z, others, units, level, loro=False)
        lo, hi = _band(T, f, S, qlo, qhi, rows, pos[T.row_unit[rows]])
        sym = None
        if name != "law":  # the reviewer's band: +- q h, q conformal on |error| / h
            okc = others & (T.h > 0) & np.isfinite(f)
            q = conformal_q(np.abs(T.y - f)[okc] / T.h[okc], T.w[okc], level)
            half = q * T.h[rows]
            sym = (np.clip(f[rows] - half, 0, 1), np.clip(f[rows] + half, 0, 1))
        for j, i in enumerate(rows):
            r = res[j]
            if not np.isfinite(f[i]):
                continue
            r[f"{key}_low"], r[f"{key}_high"] = float(lo[j]), float(hi[j])
            r[f"{key}_interval_score"] = float(_interval_score(lo[j], hi[j], T.y[i], level))
            if sym is not None:
                r[f"{key}_sym_low"], r[f"{key}_sym_high"] = float(sym[0][j]), float(sym[1][j])
                r[f"{key}_sym_interval_score"] = float(_interval_score(sym[0][j], sym[1][j], T.y[i], level))
    return res


def apply_model(rb: RunBacktest, model: ForecastModel, curves: Sequence[RunCurve],
                level: float = LEVEL) -> tuple[list[dict], dict[str, float]]:
    """A run's rows banded by a model calibrated elsewhere (the packaged default), with the
    given analog curves, and the run's own drift for its final forecast."""
    T = BacktestTable([rb], curves)
    amask = np.array([n != rb.run for n in T.analog_names])
    C = T.candidates(amask)
    own = T.own_drift({k: T.y - C[k] for k in C})
    analogs = [c for c, m in zip(T.curves, amask, strict=True) if m]
    return (_combined_rows(T, 0, model, C, own, analogs, rb.run, level),
            own_drifts_of(T, amask, rb))


METHODS = ("combined", "law", "naive_last", "naive_line", "naive_nearest", "naive_last_sym",
           "naive_line_sym", "naive_nearest_sym")


def summarize(rows: Sequence[dict], level: float = LEVEL, cutoffs: Sequence[float] | None = None) -> dict:
    """Per method: mean interval score, coverage over points, of last checkpoints, per run
    (units weigh equally within a run, runs equally overall)."""
    rows = [r for r in rows if cutoffs is None or r["cutoff"] in cutoffs]
    out: dict[str, dict] = {}
    for m in METHODS:
        lo_k, hi_k = ("pred_low", "pred_high") if m == "combined" else (f"{m}_low", f"{m}_high")
        rs = [r for r in rows if r.get(lo_k) is not None]
        if not rs:
            continue
        by_run: dict[str, list] = {}
        for r in rs:
            by_run.setdefault(r["run"], []).append(r)
        per_run = {}
        for run, rr in by_run.items():
            by_cut: dict[float, list] = {}
            for r in rr:
                by_cut.setdefault(r["cutoff"], []).append(r)
            isc = [np.mean([_interval_score(r[lo_k], r[hi_k], r["measured"], level) for r in c]) for c in by_cut.values()]
            cov = [np.mean([r[lo_k] <= r["measured"] <= r[hi_k] for r in c]) for c in by_cut.values()]
            last = [max(c, key=lambda r: r["tokens_b"]) for c in by_cut.values()]
            per_run[run] = {"interval_score": float(np.mean(isc)), "coverage": float(np.mean(cov)),
                            "last_covered": int(sum(r[lo_k] <= r["measured"] <= r[hi_k] for r in last)),
                            "n_forecasts": len(by_cut), "n_points": len(rr)}
        n_pts = sum(v["n_points"] for v in per_run.values())
        n_cov = sum(r[lo_k] <= r["measured"] <= r[hi_k] for r in rs)
        n_fc = sum(v["n_forecasts"] for v in per_run.values())
        n_last = sum(v["last_covered"] for v in per_run.values())
        out[m] = {"interval_score": float(np.mean([v["interval_score"] for v in per_run.values()])),
                  "coverage_runs": float(np.mean([v["coverage"] for v in per_run.values()])),
                  "covered_points": int(n_cov), "n_points": int(n_pts),
                  "covered_last": int(n_last), "n_forecasts": int(n_fc), "per_run": per_run}
    return out


def calibration_mask(T: BacktestTable, held: set[int], by_activation: bool) -> np.ndarray:
    """Rows that may calibrate a forecast of the held-out runs: every other run, or (when
    ``by_activation`` and at least :data:`MIN_RUNS` remain) the other runs of the same
    activation."""
    calib = ~np.isin(T.row_run, list(held))
    if by_activation:
        acts = {T.runs[i].activation for i in held}
        same = np.array([T.runs[i].activation in acts for i in range(len(T.runs))])[T.row_run] & calib
        if len({int(i) for i in T.row_run[same]}) >= MIN_RUNS:
            return same
    return calib


def evaluate(runs: Sequence[RunBacktest], groups: Sequence[Sequence[str]], level: float = LEVEL,
             analogs: Sequence[RunCurve] = (), by_activation: bool = False) -> list[dict]:
    """Nested check: for each group of held-out runs, selection, calibration and analogs from
    the other runs only; the held-out runs' rows filled by that model (with the run's name in
    ``run`` and the fold's choice in ``choice``).  A group mixing activations is split."""
    T = BacktestTable(runs, analogs)
    out = []
    split = []
    for g in groups:
        for act in sorted({T.runs[T.names.index(n)].activation for n in g}):
            split.append((list(g), [n for n in g if T.runs[T.names.index(n)].activation == act]))
    for g_all, g in split:
        held = {T.names.index(n) for n in g}
        calib = calibration_mask(T, {T.names.index(n) for n in g_all}, by_activation)
        calib &= ~np.isin(T.row_run, list(held))
        amask = np.array([n not in g_all for n in T.analog_names])
        if len({T.row_run[i] for i in np.flatnonzero(calib)}) < 2:
            continue
        choice = select_by_activation(T, calib, amask, level)
        model = model_for(T, calib, amask, choice, level)
        C = T.candidates(amask)
        own = T.own_drift({k: T.y - C[k] for k in C})
        act = T.runs[next(iter(held))].activation
        used = (choice["by_activation"].get(act) or choice)
        for ri in sorted(held):
            for r in fill_rows(T, ri, model, C, own, calib, amask, level):
                out.append({**r, "run": T.names[ri], "fold": list(g_all),
                            "choice": {"weights": used["weights"], "beta": used["beta"],
                                       "omega": choice["omega"]}})
    return out


# ---------------------------------------------------------------------- calibrating a table's runs


def calibrate_runs(runs: Sequence[RunBacktest], analogs: Sequence[RunCurve] = (), level: float = LEVEL,
                   source: str = "") -> tuple[ForecastModel, dict[str, list[dict]], dict[str, dict]]:
    """One model for a group of runs: selection on all of them (in-sample: the few weights
    are chosen on the runs whose bands they then set; :func:`evaluate` is the nested check),
    each run's rows banded leaving the run out, and each run's own drift (for its final
    forecast).  Returns (model, rows per run, own drift per run)."""
    T = BacktestTable(runs, analogs)
    calib = np.ones(T.y.size, bool)
    amask = np.ones(len(T.analog_names), bool)
    choice = select_by_activation(T, calib, amask, level)
    model = model_for(T, calib, amask, choice, level, source)
    C = T.candidates(amask)
    own = T.own_drift({k: T.y - C[k] for k in C})
    rows = {rb.run: fill_rows(T, i, model, C, own, calib, amask, level) for i, rb in enumerate(runs)}
    drift = {rb.run: own_drifts_of(T, amask, rb) for rb in runs}
    return model, rows, drift


# ---------------------------------------------------------------------- the packaged default

_DEFAULT: tuple[ForecastModel, list[RunCurve]] | None = None


def default_forecast() -> tuple[ForecastModel, list[RunCurve]]:
    """The packaged forecast model and its analog curves (the published runs' fitted laws)."""
    global _DEFAULT
    if _DEFAULT is None:
        text = resources.files("sparsitylaws.runfit").joinpath(DEFAULT_RESOURCE).read_text("utf-8")
        d = json.loads(text)
        _DEFAULT = (ForecastModel.from_dict(d["model"]), [RunCurve.from_dict(c) for c in d["curves"]])
    return _DEFAULT
