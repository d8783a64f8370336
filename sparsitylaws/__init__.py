"""sparsitylaws: activation sparsity of LLMs, measured, fitted and predicted.

Public API (imported lazily, so ``import sparsitylaws`` stays fast and never imports torch
or transformers; the measurement stack lives in :mod:`sparsitylaws.measure` and needs the
``[measure]`` extra)::

    load_lawset(path=None) -> LawSet          # None: the packaged default law set
    LawSet.predict(run=..., tokens=[...])     # fitted runs, with intervals
    predict(width=..., depth=..., ...)        # unbuilt configurations (DataFrame)
    fit_run(tokens, ratio, run=..., activation=...) -> RunFit
    fit_table(table) -> LawSet                # what `sparsitylaws fit` does
    read_table(paths), write_table(df, path), append_rows(path, df)
"""

from __future__ import annotations

import importlib
from typing import Any

from sparsitylaws.version import __version__

_EXPORTS = {
    "load_lawset": "sparsitylaws.lawset",
    "LawSet": "sparsitylaws.lawset",
    "predict": "sparsitylaws.planning",
    "compare_shapes": "sparsitylaws.planning",
    "parameter_counts": "sparsitylaws.planning",
    "fit_run": "sparsitylaws.runfit",
    "RunFit": "sparsitylaws.runfit",
    "fit_table": "sparsitylaws.lawset",
    "read_table": "sparsitylaws.tables",
    "write_table": "sparsitylaws.tables",
    "append_rows": "sparsitylaws.tables",
    "SparsityLawsError": "sparsitylaws.errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'sparsitylaws' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
