"""docs/fitting.md's lone-run tables for runs of *another recipe* stay true.

Each committed lab run is fitted alone with the packaged default as shipped (benchmarks/lone_run.py,
`transfer_check`), and the combined forecast's record is compared with the table in the docs.
The packaged default changes when `python -m sparsitylaws.runfit.packaged` rebuilds it; the
docs' record of what it does to runs it never saw must change with it (it once went stale: the
lab-cpu lone ReLU runs were reported at 0.43 of later points covered while the shipped default
covered 0.20).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import REPO_ROOT
from forecast_helpers import benchmark

from sparsitylaws.runfit.packaged import published_backtests

ROW = re.compile(r"^\| \*\*combined \(`fit`, `predict`\)\*\* \| ([0-9.]+) \| (\d+)/(\d+) ")


def _documented(doc: str, study: str, activation: str) -> tuple[float, int, int]:
    """The combined forecast's mean interval score (pp), points covered and later points in the
    docs' table of ``study``'s lone ``activation`` runs."""
    head = f"**{study}, one run fitted alone with the packaged default, {activation}:"
    lines = doc.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(head))
    for line in lines[start:start + 8]:
        m = ROW.match(line)
        if m:
            return float(m.group(1)), int(m.group(2)), int(m.group(3))
    raise AssertionError(f"no combined row under {head}")


@pytest.mark.parametrize("study", ["lab-cpu", "lab-gpu"])
def test_the_docs_say_what_the_shipped_default_does_to_lone_lab_runs(sparsinglaw_dir, study: str) -> None:
    """Mean interval score within 2% (other CPUs move the fits' last digits), points covered
    within 2 of the documented count, the same number of later points."""
    lone = benchmark("lone_run")
    rows = lone.transfer_check(study, published_backtests(str(sparsinglaw_dir)))
    doc = (REPO_ROOT / "docs" / "fitting.md").read_text(encoding="utf-8")
    for act in sorted({r["activation"] for r in rows}):
        ra = [r for r in rows if r["activation"] == act]
        score = 100 * float(np.mean([r["combined"]["interval_score"] for r in ra]))
        covered = sum(r["combined"]["covered"] for r in ra)
        points = sum(r["points"] for r in ra)
        doc_score, doc_covered, doc_points = _documented(doc, study, act)
        assert points == doc_points, (study, act)
        assert score == pytest.approx(doc_score, rel=0.02), (study, act, score, doc_score)
        assert abs(covered - doc_covered) <= 2, (study, act, covered, doc_covered)
