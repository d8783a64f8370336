"""Cross-scale check: fit the scale trends on some runs and score the predicted curves of
held-out runs against their measurements."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sparsitylaws.architecture.common import METHODS, _num
from sparsitylaws.architecture.compose import predict_section
from sparsitylaws.architecture.runs import summarize_run
from sparsitylaws.architecture.scale import fit_scale_trends
from sparsitylaws.architecture.section import _ranges, assemble_section
from sparsitylaws.errors import FitInputError


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
