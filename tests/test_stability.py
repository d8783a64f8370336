"""Estimates continuous in their data (issue 19's must-show).

For every committed lab table and the paper's published runs: a refit gives the committed
law set's limits A0 to 0.01 points, Gaussian noise of 0.001 points (1e-5) drawn over the whole
table moves no limit by more than 0.1 points, and changes no width/depth verdict.
Limits do not depend on the bootstrap, so runs are refitted without it (the committed law
sets used it for their intervals).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparsitylaws.runfit.run import fit_run

REPO = Path(__file__).resolve().parents[1]
NOISE = 1e-5
SEEDS = (1, 2)


def _runs(df: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray, str]]:
    df = df[df["metric"] == "ppl-p"] if "metric" in df.columns else df
    if "not_for_fitting" in df.columns:
        df = df[df["not_for_fitting"].isna() | (df["not_for_fitting"].astype(str).isin(["", "False", "false"]))]
    out = {}
    for run, sub in df.groupby("run"):
        sub = sub.sort_values("tokens")
        out[str(run)] = (sub["tokens"].to_numpy(float), sub["activation_ratio"].to_numpy(float),
                         str(sub["activation"].iloc[0]))
    return out


def _limits(runs: dict) -> dict[str, float]:
    out = {}
    for name, (t, y, act) in runs.items():
        rf = fit_run(t, y, run=name, activation=act, n_boot=0, compare=False, backtest=False)
        out[name] = rf.limit()["estimate"]
    return out


def _noisy(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """``df`` with Gaussian noise of :data:`NOISE` drawn over the whole table, kept in [0, 1]."""
    return df.assign(activation_ratio=np.clip(
        df["activation_ratio"] + np.random.default_rng(seed).normal(0, NOISE, len(df)), 0, 1))


TABLES = sorted(p.stem for p in (REPO / "measurements").glob("lab-*.parquet"))


@pytest.mark.parametrize("table", TABLES)
def test_lab_limits_refit_to_the_committed_law_set_and_do_not_jump(table: str) -> None:
    laws = REPO / "measurements" / f"{table}.laws.json"
    df = pd.read_parquet(REPO / "measurements" / f"{table}.parquet")
    base = _limits(_runs(df))
    if laws.is_file():
        committed = json.loads(laws.read_text())["runs"]
        for name, a0 in base.items():
            if name not in committed:
                continue
            i = committed[name]["param_names"].index("A0")
            assert abs(a0 - committed[name]["estimate"][i]) <= 1e-4, (
                f"{table} {name}: refit {a0:.5f}, committed {committed[name]['estimate'][i]:.5f}")
    for seed in SEEDS:
        moved = _limits(_runs(_noisy(df, seed)))
        worst = max(base, key=lambda n: abs(moved[n] - base[n]))
        assert abs(moved[worst] - base[worst]) <= 1e-3, f"{table} {worst}: {base[worst]} -> {moved[worst]}"


def test_published_limits_do_not_jump(sparsinglaw_dir: Path) -> None:
    from sparsitylaws.tables.ingest import read_sparsinglaw_dir

    df = read_sparsinglaw_dir(str(sparsinglaw_dir))
    base = _limits(_runs(df))
    for seed in SEEDS:
        moved = _limits(_runs(_noisy(df, seed)))
        assert max(abs(moved[n] - base[n]) for n in base) <= 1e-3


@pytest.mark.parametrize("table", TABLES)
def test_width_depth_verdict_does_not_flip_under_noise(table: str) -> None:
    """The ReLU width/depth law of the sweep: which model is preferred and whether a breakpoint
    is supported stay the same under 0.001-point noise."""
    from sparsitylaws.lawset.build import fit_table

    df = pd.read_parquet(REPO / "measurements" / f"{table}.parquet")
    df = df[df["metric"] == "ppl-p"]

    def verdict(d: pd.DataFrame) -> tuple:
        ls = fit_table(d, n_boot=0, backtest=False, name="t")
        fit = ls.architecture["activations"]["relu"]["widthdepth"]["fit"]
        return fit["preferred"], bool(fit["test"]["supported"])

    base = verdict(df)
    for seed in SEEDS:
        assert verdict(_noisy(df, seed)) == base


def test_published_forecasts_do_not_jump(sparsinglaw_dir: Path) -> None:
    """The forecast past the data (its point and both band ends, at twice each run's last
    tokens) moves by less than 0.1 points when 0.001-point noise is added to every measured
    ratio: the weights are chosen by interval score among a grid, so a near-tie may flip, but
    the candidates it flips between agree closely (0.06 points the worst seen, docs/fitting.md)."""
    from sparsitylaws.lawset.build import fit_table
    from sparsitylaws.tables.ingest import read_sparsinglaw_dir

    df = read_sparsinglaw_dir(str(sparsinglaw_dir))

    def forecasts(d: pd.DataFrame) -> dict[str, pd.Series]:
        ls = fit_table(d, n_boot=0, architecture=False, name="published")
        return {n: ls.predict(n, [d[d["run"] == n]["tokens"].max() * 2.0]).iloc[0] for n in ls.run_names()}

    base = forecasts(df)
    for seed in (0, 1):  # seed 0 flips a near-tie (0.055 points)
        noisy = df.copy()
        noisy["activation_ratio"] += np.random.default_rng(seed).normal(0, NOISE, len(df))
        other = forecasts(noisy)
        for name, row in base.items():
            for col in ("activation_ratio", "pred_low", "pred_high"):
                assert abs(other[name][col] - row[col]) <= 1e-3, (seed, name, col)


def test_a_near_degenerate_lab_limit_does_not_jump_under_table_wide_noise() -> None:
    """cpu-relu-w96-d2-s0 under 0.001-point noise drawn over the whole ppl-p table (the draws of
    benchmarks/forecast_stability.py), seeds 0-9, moves its limit by at most 0.1 points.  Its
    first point's probability of lying past the warm-up sits at the cut (warmup.PI_MIN,
    0.000999 unperturbed); when a hard cut took that point in or out of the fit (and out of the
    points the prior was built from), seeds 1, 3 and 9 moved the limit 0.33 points.  Ten draws,
    so that another CPU's rounding near the cut still meets it."""
    df = pd.read_parquet(REPO / "measurements" / "lab-cpu.parquet")
    df = df[df["metric"] == "ppl-p"]
    run = "cpu-relu-w96-d2-s0"

    def limit(d: pd.DataFrame) -> float:
        sub = d[d["run"] == run].sort_values("tokens")
        rf = fit_run(sub["tokens"].to_numpy(float), sub["activation_ratio"].to_numpy(float), run=run,
                     activation="relu", n_boot=0, compare=False, backtest=False)
        return float(rf.limit()["estimate"])

    base = limit(df)
    moves = [abs(limit(_noisy(df, seed)) - base) for seed in range(10)]
    assert max(moves) <= 1e-3, moves


def _prefix_states(d: pd.DataFrame, run: str) -> dict:
    """cutoff -> the rolling backtest's state of ReLU run ``run`` of ``d``, at the calibration cuts."""
    from sparsitylaws.runfit.backtest import cut_states

    sub = d[d["run"] == run].sort_values("tokens")
    return dict(cut_states(sub["tokens"].to_numpy(float) / 1e9, sub["activation_ratio"].to_numpy(float),
                           "logspace_power", run=run, activation="relu", n_params=float(sub["n_params"].iloc[0])))


def test_a_young_runs_backtest_fits_settle_under_table_wide_noise() -> None:
    """gpu-relu-w64-d2's rolling backtests at its 40-60% cuts fit a prefix the law barely
    describes (a plateau, then a drop within a factor three of tokens).  From the form's own
    starts alone the solver's iteration cap stopped them in a slow valley at a different point
    under each 0.001-point noise draw (residual sd 0.067, 0.021, 0.029, 0.042 against a noise of
    about 0.005), and that sd set the run's own drift, so its forecast moved 0.33 points
    (docs/fitting.md "Continuity").  Started from the previous cut's fit as well, each cut
    settles: its residual sd stays near the data's noise and moves by less than 1e-4."""
    df = pd.read_parquet(REPO / "measurements" / "lab-gpu.parquet")
    df = df[df["metric"] == "ppl-p"]
    run = "gpu-relu-w64-d2"
    base = _prefix_states(df, run)
    for seed in (0, 1, 2):
        other = _prefix_states(_noisy(df, seed), run)
        assert other.keys() == base.keys()
        for cut in (0.4, 0.5, 0.6):
            assert base[cut].sigma < 0.01, (cut, base[cut].sigma)
            assert abs(other[cut].sigma - base[cut].sigma) < 1e-4, (seed, cut, other[cut].sigma, base[cut].sigma)
            np.testing.assert_allclose(other[cut].theta, base[cut].theta, rtol=0.02, atol=0.005)


def test_a_cuts_fit_uses_nothing_after_the_cut() -> None:
    """The previous cut's fit is a start for the next one, never the other way: changing every
    measurement after the 50% cut leaves the states at the 20-50% cuts exactly as they were."""
    df = pd.read_parquet(REPO / "measurements" / "lab-gpu.parquet")
    df = df[(df["metric"] == "ppl-p") & (df["run"] == "gpu-relu-w120-d10")]
    lo, hi = df["tokens"].min(), df["tokens"].max()
    late = df["tokens"] > lo + 0.5 * (hi - lo)
    assert late.any()
    changed = df.assign(activation_ratio=np.where(late, df["activation_ratio"] * 0.7, df["activation_ratio"]))
    a, b = _prefix_states(df, "gpu-relu-w120-d10"), _prefix_states(changed, "gpu-relu-w120-d10")
    for cut in (0.2, 0.3, 0.4, 0.5):
        assert a[cut].to_dict() == b[cut].to_dict(), cut
    assert any(a[c].to_dict() != b[c].to_dict() for c in (0.6, 0.7, 0.8))
