"""The fit command and the law-set file: round trips, bad input, lightness."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_one_line_error, run_cli

from sparsitylaws.errors import LawSetError
from sparsitylaws.lawset.fileformat import LAWSET_VERSION, LawSet, load_lawset
from sparsitylaws.runfit.forms import get_form
from sparsitylaws.tables.io import write_table

TRUE = {"alpha": 0.6, "b": -3.0, "c": 0.1, "A0": 0.07}


def _synthetic(run: str = "syn_relu", n: int = 30, seed: int = 1) -> pd.DataFrame:
    """A ReLU run simulated from known parameters with small noise."""
    rng = np.random.default_rng(seed)
    d = np.linspace(2.0, 120.0, n)
    form = get_form("logspace_power")
    theta = np.array([TRUE[p] for p in form.param_names])
    y = form.evaluate(d, theta) + rng.normal(0, 2e-4, n)
    return pd.DataFrame({
        "run": run, "checkpoint": [f"s{i}" for i in range(n)], "tokens": (d * 1e9).astype(np.int64),
        "activation": "relu", "metric": "ppl-p", "metric_arg": 1.0, "activation_ratio": y,
        "width": 768, "depth": 16, "n_params": 108_000_000,
    })


@pytest.fixture()
def table(tmp_path):
    return write_table(_synthetic(), tmp_path / "syn.parquet")


def test_fit_writes_lawset_that_predicts_bit_identically(tmp_path, table):
    out = tmp_path / "laws.json"
    r = run_cli("fit", table, "-o", out, "--n-boot", "200", "--no-backtest")
    assert r.status == 0, r.stderr
    assert "syn_relu" in r.stdout and "A0" in r.stdout and "90% interval" in r.stdout
    laws = load_lawset(out)
    fit = laws.get_run("syn_relu")
    truth = dict(zip(fit.param_names, fit.estimate, strict=True))
    assert truth["A0"] == pytest.approx(TRUE["A0"], abs=3e-3)
    tokens = [5e9, 5e10, 5e11]
    first = laws.predict(run="syn_relu", tokens=tokens)
    laws.save(tmp_path / "again.json")
    second = LawSet.load(tmp_path / "again.json").predict(run="syn_relu", tokens=tokens)
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    assert (first["ratio_low"] <= first["activation_ratio"]).all()
    assert (first["activation_ratio"] <= first["ratio_high"]).all()
    assert (first["pred_low"] <= first["ratio_low"]).all()
    # extrapolation: log10 units beyond the last fitted checkpoint (0 inside), as in predict()
    last = fit.tokens_b_max * 1e9
    assert first["extrapolation"].tolist()[:2] == [0.0, 0.0]
    assert first["extrapolation"].iloc[2] == pytest.approx(np.log10(5e11 / last), rel=1e-12)
    assert first["warning"].iloc[2].startswith("tokens 5e+11 is") and first["warning"].iloc[0] == ""
    assert laws.provenance["data_sha256"]["syn_relu"] == laws.run_info["syn_relu"]["data_sha256"]


def test_fit_json_output_is_the_file(tmp_path, table):
    out = tmp_path / "laws.json"
    r = run_cli("fit", table, "-o", out, "--n-boot", "50", "--no-backtest", "--json")
    assert r.status == 0, r.stderr
    printed = json.loads(r.stdout)
    assert printed == json.loads(out.read_text())
    # the lowest version that holds it: no backtests, so no forecast model (one would widen its
    # bands with the projected move: version 6)
    assert printed["format_version"] == 3 and LAWSET_VERSION == 6


def test_lawset_rejects_unknown_versions(tmp_path, table):
    out = tmp_path / "laws.json"
    assert run_cli("fit", table, "-o", out, "--n-boot", "20", "--no-backtest").status == 0
    data = json.loads(out.read_text())
    data["format_version"] = LAWSET_VERSION + 1
    bad = tmp_path / "future.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(LawSetError, match="unknown law-set format version"):
        load_lawset(bad)
    with pytest.raises(LawSetError, match="no run 'nope'"):
        load_lawset(out).predict(run="nope", tokens=[1e9])


def _write_raw(df: pd.DataFrame, path):
    df.to_parquet(path)
    return path


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (lambda d: d.drop(columns="activation_ratio"), ["missing required column", "activation_ratio"]),
        (lambda d: d.assign(activation_ratio=np.where(d.index == 4, np.nan, d.activation_ratio)), ["activation_ratio", "row 4"]),
        (lambda d: d.assign(activation_ratio=np.where(d.index == 3, 1.2, d.activation_ratio)), ["[0, 1]", "row 3"]),
        (lambda d: d.assign(tokens=np.where(d.index == 5, -1, d.tokens)), ["tokens", "> 0", "row 5"]),
        (lambda d: pd.concat([d, d.iloc[[2]]]), ["duplicate", "row 30"]),
        (lambda d: d.iloc[:3], ["3 point", "fewer", "4 parameters"]),
    ],
)
def test_fit_bad_tables(tmp_path, mutate, fragments):
    path = _write_raw(mutate(_synthetic()), tmp_path / "bad.parquet")
    result = run_cli("fit", path, "-o", tmp_path / "l.json", "--n-boot", "10")
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "l.json").exists()


def test_fit_bad_arguments(tmp_path, table, monkeypatch):
    assert_one_line_error(run_cli("fit", table, "--form", "quadratic"), "unknown law form", "quadratic")
    assert_one_line_error(run_cli("fit", table, "--run", "other"), "--run other", "syn_relu")
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"not parquet at all")
    assert_one_line_error(run_cli("fit", corrupt), "corrupt.parquet")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_cli("fit", empty), "empty", "no .parquet")
    monkeypatch.chdir(empty)
    assert_one_line_error(run_cli("fit"), "measurements", "ingest", "measure")


def test_fit_skips_unfittable_runs_unless_named(tmp_path):
    both = pd.concat([_synthetic(), _synthetic("tiny_relu").iloc[:2]])
    path = write_table(both, tmp_path / "t.parquet")
    r = run_cli("fit", path, "-o", tmp_path / "l.json", "--n-boot", "20", "--no-backtest")
    assert r.status == 0, r.stderr
    assert "skipped run tiny_relu" in r.stdout
    assert load_lawset(tmp_path / "l.json").run_names() == ["syn_relu"]
    assert_one_line_error(run_cli("fit", path, "--run", "tiny_relu", "-o", tmp_path / "x.json"),
                          "tiny_relu", "fewer")


def test_fit_and_predict_stay_light(tmp_path, table):
    code = (
        "import sys\n"
        "from sparsitylaws.cli import main\n"
        "try:\n"
        f"    main(['fit', {str(table)!r}, '-o', {str(tmp_path / 'l.json')!r}, '--n-boot', '10', '--no-backtest'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_fit_table_shows_weak_identification_skill_and_forecast_calibration() -> None:
    from sparsitylaws.cli.fit import render_text
    from sparsitylaws.lawset.build import fit_table

    df = pd.concat([_synthetic(f"syn{i}", seed=i) for i in range(4)], ignore_index=True)
    ls = fit_table(df, n_boot=100, architecture=False)
    rf = ls.runs["syn0"]
    rf.warnings.append({"code": "weakly_identified", "parameter": "c", "message": "test"})
    text = render_text(ls)
    block = text.split("syn1  [relu]")[0]
    line = {ln.split()[0]: ln for ln in block.splitlines() if ln.startswith("  ") and len(ln.split()) > 1}
    assert "WEAKLY IDENTIFIED" in line["c"] and "WEAKLY IDENTIFIED" not in line["alpha"]
    assert "profile: [" in line["A0"]
    assert "skill vs naive forecasts" in block and block.count("-> combined") == 3
    assert "calibrated leave-one-run-out on 4 runs" in text
    for name in ls.run_names():
        assert not any(w["code"] == "forecast_default" for w in ls.runs[name].warnings)


def test_laws_across_runs_from_several_measurement_sets_carry_a_caveat():
    """Runs ingested from a paper and runs measured here on other text are two recipes: the
    scale laws pool them only with a caveat, which fit prints and predict/report carry."""
    from sparsitylaws.lawset.build import fit_table, measurement_sets

    a = _synthetic("a_relu", seed=1).assign(source="ingested")
    b = _synthetic("b_relu", seed=2).assign(source="measured", eval_dataset="eval.txt",
                                            n_params=216_000_000, width=1024)
    both = pd.concat([a, b], ignore_index=True)
    assert measurement_sets(both, ["a_relu", "b_relu"]) == {
        "ingested on unknown": ["a_relu"], "measured on eval.txt": ["b_relu"]}
    ls = fit_table(both, n_boot=20, backtest=False)
    assert ls.architecture is not None
    (cav,) = ls.provenance["caveats"]
    assert "2 measurement sets" in cav and "a_relu" in cav and "b_relu" in cav
    same = fit_table(pd.concat([a, b.assign(source="ingested", eval_dataset=None)]), n_boot=20,
                     backtest=False)
    assert not same.provenance.get("caveats")


def test_same_named_evaluation_texts_of_different_content_are_two_measurement_sets():
    """Two lab plans both evaluate on an 'eval.txt' of different corpora: their hashes tell
    them apart, so pooling their runs carries the caveat (README says fit does)."""
    from sparsitylaws.lawset.build import measurement_sets

    a = _synthetic("a_relu", seed=1).assign(source="measured", eval_dataset="eval.txt",
                                            eval_sha256="b96500a55e5d" + "0" * 52)
    b = _synthetic("b_relu", seed=2).assign(source="measured", eval_dataset="eval.txt",
                                            eval_sha256="cfaa77473172" + "0" * 52)
    sets = measurement_sets(pd.concat([a, b], ignore_index=True), ["a_relu", "b_relu"])
    assert sets == {"measured on eval.txt (sha256 b96500a55e5d)": ["a_relu"],
                    "measured on eval.txt (sha256 cfaa77473172)": ["b_relu"]}
    same = measurement_sets(pd.concat([a, b.assign(eval_sha256=a["eval_sha256"].iloc[0])]),
                            ["a_relu", "b_relu"])
    assert len(same) == 1


def test_a_forecast_choice_on_a_near_tie_is_said_with_its_stake() -> None:
    """`fit` (and the report) name a choice whose runner-up lies within NEAR_TIE of it (the pooled
    one only where an activation of the set has no choice of its own), with how far the two's
    forecasts differ, and the set where there are several."""
    from types import SimpleNamespace

    from sparsitylaws.cli.fit import _runner_up_text
    from sparsitylaws.lawset.neartie import near_tie_notes
    from sparsitylaws.runfit.selection import NEAR_TIE

    runs = {"a": SimpleNamespace(activation="relu"), "b": SimpleNamespace(activation="silu")}
    tie = {"weights": {"last": 0.5, "nearest": 0.5}, "beta": 1.0, "stake": 0.015}
    group = {"runs": ["a", "b"], "weights": {"last": 1.0}, "beta": 0.0, "margin": NEAR_TIE / 2,
             "runner_up": tie,
             "by_activation": {"relu": {"weights": {"pool": 1.0}, "beta": 0.5, "margin": NEAR_TIE / 10,
                                        "runner_up": tie},
                               "silu": {"weights": {"line": 1.0}, "beta": 1.0, "margin": 2 * NEAR_TIE,
                                        "runner_up": tie}}}

    def notes(groups: dict) -> list[str]:
        ls = SimpleNamespace(runs=runs, provenance={"forecast_calibration": {"groups": groups}})
        return near_tie_notes(ls)

    lines = notes({"g": group})
    assert len(lines) == 1 and lines[0].startswith("relu: forecast weights chosen on a near-tie")
    assert "0.10% behind" in lines[0] and "1.50 points" in lines[0]
    # silu without a choice of its own: the pooled choice is in use, and it is a near-tie too
    del group["by_activation"]["silu"]
    assert [ln.split(":")[0] for ln in notes({"g": group})] == ["pooled", "relu"]
    # with several measurement sets, each line names its own
    two = notes({"set A": group, "set B": dict(group, runs=["a"])})
    assert [ln.split(":")[0] for ln in two] == ["pooled (set A)", "relu (set A)", "relu (set B)"]
    assert notes({}) == []
    assert "near-tie" in _runner_up_text(NEAR_TIE / 2, tie)
    assert "near-tie" not in _runner_up_text(2 * NEAR_TIE, tie) and "1.50 points" in _runner_up_text(2 * NEAR_TIE, tie)
