"""Simulation calibration of A0 intervals and 70%-cut forecasts (the full version of tests/test_simcal.py).

Usage (from the repository root)::

    python benchmarks/calibration_bench.py [--n-sets 180] [--n-boot 200] [--seed 0]

Truths: the law fitted to each of the 8 published runs (../shared/reference/sparsinglaw-data)
on its own kept token grid with its residual sd, plus the weakly identified 0.4B ReLU fitted
without its points below 10% of its last token count.  AR(1) noise with rho = 0, 0.15, 0.3.
Prints, per rho, the coverage of the reported 90% A0 interval, of the law's own 90%
prediction band and of the full forecast band for the last checkpoint from a 70% cut, and
the same per truth.  The table in docs/fitting.md comes from this script.
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
sys.path.insert(0, str(REPO))

from sparsitylaws.runfit.simulate import simulate_coverage, truths_from_runs  # noqa: E402

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-sets", type=int, default=180, help="data sets per rho (cycling through 9 truths)")
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    truths = truths_from_runs(load(), weak=[("0.4b_relu", 0.1)])
    print(f"{'rho':>5} {'sets':>5} {'A0':>6} {'law band':>9} {'forecast band':>14}   seconds")
    per = {}
    for k, rho in enumerate((0.0, 0.15, 0.3)):
        t0 = time.perf_counter()
        res = simulate_coverage(truths, rho=rho, n_sets=args.n_sets, seed=args.seed + k, n_boot=args.n_boot)
        per[rho] = res["per_truth"]
        print(f"{rho:>5} {args.n_sets:>5} {res['a0']:>6.3f} {res['law']:>9.3f} {res['forecast']:>14.3f}"
              f"   {time.perf_counter() - t0:.0f}", flush=True)
    print("\nper truth (A0, law band, forecast band):")
    for rho, d in per.items():
        for name, v in d.items():
            print(f"  rho {rho:<5} {name:<40} " + " ".join(f"{x:.2f}" for x in v))


if __name__ == "__main__":
    main()
