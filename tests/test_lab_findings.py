"""docs/lab.md's width/depth tables are the committed lab law sets' (benchmarks/lab_findings.py)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def test_lab_md_holds_the_law_sets_width_depth_numbers(capsys) -> None:
    lab_findings = importlib.import_module("lab_findings")
    assert lab_findings.main(["--check"]) == 0, capsys.readouterr().err


def test_block_rows_are_the_law_sets_designs() -> None:
    """Each design row quotes its law set's seed mean to 0.01 pp (an independent read of the JSON)."""
    lab_findings = importlib.import_module("lab_findings")
    for path in sorted((ROOT / "measurements").glob("lab-*.laws.json")):
        laws = json.loads(path.read_text())
        wd = laws["architecture"]["activations"]["relu"].get("widthdepth") or {}
        if "plateau_tests" not in wd:
            continue
        body = lab_findings.block(laws)
        for d in wd["fit"]["designs"]:
            assert f"| {d['ratio']:.3g} | {d['runs']} | {100 * d['mean']:.2f}" in body
