"""Scoring and choosing a forecast configuration on a backtest table.

On a :class:`~sparsitylaws.runfit.backtesttable.BacktestTable`:

* :func:`select` - the candidate weights (a grid on the simplex, step 1/4) and the own-drift
  weight ``beta`` (0, 1/2, 1) chosen on the mean interval score, every run's forecasts
  banded from the *other* runs only (leave one run out), runs weighing equally: the lowest,
  softly (:func:`soft_weights`: configurations within :data:`SOFTNESS` of it share the choice,
  so that it moves continuously with the data), or bagged over Bayesian-bootstrap
  reweightings of the runs (``bags``: measured, not the default); :func:`select_by_activation` the same again for each activation with enough
  runs, and (:func:`select_cross`) the weight of the other activation's scores in its bands;
* :func:`model_for` - the :class:`~sparsitylaws.runfit.forecast.ForecastModel` those choices
  give, its scores the normalized errors of the calibrating runs;
* :func:`own_drifts_of` - a run's own drift over all its backtests (its final forecast's).

The constants of the choice (:data:`BETAS`, :data:`MIN_RUNS`, :data:`LEVEL`, ...) live here;
:mod:`sparsitylaws.runfit.calibration` uses them and re-exports those its callers import.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from sparsitylaws.runfit.backtesttable import BacktestTable, RunBacktest
from sparsitylaws.runfit.forecast import (
    CANDIDATES,
    MATURITY_BW,
    MOVE_SCALE,
    SCALE_MODE,
    SMALLER_ONLY,
    ForecastModel,
    combine,
    error_scale,
)

__all__ = [
    "BAGS",
    "BAG_SEED",
    "BETAS",
    "LEVEL",
    "MIN_RUNS",
    "NEAR_TIE",
    "OMEGAS",
    "SOFTNESS",
    "SMALLER_ONLY",
    "WEIGHT_STEP",
    "bag_weights",
    "model_for",
    "own_drifts_of",
    "run_scores",
    "runner_up",
    "score_config",
    "select",
    "select_by_activation",
    "select_cross",
    "soft_weights",
    "weight_grid",
]

#: Own-drift weights tried: in the point forecast (beta) and in the band's scale (omega).
BETAS = (0.0, 0.5, 1.0)
OMEGAS = (1.0,)  # the run's own (denoised) drift always widens its band: a fixed design choice
MOVES = (MOVE_SCALE,)  # the projected move always widens it too (forecast.MOVE_SCALE)
#: Step of the weight grid on the simplex.
WEIGHT_STEP = 0.25
#: Fewest calibrating runs (besides the one forecast) for a table's own calibration.
MIN_RUNS = 3
LEVEL = 0.9
#: Bayesian-bootstrap reweightings over which a choice is averaged (:func:`select`; 0: one
#: argmin, the default), and their seed.  Bagging was measured in round ten and not kept: it
#: did not make the forecasts move less under 0.001-point noise (benchmarks/forecast_stability.py)
#: and cost two of the ten nested cells (docs/fitting-history.md, round ten (27)).
BAGS = 0
BAG_SEED = 0
#: A choice whose runner-up lies closer than this (relative score) is reported as a near-tie:
#: under 0.001-point noise the gap between the best configuration and each of the next nine
#: moved by up to 1.3% of the best score (lab-gpu ReLU; the published ReLU runs 1.0%; most draws
#: 0.2-0.9%), so a lead smaller than this can be closed by noise (docs/fitting.md, "Continuity").
NEAR_TIE = 0.01
#: Width of the soft choice, relative to the lowest mean interval score: a configuration whose
#: score lies a share g above the lowest weighs max(0, 1 - g / SOFTNESS) (the best weighs 1),
#: and the chosen weights, beta and cross weight are the weighted averages (0: one argmin).
#: Continuous in the scores, and one argmin's choice wherever the best leads by more than
#: SOFTNESS.  Since the scores themselves became continuous (round fourteen), 0.001-point noise
#: moves lab-gpu's by about 0.2%, and its top ReLU configurations lie within 0.06% of each
#: other: one argmin jumped between them (forecasts 0.5-0.8 points in 3 of 5 draws), a choice
#: this wide moves them 0.08 at most; 0.01 gave up a nested cell (lab-cpu's largest runs
#: mixed neighbours into the last value's corner) and an exponential weight at 0.003-0.03 two
#: to three.  Chosen on the reported runs (in-sample; docs/fitting-history.md, round fourteen).
SOFTNESS = 0.005


def weight_grid(names: Sequence[str], step: float = WEIGHT_STEP) -> list[dict[str, float]]:
    """Every weight vector on the simplex over ``names`` with entries multiple of ``step``."""
    m = round(1 / step)
    out = []
    for combo in itertools.product(range(m + 1), repeat=len(names)):
        if sum(combo) == m:
            out.append({n: c * step for n, c in zip(names, combo, strict=True)})
    return out


# ---------------------------------------------------------------------- scoring a configuration


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
    f = combine(C, weights)
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
           omega: float = 0.0, f: np.ndarray | None = None, mu: float = 0.0) -> np.ndarray:
    """S(h) per row; with ``drift`` (per unit: the run's own drift at that cut) the horizon
    scale of a run that has been drifting widens to hold it (:func:`~sparsitylaws.runfit.forecast.run_kappa`);
    with ``f`` (each row's forecast) and ``mu`` the forecast's projected move from its unit's
    level widens it as well (:data:`~sparsitylaws.runfit.forecast.MOVE_SCALE`)."""
    from sparsitylaws.runfit.forecast import kappa_of, run_kappa

    k = np.empty(T.y.size)
    for ri, rb in enumerate(T.runs):
        k[T.row_run == ri] = kappa_of(kappa, rb.activation, rb.n_params)
    if drift is not None and omega:
        k = run_kappa(k, drift[T.row_unit], omega)
    move = f - T.row_level if f is not None and mu else 0.0
    return error_scale(T.sigma, T.h, k, SCALE_MODE, move, mu)


def _unit_quantiles(T: BacktestTable, z: np.ndarray, calib: np.ndarray, targets: np.ndarray,
                    level: float, loro: bool, cross: Mapping[str, float] | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Lower/upper quantiles of z for each target unit from the calibrating rows (same rules as
    :meth:`ForecastModel.quantiles`): maturity kernel, one run one weight, finite-sample
    factor, the other activation's rows weighted by ``cross`` (per target activation,
    :func:`~sparsitylaws.runfit.forecast.cross_factor`); ``loro``: a unit's own run never
    calibrates it."""
    from sparsitylaws.runfit.forecast import cross_factor, sorted_weighted_quantiles

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
    # one weight per calibrating row for each target: its run's share, the other activation's
    # rows scaled by the target activation's cross weight
    t_act = np.array([T.runs[T.unit_run[u]].activation for u in targets], dtype=object)
    base = np.broadcast_to(T.w[o][None, :], (targets.size, o.size)).copy()
    if cross:
        other = T.row_act[o][None, :] != t_act[:, None]
        lam = np.array([cross_factor(cross, a) for a in t_act], float)
        base = np.where(other, base * lam[:, None], base)
    if loro:
        base = base * (T.row_run[o][None, :] != T.unit_run[targets][:, None])
    W = K * base
    # fall back to the unconditioned weights where the kernel leaves (almost) nothing
    thin = W.sum(axis=1) <= 1e-9 * np.maximum(base.sum(axis=1), 1e-300)
    W[thin] = base[thin]
    tot = W.sum(axis=1)
    runs = T.row_run[o]
    ur = np.unique(runs)
    per = np.stack([W[:, runs == r].sum(axis=1) for r in ur], axis=1)
    n_eff = per.sum(axis=1) ** 2 / np.maximum((per**2).sum(axis=1), 1e-300)
    miss = (1.0 - level) / 2.0 * n_eff / (n_eff + 1.0)
    for i in range(targets.size):
        if tot[i] <= 0:
            continue
        on = W[i] > 0  # rows of zero weight are not in the sample (as in weighted_quantile)
        lo[i], hi[i] = sorted_weighted_quantiles(zs[on], W[i][on], (miss[i], 1.0 - miss[i]))
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


def run_scores(T: BacktestTable, C: dict, own: dict, weights: Mapping[str, float], beta: float,
               calib: np.ndarray, level: float = LEVEL, omega: float = 0.0,
               score_rows: np.ndarray | None = None, cross: Mapping[str, float] | None = None,
               mu: float = 0.0) -> dict[int, float]:
    """Per calibrating run (or run of ``score_rows``): the mean interval score of a
    configuration's forecasts, each run's forecasts banded from the other calibrating runs only
    (the other activation's scores weighted by ``cross``; ``mu``: the share of the projected
    move in the scale)."""
    f = _forecast(T, C, own, weights, beta)
    e = T.s * (T.y - f)
    kappa = _kappa(T, e, calib)
    S = _scale(T, kappa, _drift(T, own, weights), omega, f, mu)
    z = e / np.maximum(S, 1e-12)
    units = np.unique(T.row_unit[calib])
    qlo, qhi = _unit_quantiles(T, z, calib, units, level, loro=True, cross=cross)
    pos = np.full(len(T.unit_state), -1)
    pos[units] = np.arange(units.size)
    rows = np.flatnonzero(calib if score_rows is None else calib & score_rows)
    lo, hi = _band(T, f, S, qlo, qhi, rows, pos[T.row_unit[rows]])
    isc = _interval_score(lo, hi, T.y[rows], level)
    return _run_mean(T, rows, isc)


def score_config(T: BacktestTable, C: dict, own: dict, weights: Mapping[str, float], beta: float,
                 calib: np.ndarray, level: float = LEVEL, omega: float = 0.0,
                 score_rows: np.ndarray | None = None, cross: Mapping[str, float] | None = None,
                 mu: float = 0.0) -> float:
    """Mean over the runs of :func:`run_scores` (runs weighing equally); inf without any."""
    per = run_scores(T, C, own, weights, beta, calib, level, omega, score_rows, cross, mu)
    return float(np.mean(list(per.values()))) if per else math.inf


def _first_lowest(scores: Sequence[float]) -> int:
    """Index of the lowest score, ties (to within 1e-12) to the earliest: the grid's order
    breaks them (fewer candidates first; the pooled cross weight first)."""
    best = 0
    for i in range(1, len(scores)):
        if scores[i] < scores[best] - 1e-12:
            best = i
    return best


def soft_weights(scores: Sequence[float], softness: float | None = None) -> np.ndarray:
    """Weights of the soft choice over ``scores`` (lower is better): max(0, 1 - (s - lowest) /
    (softness * lowest)), softness default :data:`SOFTNESS`, normalized; non-finite scores weigh
    0.  Continuous in the scores (a configuration enters at weight 0 as its score comes within
    the width, and two that trade places both weigh about 1 there).  With softness 0 (or a
    lowest score of 0) all weight is on :func:`_first_lowest`'s choice."""
    s = np.asarray(scores, float)
    softness = SOFTNESS if softness is None else float(softness)
    w = np.zeros(s.size)
    fin = np.isfinite(s)
    if not fin.any():
        w[0] = 1.0
        return w
    best = float(np.min(s[fin]))
    t = softness * best
    if t <= 0:
        w[_first_lowest(list(np.where(fin, s, math.inf)))] = 1.0
        return w
    w[fin] = np.maximum(0.0, 1.0 - (s[fin] - best) / t)
    return w / w.sum()


def bag_weights(n_runs: int, bags: int) -> np.ndarray:
    """``bags`` Bayesian-bootstrap reweightings of ``n_runs`` runs (rows of Dirichlet(1, ..., 1)
    weights), from a fixed seed: the same runs always get the same reweightings, so a choice
    averaged over them is a function of the data alone."""
    return np.random.default_rng(BAG_SEED).dirichlet(np.ones(n_runs), size=bags)


def select(T: BacktestTable, calib: np.ndarray, analog_mask: np.ndarray, level: float = LEVEL,
           names: Sequence[str] = CANDIDATES, score_rows: np.ndarray | None = None,
           same_scale: bool = False, moves: Sequence[float] = MOVES, bags: int | None = None) -> dict:
    """The configuration (weights, beta) chosen on the leave-one-run-out mean interval score
    (over the calibrating runs, or those of ``score_rows``): the soft choice, the grid's
    weights, beta, omega and move averaged with :func:`soft_weights` (the lowest alone where it
    leads by more than :data:`SOFTNESS`; with SOFTNESS 0 one argmin, ties to the earlier grid
    entry, fewer candidates first).  ``same_scale``: runs borrow from their replicates as well;
    ``moves``: the shares of the projected move tried in the scale.

    With ``bags`` > 0 (default :data:`BAGS`, 0) the choice is bagged: the configuration is
    chosen again on each of ``bags`` Bayesian-bootstrap reweightings of the runs
    (:func:`bag_weights`) and the winners' weights, beta, omega and move are averaged (one
    argmin jumps between near-tied configurations; the average moves by the share of bags a
    near-tie flips, but more bags sit near one: docs/fitting-history.md, round ten (27)).  ``score``
    is the lowest's, ``bagged`` holds each bag's winner; ``margin`` and ``runner_up`` describe
    the next-best configuration (:func:`runner_up`)."""
    C = T.candidates(analog_mask, SMALLER_ONLY, same_scale)
    own = T.own_drift({k: T.y - C[k] for k in names})
    scored = calib if score_rows is None else calib & score_rows
    avail = [k for k in names if np.isfinite(C[k][scored]).any()]
    grid = sorted(weight_grid(avail), key=lambda w: sum(v > 0 for v in w.values()))
    configs = [(w, beta, omega, mu) for mu in moves for omega in OMEGAS for beta in BETAS for w in grid]
    per = [run_scores(T, C, own, w, beta, calib, level, omega, score_rows, mu=mu) for w, beta, omega, mu in configs]
    runs = sorted(set().union(*per))
    P = np.array([[p.get(r, math.inf) for r in runs] for p in per]).reshape(len(configs), len(runs))
    mean = np.array([float(np.mean(list(p.values()))) if p else math.inf for p in per])
    best = _first_lowest(mean)
    bags = BAGS if bags is None else int(bags)
    if bags and runs and np.isfinite(P).all():
        wins = np.argmin(bag_weights(len(runs), bags) @ P.T, axis=1)
        share = np.bincount(wins, minlength=len(configs)) / wins.size
    else:
        wins = np.array([best])
        share = soft_weights(mean)
    # averages of grid values over the bags or the soft choice, rounded to 1e-10 (the rounding
    # only drops float noise from the stored law set)
    use = np.flatnonzero(share > 0)
    weights: dict[str, float] = {}
    for i in use:
        for k, v in configs[i][0].items():
            weights[k] = weights.get(k, 0.0) + share[i] * v
    weights = {k: round(float(v), 10) for k, v in weights.items()}
    avg = [round(float(sum(share[i] * configs[i][j] for i in use)), 10) for j in (1, 2, 3)]
    return {"weights": {k: v for k, v in weights.items() if v > 0}, "beta": avg[0], "omega": avg[1],
            "move": avg[2], "score": float(mean[best]), "candidates": avail, "grid": len(configs),
            "bagged": [configs[i] for i in wins] if bags else [],
            **runner_up(configs, mean, best, lambda c: _forecast(T, C, own, c[0], c[1])[scored])}


def runner_up(configs: Sequence[tuple], mean: np.ndarray, best: int,
              forecasts: Callable[[tuple], np.ndarray] | None = None) -> dict:
    """The next-best configuration of a choice and its ``margin``: how far its mean interval
    score lies behind the chosen one's, relative to it (``runner_up``: its weights and beta,
    and with ``forecasts`` (a configuration's backtest forecasts) ``stake``, the largest
    difference between the two's backtest forecasts; both absent where no other configuration
    has a finite score).  A margin below :data:`NEAR_TIE` is a near-tie: 0.001-point noise
    moves the gap between two configurations' scores by about that much, so the two can trade
    places (docs/fitting.md, "Continuity"), and the forecasts move by up to the stake."""
    order = [i for i in np.argsort(mean, kind="stable") if i != best and np.isfinite(mean[i])]
    if not order or not math.isfinite(mean[best]) or mean[best] <= 0:
        return {}
    j = int(order[0])
    ru = {"weights": {k: v for k, v in configs[j][0].items() if v > 0}, "beta": float(configs[j][1])}
    if forecasts is not None:
        d = np.abs(forecasts(configs[j]) - forecasts(configs[best]))
        ru["stake"] = float(np.max(d[np.isfinite(d)])) if np.isfinite(d).any() else 0.0
    return {"margin": float((mean[j] - mean[best]) / mean[best]), "runner_up": ru}


def select_by_activation(T: BacktestTable, calib: np.ndarray, analog_mask: np.ndarray,
                         level: float = LEVEL, same_scale: bool = False, moves: Sequence[float] = MOVES) -> dict:
    """:func:`select` on all calibrating runs, and again for each activation with at least
    :data:`MIN_RUNS` calibrating runs (the threshold :func:`calibration_mask` uses), scored on
    that activation's runs alone (bands still calibrated on every run): the combination is the
    default for an activation only where it beats, on that activation's runs, every other
    choice of the grid, the naive forecasts (weight 1 on one of them) included."""
    choice = select(T, calib, analog_mask, level, same_scale=same_scale, moves=moves)
    by, cross = {}, {}
    acts = sorted(set(T.row_act[calib]))
    C = own = None
    for a in acts:
        m = T.row_act == a
        if len(set(T.row_run[calib & m])) >= MIN_RUNS:
            # the move share is the model's, like omega: the activation's choice takes the one chosen
            ca = select(T, calib, analog_mask, level, score_rows=m, same_scale=same_scale,
                        moves=(choice["move"],))
            by[str(a)] = {"weights": ca["weights"], "beta": ca["beta"], "score": ca["score"],
                          **{k: ca[k] for k in ("margin", "runner_up") if k in ca}}
            if len(acts) > 1:
                if C is None:
                    C = T.candidates(analog_mask, SMALLER_ONLY, same_scale)
                    own = T.own_drift({k: T.y - C[k] for k in CANDIDATES})
                lam = select_cross(T, calib, C, own, ca, m, level)
                if lam != 1.0:
                    cross[str(a)] = lam
    return {**choice, "by_activation": by, "same_scale": bool(same_scale), "cross": cross}


def select_cross(T: BacktestTable, calib: np.ndarray, C: dict, own: dict, config: Mapping,
                 score_rows: np.ndarray, level: float = LEVEL) -> float:
    """The weight (of :data:`~sparsitylaws.runfit.forecast.CROSS_WEIGHTS`) of the other
    activation's calibration scores in the bands of ``score_rows``' activation with the lowest
    leave-one-run-out mean interval score on that activation's runs, for the configuration
    chosen there (``C``, ``own``: the candidates and own drifts it was chosen on), chosen
    softly as :func:`select` chooses (:func:`soft_weights`; one argmin at SOFTNESS 0, ties to
    the earlier, pooled, weight).  A bagged choice (``config["bagged"]``, :func:`select`) picks
    the weight again in each bag, for that bag's winner and with its reweighting of the runs,
    and averages them."""
    from sparsitylaws.runfit.forecast import CROSS_WEIGHTS

    act = str(T.row_act[np.flatnonzero(score_rows)[0]])
    bagged = list(config.get("bagged") or [])
    winners = bagged or [(config["weights"], config["beta"], config.get("omega", OMEGAS[0]),
                          config.get("move", MOVES[0]))]
    keys = [(tuple(sorted(w.items())), beta, omega, mu) for w, beta, omega, mu in winners]
    tables: dict[tuple, list[dict[int, float]]] = {}
    for key, (w, beta, omega, mu) in zip(keys, winners, strict=True):
        if key not in tables:
            tables[key] = [run_scores(T, C, own, w, beta, calib, level, omega, score_rows, {act: lam}, mu)
                           for lam in CROSS_WEIGHTS]
    runs = sorted(set().union(*(p for t in tables.values() for p in t)))
    W = bag_weights(len(runs), len(bagged)) if bagged else np.ones((1, len(runs))) / max(len(runs), 1)
    lams = []
    for b, key in enumerate(keys):
        sc = [float(W[b] @ np.array([p.get(r, math.inf) for r in runs])) for p in tables[key]]
        if bagged:
            lams.append(CROSS_WEIGHTS[_first_lowest(sc)])
        else:  # the soft choice over the cross weights, at the configuration's temperature
            lams.append(float(soft_weights(sc) @ np.asarray(CROSS_WEIGHTS, float)))
    return round(float(np.mean(lams)), 10)


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
    """The forecast model of a configuration: kappa and the scores of the calibrating rows
    (the pooled candidates borrowing as ``choice["same_scale"]`` says)."""
    same_scale = bool(choice.get("same_scale", False))
    C = T.candidates(analog_mask, SMALLER_ONLY, same_scale)
    own = T.own_drift({k: T.y - C[k] for k in C})
    f, dr = _forecast_rows(T, C, own, choice)
    e = T.s * (T.y - f)
    kappa = _kappa(T, e, calib)
    omega = float(choice.get("omega", 0.0))
    mu = float(choice.get("move", 0.0))
    z = e / np.maximum(_scale(T, kappa, dr, omega, f, mu), 1e-12)
    rows = np.flatnonzero(calib & np.isfinite(z))
    scores = [(T.names[T.row_run[i]], float(T.unit_tau[T.row_unit[i]]), float(z[i]), float(T.w[i]))
              for i in rows]
    sel = {k: v for k, v in choice.items() if k in ("score", "candidates", "grid", "margin", "runner_up")}
    cross = {str(a): float(v) for a, v in (choice.get("cross") or {}).items()}
    score_act = {T.names[ri]: T.runs[ri].activation for ri in np.unique(T.row_run[rows])} if cross else {}
    h_max = float(np.max(T.h[rows])) if rows.size else math.nan
    return ForecastModel(dict(choice["weights"]), float(choice["beta"]), kappa, scores, level, source, sel,
                         h_max, SCALE_MODE, omega,
                         {a: {"weights": dict(c["weights"]), "beta": float(c["beta"]),
                              **{k: c[k] for k in ("margin", "runner_up") if k in c}}
                          for a, c in (choice.get("by_activation") or {}).items()}, same_scale,
                         cross, score_act, mu)


def own_drifts_of(T: BacktestTable, analog_mask: np.ndarray, rb: RunBacktest, same_scale: bool = False
                  ) -> dict[str, float]:
    """The run's own drift over all its backtests (what its final forecast uses), per candidate."""
    ri = T.names.index(rb.run)
    C = T.candidates(analog_mask, SMALLER_ONLY, same_scale)
    out = {}
    from sparsitylaws.runfit.forecast import denoised_drift

    sig = np.where(np.isfinite(T.sigma), T.sigma, 0.0)
    for k in C:
        z = T.s * (T.y - C[k]) / np.maximum(T.h, 1e-9)
        m = (T.row_run == ri) & np.isfinite(z) & (T.h > 0)
        out[k] = denoised_drift(z[m], sig[m] / T.h[m]) if m.any() else math.nan
    return out
