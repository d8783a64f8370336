"""The report's architecture laws: scale trends, width/depth laws and the width/depth
sweep's seeds and tests.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sparsitylaws.views.report.blocks import Block, _g, _pct, _try_figure
from sparsitylaws.views.report.inputs import ReportInputs


def architecture_blocks(inp: ReportInputs) -> list[Block]:
    """Scale trends and width/depth laws, with their figures."""
    from sparsitylaws.views import plots

    ls = inp.lawset
    out = [Block("h2", "Architecture laws: width/depth and scale")]
    sec = ls.architecture
    if not sec:
        note = ls.provenance.get("architecture_note") or "the law set has no architecture section"
        out.append(Block("p", f"None: {note}."))
        return out
    rows = []
    for act, e in sorted(sec["activations"].items()):
        sl = e["scale"].get("a0_slope") or {}
        wd = e.get("widthdepth")
        iv = sl.get("interval")
        if wd is None:
            wd_text = "none (A0 assumed independent of width/depth)"
        else:
            pt = wd.get("point") or {}
            wd_text = wd["model"]
            if pt.get("breakpoint") is not None:
                biv = ((wd.get("fit") or {}).get("breakpoint") or {}).get("interval") or (
                    (sec.get("bottleneck") or {}).get("interval"))
                wd_text += f", breakpoint {_g(pt['breakpoint'], 3)}"
                if biv:
                    wd_text += f" [{_g(biv[0], 3)}, {_g(biv[1], 3)}]"
            if pt.get("plateau") is not None:
                wd_text += f", plateau {_pct(pt['plateau'], 1)}"
        rows.append({
            "activation": act, "scale runs": ", ".join(e["scale"]["runs"]),
            "A0 change per decade of parameters": (
                f"{100 * sl['estimate']:+.2f} pp" + (f" [{100 * iv[0]:+.2f}, {100 * iv[1]:+.2f}]" if iv else "")
                if sl.get("estimate") is not None else "n/a"),
            "slope ≠ 0?": {True: "yes", False: "no", None: "n/a"}[sl.get("distinguishable_from_zero")],
            "width/depth law": wd_text,
        })
    out.append(Block("table", frame=pd.DataFrame(rows)))
    band = sec.get("stable_band", {}).get("range")
    if band:
        out.append(Block("p", f"Stable-training band of width/depth (paper): {band[0]:g}–{band[1]:g}."))
    _try_figure(out, "width-depth", "Limit activation ratio A0 against width/depth: the law used by "
                "predictions with its 90% band, the breakpoint and its interval, the plateau, the "
                "stable-training band.", lambda: plots.plot_width_depth(ls))
    _try_figure(out, "scale", "Data-law coefficients against parameter count: runs, trend lines and "
                "90% bands (dark: the trend line; light: a new scale).", lambda: plots.plot_scale(ls))
    return out


def _test_line(name: str, free: dict | None, fixed: dict | None) -> dict:
    """One row of the width/depth tests table: both tests with p-values and power."""
    row = {"limits": name}
    if free:
        pw = free.get("power")
        row["free breakpoint: p (power vs 2 pp)"] = (
            f"{free['p_value']:.3g}" + (f" ({pw:.0%})" if pw is not None else ""))
    if fixed and fixed.get("available"):
        lo, hi = fixed["rise_interval"]
        row[f"fixed breakpoint {fixed['breakpoint']:g}: rise [95%]"] = (
            f"{100 * fixed['rise']:+.2f} pp [{100 * lo:+.2f}, {100 * hi:+.2f}]")
        row["fixed: permutation p (power vs 2 pp)"] = f"{fixed['p_value']:.3g} ({fixed['power']:.0%})"
    return row


def widthdepth_evidence_blocks(ls: Any) -> list[Block]:
    """The width/depth sweep's seeds and tests: each design's seed mean and spread (fitted
    A0 and plateau mean), the run random effect, and both breakpoint tests with p-values
    and power on both kinds of limits."""
    sec = ls.architecture or {}
    out: list[Block] = []
    for act, e in sorted((sec.get("activations") or {}).items()):
        wd = e.get("widthdepth") or {}
        fit, plat = wd.get("fit") or {}, wd.get("plateau_tests") or {}
        if not fit:
            continue
        out.append(Block("h3", f"Width/depth sweep ({act}): seeds and tests"))
        test = fit.get("test") or {}
        pd_designs = {d["design"]: d for d in plat.get("designs") or []}
        rows = []
        for d in fit.get("designs") or []:
            q = pd_designs.get(d["design"], {})
            row = {"width/depth": _g(d["ratio"], 3), "runs": d["runs"],
                   "fitted A0: mean of seeds": _pct(d["mean"]),
                   "fitted A0: sd across seeds": "n/a" if d["sd"] is None else f"{100 * d['sd']:.2f} pp",
                   "plateau: mean of seeds": _pct(q.get("mean")),
                   "plateau: sd across seeds": "n/a" if q.get("sd") is None else f"{100 * q['sd']:.2f} pp"}
            common = [(ls.run_info.get(r) or {}).get("plateau_common_cett") for r in wd.get("runs") or []
                      if math.isclose((ls.run_info.get(r) or {}).get("width_depth_ratio") or -1.0, d["ratio"],
                                       rel_tol=1e-6)]
            common = [c for c in common if c]
            if common:
                vals = np.array([c["mean"] for c in common])
                row[f"plateau at CETT {common[0]['cett']:g}: mean of seeds"] = _pct(float(vals.mean()))
            rows.append(row)
        if rows:
            out.append(Block("table", frame=pd.DataFrame(rows)))
        out.append(Block("p", (
            f"Run random effect (between-run sd of A0, from the seeds where designs repeat): "
            f"{100 * fit.get('between_run_sd', 0.0):.2f} pp; scatter used in the weights: "
            f"{100 * fit.get('weight_scatter', 0.0):.2f} pp; the three heaviest runs carry "
            f"{test.get('top3_weight_share', float('nan')):.0%} of the weight.")))
        tests = [_test_line("fitted A0, weights 1/(se² + tau²)", test, fit.get("fixed_breakpoint_test"))]
        if plat.get("test"):
            tests.append(_test_line(plat.get("limits", "plateau means"), plat["test"],
                                    plat.get("fixed_breakpoint_test")))
        out.append(Block("table", frame=pd.DataFrame(tests)))
    return out
