"""Shared vocabulary of the architecture laws: section format, parameter transforms,
paper forms, prediction methods, and small JSON/number helpers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

ARCH_FORMAT = "sparsitylaws-architecture"
ARCH_VERSION = 2
#: Section versions this code reads (1: before the runs' measured curves were stored).
ARCH_READABLE = (1, 2)

#: Transform of each data-law coefficient before it is trended in log10 N.
TRANSFORMS = {"alpha": "log", "c": "log", "b": "identity", "A0": "identity"}
#: Parameter order per paper form (matches sparsitylaws.runfit.forms).
FORM_PARAMS = {"logspace_power": ["alpha", "b", "c", "A0"], "convergent_power": ["alpha", "c", "A0"]}
PAPER_FORM = {"relu": "logspace_power", "silu": "convergent_power"}
#: Ways to predict a curve at a new scale (see predict_section): ``auto`` picks one of the
#: others per law set and activation by a nested leave-one-scale-out
#: (sparsitylaws.architecture.choice); ``nearest`` is the baseline every method is compared with.
METHODS = ("auto", "nearest", "step", "curve", "excess", "coef")
#: Methods ``auto`` chooses among, in order of preference on a tie (simplest first).
CANDIDATES = ("nearest", "step")
#: The default: a choice made on the law set's own scale runs (never on a table it is
#: reported on), which falls back to the nearest-scale baseline with fewer than 3 scales.
DEFAULT_METHOD = "auto"


def _floats(a: Any) -> Any:
    """numpy -> nested lists of Python floats (JSON-safe; NaN becomes None)."""
    arr = np.asarray(a, float)
    out = arr.tolist()

    def clean(x):
        if isinstance(x, list):
            return [clean(v) for v in x]
        return None if not math.isfinite(x) else x

    return clean(out)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None
