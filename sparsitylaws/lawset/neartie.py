"""Forecast choices that sit on a near-tie, said in words (for ``fit`` and the report)."""

from __future__ import annotations

from typing import Any

__all__ = ["near_tie_notes", "run_near_tie"]


def near_tie_notes(lawset: Any) -> list[str]:
    """One note per forecast choice in use (an activation's own, or the pooled one where an
    activation of the measurement set has none) whose runner-up lies within
    :data:`~sparsitylaws.runfit.selection.NEAR_TIE` of it: there the weights are not a finding,
    and 0.001-point noise in the data can swap the two (docs/fitting.md, "Continuity").  A set
    is named where the law set holds several."""
    from sparsitylaws.runfit.selection import NEAR_TIE

    groups = ((lawset.provenance or {}).get("forecast_calibration") or {}).get("groups") or {}
    out = []
    for g, d in groups.items():
        own = d.get("by_activation") or {}
        acts = {lawset.runs[r].activation for r in d.get("runs") or [] if r in lawset.runs}
        choices = {**({"pooled": d} if acts - set(own) else {}), **own}
        for who, ch in choices.items():
            m = ch.get("margin")
            if m is None or m >= NEAR_TIE:
                continue
            stake = (ch.get("runner_up") or {}).get("stake")
            moves = "" if stake is None else f", which moves backtest forecasts by up to {100 * stake:.2f} points"
            where = f" ({g})" if len(groups) > 1 else ""
            out.append(f"{who}{where}: forecast weights chosen on a near-tie (next best {100 * m:.2f}% behind "
                       f"in interval score; 0.001-point noise can swap them{moves}; 'fit -v' shows both)")
    return out


def run_near_tie(lawset: Any, run: str) -> str | None:
    """The near-tie note (:func:`near_tie_notes`) of the choice that forecasts ``run``, if any:
    its activation's own choice in its measurement set, else that set's pooled one."""
    info = (getattr(lawset.runs.get(run), "forecast", None) or {})
    group = info.get("group")
    groups = ((lawset.provenance or {}).get("forecast_calibration") or {}).get("groups") or {}
    if group not in groups:
        return None
    act = lawset.runs[run].activation
    d = groups[group]
    who = act if act in (d.get("by_activation") or {}) else "pooled"
    where = f" ({group})" if len(groups) > 1 else ""
    for note in near_tie_notes(lawset):
        if note.startswith(f"{who}{where}:"):
            return note
    return None
