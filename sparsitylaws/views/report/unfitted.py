"""The report's measurements without a fitted law: what was measured, the law set's
prediction beside it, and the layer profile.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.views.report.blocks import Block, _first, _g, _interval, _pct, _try_figure
from sparsitylaws.views.report.inputs import ReportInputs


def unfitted_blocks(inp: ReportInputs) -> list[Block]:
    """Runs in the table that are not in the law set: their measurements and layer profile."""
    from sparsitylaws.views import plots

    t = inp.table
    if t is None:
        return []
    runs = sorted(set(t["run"]) - set(inp.lawset.runs))
    if not runs:
        return []
    from sparsitylaws.tables.rows import excluded_runs

    flagged = {r: why for r, why in excluded_runs(t).items() if r in runs}
    out = [Block("h2", "Measurements without a fitted law"),
           Block("p", "These runs cannot be fitted (a law needs a training curve: several checkpoints "
                      "per run), are marked not for fitting, or were not in the law set; here is what "
                      "was measured.")]
    if flagged:
        out.append(Block("list", items=[f"{r}: marked not for fitting ({why}); left out of the fits and "
                                        "of the comparison with predictions" for r, why in flagged.items()]))
    cols = [c for c in ("run", "checkpoint", "tokens", "metric", "metric_arg", "activation_ratio", "cett",
                        "ppl_dense", "ppl_sparse", "dead_neuron_ratio", "eval_dataset", "eval_tokens",
                        "dtype", "device") if c in t.columns]
    sub = t[t["run"].isin(runs)][cols].copy()
    sub["activation_ratio"] = sub["activation_ratio"].map(_pct)
    if "tokens" in sub:
        sub["tokens"] = sub["tokens"].map(lambda v: f"{v / 1e9:.4g}B")
    for c in ("cett", "ppl_dense", "ppl_sparse", "dead_neuron_ratio", "metric_arg"):
        if c in sub:
            sub[c] = sub[c].map(lambda v: _g(v, 4))
    out.append(Block("table", frame=sub.head(60).reset_index(drop=True)))
    out += measured_vs_predicted(inp, runs)
    if "layer_ratios" in t.columns and t[t["run"].isin(runs)]["layer_ratios"].notna().any():
        from sparsitylaws.tables.rows import DEFAULT_METRIC

        metric = inp.lawset.provenance.get("metric") or DEFAULT_METRIC
        have = t[t["run"].isin(runs) & t["layer_ratios"].notna()]
        if not (have["metric"] == metric).any():
            metric = None  # the laws' metric was not measured per layer: show what was
        else:
            have = have[have["metric"] == metric]
        _try_figure(out, "layers", "Per-layer activation ratio across depth, last checkpoint of each run, one "
                    "panel per run" + (f", metric {metric} (the laws' metric)" if metric else "") + ".",
                    lambda: plots.plot_layers(t, runs=sorted(set(have["run"])), metric=metric))
    return out


def measured_vs_predicted(inp: ReportInputs, runs: Sequence[str]) -> list[Block]:
    """For unfitted runs of known shape: the law set's prediction next to the measured
    CETT-PPL-p% ratio (the metric the laws are about) at the run's last checkpoint."""
    from sparsitylaws.planning import predict
    from sparsitylaws.tables.rows import excluded_runs

    ls, t = inp.lawset, inp.table
    acts = set((ls.architecture or {}).get("activations") or {})
    flagged = excluded_runs(t)
    rows = []
    for run in runs:
        if run in flagged:  # e.g. a deliberately broken model: a prediction says nothing about it
            continue
        sub = t[(t["run"] == run) & (t["metric"] == "ppl-p")]
        if sub.empty or not acts:
            continue
        last = sub.sort_values("tokens").iloc[-1]
        act = str(last["activation"]).lower()
        w, d = _first(sub, "width"), _first(sub, "depth")
        if act not in acts or not w or not d:
            continue
        ffn = _first(sub, "ffn_width")
        kw = {"ffn_ratio": ffn / w} if ffn else {}
        try:
            pr = predict(int(w), int(d), activation=act, tokens=float(last["tokens"]), lawset=ls, **kw).iloc[0]
        except SparsityLawsError:
            continue
        inside = pr["ratio_low"] <= last["activation_ratio"] <= pr["ratio_high"]
        rows.append({"run": run, "checkpoint": last["checkpoint"], "metric": f"ppl-p {last['metric_arg']:g}",
                     "measured": _pct(last["activation_ratio"]),
                     "predicted (90%)": _interval(pr["activation_ratio"], pr["ratio_low"], pr["ratio_high"], pct=True),
                     "inside?": "yes" if inside else "no",
                     "extrapolation (log10)": _g(pr["extrapolation"], 2), "warning": pr["warning"] or "–"})
    if not rows:
        return []
    return [Block("h3", "Measured against predicted"),
            Block("p", f"The law set ({ls.name}) predicts each run's shape and token count; the "
                       "measurement is its CETT-PPL-p% activation ratio. The laws come from the models "
                       "they were fitted on: another architecture, training recipe or evaluation text "
                       "can move the ratio by more than the interval, so a miss says the model differs, "
                       "not only that the law is wrong."),
            Block("table", frame=pd.DataFrame(rows))]
