"""Cross-scale check on the published Sparsing Law runs (docs/architecture.md table).

Builds the architecture section on some scales only and predicts the held-out scale's
whole curve from its parameter count, for ReLU and SiLU and every method, then prints a
Markdown table: error, coverage of the curve and point bands, their width and interval
score, clamped points, and the predicted A0.

    python benchmarks/cross_scale.py [DATA_DIR] [--n-boot 300] [--write | --check]

DATA_DIR defaults to ../shared/reference/sparsinglaw-data (the paper's published JSON).
``--write`` puts the table into docs/architecture.md (``cross_scale`` markers), ``--check``
fails when the docs hold other numbers (tolerance 5% or 0.02).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from docblocks import publish  # noqa: E402

SPLITS = {  # held-out scale -> training scales
    "0.8b": ("0.1b", "0.2b", "0.4b"),  # the headline check: extrapolate up
    "0.4b": ("0.1b", "0.2b", "0.8b"),  # interpolate
    "0.1b": ("0.2b", "0.4b", "0.8b"),  # extrapolate down
}
DOC = ROOT / "docs" / "architecture.md"


def table(data: str, n_boot: int) -> str:
    from sparsitylaws.architecture import cross_scale_from_table
    from sparsitylaws.tables.ingest import read_sparsinglaw_dir

    t = read_sparsinglaw_dir(data)
    lines = ["| held out | trained on | activation | method | points | MAE (pp) | max abs (pp) | "
             "bias (pp) | curve-band coverage | point-band coverage | mean width (pp) | "
             "interval score (pp) | clamped | A0 predicted [90%] | A0 fitted |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for test, train in SPLITS.items():
        runs = [f"{s}_{a}" for s in train for a in ("relu", "silu")]
        res = cross_scale_from_table(t, train=runs, test=[f"{test}_relu", f"{test}_silu"], n_boot=n_boot)
        for _, r in res.iterrows():
            m = r["method"] if r["method"] != "auto" else f"auto ({r['method_used']})"
            lines.append(
                f"| {test} | {'+'.join(train)} | {r['activation']} | {m} | {r['n_points']} "
                f"| {100 * r['mae']:.2f} | {100 * r['max_abs_error']:.2f} | {100 * r['bias']:+.2f} "
                f"| {r['coverage_curve']:.2f} | {r['coverage_point']:.2f} | {100 * r['mean_band_width']:.1f} "
                f"| {100 * r['interval_score']:.2f} | {r['n_clamped']} "
                f"| {100 * r['a0_predicted']:.2f} [{100 * r['a0_low']:.2f}, {100 * r['a0_high']:.2f}] "
                f"| {100 * r['a0_fitted']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=str(ROOT.parent / "shared/reference/sparsinglaw-data"))
    ap.add_argument("--n-boot", type=int, default=300)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    body = table(args.data, args.n_boot)
    print(body)
    return publish(DOC, {"cross_scale": body}, write=args.write, check=args.check)


if __name__ == "__main__":
    raise SystemExit(main())
