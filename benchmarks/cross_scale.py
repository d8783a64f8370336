"""Cross-scale check on the published Sparsing Law runs (docs/architecture.md table).

Fits the scale trends on some scales only and predicts the held-out scale's whole curve
from its parameter count, for ReLU and SiLU and every method, then prints a Markdown table.

    python benchmarks/cross_scale.py [DATA_DIR] [--n-boot 300]

DATA_DIR defaults to ../shared/reference/sparsinglaw-data (the paper's published JSON).
"""

from __future__ import annotations

import argparse
from pathlib import Path

SPLITS = {  # held-out scale -> training scales
    "0.8b": ("0.1b", "0.2b", "0.4b"),  # the headline check: extrapolate up
    "0.4b": ("0.1b", "0.2b", "0.8b"),  # interpolate
    "0.1b": ("0.2b", "0.4b", "0.8b"),  # extrapolate down
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parents[1]
    ap.add_argument("data", nargs="?", default=str(here.parent / "shared/reference/sparsinglaw-data"))
    ap.add_argument("--n-boot", type=int, default=300)
    args = ap.parse_args()

    from sparsitylaws.architecture import cross_scale_from_table
    from sparsitylaws.tables.ingest import read_sparsinglaw_dir

    table = read_sparsinglaw_dir(args.data)
    print("| held out | trained on | activation | method | points | MAE (pp) | max abs (pp) | bias (pp) "
          "| 90% curve-band coverage | 90% point-band coverage | mean band width (pp) "
          "| A0 predicted [90%] | A0 fitted |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for test, train in SPLITS.items():
        runs = [f"{s}_{a}" for s in train for a in ("relu", "silu")]
        res = cross_scale_from_table(table, train=runs, test=[f"{test}_relu", f"{test}_silu"],
                                     n_boot=args.n_boot)
        for _, r in res.sort_values(["activation", "method"]).iterrows():
            print(f"| {test} | {'+'.join(train)} | {r['activation']} | {r['method']} | {r['n_points']} "
                  f"| {100 * r['mae']:.2f} | {100 * r['max_abs_error']:.2f} | {100 * r['bias']:+.2f} "
                  f"| {r['coverage_curve']:.2f} | {r['coverage_point']:.2f} | {100 * r['mean_band_width']:.1f} "
                  f"| {100 * r['a0_predicted']:.2f} [{100 * r['a0_low']:.2f}, {100 * r['a0_high']:.2f}] "
                  f"| {100 * r['a0_fitted']:.2f} |")


if __name__ == "__main__":
    main()
