"""The packaged default law set, built from the paper's published figures only.

The content of ``sparsitylaws/lawset/default_lawset.json``; the file is written by
``python -m sparsitylaws.planning.default_lawset`` (its recipe note is a prediction), and a
test checks that the packaged file equals what that builds.

What goes in (all from :mod:`sparsitylaws.paper`, Luo et al. 2024):

* **Scale laws**: the Table 2 coefficients of the 6 ReLU and 5 SiLU runs, trended in
  log10 N exactly as for a user's fits.  No per-run uncertainties were published, so no
  run enters as exact: each gets draws from :data:`REFIT_SHIFTS`, how far refits of the
  published runs in ../shared land from Table 2 (whole shift vectors, random sign; A0 RMS
  0.42 points, the same size as the 0.64-point move of the 2.4B ReLU A0 between the
  paper's versions).  The intervals add the scatter of the coefficients around the trend
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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

from sparsitylaws import paper
from sparsitylaws.architecture import (
    FORM_PARAMS,
    PAPER_FORM,
    RunSummary,
    _floats,
    _ranges,
    assemble_section,
    fit_scale_trends,
)
from sparsitylaws.version import __version__

if TYPE_CHECKING:
    from sparsitylaws.lawset.fileformat import LawSet

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
    "Built from published coefficients only (Table 2). No per-run uncertainties were "
    "published; each run's coefficients get one from how far refits of the published runs "
    "land from Table 2 (A0 RMS 0.42 points; the paper's versions moved the 2.4B ReLU A0 by "
    "0.64 points), and the scale laws add the scatter of the runs around their trend.",
    "The width/depth slope rests on three published numbers (0.1B ReLU A0 at width/depth "
    "48, bottleneck ~114, plateau ~8%); its interval is an assumption, not an estimate, and "
    "it is wide on purpose.",
    "The width/depth law was measured at 0.1B with ReLU; applying it at other scales assumes "
    "it moves the odds of A0 by the same factor at every scale. SiLU has no width/depth law.",
    "The fitted token range is assumed from the paper's budget (about 190 tokens per "
    "non-embedding parameter); the published tables do not state it per run.",
    "The 0.1B ReLU coefficients (alpha 0.10, c 3.2) differ in kind from the larger runs, "
    "which widens every ReLU curve interval.",
]


#: How far a refit of the published runs (../shared/reference/sparsinglaw-data, fitted by
#: :func:`sparsitylaws.runfit.run.fit_run` with its automatic warm-up average) lands from Table 2,
#: per run, in the law's parameter order (ReLU: alpha, b, c, A0; SiLU: alpha, c, A0):
#: alpha and c as log(refit / Table 2), b and A0 as refit - Table 2.  Reproduce with
#: :func:`refit_shifts` (``python -m sparsitylaws.lawset.packaged --shifts DIR``); a test checks
#: these numbers against a refit.  They give every Table 2 run an uncertainty: no published
#: run enters the default law set as exact (see :func:`table2_draws`).
REFIT_SHIFTS: dict[str, dict[str, tuple[float, ...]]] = {
    "relu": {
        "0.1b": (0.2992, -0.8083, -0.2743, 0.0016),
        "0.2b": (0.0012, 0.0009, -0.0024, 0.00003),
        "0.4b": (-0.2304, 0.1536, 0.3902, -0.00367),
        "0.8b": (0.0064, -0.0057, -0.0230, 0.00002),
    },
    "silu": {
        "0.1b": (-0.3329, -0.0880, 0.00897),
        "0.2b": (-0.3317, -0.5308, 0.00326),
        "0.4b": (-0.1609, -0.4969, 0.00047),
        "0.8b": (-0.4774, -1.0733, 0.00570),
    },
}
#: The paper's own versions moved the 2.4B ReLU A0 from 7.12% (v1) to 6.48% (v4): a shift
#: of the same size as the refits' (RMS 0.42 points), so the refit shifts are kept as is.
VERSION_SHIFT_A0_RELU_24B = 0.0712 - 0.0648


def refit_shifts(data_dir: str | Path) -> dict[str, dict[str, tuple[float, ...]]]:
    """Refit each published run in ``data_dir`` and return its shift from Table 2
    (the :data:`REFIT_SHIFTS` layout, rounded as stored)."""
    from sparsitylaws.runfit.run import fit_run

    out: dict[str, dict[str, tuple[float, ...]]] = {}
    for f in sorted(Path(data_dir).glob("*.json")):
        scale, act = f.stem.split("_")
        if (act, scale) not in paper.TABLE2:
            continue
        d = json.loads(f.read_text())
        fit = fit_run(d["token_passed"], d["activation_ratio"], run=f.stem, activation=act,
                      n_boot=0, compare=False, backtest=False)
        est = dict(zip(fit.param_names, fit.estimate, strict=True))
        t2 = paper.TABLE2[(act, scale)]
        diff = []
        for k in FORM_PARAMS[PAPER_FORM[act]]:
            if k in ("alpha", "c"):
                diff.append(round(math.log(est[k] / t2[k]), 4))
            else:
                diff.append(round(est[k] - t2[k], 5 if k == "A0" else 4))
        out.setdefault(act, {})[scale] = tuple(diff)
    return out


def table2_draws(act: str, theta: np.ndarray, rng: np.random.Generator, n: int = N_DRAWS) -> np.ndarray:
    """Draws (n, k) of one Table 2 run's coefficients: the published values moved by one of
    the activation's refit shifts (:data:`REFIT_SHIFTS`, chosen at random, random sign):
    alpha and c multiplied by exp(shift), b and A0 moved by it.  Whole shift vectors keep the trade-off between alpha
    and c that a refit shows; resampling them across runs assumes every run's published
    coefficients are as uncertain as those of the runs that could be refitted."""
    names = FORM_PARAMS[PAPER_FORM[act]]
    shifts = np.array(list(REFIT_SHIFTS[act].values()), float)
    pick = shifts[rng.integers(0, shifts.shape[0], n)] * rng.choice([-1.0, 1.0], n)[:, None]
    out = np.empty((n, len(names)))
    for j, k in enumerate(names):
        if k in ("alpha", "c"):
            out[:, j] = theta[j] * np.exp(pick[:, j])
        else:
            out[:, j] = theta[j] + pick[:, j]
    ia0 = names.index("A0")
    out[:, ia0] = np.clip(out[:, ia0], 1e-4, 1 - 1e-4)
    return out


def _summaries(act: str) -> list[RunSummary]:
    form = PAPER_FORM[act]
    names = FORM_PARAMS[form]
    rng = np.random.default_rng(SEED + (10 if act == "relu" else 11))
    out = []
    for (a, scale), coef in sorted(paper.TABLE2.items(), key=lambda kv: paper.CONFIGS[kv[0][1]].n_params):
        if a != act:
            continue
        cfg = paper.CONFIGS[scale]
        budget_b = paper.TOKENS_PER_PARAM * cfg.n_params / 1e9
        out.append(RunSummary(
            name=f"{scale}_{act}", activation=act, form=form, param_names=list(names),
            theta=np.array([coef[n] for n in names]),
            draws=table2_draws(act, np.array([coef[n] for n in names]), rng), a0=coef["A0"],
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
        provenance={"source": paper.CITATION, "built_by": "sparsitylaws.lawset.packaged",
                    "tables": "Table 2 (v4) coefficients; configuration table"},
        bottleneck={"estimate": paper.BOTTLENECK_WIDTH_DEPTH,
                    "interval": [paper.BOTTLENECK_WIDTH_DEPTH / BOTTLENECK_FACTOR,
                                 paper.BOTTLENECK_WIDTH_DEPTH * BOTTLENECK_FACTOR],
                    "activation": "relu",
                    "source": "paper (0.1B ReLU sweep); interval assumed (x/÷1.25), not published"})


def build_default_dict(recipe_note: Callable[[LawSet], dict] | None = None) -> dict:
    """The whole default law set as a JSON-ready dict (lawset format version 1).

    ``recipe_note(lawset) -> dict`` adds ``provenance["recipe"]`` (the recipe the law set
    describes and how far another one landed: a prediction, so it is computed by the
    planning stage, :mod:`sparsitylaws.planning.default_lawset`, which writes the file).
    """
    from sparsitylaws.lawset.fileformat import LAWSET_FORMAT, LawSet, version_for

    d = {
        "format": LAWSET_FORMAT,
        "format_version": version_for(None),
        "name": DEFAULT_NAME,
        "provenance": {
            "source": paper.CITATION,
            "built_by": "sparsitylaws.lawset.packaged.build_default_dict",
            "built_with": f"sparsitylaws {__version__}",
            "seed": SEED,
            "caveats": CAVEATS,
        },
        "run_info": {},
        "runs": {},
        "architecture": build_default_section(),
    }
    if recipe_note is not None:
        rec = recipe_note(LawSet.from_dict(d, source="default law set (building)"))
        d["provenance"]["recipe"] = rec
        d["provenance"]["caveats"] = [rec["caveat"], *CAVEATS]
    return d


def default_path() -> Path:
    """Where the packaged default law set lives in the source tree."""
    return Path(__file__).with_name("default_lawset.json")


if __name__ == "__main__":  # pragma: no cover
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--shifts":
        print(json.dumps(refit_shifts(sys.argv[2]), indent=1))
    else:
        sys.exit("python -m sparsitylaws.lawset.packaged --shifts DIR prints the refit shifts; "
                 "the packaged file is written by python -m sparsitylaws.planning.default_lawset")
