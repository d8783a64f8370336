"""Forecast choices that sit on a near-tie, said in words (for ``fit`` and the report)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["near_tie_notes", "run_near_tie", "weights_text"]


def weights_text(weights: Mapping[str, float]) -> str:
    """Candidate weights in words: ``last 0.25, nearest 0.75``."""
    return ", ".join(f"{k} {v:.2f}" for k, v in weights.items())


def _groups(lawset: Any) -> dict:
    """The law set's forecast choices per measurement set (provenance)."""
    return ((lawset.provenance or {}).get("forecast_calibration") or {}).get("groups") or {}


def _near_ties(lawset: Any) -> Iterator[tuple[str, str, str]]:
    """(measurement set, who: an activation or "pooled", note) for each forecast choice in use
    (an activation's own, or the pooled one where an activation of the set has none) whose
    runner-up lies within :data:`~sparsitylaws.runfit.selection.NEAR_TIE` of it."""
    from sparsitylaws.runfit.selection import NEAR_TIE, SOFTNESS

    groups = _groups(lawset)
    for g, d in groups.items():
        own = d.get("by_activation") or {}
        acts = {lawset.runs[r].activation for r in d.get("runs") or [] if r in lawset.runs}
        choices = {**({"pooled": d} if acts - set(own) else {}), **own}
        for who, ch in choices.items():
            m = ch.get("margin")
            if m is None or m >= NEAR_TIE:
                continue
            stake = (ch.get("runner_up") or {}).get("stake")
            apart = "" if stake is None else f"; its backtest forecasts differ by up to {100 * stake:.2f} points"
            where = f" ({g})" if len(groups) > 1 else ""
            yield g, who, (f"{who}{where}: forecast weights chosen on a near-tie (next best {100 * m:.2f}% "
                           f"behind in interval score{apart}; configurations within {100 * SOFTNESS:g}% share "
                           "the choice and 0.001-point noise moves the shares; 'fit -v' shows both)")


def near_tie_notes(lawset: Any) -> list[str]:
    """One note per forecast choice in use whose runner-up lies within
    :data:`~sparsitylaws.runfit.selection.NEAR_TIE` of it: there the weights are not a finding;
    configurations within :data:`~sparsitylaws.runfit.selection.SOFTNESS` share the choice and
    0.001-point noise in the data moves the shares (docs/fitting.md, "Continuity").  A set
    is named where the law set holds several."""
    return [note for _, _, note in _near_ties(lawset)]


def run_near_tie(lawset: Any, run: str) -> str | None:
    """The near-tie note (:func:`near_tie_notes`) of the choice that forecasts ``run``, if any:
    its activation's own choice in its measurement set, else that set's pooled one."""
    group = (getattr(lawset.runs.get(run), "forecast", None) or {}).get("group")
    d = _groups(lawset).get(group)
    if d is None:
        return None
    act = lawset.runs[run].activation
    who = act if act in (d.get("by_activation") or {}) else "pooled"
    return next((note for g, w, note in _near_ties(lawset) if (g, w) == (group, who)), None)
