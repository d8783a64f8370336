"""The committed lab-cpu table is what issue 22 asks of the instrument, and docs/lab.md says
what its law set says.

* at least 5 width/depth ratios x 3 seeds at one size, one head size, 65,536 evaluation
  tokens per checkpoint, one evaluation text for every run;
* the corpus facts: verbatim train/evaluation overlap (128-byte matches) under 1%, package
  versions and hashes recorded; manifest row counts that add up to the table's;
* the law set carries the seed spread, both width/depth tests with p-values and power, and
  the plateau means; the numbers docs/lab.md quotes are the law set's.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
M = ROOT / "measurements"
pytestmark = pytest.mark.skipif(not (M / "lab-cpu.parquet").is_file(), reason="no committed lab-cpu table")


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    from sparsitylaws.tables.io import read_table

    return read_table(M / "lab-cpu.parquet")


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((M / "lab-cpu.manifest.json").read_text())


@pytest.fixture(scope="module")
def wd() -> dict:
    laws = json.loads((M / "lab-cpu.laws.json").read_text())
    return laws["architecture"]["activations"]["relu"]["widthdepth"]


def test_sweep_is_five_ratios_by_three_seeds_at_one_size(table):
    runs = table.groupby("run").first()
    ratio = runs["width"] / runs["depth"]
    seeds = runs.index.str.extract(r"-s(\d+)$", expand=False)
    assert seeds.notna().all()
    per_ratio = pd.Series(seeds.to_numpy(), index=ratio.round(3).to_numpy()).groupby(level=0).nunique()
    assert len(per_ratio) >= 5 and (per_ratio >= 3).all(), per_ratio
    assert math.log10(runs["n_params"].max() / runs["n_params"].min()) < 0.11
    assert ratio.min() < 114 < ratio.max()


def test_every_checkpoint_is_measured_on_one_text_of_65536_tokens(table):
    assert (table["eval_tokens"] >= 65_536).all()
    assert table["eval_sha256"].nunique() == 1
    assert set(table["metric"]) == {"ppl-p", "cett"}
    assert np.allclose(table.loc[table["metric"] == "cett", "metric_arg"], 0.1)
    counts = table.groupby(["run", "metric"]).size()
    assert (counts == counts.iloc[0]).all() and counts.iloc[0] >= 10


def test_corpus_is_clean_and_recorded(manifest):
    c = manifest["corpus"]
    assert c["cleaning"]["eval_overlap_128"] < 0.01
    assert c["bytes"]["eval"] >= 4 * 65_536
    for pkg, facts in c["packages"].items():
        assert facts["version"] and re.fullmatch(r"[0-9a-f]{64}", facts["sha256"]), pkg


def test_manifest_row_counts_add_up_to_the_table(table, manifest):
    per_run = table.groupby("run").size()
    rows = {f"cpu-{k}": v["rows"] for k, v in manifest["stages"]["measure"].items()}
    assert rows == per_run.to_dict()


def test_law_set_carries_seeds_tests_power_and_plateaus(wd):
    fit = wd["fit"]
    assert [d["runs"] for d in fit["designs"]] == [3] * len(fit["designs"]) and len(fit["designs"]) >= 5
    assert "from the seeds" in fit["test"]["weights"]
    assert fit["test"]["top3_weight_share"] <= 0.5 + 1e-9
    for t in (fit["test"], wd["plateau_tests"]["test"]):
        assert 0 < t["p_value"] <= 1 and 0 <= t["power"] <= 1
    for t in (fit["fixed_breakpoint_test"], wd["plateau_tests"]["fixed_breakpoint_test"]):
        assert t["available"] and t["breakpoint"] == 114 and 0 < t["p_value"] <= 1 and 0 <= t["power"] <= 1


def _pp(x: float) -> str:
    return f"{100 * x:+.2f}"


def test_docs_quote_the_law_sets_tests(wd):
    """The width/depth table in docs/lab.md's cpu section is the law set's, to its rounding."""
    doc = (ROOT / "docs" / "lab.md").read_text()
    section = doc[doc.index("## What the committed `cpu` run found"):]
    section = section[:section.index("\n## ", 5)]
    for t, f in ((wd["fit"]["test"], wd["fit"]["fixed_breakpoint_test"]),
                 (wd["plateau_tests"]["test"], wd["plateau_tests"]["fixed_breakpoint_test"])):
        lo, hi = f["rise_interval"]
        row = (f"{_pp(f['rise'])} pp [{_pp(lo)}, {_pp(hi)}] | {f['p_value']:.2g} ({f['power']:.0%})")
        assert row in section, row
        assert f"| {t['p_value']:.2g} ({t['power']:.0%}) |" in section
