"""The recipe a law set describes and its caveat (sparsitylaws.planning.recipe)."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import REPO_ROOT

from sparsitylaws.lawset.fileformat import load_lawset
from sparsitylaws.planning import predict
from sparsitylaws.planning.recipe import TRANSFER_EXAMPLE, recipe_metadata


def test_stored_example_matches_the_measured_table():
    """The stored measurement is the one in measurements/ (re-measured: update recipe.py and
    regenerate the default law set with python -m sparsitylaws.planning.default_lawset)."""
    path = REPO_ROOT / TRANSFER_EXAMPLE["table"]
    if not path.is_file():
        pytest.skip(f"{path} absent")
    t = pd.read_parquet(path)
    row = t[(t["run"] == TRANSFER_EXAMPLE["run"]) & (t["metric"] == TRANSFER_EXAMPLE["metric"])]
    assert len(row) == 1
    row = row.iloc[0]
    assert row["activation_ratio"] == pytest.approx(TRANSFER_EXAMPLE["measured"], abs=5e-5)
    assert (row["width"], row["depth"], row["tokens"]) == (
        TRANSFER_EXAMPLE["width"], TRANSFER_EXAMPLE["depth"], TRANSFER_EXAMPLE["tokens"])
    assert row["ffn_width"] / row["width"] == pytest.approx(TRANSFER_EXAMPLE["ffn_ratio"])


def test_recipe_metadata_computes_the_prediction_it_cites():
    ls = load_lawset()
    m = recipe_metadata(ls)
    ex = m["example"]
    r = predict(576, 30, "silu", tokens=2e12, ffn_ratio=1536 / 576, lawset=ls).iloc[0]
    assert ex["predicted"] == pytest.approx(r["activation_ratio"], abs=5e-5)
    assert ex["predicted_interval"] == pytest.approx([r["ratio_low"], r["ratio_high"]], abs=5e-5)
    # the example lies far outside its interval: that is the point of the caveat
    assert not ex["predicted_interval"][0] <= ex["measured"] <= ex["predicted_interval"][1]
    for text in ("MiniCPM", "tokenizer", f"{100 * TRANSFER_EXAMPLE['measured']:.1f}%",
                 f"{100 * r['activation_ratio']:.2f}%", "--anchor"):
        assert text in m["caveat"]


def test_default_lawset_carries_its_recipe_and_caveat():
    ls = load_lawset()
    rec = ls.provenance["recipe"]
    assert "MiniCPM" in rec["name"] and rec["source"]
    assert rec["caveat"] in ls.provenance["caveats"]
    assert rec["example"]["measured"] == TRANSFER_EXAMPLE["measured"]
    # the stored statement about this law set is still true of it
    fresh = recipe_metadata(ls)["example"]
    assert rec["example"]["predicted"] == pytest.approx(fresh["predicted"], abs=1e-4)


def test_report_names_the_recipe_and_carries_the_caveat():
    from sparsitylaws.views.report import ReportInputs, provenance_blocks, warning_blocks

    ls = load_lawset()
    inp = ReportInputs(ls, None, [], "the packaged default law set")
    prov = " ".join(i for b in provenance_blocks(inp) for i in b.items)
    assert "recipe: the paper's MiniCPM-style recipe" in prov and "WSD" in prov
    warn = " ".join(i for b in warning_blocks(inp) for i in b.items)
    assert ls.provenance["recipe"]["caveat"] in warn
