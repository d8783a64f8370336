"""Cross-scale check: fit the scale trends on some runs and score the predicted curves of
held-out runs against their measurements."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sparsitylaws.architecture.common import DEFAULT_METHOD, METHODS, _num
from sparsitylaws.architecture.compose import predict_section
from sparsitylaws.architecture.runs import summarize_run
from sparsitylaws.architecture.scale import fit_scale_trends
from sparsitylaws.architecture.section import _ranges, assemble_section, attach_curve
from sparsitylaws.errors import FitInputError
from sparsitylaws.runfit.backtest import interval_score


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
    method: str = DEFAULT_METHOD,
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
    for s in summ.values():
        if s.n_params is not None:
            attach_curve(s, points)
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
        lo, hi = pr.get("pred_low", pr["ratio_low"]), pr.get("pred_high", pr["ratio_high"])
        rows.append({
            "run": name, "activation": ts.activation, "method": method, "method_used": pr["method"],
            "n_params": ts.n_params,
            "train_runs": ",".join(r.name for r in tr), "n_points": int(D.size),
            "tokens_b_min": float(D.min()), "tokens_b_max": float(D.max()),
            "mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2))),
            "max_abs_error": float(np.max(np.abs(err))), "bias": float(np.mean(err)),
            "coverage_curve": float(np.mean((y >= pr["ratio_low"]) & (y <= pr["ratio_high"]))),
            "coverage_point": float(np.mean((y >= pr["pred_low"]) & (y <= pr["pred_high"])))
            if "pred_low" in pr else math.nan,
            "mean_band_width": float(np.mean(hi - lo)),
            "interval_score": float(np.mean(interval_score(lo, hi, y, level))),
            "n_clamped": int(np.sum(pr["floor"] | pr["ceiling"])),
            "a0_predicted": float(pr["a0"][0]), "a0_low": float(pr["a0_low"][0]),
            "a0_high": float(pr["a0_high"][0]), "a0_fitted": ts.a0,
            "level": level, "warnings": "; ".join(trend.warnings),
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

    Fits each named run's paper law with :func:`sparsitylaws.runfit.run.fit_run` (automatic
    warm-up average, ``n_boot`` bootstrap replicates), takes width, depth and n_params from the
    table, and returns :func:`cross_scale_check` rows for every method in ``methods``.
    The table must hold one metric (select it first, as ``crosscheck --metric`` does).
    """
    fits, info = _fit_runs(table, list(train) + list(test), n_boot=n_boot, seed=seed)
    frames = [cross_scale_check(fits, info, table, train=train, test=test, level=level, seed=seed,
                                method=m) for m in methods]
    return pd.concat(frames, ignore_index=True)


def _fit_runs(table: pd.DataFrame, names: Sequence[str], *, n_boot: int, seed: int) -> tuple[dict, dict]:
    """Fit each named run's paper law (automatic warm-up average); architecture from the table."""
    from sparsitylaws.runfit.run import fit_run

    need = {"run", "tokens", "activation_ratio", "activation", "n_params"}
    missing = need - set(table.columns)
    if missing:
        raise FitInputError(f"cross-scale check: table lacks column(s) {sorted(missing)}")
    if "metric" in table.columns and table["metric"].nunique() > 1:
        raise FitInputError(
            "cross-scale check: the table mixes metrics "
            f"({', '.join(sorted(map(str, table['metric'].unique())))}); select one first")
    fits, info = {}, {}
    for name in names:
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
    return fits, info


# ---------------------------------------------------------------- leave one scale out

#: The naive forecast scored beside the methods (the nearest-scale baseline is the method
#: ``nearest``, with its band calibrated on the training scales' steps).
NAIVE = ("largest_final",)
#: Budget positions scored on each held-out run: its first kept point, the middle one, the last.
POSITIONS = ("early", "middle", "last")


def scale_series(summaries: Sequence[Any]) -> list[Any]:
    """One run per scale, as the scale laws take them: runs within 0.1 decades of each
    other are one scale, and of a group with several width/depth ratios (a sweep) the run
    nearest the other runs' median ratio is kept (sparsitylaws.architecture.section)."""
    from sparsitylaws.architecture.section import _cluster_scales

    groups = _cluster_scales(summaries)
    others = [s.ratio for g in groups if len(g) == 1 for s in g if s.ratio]
    every = [s.ratio for s in summaries if s.ratio]
    target = float(np.median(others)) if others else (float(np.median(every)) if every else None)
    out = []
    for g in groups:
        if len(g) > 1 and target is not None:
            g = [min(g, key=lambda s, t=target: abs((s.ratio or t) - t))]
        out.extend(g)
    return out


def leave_one_scale_out(
    runfits: Mapping[str, Any],
    run_info: Mapping[str, Mapping],
    points: pd.DataFrame | Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    runs: Sequence[str] | None = None,
    methods: Sequence[str] = METHODS,
    level: float = 0.9,
    n_draws: int = 1000,
    seed: int = 0,
    series: bool = True,
) -> pd.DataFrame:
    """Leave-one-scale-out yardstick: per activation, predict each scale run from the others.

    The runs of an activation are first reduced to one run per scale (``series``:
    :func:`scale_series`, the runs the scale laws use).  For every held-out run, at its first
    kept, middle and last measured budgets, each method's band for a single measured point
    (the section's draws plus the training runs' pooled point noise) is scored next to the
    naive ``largest_final``: the largest training run's last measured value, its band the
    range of the training runs' last values widened by the pooled point noise.  ``auto``
    makes its nested choice on the training runs of each fold only.  The nearest-scale
    baseline is the method ``nearest``.

    Rows: activation, held_out, position, tokens, measured, method, method_used, predicted,
    low, high, error, covered, width, interval_score, train_runs, warnings.
    """
    from scipy import stats

    names = list(runs) if runs is not None else list(runfits)
    summ = {n: summarize_run(n, runfits[n], run_info.get(n, {})) for n in names}
    by_act: dict[str, list] = {}
    for s in summ.values():
        if s.n_params is None:
            raise FitInputError(f"leave-one-scale-out: run {s.name!r} has no n_params")
        attach_curve(s, points)
        by_act.setdefault(s.activation, []).append(s)
    z = stats.norm.ppf(0.5 + level / 2)
    rows = []
    for act, ss in sorted(by_act.items()):
        ss = sorted(scale_series(ss) if series else ss, key=lambda s: s.n_params)
        if len(ss) < 2:
            continue
        for h in ss:
            tr = [s for s in ss if s is not h]
            trend = fit_scale_trends(tr, level=level, n_draws=n_draws, seed=seed)
            sec = assemble_section({act: {"scale": trend.to_dict(), "widthdepth": None,
                                          "ranges": _ranges(tr, None), "caveats": []}},
                                   n_draws=n_draws, seed=seed)
            tok, y = _points_of(points, h.name)
            D = tok / 1e9
            if np.isfinite(h.tokens_b[0]):
                keep = h.tokens_b[0] * (1 - 1e-9) <= D
                D, y = D[keep], y[keep]
            idx = {"early": 0, "middle": (D.size - 1) // 2, "last": D.size - 1}
            Dp = np.array([D[idx[p]] for p in POSITIONS])
            yp = np.array([y[idx[p]] for p in POSITIONS])
            sig = trend.sigma or 0.0
            preds = {}
            for m in methods:
                pr = predict_section(sec, act, h.n_params, h.ratio or 0.0, Dp, level=level,
                                     noise_sd=sig, seed=seed, method=m)
                preds[m] = (pr["ratio"], pr["pred_low"], pr["pred_high"], pr["method"])
            finals = np.array([_points_of(points, s.name)[1][-1] for s in tr])
            big_final = float(_points_of(points, tr[-1].name)[1][-1])
            pad = z * sig
            preds["largest_final"] = (np.full(3, big_final), np.full(3, finals.min() - pad),
                                      np.full(3, finals.max() + pad), "largest_final")
            for m, (pt, lo, hi, used) in preds.items():
                lo = np.clip(np.minimum(lo, pt), 0.0, 1.0)
                hi = np.clip(np.maximum(hi, pt), 0.0, 1.0)
                for k, pos in enumerate(POSITIONS):
                    rows.append({
                        "activation": act, "held_out": h.name, "n_params": h.n_params,
                        "position": pos, "tokens": Dp[k] * 1e9, "measured": yp[k], "method": m,
                        "method_used": used, "predicted": pt[k], "low": lo[k], "high": hi[k],
                        "error": pt[k] - yp[k], "covered": bool(lo[k] <= yp[k] <= hi[k]),
                        "width": hi[k] - lo[k],
                        "interval_score": float(interval_score(lo[k], hi[k], yp[k], level)),
                        "train_runs": ",".join(s.name for s in tr),
                        "warnings": "; ".join(trend.warnings), "level": level,
                    })
    if not rows:
        raise FitInputError("leave-one-scale-out: needs at least 2 runs of one activation")
    return pd.DataFrame(rows)


def loso_summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per activation, position and method: MAE (pp), bias (pp), coverage (fraction of
    held-out points inside the band), mean band width (pp) and mean interval score (pp)."""
    g = rows.groupby(["activation", "position", "method"], sort=False)
    out = g.agg(n=("error", "size"), mae_pp=("error", lambda e: 100 * np.mean(np.abs(e))),
                bias_pp=("error", lambda e: 100 * np.mean(e)),
                coverage=("covered", "mean"), width_pp=("width", lambda w: 100 * np.mean(w)),
                interval_score_pp=("interval_score", lambda s: 100 * np.mean(s))).reset_index()
    return out


def loso_overall(rows: pd.DataFrame) -> pd.DataFrame:
    """Per activation and method, over every held-out run and budget: n, MAE (pp), bias (pp),
    coverage, mean width (pp) and mean interval score (pp)."""
    out = loso_summary(rows.assign(position="all"))
    return out.drop(columns="position")


def series_runs(table: pd.DataFrame) -> list[str]:
    """The runs of a one-metric table that :func:`scale_series` keeps, per activation,
    from the table's own width, depth and n_params (no fitting needed)."""
    from types import SimpleNamespace

    out = []
    for _act, g in table.groupby(table["activation"].astype(str).str.lower()):
        runs = []
        for name, r in g.groupby("run"):
            first = r.iloc[0]
            w, d, n = (_num(first.get(k)) for k in ("width", "depth", "n_params"))
            runs.append(SimpleNamespace(name=str(name), n_params=n, ratio=(w / d) if w and d else None))
        out += [s.name for s in scale_series([s for s in runs if s.n_params])]
    return sorted(out)


def loso_from_table(table: pd.DataFrame, *, runs: Sequence[str] | None = None,
                    methods: Sequence[str] = METHODS, n_boot: int = 300, level: float = 0.9,
                    seed: int = 0, n_draws: int = 1000) -> pd.DataFrame:
    """:func:`leave_one_scale_out` straight from a one-metric measurement table: fits only
    the runs of each activation's scale series (:func:`series_runs`), or ``runs``."""
    names = list(runs) if runs else series_runs(table)
    fits, info = _fit_runs(table, names, n_boot=n_boot, seed=seed)
    return leave_one_scale_out(fits, info, table, runs=names, methods=methods, level=level,
                               seed=seed, n_draws=n_draws)
