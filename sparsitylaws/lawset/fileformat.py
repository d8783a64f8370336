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
LAWSET_VERSION = 3
#: Versions this reader understands (1 and 2: forecasts past the data use the packaged
#: default model, from each run's law and stored naive line).
READABLE_VERSIONS = (1, 2, 3)
DEFAULT_LAWSET_RESOURCE = "default_lawset.json"


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
        range end.  Returns one row per (run, token count) with the estimate, the
        confidence band (parameter uncertainty), the prediction band (plus point noise),
        both widened beyond the fitted range by the calibrated forecast-error term
        (``law_low``/``law_high``: the law's own band without it), and an extrapolation flag.
        """
        if not 0 < level < 1:
            raise SparsityLawsError(f"level must lie in (0, 1), got {level}")
        names = self.run_names() if run is None else [run] if isinstance(run, str) else list(run)
        frames = []
        for name in names:
            fit = self.get_run(name)
            if tokens is None:
                grid = np.asarray([fit.tokens_b_max * 1e9])
            else:
                grid = np.atleast_1d(np.asarray(tokens, dtype=float))
                if not np.all(np.isfinite(grid)) or np.any(grid <= 0):
                    raise SparsityLawsError("tokens must be finite and > 0")
            frame = fit.predict(grid, level=level)
            frame.insert(0, "run", name)
            frames.append(frame)
        if not frames:
            raise LawSetError(f"law set '{self.name}' holds no fitted runs")
        return pd.concat(frames, ignore_index=True)

    # --- (de)serialization --------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": LAWSET_FORMAT,
            "format_version": LAWSET_VERSION,
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
        runs_raw = data.get("runs") or {}
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
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise LawSetError(f"{path}: no such law-set file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise LawSetError(f"{path}: cannot read ({exc})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LawSetError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        return cls.from_dict(data, source=str(path))


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
