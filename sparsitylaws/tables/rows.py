"""Which rows of a measurement table a law is fitted on: one selection path for every command.

``fit``, ``crosscheck``, ``report`` and ``plot`` all call :func:`select_fit_rows`, so they
agree on the metric (CETT-PPL-p% by default, or the table's only metric), the metric
argument, the runs, and on leaving out rows the table marks as not for fitting.

The not-for-fitting flag is the optional ``not_for_fitting`` column: a non-empty text (the
reason, e.g. "activation swapped without retraining: broken model") or ``True`` marks a row;
empty, null, ``False``, "false", "no" and "0" leave it fittable.  A whole run is left out
when any of its rows is marked, so a run is never fitted on part of its flagged data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sparsitylaws.errors import SparsityLawsError

__all__ = ["DEFAULT_METRIC", "FLAG_COLUMN", "FitRows", "excluded_runs", "normalize_flag", "not_for_fitting_mask",
           "select_fit_rows", "select_metric_rows"]

#: The metric laws are fitted on unless another is asked for (CETT-PPL-p%).
DEFAULT_METRIC = "ppl-p"

#: Column marking rows that must not be fitted (text: the reason).
FLAG_COLUMN = "not_for_fitting"
_FALSE_WORDS = frozenset({"", "false", "no", "0", "nan", "none", "<na>"})


@dataclass(frozen=True)
class FitRows:
    """The selected rows, the metric they are in, and the runs left out as not for fitting."""

    rows: pd.DataFrame
    metric: str
    excluded: dict[str, str] = field(default_factory=dict)


def not_for_fitting_mask(df: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the rows marked not for fitting (all False without the column)."""
    if FLAG_COLUMN not in df.columns:
        return np.zeros(len(df), dtype=bool)
    col = df[FLAG_COLUMN]
    text = col.astype(object).where(col.notna(), "").map(lambda v: str(v).strip().lower())
    return (~text.isin(_FALSE_WORDS)).to_numpy()


def normalize_flag(col: pd.Series) -> pd.Series:
    """The flag column as text: the reason, a generic reason for ``True``, null when fittable."""
    def one(v: object) -> str | None:
        if v is None or (np.isscalar(v) and pd.isna(v)):
            return None
        text = str(v).strip()
        if text.lower() in _FALSE_WORDS:
            return None
        return "marked not for fitting" if text.lower() in ("true", "yes", "1") else text

    return pd.Series([one(v) for v in col], index=col.index, dtype=object, name=col.name)


def excluded_runs(df: pd.DataFrame) -> dict[str, str]:
    """Run -> reason for every run with a row marked not for fitting."""
    if FLAG_COLUMN not in df.columns:
        return {}
    mask = not_for_fitting_mask(df)
    out: dict[str, str] = {}
    for run, reason in zip(df.loc[mask, "run"], df.loc[mask, FLAG_COLUMN], strict=True):
        out.setdefault(str(run), normalize_flag(pd.Series([reason])).iloc[0] or "marked not for fitting")
    return out


def select_metric_rows(df: pd.DataFrame, metric: str | None, metric_arg: float | None) -> tuple[pd.DataFrame, str]:
    """The rows of one metric (and argument); errors say which metrics the table has."""
    have = sorted(df["metric"].unique())
    if metric is None:
        metric = DEFAULT_METRIC if DEFAULT_METRIC in have else (have[0] if len(have) == 1 else None)
        if metric is None:
            raise SparsityLawsError(
                f"the table has several metrics ({', '.join(have)}) and no {DEFAULT_METRIC} rows; "
                "choose one with --metric")
    rows = df[df["metric"] == metric.lower()]
    if rows.empty:
        raise SparsityLawsError(f"--metric {metric}: no rows with that metric (the table has {', '.join(have)})")
    if metric_arg is not None:
        rows = rows[np.isclose(rows["metric_arg"].astype(float), float(metric_arg))]
        if rows.empty:
            raise SparsityLawsError(f"--metric-arg {metric_arg:g}: no {metric} rows with that argument")
    return rows, metric.lower()


def select_fit_rows(table: pd.DataFrame, metric: str | None = None, metric_arg: float | None = None,
                    runs: Sequence[str] | None = None, include_excluded: bool = False) -> FitRows:
    """The rows a law is fitted on: fittable runs (unless ``include_excluded``), one metric,
    optionally only ``runs``.  Bad choices raise one line naming the option."""
    excluded = {} if include_excluded else excluded_runs(table)
    if runs:
        known = set(table["run"])
        for name in runs:
            if name not in known:
                raise SparsityLawsError(f"--run {name}: no such run (runs: {', '.join(sorted(known))})")
            if name in excluded:
                raise SparsityLawsError(
                    f"--run {name}: the table marks this run not for fitting ({excluded[name]}; "
                    f"column {FLAG_COLUMN})")
    usable = table[~table["run"].isin(list(excluded))] if excluded else table
    if usable.empty:
        reasons = "; ".join(f"{r}: {why}" for r, why in excluded.items())
        raise SparsityLawsError(f"nothing to fit: every run is marked not for fitting ({reasons})")
    rows, metric = select_metric_rows(usable, metric, metric_arg)
    if runs:
        have = set(rows["run"])
        missing = [r for r in runs if r not in have]
        if missing:
            raise SparsityLawsError(
                f"--run {missing[0]}: no {metric} rows for this run (runs with {metric}: "
                f"{', '.join(sorted(have))})")
        rows = rows[rows["run"].isin(list(runs))]
    return FitRows(rows=rows, metric=metric, excluded=excluded)
