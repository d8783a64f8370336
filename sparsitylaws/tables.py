"""Reading and writing measurement tables (Parquet), safely.

Writes are atomic (temporary file in the same folder, fsync, ``os.replace``), so a crash
or kill never leaves a half-written table and never loses rows already written.  Reads
accept files and directories (every ``*.parquet`` below, sorted) and validate with
:func:`sparsitylaws.schema.validate_frame`, so every error names its file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sparsitylaws.atomic import atomic_path
from sparsitylaws.errors import SchemaError, SparsityLawsError
from sparsitylaws.schema import (
    METADATA_KEY,
    TABLE_FORMAT_VERSION,
    row_keys,
    to_arrow,
    validate_frame,
)

PathLike = str | os.PathLike


def find_parquet_files(paths: Iterable[PathLike]) -> list[Path]:
    """Expand files and directories into a sorted, de-duplicated list of Parquet files."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*.parquet") if p.is_file())
            if not found:
                raise SparsityLawsError(f"{path}: directory holds no .parquet files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise SparsityLawsError(f"{path}: no such file or directory")
    unique: dict[Path, None] = {}
    for f in files:
        unique.setdefault(f.resolve(), None)
    return list(unique)


def _read_one(path: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SchemaError(f"{path}: not a readable Parquet file ({exc})") from None
    meta = table.schema.metadata or {}
    version = meta.get(METADATA_KEY)
    if version is not None:
        try:
            number = int(version)
        except ValueError:
            raise SchemaError(f"{path}: unreadable table version {version!r}") from None
        if number > TABLE_FORMAT_VERSION:
            raise SchemaError(
                f"{path}: table format version {number} is newer than this sparsitylaws "
                f"understands ({TABLE_FORMAT_VERSION}); upgrade sparsitylaws")
    df = table.to_pandas()
    if "layer_ratios" in df.columns or "layer_thresholds" in df.columns:
        for col in ("layer_ratios", "layer_thresholds"):
            if col in df.columns:
                df[col] = [None if v is None else [float(x) for x in v] for v in df[col]]
    return validate_frame(df, source=str(path))


def read_table(paths: PathLike | Sequence[PathLike]) -> pd.DataFrame:
    """Read one or more Parquet files or directories into one validated frame.

    Rows from different files must not share a (run, checkpoint, metric, metric_arg) key.
    """
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    files = find_parquet_files(paths)
    if not files:
        raise SparsityLawsError("no measurement tables given")
    frames = [_read_one(f) for f in files]
    if len(frames) == 1:
        return frames[0]
    combined = pd.concat(frames, ignore_index=True, sort=False)
    label = " + ".join(str(f) for f in files) if len(files) <= 3 else f"{len(files)} tables"
    return validate_frame(combined, source=label)


def write_table(df: pd.DataFrame, path: PathLike) -> Path:
    """Validate and write a table atomically; returns the path written."""
    path = Path(path)
    df = validate_frame(df, source=str(path))
    table = to_arrow(df)
    return _atomic_write(table, path)


def _atomic_write(table: pa.Table, path: Path) -> Path:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def merge_frames(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Union of two tables; where keys collide, rows of ``new`` replace rows of ``old``."""
    if old is None or len(old) == 0:
        return new.reset_index(drop=True)
    both = pd.concat([old, new], ignore_index=True, sort=False)
    keep = ~row_keys(both).duplicated(keep="last").to_numpy()
    return both.loc[keep].reset_index(drop=True)


def append_rows(path: PathLike, rows: pd.DataFrame) -> pd.DataFrame:
    """Add rows to the table at ``path`` (created if absent), atomically.

    New rows win over existing rows with the same key, so re-measuring a checkpoint
    replaces its row.  Returns the full table as written.
    """
    path = Path(path)
    new = validate_frame(rows, source=f"new rows for {path}")
    old = _read_one(path) if path.exists() else None
    merged = merge_frames(old, new)
    merged = validate_frame(merged, source=str(path))
    _atomic_write(to_arrow(merged), path)
    return merged
