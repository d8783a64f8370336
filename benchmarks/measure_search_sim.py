"""Simulation: the PPL-p% searches on synthetic jagged curves (passes, agreement).

No model: each curve is a power law log PPL ratio = t (c / root)^beta plus independent noise
of sd ``sd`` targets at every grid point (t = log 1.01, p = 1, xtol = 1e-3), the family of
``tests/measure/test_search.py``.  For each noise level: the passes of fast and bisect
(mean, max), how often their answers differ, how often an answer is not the brute-force
first crossing (the rule of the certificate broken by the noise), and how often fast needs
more passes than bisect (with the largest excess).  Then the two stress families of
docs/measure.md: flat curves with a step (where a model learns nothing), and a wide family
(root 0.005-0.6, exponent 1-4, noise up to 0.4 targets, any first probe, 1-4 values per
pass).

    python benchmarks/measure_search_sim.py [--curves 200]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics

from sparsitylaws.measure.search import bisect_search, fast_search

TARGET = math.log(1.01)
XTOL = 1e-3


def jagged(root: float, beta: float, sd: float, seed: int):
    """The test suite's jagged curve: power law plus noise fixed per grid point."""
    def obj(cs: list[float]) -> list[float]:
        return [TARGET * (c / root) ** beta
                + random.Random(round(c * 1e6) * 7919 + seed).gauss(0, sd) * TARGET for c in cs]
    return obj


def first_crossing(obj) -> float:
    vals = obj([round(k * XTOL, 12) for k in range(1, 1001)])
    k = next((i for i, v in enumerate(vals, start=1) if v > TARGET), None)
    return 1.0 if k is None else round((k - 1) * XTOL, 12)


def family(curves: int, first_probe: str) -> None:
    print(f"\nfirst probe {first_probe}; {curves} curves per row (root 0.02-0.1, exponent 2-3)\n")
    print("| noise sd (targets) | fast passes (mean, max) | bisect passes (mean, max) | "
          "answers differ | not the first crossing (fast, bisect) | fast > bisect (largest excess) |")
    print("|---|---|---|---|---|---|")
    for sd in (0.0, 0.03, 0.05, 0.07, 0.15):
        fp, bp, diff, off_f, off_b, worse = [], [], 0, 0, 0, []
        for seed in range(curves):
            rnd = random.Random(seed)
            root = math.exp(rnd.uniform(math.log(0.02), math.log(0.1)))
            obj = jagged(root, rnd.uniform(2, 3), sd, seed)
            c0 = 0.05 if first_probe == "0.05" else root * math.exp(rnd.uniform(-1.0986, 1.0986))
            f = fast_search(obj, 1.0, XTOL, c_init=c0)
            b = bisect_search(obj, 1.0, XTOL)
            want = first_crossing(obj)
            fp.append(f.passes)
            bp.append(b.passes)
            diff += f.cett != b.cett
            off_f += f.cett != want
            off_b += b.cett != want
            if f.passes > b.passes:
                worse.append(f.passes - b.passes)
        print(f"| {sd:g} | {statistics.mean(fp):.1f}, {max(fp)} | {statistics.mean(bp):.1f}, "
              f"{max(bp)} | {diff} | {off_f}, {off_b} | {len(worse)}"
              f"{f' ({max(worse)})' if worse else ''} |")


def steps() -> None:
    worse, most, mean_f, mean_b = 0, 0, [], []
    for k in range(1, 1000):
        def obj(cs, k=k):
            return [(0.5 if c < k * XTOL - 1e-9 else 3.0) * TARGET for c in cs]
        f = fast_search(obj, 1.0, XTOL, c_init=0.05)
        b = bisect_search(obj, 1.0, XTOL)
        assert f.cett == b.cett
        worse += f.passes > b.passes
        most = max(most, f.passes - b.passes)
        mean_f.append(f.passes)
        mean_b.append(b.passes)
    print(f"\nstep curves (0.5 target, then 3 targets; 999 step positions): fast "
          f"{statistics.mean(mean_f):.1f} passes (max {max(mean_f)}), bisect "
          f"{statistics.mean(mean_b):.1f} (max {max(mean_b)}); fast > bisect at {worse} "
          f"positions, by at most {most}")


def wide(curves: int) -> None:
    unc, most, worse, excess = 0, 0, 0, 0
    for seed in range(curves):
        rnd = random.Random(seed)
        root = math.exp(rnd.uniform(math.log(0.005), math.log(0.6)))
        beta = rnd.uniform(1, 4)
        sd = rnd.choice([0, 0.01, 0.03, 0.1, 0.2, 0.4])
        obj = jagged(root, beta, sd, seed)
        c0 = rnd.choice([None, 0.05, root * rnd.uniform(0.1, 10)])
        pp = rnd.choice([1, 1, 2, 4])
        f = fast_search(obj, 1.0, XTOL, c_init=c0, per_pass=pp)
        b = bisect_search(obj, 1.0, XTOL, per_pass=pp)
        unc += (not f.certified) + (not b.certified)
        most = max(most, f.passes, b.passes)
        worse += f.passes > b.passes
        excess = max(excess, f.passes - b.passes)
    print(f"\nwide family ({curves} curves): not certified {unc}, most passes {most}, "
          f"fast > bisect on {worse} (by at most {excess})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--curves", type=int, default=200)
    args = ap.parse_args()
    family(args.curves, "0.05")
    family(args.curves, "within 3x of the root")
    steps()
    wide(args.curves * 5)


if __name__ == "__main__":
    main()
