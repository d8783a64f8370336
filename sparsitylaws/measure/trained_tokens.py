"""Tokens trained by a checkpoint (the ``tokens`` column), not the evaluation tokens.

* Tokens trained come from ``--tokens-trained`` (one checkpoint), from the checkpoint's
  ``trainer_state.json`` (``num_input_tokens_seen``, or ``global_step`` times
  ``--tokens-per-step``), or from its name (:data:`TOKEN_PATTERNS`); else an error.

Used by :class:`~sparsitylaws.measure.runner.Runner` when it plans a run; the names are
still importable from :mod:`sparsitylaws.measure.runner`.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from sparsitylaws.errors import MeasureError

if TYPE_CHECKING:
    from sparsitylaws.measure.loading import CheckpointRef

#: file-name patterns for tokens trained: "tokens-2.5B", "tok=1200000", "12Btok", "300M_tokens"
TOKEN_PATTERNS = (
    re.compile(r"(?:^|[^a-z])tok(?:en)?s?[-_=]?(\d+(?:\.\d+)?)([kmbt]?)(?![a-z])", re.I),
    re.compile(r"(\d+(?:\.\d+)?)([kmbt]?)[-_]?tok(?:en)?s?(?![a-z])", re.I),
)
_SCALE = {"": 1, "k": 10 ** 3, "m": 10 ** 6, "b": 10 ** 9, "t": 10 ** 12}


def tokens_from_name(name: str) -> int | None:
    """Tokens trained from a checkpoint name (see :data:`TOKEN_PATTERNS`), else None."""
    for pat in TOKEN_PATTERNS:
        m = pat.search(name)
        if m:
            return int(round(float(m.group(1)) * _SCALE[m.group(2).lower()]))
    return None


def tokens_trained(ref: CheckpointRef, flag: int | None = None,
                   tokens_per_step: int | None = None) -> int:
    """Tokens trained by a checkpoint (flag, trainer_state.json, name); error if unknown."""
    if flag is not None:
        if flag <= 0:
            raise MeasureError(f"--tokens-trained {flag}: must be > 0")
        return int(flag)
    folder = ref.path if ref.path.is_dir() else ref.path.parent
    state = folder / "trainer_state.json"
    if state.is_file():
        try:
            data = json.loads(state.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise MeasureError(f"{state}: unreadable ({exc})") from exc
        seen = data.get("num_input_tokens_seen")
        if seen:
            return int(seen)
        step = data.get("global_step")
        if step and tokens_per_step:
            return int(step) * int(tokens_per_step)
    name = ref.path.stem if ref.path.is_file() else ref.path.name
    from_name = tokens_from_name(name)
    if from_name:
        return from_name
    m = re.search(r"(?:checkpoint|step|iter)[-_]?(\d+)", name, re.I)
    if m and tokens_per_step:
        return int(m.group(1)) * int(tokens_per_step)
    raise MeasureError(
        f"{ref.path}: tokens trained unknown (give --tokens-trained N, a trainer_state.json with "
        "num_input_tokens_seen, a name like 'tokens-2.5B', or checkpoint-STEP with --tokens-per-step)")
