"""The report's warnings and caveats, grouped by the run they name."""

from __future__ import annotations

from collections.abc import Sequence

from sparsitylaws.views.report.blocks import Block
from sparsitylaws.views.report.inputs import ReportInputs


def warning_blocks(inp: ReportInputs) -> list[Block]:
    """Fit warnings, skipped runs, architecture caveats, law-set caveats, report notes."""
    ls = inp.lawset
    items = list(inp.notes)
    for name in ls.run_names():
        for w in ls.runs[name].warnings:
            msg = w.get("message", "")
            items.append(msg if name in msg else f"{name}: {msg}")
    from sparsitylaws.runfit.coverage import poor_coverage

    for name in ls.run_names():
        f = ls.runs[name]
        why = (ls.run_info.get(name) or {}).get("form_choice") or ""
        if "not an activation the paper studied" in why:
            items.append(f"{name}: law form {f.form} chosen by the data's direction ({why})")
        for cut in sorted({r["cutoff"] for r in f.backtest}):
            sub = [r for r in f.backtest if r["cutoff"] == cut and r.get("error") is not None]
            cov = sum(bool(r.get("covered")) for r in sub)
            if sub and poor_coverage(cov, len(sub), f.level):
                items.append(f"{name}: POOR backtest coverage at {cut:.0%} ({cov}/{len(sub)} held-out points in "
                             f"the {f.level:.0%} intervals); its intervals are likely too narrow for forecasting")
    for run, why in (ls.provenance.get("skipped_runs") or {}).items():
        items.append(f"run {run} skipped: {why}")
    for run, why in (ls.provenance.get("not_for_fitting") or {}).items():
        items.append(f"run {run} left out: marked not for fitting ({why})")
    if ls.provenance.get("architecture_note"):
        items.append(ls.provenance["architecture_note"])
    for act, e in sorted(((ls.architecture or {}).get("activations") or {}).items()):
        items.extend(f"{act}: {c}" for c in e.get("caveats") or [])
    items.extend(ls.provenance.get("caveats") or [])
    from sparsitylaws.lawset.neartie import near_tie_notes

    items.extend(near_tie_notes(ls))
    items = list(dict.fromkeys(items))
    out = [Block("h2", "Warnings and caveats")]
    if not items:
        return out + [Block("p", "None.")]
    general, per_run = group_by_run(items, ls.run_names() + [str(r) for r in
                                    (ls.provenance.get("skipped_runs") or {})]
                                    + [str(r) for r in (ls.provenance.get("not_for_fitting") or {})])
    if general:
        out.append(Block("list", items=general))
    if per_run:
        out.append(Block("p", f"Per run ({sum(len(v) for v in per_run.values())} warnings on "
                              f"{len(per_run)} runs):"))
    for run, msgs in per_run.items():
        out.append(Block("h3", f"{run} ({len(msgs)})"))
        out.append(Block("list", items=msgs))
    return out


def group_by_run(items: Sequence[str], runs: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Split messages into those naming no run and those of each run (the first run a
    message names, as a whole word; runs in ``runs`` order). Every message is kept once."""
    import re

    names = list(dict.fromkeys(runs))
    pats = {r: re.compile(r"(?<![\w.-])" + re.escape(r) + r"(?![\w-])") for r in names}
    general: list[str] = []
    per_run: dict[str, list[str]] = {}
    for msg in items:
        hits = [(m.start(), r) for r, p in pats.items() if (m := p.search(msg))]
        if hits:
            per_run.setdefault(min(hits)[1], []).append(msg)
        else:
            general.append(msg)
    return general, {r: per_run[r] for r in names if r in per_run}
