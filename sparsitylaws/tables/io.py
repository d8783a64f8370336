"""Reading and writing measurement tables (Parquet), safely.

Writes are atomic (temporary file in the same folder, fsync, ``os.replace``), so a crash
or kill never leaves a half-written table and never loses rows already written.  Appends
hold an exclusive lock (``fcntl.flock`` on the table's folder, so no lock file is left
behind) for the whole read-merge-write, so two processes appending to one table both keep
their rows.  Reads
accept files and directories (every ``*.parquet`` below, sorted) and validate with
:func:`sparsitylaws.tables.schema.validate_frame`, so every error names its file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sparsitylaws.errors import SchemaError, SparsityLawsError
from sparsitylaws.tables.atomic import atomic_path
from sparsitylaws.tables.schema import (
    METADATA_KEY,
    TABLE_FORMAT_VERSION,
    point_keys,
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


#: Suffixes of formats ``sparsitylaws ingest`` converts, and the command that does it.
_INGEST_HINTS = {".csv": "sparsitylaws ingest csv {path} -o {stem}.parquet",
                 ".json": "sparsitylaws ingest sparsinglaw-data {parent} -o {parent_name}.parquet"}


def _convert_hint(path: Path) -> str:
    """'; convert it first: <the ingest command>' for a file of a format ``ingest`` reads, else ''."""
    cmd = _INGEST_HINTS.get(path.suffix.lower())
    if cmd is None:
        return ""
    return "; convert it first: " + cmd.format(path=path, stem=path.with_suffix(""), parent=path.parent,
                                               parent_name=path.parent.name or "table")


def _read_one(path: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SchemaError(f"{path}: not a readable Parquet file ({exc}){_convert_hint(path)}") from None
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
    """Union of two tables; where keys collide, rows of ``new`` replace rows of ``old``.

    A key is (run, checkpoint, metric, metric_arg), and also (run, tokens, metric,
    metric_arg): a new measurement of the same point replaces the old one even when the
    checkpoint was named differently.
    """
    if old is None or len(old) == 0:
        return new.reset_index(drop=True)
    both = pd.concat([old, new], ignore_index=True, sort=False)
    is_new = np.arange(len(both)) >= len(old)
    keep = ~row_keys(both).duplicated(keep="last").to_numpy()
    points = point_keys(both)
    newer = points.duplicated(keep="last").to_numpy() & ~is_new  # an old row a new one replaces
    return both.loc[keep & ~newer].reset_index(drop=True)


def check_shards(parts: Sequence[tuple[str, pd.DataFrame]]) -> None:
    """Refuse to merge measured tables that disagree: within a run, every row of one metric
    and argument must come from the same settings (``settings_hash``), every row from the
    same evaluation tokens (``eval_sha256``), and a run's joint CETT (``cett_joint``) must be
    one value.  Raises :class:`SparsityLawsError` naming both files."""
    checks = (("settings_hash", ["run", "metric", "metric_arg"], "settings"),
              ("eval_sha256", ["run"], "evaluation tokens"),
              ("cett", ["run", "metric_arg"], "joint CETT"))
    for col, by, what in checks:
        seen: dict[tuple, tuple[object, str]] = {}
        for name, df in parts:
            if col not in df.columns:
                continue
            sub = df[df[col].notna()]
            if col == "cett":
                if "cett_joint" not in sub.columns:
                    continue
                sub = sub[sub["cett_joint"].fillna(False).astype(bool)]
            for _, row in sub.iterrows():
                key = tuple(-1.0e300 if k == "metric_arg" and pd.isna(row[k]) else row[k] for k in by)
                if key not in seen:
                    seen[key] = (row[col], name)
                elif seen[key][0] != row[col]:
                    label = ", ".join(f"{k}={'none' if v == -1.0e300 else repr(v)}"
                                      for k, v in zip(by, key, strict=True))
                    raise SparsityLawsError(
                        f"{name}: its {what} ({col} {row[col]!r}) differ from {seen[key][1]} "
                        f"({seen[key][0]!r}) for {label}; shards of one run must be measured "
                        "with the same options (for the CETT: --cett-from one file)")


@contextlib.contextmanager
def file_lock(path: PathLike, timeout_s: float = 600.0) -> Iterator[None]:
    """Hold an exclusive advisory lock on the folder of ``path`` (waits up to ``timeout_s``).

    The table itself cannot carry the lock (an atomic write replaces its file); its folder
    can, and leaves nothing behind.  Where locks are not supported (some network file
    systems), refuses with one clear line rather than risk two writers losing rows.
    """
    import fcntl
    import time

    lp = Path(path).parent
    lp.mkdir(parents=True, exist_ok=True)
    fd = os.open(lp, os.O_RDONLY)
    try:
        t0 = time.monotonic()
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() - t0 > timeout_s:
                    raise SparsityLawsError(
                        f"{path}: another process has held the lock on {lp} for over "
                        f"{timeout_s:.0f} s; "
                        "write each job to its own table and merge them") from None
                time.sleep(0.05)
            except OSError as exc:
                raise SparsityLawsError(
                    f"{path}: cannot lock {lp} ({exc.strerror or exc}); on this file system "
                    "write each job to its own table and merge them") from None
        yield
    finally:
        os.close(fd)


def append_rows(path: PathLike, rows: pd.DataFrame) -> pd.DataFrame:
    """Add rows to the table at ``path`` (created if absent), atomically.

    New rows win over existing rows with the same key, so re-measuring a checkpoint
    replaces its row.  Returns the full table as written.
    """
    path = Path(path)
    new = validate_frame(rows, source=f"new rows for {path}")
    with file_lock(path):
        old = _read_one(path) if path.exists() else None
        merged = merge_frames(old, new)
        merged = validate_frame(merged, source=str(path))
        _atomic_write(to_arrow(merged), path)
    return merged
