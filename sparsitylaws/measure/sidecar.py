"""The JSON files beside the output table, and reading the table back for resume.

* ``OUT.thresholds.json`` (:func:`sidecar_path`): per-layer thresholds and search traces.
* ``OUT.joint.json`` (:func:`joint_state_path`): each run's joint search, pass by pass, so a
  rerun after a crash repeats no forward.
* Entries are added under a file lock and written atomically (:func:`_atomic_json`), so
  concurrent shards lose none.

Used by :class:`~sparsitylaws.measure.runner.Runner`; the names are still importable from
:mod:`sparsitylaws.measure.runner`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def sidecar_path(output: Path) -> Path:
    """JSON file next to the table with per-layer thresholds and search traces."""
    return output.with_suffix(".thresholds.json")


def _atomic_json(path: Path, update: dict) -> None:
    """Add entries to a JSON file under a lock, written atomically with the modes a plain
    ``open()`` gives (colleagues can read it)."""
    from sparsitylaws.tables.atomic import atomic_path
    from sparsitylaws.tables.io import file_lock

    path.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(path):  # concurrent writers add their entries, none is lost
        data = _read_json(path)
        data.update(update)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=1, sort_keys=True))


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def joint_state_path(output: Path) -> Path:
    """JSON file next to the table with each run's joint search, pass by pass (resume)."""
    return output.with_suffix(".joint.json")


def _existing(output: Path) -> pd.DataFrame | None:
    if not output.exists():
        return None
    from sparsitylaws.tables.io import read_table

    return read_table(output)
