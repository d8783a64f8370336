"""The packaged default law set, built from the paper's published figures only.

``python -m sparsitylaws.defaults`` rewrites ``sparsitylaws/data/default_lawset.json``; a
test checks that the packaged file equals what :func:`build_default_lawset` builds.

What goes in (all from :mod:`sparsitylaws.paper`, Luo et al. 2024):

* **Scale laws**: the Table 2 coefficients of the 6 ReLU and 5 SiLU runs, trended in
  log10 N exactly as for a user's fits.  No per-run uncertainties were published, so the
  intervals come only from the scatter of the published coefficients around the trend
  (multivariate t with n - 2 degrees of freedom).
* **Width/depth law (ReLU only)**: the paper publishes the bottleneck (~114), the plateau
  (~8%) and that A0 rises linearly below it, but no slope and no points.  The slope is
  therefore *derived*: the line from the 0.1B ReLU run's A0 (Table 2, width/depth 48) to
  the plateau at the bottleneck.  Its uncertainty is an *assumption*, stated here and in
  the law set: plateau 8% +- 0.8 points (90%), bottleneck 114 within x/÷1.25 (90%: about
  91-143), and the 0.1B anchor uncertain by the Table-2 A0 scatter around the scale trend.
  These are few published numbers, so the width/depth intervals are wide on purpose.
* **SiLU has no width/depth law**: the paper's sweep is ReLU only.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from sparsitylaws import __version__, paper
from sparsitylaws.architecture import (
    FORM_PARAMS,
    PAPER_FORM,
    RunSummary,
    _floats,
    _ranges,
    assemble_section,
    fit_scale_trends,
)

if TYPE_CHECKING:
    from sparsitylaws.lawset import LawSet

DEFAULT_NAME = "default (Luo et al. 2024, published figures)"
N_DRAWS = 200
SEED = 20241104
#: Assumed 90% half-width of the ReLU plateau (activation-ratio units).
PLATEAU_HALFWIDTH = 0.008
#: Assumed 90% multiplicative half-width of the bottleneck.
BOTTLENECK_FACTOR = 1.25
#: Lower end of the token range treated as fitted, as a share of the smallest run's budget.
TOKENS_LOW_SHARE = 0.05

CAVEATS = [
    "Built from published coefficients only (Table 2); no per-run uncertainties were "
    "published, so scale-law intervals reflect only the scatter of those coefficients "
    "around straight lines in log10 N.",
    "The width/depth slope rests on three published numbers (0.1B ReLU A0 at width/depth "
    "48, bottleneck ~114, plateau ~8%); its interval is an assumption, not an estimate, and "
    "it is wide on purpose.",
    "The width/depth law was measured at 0.1B with ReLU; applying it at other scales assumes "
    "its effect adds to the scale trend. SiLU has no width/depth law.",
    "The fitted token range is assumed from the paper's budget (about 190 tokens per "
    "non-embedding parameter); the published tables do not state it per run.",
    "The 0.1B ReLU coefficients (alpha 0.10, c 3.2) differ in kind from the larger runs, "
    "which widens every ReLU curve interval.",
]


def _summaries(act: str) -> list[RunSummary]:
    form = PAPER_FORM[act]
    names = FORM_PARAMS[form]
    out = []
    for (a, scale), coef in sorted(paper.TABLE2.items(), key=lambda kv: paper.CONFIGS[kv[0][1]].n_params):
        if a != act:
            continue
        cfg = paper.CONFIGS[scale]
        budget_b = paper.TOKENS_PER_PARAM * cfg.n_params / 1e9
        out.append(RunSummary(
            name=f"{scale}_{act}", activation=act, form=form, param_names=list(names),
            theta=np.array([coef[n] for n in names]), draws=None, a0=coef["A0"],
            a0_interval=None, a0_level=0.9, tokens_b=(TOKENS_LOW_SHARE * budget_b, budget_b),
            sigma=None, n_params=cfg.n_params, width=cfg.width, depth=cfg.depth))
    return out


def _relu_widthdepth(trend, anchor: RunSummary, rng: np.random.Generator) -> dict:
    """Assumption-based hinge draws for ReLU (see the module docstring)."""
    z90 = stats.norm.ppf(0.95)
    rb0 = paper.BOTTLENECK_WIDTH_DEPTH
    plat0 = paper.PLATEAU_ACTIVATION_RATIO_RELU
    r_anchor = anchor.ratio
    slope0 = (plat0 - anchor.a0) / (rb0 - r_anchor)
    ia0 = trend.param_names.index("A0")
    anchor_sd = math.sqrt(trend.resid_cov[ia0, ia0])
    plat = plat0 + rng.standard_normal(N_DRAWS) * PLATEAU_HALFWIDTH / z90
    rb = rb0 * np.exp(rng.standard_normal(N_DRAWS) * math.log(BOTTLENECK_FACTOR) / z90)
    a_anchor = anchor.a0 + rng.standard_normal(N_DRAWS) * anchor_sd
    slope = (plat - a_anchor) / (rb - r_anchor)
    return {
        "model": "hinge",
        "source": ("paper: 0.1B ReLU sweep (bottleneck ~114, plateau ~8%, no points published); "
                   "slope derived from the 0.1B Table-2 A0 at width/depth 48"),
        "runs": [anchor.name],
        "n_params": anchor.n_params,
        "assumed": True,
        # no sweep points are published: the only measured ratio is the anchor's; the
        # stable band is where the paper trained, kept for reference, not as a fitted range
        "ratio_range": [float(r_anchor), float(r_anchor)],
        "assumed_ratio_range": [float(r_anchor), float(paper.STABLE_WIDTH_DEPTH_BAND[1])],
        "point": {"slope": float(slope0), "breakpoint": float(rb0), "plateau": float(plat0)},
        "draws": {"slope": _floats(slope), "breakpoint": _floats(rb), "plateau": _floats(plat)},
        "assumptions": {
            "plateau_90": [plat0 - PLATEAU_HALFWIDTH, plat0 + PLATEAU_HALFWIDTH],
            "bottleneck_90": [rb0 / BOTTLENECK_FACTOR, rb0 * BOTTLENECK_FACTOR],
            "anchor_sd": anchor_sd,
            "anchor_sd_source": "residual sd of the Table-2 ReLU A0 values around their scale trend",
        },
        "slope_interval_90": [float(x) for x in np.quantile(slope, [0.05, 0.95])],
        "fit": None,
        "caveats": [CAVEATS[1], CAVEATS[2]],
    }


def build_default_section() -> dict:
    """The architecture section of the default law set (deterministic)."""
    rng = np.random.default_rng(SEED)
    entries = {}
    for act in ("relu", "silu"):
        ss = _summaries(act)
        trend = fit_scale_trends(ss, n_draws=N_DRAWS, seed=SEED + (0 if act == "relu" else 1))
        wd = _relu_widthdepth(trend, ss[0], rng) if act == "relu" else None
        caveats = list(CAVEATS[:1]) + [CAVEATS[3]] + (
            [CAVEATS[4]] if act == "relu" else
            ["SiLU has no width/depth law (the paper's sweep is ReLU only): A0 assumes the "
             "fitted runs' width/depth ratio (48-58)."])
        entries[act] = {"scale": trend.to_dict(), "widthdepth": wd, "ranges": _ranges(ss, wd),
                        "caveats": caveats + trend.warnings}
    return assemble_section(
        entries, n_draws=N_DRAWS, seed=SEED,
        provenance={"source": paper.CITATION, "built_by": "sparsitylaws.defaults",
                    "tables": "Table 2 (v4) coefficients; configuration table"},
        bottleneck={"estimate": paper.BOTTLENECK_WIDTH_DEPTH,
                    "interval": [paper.BOTTLENECK_WIDTH_DEPTH / BOTTLENECK_FACTOR,
                                 paper.BOTTLENECK_WIDTH_DEPTH * BOTTLENECK_FACTOR],
                    "activation": "relu",
                    "source": "paper (0.1B ReLU sweep); interval assumed (x/÷1.25), not published"})


def build_default_dict() -> dict:
    """The whole default law set as a JSON-ready dict (lawset format version 1)."""
    from sparsitylaws.lawset import LAWSET_FORMAT, LAWSET_VERSION, LawSet
    from sparsitylaws.recipe import recipe_metadata

    d = {
        "format": LAWSET_FORMAT,
        "format_version": LAWSET_VERSION,
        "name": DEFAULT_NAME,
        "provenance": {
            "source": paper.CITATION,
            "built_by": "sparsitylaws.defaults.build_default_dict",
            "built_with": f"sparsitylaws {__version__}",
            "seed": SEED,
            "caveats": CAVEATS,
        },
        "run_info": {},
        "runs": {},
        "architecture": build_default_section(),
    }
    # the recipe it describes and how far another one landed (sparsitylaws.recipe)
    rec = recipe_metadata(LawSet.from_dict(d, source="default law set (building)"))
    d["provenance"]["recipe"] = rec
    d["provenance"]["caveats"] = [rec["caveat"], *CAVEATS]
    return d


def build_default_lawset() -> LawSet:
    """The default law set as a :class:`~sparsitylaws.lawset.LawSet`."""
    from sparsitylaws.lawset import LawSet

    return LawSet.from_dict(build_default_dict(), source="default law set (built)")


def default_json_text() -> str:
    """The exact text of the packaged default law set file."""
    return build_default_lawset().to_json()


def default_path() -> Path:
    """Where the packaged default law set lives in the source tree."""
    return Path(__file__).with_name("data") / "default_lawset.json"


def write_default(path: Path | None = None) -> Path:
    """Regenerate the packaged default law set file."""
    path = path or default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = default_json_text()
    json.loads(text)  # sanity
    path.write_text(text, encoding="utf-8")
    return path


if __name__ == "__main__":  # pragma: no cover
    print(write_default())
