"""`predict --anchor` and the recipe caveat in every output built on the default law set."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from cli_helpers import run_cli
from conftest import REPO_ROOT

from sparsitylaws.planning import predict

SMOL = REPO_ROOT / "measurements" / "smollm2-135m.parquet"
SMOL_SHAPE = ("--width", "576", "--depth", "30", "--activation", "silu", "--tokens", "2e12",
              "--ffn-ratio", str(1536 / 576))


def _measured() -> float:
    if not SMOL.is_file():
        pytest.skip("measurements/smollm2-135m.parquet absent")
    t = pd.read_parquet(SMOL)
    return float(t[(t["run"] == "smollm2-135m-silu") & (t["metric"] == "ppl-p")]["activation_ratio"].iloc[0])


def _recipe_caveat_ok(text: str) -> None:
    m = _measured()
    assert "MiniCPM" in text and "tokenizer" in text
    assert f"{100 * m:.1f}%" in text  # the measured SmolLM2 example, as in the table


def test_caveat_in_text_output():
    r = run_cli("predict", *SMOL_SHAPE)
    assert r.status == 0, r.stderr
    assert "recipe: the paper's MiniCPM-style recipe" in r.stdout
    _recipe_caveat_ok(r.stdout)


def test_caveat_in_json_output():
    r = run_cli("predict", "--width", "4096", "--depth", "48", "--json")
    assert r.status == 0, r.stderr
    out = json.loads(r.stdout)
    assert "MiniCPM" in out["recipe"]
    _recipe_caveat_ok(" ".join(c for c in out["caveats"] if "recipe" in c))


def test_caveat_in_grid_output(tmp_path):
    grid = tmp_path / "g.csv"
    grid.write_text("width,depth\n2048,24\n4096,48\n")
    r = run_cli("predict", "--grid", str(grid))
    assert r.status == 0, r.stderr
    assert "recipe: the paper's MiniCPM-style recipe" in r.stdout
    _recipe_caveat_ok(r.stdout)
    rj = run_cli("predict", "--grid", str(grid), "--json")
    _recipe_caveat_ok(" ".join(json.loads(rj.stdout)["caveats"]))


def test_caveat_in_python_api_and_params_mode():
    df = predict(4096, 48)
    _recipe_caveat_ok(" ".join(df.attrs["caveats"]))
    r = run_cli("predict", "--params", "7e9", "--depths", "16,32")
    assert r.status == 0, r.stderr
    _recipe_caveat_ok(r.stdout)


def test_anchor_reproduces_the_measurement_at_its_own_configuration():
    m = _measured()
    r = run_cli("predict", *SMOL_SHAPE, "--anchor", str(SMOL), "--json")
    assert r.status == 0, r.stderr
    out = json.loads(r.stdout)
    row = out["predictions"][0]
    assert row["anchored"] and row["activation_ratio"] == pytest.approx(m, abs=1e-3)
    assert row["ratio_low"] < m < row["ratio_high"]
    assert row["law_activation_ratio"] < 0.5
    assert out["anchor"][0]["spread"] == "prior"
    assert any("from the prior alone" in c and "measured on 3 recipes" in c for c in out["caveats"])
    text = run_cli("predict", *SMOL_SHAPE, "--anchor", str(SMOL)).stdout
    assert "law before anchoring" in text and "prior" in text
    assert f"{100 * row['activation_ratio']:.2f}%" in text


def test_an_anchored_answer_names_your_recipe_and_does_not_advise_anchoring():
    """Issue 20/21: once anchored, the answer describes the anchors' recipe, not the law set's,
    and no longer tells the user to anchor."""
    _measured()
    r = run_cli("predict", *SMOL_SHAPE, "--anchor", str(SMOL))
    assert r.status == 0, r.stderr
    assert "recipe: yours, anchored on smollm2-135m-silu" in r.stdout
    assert "recipe: the paper's" not in r.stdout and "predict --anchor" not in r.stdout
    assert "Shifted to your recipe" in r.stdout
    out = json.loads(run_cli("predict", *SMOL_SHAPE, "--anchor", str(SMOL), "--json").stdout)
    assert out["recipe"].startswith("recipe: yours") and not any("--anchor" in c for c in out["caveats"])


def test_anchor_in_grid_mode_and_unanchored_activation_said(tmp_path):
    _measured()
    grid = tmp_path / "g.csv"
    grid.write_text("width,depth\n576,30\n1024,24\n")
    r = run_cli("predict", "--grid", str(grid), "--anchor", str(SMOL), "--json")
    assert r.status == 0, r.stderr
    out = json.loads(r.stdout)
    by = {(p["grid_row"], p["activation"]): p for p in out["predictions"]}
    assert by[(1, "silu")]["anchored"] and not by[(1, "relu")]["anchored"]
    assert any("relu: not anchored" in c for c in out["caveats"])
    for p in out["predictions"]:
        assert 0 <= p["ratio_low"] <= p["activation_ratio"] <= p["ratio_high"] <= 1
    text = run_cli("predict", "--grid", str(grid), "--anchor", str(SMOL)).stdout
    assert "anchored" in text.splitlines()[2] and "relu: not anchored" in text


def test_bad_anchor_is_one_line_exit_2(tmp_path):
    r = run_cli("predict", "--width", "1024", "--depth", "24", "--anchor", str(tmp_path / "x.parquet"))
    assert r.status == 2
    assert "x.parquet" in r.stderr and "--anchor" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_python_api_predict_and_compare_shapes_take_anchor():
    m = _measured()
    df = predict(576, 30, "all", tokens=2e12, ffn_ratio=1536 / 576, anchor=str(SMOL))
    silu = df[df["activation"] == "silu"].iloc[0]
    assert silu["anchored"] and silu["activation_ratio"] == pytest.approx(m, abs=1e-3)
    assert df.attrs["anchor"][0]["spread"] == "prior"
    assert df.attrs["caveats"][0].startswith("anchored on your recipe: silu")
    assert any("relu: not anchored" in c for c in df.attrs["caveats"])
    # the law set's recipe caveat (which advises anchoring) is replaced, naming the rows left
    assert not any("predict --anchor" in c for c in df.attrs["caveats"])
    assert any("Not anchored: relu" in c and "MiniCPM" in c for c in df.attrs["caveats"])
    from sparsitylaws.planning import compare_shapes

    shapes = compare_shapes(1e8, [16, 30], activation="silu", anchor=str(SMOL))
    assert shapes["anchored"].all() and shapes["sparsest"].sum() == 1
    assert (shapes["activation_ratio"] > shapes["law_activation_ratio"]).all()
