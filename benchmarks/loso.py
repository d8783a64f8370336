"""Leave-one-scale-out yardstick for the cross-scale methods (docs/architecture.md).

On the paper's published runs (0.1B-0.8B, ../shared) and on the lab's scale series
(measurements/lab-cpu.parquet, measurements/lab-gpu.parquet): per activation, each scale
run of the series is predicted from the others at three budgets of its own (first kept
checkpoint, middle, last), by every method, next to the naive ``largest_final``.  The
nearest-scale baseline is the method ``nearest``.  ``auto`` (the default) makes its choice
on each fold's training scales only (nested).  Scores: the band for a single measured point
at 90%, its interval score (width + 20 x miss), in percentage points.

    python benchmarks/loso.py [--n-boot 300] [--write | --check] [--csv rows.csv]

``--write`` puts the tables into docs/architecture.md (between the ``loso`` markers),
``--check`` fails (exit 1) when the docs hold other numbers (tolerance 5% or 0.02 pp).
Every run of every series is refitted by ``fit_run`` (its own warm-up average): about a minute
on two idle cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from docblocks import publish  # noqa: E402

DOC = ROOT / "docs" / "architecture.md"
PUBLISHED = ROOT.parent / "shared" / "reference" / "sparsinglaw-data"


def datasets(published: Path, measurements: Path) -> dict[str, pd.DataFrame]:
    """The one-metric tables scored: the published runs (when ../shared is there) and each
    lab plan's table."""
    from sparsitylaws.tables.ingest import read_sparsinglaw_dir
    from sparsitylaws.tables.io import read_table
    from sparsitylaws.tables.rows import select_fit_rows

    out = {}
    if published.is_dir():
        out["published"] = read_sparsinglaw_dir(published)
    for name in ("lab-cpu", "lab-gpu"):
        f = measurements / f"{name}.parquet"
        if f.is_file():
            out[name] = select_fit_rows(read_table(f)).rows
    return out


def loso_rows(tables: dict[str, pd.DataFrame], *, n_boot: int, seed: int = 0) -> pd.DataFrame:
    from sparsitylaws.architecture.crosscheck import loso_from_table
    from sparsitylaws.errors import FitInputError

    parts = []
    for name, t in tables.items():
        try:
            rows = loso_from_table(t, n_boot=n_boot, seed=seed)
        except FitInputError as e:  # a table without a scale series (lab-cpu: a sweep at one size)
            print(f"{name}: not scored ({e})", file=sys.stderr)
            continue
        parts.append(rows.assign(data=name))
    return pd.concat(parts, ignore_index=True)


def overall(rows: pd.DataFrame) -> pd.DataFrame:
    g = rows.groupby(["data", "activation", "method"], sort=False)
    return g.agg(runs=("held_out", "nunique"), n=("error", "size"),
                 mae=("error", lambda e: 100 * np.mean(np.abs(e))),
                 bias=("error", lambda e: 100 * np.mean(e)), coverage=("covered", "mean"),
                 width=("width", lambda w: 100 * np.mean(w)),
                 score=("interval_score", lambda s: 100 * np.mean(s))).reset_index()


def tables_md(rows: pd.DataFrame) -> str:
    """The docs block: the pooled table, the per-budget table of the default and the
    baseline, auto's choices, and the verdict per series and activation."""
    ov = overall(rows)
    lines = ["| data | activation | method | held-out runs x budgets | MAE (pp) | bias (pp) | "
             "90% coverage | mean width (pp) | mean interval score (pp) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for _, r in ov.iterrows():
        lines.append(f"| {r['data']} | {r['activation']} | {r['method']} | {r['runs']} x 3 | "
                     f"{r['mae']:.2f} | {r['bias']:+.2f} | {r['coverage']:.2f} | {r['width']:.2f} | "
                     f"{r['score']:.2f} |")
    lines += ["", "By budget, the default and the baseline (mean interval score, pp; MAE in brackets):", "",
              "| data | activation | budget | auto | nearest |", "|---|---|---|---|---|"]
    sub = rows[rows["method"].isin(["auto", "nearest"])]
    for (d, a, p), g in sub.groupby(["data", "activation", "position"], sort=False):
        cell = {m: f"{100 * h['interval_score'].mean():.2f} ({100 * h['error'].abs().mean():.2f})"
                for m, h in g.groupby("method")}
        lines.append(f"| {d} | {a} | {p} | {cell['auto']} | {cell['nearest']} |")
    lines += ["", "What `auto` chose, per held-out run (nested: on the other runs of the series):", "",
              "| data | activation | held out -> method |", "|---|---|---|"]
    auto = rows[(rows["method"] == "auto") & (rows["position"] == "early")]
    for (d, a), g in auto.groupby(["data", "activation"], sort=False):
        lines.append(f"| {d} | {a} | " + ", ".join(f"{h} -> {m}" for h, m in
                                                    zip(g["held_out"], g["method_used"], strict=True)) + " |")
    lines += ["", "Verdict, per series and activation (mean interval score, pp, lower is better):", ""]
    for (d, a), g in ov.groupby(["data", "activation"], sort=False):
        s = dict(zip(g["method"], g["score"], strict=True))
        ok = s["auto"] <= s["nearest"] + 1e-9
        lines.append(f"- {d} {a}: auto {s['auto']:.2f}, nearest {s['nearest']:.2f}: "
                     f"{'no worse' if ok else 'WORSE'} than the baseline")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--published", type=Path, default=PUBLISHED)
    ap.add_argument("--measurements", type=Path, default=ROOT / "measurements")
    ap.add_argument("--n-boot", type=int, default=300)
    ap.add_argument("--csv", help="also write every scored point to this CSV")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the tables into docs/architecture.md")
    mode.add_argument("--check", action="store_true", help="check docs/architecture.md against them")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = loso_rows(datasets(args.published, args.measurements), n_boot=args.n_boot)
    if args.csv:
        rows.to_csv(args.csv, index=False)
    body = tables_md(rows)
    print(body)
    print(f"\n(n_boot {args.n_boot}; {time.perf_counter() - t0:.0f} s)")
    return publish(DOC, {"loso": body}, write=args.write, check=args.check)


if __name__ == "__main__":
    raise SystemExit(main())
