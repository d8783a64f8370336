"""Forecast-error calibration: how far a law's forecast may miss, as a function of horizon.

A law fitted to the early part of a run and extrapolated misses by more than its parameter
and point-noise band says: the form itself bends away from the truth, and the miss grows
with the horizon.  This module turns rolling-origin backtests of *other* runs into an extra
band term (method and evidence: docs/fitting.md, "Forecast calibration").

The model (normalized split-conformal, calibrated leave-one-run-out)::

    horizon h      = max(0, ln(D_target / D_last_fitted))
    forecast scale f = sigma * h + max(|line - law|, |last - law|)
    score s        = sqrt(max(0, e^2 - half_law^2)) / f        (one per backtest point)
    band half-width = sqrt(half_law^2 + (q * f)^2)              (each side)

``e`` is the law's error at a later checkpoint, ``half_law`` the law's own prediction-band
half-width on the side of the truth, ``sigma`` the run's residual sd, ``line`` the straight
line in ln D through the last third of the fitted points and ``last`` the last fitted
measurement (the two naive forecasts): when the law and the naive forecasts disagree, the
data cannot tell them apart and the band says so.  ``q`` is the conformal quantile (level
``level``, finite-sample correction) of the scores of the runs *other* than the one being
predicted.  Inside the fitted range (h = 0 and the naive forecasts are not used) the band
is the law's own.

Public API (used by runfit, lawset and the planning code)::

    forecast_scale(horizon, sigma, disagreement=0.0) -> ndarray     # f
    score(error, half_law, scale) -> ndarray                        # s
    ForecastCalibration.from_scores(rows, source=...)               # rows: run, cut, score, last
    ForecastCalibration.quantile(level=0.9, exclude=None) -> float  # q (leave-run-out with exclude)
    ForecastCalibration.horizon_quantile(level=0.9, exclude=None)   # q for f = sigma * h alone
    ForecastCalibration.halfwidth(half_law, scale, level=0.9, exclude=None) -> ndarray
    ForecastCalibration.to_dict() / from_dict(d)
    default_calibration() -> ForecastCalibration                    # packaged, from the published runs

Analogs (other runs' curve shapes in tokens-per-parameter space): when the law set knows the
runs' non-embedding parameter counts, a forecast from D_last to D also asks what each other run
of the same activation did between the same tokens per parameter (its fitted law between
D_last N_j / N and D N_j / N, where it was fitted there): ``analog = law(D_last) + that change``.
The band is widened to hold the median of those analog forecasts (:func:`analog_forecast`):
a young run whose own law says "converged" is not believed more than what older runs did
after the same tokens per parameter.

``python -m sparsitylaws.runfit.calibration DIR`` rebuilds the packaged default
(sparsitylaws/runfit/forecast_default.json) from the published runs in DIR
(../shared/reference/sparsinglaw-data).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from sparsitylaws.errors import LawSetError

__all__ = [
    "DEFAULT_RESOURCE",
    "FORECAST_METHOD",
    "MIN_RUNS",
    "ForecastCalibration",
    "analog_forecast",
    "analog_spec",
    "default_calibration",
    "forecast_scale",
    "horizon",
    "score",
]

FORECAST_METHOD = ("normalized split-conformal, leave-one-run-out: score = excess error beyond the "
                   "law's band / (sigma * ln(D/D_last_fitted) + max |naive - law|)")
DEFAULT_RESOURCE = "forecast_default.json"
#: Fewest runs (besides the one predicted) whose backtests may calibrate a band; fewer falls
#: back to the packaged default with a ``forecast_default`` warning.
MIN_RUNS = 3


def horizon(tokens_b: np.ndarray | float, last_fitted_b: float) -> np.ndarray:
    """ln(D / D_last_fitted), 0 inside the fitted range."""
    d = np.asarray(tokens_b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.maximum(np.log(d / float(last_fitted_b)), 0.0)


def forecast_scale(h: np.ndarray | float, sigma: float, disagreement: np.ndarray | float = 0.0
                   ) -> np.ndarray:
    """f = sigma * h + disagreement (0 where h = 0): the unit in which forecast error is calibrated."""
    h = np.asarray(h, dtype=float)
    dis = np.where(h > 0, np.abs(np.asarray(disagreement, dtype=float)), 0.0)
    s = float(sigma) if math.isfinite(float(sigma)) else 0.0
    return s * h + dis


def score(error: np.ndarray | float, half_law: np.ndarray | float, scale: np.ndarray | float
          ) -> np.ndarray:
    """Excess error beyond the law's own band, in units of the forecast scale (0 when inside)."""
    e, hl, f = (np.asarray(x, dtype=float) for x in (error, half_law, scale))
    excess = np.sqrt(np.maximum(e**2 - hl**2, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(excess > 0, np.where(f > 0, excess / f, np.inf), 0.0)


def analog_spec(run: str, rf, n_params: float | None) -> dict | None:
    """What another run contributes as an analog: its fitted law, range and size (None without size)."""
    if not n_params:
        return None
    return {"run": run, "activation": rf.activation, "form": rf.form, "estimate": list(rf.estimate),
            "tokens_b_min": rf.tokens_b_min, "tokens_b_max": rf.tokens_b_max, "n_params": float(n_params)}


def analog_forecast(at_last: float, last_b: float, tokens_b: np.ndarray, n_params: float,
                    analogs: Sequence[Mapping]) -> np.ndarray:
    """Median analog forecast at each D (billions), NaN where no analog covers [D_last, D].

    For each analog j: tau = D / n_params; its change A_j(tau_t N_j) - A_j(tau_c N_j) by its own
    fitted law, used only where both lie in its fitted token range.
    """
    from sparsitylaws.runfit.forms import get_form

    d = np.atleast_1d(np.asarray(tokens_b, dtype=float))
    cols = []
    for a in analogs:
        scale = float(a["n_params"]) / float(n_params)
        dc, dt = last_b * scale, d * scale
        form = get_form(a["form"])
        th = np.asarray(a["estimate"], dtype=float)
        ok = (dt <= float(a["tokens_b_max"]) * (1 + 1e-12)) & (dc >= float(a["tokens_b_min"]) * (1 - 1e-12))
        change = form.evaluate(dt, th) - form.evaluate([dc], th)[0]
        cols.append(np.where(ok & (d > last_b), at_last + change, np.nan))
    if not cols:
        return np.full(d.shape, np.nan)
    M = np.vstack(cols)
    out = np.full(d.shape, np.nan)
    has = np.any(np.isfinite(M), axis=0)
    if has.any():
        out[has] = np.nanmedian(M[:, has], axis=0)
    return out


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """Split-conformal quantile: the ceil((n + 1) level)-th smallest score (inf when n is too small)."""
    s = np.sort(np.asarray(scores, dtype=float))
    n = s.size
    k = math.ceil((n + 1) * float(level))
    if n == 0 or k > n:
        return math.inf
    return float(s[k - 1])


@dataclass
class ForecastCalibration:
    """Backtest scores of several runs, and the quantiles that widen forecast bands.

    ``scores`` maps run -> list of scores (every later checkpoint of every cut);
    ``last`` maps run -> scores of the last checkpoint only.  ``cuts`` are the cutoff fractions
    of the token range, ``source`` says where the scores came from.
    """

    scores: dict[str, list[float]]
    cuts: list[float]
    source: str
    last: dict[str, list[float]] = field(default_factory=dict)
    method: str = FORECAST_METHOD
    min_runs: int = MIN_RUNS
    #: kind ("last", "line") -> run -> scores of the naive forecast, with half_law = t * sigma
    #: and scale = sigma * h: the same calibration for the two naive forecasts (skill scores)
    naive: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    #: analog specs (:func:`analog_spec`) that come with this calibration (the packaged
    #: default carries the published runs' fitted laws; a law set's own runs are added there)
    analogs: list[dict] = field(default_factory=list)
    #: run -> scores with the horizon-only scale f = sigma * h (no disagreement term): for
    #: callers that have no naive forecasts (e.g. a configuration-level prediction)
    horizon_scores: dict[str, list[float]] = field(default_factory=dict)
    #: the longest horizon ln(D / D_last) among the backtests: beyond it the error model is
    #: itself extrapolated (predict warns)
    max_horizon: float = math.nan

    @classmethod
    def from_scores(cls, rows: Iterable[Mapping], *, source: str) -> ForecastCalibration:
        """From backtest rows with keys run, cutoff, score, is_last (score None/NaN rows skipped)."""
        from sparsitylaws.runfit.pointfit import t_quantile

        scores: dict[str, list[float]] = {}
        last: dict[str, list[float]] = {}
        naive: dict[str, dict[str, list[float]]] = {"last": {}, "line": {}}
        hscores: dict[str, list[float]] = {}
        cuts: set[float] = set()
        hmax = math.nan
        for r in rows:
            s = r.get("score")
            if s is None or np.isnan(float(s)):
                continue
            run = str(r["run"])
            scores.setdefault(run, []).append(float(s))
            if r.get("is_last"):
                last.setdefault(run, []).append(float(s))
            cuts.add(float(r["cutoff"]))
            if r.get("horizon") is not None:
                hmax = float(np.fmax(hmax, float(r["horizon"])))
            if "law_low" in r and r.get("sigma") is not None:
                half = (r["predicted"] - r["law_low"]) if r["measured"] < r["predicted"] else (
                    r["law_high"] - r["predicted"])
                hs = score(r["predicted"] - r["measured"], half, r["sigma"] * r["horizon"])
                hscores.setdefault(run, []).append(float(hs))
            if "naive_last" in r and r.get("sigma") is not None:
                tq = t_quantile(0.9, int(r.get("dof", 0)))
                for kind in ("last", "line"):
                    ns = score(r["naive_" + kind] - r["measured"], tq * r["sigma"], r["sigma"] * r["horizon"])
                    naive[kind].setdefault(run, []).append(float(ns))
        srt = lambda d: {k: sorted(v) for k, v in sorted(d.items())}  # noqa: E731
        return cls(srt(scores), sorted(cuts), source, srt(last),
                   naive={k: srt(v) for k, v in naive.items() if v}, horizon_scores=srt(hscores),
                   max_horizon=hmax)

    @property
    def runs(self) -> list[str]:
        """Runs whose backtests are in the calibration."""
        return sorted(self.scores)

    @property
    def n_points(self) -> int:
        """Number of backtest points (later checkpoints, all cuts)."""
        return sum(len(v) for v in self.scores.values())

    @property
    def n_forecasts(self) -> int:
        """Number of (run, cut) forecasts of a last checkpoint."""
        return sum(len(v) for v in self.last.values())

    def usable(self, exclude: str | None = None) -> bool:
        """Whether enough runs other than ``exclude`` are present to calibrate."""
        return len([r for r in self.scores if r != exclude]) >= self.min_runs

    def quantile(self, level: float = 0.9, exclude: str | None = None) -> float:
        """Conformal quantile q of the scores of every run except ``exclude``."""
        pool = [s for r, v in self.scores.items() if r != exclude for s in v]
        return conformal_quantile(np.asarray(pool), level)

    def horizon_quantile(self, level: float = 0.9, exclude: str | None = None) -> float:
        """Conformal quantile for the horizon-only scale f = sigma * ln(D / D_last): use this
        (not :meth:`quantile`) when there is no naive-forecast disagreement to add, e.g.
        ``half = hypot(half_law, horizon_quantile(level) * sigma * h)``."""
        pool = [s for r, v in self.horizon_scores.items() if r != exclude for s in v]
        return conformal_quantile(np.asarray(pool), level)

    def naive_quantile(self, kind: str, level: float = 0.9, exclude: str | None = None) -> float:
        """Conformal quantile of a naive forecast's scores ("last" or "line"), runs but ``exclude``."""
        pool = [s for r, v in self.naive.get(kind, {}).items() if r != exclude for s in v]
        return conformal_quantile(np.asarray(pool), level)

    def halfwidth(self, half_law: np.ndarray | float, scale: np.ndarray | float, level: float = 0.9,
                  exclude: str | None = None, horizon_only: bool = False) -> np.ndarray:
        """Band half-width sqrt(half_law^2 + (q f)^2) for one side (``horizon_only``: f is
        sigma * h alone and q the :meth:`horizon_quantile`)."""
        q = self.horizon_quantile(level, exclude) if horizon_only else self.quantile(level, exclude)
        hl, f = np.asarray(half_law, dtype=float), np.asarray(scale, dtype=float)
        with np.errstate(invalid="ignore"):
            extra = np.where(f > 0, q * f, 0.0)
        return np.sqrt(hl**2 + extra**2)

    def summary(self) -> dict:
        """Provenance without the scores: runs, cuts, counts, method, source."""
        return {"method": self.method, "source": self.source, "runs": self.runs, "cuts": self.cuts,
                "n_forecasts": self.n_forecasts, "n_points": self.n_points,
                "q90": _finite(self.quantile(0.9))}

    def to_dict(self) -> dict:
        """JSON-safe dict (inf scores as the string "inf")."""
        enc = {k: [_enc(x) for x in v] for k, v in self.scores.items()}
        enc_last = {k: [_enc(x) for x in v] for k, v in self.last.items()}
        enc_naive = {k: {r: [_enc(x) for x in v] for r, v in d.items()} for k, d in self.naive.items()}
        return {"method": self.method, "source": self.source, "cuts": list(self.cuts),
                "min_runs": self.min_runs, "scores": enc, "last": enc_last, "naive": enc_naive,
                "analogs": list(self.analogs), "max_horizon": _finite(self.max_horizon),
                "horizon_scores": {k: [_enc(x) for x in v] for k, v in self.horizon_scores.items()}, **{
                    k: v for k, v in self.summary().items() if k in ("runs", "n_forecasts", "n_points")}}

    @classmethod
    def from_dict(cls, d: Mapping) -> ForecastCalibration:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls({k: [_dec(x) for x in v] for k, v in d["scores"].items()},
                       [float(c) for c in d["cuts"]], str(d["source"]),
                       {k: [_dec(x) for x in v] for k, v in (d.get("last") or {}).items()},
                       str(d.get("method", FORECAST_METHOD)), int(d.get("min_runs", MIN_RUNS)),
                       {k: {r: [_dec(x) for x in v] for r, v in dd.items()}
                        for k, dd in (d.get("naive") or {}).items()},
                       [dict(a) for a in (d.get("analogs") or [])],
                       {k: [_dec(x) for x in v] for k, v in (d.get("horizon_scores") or {}).items()},
                       math.nan if d.get("max_horizon") is None else float(d["max_horizon"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise LawSetError(f"forecast calibration is malformed ({exc})") from None


def _enc(x: float) -> float | str:
    return x if math.isfinite(x) else "inf"


def _dec(x: float | str) -> float:
    return math.inf if x == "inf" else float(x)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


_DEFAULT: ForecastCalibration | None = None


def default_calibration() -> ForecastCalibration:
    """The packaged calibration (backtests of the paper's 8 published runs at 30/50/70% cuts)."""
    global _DEFAULT
    if _DEFAULT is None:
        text = resources.files("sparsitylaws.runfit").joinpath(DEFAULT_RESOURCE).read_text("utf-8")
        _DEFAULT = ForecastCalibration.from_dict(json.loads(text))
    return _DEFAULT
