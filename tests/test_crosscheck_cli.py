"""The crosscheck command: scale laws fitted on some runs predict others."""

from __future__ import annotations

import json

from cli_helpers import assert_one_line_error, run_cli

from sparsitylaws.tables.ingest import read_sparsinglaw_dir
from sparsitylaws.tables.io import write_table


def test_crosscheck_published_runs(tmp_path, sparsinglaw_dir):
    table = write_table(read_sparsinglaw_dir(sparsinglaw_dir), tmp_path / "sl.parquet")
    train = ",".join(f"{s}_{a}" for s in ("0.1b", "0.2b", "0.4b") for a in ("relu", "silu"))
    r = run_cli("crosscheck", table, "--train", train, "--test", "0.8b_relu,0.8b_silu",
                "--method", "curve", "--n-boot", "60", "--json")
    assert r.status == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {row["run"] for row in rows} == {"0.8b_relu", "0.8b_silu"}
    for row in rows:
        assert 0 <= row["coverage_curve"] <= 1
        assert row["mae"] < 0.05  # within 5 points: a sanity bound, the docs give the real figures
    text = run_cli("crosscheck", table, "--train", train, "--test", "0.8b_relu", "--method", "curve",
                   "--n-boot", "30")
    assert text.status == 0 and "0.8b_relu" in text.stdout and "MAE pp" in text.stdout


def test_crosscheck_bad_runs(tmp_path, sparsinglaw_dir):
    table = write_table(read_sparsinglaw_dir(sparsinglaw_dir), tmp_path / "sl.parquet")
    assert_one_line_error(run_cli("crosscheck", table, "--train", "0.1b_relu,nope", "--test", "0.8b_relu"),
                          "--train nope", "no such run")
    assert_one_line_error(run_cli("crosscheck", table, "--train", "0.1b_relu", "--test", "0.1b_relu"),
                          "--test 0.1b_relu", "cannot also be")


def _mixed_table(tmp_path, sparsinglaw_dir):
    """The published ppl-p rows plus the same runs again as a 'zero' metric (shifted)."""
    import pandas as pd

    t = read_sparsinglaw_dir(sparsinglaw_dir)
    z = t.copy()
    z["metric"] = "zero"
    z["metric_arg"] = float("nan")
    z["activation_ratio"] = (z["activation_ratio"] * 3).clip(upper=1.0)
    return write_table(pd.concat([t, z], ignore_index=True), tmp_path / "mixed.parquet")


def test_crosscheck_selects_one_metric_like_fit(tmp_path, sparsinglaw_dir):
    table = _mixed_table(tmp_path, sparsinglaw_dir)
    args = ["crosscheck", table, "--train", "0.1b_relu,0.2b_relu,0.4b_relu", "--test", "0.8b_relu",
            "--method", "curve", "--n-boot", "20", "--json"]
    plain = json.loads(run_cli("crosscheck", write_table(read_sparsinglaw_dir(sparsinglaw_dir),
                                                          tmp_path / "sl.parquet"), *args[2:]).stdout)
    mixed = json.loads(run_cli(*args).stdout)  # default metric: ppl-p, as fit
    assert mixed[0]["n_points"] == plain[0]["n_points"]
    assert mixed[0]["mae"] == plain[0]["mae"]
    zero = run_cli(*args, "--metric", "zero")
    assert zero.status == 0, zero.stderr
    assert json.loads(zero.stdout)[0]["mae"] != plain[0]["mae"]
    assert_one_line_error(run_cli(*args, "--metric", "topk"), "--metric topk", "no rows")


def test_crosscheck_warns_with_one_or_two_training_runs(tmp_path, sparsinglaw_dir):
    table = write_table(read_sparsinglaw_dir(sparsinglaw_dir), tmp_path / "sl.parquet")
    for train, words in (("0.1b_relu", "only 1 training run"), ("0.1b_relu,0.2b_relu", "only 2 training runs")):
        r = run_cli("crosscheck", table, "--train", train, "--test", "0.8b_relu", "--method", "curve",
                    "--n-boot", "20")
        assert r.status == 0, r.stderr
        assert "warnings:" in r.stdout and words in r.stdout
        assert "in curve band" in r.stdout and "share of the held-out run's measured points" in r.stdout
    r = run_cli("crosscheck", table, "--train", "0.1b_relu,0.2b_relu,0.4b_relu", "--test", "0.8b_relu",
                "--method", "curve", "--n-boot", "20")
    assert "only 3" not in r.stdout and "training run" not in r.stdout.split("warnings:")[-1]


def test_crosscheck_leave_one_scale_out(tmp_path, sparsinglaw_dir):
    table = write_table(read_sparsinglaw_dir(sparsinglaw_dir), tmp_path / "sl.parquet")
    r = run_cli("crosscheck", table, "--leave-one-scale-out", "--n-boot", "20", "--json")
    assert r.status == 0, r.stderr
    rows = json.loads(r.stdout)
    # 8 runs x 3 budgets x (6 methods + 1 naive forecast)
    assert len(rows) == 8 * 3 * 7
    assert {row["method"] for row in rows} == {"auto", "nearest", "step", "excess", "curve", "coef",
                                               "largest_final"}
    assert {row["method_used"] for row in rows if row["method"] == "auto"} <= {"nearest", "step"}
    for row in rows:
        assert 0 <= row["low"] <= row["predicted"] <= row["high"] <= 1
    text = run_cli("crosscheck", table, "--leave-one-scale-out", "--n-boot", "20", "--method", "curve")
    assert text.status == 0 and "largest_final" in text.stdout and "interval score" in text.stdout
    assert_one_line_error(run_cli("crosscheck", table, "--leave-one-scale-out", "--train", "0.1b_relu"),
                          "--leave-one-scale-out")
    assert_one_line_error(run_cli("crosscheck", table), "--train")
