"""--form auto for activations the paper did not study: the data's direction decides, or an error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cli_helpers import assert_one_line_error, run_cli

from sparsitylaws.errors import FitInputError
from sparsitylaws.runfit.formchoice import choose_form
from sparsitylaws.runfit.forms import get_form

D = np.geomspace(2.0, 200.0, 14)  # billions of tokens
FALL = get_form("logspace_power").evaluate(D, np.array([0.5, -2.0, 0.3, 0.06]))  # alpha, b, c, A0
RISE = get_form("convergent_power").evaluate(D, np.array([0.8, 0.25, 0.40]))      # alpha, c, A0


def test_known_activations_follow_the_paper_whatever_the_data():
    assert choose_form("ReLU", D, RISE)[0] == "logspace_power"
    assert choose_form("silu", D, FALL)[0] == "convergent_power"


@pytest.mark.parametrize("y, form, word", [(FALL, "logspace_power", "falls"), (RISE, "convergent_power", "rises")])
def test_unknown_activation_follows_the_data(y, form, word):
    got, why = choose_form("tanh", D * 1e9, y)
    assert got == form and word in why and "tanh" in why


def test_no_direction_is_an_error_asking_for_form():
    flat = 0.3 + 0.001 * np.sin(np.arange(D.size) * 2.1)  # Spearman rho of this: brute force below
    ranks = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    rho = np.corrcoef(ranks(D), ranks(flat))[0, 1]
    assert abs(rho) < 0.5
    with pytest.raises(FitInputError, match="--form"):
        choose_form("tanh", D, flat)
    with pytest.raises(FitInputError, match="--form"):
        choose_form("tanh", D[:3], FALL[:3])


def test_fit_cli_says_which_form_and_recovers_the_falling_law(tmp_path):
    csv = tmp_path / "tanh.csv"
    pd.DataFrame({"checkpoint": [f"s{i}" for i in range(D.size)], "tokens": (D * 1e9).astype(np.int64),
                  "activation_ratio": FALL}).to_csv(csv, index=False)
    table = tmp_path / "t.parquet"
    res = run_cli("ingest", "csv", csv, "-o", table, "--set", "run=t,activation=tanh,metric=ppl-p,metric_arg=1")
    assert res.status == 0, res.stderr
    res = run_cli("fit", table, "-o", tmp_path / "laws.json", "--n-boot", "0", "--no-backtest")
    assert res.status == 0, res.stderr
    assert "logspace_power" in res.stdout and "ratio falls" in res.stdout
    from sparsitylaws import load_lawset

    f = load_lawset(tmp_path / "laws.json").runs["t"]
    assert f.form == "logspace_power"
    np.testing.assert_allclose(f.estimate, [0.5, -2.0, 0.3, 0.06], rtol=0.05, atol=1e-3)


def test_fit_cli_unclear_direction_is_one_line(tmp_path):
    csv = tmp_path / "flat.csv"
    pd.DataFrame({"checkpoint": [f"s{i}" for i in range(8)], "tokens": np.arange(1, 9) * 10**9,
                  "activation_ratio": [0.3, 0.31, 0.3, 0.31, 0.3, 0.31, 0.3, 0.31]}).to_csv(csv, index=False)
    table = tmp_path / "t.parquet"
    assert run_cli("ingest", "csv", csv, "-o", table, "--set", "run=t,activation=tanh,metric=ppl-p,metric_arg=1").status == 0
    res = run_cli("fit", table, "-o", tmp_path / "laws.json", "--n-boot", "0", "--no-backtest")
    assert_one_line_error(res, "tanh", "--form")
