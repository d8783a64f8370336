"""Benchmark: fit + 1000-replicate bootstrap for the 8 published runs, against plain curve_fit.

Usage (from the repository root)::

    python benchmarks/fit_bench.py [--n-boot 1000] [--repeat 3] [--light]

Reads ../shared/reference/sparsinglaw-data relative to the repository root.  Prints, per run
and in total, the wall time of ``fit_run`` with everything ``sparsitylaws fit`` does per run
(warm-up average over warm-up lengths, multi-start lmfit fit, bootstrap with refits, profile
likelihood of A0, form comparison, three backtests with their own bootstraps), plus the
leave-one-run-out forecast calibration of the 8 runs, and the ratio to one plain
``scipy.optimize.curve_fit`` per run measured in the same process.  ``--light`` leaves out
form comparison and backtests.  Best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import curve_fit

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "reference" / "sparsinglaw-data"
sys.path.insert(0, str(REPO))

from sparsitylaws.lawset.build import calibrate_forecasts  # noqa: E402
from sparsitylaws.runfit.forms import default_form_for, get_form  # noqa: E402
from sparsitylaws.runfit.run import fit_run  # noqa: E402

RUNS = [f"{s}_{a}" for a in ("relu", "silu") for s in ("0.1b", "0.2b", "0.4b", "0.8b")]
#: non-embedding parameters (paper, configuration table) for the tokens-per-parameter analogs
SIZES = {f"{s}_{a}": {"n_params": n} for a in ("relu", "silu")
         for s, n in (("0.1b", 1.08e8), ("0.2b", 2.41e8), ("0.4b", 4.52e8), ("0.8b", 7.60e8))}


def load() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The published runs (tokens raw, ratio)."""
    if not DATA.is_dir():
        sys.exit(f"published data not found at {DATA}")
    out = {}
    for run in RUNS:
        d = json.loads((DATA / f"{run}.json").read_text())
        out[run] = (np.asarray(d["token_passed"], float), np.asarray(d["activation_ratio"], float))
    return out


def plain_curve_fit(tokens: np.ndarray, y: np.ndarray, act: str) -> float:
    """One unconstrained scipy curve_fit of the paper's law from our first starting point; seconds."""
    form = get_form(default_form_for(act))
    D = tokens / 1e9
    p0 = form.starting_points(D, y)[0]
    t0 = time.perf_counter()
    try:
        with np.errstate(all="ignore"):
            curve_fit(lambda d, *p: form.evaluate(d, np.array(p)), D, y, p0=p0, maxfev=20000)
    except RuntimeError:
        pass  # a failed plain fit still took its time
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--light", action="store_true", help="leave out form comparison and backtests")
    args = ap.parse_args()
    data = load()
    best_ours: dict[str, float] = {}
    best_plain: dict[str, float] = {}
    failed: dict[str, int] = {}
    full = not args.light
    best_cal = np.inf
    for _ in range(args.repeat):
        fits = {}
        for run, (t, y) in data.items():
            act = run.split("_")[1]
            best_plain[run] = min(best_plain.get(run, np.inf), plain_curve_fit(t, y, act))
            t0 = time.perf_counter()
            rf = fit_run(t, y, run=run, activation=act, n_boot=args.n_boot, compare=full, backtest=full)
            best_ours[run] = min(best_ours.get(run, np.inf), time.perf_counter() - t0)
            failed[run] = rf.n_boot_failed
            fits[run] = rf
        if full:
            t0 = time.perf_counter()
            calibrate_forecasts(fits, SIZES)
            best_cal = min(best_cal, time.perf_counter() - t0)
    print(f"fit_run, n_boot={args.n_boot}, compare/backtest={'on' if full else 'off'}, "
          f"best of {args.repeat}")
    print(f"{'run':<10} {'fit_run s':>10} {'curve_fit s':>12} {'ratio':>8} {'boot failed':>12}")
    for run in RUNS:
        print(f"{run:<10} {best_ours[run]:>10.3f} {best_plain[run]:>12.4f} "
              f"{best_ours[run] / best_plain[run]:>8.0f} {failed[run]:>12d}")
    tot, plain = sum(best_ours.values()), sum(best_plain.values())
    if full:
        print(f"{'calibrate':<10} {best_cal:>10.3f}   (leave-one-run-out forecast calibration)")
        tot += best_cal
    print(f"{'total':<10} {tot:>10.3f} {plain:>12.4f} {tot / plain:>8.0f}")
    print(f"TOTAL wall time {tot:.2f} s for 8 runs (target < 10 s); ratio to plain curve_fit {tot / plain:.0f}x")


if __name__ == "__main__":
    main()
