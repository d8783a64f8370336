"""sparsitylaws: activation sparsity of LLMs, measured, fitted and predicted.

Light by design: importing this package never imports torch or transformers; the
measurement stack lives in :mod:`sparsitylaws.measure` and needs the ``[measure]`` extra.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
