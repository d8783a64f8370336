"""The report's provenance: where the law set came from, data and file hashes, versions."""

from __future__ import annotations

import hashlib
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import pandas as pd

from sparsitylaws.version import __version__
from sparsitylaws.views.report.blocks import Block, _shown
from sparsitylaws.views.report.inputs import ReportInputs


def provenance_blocks(inp: ReportInputs) -> list[Block]:
    """Law-set provenance, per-run data hashes, input files with hashes, versions."""
    ls = inp.lawset
    pv = ls.provenance
    out = [Block("h2", "Provenance")]
    where = "" if not ls.source or ls.source in inp.origin else f" ({ls.source})"
    items = [f"Law set: {ls.name}{where}; {inp.origin}."]
    rec = pv.get("recipe") or {}
    if rec.get("name"):  # the training recipe the laws describe (sparsitylaws.planning.recipe)
        items.append(f"recipe: {rec['name']}" + (f" ({rec['description']})" if rec.get("description") else ""))
    for key in ("created_at", "created_by", "built_by", "built_with", "source", "metric"):
        if pv.get(key):
            items.append(f"{key.replace('_', ' ')}: {pv[key]}")
    settings = pv.get("settings")
    if settings:
        items.append("fit settings: " + ", ".join(f"{k} = {v}" for k, v in settings.items()))
    seed = (settings or {}).get("seed", pv.get("seed"))
    if seed is not None:
        items.append(f"random seed: {seed}")
    vers = dict(pv.get("versions") or {})
    if vers:
        items.append("versions at fit time: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    out.append(Block("list", items=items))
    hashes = dict(pv.get("data_sha256") or {})
    for run, info in ls.run_info.items():
        if info.get("data_sha256"):
            hashes.setdefault(run, info["data_sha256"])
    if hashes:
        out.append(Block("h3", "Data hashes (SHA-256 of each run's tokens and ratios)"))
        out.append(Block("table", frame=pd.DataFrame({"run": list(hashes), "sha256": list(hashes.values())})))
    if inp.files:
        out.append(Block("h3", "Input tables"))
        out.append(Block("table", frame=pd.DataFrame({
            "file": [_shown(f) for f in inp.files], "sha256": [_file_sha256(f) for f in inp.files]})))
    out.append(Block("p", "Report written " + datetime.now(timezone.utc).replace(microsecond=0).isoformat()
                     + f" by sparsitylaws {__version__} (Python {platform.python_version()}, "
                     + ", ".join(f"{p} {_version(p)}" for p in ("numpy", "pandas", "matplotlib")) + ")."))
    return out


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "unknown"
