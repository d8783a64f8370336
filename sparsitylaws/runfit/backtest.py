"""Choosing between law forms and testing forecasts forward in time.

* :func:`information_criteria` - AIC, AICc and BIC of a least-squares fit with Gaussian
  errors; the noise variance counts as a parameter (k + 1 in total).
* :func:`compare_forms` - fits every form to the *same* points and ranks them by AICc, with
  Akaike weights exp(-dAICc/2) / sum.
* :func:`cut_states` / :func:`backtest` - rolling origin: for each cutoff fraction f of the
  run's token range, t_cut = D_first + f * (D_last - D_first), refit on the points with
  D <= t_cut (the warm-up average re-done on that subset alone, so nothing from the future
  leaks in) and record what is known there (:class:`~sparsitylaws.runfit.forecast.CutState`)
  and every later point (a *forecast unit* is one run x cut).  The candidates' forecasts of
  those points, their combination and calibrated bands are filled in by
  :mod:`sparsitylaws.runfit.calibration`.
* :func:`interval_score` (Gneiting & Raftery 2007), :func:`backtest_skill` (the combined
  forecast beside the naive ones, per cutoff) and :func:`backtest_summary` (per cutoff).

All D in billions of tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sparsitylaws.runfit.forecast import CutState, direction_of, line_from_points
from sparsitylaws.runfit.forms import FORMS, LawForm, get_form
from sparsitylaws.runfit.pointfit import fit_points_fast
from sparsitylaws.runfit.warmup import select_points

__all__ = [
    "CALIBRATION_CUTOFFS",
    "REPORTED_CUTOFFS",
    "backtest",
    "backtest_skill",
    "backtest_summary",
    "compare_forms",
    "cut_states",
    "information_criteria",
    "interval_score",
]

#: Cutoffs (fractions of the token range) whose forecasts calibrate bands: every tenth from
#: 0.2 to 0.8, so calibration sees runs at many maturities.
CALIBRATION_CUTOFFS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
#: Cutoffs reported per run (the evaluation protocol of issue 19: 30%, 50%, 70%).
REPORTED_CUTOFFS = (0.3, 0.5, 0.7)


def information_criteria(rss: float, n: float, k: int) -> dict[str, float | None]:
    """AIC, AICc, BIC for n points (an effective, fractional n with warm-up weights), k curve
    parameters (+1 for the noise variance).

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
                  given: dict[str, float] | None = None, incl: np.ndarray | None = None) -> list[dict]:
    """Fit each form to the same points; rows sorted by AICc with delta AICc and Akaike weights.

    Every form is fitted by maximum likelihood (least squares without the weak prior the
    headline fits carry, and the MAP fit kept where it has the lower RSS): AICc is defined at
    the maximum, and a prior that binds costs one form RSS the others do not pay.  ``given``
    maps a form name to an RSS already computed that way, reused as is.  ``incl``: the warm-up
    weights of the headline fit; every form is fitted with them and its RSS weighted by them,
    over n = their sum, so that no form is charged for warm-up points the headline fit
    down-weights.  Forms with more parameters than n - 1 points are skipped.
    """
    D, y = np.asarray(D, float), np.asarray(y, float)
    n = float(D.size) if incl is None else float(np.sum(incl))
    rows = []
    for name in forms or list(FORMS):
        form = get_form(name)
        if n <= form.n_params:
            continue
        if given and name in given:
            rss, conv = float(given[name]), True
        else:
            # the maximum: from the starts without the prior, and from its MAP optimum (a
            # likelihood ridge can stall the plain fit; the lower RSS of the two is kept)
            fits = [fit_points_fast(form, D, y, sw=sw, loss=loss, incl=incl, prior=pr)
                    for pr in (None, "auto")]
            pf = min(fits, key=lambda f: f.rss if math.isfinite(f.rss) else math.inf)
            rss, conv = pf.rss, pf.converged
        ic = information_criteria(rss, n, form.n_params)
        rows.append({"form": name, "k": form.n_params, "n": int(D.size) if incl is None else round(n, 6),
                     "rss": rss, "rmse": math.sqrt(rss / n), **ic, "converged": bool(conv)})
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


def interval_score(low: np.ndarray | float, high: np.ndarray | float, x: np.ndarray | float,
                   level: float) -> np.ndarray:
    """Interval score of Gneiting & Raftery (2007, JASA 102, eq. 43): width plus 2/alpha times
    the miss, alpha = 1 - level; lower is better."""
    lo, hi, x = (np.asarray(v, float) for v in (low, high, x))
    a = 1.0 - float(level)
    return (hi - lo) + (2.0 / a) * np.maximum(lo - x, 0.0) + (2.0 / a) * np.maximum(x - hi, 0.0)



def _state(run: str, activation: str, n_params: float | None, form: LawForm, D: np.ndarray,
           y: np.ndarray, sw: np.ndarray, loss: str, drop_first: int | None,
           min_tokens: float | None, start: np.ndarray | None = None) -> tuple[CutState, np.ndarray] | None:
    """The forecast origin after fitting ``form`` to (D, y) (sorted): law, line, last, noise;
    and the fit's unconstrained parameters (the next cut's extra start).  ``start``: the
    previous cut's, tried beside the form's own starts."""
    sel = select_points(form, D, y, sw=sw, drop_first=drop_first, min_tokens=min_tokens, run=run)
    k = sel.keep
    if int(k.sum()) <= form.n_params:
        return None
    fm, incl = sel.fitted, sel.fit_weight  # the warm-up average fits every point at its weight
    pf = fit_points_fast(form, D[fm], y[fm], sw=sw[fm], loss=loss, incl=incl, starts=start)
    s = direction_of(activation)
    a, b = line_from_points(D[fm], y[fm], s, incl)
    return (CutState(run, activation, n_params, float(D[k].max()), float(pf.sigma), form.name,
                     pf.theta.tolist(), a, b, float(y[k][np.argmax(D[k])])), np.asarray(pf.u, float))


def cut_states(D: np.ndarray, y: np.ndarray, form: LawForm | str, *, run: str, activation: str,
               n_params: float | None = None, cutoffs: Sequence[float] = CALIBRATION_CUTOFFS,
               se: np.ndarray | None = None, loss: str = "linear", drop_first: int | None = None,
               min_tokens: float | None = None) -> list[tuple[float, CutState]]:
    """(cutoff, state) for each cutoff that leaves more points than parameters before it and
    at least one after (D sorted ascending, billions), in ascending cutoff order.  Each cut's
    fit also starts from the previous cut's (a continuation from the past, nothing from after
    the cut): a prefix the law barely describes can leave the form's own starts in a slow
    valley that the solver's iteration cap stops at a different point under each tiny change
    of the data (gpu-relu-w64-d2 at its 40-60% cuts, docs/fitting.md "Continuity")."""
    form = get_form(form)
    D, y = np.asarray(D, float), np.asarray(y, float)
    sw = np.ones(D.size) if se is None else 1.0 / np.asarray(se, float)
    lo_t, hi_t = float(np.min(D)), float(np.max(D))
    out = []
    previous = None
    for f in sorted(cutoffs):
        t_cut = lo_t + float(f) * (hi_t - lo_t)
        train = t_cut >= D
        if not np.any(~train) or int(train.sum()) <= form.n_params:
            continue
        fitted = _state(run, activation, n_params, form, D[train], y[train], sw[train], loss,
                        drop_first, min_tokens, previous)
        if fitted is not None:
            st, previous = fitted
            out.append((float(f), st))
    return out


def backtest(D: np.ndarray, y: np.ndarray, form: LawForm | str, *, run: str = "?", activation: str,
             n_params: float | None = None, cutoffs: Sequence[float] = CALIBRATION_CUTOFFS,
             se: np.ndarray | None = None, loss: str = "linear", drop_first: int | None = None,
             min_tokens: float | None = None) -> list[dict]:
    """Rows, one per cutoff x later point: the state at the cut (``state``), the truth, the
    horizon and the three candidates that need no other run (``cand_law``, ``cand_line``,
    ``cand_last``).  The pooled candidates, the combination and its band come later
    (:func:`sparsitylaws.runfit.calibration.fill_rows`)."""
    form = get_form(form)
    D, y = np.asarray(D, float), np.asarray(y, float)
    rows: list[dict] = []
    i_last = int(np.argmax(D))
    for f, st in cut_states(D, y, form, run=run, activation=activation, n_params=n_params,
                            cutoffs=cutoffs, se=se, loss=loss, drop_first=drop_first,
                            min_tokens=min_tokens):
        held = np.flatnonzero(st.d_cut < D)
        law = form.evaluate(D[held], np.asarray(st.theta, float))
        line = np.clip(st.line_intercept + st.line_slope * np.log(D[held]), 0.0, 1.0)
        for j, i in enumerate(held):
            rows.append({
                "cutoff": f, "d_cut": st.d_cut, "tau_cut": st.tau_cut, "index": int(i),
                "tokens_b": float(D[i]), "is_last": int(i) == i_last, "measured": float(y[i]),
                "horizon": float(np.log(D[i] / st.d_cut)), "sigma": st.sigma,
                "cand_law": float(law[j]), "cand_line": float(line[j]), "cand_last": st.last,
                "state": st.to_dict() if j == 0 else None,
            })
    return rows


def _cover(r: dict, lo: str, hi: str) -> bool:
    return bool(r[lo] <= r["measured"] <= r[hi])


#: (name, point column, band columns) of the forecasts compared in backtests.
SKILL_METHODS = (("combined", "predicted", "pred_low", "pred_high"),
                 ("law", "cand_law", "law_low", "law_high"),
                 ("last value", "cand_last", "naive_last_low", "naive_last_high"),
                 ("local line", "cand_line", "naive_line_low", "naive_line_high"),
                 ("nearest run", "cand_nearest", "naive_nearest_low", "naive_nearest_high"))


def backtest_skill(rows: Sequence[dict], level: float = 0.9, cutoffs: Sequence[float] | None = None
                   ) -> list[dict]:
    """Per cutoff and forecast (combined, law alone, last value, local line, nearest run at
    equal tokens per parameter): mean absolute error over the later points, error at the last
    point, band coverage and mean interval score; ``best`` names the forecast with the lowest
    mean interval score."""
    out = []
    cuts = sorted({r["cutoff"] for r in rows}) if cutoffs is None else list(cutoffs)
    for f in cuts:
        rs = [r for r in rows if r["cutoff"] == f and r.get("predicted") is not None]
        if not rs:
            continue
        last = max(rs, key=lambda r: r["tokens_b"])
        entry: dict = {"cutoff": f, "n_heldout": len(rs)}
        for name, col, lo, hi in SKILL_METHODS:
            if rs[0].get(col) is None or rs[0].get(lo) is None:
                continue
            err = np.array([r[col] - r["measured"] for r in rs])
            entry[name] = {
                "mae": float(np.mean(np.abs(err))), "last_error": float(last[col] - last["measured"]),
                "coverage": float(np.mean([_cover(r, lo, hi) for r in rs])),
                "last_covered": _cover(last, lo, hi),
                "interval_score": float(np.mean(interval_score(
                    [r[lo] for r in rs], [r[hi] for r in rs], [r["measured"] for r in rs], level)))}
        names = [n for n, *_ in SKILL_METHODS if n in entry]
        entry["best"] = min(names, key=lambda n: entry[n]["interval_score"]) if names else None
        out.append(entry)
    return out


def backtest_summary(rows: Sequence[dict], cutoffs: Sequence[float] | None = None) -> list[dict]:
    """Per cutoff: held-out count, RMSE, max |error|, error at the last point, coverage (of the
    combined forecast and its band)."""
    out = []
    cuts = sorted({r["cutoff"] for r in rows}) if cutoffs is None else list(cutoffs)
    for f in cuts:
        rs = [r for r in rows if r["cutoff"] == f and r.get("predicted") is not None]
        if not rs:
            continue
        err = np.array([r["predicted"] - r["measured"] for r in rs])
        last = max(rs, key=lambda r: r["tokens_b"])
        out.append({
            "cutoff": f, "n_heldout": len(rs),
            "rmse": float(np.sqrt(np.mean(err**2))), "max_abs_error": float(np.max(np.abs(err))),
            "last_error": float(last["predicted"] - last["measured"]), "last_covered": _cover(last, "pred_low", "pred_high"),
            "coverage": float(np.mean([_cover(r, "pred_low", "pred_high") for r in rs])),
        })
    return out
