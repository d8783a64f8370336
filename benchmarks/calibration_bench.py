"""Simulation checks of the intervals and the forecasts (the full version of tests/test_simcal.py).

    python benchmarks/calibration_bench.py [--n-sets 90] [--n-boot 200] [--studies 6] [--largest-studies 16]
                                           [--replicate-studies 2] [--mixed-studies 6] [--write | --check]

1. Parameter intervals: truths are the laws fitted to each of the 8 published runs
   (../shared/reference/sparsinglaw-data) on its own kept token grid with its residual sd, plus
   the weakly identified 0.4B ReLU fitted without its points below 10% of its last token count;
   AR(1) noise with rho = 0, 0.15, 0.3.  Coverage of the reported 90% A0 interval and of the
   law's own 90% prediction band for the last checkpoint from a 70% cut.
2. Forecasts: simulated studies (6 runs of sizes 1e8 x 2^k on a tokens-per-parameter grid, AR(1)
   noise rho 0.3) from four truth families (sparsitylaws.runfit.simulate.FAMILIES), two of which
   the law does not describe; every run forecast leave one run out, and the largest run from
   the others, at the 30/50/70% cuts.  Coverage of the combined forecast's 90% band and its
   interval score beside the law's and the naive ones'.  Then the same with two seeds of each
   size (the same truth, their own noise), each run held out: the forecasts that borrow from
   a replicate, under their own model (docs/fitting.md, "Replicates").
3. Studies of both activations (four sizes of a ReLU family beside four of a SiLU family,
   sparsitylaws.runfit.simulate.MIXED_STUDIES), each run held out: coverage and interval score
   per activation with the other activation's calibration scores weighted as chosen (``cross``,
   docs/fitting.md "The other activation's backtests") and, beside it, pooled (the weight held
   at 1, as before that choice existed).

``--write`` puts both tables into docs/fitting.md (``simulation`` markers); ``--check`` compares.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "reference" / "sparsinglaw-data"
DOC = REPO / "docs" / "fitting.md"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from docblocks import publish  # noqa: E402

from sparsitylaws.runfit.simulate import (  # noqa: E402
    FAMILIES,
    MIXED_STUDIES,
    simulate_coverage,
    simulate_forecasts,
    simulate_mixed_forecasts,
    truths_from_runs,
)

RUNS = [f"{s}_{a}" for a in ("relu", "silu") for s in ("0.1b", "0.2b", "0.4b", "0.8b")]


def load() -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    """The published runs: raw tokens, ratio, activation."""
    if not DATA.is_dir():
        sys.exit(f"published data not found at {DATA}")
    out = {}
    for run in RUNS:
        d = json.loads((DATA / f"{run}.json").read_text())
        out[run] = (np.asarray(d["token_passed"], float), np.asarray(d["activation_ratio"], float),
                    run.split("_")[1])
    return out


def mixed_table(n_studies: int, seed: int) -> list[str]:
    """Rows per pair of families and activation: the combined forecast with the cross weight
    chosen, and with it held at 1 (every calibration score pooled, as before the choice)."""
    from unittest import mock

    md = ["", f"**Both activations in one study** ({n_studies} simulated studies per pair, 4 ReLU and 4 SiLU "
              "sizes, each run held out; out of sample; the other activation's backtests weighted as chosen "
              "leave one run out, or pooled)", "",
          "| families | activation | weights chosen | combined, weighted: points covered / interval score (pp) "
          "| combined, pooled: covered / interval score | last value | local line |", "|---|---|---|---|---|---|---|"]
    for fams in MIXED_STUDIES:
        t0 = time.process_time()
        chosen = simulate_mixed_forecasts(fams, n_studies=n_studies, seed=seed)
        with mock.patch("sparsitylaws.runfit.forecast.CROSS_WEIGHTS", (1.0,)):
            pooled = simulate_mixed_forecasts(fams, n_studies=n_studies, seed=seed)
        for act in ("relu", "silu"):
            c, p = chosen[act], pooled[act]
            md.append(f"| {' + '.join(fams)} | {act} | {', '.join(f'{x:g}' for x in c['cross'])} | "
                      f"{c['combined']['coverage']:.3f} / {100 * c['combined']['interval_score']:.3f} | "
                      f"{p['combined']['coverage']:.3f} / {100 * p['combined']['interval_score']:.3f} | "
                      f"{100 * c['naive_last']['interval_score']:.3f} | {100 * c['naive_line']['interval_score']:.3f} |")
        print(f"{' + '.join(fams)}: {time.process_time() - t0:.0f} CPU-s", file=sys.stderr)
    return md


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-sets", type=int, default=90, help="data sets per rho (cycling through 9 truths)")
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--studies", type=int, default=6, help="simulated studies per forecast family")
    ap.add_argument("--largest-studies", type=int, default=16,
                    help="studies per family for the largest-run fold (one forecast run per study, so "
                         "it needs more studies for the same precision; cheap: one fold per study)")
    ap.add_argument("--replicate-studies", type=int, default=2,
                    help="studies per family with two seeds of each size (12 runs, each held out)")
    ap.add_argument("--mixed-studies", type=int, default=6,
                    help="studies per pair of families with both activations (8 runs, each held out)")
    ap.add_argument("--seed", type=int, default=0)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    a = ap.parse_args(argv)
    md = ["**Parameter intervals** (truths: the published runs' fitted laws on their own grids; "
          f"{a.n_sets} data sets per rho, {a.n_boot} bootstrap replicates; a coverage of 0.9 has a "
          f"standard error of {np.sqrt(0.09 / a.n_sets):.3f} here)", "",
          "| AR(1) rho | data sets | A0 (reported interval) | last checkpoint from a 70% cut: law band |",
          "|---|---|---|---|"]
    truths = truths_from_runs(load(), weak=[("0.4b_relu", 0.1)])
    for k, rho in enumerate((0.0, 0.15, 0.3)):
        t0 = time.process_time()
        res = simulate_coverage(truths, rho=rho, n_sets=a.n_sets, seed=a.seed + k, n_boot=a.n_boot)
        md.append(f"| {rho} | {a.n_sets} | {res['a0']:.3f} | {res['law']:.3f} |")
        print(f"rho {rho}: {time.process_time() - t0:.0f} CPU-s", file=sys.stderr)
    md += ["", f"**Forecasts** ({a.studies} simulated studies per family leaving each run out, "
               f"{a.largest_studies} leaving the largest run out (the first {a.studies} the same studies); "
               "6 runs each, 90% bands, cuts 30/50/70%; out of sample: every forecast from the other runs "
               "of its study)", "",
           "| truth family | held out | combined: points covered | combined: last covered | "
           "interval score (pp): combined / law / last value / local line |", "|---|---|---|---|---|"]
    folds = [("each run", {"n_studies": a.studies}), ("largest run", {"n_studies": a.largest_studies,
                                                                       "largest_out": True})]
    if a.replicate_studies:
        folds.append((f"each run, two seeds per size ({a.replicate_studies} studies)",
                      {"n_studies": a.replicate_studies, "replicates": 2}))
    for fam in FAMILIES:
        for label, kw in folds:
            t0 = time.process_time()
            r = simulate_forecasts(fam, seed=a.seed + 100, **kw)
            c = r["combined"]
            isc = " / ".join(f"{100 * r[m]['interval_score']:.3f}" for m in ("combined", "law", "naive_last", "naive_line"))
            md.append(f"| {fam} | {label} | {c['coverage']:.3f} "
                      f"({c['n_points']} points) | {c['covered_last']}/{c['n_forecasts']} | {isc} |")
            print(f"{fam} {label}: {time.process_time() - t0:.0f} CPU-s", file=sys.stderr)
    if a.mixed_studies:
        md += mixed_table(a.mixed_studies, a.seed + 200)
    body = "\n".join(md)
    print(body)
    return publish(DOC, {"simulation": body}, write=a.write, check=a.check)


if __name__ == "__main__":
    raise SystemExit(main())
