"""The ``architecture`` section of a law set: build it from fitted runs (width/depth law
where a sweep exists, scale trends per activation), wrap entries, validate on load."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from sparsitylaws.architecture.common import (
    ARCH_FORMAT,
    ARCH_READABLE,
    ARCH_VERSION,
    FORM_PARAMS,
    PAPER_FORM,
    _floats,
)
from sparsitylaws.architecture.runs import RunSummary, _get, summarize_run
from sparsitylaws.architecture.scale import fit_scale_trends
from sparsitylaws.architecture.widthdepth import (
    HingeFit,
    fit_widthdepth,
    limits_from_final,
    limits_from_fits,
)
from sparsitylaws.errors import FitInputError, LawSetError, SparsityLawsError


def _wd_entry_from_hinge(h: HingeFit, *, n_draws: int, seed: int, ratio_ref: float | None,
                         limit_from: str, runs: Sequence[str], n_params: float | None) -> dict:
    """Width/depth entry: the model used for prediction and its draws (JSON-safe)."""
    rng = np.random.default_rng(seed + 17)
    if h.test["supported"]:
        model = "hinge"
        idx = rng.integers(0, h.draws["slope"].size, n_draws)
        draws = {"slope": h.draws["slope"][idx], "breakpoint": h.draws["breakpoint"][idx],
                 "plateau": h.draws["plateau"][idx]}
        point = {"slope": h.slope, "breakpoint": h.breakpoint, "plateau": h.plateau}
    else:
        lin = h.models["line"]
        const = h.models["constant"]
        n = h.r.size
        if lin["aicc"] < const["aicc"]:
            model = "line"
            sw = h.weights()
            X = np.column_stack([np.ones_like(h.r), h.r]) * sw[:, None]
            cov = np.linalg.inv(X.T @ X) * lin["rss"] / (n - 2)
            se = math.sqrt(cov[1, 1])
            sl = lin["params"]["slope"]
            draws = {"slope": sl + se * rng.standard_t(n - 2, n_draws), "breakpoint": None}
            point = {"slope": sl, "breakpoint": None}
        else:
            model = "constant"
            draws = {"slope": np.zeros(n_draws), "breakpoint": None}
            point = {"slope": 0.0, "breakpoint": None}
    return {
        "model": model,
        "source": f"fit of {len(runs)} runs ({limit_from} limits)",
        "runs": list(runs),
        "n_params": n_params,
        "ratio_range": [float(h.r.min()), float(h.r.max())],
        "point": point,
        "draws": {k: (None if v is None else _floats(v)) for k, v in draws.items()},
        "fit": h.to_dict(),
        "caveats": list(h.warnings),
    }


def _ranges(summ: Sequence[RunSummary], wd: dict | None) -> dict:
    def rng_of(vals):
        v = [float(x) for x in vals if x is not None and math.isfinite(x)]
        return [min(v), max(v)] if v else None

    ratios = [s.ratio for s in summ]
    if wd is not None and wd.get("ratio_range") is not None:  # only ratios actually measured
        ratios += list(wd["ratio_range"])
    toks = [s.tokens_b for s in summ if np.all(np.isfinite(s.tokens_b))]
    return {
        "n_params": rng_of([s.n_params for s in summ]),
        "width": rng_of([s.width for s in summ]),
        "depth": rng_of([s.depth for s in summ]),
        "ratio": rng_of(ratios),
        "tokens": [min(t[0] for t in toks) * 1e9, max(t[1] for t in toks) * 1e9] if toks else None,
        "tokens_per_param": rng_of([s.tokens_b[0] * 1e9 / s.n_params for s in summ if s.n_params
                                    and math.isfinite(s.tokens_b[0])]
                                   + [s.tokens_b[1] * 1e9 / s.n_params for s in summ if s.n_params
                                      and math.isfinite(s.tokens_b[1])]),
    }


def attach_curve(s: RunSummary, points: Any) -> None:
    """Give a run summary its measured curve: the run's points (a measurement table, or a
    mapping run -> (tokens, ratio)) from the first one its fit kept."""
    from sparsitylaws.architecture.curves import measured_curve

    if isinstance(points, pd.DataFrame):
        if "run" not in points.columns:
            return
        g = points[points["run"] == s.name]
        if g.empty:
            return
        tok, y = g["tokens"].to_numpy(float), g["activation_ratio"].to_numpy(float)
    else:
        if s.name not in points:
            return
        tok, y = (np.asarray(v, float) for v in points[s.name])
    start = s.tokens_b[0] * 1e9 if np.isfinite(s.tokens_b[0]) else None
    cur = measured_curve(s.name, tok, y, float(s.n_params), start)
    if cur["tokens_per_param"]:
        s.curve = cur


def _cluster_scales(summ: Sequence[RunSummary], gap: float = 0.1) -> list[list[RunSummary]]:
    """Group runs whose log10 N lie within ``gap`` of a neighbour (same scale)."""
    ss = sorted(summ, key=lambda s: s.n_params or 0.0)
    groups: list[list[RunSummary]] = []
    for s in ss:
        if groups and s.n_params and groups[-1][-1].n_params and \
                math.log10(s.n_params) - math.log10(groups[-1][-1].n_params) < gap:
            groups[-1].append(s)
        else:
            groups.append([s])
    return groups


def degenerate_fit_caveats(names: Sequence[str], runfits: Mapping[str, Any]) -> list[str]:
    """A caveat per scale-series run whose fit left a parameter at its bound.

    Such a fit is degenerate (e.g. the paper's ReLU form collapsed into a power with
    offset: alpha at 0, b and c huge); the scale trends are straight lines through a few
    runs' coefficients, so one degenerate run can set them, and predictions at other scales
    inherit it.
    """
    found = []
    for name in names:
        warns = _get(runfits.get(name), "warnings", default=None) or []
        at_bound = sorted({str(_get(w, "parameter", default="")) for w in warns
                           if _get(w, "code", default=None) == "param_at_bound"} - {"", "None"})
        if at_bound:
            found.append(f"{name} ({', '.join(at_bound)})")
    if not found:
        return []
    return [f"scale trends rest on {len(found)} of {len(names)} runs whose fits left a parameter "
            f"at its bound (degenerate fits): {'; '.join(found)}; the trends of their "
            "coefficients, and predictions at other scales, inherit them"]


def assemble_section(
    activations: Mapping[str, Mapping[str, Any]],
    *,
    n_draws: int,
    seed: int,
    provenance: Mapping[str, Any] | None = None,
    bottleneck: Mapping[str, Any] | None = None,
    stable_band: Sequence[float] | None = None,
) -> dict:
    """Wrap per-activation entries ({scale, widthdepth, ranges, caveats}) into a section."""
    from sparsitylaws import paper

    band = list(stable_band) if stable_band is not None else list(paper.STABLE_WIDTH_DEPTH_BAND)
    return {
        "format": ARCH_FORMAT,
        "format_version": ARCH_VERSION,
        "n_draws": int(n_draws),
        "seed": int(seed),
        "activations": {k: dict(v) for k, v in activations.items()},
        "bottleneck": dict(bottleneck) if bottleneck else {
            "estimate": paper.BOTTLENECK_WIDTH_DEPTH, "interval": None,
            "source": f"paper (0.1B ReLU sweep; no interval published): {paper.CITATION}"},
        "stable_band": {"range": band, "source": f"paper: {paper.CITATION}"},
        "provenance": dict(provenance or {}),
    }


def build_architecture_section(
    runfits: Mapping[str, Any],
    run_info: Mapping[str, Mapping],
    *,
    table: pd.DataFrame | None = None,
    limit_from: str = "fit",
    sweep_runs: Sequence[str] | None = None,
    level: float = 0.9,
    n_draws: int = 400,
    n_boot: int = 999,
    seed: int = 0,
) -> dict:
    """The ``architecture`` section of a law set, from several fitted runs.

    Per activation: runs at (nearly) one scale with >= 5 distinct width/depth ratios form a
    width/depth sweep (or name them in ``sweep_runs``) and get a hinge law (A0 per run from
    the fit, ``limit_from="fit"``, or from the table's final points, ``"final"``); one run
    per scale (the one nearest the median ratio) enters the scale trends.  Runs whose form
    is not the paper's form for their activation are left out, with a caveat.
    """
    if limit_from not in ("fit", "final"):
        raise SparsityLawsError(f"limit_from must be 'fit' or 'final', got {limit_from!r}")
    if limit_from == "final" and table is None:
        raise SparsityLawsError("limit_from='final' needs the measurement table")
    summ: dict[str, list[RunSummary]] = {}
    skipped: list[str] = []
    for name, rf in runfits.items():
        s = summarize_run(name, rf, run_info.get(name, {}))
        if s.activation in PAPER_FORM and s.form != PAPER_FORM[s.activation]:
            skipped.append(f"run {name}: form {s.form} is not the paper form for {s.activation}")
            continue
        if s.n_params is None:
            skipped.append(f"run {name}: n_params unknown")
            continue
        if table is not None:
            attach_curve(s, table)
        summ.setdefault(s.activation or "unknown", []).append(s)
    entries: dict[str, dict] = {}
    bottleneck = None
    for act, ss in sorted(summ.items()):
        caveats = list(skipped)
        wd = None
        groups = _cluster_scales(ss)
        sweep = None
        if sweep_runs is not None:
            sweep = [s for s in ss if s.name in set(sweep_runs)]
        else:
            for g in groups:
                if len({round(s.ratio, 6) for s in g if s.ratio}) >= 5:
                    sweep = g
        if sweep and len(sweep) >= 5:
            if limit_from == "fit":
                lim = limits_from_fits(sweep)
            else:
                lim = limits_from_final(table, [s.name for s in sweep])
            h = fit_widthdepth(lim, level=level, n_boot=n_boot, seed=seed)
            ns = [s.n_params for s in sweep if s.n_params]
            wd = {"pending": h, "runs": [s.name for s in sweep],
                  "n_params": float(np.exp(np.mean(np.log(ns)))) if ns else None}
        scale_runs = []
        known = [s.ratio for s in ss if s.ratio]
        med = float(np.median(known)) if known else None
        other = [s.ratio for s in ss if not (sweep and s in sweep) and s.ratio]
        target = float(np.median(other)) if other else med
        for g in groups:
            # one run per scale: a group of runs at one size with several width/depth ratios
            # (a sweep, or a second sweep from another table) gives the one nearest the other
            # runs' ratio, so width/depth does not leak into the scale trends
            if len(g) > 1 and med is not None and len({round(s.ratio or 0.0, 6) for s in g}) > 1:
                g = [min(g, key=lambda s, t=target: abs((s.ratio or t) - t))]
            scale_runs.extend(g)
        trend = fit_scale_trends(scale_runs, level=level, n_draws=n_draws, seed=seed)
        caveats += degenerate_fit_caveats([s.name for s in scale_runs], runfits)
        if wd is not None:
            h = wd["pending"]
            wd = _wd_entry_from_hinge(h, n_draws=n_draws, seed=seed, ratio_ref=trend.ratio_ref,
                                      limit_from=limit_from, runs=wd["runs"], n_params=wd["n_params"])
            if wd["model"] == "hinge" and bottleneck is None:
                bottleneck = {"estimate": h.breakpoint, "interval": list(h.breakpoint_interval),
                              "activation": act, "source": "width/depth hinge fitted in this law set"}
        else:
            caveats.append(f"no width/depth sweep for {act}: A0 assumed independent of "
                           "width/depth (predictions away from the fitted runs' ratios are "
                           "extrapolations)")
        entries[act] = {"scale": trend.to_dict(), "widthdepth": wd,
                        "ranges": _ranges(ss, wd), "caveats": caveats + trend.warnings}
    if not entries:
        raise FitInputError("architecture laws: no usable runs (" + "; ".join(skipped) + ")")
    return assemble_section(entries, n_draws=n_draws, seed=seed, bottleneck=bottleneck,
                            provenance={"limit_from": limit_from, "level": level,
                                        "n_boot": n_boot, "runs": sorted(runfits)})


def check_section(section: Any, source: str = "law set") -> dict:
    """Validate an architecture section's format and version; LawSetError otherwise."""
    if section is None:
        raise LawSetError(
            f"{source}: has no architecture section (fit several runs with known width, depth "
            "and n_params, or use the default law set)")
    if not isinstance(section, Mapping) or section.get("format") != ARCH_FORMAT:
        raise LawSetError(f"{source}: architecture section is not in format {ARCH_FORMAT!r}")
    v = section.get("format_version")
    if v not in ARCH_READABLE:
        raise LawSetError(
            f"{source}: unknown architecture section format version {v!r} (this sparsitylaws "
            f"reads versions {', '.join(map(str, ARCH_READABLE))})")
    acts = section.get("activations")
    if not isinstance(acts, Mapping) or not acts:
        raise LawSetError(f"{source}: architecture section has no activations")
    for act, e in acts.items():
        sc = e.get("scale") if isinstance(e, Mapping) else None
        if not isinstance(sc, Mapping) or sc.get("form") not in FORM_PARAMS:
            raise LawSetError(f"{source}: architecture entry {act!r} has no usable scale law")
    return dict(section)
