"""The measuring settings and their hash: what decides whether a row is reusable on resume.

* :class:`MeasureSettings` holds everything that changes the numbers; :func:`settings_hash`
  hashes the part that determines one row (with :data:`ALGORITHM_VERSION`, the device type
  and dtype actually used), stored in the ``settings_hash`` column and in ``--find-cett``
  files.  A rerun skips checkpoints whose rows exist with the same ``settings_hash``.

Used by :class:`~sparsitylaws.measure.runner.Runner`; the names are still importable from
:mod:`sparsitylaws.measure.runner`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from sparsitylaws.measure.cett import N_CANDIDATES
from sparsitylaws.measure.search import MARGIN, MIN_WALK

#: 2: model-guided certifying root finder; 3: BOS policy, per_pass, device type and dtype
#: used in the hash, stable checkpoint keys; 4: the defined PPL-p% point (first crossing on
#: the xtol grid, certified), explicit checkpoints keyed by name (rows of earlier versions
#: are re-measured)
ALGORITHM_VERSION = 4


@dataclass
class MeasureSettings:
    """Everything that changes the numbers (hashed for resume)."""

    run: str
    output: Path
    text: str = "pydoc"
    seq_len: int = 512
    num_seqs: int = 8
    p: float = 1.0
    metrics: list[str] = field(default_factory=lambda: ["ppl-p"])
    device: str = "auto"
    dtype: str = "auto"
    search: str = "fast"
    xtol: float = 1e-3
    n_candidates: int = N_CANDIDATES
    device_map: str | None = None
    allow_pickle: bool = False
    trust_remote_code: bool = False
    activation_override: str | None = None
    tokens_trained: int | None = None
    tokens_per_step: int | None = None
    shard: str | None = None
    batch_size: int | None = None
    max_memory_gb: float | None = None  # None: from the device's free memory
    bos: bool | None = None  # None: as the tokenizer does by default
    per_pass: int = 1
    offload_folder: Path | None = None
    find_cett: Path | None = None
    cett_from: Path | None = None
    warmup_checkpoints: int = 0
    warmup_tokens: int = 0
    stabilize_last: int = 5
    quiet: bool = False


def settings_hash(s: MeasureSettings, text_sha: str, metric: str, arg: float,
                  extra: dict | None = None, device_type: str = "cpu",
                  dtype: str | None = None) -> str:
    """Hash of the settings that determine one row's numbers (the device type and dtype
    actually used, not 'auto')."""
    payload = settings_payload(s, text_sha, metric, arg, extra, device_type, dtype)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def settings_payload(s: MeasureSettings, text_sha: str, metric: str, arg: float,
                     extra: dict | None = None, device_type: str = "cpu",
                     dtype: str | None = None) -> dict:
    """The settings hashed by :func:`settings_hash`, as a dictionary."""
    return {
        "algorithm": ALGORITHM_VERSION, "text": text_sha, "seq_len": s.seq_len,
        "num_seqs": s.num_seqs, "dtype": dtype or s.dtype, "search": s.search, "xtol": s.xtol,
        "margin": MARGIN, "walk": MIN_WALK, "n_candidates": s.n_candidates,
        "act": s.activation_override,
        "metric": metric, "arg": None if math.isnan(arg) else arg, "extra": extra or {},
        "bos": "tokenizer" if s.bos is None else bool(s.bos), "per_pass": s.per_pass,
        "device_type": device_type,
    }
