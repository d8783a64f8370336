"""A run on the packaged default that no analog of the default can lend to is told what its
forecast rests on instead (the default's analogs are the paper's 0.1B+ runs; a lab-size run is
smaller than all of them, so the pooled candidates its weights lean on have no value)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from forecast_helpers import default_warning

from sparsitylaws.lawset.build import fit_table
from sparsitylaws.runfit.calibration import default_forecast
from sparsitylaws.runfit.forecast import POOLED
from sparsitylaws.tables.ingest import read_sparsinglaw_dir

NOTE = "no run the default borrows from is as small as it"


def test_a_run_smaller_than_every_analog_is_told_what_its_forecast_rests_on() -> None:
    df = pd.read_parquet(Path(__file__).resolve().parents[1] / "measurements" / "lab-cpu.parquet")
    run = "cpu-relu-w64-d4-s0"
    ls = fit_table(df[(df["metric"] == "ppl-p") & (df["run"] == run)], n_boot=10, architecture=False)
    said = default_warning(ls, run)
    model, curves = default_forecast()
    state = ls.runs[run].forecast_state()
    # independently: every ReLU analog of the default is larger (so none lends), and what the
    # default's weights leave once the pooled candidates are gone
    assert all(c.n_params > state.n_params for c in curves if c.activation == "relu")
    own = sorted(k for k, w in model.weights_for("relu").items() if w > 0 and k not in POOLED)
    assert NOTE in said
    assert ("its own law alone" in said) == (not own)
    assert all(k in said for k in own)


def test_a_run_the_default_can_lend_to_is_not(sparsinglaw_dir) -> None:
    df = read_sparsinglaw_dir(str(sparsinglaw_dir))
    ls = fit_table(df[df["run"] == "0.4b_relu"], n_boot=10, architecture=False)
    said = default_warning(ls, "0.4b_relu")
    assert "packaged default" in said and NOTE not in said


def test_every_forecast_row_banded_by_the_default_carries_its_caveat() -> None:
    """A planning script reads prediction rows, not the law set's warnings: each row past the
    data that the packaged default bands says so; rows inside the data, and the runs of a table
    that calibrates itself, do not."""
    df = pd.read_parquet(Path(__file__).resolve().parents[1] / "measurements" / "lab-cpu.parquet")
    run = "cpu-relu-w64-d4-s0"
    one = df[(df["metric"] == "ppl-p") & (df["run"] == run)]
    ls = fit_table(one, n_boot=10, architecture=False)
    fit = ls.runs[run]
    inside, past = fit.tokens_b_max * 1e9 * 0.9, fit.tokens_b_max * 1e9 * 3
    p = ls.predict(run=run, tokens=[inside, past])
    assert p["forecast"].tolist() == [False, True]
    assert "packaged default" not in p["warning"].iloc[0]
    assert "packaged default" in p["warning"].iloc[1] and "fewer than 90%" in p["warning"].iloc[1]
    from sparsitylaws.lawset.fileformat import load_lawset

    own = load_lawset(Path(__file__).resolve().parents[1] / "measurements" / "lab-cpu.laws.json")
    q = own.predict(run=run, tokens=[own.runs[run].tokens_b_max * 1e9 * 3])
    assert bool(q["forecast"].iloc[0]) and "packaged default" not in q["warning"].iloc[0]
