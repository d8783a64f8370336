"""One call that fits a law to one training run and bundles everything about the fit.

Public, stable API (used by lawset.py, the ``fit`` CLI and the plots)::

    fit_run(tokens, ratio, *, run, activation, form="auto", se=None, loss="linear",
            f_scale=None, drop_first=None, min_tokens=None, n_boot=1000, level=0.9, seed=0,
            compare=True, backtest=True) -> RunFit

    RunFit.predict(tokens, level=0.9) -> pandas.DataFrame
        columns: tokens, tokens_b, estimate, conf_low, conf_high, pred_low, pred_high,
        law_estimate, law_low, law_high (the law's own prediction band), forecast (True where
        the estimate and the prediction band are the calibrated within-run forecast of
        :mod:`sparsitylaws.runfit.forecast`: past the last fitted checkpoint), extrapolation
        (True outside the fitted token range); df.attrs["warnings"] holds structured
        warnings (``extrapolation``, ``forecast_horizon``, ``forecast_young``)
    RunFit.limit(level=None) -> dict | None      # A0 estimate and intervals, None if no limit
    RunFit.to_dict() -> dict                     # JSON-safe, floats exact
    RunFit.from_dict(d) -> RunFit                # inverse; predictions are bit-identical
    RunFit.table() -> pandas.DataFrame           # one row per parameter

``tokens`` are RAW token counts (the measurement table's ``tokens`` column); they are
converted to billions (D) inside, and every ``*_b`` field is in billions.

``predict`` uses only stored fields: the form name, ``estimate``, ``boot_draws`` (the
bootstrap replicates, shape (n, k)), ``cov_u`` (delta-method fallback when there are no
draws), ``noise_sd``, ``dof`` (and the effective one in ``extra``) and ``forecast`` (the
forecast origin and which calibrated model applies; the model and the analog curves live in
the law set, or are the packaged default).  Inside the fitted range the confidence band is
where the true curve lies (parameter uncertainty) and the prediction band adds the noise of
one new checkpoint; past it both come from the calibrated forecast (the confidence band with
the point noise taken out of the forecast band in quadrature).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd

from sparsitylaws.errors import FitInputError
from sparsitylaws.runfit.backtest import backtest as run_backtest
from sparsitylaws.runfit.backtest import compare_forms, information_criteria
from sparsitylaws.runfit.forecast import (
    CutState,
    ForecastModel,
    RunCurve,
    direction_of,
    line_from_points,
)
from sparsitylaws.runfit.forms import LawForm, default_form_for, get_form
from sparsitylaws.runfit.pointfit import (
    LOSSES,
    check_inputs,
    fit_points,
    t_quantile,
)
from sparsitylaws.runfit.uncertainty import (
    ar_inflation,
    bootstrap,
    clip_to_bounds,
    curve_bands,
    delta_intervals,
    percentile_intervals,
    profile_interval,
)
from sparsitylaws.runfit.warmup import select_points

__all__ = ["RUNFIT_VERSION", "TOKENS_PER_B", "RunFit", "fit_run", "set_forecast"]

TOKENS_PER_B = 1e9
RUNFIT_VERSION = 3
#: Share of failed bootstrap replicates above which the intervals are called unreliable.
BOOT_FAIL_WARN = 0.05


@dataclass
class RunFit:
    """Everything about one law fitted to one run (see the module docstring for the API)."""

    run: str
    activation: str
    form: str
    formula: str
    param_names: list[str]
    estimate: list[float]
    se: list[float]
    delta_low: list[float]
    delta_high: list[float]
    boot_low: list[float]
    boot_high: list[float]
    interval_method: str  # how boot_low/high were made
    level: float
    covariance: list[list[float]]  # natural parameters, delta method
    cov_u: list[list[float]]  # unconstrained parameterization (used by the delta band)
    boot_draws: list[list[float]]  # successful replicates, (n_ok, k)
    n_boot: int
    n_boot_failed: int
    block_length: int
    noise_sd: float  # residual sd of the kept points, sqrt(RSS / (n - k))
    dof: int
    rss: float
    rmse: float
    aicc: float | None
    bic: float | None
    n_points: int
    n_total: int
    tokens_b_min: float
    tokens_b_max: float
    dropped: list[dict]  # index, tokens, tokens_b, reason
    warmup_rule: str
    multistart: dict
    comparison: list[dict]
    backtest: list[dict]
    warnings: list[dict]  # code, message, parameter
    settings: dict
    converged: bool = True
    condition_number: float | None = None
    version: int = RUNFIT_VERSION
    extra: dict = field(default_factory=dict)
    #: naive forecasts from the fitted points: last_value, line_intercept, line_slope (ln D)
    naive: dict = field(default_factory=dict)
    #: the forecast past the data: {"state": its origin (CutState dict, with the run's own
    #: drift), "exclude": this run (its own backtests never set its band), "source": ...,
    #: "group": the law set's forecast model that applies} (law sets before version 3:
    #: {"calibration": ...}, read as the packaged default)
    forecast: dict = field(default_factory=dict)
    #: plain bootstrap percentile intervals (failed replicates unbounded on their side);
    #: boot_low/boot_high hold the *reported* interval (see interval_method)
    pct_low: list[float] = field(default_factory=list)
    pct_high: list[float] = field(default_factory=list)
    #: profile-likelihood interval of the limit parameter (None without one)
    profile_low: float | None = None
    profile_high: float | None = None
    n_boot_stalled: int = 0
    n_boot_refit: int = 0
    #: effective number of points: the sum of the warm-up inclusion weights (rmse, dof use it)
    n_effective: float | None = None

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict:
        """JSON-safe dict (str/int/float/bool/None/list/dict only; non-finite floats -> None,
        except interval ends at an infinite bound, which are the strings "inf"/"-inf")."""
        return {f.name: (_interval_ends(getattr(self, f.name)) if f.name in INTERVAL_FIELDS
                         else _jsonable(getattr(self, f.name))) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> RunFit:
        """Rebuild a RunFit from :meth:`to_dict` output (None floats in arrays become NaN)."""
        names = {f.name for f in fields(cls)}
        missing = [n for n in names if n not in d and n not in ("converged", "condition_number",
                                                                  "version", "extra", "naive",
                                                                  "forecast", "pct_low", "pct_high",
                                                                  "profile_low", "profile_high",
                                                                  "n_boot_stalled", "n_boot_refit",
                                                                  "n_effective")]
        if missing:
            raise FitInputError(f"RunFit dict lacks field(s): {', '.join(sorted(missing))}")
        kw = {k: v for k, v in d.items() if k in names}
        for key in ("estimate", "se", "delta_low", "delta_high", "boot_low", "boot_high", "pct_low",
                    "pct_high"):
            if key in kw:
                kw[key] = [_f(v) for v in kw[key]]
        if kw.get("boot_draws"):  # older files: an unbounded end was stored as null (it reaches the bound)
            form = get_form(kw["form"])
            for key, side in (("boot_low", "lower"), ("boot_high", "upper"), ("pct_low", "lower"),
                              ("pct_high", "upper")):
                if key in kw and len(kw[key]) == form.n_params:
                    kw[key] = [getattr(p, side) if math.isnan(v) else v
                               for p, v in zip(form.parameters, kw[key], strict=True)]
        for key in ("covariance", "cov_u", "boot_draws"):
            kw[key] = [[_f(v) for v in row] for row in kw[key]]
        kw["noise_sd"] = _f(kw["noise_sd"])
        return cls(**kw)

    # ------------------------------------------------------------------ use
    def _draws(self) -> np.ndarray:
        k = len(self.param_names)
        return np.asarray(self.boot_draws, dtype=float).reshape(-1, k)

    def attach_forecast(self, model: ForecastModel | None, curves: Sequence[RunCurve] = ()) -> None:
        """Give the fit the calibrated forecast model and analog curves its predictions past the
        data use (a law set does this on load; ``fit_run`` alone attaches the packaged default)."""
        self._forecast_model = (model, [c for c in curves if c.run != self.run])

    def forecast_model(self) -> tuple[ForecastModel, list[RunCurve]]:
        """The attached forecast model and analogs, or the packaged default."""
        fm = getattr(self, "_forecast_model", None)
        if fm is None or fm[0] is None:
            from sparsitylaws.runfit.calibration import default_forecast

            model, curves = default_forecast()
            self._forecast_model = (model, [c for c in curves if c.run != self.run])
            fm = self._forecast_model
        return fm

    def forecast_state(self) -> CutState:
        """The forecast origin: the end of the fitted data (stored, or rebuilt from the fit for
        law sets written before version 3: no own drift, the naive line from ``naive``)."""
        st = (self.forecast or {}).get("state")
        if st:
            return CutState.from_dict(st)
        nv = self.naive or {}
        a0 = float(get_form(self.form).evaluate([self.tokens_b_max], np.asarray(self.estimate, float))[0])
        a = float(nv.get("line_intercept", a0))
        b = float(nv.get("line_slope", 0.0))
        if b * direction_of(self.activation) < 0:
            a, b = a + b * math.log(self.tokens_b_max), 0.0
        return CutState(self.run, self.activation, None, self.tokens_b_max, float(self.noise_sd),
                        self.form, list(self.estimate), a, b, float(nv.get("last_value", a0)))

    def _band_dof(self) -> float:
        """Degrees of freedom of the band quantiles: the effective ones under residual
        autocorrelation (stored at fit time), else n - k."""
        ar = (self.extra or {}).get("residual_autocorrelation") or {}
        return float(ar.get("dof_eff", self.dof))

    def predict(self, tokens: Sequence[float] | np.ndarray | float, level: float = 0.9) -> pd.DataFrame:
        """A at raw token counts with confidence and prediction bands, from stored fields only.

        Up to the last fitted point: the law and its bands.  Past it: the calibrated forecast
        (:mod:`sparsitylaws.runfit.forecast`: the law combined with the naive forecasts and other
        runs' shapes, its band from other runs' backtests); ``law_estimate``/``law_low``/
        ``law_high`` keep the law's own curve and prediction band everywhere.
        """
        t = np.atleast_1d(np.asarray(tokens, dtype=float))
        if t.ndim != 1 or not np.all(np.isfinite(t)) or np.any(t <= 0):
            raise FitInputError("argument 'tokens' of predict must be finite raw token counts > 0")
        if not 0.0 < float(level) < 1.0:
            raise FitInputError(f"argument 'level' must lie in (0, 1), got {level}")
        d = t / TOKENS_PER_B
        draws = self._draws()
        b = curve_bands(get_form(self.form), d, np.asarray(self.estimate, dtype=float), level=float(level),
                        sigma=float(self.noise_sd), dof=self._band_dof(),
                        draws=draws if draws.shape[0] > 0 else None,
                        cov_u=np.asarray(self.cov_u, dtype=float))
        law_est, law_low, law_high = b["estimate"].copy(), b["pred_low"].copy(), b["pred_high"].copy()
        past = d > self.tokens_b_max * (1 + 1e-12)
        warnings_: list[dict] = []
        if past.any():
            model, curves = self.forecast_model()
            state = self.forecast_state()
            fb = model.band(state, d[past], curves, exclude=self.run, level=float(level))
            b["estimate"][past] = fb["estimate"]
            b["pred_low"][past], b["pred_high"][past] = fb["low"], fb["high"]
            noise = t_quantile(float(level), self._band_dof()) * float(self.noise_sd)
            noise = noise if math.isfinite(noise) else 0.0
            for side, sign in (("conf_low", -1.0), ("conf_high", 1.0)):
                half = np.abs((fb["low"] if sign < 0 else fb["high"]) - fb["estimate"])
                b[side][past] = fb["estimate"] + sign * np.sqrt(np.maximum(half**2 - noise**2, 0.0))
            warnings_ += self._forecast_warnings(model, state, d[past])
        df = pd.DataFrame({"tokens": t, "tokens_b": d, **b, "law_estimate": law_est, "law_low": law_low,
                           "law_high": law_high, "forecast": past})
        df["extrapolation"] = (d > self.tokens_b_max) | (d < self.tokens_b_min)
        df.attrs["warnings"] = self._extrapolation_warnings(d) + warnings_
        return df

    def _forecast_warnings(self, model: ForecastModel, state: CutState, d: np.ndarray) -> list[dict]:
        """``forecast_horizon`` past the longest calibrated horizon; ``forecast_young`` when the
        run is younger (tokens per parameter) than every calibrating forecast."""
        out = []
        h = float(np.max(np.log(d / state.d_cut)))
        if math.isfinite(model.h_max) and h > model.h_max:
            out.append({"code": "forecast_horizon", "parameter": None, "message": (
                f"run {self.run!r}: forecasts reach {math.exp(h):.3g}x the last fitted token count; the "
                f"forecast band was calibrated on forecasts up to {math.exp(model.h_max):.3g}x, so beyond "
                "that it is itself an extrapolation")})
        lo, _ = model.tau_range(exclude=self.run)
        tau = state.tau_cut
        if math.isfinite(tau) and math.isfinite(lo) and tau < lo:
            out.append({"code": "forecast_young", "parameter": None, "message": (
                f"run {self.run!r}: at {tau:.3g} tokens per parameter it is younger than every forecast "
                f"that calibrated its band (from {lo:.3g}); older runs' errors may not describe its own")})
        return out

    def _extrapolation_warnings(self, d: np.ndarray) -> list[dict]:
        """Structured ``extrapolation`` warning when any D lies outside the fitted range."""
        out = d[(d > self.tokens_b_max) | (d < self.tokens_b_min)]
        if out.size == 0:
            return []
        far = float(np.max(out)) / self.tokens_b_max
        return [{"code": "extrapolation", "parameter": None, "message": (
            f"run {self.run!r}: {out.size} of {d.size} token counts lie outside the fitted range "
            f"[{self.tokens_b_min:.4g}, {self.tokens_b_max:.4g}]B tokens (up to {far:.3g}x the "
            "largest fitted); the bands assume the law keeps holding there")}]

    def limit(self, level: float | None = None) -> dict | None:
        """The limit parameter A0 with its standard error and intervals; None if the form has none."""
        form = get_form(self.form)
        i = form.limit_index()
        if i is None:
            return None
        lvl = self.level if level is None else float(level)
        blo, bhi = self.boot_low[i], self.boot_high[i]
        if lvl != self.level:
            lo, hi = clip_to_bounds(form, *percentile_intervals(self._draws(), lvl, self._band_dof()))
            blo, bhi = float(lo[i]), float(hi[i])
        return {"parameter": form.limit_param, "estimate": self.estimate[i], "se": self.se[i],
                "level": lvl, "boot_low": blo, "boot_high": bhi,
                "pct_low": self.pct_low[i] if self.pct_low and lvl == self.level else None,
                "pct_high": self.pct_high[i] if self.pct_high and lvl == self.level else None,
                "profile_low": self.profile_low if lvl == self.level else None,
                "profile_high": self.profile_high if lvl == self.level else None,
                "delta_low": self.delta_low[i] if lvl == self.level else None,
                "delta_high": self.delta_high[i] if lvl == self.level else None}

    def table(self) -> pd.DataFrame:
        """One row per parameter: estimate, se, delta and bootstrap intervals."""
        return pd.DataFrame({"parameter": self.param_names, "estimate": self.estimate, "se": self.se,
                             "delta_low": self.delta_low, "delta_high": self.delta_high,
                             "boot_low": self.boot_low, "boot_high": self.boot_high})


#: Interval fields whose ends may be +-inf (a side reaching an unbounded parameter's bound).
INTERVAL_FIELDS = ("delta_low", "delta_high", "boot_low", "boot_high", "pct_low", "pct_high")


def _f(v: float | str | None) -> float:
    """A stored float: None -> NaN (missing), "inf"/"-inf" -> +-inf."""
    return math.nan if v is None else float(v)


def _interval_ends(v: Sequence[float]) -> list:
    """Interval ends for JSON: +-inf as "inf"/"-inf" (they are real ends), NaN as None (missing)."""
    out = []
    for x in v:
        x = float(x)
        out.append(("inf" if x > 0 else "-inf") if math.isinf(x) else (None if math.isnan(x) else x))
    return out


def _jsonable(v: object) -> object:
    """Recursively convert numpy types/arrays to plain Python; non-finite floats -> None."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        x = float(v)
        return x if math.isfinite(x) else None
    return v


# --------------------------------------------------------------------------- fit_run


def _as_arrays(tokens: Sequence[float] | np.ndarray, ratio: Sequence[float] | np.ndarray,
               se: Sequence[float] | np.ndarray | None, run: str
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Validated raw tokens, D in billions (sorted by tokens), ratios, se."""
    try:
        t = np.asarray(tokens, dtype=float)
        y = np.asarray(ratio, dtype=float)
        s = None if se is None else np.asarray(se, dtype=float)
    except (TypeError, ValueError) as exc:
        raise FitInputError(f"run {run!r}: 'tokens', 'ratio' and 'se' must be numeric ({exc})") from None
    check_inputs(t, y, s, run=run)
    order = np.argsort(t, kind="stable")
    t, y = t[order], y[order]
    s = None if s is None else s[order]
    return t, t / TOKENS_PER_B, y, s


#: A bootstrap interval this many times wider than the delta-method one (or, for a positive
#: parameter, spanning this many-fold) means the parameter is weakly identified.
WEAK_WIDTH_RATIO = 10.0
WEAK_FOLD = 1e3


def _weak_warnings(law: LawForm, est: np.ndarray, dlo: np.ndarray, dhi: np.ndarray, blo: np.ndarray,
                   bhi: np.ndarray, run: str) -> list[dict]:
    """Parameters whose bootstrap interval is far wider than the delta method's, or spans
    orders of magnitude: the data do not pin them down (e.g. alpha -> 0 in logspace_power)."""
    out = []
    for j, p in enumerate(law.parameters):
        if not (np.isfinite(blo[j]) and np.isfinite(bhi[j])):
            continue
        fold = bhi[j] / blo[j] if p.lower == 0.0 and blo[j] > 0 else 1.0
        wide = (bhi[j] - blo[j]) > WEAK_WIDTH_RATIO * (dhi[j] - dlo[j])
        if fold > WEAK_FOLD or wide:
            out.append({"code": "weakly_identified", "parameter": p.name, "message": (
                f"run {run!r}: {p.name} = {est[j]:.4g} is weakly identified: bootstrap interval "
                f"[{blo[j]:.3g}, {bhi[j]:.3g}] vs delta-method [{dlo[j]:.3g}, {dhi[j]:.3g}]")})
    return out


def _extra_warnings(n_failed: int, n_boot: int, ms: dict, run: str) -> list[dict]:
    out = []
    if n_boot > 0 and n_failed > 0:
        share = n_failed / n_boot
        msg = (f"run {run!r}: {n_failed} of {n_boot} bootstrap replicates failed to converge even after "
               "multi-start refits; they count as unbounded on the side they ran to")
        if share > BOOT_FAIL_WARN:
            msg += f" (> {BOOT_FAIL_WARN:.0%})"
        out.append({"code": "bootstrap_failures", "message": msg, "parameter": None})
    spread = ms.get("max_spread_se")
    if spread is not None and spread > 1.0:
        out.append({"code": "multistart_spread", "message": (
            f"run {run!r}: near-optimal starts (RSS within {ms['near_rtol']:.0%} of the best) differ by "
            f"up to {spread:.3g} standard errors; the optimum is flat"), "parameter": None})
    return out


def fit_run(
    tokens: Sequence[float] | np.ndarray,
    ratio: Sequence[float] | np.ndarray,
    *,
    run: str,
    activation: str,
    form: str = "auto",
    se: Sequence[float] | np.ndarray | None = None,
    loss: str = "linear",
    f_scale: float | None = None,
    drop_first: int | None = None,
    min_tokens: float | None = None,
    n_boot: int = 1000,
    level: float = 0.9,
    seed: int = 0,
    compare: bool = True,
    backtest: bool = True,
    n_params: float | None = None,
    default_forecast: bool = True,
) -> RunFit:
    """Fit ``form`` (``auto``: by activation) to one run and bundle estimates, intervals, checks.

    ``tokens``: raw token counts; ``min_tokens``: raw token count below which points are
    dropped; ``drop_first``: drop the first N checkpoints (either overrides the automatic
    warm-up average); ``se``: per-point standard errors (weights 1/se^2); ``loss``: linear,
    soft_l1 or huber; ``n_boot``: bootstrap replicates (0 = delta method only); ``n_params``:
    non-embedding parameters (forecasts then borrow other runs' shapes in tokens per
    parameter).  Forecasts past the data are banded by the packaged default calibration
    (``default_forecast``; a law set calibrates its runs on each other instead,
    :func:`set_forecast`).
    """
    if loss not in LOSSES:
        raise FitInputError(f"run {run!r}: unknown loss {loss!r} (argument 'loss'); known: {', '.join(LOSSES)}")
    if not 0.0 < float(level) < 1.0:
        raise FitInputError(f"run {run!r}: argument 'level' must lie in (0, 1), got {level}")
    if int(n_boot) < 0:
        raise FitInputError(f"run {run!r}: argument 'n_boot' must be >= 0, got {n_boot}")
    law = get_form(default_form_for(activation) if form == "auto" else form)
    t, D, y, s = _as_arrays(tokens, ratio, se, run)
    if D.size < law.n_params:
        raise FitInputError(f"run {run!r}: {D.size} points are fewer than the {law.n_params} parameters "
                            f"of form {law.name!r}")
    sw = None if s is None else 1.0 / s
    min_b = None if min_tokens is None else float(min_tokens) / TOKENS_PER_B
    sel = select_points(law, D, y, sw=sw, drop_first=drop_first, min_tokens=min_b, run=run)
    k = sel.keep
    if int(k.sum()) < law.n_params:
        raise FitInputError(f"run {run!r}: {int(k.sum())} points left after dropping {sel.n_dropped} "
                            f"(rule: {sel.rule}) are fewer than the {law.n_params} parameters of form "
                            f"{law.name!r}")
    fm, incl = sel.fitted, sel.fit_weight  # the warm-up average fits every point at its weight
    pf = fit_points(law, D[fm], y[fm], se=None if s is None else s[fm], loss=loss, f_scale=f_scale,
                    run=run, incl=incl)
    bs = bootstrap(pf, int(n_boot), int(seed))
    dlo, dhi = delta_intervals(pf, level)
    ar = ar_inflation(pf) if pf.dof > 0 else {"dof_eff": pf.dof}
    plo, phi = percentile_intervals(bs.interval_draws(), level, ar["dof_eff"])
    plo, phi = _hold(*clip_to_bounds(law, plo, phi), pf.theta)  # ends at the bounds; holds its estimate
    blo, bhi = plo.copy(), phi.copy()
    notes: list[str] = []
    prof_lo = prof_hi = None
    ia0 = law.limit_index()
    if ia0 is not None and pf.dof > 0:
        prof_lo, prof_hi, prof_info = profile_interval(pf, ia0, level, inflation=ar["variance_factor"],
                                                       dof=ar["dof_eff"])
        ar = {**ar, "profile_iid": prof_info.get("iid", [prof_lo, prof_hi])}
        prof_lo, prof_hi = min(prof_lo, pf.theta[ia0]), max(prof_hi, pf.theta[ia0])
        if n_boot > 0:
            disagree = _intervals_disagree(plo[ia0], phi[ia0], prof_lo, prof_hi)
            blo[ia0], bhi[ia0] = ((min(plo[ia0], prof_lo), max(phi[ia0], prof_hi)) if disagree
                                  else (prof_lo, prof_hi))
            notes.append(f"{law.limit_param}: " + ("the wider of bootstrap and profile likelihood (they "
                         "disagree)" if disagree else "profile likelihood (the bootstrap agrees)"))
        else:
            blo[ia0], bhi[ia0] = prof_lo, prof_hi
    warm = sel.warmup.to_dict() if sel.warmup is not None else None
    if warm and ia0 is not None and warm["limit_spread"] > 0:
        # the warm-up length is uncertain: its between-length sd of A0 enters the interval
        # (in quadrature, at the interval's own quantile), so the interval moves continuously
        q = t_quantile(level, max(float(ar["dof_eff"]), 1.0))
        add = q * warm["limit_spread"]
        e0 = pf.theta[ia0]
        blo[ia0] = e0 - math.hypot(max(e0 - blo[ia0], 0.0), add) if np.isfinite(blo[ia0]) else blo[ia0]
        bhi[ia0] = e0 + math.hypot(max(bhi[ia0] - e0, 0.0), add) if np.isfinite(bhi[ia0]) else bhi[ia0]
        notes.append(f"{law.limit_param}: widened by the spread over warm-up lengths "
                     f"({warm['limit_spread']:.3g})")
    blo, bhi = clip_to_bounds(law, blo, bhi)
    ic = information_criteria(pf.rss, pf.n_eff, pf.k)
    ms = asdict(pf.multistart)
    comparison = (compare_forms(D[fm], y[fm], sw=None if sw is None else sw[fm], loss=loss, incl=incl)
                  if compare else [])
    raw = (run_backtest(D, y, law, run=str(run), activation=str(activation), n_params=n_params, se=s,
                        loss=loss, drop_first=drop_first, min_tokens=min_b) if backtest else [])
    a, b = line_from_points(D[fm], y[fm], direction_of(activation), incl)
    state = CutState(str(run), str(activation), None if not n_params else float(n_params),
                     float(D[k].max()), float(pf.sigma), law.name, pf.theta.tolist(), a, b,
                     float(y[k][np.argmax(D[k])]))
    warnings = ([w.to_dict() for w in pf.warnings] + _extra_warnings(bs.n_failed, int(n_boot), ms, run)
                + _weak_warnings(law, pf.theta, dlo, dhi, blo, bhi, run)
                + _limit_warnings(law, pf.theta, plo, phi, prof_lo, prof_hi, bs, int(n_boot), run))
    method = (bs.method if n_boot > 0 else "none (n_boot = 0)") + (
        "; reported: " + "; ".join(notes) if notes else "")
    dropped = [{**dd, "tokens": float(t[dd["index"]])} for dd in sel.dropped]
    rf = RunFit(
        run=str(run), activation=str(activation), form=law.name, formula=law.formula,
        param_names=law.param_names, estimate=pf.theta.tolist(), se=pf.se.tolist(),
        delta_low=dlo.tolist(), delta_high=dhi.tolist(), boot_low=blo.tolist(), boot_high=bhi.tolist(),
        interval_method=method, level=float(level),
        covariance=pf.cov.tolist(), cov_u=pf.cov_u.tolist(), boot_draws=bs.draws.tolist(),
        n_boot=int(n_boot), n_boot_failed=bs.n_failed, block_length=bs.block_length,
        noise_sd=pf.sigma, dof=pf.dof, rss=pf.rss, rmse=math.sqrt(pf.rss / pf.n_eff),
        aicc=ic["aicc"], bic=ic["bic"], n_points=int(k.sum()), n_total=int(D.size),
        tokens_b_min=float(D[k].min()), tokens_b_max=float(D[k].max()), dropped=dropped,
        warmup_rule=sel.rule, multistart=ms, comparison=comparison, backtest=[], warnings=warnings,
        settings={"seed": int(seed), "loss": loss, "f_scale": pf.f_scale if loss != "linear" else None,
                  "n_boot": int(n_boot), "level": float(level), "form_requested": str(form),
                  "drop_first": drop_first, "min_tokens": min_tokens, "compare": bool(compare),
                  "backtest": bool(backtest)},
        converged=pf.converged, condition_number=pf.cond if math.isfinite(pf.cond) else None,
        naive={"last_value": state.last, "line_intercept": a, "line_slope": b},
        forecast={"state": state.to_dict(), "exclude": str(run)}, pct_low=plo.tolist(), pct_high=phi.tolist(),
        profile_low=prof_lo, profile_high=prof_hi, n_boot_stalled=bs.n_stalled, n_boot_refit=bs.n_refit,
        n_effective=pf.n_eff,
        extra={**({"warmup_average": {**warm, "downweighted": sel.downweighted,
                                      "inclusion": [round(float(v), 9) for v in incl]}}
                  if warm else {}),
               **({"residual_autocorrelation": ar} if pf.dof > 0 else {}),
               **({"prior": {"mean_u": pf.prior.mean.tolist(), "sd_u": pf.prior.sd.tolist(),
                             "scale": float(pf.prior.scale)}} if pf.prior is not None else {})},
    )

    rf.backtest_raw = raw
    if backtest and default_forecast:
        set_default_forecast(rf, level)
    return rf


#: Two intervals disagree when an endpoint differs by more than this share of the wider width.
DISAGREE_SHARE = 0.2
#: Share of bootstrap replicates that failed or stalled above which the law is weakly identified.
WEAK_FAIL_SHARE = 0.02


def _hold(lo: np.ndarray, hi: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Widen [lo, hi] to hold x, leaving NaN (no interval) alone."""
    return (np.where(np.isnan(lo), lo, np.minimum(lo, x)), np.where(np.isnan(hi), hi, np.maximum(hi, x)))


def _intervals_disagree(a_lo: float, a_hi: float, b_lo: float, b_hi: float) -> bool:
    """Whether two intervals differ at an end by more than DISAGREE_SHARE of the wider width."""
    width = max(a_hi - a_lo, b_hi - b_lo)
    if not np.isfinite(width):
        return True
    return abs(a_lo - b_lo) > DISAGREE_SHARE * width or abs(a_hi - b_hi) > DISAGREE_SHARE * width


def _limit_warnings(law: LawForm, est: np.ndarray, plo: np.ndarray, phi: np.ndarray,
                    prof_lo: float | None, prof_hi: float | None, bs, n_boot: int, run: str) -> list[dict]:
    """``weakly_identified`` (limit parameter): bootstrap and profile disagree, or > 2% of the
    replicates failed or stalled."""
    ia0 = law.limit_index()
    out = []
    if ia0 is None or n_boot <= 0:
        return out
    name = law.limit_param
    share = (bs.n_failed + bs.n_stalled) / n_boot
    if prof_lo is not None and _intervals_disagree(plo[ia0], phi[ia0], prof_lo, prof_hi):
        out.append({"code": "weakly_identified", "parameter": name, "message": (
            f"run {run!r}: {name} = {est[ia0]:.4g}: bootstrap [{plo[ia0]:.3g}, {phi[ia0]:.3g}] and profile "
            f"likelihood [{prof_lo:.3g}, {prof_hi:.3g}] disagree; the wider is reported")})
    if share > WEAK_FAIL_SHARE:
        out.append({"code": "weakly_identified", "parameter": None, "message": (
            f"run {run!r}: {bs.n_failed + bs.n_stalled} of {n_boot} bootstrap replicates did not converge "
            f"({bs.n_failed} failed, {bs.n_stalled} stalled on a flat valley; > {WEAK_FAIL_SHARE:.0%}): "
            "the data leave some parameters free")})
    return out


def default_forecast_warning(run: str, n_runs: int = 0, replicates: Sequence[str] = (),
                             unpooled: str = "") -> dict:
    """The ``forecast_default`` warning: too few other runs to calibrate forecast bands (and,
    where the run has older ``replicates`` in the table, that the default ignores them; where
    no analog of the default lends to it, ``unpooled``: what its forecast rests on instead,
    :func:`unpooled_note`)."""
    more = f"; {unpooled}" if unpooled else ""
    if replicates:
        more += (f"; its older replicate(s) {', '.join(sorted(replicates))} (same activation and "
                 "parameter count, data past its cut) are not borrowed from: a forecast that borrows "
                 "from a seed is calibrated only with more runs of the recipe (docs/fitting.md "
                 "'Replicates')")
    return {"code": "forecast_default", "parameter": None, "message": (
        f"run {run!r}: forecast bands use the packaged default calibration (backtests of the paper's "
        f"published runs): {n_runs} other run(s) were fitted with it, fewer than the "
        "3 needed to calibrate leave-one-run-out; for runs of another recipe its bands have held "
        f"far fewer than 90% of later points (docs/fitting.md 'A lone run'){more}")}


def unpooled_note(rf: RunFit) -> str:
    """For a run on the packaged default: where none of the default's analog runs (the paper's)
    may lend to it (none of its activation is as small), what its forecast past the data rests
    on instead; "" where one may."""
    from sparsitylaws.runfit.calibration import default_forecast
    from sparsitylaws.runfit.forecast import POOLED, pool_moves

    model, curves = default_forecast()
    state = rf.forecast_state()
    if not state.n_params or np.isfinite(pool_moves(state, np.array([state.d_cut]), curves)["pool"]).any():
        return ""
    sizes = [c.n_params for c in curves if c.activation == rf.activation and c.n_params]
    smallest = f" (the smallest of its activation has {min(sizes) / 1e9:.2g}B parameters)" if sizes else ""
    own = sorted(k for k, w in model.weights_for(rf.activation).items() if w > 0 and k not in POOLED)
    rests = (f"its own {' and '.join(own)} (the pooled candidates' weights shared among them)" if own
             else "its own law alone")
    return (f"no run the default borrows from is as small as it{smallest}, so its forecast past the "
            f"data rests on {rests}, while the default's band was calibrated mostly on forecasts "
            "that borrowed")


def run_backtest_of(rf: RunFit, curve: RunCurve | None = None):
    """The run's backtest as calibration needs it (:class:`~sparsitylaws.runfit.calibration.RunBacktest`)."""
    from sparsitylaws.runfit.calibration import RunBacktest

    st = rf.forecast_state()
    if curve is None:
        curve = RunCurve.from_law(rf.run, rf.activation, st.n_params, rf.form, rf.estimate,
                                  rf.tokens_b_min, rf.tokens_b_max)
    return RunBacktest(rf.run, rf.activation, st.n_params, list(getattr(rf, "backtest_raw", []) or []),
                       curve, st)


def set_default_forecast(rf: RunFit, level: float = 0.9, n_runs: int = 0, replicates: Sequence[str] = ()) -> None:
    """Band ``rf``'s backtests and future forecasts with the packaged default model (the paper's
    published runs, this run's namesake left out), and warn that it is the default
    (:func:`default_forecast_warning`: ``n_runs`` other runs fitted with it, its older
    ``replicates``)."""
    from sparsitylaws.runfit.calibration import apply_model, default_forecast

    model, curves = default_forecast()
    rows, drift = apply_model(run_backtest_of(rf), model, curves, level)
    set_forecast(rf, model, curves, rows, drift, source="packaged default")
    rf.warnings = [w for w in rf.warnings if w.get("code") != "forecast_default"] + [
        default_forecast_warning(rf.run, n_runs, replicates, unpooled_note(rf))]


def set_forecast(rf: RunFit, model: ForecastModel, curves: Sequence[RunCurve], rows: list[dict],
                 drift: dict[str, float], *, source: str, group: str | None = None) -> None:
    """Give ``rf`` a calibrated forecast: ``model`` and ``curves`` for its predictions past the
    data (leaving the run itself out), its backtest ``rows`` banded by them, and its own drift
    for the final forecast; drop a ``forecast_default`` warning."""
    st = rf.forecast_state()
    st.own = {k: float(v) for k, v in drift.items()}
    st.own_n = len({r["cutoff"] for r in rows})
    rf.forecast = {"state": st.to_dict(), "exclude": rf.run, "source": source,
                   **({"group": group} if group else {})}
    rf.backtest = rows
    rf.attach_forecast(model, curves)
    rf.warnings = [w for w in rf.warnings if w.get("code") != "forecast_default"]
