"""Which training recipe a law set describes, and the caveat that travels with it.

A law set's intervals are a promise about the recipe it was fitted on.  The packaged
default describes the paper's MiniCPM-style models on the paper's data; SmolLM2-135M
(another recipe: data, tokenizer, schedule, a 4-bit GGUF copy) measures 69% where the
default predicts 40%.  The recipe and that example are stored in the law set's
``provenance["recipe"]`` (built by :mod:`sparsitylaws.planning.default_lawset`), so every output built
on it can name the recipe and say how far another one can land (docs/planning.md,
"Anchoring on your own recipe").

The example's *measured* value is stored with its source (table, run, metric), and a
test checks it against ``measurements/`` at run time; its *predicted* value and interval
are computed from the law set itself when the default is built.
"""

from __future__ import annotations

from typing import Any

from sparsitylaws import paper
from sparsitylaws.planning.configs import predict_configs

__all__ = ["PAPER_RECIPE", "TRANSFER_EXAMPLE", "anchored_caveat", "anchored_recipe_line",
           "recipe_caveat", "recipe_line", "recipe_metadata"]

#: The recipe of the paper's runs (PAPER.md, "Model configurations").
PAPER_RECIPE = {
    "name": "the paper's MiniCPM-style recipe (Luo et al. 2024)",
    "description": (
        "MiniCPM-style muP decoder, gated FFN with d_f = 2.5 d, vocabulary 122,753, sequence "
        "length 4,096, WSD schedule (peak lr 0.01), AdamW (0.9, 0.95), weight decay 0.1, the "
        "paper's pre-training data, >= 190 tokens per non-embedding parameter; activation "
        "ratio by CETT-PPL-1% on the paper's evaluation data"),
    "source": paper.CITATION,
}

#: A model of another recipe measured by this project (measurements/README.md).
TRANSFER_EXAMPLE = {
    "model": "SmolLM2-135M-Instruct (Q4_1 GGUF)",
    "table": "measurements/smollm2-135m.parquet",
    "run": "smollm2-135m-silu",
    "metric": "ppl-p", "metric_arg": 1.0,
    "measured": 0.6872,
    "activation": "silu", "width": 576, "depth": 30, "ffn_ratio": 1536 / 576,
    "tokens": 2e12,
}


def recipe_metadata(lawset: Any, recipe: dict | None = None, example: dict | None = None) -> dict:
    """``provenance["recipe"]`` for ``lawset``: the recipe, the example with this law set's
    prediction for it (computed here), and the caveat text."""
    recipe = dict(recipe or PAPER_RECIPE)
    ex = dict(example or TRANSFER_EXAMPLE)
    r = predict_configs(ex["width"], ex["depth"], activation=ex["activation"], tokens=ex["tokens"],
                ffn_ratio=ex["ffn_ratio"], lawset=lawset).iloc[0]
    # rounded to 0.01 pp: the statement stays true across float-level changes of the code
    ex["predicted"] = round(float(r["activation_ratio"]), 4)
    ex["predicted_interval"] = [round(float(r["ratio_low"]), 4), round(float(r["ratio_high"]), 4)]
    ex["level"] = float(r["level"])
    out = {**recipe, "example": ex}
    out["caveat"] = _caveat_text(out)
    return out


def _caveat_text(rec: dict) -> str:
    ex = rec["example"]
    lo, hi = ex["predicted_interval"]
    return (
        f"Fitted on one training recipe: {rec['name']}. Other recipes (data, tokenizer, "
        "schedule, quantization, fine-tuning) can differ by more than the interval: "
        f"{ex['model']} ({ex['table']}, run {ex['run']}, CETT-PPL-1%) measures "
        f"{100 * ex['measured']:.1f}% where this law set predicts {100 * ex['predicted']:.2f}% "
        f"[{100 * lo:.2f}%, {100 * hi:.2f}%]. Anchor on a measured checkpoint of your own "
        "recipe: predict --anchor TABLE[:RUN].")


def recipe_line(lawset: Any) -> str | None:
    """'recipe: NAME' for outputs, or None when the law set records no recipe."""
    rec = (getattr(lawset, "provenance", None) or {}).get("recipe")
    return f"recipe: {rec['name']}" if rec and rec.get("name") else None


def recipe_caveat(lawset: Any) -> str | None:
    """The recipe caveat stored in the law set, or None."""
    rec = (getattr(lawset, "provenance", None) or {}).get("recipe")
    return rec.get("caveat") if rec else None


def _recipe_name(lawset: Any) -> str:
    rec = (getattr(lawset, "provenance", None) or {}).get("recipe") or {}
    return str(rec.get("name") or f"the runs of law set '{getattr(lawset, 'name', '')}'")


def anchored_recipe_line(lawset: Any, offsets: dict) -> str:
    """'recipe: yours, anchored on RUNS (...)' for an anchored answer: it describes the
    anchors' recipe, not the law set's."""
    runs = sorted({a["run"] for o in offsets.values() for a in o.anchors})
    acts = ", ".join(sorted(offsets))
    return (f"recipe: yours, anchored on {', '.join(runs)} ({acts}); the law set's shapes "
            f"across scale and budget come from {_recipe_name(lawset)}")


def anchored_caveat(lawset: Any, offsets: dict, unanchored: list[str] | None = None) -> str:
    """The recipe caveat of an anchored answer (replaces the law set's own, which advises
    anchoring): what the anchors fix and what they cannot."""
    n = sum(o.n_anchors for o in offsets.values())
    text = (f"Shifted to your recipe by {n} measured checkpoint{'s' if n != 1 else ''} "
            f"({', '.join(sorted(offsets))}). The anchors fix the level; how curves move across "
            f"scale and budget is still that of {_recipe_name(lawset)}, and the interval holds how "
            "far the offset drifts away from the anchors (tau, the kriging sd). A target far from "
            "every anchor, in size, width/depth or budget, inherits that law's shape.")
    if unanchored:
        text += (f" Not anchored: {', '.join(unanchored)} (the law set's own recipe applies to "
                 "those rows).")
    return text
