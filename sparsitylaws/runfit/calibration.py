"""Naive bands, the nested evaluation, and calibrating a table's runs.

The backtest table is :mod:`sparsitylaws.runfit.backtesttable`, scoring and choosing a
configuration (weights, ``beta``) on it :mod:`sparsitylaws.runfit.selection`; this module
re-exports the names its callers import from it (:class:`RunBacktest`, :class:`BacktestTable`,
:func:`weight_grid`, :func:`select`, :func:`model_for`, :data:`BETAS`, :data:`LEVEL`,
:data:`MIN_RUNS`).  Here:

* :func:`fill_rows` - a run's rows banded by a model calibrated without it, beside the naive
  forecasts: last value, local line, nearest run at equal tokens per parameter, each with a
  band calibrated the same way and with the reviewer's (normalized split conformal on
  |error| / horizon, :func:`conformal_q`); :func:`apply_model` a run's rows under a model
  calibrated elsewhere; :func:`summarize` the mean interval score and coverage per method;
* :func:`evaluate` - the nested check: for each held-out group (one run, or every run of the
  largest scale), selection and calibration on the other runs alone (analogs too), then the
  held-out runs' forecasts scored beside the naive ones;
* :func:`calibrate_runs` - one model for a group of runs, each run's rows banded leaving it out;
* :func:`use_default_forecast` - another default for a block (a check of the lone-run path
  out of sample rebuilds it without the run it forecasts);
* :func:`default_forecast` - the packaged default model (``forecast_default.json``, built from
  the paper's published runs by :mod:`sparsitylaws.runfit.packaged`).

Each run counts once in every calibration (its forecasts equally, their later points
equally): 380 dependent points of eight runs are eight runs' worth of evidence, not 380.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from importlib import resources
from typing import Any

import numpy as np

from sparsitylaws.runfit.backtesttable import BacktestTable, RunBacktest
from sparsitylaws.runfit.forecast import (
    SMALLER_ONLY,
    CutState,
    ForecastModel,
    RunCurve,
    band_on_grid,
    candidates,
    has_older_replicate,
    kappa_of,
    run_kappa,
)
from sparsitylaws.runfit.selection import (
    BETAS,
    LEVEL,
    MIN_RUNS,
    MOVES,
    _drift,
    _interval_score,
    _kappa,
    _scale,
    _unit_quantiles,
    model_for,
    own_drifts_of,
    select,
    select_by_activation,
    weight_grid,
)

__all__ = [
    "BETAS",
    "DEFAULT_RESOURCE",
    "BacktestTable",
    "RunBacktest",
    "default_forecast",
    "use_default_forecast",
    "evaluate",
    "model_for",
    "select",
    "weight_grid",
]

DEFAULT_RESOURCE = "forecast_default.json"


# ---------------------------------------------------------------------- naive bands and evaluation


def conformal_q(values: np.ndarray, weights: np.ndarray | None, level: float) -> float:
    """Weighted split-conformal quantile of |error| / horizon (the reviewer's naive band)."""
    from sparsitylaws.runfit.forecast import weighted_quantile

    v = np.asarray(values, float)
    w = np.ones(v.size) if weights is None else np.asarray(weights, float)
    return weighted_quantile(v, w, level)


def _combined_candidates(T: BacktestTable, analog_mask: np.ndarray, same_scale: bool = False
                         ) -> tuple[dict, dict]:
    """Each row's candidates as the combined forecast makes them (pooled ones from smaller runs
    only, :data:`~sparsitylaws.runfit.forecast.SMALLER_ONLY`, and from replicates as well where
    ``same_scale``) and each unit's own drift of each."""
    C = T.candidates(analog_mask, SMALLER_ONLY, same_scale)
    return C, T.own_drift({k: T.y - C[k] for k in C})


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
    left out; ``C`` and ``own`` its candidates and own drifts, borrowing from smaller runs
    only, as :func:`_combined_candidates` gives them), and the law alone and the naive
    forecasts (last value, local line, nearest run at equal tokens per parameter, whatever its
    size) each with a band calibrated the same way on the other calibrating runs, and with the
    reviewer's symmetric +-q h band (q the split-conformal quantile of |error| / h)."""
    analogs = [c for c, m in zip(T.curves, analog_mask, strict=True) if m]
    res = _combined_rows(T, ri, model, C, own, analogs, T.names[ri], level)
    # the reviewer's nearest run may be larger than the one forecast
    C = {**C, "nearest": T.candidates(analog_mask)["nearest"]}
    own = {**own, **T.own_drift({"nearest": T.y - C["nearest"]})}
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
        # drift widens the band; its move scale: so does the candidate's projected move), so the comparison is of forecasts, not of band recipes
        kap = _kappa(T, e, others & np.isfinite(f))
        S = _scale(T, kap, _drift(T, own, {name: 1.0}), model.omega, f, model.move)
        z = e / np.maximum(S, 1e-12)
        qlo, qhi = _unit_quantiles(T, z, others, units, level, loro=False, cross=model.cross)
        lo, hi = _naive_band(T, rows, name, kap, own[name], qlo[pos[T.row_unit[rows]]], qhi[pos[T.row_unit[rows]]],
                             analogs, model)
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


def _naive_band(T: BacktestTable, rows: np.ndarray, name: str, kappa: Mapping[str, dict], drift: np.ndarray,
                qlo: np.ndarray, qhi: np.ndarray, analogs: Sequence[RunCurve], model: ForecastModel
                ) -> tuple[np.ndarray, np.ndarray]:
    """Low and high ends at ``rows`` of the naive forecast ``name`` banded exactly as the
    combined forecast is (:func:`~sparsitylaws.runfit.forecast.band_on_grid`: the same scale,
    the quantiles ``qlo``/``qhi`` of each row's unit, monotone ends), so that the comparison is
    of forecasts, not of band recipes.  The nearest run may be larger than the one forecast
    (the reviewer's ruler); ``drift``: each unit's own drift of the candidate."""
    lo, hi = np.empty(rows.size), np.empty(rows.size)
    units = T.row_unit[rows]
    for u in np.unique(units):
        j = np.flatnonzero(units == u)
        st = T.unit_state[u]
        k = run_kappa(kappa_of(kappa, st.activation, st.n_params), drift[u], model.omega)

        def point(dd: np.ndarray, st: CutState = st) -> np.ndarray:
            # only the nearest run needs the analogs (any size); the run's own candidates do not,
            # so they are not pooled on every grid point for nothing
            return candidates(st, dd, analogs if name == "nearest" else (), smaller_only=False)[name]

        b = band_on_grid(st, T.d[rows[j]], point, float(k), float(qlo[j[0]]), float(qhi[j[0]]),
                         model.scale_mode, model.move)
        lo[j], hi[j] = b["low"], b["high"]
    return lo, hi


def apply_model(rb: RunBacktest, model: ForecastModel, curves: Sequence[RunCurve],
                level: float = LEVEL) -> tuple[list[dict], dict[str, float]]:
    """A run's rows banded by a model calibrated elsewhere (the packaged default), with the
    given analog curves, and the run's own drift for its final forecast."""
    T = BacktestTable([rb], curves)
    amask = np.array([n != rb.run for n in T.analog_names])
    C, own = _combined_candidates(T, amask, model.same_scale)
    analogs = [c for c, m in zip(T.curves, amask, strict=True) if m]
    return (_combined_rows(T, 0, model, C, own, analogs, rb.run, level),
            own_drifts_of(T, amask, rb, model.same_scale))


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


def summarize_runs(runs: Mapping[str, Any], activation: str, level: float = LEVEL) -> dict:
    """:func:`summarize` of the calibrated backtest rows at the reported cuts of every run of
    ``activation`` in ``runs`` (name -> a fit with ``activation`` and ``backtest``, e.g. a law
    set's runs); empty when none has any."""
    from sparsitylaws.runfit.backtest import REPORTED_CUTOFFS

    rows = [{**r, "run": n} for n in sorted(runs) if runs[n].activation == activation
            for r in runs[n].backtest if r.get("predicted") is not None]
    return summarize(rows, level, REPORTED_CUTOFFS) if rows else {}


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
        # forecasts with a replicate older than their cut borrow from it, under a model selected
        # and calibrated on backtests that borrowed the same way (a held-out run whose
        # replicates are held out too has none)
        held_units = np.flatnonzero(np.isin(T.unit_run, list(held)))
        same = bool(held_units.size and T.older_replicate(amask, held_units).all())
        choice = select_by_activation(T, calib, amask, level, same)
        model = model_for(T, calib, amask, choice, level)
        C, own = _combined_candidates(T, amask, same)
        act = T.runs[next(iter(held))].activation
        used = (choice["by_activation"].get(act) or choice)
        for ri in sorted(held):
            for r in fill_rows(T, ri, model, C, own, calib, amask, level):
                out.append({**r, "run": T.names[ri], "fold": list(g_all),
                            "choice": {"weights": used["weights"], "beta": used["beta"],
                                       "omega": choice["omega"], "cross": model.cross_for(act)}})
    return out


# ---------------------------------------------------------------------- calibrating a table's runs


def calibrate_runs(runs: Sequence[RunBacktest], analogs: Sequence[RunCurve] = (), level: float = LEVEL,
                   source: str = "", moves: Sequence[float] = MOVES
                   ) -> tuple[ForecastModel, dict[str, list[dict]], dict[str, dict], dict[str, ForecastModel]]:
    """One model for a group of runs: selection on all of them (in-sample: the few weights
    are chosen on the runs whose bands they then set; :func:`evaluate` is the nested check),
    each run's rows banded leaving the run out, and each run's own drift (for its final
    forecast).  A run whose final forecast has a replicate with data past it
    (:func:`~sparsitylaws.runfit.forecast.has_older_replicate`: a run in progress beside a
    finished seed) takes a second model, selected and calibrated on backtests that borrowed
    from replicates too, for its rows and its forecast.  Returns (model, rows per run, own
    drift per run, the model of each run).  ``moves``: the shares of the projected move tried
    in the band's scale (:data:`~sparsitylaws.runfit.forecast.MOVE_SCALE`)."""
    T = BacktestTable(runs, analogs)
    calib = np.ones(T.y.size, bool)
    amask = np.ones(len(T.analog_names), bool)
    older = [rb.final is not None and has_older_replicate(rb.final, T.curves) for rb in runs]
    rows, drift, models = {}, {}, {}
    base: ForecastModel | None = None
    for same in (False, True):
        members = [i for i in range(len(runs)) if older[i] == same]
        if same and not members:
            break
        choice = select_by_activation(T, calib, amask, level, same, moves)
        model = model_for(T, calib, amask, choice, level, source)
        if not same:
            base = model
        C, own = _combined_candidates(T, amask, same)
        for i in members:
            rb = runs[i]
            rows[rb.run] = fill_rows(T, i, model, C, own, calib, amask, level)
            drift[rb.run] = own_drifts_of(T, amask, rb, same)
            models[rb.run] = model
    assert base is not None
    return base, rows, drift, models


# ---------------------------------------------------------------------- the packaged default

_DEFAULT: tuple[ForecastModel, list[RunCurve]] | None = None
#: A default put in force by :func:`use_default_forecast`, per thread and task (a context
#: variable: a block in one thread never changes what a fit in another falls back on).
_OVERRIDE: ContextVar[tuple[ForecastModel, list[RunCurve]] | None] = ContextVar("forecast_default", default=None)


def default_forecast() -> tuple[ForecastModel, list[RunCurve]]:
    """The packaged forecast model and its analog curves (the published runs' fitted laws), or
    the one :func:`use_default_forecast` put in force in this context."""
    global _DEFAULT
    override = _OVERRIDE.get()
    if override is not None:
        return override
    if _DEFAULT is None:
        text = resources.files("sparsitylaws.runfit").joinpath(DEFAULT_RESOURCE).read_text("utf-8")
        d = json.loads(text)
        _DEFAULT = (ForecastModel.from_dict(d["model"]), [RunCurve.from_dict(c) for c in d["curves"]])
    return _DEFAULT


@contextmanager
def use_default_forecast(model: ForecastModel, curves: Sequence[RunCurve]) -> Iterator[None]:
    """Within the block, fits that fall back on the packaged default (a lone run, too few runs
    of a recipe) use ``model`` and ``curves`` instead; the packaged one is back afterwards.
    Scoped to the current thread (or asyncio task): other threads keep the packaged default."""
    token = _OVERRIDE.set((model, list(curves)))
    try:
        yield
    finally:
        _OVERRIDE.reset(token)
