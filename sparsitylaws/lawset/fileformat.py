"""The law set: fitted laws as one versioned JSON file, and predictions from it.

A law set holds, per training run, the fitted data law (a
:class:`~sparsitylaws.runfit.run.RunFit`: form, parameters with intervals, bootstrap draws,
diagnostics, backtests), what is known of each run's architecture (``run_info``), an
optional ``architecture`` section (width/depth and scale laws, written and read by
:mod:`sparsitylaws.architecture`), and provenance (data hashes, versions, seed).

Everything needed to predict is stored in the file, floats at full precision, so that
``LawSet.load(p).predict(...)`` is bit-identical to predicting from the object that was
saved.  Format: ``{"format": "sparsitylaws-lawset", "format_version": 3, ...}``; readers
also read versions 1 and 2 (their forecasts past the data use the packaged default model) and
refuse versions they do not know (docs/lawset.md).  Version 3 adds a top-level ``forecast``
section (the calibrated forecast models, one per measurement set, and the runs' curves that
serve as analogs) and, per run, its forecast origin and model group.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sparsitylaws.errors import LawSetError, SparsityLawsError
from sparsitylaws.tables.atomic import atomic_write_text

LAWSET_FORMAT = "sparsitylaws-lawset"
#: The newest version; a file is written at the lowest version that holds what it contains
#: (:func:`version_for`), so older readers keep reading the files they read right.
LAWSET_VERSION = 6
#: Versions this reader understands (1 and 2: forecasts past the data use the packaged
#: default model, from each run's law and stored naive line; 4: a forecast model may borrow
#: from replicates, ``same_scale``, which a version-3 reader would ignore and so misread; 5: a
#: model may weight the other activation's calibration scores, ``cross``, which a version-4
#: reader would ignore, pooling them; 6: a model's band may widen with the forecast's projected
#: move, ``move``, which a version-5 reader would ignore, narrowing the band).
READABLE_VERSIONS = (1, 2, 3, 4, 5, 6)
DEFAULT_LAWSET_RESOURCE = "default_lawset.json"


def version_for(forecast: Mapping | None) -> int:
    """The format version a law set with this ``forecast`` section is written at: 6 when a
    model's band widens with the projected move (``move``), 5 when one weights the other
    activation's scores (``cross``), 4 when one borrows from replicates (``same_scale``), else 3."""
    models = [m or {} for m in ((forecast or {}).get("models") or {}).values()]
    if any(m.get("move") for m in models):
        return 6
    if any(m.get("cross") for m in models):
        return 5
    return 4 if any(bool(m.get("same_scale")) for m in models) else 3


def _runfit_class():
    from sparsitylaws.runfit.run import RunFit

    return RunFit


@dataclass
class LawSet:
    """Fitted laws with their provenance; see the module docstring."""

    name: str
    runs: dict[str, Any] = field(default_factory=dict)  # run -> RunFit
    run_info: dict[str, dict] = field(default_factory=dict)
    architecture: dict | None = None
    provenance: dict = field(default_factory=dict)
    source: str | None = None  # where it was loaded from (not saved)
    #: calibrated forecast models and analog curves (format version 3; None: packaged default)
    forecast: dict | None = None

    def __post_init__(self) -> None:
        self._attach_forecasts()

    def _attach_forecasts(self) -> None:
        """Give each run the forecast model of its group and the analog curves."""
        if not self.forecast:
            return
        from sparsitylaws.runfit.forecast import ForecastModel, RunCurve

        try:
            models = {g: ForecastModel.from_dict(m) for g, m in (self.forecast.get("models") or {}).items()}
            curves = [RunCurve.from_dict(c) for c in self.forecast.get("curves") or []]
        except (AttributeError, TypeError) as exc:
            raise LawSetError(f"law set '{self.name}': forecast section is malformed ({exc})") from None
        for rf in self.runs.values():
            g = (getattr(rf, "forecast", None) or {}).get("group")
            if g in models:
                rf.attach_forecast(models[g], curves)

    # --- queries ------------------------------------------------------------------------
    def run_names(self) -> list[str]:
        return sorted(self.runs)

    def get_run(self, run: str):
        """The RunFit of ``run``; the error lists the runs the law set holds."""
        if run not in self.runs:
            held = ", ".join(self.run_names()) or "none"
            raise LawSetError(f"law set '{self.name}' has no run {run!r} (runs: {held})")
        return self.runs[run]

    def predict(
        self,
        run: str | Sequence[str] | None = None,
        tokens: float | Iterable[float] | None = None,
        level: float = 0.9,
    ) -> pd.DataFrame:
        """Activation ratio of fitted run(s) at raw token counts, with intervals.

        ``run=None`` predicts every run.  ``tokens=None`` uses each run's fitted token
        range end.  One row per (run, token count), in the vocabulary of
        :func:`sparsitylaws.predict` (docs/lawset.md lists both): ``tokens`` (raw) and
        ``tokens_b``, ``activation_ratio`` (the fitted law), ``ratio_low``/``ratio_high``
        (where the run's true curve lies: parameter uncertainty), ``pred_low``/``pred_high``
        (where one new measured checkpoint would fall: plus point noise); past the last
        fitted checkpoint (``forecast`` True) the estimate and both bands are the calibrated
        within-run forecast (:mod:`sparsitylaws.runfit.forecast`), and ``law_ratio``/
        ``law_low``/``law_high`` keep the law's own curve and point band; ``sparsity``,
        ``level``, ``extrapolation`` (log10 units outside the run's fitted token range, 0
        inside) and ``warning`` (text, "" inside); the structured warnings are in
        ``attrs["warnings"]``.
        """
        if not 0 < level < 1:
            raise SparsityLawsError(f"argument 'level' must lie in (0, 1), got {level}")
        names = self.run_names() if run is None else [run] if isinstance(run, str) else list(run)
        frames, warnings = [], []
        for name in names:
            fit = self.get_run(name)
            if tokens is None:
                grid = np.asarray([fit.tokens_b_max * 1e9])
            else:
                try:
                    grid = np.atleast_1d(np.asarray(tokens, dtype=float))
                except (TypeError, ValueError):
                    raise SparsityLawsError(f"argument 'tokens' must be numbers, got {tokens!r}") from None
                if grid.ndim != 1 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
                    raise SparsityLawsError("argument 'tokens' must be finite raw token counts > 0 "
                                            "(a number or a list of them)")
            frame = _in_vocabulary(fit.predict(grid, level=level), fit, level)
            frame.insert(0, "run", name)
            warnings += frame.attrs.get("warnings", [])
            frames.append(frame)
        if not frames:
            raise LawSetError(f"law set '{self.name}' holds no fitted runs")
        out = pd.concat(frames, ignore_index=True)
        out.attrs["warnings"] = warnings
        return out

    # --- (de)serialization --------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": LAWSET_FORMAT,
            "format_version": version_for(self.forecast),
            "name": self.name,
            "provenance": self.provenance,
            "run_info": self.run_info,
            "runs": {name: self.runs[name].to_dict() for name in self.run_names()},
            "architecture": self.architecture,
            **({"forecast": self.forecast} if self.forecast else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "<dict>") -> LawSet:
        if not isinstance(data, Mapping):
            raise LawSetError(f"{source}: a law set must be a JSON object")
        if data.get("format") != LAWSET_FORMAT:
            raise LawSetError(
                f"{source}: not a sparsitylaws law set (format is {data.get('format')!r}, "
                f"expected {LAWSET_FORMAT!r})")
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise LawSetError(f"{source}: missing or non-integer format_version")
        if version not in READABLE_VERSIONS:
            raise LawSetError(
                f"{source}: unknown law-set format version {version} (this sparsitylaws reads "
                f"versions {', '.join(map(str, READABLE_VERSIONS))}); "
                f"{'upgrade sparsitylaws' if version > LAWSET_VERSION else 'refit'}")
        if "runs" not in data:
            raise LawSetError(f"{source}: the law set has no 'runs' section (a law set lists its "
                              "fitted runs, {} when it has none); the file is incomplete: refit it")
        runs_raw = data["runs"] if data["runs"] is not None else {}
        if not isinstance(runs_raw, Mapping):
            raise LawSetError(f"{source}: 'runs' must be an object of run name -> fitted run")
        fitted_on = (data.get("provenance") or {}).get("data_sha256") or {}
        lost = sorted(set(fitted_on) - set(runs_raw)) if isinstance(fitted_on, Mapping) else []
        if lost:
            raise LawSetError(f"{source}: the 'runs' section lacks {len(lost)} run(s) the law set was "
                              f"fitted on (e.g. {lost[0]!r}); the file is incomplete: refit it")
        runs = {}
        if runs_raw:
            RunFit = _runfit_class()
            for name, raw in runs_raw.items():
                try:
                    runs[name] = RunFit.from_dict(raw)
                except (KeyError, TypeError, ValueError) as exc:
                    raise LawSetError(f"{source}: run {name!r} is malformed ({exc})") from None
        return cls(
            name=str(data.get("name") or Path(source).stem),
            runs=runs,
            run_info=dict(data.get("run_info") or {}),
            architecture=data.get("architecture"),
            provenance=dict(data.get("provenance") or {}),
            source=source,
            forecast=data.get("forecast") if version >= 3 else None,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=True, sort_keys=False) + "\n"

    def save(self, path: str | os.PathLike) -> Path:
        """Write the law set atomically (temporary file + rename)."""
        return atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> LawSet:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise LawSetError(f"{path}: no such law-set file") from None
        except IsADirectoryError:
            raise LawSetError(f"{path}: is a folder, not a law-set file") from None
        except OSError as exc:
            raise LawSetError(f"{path}: cannot read ({exc.strerror or exc})") from None
        if raw[:4] == b"PAR1":
            raise LawSetError(f"{path}: is a Parquet measurement table, not a law set (a law set is the "
                              "JSON file 'sparsitylaws fit -o laws.json' writes from such tables)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise LawSetError(f"{path}: not a law set (a binary file, not JSON text)") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LawSetError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(data, source=str(path))


def _in_vocabulary(frame: pd.DataFrame, fit: Any, level: float) -> pd.DataFrame:
    """A :meth:`RunFit.predict` frame in the column names :func:`sparsitylaws.predict` uses."""
    d = frame["tokens_b"].to_numpy(float)
    lo, hi = float(fit.tokens_b_min), float(fit.tokens_b_max)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.maximum(0.0, np.maximum(np.log10(d / hi), np.log10(lo / d)))
    dist = np.where(np.isfinite(dist), dist, 0.0)
    at = sorted({str(w.get("parameter")) for w in (getattr(fit, "warnings", None) or [])
                 if w.get("code") == "param_at_bound" and w.get("parameter")})
    bound = (f"the fit left {', '.join(at)} at its bound (not identified by the data, see the run's "
             "param_at_bound warning)") if at else ""
    # a forecast banded by the packaged default carries the caveat of its promise on every row
    # it bands, not only in the law set's warnings (a planning script reads rows)
    on_default = any(w.get("code") == "forecast_default" for w in (getattr(fit, "warnings", None) or []))
    default = ("band from the packaged default (calibrated on the paper's runs): for runs of another "
               "recipe it has held far fewer than 90% of later points (docs/fitting.md 'A lone run')"
               ) if on_default else ""
    warn = ["; ".join(m for m in (
        "" if x <= 0 else
        f"tokens {t:.4g} is {10 ** x:.3g}x {'above the last' if t > hi * 1e9 else 'below the first'} "
        f"fitted checkpoint (fitted {lo * 1e9:.4g} to {hi * 1e9:.4g})", bound, default if fc else "") if m)
            for t, x, fc in zip(frame["tokens"].to_numpy(float), dist, frame["forecast"].to_numpy(bool), strict=True)]
    out = pd.DataFrame({
        "tokens": frame["tokens"], "tokens_b": frame["tokens_b"],
        "activation_ratio": frame["estimate"],
        "ratio_low": frame["conf_low"], "ratio_high": frame["conf_high"],
        "pred_low": frame["pred_low"], "pred_high": frame["pred_high"],
        "sparsity": 1.0 - frame["estimate"], "level": float(level),
        "law_ratio": frame["law_estimate"], "law_low": frame["law_low"], "law_high": frame["law_high"],
        "forecast": frame["forecast"], "extrapolation": dist, "warning": warn,
    })
    out.attrs["warnings"] = list(frame.attrs.get("warnings", []))
    return out


def default_lawset_text() -> str:
    """The packaged default law set (built from the paper's published figures)."""
    return resources.files("sparsitylaws.lawset").joinpath(DEFAULT_LAWSET_RESOURCE).read_text("utf-8")


def load_lawset(path: str | os.PathLike | None = None) -> LawSet:
    """Load a law set from ``path``; ``None`` loads the packaged default law set."""
    if path is not None:
        return LawSet.load(path)
    try:
        text = default_lawset_text()
    except FileNotFoundError:
        raise LawSetError("the packaged default law set is missing; reinstall sparsitylaws") from None
    return LawSet.from_dict(json.loads(text), source="default law set (packaged)")
