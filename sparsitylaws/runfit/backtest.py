"""Choosing between law forms and testing them forward in time.

* :func:`information_criteria` - AIC, AICc and BIC of a least-squares fit with Gaussian
  errors; the noise variance counts as a parameter (k + 1 in total).
* :func:`compare_forms` - fits every form to the *same* points and ranks them by AICc, with
  Akaike weights exp(-dAICc/2) / sum.
* :func:`backtest` - rolling origin: for each cutoff fraction f (0.3, 0.5, 0.7 by default) of
  the run's token range, t_cut = D_first + f * (D_last - D_first): refit on the points with
  D <= t_cut (the warm-up rule re-applied to that subset alone, so nothing from the future
  leaks in), forecast every later point with the law's band and the two naive forecasts (last
  value carried forward; straight line in ln D through the last third of the fitted points),
  and record the horizon, forecast scale and score that calibrate forecast bands
  (:mod:`sparsitylaws.runfit.forecast`).  :func:`calibrate_backtest` fills the calibrated bands,
  coverage and interval scores (Gneiting & Raftery 2007, :func:`interval_score`);
  :func:`backtest_skill` compares the law with the naive forecasts per cutoff;
  :func:`backtest_summary` condenses the rows per cutoff.

All D in billions of tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sparsitylaws.runfit.forms import FORMS, LawForm, get_form
from sparsitylaws.runfit.pointfit import fit_points_fast, select_points
from sparsitylaws.runfit.uncertainty import ar_inflation, bootstrap, curve_bands

__all__ = [
    "DEFAULT_CUTOFFS",
    "backtest",
    "backtest_skill",
    "backtest_summary",
    "calibrate_backtest",
    "interval_score",
    "naive_forecasts",
    "naive_predict",
    "compare_forms",
    "information_criteria",
]

DEFAULT_CUTOFFS = (0.3, 0.5, 0.7)


def information_criteria(rss: float, n: int, k: int) -> dict[str, float | None]:
    """AIC, AICc, BIC for n points, k curve parameters (+1 for the noise variance).

    AIC = n log(RSS/n) + 2p, AICc = AIC + 2p(p+1)/(n-p-1), BIC = n log(RSS/n) + p log n, p = k+1.
    AICc is None when n <= p + 1; all are None when RSS <= 0.
    """
    p = k + 1
    if not (rss > 0 and n > 0 and math.isfinite(rss)):
        return {"aic": None, "aicc": None, "bic": None}
    ll = n * math.log(rss / n)
    aic = ll + 2 * p
    aicc = aic + 2 * p * (p + 1) / (n - p - 1) if n - p - 1 > 0 else None
    return {"aic": aic, "aicc": aicc, "bic": ll + p * math.log(n)}


def compare_forms(D: np.ndarray, y: np.ndarray, *, forms: Sequence[str] | None = None,
                  sw: np.ndarray | None = None, loss: str = "linear",
                  given: dict[str, float] | None = None) -> list[dict]:
    """Fit each form to the same points; rows sorted by AICc with delta AICc and Akaike weights.

    ``given`` maps a form name to an RSS already computed (the headline fit), reused as is.
    Forms with more parameters than n - 1 points are skipped.
    """
    D, y = np.asarray(D, float), np.asarray(y, float)
    rows = []
    for name in forms or list(FORMS):
        form = get_form(name)
        if D.size <= form.n_params:
            continue
        if given and name in given:
            rss, conv = float(given[name]), True
        else:
            pf = fit_points_fast(form, D, y, sw=sw, loss=loss)
            rss, conv = pf.rss, pf.converged
        ic = information_criteria(rss, D.size, form.n_params)
        rows.append({"form": name, "k": form.n_params, "n": int(D.size), "rss": rss,
                     "rmse": math.sqrt(rss / D.size), **ic, "converged": bool(conv)})
    finite = [r["aicc"] for r in rows if r["aicc"] is not None]
    best = min(finite) if finite else None
    tot = sum(math.exp(-(a - best) / 2) for a in finite) if finite else 0.0
    for r in rows:
        if r["aicc"] is None or best is None:
            r["delta_aicc"], r["akaike_weight"] = None, None
        else:
            r["delta_aicc"] = r["aicc"] - best
            r["akaike_weight"] = math.exp(-r["delta_aicc"] / 2) / tot
    rows.sort(key=lambda r: (r["aicc"] is None, r["aicc"] if r["aicc"] is not None else 0.0))
    return rows


def naive_forecasts(D_fit: np.ndarray, y_fit: np.ndarray) -> dict[str, float]:
    """The two naive forecasts' parameters from fitted points: last value, and a straight line
    y = a + b ln D through the last third of the points (at least 3, by D)."""
    D_fit, y_fit = np.asarray(D_fit, float), np.asarray(y_fit, float)
    order = np.argsort(D_fit, kind="stable")
    D_fit, y_fit = D_fit[order], y_fit[order]
    m = min(D_fit.size, max(3, math.ceil(D_fit.size / 3)))
    x = np.log(D_fit[-m:])
    if m >= 2 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y_fit[-m:], 1)
    else:
        slope, intercept = 0.0, float(y_fit[-1])
    return {"last_value": float(y_fit[-1]), "line_intercept": float(intercept),
            "line_slope": float(slope), "line_points": int(m)}


def naive_predict(naive: dict, D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(last value carried forward, local line) at D (billions)."""
    d = np.asarray(D, float)
    last = np.full(d.shape, float(naive["last_value"]))
    line = float(naive["line_intercept"]) + float(naive["line_slope"]) * np.log(d)
    return last, line


def interval_score(low: np.ndarray | float, high: np.ndarray | float, x: np.ndarray | float,
                   level: float) -> np.ndarray:
    """Interval score of Gneiting & Raftery (2007, JASA 102, eq. 43): width plus 2/alpha times
    the miss, alpha = 1 - level; lower is better."""
    lo, hi, x = (np.asarray(v, float) for v in (low, high, x))
    a = 1.0 - float(level)
    return (hi - lo) + (2.0 / a) * np.maximum(lo - x, 0.0) + (2.0 / a) * np.maximum(x - hi, 0.0)


def backtest(D: np.ndarray, y: np.ndarray, form: LawForm | str, *,
             cutoffs: Sequence[float] = DEFAULT_CUTOFFS, se: np.ndarray | None = None,
             loss: str = "linear", drop_first: int | None = None, min_tokens: float | None = None,
             n_boot: int = 1000, level: float = 0.9, seed: int = 0) -> list[dict]:
    """Rows, one per held-out point and cutoff: truth, law forecast and band, naive forecasts.

    ``law_low``/``law_high`` is the law's own prediction band (parameters and point noise);
    ``scale`` and ``score`` feed the forecast calibration (:mod:`sparsitylaws.runfit.forecast`), which
    fills ``pred_low``/``pred_high``/``covered`` (:func:`calibrate_backtest`).  Until then they
    equal the law's band.
    """
    from sparsitylaws.runfit.forecast import forecast_scale, horizon, score

    form = get_form(form)
    D, y = np.asarray(D, float), np.asarray(y, float)
    sw_all = np.ones(D.size) if se is None else 1.0 / np.asarray(se, float)
    lo_t, hi_t = float(np.min(D)), float(np.max(D))
    rows: list[dict] = []
    for f in cutoffs:
        t_cut = lo_t + float(f) * (hi_t - lo_t)
        train = t_cut >= D
        sel = select_points(form, D[train], y[train], sw=sw_all[train], drop_first=drop_first,
                            min_tokens=min_tokens)
        Dt, yt, swt = D[train][sel.keep], y[train][sel.keep], sw_all[train][sel.keep]
        if Dt.size <= form.n_params or not np.any(~train):
            continue
        pf = fit_points_fast(form, Dt, yt, sw=swt, loss=loss)
        bs = bootstrap(pf, n_boot, seed)
        held = np.flatnonzero(~train)
        dof = ar_inflation(pf)["dof_eff"] if pf.dof > 0 else pf.dof  # as RunFit.predict
        b = curve_bands(form, D[held], pf.theta, level=level, sigma=pf.sigma, dof=dof,
                        draws=bs.draws, cov_u=pf.cov_u)
        naive = naive_forecasts(Dt, yt)
        last, line = naive_predict(naive, D[held])
        h = horizon(D[held], float(Dt.max()))
        est = b["estimate"]
        dis = np.maximum(np.abs(line - est), np.abs(last - est))
        scale = forecast_scale(h, pf.sigma, dis)
        i_last = int(held[np.argmax(D[held])])
        d_last = float(Dt.max())
        at_last = float(form.evaluate([d_last], pf.theta)[0])
        for j, i in enumerate(held):
            pred, meas = float(est[j]), float(y[i])
            lo, hi = float(b["pred_low"][j]), float(b["pred_high"][j])
            half = (pred - lo) if meas < pred else (hi - pred)
            rows.append({
                "cutoff": float(f), "cutoff_tokens_b": t_cut, "n_train": int(Dt.size),
                "n_dropped": sel.n_dropped, "index": int(i), "tokens_b": float(D[i]),
                "is_last": int(i) == i_last, "measured": meas, "predicted": pred, "error": pred - meas,
                "last_fitted_b": d_last, "law_at_last": at_last,
                "law_low": lo, "law_high": hi, "law_covered": bool(lo <= meas <= hi),
                "horizon": float(h[j]), "sigma": float(pf.sigma), "dof": int(dof), "scale": float(scale[j]),
                "score": float(score(pred - meas, half, scale[j])),
                "naive_last": float(last[j]), "naive_line": float(line[j]),
                "pred_low": lo, "pred_high": hi, "covered": bool(lo <= meas <= hi),
            })
    return rows


def calibrate_backtest(rows: list[dict], cal, *, level: float = 0.9, exclude: str | None = None
                       ) -> list[dict]:
    """Fill each row's forecast band from calibration ``cal`` (leaving out run ``exclude``), give
    the two naive forecasts bands calibrated the same way (t * sigma plus a horizon term), and
    add interval scores.  Returns new row dicts."""
    q_naive = {kind: cal.naive_quantile(kind, level, exclude) for kind in ("last", "line")
               if cal.naive.get(kind)}
    out = []
    for r in rows:
        r = dict(r)
        pred = r["predicted"]
        lo_h, hi_h = pred - r["law_low"], r["law_high"] - pred
        r["pred_low"] = float(pred - cal.halfwidth(lo_h, r["scale"], level, exclude))
        r["pred_high"] = float(pred + cal.halfwidth(hi_h, r["scale"], level, exclude))
        a = r.get("analog")
        if a is not None and np.isfinite(a):  # hold the median analog forecast (forecast.py)
            r["pred_low"], r["pred_high"] = min(r["pred_low"], float(a)), max(r["pred_high"], float(a))
        r["covered"] = bool(r["pred_low"] <= r["measured"] <= r["pred_high"])
        r["interval_score"] = float(interval_score(r["pred_low"], r["pred_high"], r["measured"], level))
        r["law_interval_score"] = float(interval_score(r["law_low"], r["law_high"], r["measured"], level))
        for kind, q in q_naive.items():
            c = r["naive_" + kind]
            half = math.hypot(_t(level, r) * r["sigma"], q * r["sigma"] * r["horizon"])
            r[f"naive_{kind}_low"], r[f"naive_{kind}_high"] = c - half, c + half
            r[f"naive_{kind}_covered"] = bool(c - half <= r["measured"] <= c + half)
            r[f"naive_{kind}_interval_score"] = float(interval_score(c - half, c + half, r["measured"], level))
        out.append(r)
    return out


def _t(level: float, r: dict) -> float:
    from sparsitylaws.runfit.pointfit import t_quantile

    return t_quantile(level, int(r.get("dof", 0)))


SKILL_METHODS = (("law", "predicted", "pred_low", "pred_high"),
                 ("last value", "naive_last", "naive_last_low", "naive_last_high"),
                 ("local line", "naive_line", "naive_line_low", "naive_line_high"))


def backtest_skill(rows: Sequence[dict], level: float = 0.9) -> list[dict]:
    """Per cutoff and forecast (law, last value carried forward, local line in ln D): mean
    absolute error over the later points, error at the last point, band coverage and mean
    interval score; ``best`` names the forecast with the lowest mean interval score (by
    absolute error when bands are missing)."""
    out = []
    for f in sorted({r["cutoff"] for r in rows}):
        rs = [r for r in rows if r["cutoff"] == f]
        last = max(rs, key=lambda r: r["tokens_b"])
        entry: dict = {"cutoff": f, "n_heldout": len(rs)}
        for name, col, lo, hi in SKILL_METHODS:
            if col not in rs[0]:
                continue
            err = np.array([r[col] - r["measured"] for r in rs])
            m = {"mae": float(np.mean(np.abs(err))), "last_error": float(last[col] - last["measured"])}
            if lo in rs[0]:
                m["coverage"] = float(np.mean([r[lo] <= r["measured"] <= r[hi] for r in rs]))
                m["interval_score"] = float(np.mean(interval_score(
                    [r[lo] for r in rs], [r[hi] for r in rs], [r["measured"] for r in rs], level)))
            entry[name] = m
        names = [n for n, *_ in SKILL_METHODS if n in entry]
        key = "interval_score" if all("interval_score" in entry[n] for n in names) else "mae"
        entry["best"] = min(names, key=lambda n: entry[n][key])
        entry["best_by"] = key
        out.append(entry)
    return out


def backtest_summary(rows: Sequence[dict]) -> list[dict]:
    """Per cutoff: held-out count, RMSE, max |error|, error at the last point, coverage."""
    out = []
    for f in sorted({r["cutoff"] for r in rows}):
        rs = [r for r in rows if r["cutoff"] == f]
        err = np.array([r["error"] for r in rs])
        last = max(rs, key=lambda r: r["tokens_b"])
        out.append({
            "cutoff": f, "n_train": rs[0]["n_train"], "n_heldout": len(rs),
            "rmse": float(np.sqrt(np.mean(err**2))), "max_abs_error": float(np.max(np.abs(err))),
            "last_error": float(last["error"]), "last_covered": bool(last["covered"]),
            "coverage": float(np.mean([r["covered"] for r in rs])),
        })
    return out
