"""Shared vocabulary of the architecture laws: section format, parameter transforms,
paper forms, prediction methods, and small JSON/number helpers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

ARCH_FORMAT = "sparsitylaws-architecture"
ARCH_VERSION = 1

#: Transform of each data-law coefficient before it is trended in log10 N.
TRANSFORMS = {"alpha": "log", "c": "log", "b": "identity", "A0": "identity"}
#: Parameter order per paper form (matches sparsitylaws.runfit.forms).
FORM_PARAMS = {"logspace_power": ["alpha", "b", "c", "A0"], "convergent_power": ["alpha", "c", "A0"]}
PAPER_FORM = {"relu": "logspace_power", "silu": "convergent_power"}
#: Ways to predict a curve at a new scale (see predict_section).
METHODS = ("excess", "curve", "coef")
#: The default method, chosen by the leave-one-scale-out table in docs/architecture.md
#: (benchmarks/loso.py): the smallest error and interval score of the three methods in 4
#: of 6 (activation, budget) cells, and never far behind in the other two.
DEFAULT_METHOD = "curve"


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
