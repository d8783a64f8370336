"""The shared row selection (sparsitylaws.tables.rows): metric choice and the not-for-fitting flag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.tables.rows import (
    FLAG_COLUMN,
    normalize_flag,
    not_for_fitting_mask,
    select_fit_rows,
)
from sparsitylaws.tables.schema import validate_frame

SHIPPED = Path(__file__).resolve().parents[1] / "measurements" / "smollm2-135m.parquet"


def _table(flag=None) -> pd.DataFrame:
    rows = []
    for run, act in (("a", "relu"), ("b", "relu"), ("c", "silu")):
        for i, tok in enumerate((1e9, 2e9, 4e9, 8e9)):
            for metric, arg in (("ppl-p", 1.0), ("zero", np.nan)):
                rows.append({"run": run, "checkpoint": f"s{i}", "tokens": int(tok), "activation": act,
                             "metric": metric, "metric_arg": arg, "activation_ratio": 0.1 + 0.01 * i})
    df = pd.DataFrame(rows)
    if flag is not None:
        df[FLAG_COLUMN] = [flag if r == "b" else None for r in df["run"]]
    return validate_frame(df)


def test_default_metric_is_ppl_p_and_counts_match_brute_force():
    sel = select_fit_rows(_table())
    assert sel.metric == "ppl-p"
    assert len(sel.rows) == 12 and set(sel.rows["metric"]) == {"ppl-p"}
    assert sel.excluded == {}


def test_flagged_run_left_out_with_its_reason():
    sel = select_fit_rows(_table("broken on purpose"))
    assert sorted(sel.rows["run"].unique()) == ["a", "c"]
    assert sel.excluded == {"b": "broken on purpose"}
    assert sorted(select_fit_rows(_table("x"), include_excluded=True).rows["run"].unique()) == ["a", "b", "c"]


def test_naming_a_flagged_run_is_a_clear_error():
    with pytest.raises(SparsityLawsError, match="--run b: the table marks this run not for fitting"):
        select_fit_rows(_table("broken"), runs=["b"])
    with pytest.raises(SparsityLawsError, match="--run zz: no such run"):
        select_fit_rows(_table(), runs=["zz"])


@pytest.mark.parametrize("value, flagged", [(True, True), ("yes", True), ("broken", True), (False, False),
                                            ("", False), ("false", False), (None, False), (np.nan, False)])
def test_flag_values(value, flagged):
    df = _table(value)
    assert not_for_fitting_mask(df[df["run"] == "b"]).all() == flagged
    assert not not_for_fitting_mask(df[df["run"] != "b"]).any()


def test_normalize_flag_text():
    out = normalize_flag(pd.Series([True, "why", "", None, False]))
    assert out.tolist() == ["marked not for fitting", "why", None, None, None]


def test_every_run_flagged_is_an_error():
    df = _table()
    df[FLAG_COLUMN] = "all broken"
    with pytest.raises(SparsityLawsError, match="every run is marked not for fitting"):
        select_fit_rows(validate_frame(df))


def test_shipped_table_flags_the_swapped_model():
    from sparsitylaws.tables.io import read_table

    sel = select_fit_rows(read_table(SHIPPED))
    assert list(sel.excluded) == ["smollm2-135m-relu-swapped"]
    assert set(sel.rows["run"]) == {"smollm2-135m-silu"} and len(sel.rows) == 1


def test_fit_table_records_left_out_runs():
    from sparsitylaws.lawset.build import fit_table

    ls = fit_table(_table("broken"), n_boot=0, backtest=False, architecture=False)
    assert sorted(ls.runs) == ["a", "c"]
    assert ls.provenance["not_for_fitting"] == {"b": "broken"}
