"""What a report is about: the tables and the law set, found, read or fitted.

:func:`gather` reads the given tables (or ./measurements/) and takes the law set from
``--laws``, from a ``./laws.json`` fitted on exactly these tables (:func:`lawset_matches`),
from a fit made here, or from the packaged default; :class:`ReportInputs` holds the result.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.runfit.settings import N_BOOT

DEFAULT_DATA_DIR = Path("measurements")


@dataclass
class ReportInputs:
    """What a report is about: the law set, the measurements (if any) and how they were got."""

    lawset: Any
    table: pd.DataFrame | None
    files: list[Path]
    origin: str
    notes: list[str] = field(default_factory=list)
    n_boot: int | None = None
    seed: int | None = None


def _default_tables(tables: Sequence[os.PathLike | str]) -> list[Path]:
    if tables:
        return [Path(t) for t in tables]
    if DEFAULT_DATA_DIR.is_dir() and any(DEFAULT_DATA_DIR.rglob("*.parquet")):
        return [DEFAULT_DATA_DIR]
    return []


#: Where a law set written by ``sparsitylaws fit`` (its default ``-o``) is looked for.
FOUND_LAWSET = Path("laws.json")


def lawset_matches(ls: Any, table: pd.DataFrame) -> str | None:
    """None when ``ls`` was fitted on exactly these measurements (every run ``fit`` would fit
    from ``table``, with the same points: :func:`sparsitylaws.lawset.build.data_hash`), else
    why not, in a few words."""
    from sparsitylaws.lawset.build import data_hash
    from sparsitylaws.tables.rows import select_fit_rows

    prov = getattr(ls, "provenance", None) or {}
    hashes = prov.get("data_sha256")
    if not hashes:
        return "it records no data hashes"
    try:
        rows = select_fit_rows(table, prov.get("metric")).rows
    except SparsityLawsError as exc:
        return str(exc)
    skipped = set(prov.get("skipped_runs") or {})
    runs = set(rows["run"]) - skipped
    if runs != set(hashes):
        extra = sorted(runs - set(hashes)) or sorted(set(hashes) - runs)
        return f"its runs differ from the tables' (e.g. {extra[0]})"
    for run, want in hashes.items():
        if data_hash(rows[rows["run"] == run]) != want:
            return f"run {run}'s measurements changed since it was fitted"
    return None


def gather(tables: Sequence[os.PathLike | str] = (), laws: os.PathLike | str | None = None, *,
           n_boot: int = N_BOOT, seed: int = 0, fitted_by: str = "sparsitylaws report",
           find: bool = True, progress: Any = None) -> ReportInputs:
    """Read tables (or ./measurements/), and fit them unless ``laws`` is given.

    With ``find`` and no ``laws``, a ``./laws.json`` (what ``sparsitylaws fit`` writes) that
    was fitted on exactly these tables (:func:`lawset_matches`) is used instead of fitting
    them again; a note says which, and when it does not match, why.  ``progress`` is passed
    to :func:`sparsitylaws.lawset.build.fit_table` when the tables are fitted here.
    A table whose runs cannot be fitted (e.g. one checkpoint per run) is still reported:
    the law set falls back to the packaged default one and a note says why.
    """
    from sparsitylaws.lawset.fileformat import load_lawset
    from sparsitylaws.tables.io import find_parquet_files, read_table

    paths = _default_tables(tables)
    files = find_parquet_files(paths) if paths else []
    table = read_table(files) if files else None
    if laws is not None:
        return ReportInputs(load_lawset(laws), table, files, f"law set file {laws}")
    if table is None:
        return ReportInputs(load_lawset(None), None, [],
                            "the packaged default law set (no tables given, ./measurements/ holds none)")
    notes: list[str] = []
    if find and FOUND_LAWSET.is_file():
        try:
            found = load_lawset(FOUND_LAWSET)
            why = lawset_matches(found, table)
        except SparsityLawsError as exc:
            why = str(exc)
        if why is None:
            note = (f"The laws are {FOUND_LAWSET}, fitted on these same measurements "
                    f"({found.provenance.get('created_by', '?')}, {found.provenance.get('created_at', '?')}); "
                    "it is used as saved (pass --refit to fit the tables again).")
            return ReportInputs(found, table, files, f"law set file {FOUND_LAWSET} (it matches the tables)",
                                [note])
        notes.append(f"{FOUND_LAWSET} was not used ({why}); the tables are fitted here.")
    from sparsitylaws.lawset.build import fit_table

    try:
        ls = fit_table(table, n_boot=n_boot, seed=seed, name=f"fitted by {fitted_by}",
                       sources=[str(f) for f in files], progress=progress)
        ls.provenance["created_by"] = fitted_by
    except SparsityLawsError as exc:
        note = (f"The measurements could not be fitted ({exc}); the laws used are the packaged "
                "default law set, and the measurements are described as they are.")
        return ReportInputs(load_lawset(None), table, files, "the packaged default law set", notes + [note])
    return ReportInputs(ls, table, files, f"fitted here from {len(files)} table(s) "
                        f"(n_boot = {n_boot}, seed = {seed})", notes, n_boot=n_boot, seed=seed)
