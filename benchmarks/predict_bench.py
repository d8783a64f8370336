"""Benchmark: `planning.predict` on a 100,000-configuration grid (default law set).

Prints the wall and CPU time of the vectorized call (CPU time is the steadier number on a
shared machine) and compares it with a per-row loop measured
on a sample in the same process and extrapolated to the whole grid.  Not a test: timings
depend on the machine, so nothing here asserts on them.

    python benchmarks/predict_bench.py [--n 100000] [--sample 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="configurations in the grid")
    ap.add_argument("--sample", type=int, default=200, help="rows timed one by one for the baseline")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of the vectorized call (best kept)")
    args = ap.parse_args()

    from sparsitylaws.lawset.fileformat import load_lawset
    from sparsitylaws.planning import predict

    ls = load_lawset(None)
    rng = np.random.default_rng(0)
    W = rng.integers(4, 96, args.n) * 128
    L = rng.integers(8, 128, args.n)
    T = rng.uniform(1e10, 1e13, args.n)
    predict(W[:10], L[:10], tokens=T[:10], lawset=ls)  # warm-up: compile the law set once

    print(f"grid: {args.n:,} configurations; law set: {ls.name}; "
          f"{ls.architecture['n_draws']} draws per law; CPUs: {os.cpu_count()}")
    for act in ("relu", "silu", "all"):
        best = cpu = float("inf")
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            df = predict(W, L, tokens=T, activation=act, lawset=ls)
            best = min(best, time.perf_counter() - t0)
            cpu = min(cpu, time.process_time() - c0)
        n_rows = len(df)
        t0 = time.perf_counter()
        for i in range(args.sample):
            predict(int(W[i]), int(L[i]), tokens=float(T[i]), activation=act, lawset=ls)
        per_row = (time.perf_counter() - t0) / args.sample
        loop = per_row * args.n
        print(f"activation={act:<5} vectorized: {best:6.2f} s wall, {cpu:6.2f} s CPU for {n_rows:,} rows "
              f"({1e6 * best / args.n:5.1f} us/config) | per-row loop: {1e3 * per_row:5.2f} ms/config, "
              f"extrapolated {loop:7.1f} s | speed-up x{loop / best:,.0f}")


if __name__ == "__main__":
    main()
