"""Leave-one-scale-out yardstick on the published Sparsing Law runs (docs/architecture.md).

Per activation, each scale is predicted from the other scales at three budgets of its own
(first kept checkpoint, middle, last), by every method and by two naive forecasts: the
nearest fitted scale's curve at the same tokens per parameter, and the largest fitted
run's final value.  Prints Markdown: the summary table (error, coverage, interval score),
then every scored point.

    python benchmarks/loso.py [DATA_DIR] [--n-boot 300] [--csv rows.csv]

DATA_DIR defaults to ../shared/reference/sparsinglaw-data (the paper's published JSON).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parents[1]
    ap.add_argument("data", nargs="?", default=str(here.parent / "shared/reference/sparsinglaw-data"))
    ap.add_argument("--n-boot", type=int, default=300)
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--csv", help="also write every scored point to this CSV")
    args = ap.parse_args()

    from sparsitylaws.architecture.crosscheck import loso_from_table, loso_summary
    from sparsitylaws.tables.ingest import read_sparsinglaw_dir

    t0 = time.perf_counter()
    table = read_sparsinglaw_dir(args.data)
    rows = loso_from_table(table, n_boot=args.n_boot, level=args.level)
    if args.csv:
        rows.to_csv(args.csv, index=False)
    summ = loso_summary(rows)
    lvl = int(round(100 * args.level))
    print(f"| activation | budget | method | held-out points | MAE (pp) | bias (pp) "
          f"| {lvl}% band coverage | mean band width (pp) | mean interval score (pp) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for _, r in summ.iterrows():
        print(f"| {r['activation']} | {r['position']} | {r['method']} | {r['n']} | {r['mae_pp']:.2f} "
              f"| {r['bias_pp']:+.2f} | {r['coverage']:.2f} | {r['width_pp']:.2f} "
              f"| {r['interval_score_pp']:.2f} |")
    print()
    print("| held out | budget | tokens | measured | method | predicted [band] | error (pp) |")
    print("|---|---|---|---|---|---|---|")
    for _, r in rows.iterrows():
        print(f"| {r['held_out']} | {r['position']} | {r['tokens']:.3g} | {100 * r['measured']:.2f}% "
              f"| {r['method']} | {100 * r['predicted']:.2f}% [{100 * r['low']:.2f}, {100 * r['high']:.2f}] "
              f"| {100 * r['error']:+.2f} |")
    print(f"\n(n_boot {args.n_boot}, level {args.level}; {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
