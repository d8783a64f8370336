"""How far a limit moves when the data move a little (issue 19's continuity check, all runs).

    python benchmarks/stability_bench.py [--seeds 10] [--write | --check]

For every run of the committed lab tables and the paper's published runs: the limit A0 refitted
without a bootstrap (A0 does not depend on it), and again with Gaussian noise of 0.001 points
(1e-5) drawn over the whole table (the draws of forecast_stability.py and of the test),
seeds 0 .. ``--seeds`` - 1.  Reported per table: the largest move
of any limit, and of the ends of its reported interval (the bootstrap is replaced by the profile
likelihood here), and for the lab tables how far the refit lies from the committed law set.
``--write``/``--check``: the ``stability`` block of docs/fitting.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "reference" / "sparsinglaw-data"
DOC = REPO / "docs" / "fitting.md"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from docblocks import publish  # noqa: E402

from sparsitylaws.runfit.run import fit_run  # noqa: E402


def tables() -> dict[str, pd.DataFrame]:
    out = {}
    if DATA.is_dir():
        from sparsitylaws.tables.ingest import read_sparsinglaw_dir

        out["published"] = read_sparsinglaw_dir(str(DATA))
    for p in sorted((REPO / "measurements").glob("lab-*.parquet")):
        df = pd.read_parquet(p)
        out[p.stem] = df[df["metric"] == "ppl-p"]
    return out


def noisy(df: pd.DataFrame, noise: float, seed: int) -> pd.DataFrame:
    """``df`` with Gaussian noise of sd ``noise`` drawn once over the whole table (seed
    ``seed``), ratios kept in [0, 1]: the draws of this benchmark and forecast_stability.py."""
    return df.assign(activation_ratio=np.clip(
        df["activation_ratio"] + np.random.default_rng(seed).normal(0, noise, len(df)), 0, 1))


def limits(df: pd.DataFrame, noise: float, seed: int) -> dict[str, tuple[float, float, float]]:
    """Each run's limit and its interval's ends, with ``noise`` (sd) drawn once over the table."""
    if noise:
        df = noisy(df, noise, seed)
    out = {}
    for run, sub in df.groupby("run"):
        sub = sub.sort_values("tokens")
        y = sub["activation_ratio"].to_numpy(float)
        rf = fit_run(sub["tokens"].to_numpy(float), y, run=str(run), activation=str(sub["activation"].iloc[0]),
                     n_boot=0, compare=False, backtest=False)
        lim = rf.limit()
        out[str(run)] = (lim["estimate"], lim["boot_low"], lim["boot_high"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    a = ap.parse_args(argv)
    md = ["| table | runs | largest move of a limit (pp) | of an interval end (pp) | refit vs committed law set (pp) |",
          "|---|---|---|---|---|"]
    for name, df in tables().items():
        base = limits(df, 0.0, 0)
        worst = [0.0, 0.0]
        for s in range(a.seeds):
            moved = limits(df, 1e-5, s)
            for r in base:
                worst[0] = max(worst[0], abs(moved[r][0] - base[r][0]))
                worst[1] = max(worst[1], abs(moved[r][1] - base[r][1]), abs(moved[r][2] - base[r][2]))
        laws = REPO / "measurements" / f"{name}.laws.json"
        vs = "-"
        if laws.is_file():
            committed = json.loads(laws.read_text())["runs"]
            d = [abs(base[r][0] - c["estimate"][c["param_names"].index("A0")]) for r, c in committed.items() if r in base]
            vs = f"{100 * max(d):.4f}" if d else "-"
        md.append(f"| {name} | {len(base)} | {100 * worst[0]:.4f} | {100 * worst[1]:.4f} | {vs} |")
        print(md[-1], file=sys.stderr)
    body = "\n".join(md)
    print(body)
    return publish(DOC, {"stability": body}, write=a.write, check=a.check, abs_tol=0.05)


if __name__ == "__main__":
    raise SystemExit(main())
