"""The crosscheck command: scale laws fitted on some runs predict others."""

from __future__ import annotations

import json

from cli_helpers import assert_one_line_error, run_cli

from sparsitylaws.ingest import read_sparsinglaw_dir
from sparsitylaws.tables import write_table


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
