"""The width/depth numbers docs/lab.md quotes, read from the committed lab law sets.

    python benchmarks/lab_findings.py [--write | --check]

For each committed ``measurements/lab-*.laws.json`` with a ReLU width/depth law: one row per
design (width/depth ratio) with its runs' fitted limits A0 and plateau means (seed mean and
seed sd where the design has several seeds), and the table of the pre-registered tests
(free breakpoint: p and power; fixed breakpoint at 114: rise, 95% interval, permutation p
and power) on both kinds of limit.  ``--write``/``--check``: the ``NAME-widthdepth`` blocks of
docs/lab.md (a law set refitted with another fitter moves them; the check says so).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "lab.md"
sys.path.insert(0, str(REPO / "benchmarks"))

from docblocks import publish  # noqa: E402


def _pp(x: float) -> str:
    return f"{100 * x:+.2f}"


def _mean_sd(d: dict) -> str:
    if d.get("sd") is None or d["runs"] < 2:
        return f"{100 * d['mean']:.2f}"
    return f"{100 * d['mean']:.2f} ({100 * d['sd']:.2f})"


def _tests_row(label: str, free: dict, fixed: dict) -> str:
    lo, hi = fixed["rise_interval"]
    return (f"| {label} | {free['p_value']:.2g} ({free['power']:.0%}) | "
            f"{_pp(fixed['rise'])} pp [{_pp(lo)}, {_pp(hi)}] | {fixed['p_value']:.2g} ({fixed['power']:.0%}) |")


def block(laws: dict) -> str:
    """Markdown: the designs' limits and the width/depth tests of one law set."""
    wd = laws["architecture"]["activations"]["relu"]["widthdepth"]
    fit, plateau = wd["fit"], wd["plateau_tests"]
    seeded = any(d["runs"] > 1 for d in fit["designs"])
    spread = " (seed sd)" if seeded else ""
    lines = [f"| width/depth | runs | fitted A0, %{spread} | plateau mean of the last 3 checkpoints, %{spread} |",
             "|---|---|---|---|"]
    for f, p in zip(fit["designs"], plateau["designs"], strict=True):
        lines.append(f"| {f['ratio']:.3g} | {f['runs']} | {_mean_sd(f)} | {_mean_sd(p)} |")
    lines += ["",
              f"Law set's model: {wd['model']}.  Weights of the fitted limits: "
              f"{fit['test']['weights']}; tau = {100 * fit['test']['between_run_sd']:.2f} pp; "
              f"the three heaviest runs carry {fit['test']['top3_weight_share']:.0%} of the weight.",
              "",
              "| limits | free breakpoint: p (power vs 2 pp) | fixed breakpoint 114: rise, 95% interval "
              "| permutation p (power vs 2 pp) |",
              "|---|---|---|---|",
              _tests_row("fitted A0, 1/(se^2 + t^2)", fit["test"], fit["fixed_breakpoint_test"]),
              _tests_row("plateau means, equal weights", plateau["test"], plateau["fixed_breakpoint_test"])]
    return "\n".join(lines)


def blocks() -> dict[str, str]:
    out = {}
    for path in sorted((REPO / "measurements").glob("lab-*.laws.json")):
        laws = json.loads(path.read_text())
        wd = laws.get("architecture", {}).get("activations", {}).get("relu", {}).get("widthdepth")
        if wd and "plateau_tests" in wd and "fit" in wd:
            out[f"{path.name.split('.')[0]}-widthdepth"] = block(laws)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the blocks into docs/lab.md")
    mode.add_argument("--check", action="store_true", help="fail if docs/lab.md's blocks differ")
    a = ap.parse_args(argv)
    found = blocks()
    if not (a.write or a.check):
        for name, body in found.items():
            print(f"## {name}\n\n{body}\n")
    return publish(DOC, found, write=a.write, check=a.check, rel=0.0, abs_tol=0.0)


if __name__ == "__main__":
    raise SystemExit(main())
