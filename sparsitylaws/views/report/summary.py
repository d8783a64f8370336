"""The report's data summary: one row per run of the tables (or of the law set)."""

from __future__ import annotations

import pandas as pd

from sparsitylaws.views.report.blocks import (
    Block,
    _count,
    _first,
    _g,
    _metric_name,
    _pct,
    _shape,
    _shown,
)
from sparsitylaws.views.report.inputs import ReportInputs


def data_summary(inp: ReportInputs) -> list[Block]:
    """Per run: architecture, metrics, checkpoints, token range, last ratio, fit status."""
    ls = inp.lawset
    out = [Block("h2", "Data summary")]
    if inp.table is None:
        out.append(Block("p", "No measurement table was given: this report describes the law set "
                              "only. Runs behind it:"))
        rows = []
        for act, e in ((ls.architecture or {}).get("activations") or {}).items():
            sc = e["scale"]
            for i, run in enumerate(sc["runs"]):
                rows.append({"run": run, "activation": act,
                             "width": _g((sc.get("widths") or [None] * len(sc["runs"]))[i]),
                             "depth": _g((sc.get("depths") or [None] * len(sc["runs"]))[i]),
                             "non-embedding params": _g(10 ** sc["log10_n"][i], 3),
                             "source": "published coefficients" if not ls.runs else "fitted run"})
        for run, info in ls.run_info.items():
            if not any(r["run"] == run for r in rows):
                rows.append({"run": run, "activation": info.get("activation"), "width": _g(info.get("width")),
                             "depth": _g(info.get("depth")), "non-embedding params": _g(info.get("n_params"), 3),
                             "source": "fitted run"})
        if rows:
            out.append(Block("table", frame=pd.DataFrame(rows)))
        return out
    t = inp.table
    from sparsitylaws.tables.rows import DEFAULT_METRIC, excluded_runs

    flagged = excluded_runs(t)
    law_metric = ls.provenance.get("metric") or DEFAULT_METRIC
    rows = []
    for run, sub in t.groupby("run", sort=True):
        metrics = ", ".join(sorted({m if pd.isna(a) else f"{m} {a:g}"
                                    for m, a in zip(sub["metric"], sub["metric_arg"], strict=True)}))
        info = ls.run_info.get(run, {})
        if run in ls.runs:
            status = "fitted"
            from sparsitylaws.lawset.build import data_hash

            fit_rows = sub[sub["metric"] == info.get("metric", sub["metric"].iloc[0])]
            if info.get("data_sha256") and data_hash(fit_rows) != info["data_sha256"]:
                status = "fitted (on different data than this table: hashes differ)"
        elif run in flagged:
            status = f"not for fitting: {flagged[run]}"
        else:
            why = (ls.provenance.get("skipped_runs") or {}).get(run)
            n_ck = sub["checkpoint"].nunique()
            status = f"not fitted: {why}" if why else (
                f"not fitted: {n_ck} checkpoint(s), not a training curve" if n_ck < 3 else "not in the law set")
        shown = sub[sub["metric"] == info.get("metric", law_metric)]
        last = (shown if not shown.empty else sub).sort_values("tokens").iloc[-1]
        rows.append({
            "run": run, "activation": sub["activation"].iloc[0],
            "width × depth": _shape(sub), "non-embedding params": _count(_first(sub, "n_params")),
            "metrics": metrics, "checkpoints": int(sub["checkpoint"].nunique()),
            "tokens": "–".join(dict.fromkeys((_count(sub["tokens"].min()), _count(sub["tokens"].max())))),
            "last activation ratio": f"{_pct(last['activation_ratio'])} ({_metric_name(last)})",
            "status": status,
        })
    out.append(Block("p", f"{len(t)} rows, {t['run'].nunique()} run(s), from "
                          f"{', '.join(_shown(f) for f in inp.files)}."))
    out.append(Block("table", frame=pd.DataFrame(rows)))
    return out
