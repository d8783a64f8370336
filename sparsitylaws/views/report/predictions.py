"""The report's predictions for a few standard configurations."""

from __future__ import annotations

from typing import Any

import pandas as pd

from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.views.report.blocks import Block, _interval

#: (label, width, depth): the paper's six scales plus two larger shapes, one deeper.
STANDARD_CONFIGS: tuple[tuple[str, int, int], ...] = (
    ("paper 0.1B", 768, 16), ("paper 0.4B", 1280, 24), ("paper 1.2B", 1792, 32),
    ("paper 2.4B", 2304, 40), ("7B-like, 32 layers", 4096, 32), ("7B-like, 48 layers", 4096, 48),
)


def prediction_blocks(ls: Any) -> list[Block]:
    """planning.predict for :data:`STANDARD_CONFIGS` (default token budget: the law set's own)."""
    from sparsitylaws.planning import predict

    out = [Block("h2", "Predictions for standard configurations")]
    if not ls.architecture:
        out.append(Block("p", "Not available: the law set has no architecture laws (fit several runs "
                              "with known width, depth and parameter count)."))
        return out
    widths = [c[1] for c in STANDARD_CONFIGS]
    depths = [c[2] for c in STANDARD_CONFIGS]
    try:
        df = predict(widths, depths, activation="all", lawset=ls)
    except SparsityLawsError as exc:
        out.append(Block("p", f"Not available: {exc}"))
        return out
    labels = {(w, d): lab for lab, w, d in STANDARD_CONFIGS}
    rows = []
    for _, r in df.iterrows():
        rows.append({
            "configuration": labels.get((int(r["width"]), int(r["depth"])), ""),
            "width × depth": f"{int(r['width'])} × {int(r['depth'])}",
            "d/L": f"{r['width_depth_ratio']:.3g}", "params (non-emb.)": f"{r['n_params'] / 1e9:.2f}B",
            "tokens": f"{r['tokens'] / 1e9:.0f}B", "activation": r["activation"],
            "activation ratio (90%)": _interval(r["activation_ratio"], r["ratio_low"], r["ratio_high"], pct=True),
            "A0 (90%)": _interval(r["a0"], r["a0_low"], r["a0_high"], pct=True)
            + (" AT ITS BOUND (not identified)" if r.get("a0_at_bound", False) else ""),
            "regime": r["regime"], "warning": r["warning"] or "–",
        })
    tpp = float(df["tokens_per_param"].iloc[0])
    out.append(Block("p", f"Tokens default to the law set's own budget, {tpp:.0f} per non-embedding "
                          "parameter (the most its runs were trained on). Warnings flag requests far "
                          "outside what the laws were fitted on, and a limit A0 at its bound (0% or 100%), "
                          "whose interval is then widened to what the curve guarantees."))
    out.append(Block("table", frame=pd.DataFrame(rows)))
    return out
