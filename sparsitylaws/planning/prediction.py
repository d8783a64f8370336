"""The public prediction: configurations (:mod:`.configs`), shifted to the user's recipe by
anchors (:mod:`.anchor`) when any are given.

Split from :mod:`.configs` so that anchors, which predict their own configurations, import
the unanchored prediction and nothing imports in a circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sparsitylaws import paper
from sparsitylaws.architecture import DEFAULT_METHOD
from sparsitylaws.planning.anchor import anchor_frame
from sparsitylaws.planning.configs import _lawset, _positive, predict_configs

__all__ = ["compare_shapes", "predict"]


def predict(
    width: Any,
    depth: Any,
    activation: str | Sequence[str] = "all",
    tokens: Any = None,
    ffn_ratio: Any = paper.FFN_RATIO,
    gated: Any = True,
    *,
    n_heads: Any = None,
    n_kv_heads: Any = None,
    head_dim: Any = None,
    vocab_size: Any = None,
    tie_embeddings: bool = True,
    lawset: Any = None,
    level: float = 0.9,
    method: str = DEFAULT_METHOD,
    anchor: Any = None,
) -> pd.DataFrame:
    """Predicted sparsity of configurations, one row per (configuration, activation).

    ``width``/``depth``/``tokens``/``ffn_ratio``/``gated`` broadcast against each other;
    ``tokens`` defaults to 190 x non-embedding parameters (the paper's budget).
    ``activation``: ``"all"`` (every activation the law set covers), one name or a list.
    ``lawset``: a path, a :class:`~sparsitylaws.lawset.LawSet` or None (packaged default).
    ``method``: how A(D) is carried to a new scale: ``auto`` (default), ``nearest``, ``step``,
    ``curve``, ``excess`` or ``coef`` (see :func:`sparsitylaws.architecture.predict_section`).
    ``anchor``: measured checkpoints of the user's own recipe (``"TABLE[:RUN]"``, a list of
    them, a DataFrame of measurement rows or :class:`~sparsitylaws.planning.anchor.Anchor`
    objects) that shift the law set to it (:func:`sparsitylaws.planning.anchor.anchor_frame`:
    ``law_*``, ``anchored``, ``recipe_offset*``, ``anchor_distance`` columns,
    ``attrs["anchor"]``).

    Columns: configuration, ``n_params`` (non-embedding), ``n_params_total``,
    ``width_depth_ratio``, regime columns, ``a0``/``a0_low``/``a0_high`` (limit as D -> inf),
    ``activation_ratio``/``ratio_low``/``ratio_high`` at ``tokens``, ``sparsity``
    (1 - activation_ratio), ``extrap_*`` distances (log10 units outside the fitted range
    for each dimension), ``extrapolation`` (their maximum), ``warning``, ``lawset``.
    """
    ls = _lawset(lawset)
    out = predict_configs(width, depth, activation, tokens, ffn_ratio, gated, n_heads=n_heads,
                          n_kv_heads=n_kv_heads, head_dim=head_dim, vocab_size=vocab_size,
                          tie_embeddings=tie_embeddings, lawset=ls, level=level, method=method)
    if anchor is not None:
        out = anchor_frame(out, anchor, lawset=ls, method=method)
    return out


def compare_shapes(
    params: float,
    depths: Sequence[int],
    *,
    activation: str | Sequence[str] = "all",
    tokens: float | None = None,
    ffn_ratio: float = paper.FFN_RATIO,
    gated: bool = True,
    width_multiple: int = 128,
    lawset: Any = None,
    level: float = 0.9,
    method: str = DEFAULT_METHOD,
    anchor: Any = None,
) -> pd.DataFrame:
    """Shapes at a fixed non-embedding budget: for each depth, the width (a multiple of
    ``width_multiple``) whose count is nearest ``params``; predicted sparsity per shape, the
    sparsest shape per activation (``sparsest``) and which lie outside the stable band.
    ``anchor``: as for :func:`predict`."""
    p = float(_positive("params", params))
    L = _positive("depths", list(depths), integer=True)
    coef = 4.0 + (3.0 if gated else 2.0) * float(ffn_ratio)
    d = np.sqrt(p / (coef * L))
    m = _positive("width_multiple", width_multiple, integer=True)
    W = np.maximum(m, np.round(d / m) * m)
    df = predict(W, L, activation=activation, tokens=tokens, ffn_ratio=ffn_ratio, gated=gated,
                 lawset=lawset, level=level, method=method, anchor=anchor)
    df.insert(0, "params_target", p)
    df["sparsest"] = False
    for _act, g in df.groupby("activation"):
        df.loc[g["activation_ratio"].idxmin(), "sparsest"] = True
    return df
