"""Every generated block of the docs, the command that writes it, and one command to run them.

    python benchmarks/regenerate.py --list                 # which block, which file, which command
    python benchmarks/regenerate.py --check [--only NAME]  # each command with --check (exit 1 if any differs)
    python benchmarks/regenerate.py --write [--only NAME]  # each command with --write

A block is the Markdown between ``<!-- begin NAME -->`` and ``<!-- end NAME -->`` in a file of
docs/ (:mod:`docblocks`); its numbers come only from the command listed here, which the text
beside the block names too.  tests/test_docs.py keeps this registry and the docs' markers in
step.  The commands run one after another, in the order below (the lab tables' blocks read the
committed law sets; nothing else depends on another block).  All of them take about two hours on
two cores; ``--only`` runs the commands of the named blocks.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: (script and its arguments, the blocks it writes, the file they are in, minutes on two cores)
COMMANDS: tuple[tuple[tuple[str, ...], tuple[str, ...], str, int], ...] = (
    (("stability_bench.py",), ("stability",), "docs/fitting.md", 3),
    (("forecast_stability.py",), ("forecast-stability",), "docs/fitting.md", 30),
    (("forecast_eval.py",), ("forecast-eval",), "docs/fitting.md", 6),
    (("outsider_check.py",), ("outsider-check",), "docs/fitting.md", 8),
    (("lone_run.py",), ("lone-run",), "docs/fitting.md", 5),
    (("calibration_bench.py", "--n-sets", "45", "--studies", "4", "--largest-studies", "16",
      "--replicate-studies", "2", "--mixed-studies", "6"), ("simulation",), "docs/fitting.md", 35),
    (("loso.py",), ("loso",), "docs/architecture.md", 3),
    (("cross_scale.py",), ("cross_scale",), "docs/architecture.md", 3),
    (("recipe_transfer.py",), ("anchor_priors", "anchor_same_recipe", "anchor_published", "anchor_transfer",
                               "anchor_lab"), "docs/planning.md", 5),
    (("lab_findings.py",), ("lab-cpu-widthdepth", "lab-gpu-widthdepth"), "docs/lab.md", 1),
)


def blocks() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Block name -> (its file, the command that writes it)."""
    return {b: (doc, cmd) for cmd, names, doc, _ in COMMANDS for b in names}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", action="store_true", help="print the registry and exit")
    mode.add_argument("--check", action="store_true", help="run each command with --check")
    mode.add_argument("--write", action="store_true", help="run each command with --write")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="only the command of this block (repeatable)")
    a = ap.parse_args(argv)
    known = blocks()
    unknown = [n for n in a.only if n not in known]
    if unknown:
        print(f"regenerate: error: --only: no block {', '.join(map(repr, unknown))}; the blocks are "
              f"{', '.join(sorted(known))}", file=sys.stderr)
        return 2
    chosen = [c for c in COMMANDS if not a.only or set(c[1]) & set(a.only)]
    if a.list:
        for cmd, names, doc, minutes in chosen:
            print(f"{doc}: {', '.join(names)}  <-  python benchmarks/{' '.join(cmd)} --write  (~{minutes} min)")
        return 0
    flag = "--write" if a.write else "--check"
    failed = []
    for cmd, names, _doc, _ in chosen:
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, str(REPO / "benchmarks" / cmd[0]), *cmd[1:], flag], cwd=REPO,
                             stdout=subprocess.DEVNULL)
        print(f"{' '.join(cmd)} {flag}: exit {res.returncode} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        if res.returncode:
            failed.append(", ".join(names))
    if failed:
        print(f"regenerate: {flag} failed for: {'; '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
