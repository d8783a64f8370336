"""Measurement tables: validation errors, atomic writes, append with de-duplication, ingest."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from cli_helpers import assert_one_line_error, run_cli

from sparsitylaws.errors import SchemaError, SparsityLawsError
from sparsitylaws.paper import CONFIGS
from sparsitylaws.tables.ingest import read_csv_table, read_sparsinglaw_dir, read_sparsinglaw_file
from sparsitylaws.tables.io import append_rows, read_table, write_table
from sparsitylaws.tables.schema import REQUIRED_COLUMNS, SCHEMA, validate_frame, with_derived


def _table(n: int = 5, run: str = "r1") -> pd.DataFrame:
    tokens = np.arange(1, n + 1) * 1_000_000_000
    return pd.DataFrame({
        "run": run, "checkpoint": [f"step{i}" for i in range(n)], "tokens": tokens,
        "activation": "relu", "metric": "ppl-p", "metric_arg": 1.0,
        "activation_ratio": np.linspace(0.2, 0.1, n), "width": 768, "depth": 16,
    })


def test_roundtrip_keeps_types_and_unknown_columns(tmp_path):
    df = _table()
    df["my_note"] = ["a", "b", "c", "d", "e"]
    df["layer_ratios"] = [[0.1, 0.2]] * 5
    path = write_table(df, tmp_path / "t.parquet")
    back = read_table(path)
    assert back["tokens"].dtype == np.int64
    assert list(back["my_note"]) == list(df["my_note"])
    assert back["layer_ratios"].iloc[0] == [0.1, 0.2]
    np.testing.assert_array_equal(back["activation_ratio"], df["activation_ratio"])
    schema = pq.read_schema(path)
    for name in REQUIRED_COLUMNS:
        assert schema.field(name).type == SCHEMA.field(name).type
    assert schema.metadata[b"sparsitylaws.table_version"] == b"1"


def test_derived_columns_are_computed():
    out = with_derived(validate_frame(_table()))
    assert out["width_depth_ratio"].iloc[0] == pytest.approx(48.0)
    assert out["tokens_b"].iloc[1] == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (lambda d: d.drop(columns="tokens"), ["missing required column", "tokens"]),
        (lambda d: d.assign(activation_ratio=[0.1, np.nan, 0.1, 0.1, 0.1]), ["activation_ratio", "row 1"]),
        (lambda d: d.assign(activation_ratio=[0.1, 0.1, 1.5, 0.1, 0.1]), ["[0, 1]", "row 2"]),
        (lambda d: d.assign(tokens=[1, 2, 3, 0, 5]), ["tokens", "> 0", "row 3"]),
        (lambda d: d.assign(checkpoint=["a", "b", "a", "c", "d"]), ["duplicate", "row 2", "row 0"]),
        (lambda d: d.assign(run=["x", "", "x", "x", "x"]), ["'run'", "row 1"]),
    ],
)
def test_validation_names_column_and_row(mutate, fragments):
    with pytest.raises(SchemaError) as info:
        validate_frame(mutate(_table()), source="data.parquet")
    message = str(info.value)
    assert message.startswith("data.parquet:")
    for fragment in fragments:
        assert fragment in message


def test_append_deduplicates_new_rows_win(tmp_path):
    path = tmp_path / "t.parquet"
    append_rows(path, _table(3))
    changed = _table(5)
    changed.loc[0, "activation_ratio"] = 0.5
    merged = append_rows(path, changed)
    assert len(merged) == 5
    back = read_table(path)
    assert back.loc[back["checkpoint"] == "step0", "activation_ratio"].item() == 0.5


def test_failed_write_leaves_old_table_intact(tmp_path):
    path = tmp_path / "t.parquet"
    write_table(_table(3), path)
    bad = _table(3)
    bad.loc[1, "activation_ratio"] = 2.0
    with pytest.raises(SchemaError):
        append_rows(path, bad)
    assert len(read_table(path)) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]  # no temp files left


def test_read_directory_and_cross_file_duplicates(tmp_path):
    write_table(_table(3, "a"), tmp_path / "a.parquet")
    write_table(_table(4, "b"), tmp_path / "sub" / "b.parquet")
    assert len(read_table(tmp_path)) == 7
    write_table(_table(2, "a"), tmp_path / "c.parquet")
    with pytest.raises(SchemaError, match="duplicate"):
        read_table(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SparsityLawsError, match="no .parquet"):
        read_table(empty)


def test_ingest_published_runs(sparsinglaw_dir):
    df = read_sparsinglaw_dir(sparsinglaw_dir)
    assert df["run"].nunique() == len(list(sparsinglaw_dir.glob("*.json")))
    for path in sparsinglaw_dir.glob("*.json"):
        raw = json.loads(path.read_text())
        rows = df[df["run"] == path.stem].sort_values("tokens")
        np.testing.assert_array_equal(rows["tokens"], sorted(raw["token_passed"]))
        scale = path.stem.split("_")[0]
        assert (rows["width"] == CONFIGS[scale].width).all()
        assert (rows["activation"] == path.stem.split("_")[1]).all()


def test_ingest_txt_and_bad_files(tmp_path):
    (tmp_path / "0.2b_silu.txt").write_text(json.dumps(
        {"token_passed": [10**9, 2 * 10**9], "activation_ratio": [0.3, 0.31]}))
    df = read_sparsinglaw_file(tmp_path / "0.2b_silu.txt")
    assert df["depth"].tolist() == [20, 20]
    (tmp_path / "0.1b_relu.json").write_text(json.dumps({"token_passed": [1, 2]}))
    with pytest.raises(SchemaError, match="activation_ratio"):
        read_sparsinglaw_file(tmp_path / "0.1b_relu.json")


def test_ingest_csv_with_mapping(tmp_path):
    src = tmp_path / "mine.csv"
    pd.DataFrame({"B tokens": [1.0, 2.0, 4.0], "pct": [30.0, 31.0, 32.0]}).to_csv(src, index=False)
    df = read_csv_table(src, {"tokens": "B tokens", "activation_ratio": "pct"},
                        {"run": "mine_silu"}, tokens_scale=1e9, ratio_percent=True)
    assert df["tokens"].tolist() == [10**9, 2 * 10**9, 4 * 10**9]
    assert df["activation_ratio"].tolist() == pytest.approx([0.30, 0.31, 0.32])
    assert (df["activation"] == "silu").all()
    with pytest.raises(SchemaError, match="no column 'nope'"):
        read_csv_table(src, {"tokens": "nope"}, {"run": "x_relu"})


def test_cli_ingest_validate_merge(tmp_path, sparsinglaw_dir):
    out = tmp_path / "sl.parquet"
    r = run_cli("ingest", "sparsinglaw-data", sparsinglaw_dir, "-o", out)
    assert r.status == 0, r.stderr
    r = run_cli("validate", out)
    assert r.status == 0 and "ok" in r.stdout
    r = run_cli("merge", out, out, "-o", tmp_path / "m.parquet")
    assert r.status == 0, r.stderr
    assert len(read_table(tmp_path / "m.parquet")) == len(read_table(out))


def test_cli_bad_tables_fail_cleanly(tmp_path):
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    assert_one_line_error(run_cli("validate", corrupt), "corrupt.parquet", "parquet")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_cli("validate", empty), "empty", "no .parquet")
    nan = _table()
    nan.loc[2, "activation_ratio"] = np.nan
    nan.to_parquet(tmp_path / "nan.parquet")
    assert_one_line_error(run_cli("validate", tmp_path / "nan.parquet"), "activation_ratio", "row 2")
    assert_one_line_error(run_cli("validate", tmp_path / "missing.parquet"), "missing.parquet")
    assert_one_line_error(run_cli("ingest", "csv", tmp_path / "x.csv", "-o", tmp_path / "o.parquet",
                                  "--map", "tokens"), "--map")
    assert os.listdir(empty) == []


def test_csv_or_json_given_as_a_table_names_the_ingest_command(tmp_path):
    """A newcomer's CSV (or a published JSON run) passed to fit gets the command that converts it."""
    csv = tmp_path / "mine.csv"
    csv.write_text("run,activation,tokens,activation_ratio\nr1,relu,1e9,0.2\n")
    assert_one_line_error(run_cli("fit", csv), "mine.csv", "sparsitylaws ingest csv", "mine.parquet")
    js = tmp_path / "runs" / "0.1b_relu.json"
    js.parent.mkdir()
    js.write_text("{}")
    assert_one_line_error(run_cli("validate", js), "0.1b_relu.json", "sparsitylaws ingest sparsinglaw-data")
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(SchemaError) as info:
        read_table(corrupt)
    assert "ingest" not in str(info.value)


def test_schema_doc_matches_code():
    from pathlib import Path

    from sparsitylaws.tables.schema import COLUMNS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "schema.md").read_text()
    for col in COLUMNS:
        assert f"| `{col.name}` |" in doc, f"docs/schema.md does not document column {col.name}"


# --- one point per run, merge checks, concurrent appends ----------------------------------

def test_two_checkpoint_names_for_one_point_are_refused():
    df = _table(3)
    df.loc[2, "tokens"] = df.loc[1, "tokens"]  # e.g. "run4/a" and "/abs/run4/a"
    with pytest.raises(SchemaError) as info:
        validate_frame(df, source="t.parquet")
    msg = str(info.value)
    assert "two rows for one point" in msg and "'step2'" in msg and "'step1'" in msg
    df.loc[2, "metric_arg"] = 5.0  # another p is another point
    assert len(validate_frame(df)) == 3


def test_append_replaces_the_same_point_under_a_new_name(tmp_path):
    path = tmp_path / "t.parquet"
    append_rows(path, _table(2))
    renamed = _table(2).assign(checkpoint=["/abs/step0", "/abs/step1"], activation_ratio=0.3)
    merged = append_rows(path, renamed)
    assert sorted(merged["checkpoint"]) == ["/abs/step0", "/abs/step1"]
    assert (merged["activation_ratio"] == 0.3).all()


def test_merge_refuses_shards_that_disagree(tmp_path):
    a = _table(4).assign(settings_hash="h1", eval_sha256="e1", cett=0.04, cett_joint=True)
    write_table(a.iloc[:2], tmp_path / "s0.parquet")
    write_table(a.iloc[2:], tmp_path / "s1.parquet")
    res = run_cli("merge", tmp_path / "s0.parquet", tmp_path / "s1.parquet", "-o",
                  tmp_path / "all.parquet")
    assert res.status == 0, res.stderr
    for col, value, what in (("settings_hash", "h2", "settings"), ("eval_sha256", "e2",
                             "evaluation tokens"), ("cett", 0.05, "joint CETT")):
        bad = a.iloc[2:].assign(**{col: value})
        write_table(bad, tmp_path / "odd.parquet")
        out = tmp_path / f"bad-{col}.parquet"
        res = run_cli("merge", tmp_path / "s0.parquet", tmp_path / "odd.parquet", "-o", out)
        assert_one_line_error(res, what, "odd.parquet", "s0.parquet")
        assert not out.exists()


def _append_many(path: str, who: int, n: int) -> None:
    for k in range(n):
        append_rows(path, pd.DataFrame({
            "run": f"p{who}", "checkpoint": [f"c{k}"], "tokens": [1000 + k], "activation": "relu",
            "metric": "zero", "metric_arg": [float("nan")], "activation_ratio": [0.5]}))


def test_concurrent_appends_keep_every_row(tmp_path):
    import multiprocessing as mp

    path = str(tmp_path / "shared.parquet")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(path, w, 12)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    df = read_table(path)
    assert len(df) == 36 and df.groupby("run").size().tolist() == [12, 12, 12]
    assert [p.name for p in tmp_path.iterdir()] == ["shared.parquet"]  # nothing left behind


def test_lock_refuses_after_timeout(tmp_path):
    from sparsitylaws.tables.io import file_lock

    path = tmp_path / "t.parquet"
    with file_lock(path):
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        q = ctx.Queue()

        def other():
            try:
                with file_lock(path, timeout_s=0.2):
                    q.put("locked")
            except SparsityLawsError as exc:
                q.put(str(exc))

        p = ctx.Process(target=other)
        p.start()
        p.join(30)
        msg = q.get(timeout=5)
    assert "another process" in msg and "merge" in msg
