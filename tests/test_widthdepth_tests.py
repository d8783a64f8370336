"""The width/depth tests of issue 22, checked against independent computations.

* the fixed-breakpoint test (breakpoint at the paper's 114): its rise is the weighted
  least-squares slope on min(r, 114) (numpy lstsq), its permutation p-value matches the
  exact enumeration of every relabelling of a small sweep, it holds its level when A0
  does not depend on width/depth, and the power it reports matches the rejection rate of
  the same test run on sweeps simulated independently;
* the free-breakpoint test's likelihood ratio is never negative (the alternative contains
  the null) and its reported power matches an independent simulation;
* the run random effect from seeds is the one-way Paule-Mandel estimate (brute force);
* the weights never let three runs carry more than half of the weight.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsitylaws.architecture import widthdepth as W

RATIOS5 = np.array([6.0, 16.0, 26.7, 48.0, 144.0])
SWEEP = np.repeat(RATIOS5, 3)  # 5 designs x 3 seeds, the cpu preset's sweep


def _wls_slope(x, y, w):
    X = np.column_stack([np.ones_like(x), x]) * np.sqrt(w)[:, None]
    return float(np.linalg.lstsq(X, y * np.sqrt(w), rcond=None)[0][1])


def test_fixed_rise_is_the_weighted_slope_on_the_clipped_ratio():
    rng = np.random.default_rng(0)
    y = 0.09 + rng.normal(0, 0.004, SWEEP.size)
    w = rng.uniform(0.5, 2.0, SWEEP.size)
    t = W.fixed_breakpoint_test(SWEEP, y, w, n_perm=999, n_sim=50)
    x = np.minimum(SWEEP, 114.0)
    assert t["slope"] == pytest.approx(_wls_slope(x, y, w), rel=1e-9)
    assert t["rise"] == pytest.approx(t["slope"] * (114.0 - 6.0), rel=1e-12)
    lo, hi = t["rise_interval"]
    assert lo < t["rise"] < hi


def test_fixed_permutation_p_matches_exact_enumeration():
    """Six runs: all 720 relabellings give the exact permutation p-value."""
    r = np.array([4.0, 10.0, 30.0, 60.0, 120.0, 300.0])
    y = np.array([0.081, 0.086, 0.089, 0.097, 0.099, 0.098])
    w = np.array([1.0, 2.0, 1.0, 0.5, 1.0, 1.5])
    x = np.minimum(r, 114.0)
    obs = abs(_wls_slope(x, y, w))
    # the test keeps each run's A0 and weight and shuffles the ratios: enumerate them all
    exact = np.mean([abs(_wls_slope(x[list(p)], y, w)) >= obs * (1 - 1e-12)
                     for p in itertools.permutations(range(6))])
    t = W.fixed_breakpoint_test(r, y, w, n_perm=20_000, n_sim=20, seed=3)
    assert t["p_value"] == pytest.approx(exact, abs=0.01)


def test_fixed_test_holds_its_level_without_a_width_depth_effect():
    rng = np.random.default_rng(1)
    rej = 0
    for i in range(300):
        y = 0.09 + rng.normal(0, 0.005, SWEEP.size)
        rej += W.fixed_breakpoint_test(SWEEP, y, None, n_perm=199, n_sim=10, seed=i)["rejects"]
    assert rej / 300 <= 0.09  # 5% nominal; 300 sweeps: 0.09 is 3 standard errors above


def test_fixed_power_matches_an_independent_simulation():
    """The reported power at the data's residual scale is the rejection rate of the same
    test on sweeps with a true 2 pp rise and that scale, simulated here."""
    rng = np.random.default_rng(2)
    noise = 0.008
    y = 0.09 + rng.normal(0, noise, SWEEP.size)
    t = W.fixed_breakpoint_test(SWEEP, y, None, n_perm=999, n_sim=400, seed=5)
    sd = t["residual_sd"]
    x = np.minimum(SWEEP, 114.0)
    rej = 0
    for i in range(150):
        ys = 0.09 + 0.02 * (x - x.min()) / (x.max() - x.min()) + rng.normal(0, sd, SWEEP.size)
        rej += W.fixed_breakpoint_test(SWEEP, ys, None, n_perm=199, n_sim=10, seed=100 + i)["rejects"]
    # two estimates of one probability: 400 and 150 draws, 3 standard errors apart at most
    assert t["power"] == pytest.approx(rej / 150, abs=0.14)
    assert 0.0 < t["power"] < 1.0


def test_fixed_test_finds_a_clear_rise():
    rng = np.random.default_rng(4)
    x = np.minimum(SWEEP, 114.0)
    y = 0.08 + 0.03 * (x - 6) / 108 + rng.normal(0, 0.003, SWEEP.size)
    t = W.fixed_breakpoint_test(SWEEP, y, None, n_perm=999, n_sim=100)
    assert t["rejects"] and t["p_value"] < 0.01 and t["rise"] == pytest.approx(0.03, abs=0.01)
    assert t["power"] > 0.8


def test_fixed_test_needs_two_ratios_below_the_breakpoint():
    t = W.fixed_breakpoint_test([120.0, 150.0, 200.0, 300.0, 400.0], [0.1] * 5)
    assert t["available"] is False and "below the breakpoint" in t["reason"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 0.3), min_size=6, max_size=12), st.integers(0, 10_000))
def test_free_test_statistic_is_never_negative(values, seed):
    y = np.asarray(values)
    r = np.geomspace(4, 400, y.size)
    fit = W.fit_hinge(r, y, None, n_boot=19, seed=seed, smooth_fit=False, influence=False, extras=False)
    assert fit.test["value"] >= 0.0
    assert 0.0 < fit.test["p_value"] <= 1.0


def test_free_power_matches_an_independent_simulation():
    rng = np.random.default_rng(6)
    y = 0.09 + rng.normal(0, 0.004, SWEEP.size)
    fit = W.fit_hinge(SWEEP, y, None, n_boot=399, seed=1, smooth_fit=False, influence=False)
    sig = np.sqrt(fit.models["line"]["rss"] / (SWEEP.size - 2))
    rb = fit.test["power_breakpoint"]
    rej = 0
    for i in range(120):
        ys = 0.02 / (rb - 6) * (np.minimum(SWEEP, rb) - rb) + rng.normal(0, sig, SWEEP.size)
        rej += W.fit_hinge(SWEEP, ys, None, n_boot=199, seed=50 + i, smooth_fit=False,
                           influence=False, extras=False).test["supported"]
    assert fit.test["power"] == pytest.approx(rej / 120, abs=0.15)


def _one_way_paule_mandel_brute(y, se, groups):
    labels = sorted(set(groups))
    dof = y.size - len(labels)

    def q(t):
        w = 1 / (se ** 2 + t ** 2)
        tot = 0.0
        for g in labels:
            m = np.array([x == g for x in groups])
            mean = np.sum(w[m] * y[m]) / np.sum(w[m])
            tot += np.sum(w[m] * (y[m] - mean) ** 2)
        return tot

    grid = np.linspace(0, 0.05, 50_001)
    vals = np.array([q(t) for t in grid])
    return float(grid[np.argmax(vals <= dof)]) if q(0.0) > dof else 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seed_random_effect_is_one_way_paule_mandel(seed):
    rng = np.random.default_rng(seed)
    groups = [f"d{i}" for i in range(5) for _ in range(3)]
    se = np.exp(rng.uniform(np.log(0.001), np.log(0.01), 15))
    design = np.repeat([0.08, 0.10, 0.08, 0.10, 0.08], 3)  # designs differ, not along a line
    y = design + rng.normal(0, 0.006, 15) + rng.normal(0, se)
    tau = W.between_run_sd(SWEEP, y, se, np.array(groups, dtype=object))
    assert tau == pytest.approx(_one_way_paule_mandel_brute(y, se, groups), abs=2e-6)
    # the line-based estimate would count the design differences as scatter
    assert W.between_run_sd(SWEEP, y, se) > tau


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1e-5, 1.0), min_size=6, max_size=20), st.floats(0.0, 0.01))
def test_no_three_runs_carry_most_of_the_weight(se_list, tau):
    se = np.asarray(se_list)
    t, raised = W.spread_weights(se, tau)
    assert t >= tau
    assert W.top_share(1 / (se ** 2 + t ** 2)) <= 0.5 + 1e-6
    if not raised:
        assert t == tau


def test_hinge_fit_uses_seeds_and_reports_everything():
    rng = np.random.default_rng(9)
    se = rng.uniform(0.001, 0.02, SWEEP.size)
    y = 0.09 + rng.normal(0, 0.005, SWEEP.size)
    groups = [f"r{r:g}" for r in SWEEP]
    fit = W.fit_hinge(SWEEP, y, se, n_boot=199, smooth_fit=False, groups=groups, n_perm=999)
    d = fit.to_dict()
    assert "from the seeds" in d["test"]["weights"]
    assert d["test"]["top3_weight_share"] <= 0.5 + 1e-9
    assert 0 <= d["test"]["power"] <= 1 and d["test"]["power_rise"] == 0.02
    fx = d["fixed_breakpoint_test"]
    assert fx["breakpoint"] == 114.0 and 0 < fx["p_value"] <= 1 and 0 <= fx["power"] <= 1
    assert [x["runs"] for x in d["designs"]] == [3] * 5
    means = [x["mean"] for x in d["designs"]]
    assert means == pytest.approx([y[np.isclose(SWEEP, r)].mean() for r in RATIOS5])
    assert any(w.startswith("fixed breakpoint at width/depth 114") and "power" in w for w in fit.warnings)


# --- the law set and the report carry them -------------------------------------------------

def _sweep_rows(seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for w, d in [(48, 8), (64, 4), (80, 3), (96, 2), (144, 1)]:
        for s in range(3):
            run = f"cpu-relu-w{w}-d{d}-s{s}"
            for t in np.geomspace(5e4, 3e6, 8).astype(int):
                v = 0.09 + 0.05 * np.exp(-t / 4e5) + rng.normal(0, 0.002)
                for metric, arg, val in (("ppl-p", 1.0, v), ("cett", 0.1, 1.2 * v)):
                    rows.append({"run": run, "tokens": int(t), "metric": metric, "metric_arg": arg,
                                 "activation_ratio": val, "width": w, "depth": d, "n_params": 11 * w * w * d})
    return pd.DataFrame(rows)


def test_plateau_means_and_robust_tests_in_the_law_set():
    from sparsitylaws.lawset.build import add_plateau_limits, add_widthdepth_robustness

    df = _sweep_rows()
    rows = df[df["metric"] == "ppl-p"]
    info = {r: {"width_depth_ratio": g["width"].iloc[0] / g["depth"].iloc[0], "n_params": int(g["n_params"].iloc[0])}
            for r, g in rows.groupby("run")}
    add_plateau_limits(info, rows, df)
    for run, g in rows.groupby("run"):
        last = g.sort_values("tokens")["activation_ratio"].tail(3)
        assert info[run]["plateau"]["mean"] == pytest.approx(last.mean())
        c = df[(df["run"] == run) & (df["metric"] == "cett")].sort_values("tokens")["activation_ratio"].tail(3)
        assert info[run]["plateau_common_cett"] == {"cett": 0.1, "mean": pytest.approx(c.mean()), "n_last": 3}
    section = {"activations": {"relu": {"widthdepth": {"runs": sorted(info)}}}}
    add_widthdepth_robustness(section, info, seed=0)
    pt = section["activations"]["relu"]["widthdepth"]["plateau_tests"]
    r = np.array([info[x]["width_depth_ratio"] for x in pt["runs"]])
    y = np.array([info[x]["plateau"]["mean"] for x in pt["runs"]])
    ref = W.fixed_breakpoint_test(np.sort(r), y[np.argsort(r, kind="stable")], None, seed=7)
    assert pt["fixed_breakpoint_test"]["rise"] == pytest.approx(ref["rise"])
    assert pt["fixed_breakpoint_test"]["p_value"] == pytest.approx(ref["p_value"])
    assert pt["test"]["weights"] == "equal" and len(pt["designs"]) == 5


def test_report_shows_seeds_tests_and_power():
    from types import SimpleNamespace

    from sparsitylaws.lawset.build import add_plateau_limits, add_widthdepth_robustness
    from sparsitylaws.views.report import widthdepth_evidence_blocks

    df = _sweep_rows(1)
    rows = df[df["metric"] == "ppl-p"]
    info = {r: {"width_depth_ratio": g["width"].iloc[0] / g["depth"].iloc[0], "n_params": int(g["n_params"].iloc[0])}
            for r, g in rows.groupby("run")}
    add_plateau_limits(info, rows, df)
    runs = sorted(info)
    lim = __import__("pandas").DataFrame({
        "run": runs, "ratio": [info[x]["width_depth_ratio"] for x in runs],
        "n_params": [info[x]["n_params"] for x in runs], "a0": [info[x]["plateau"]["mean"] - 0.001 for x in runs],
        "a0_se": [0.002] * len(runs)})
    h = W.fit_widthdepth(lim, n_boot=199, smooth_fit=False, n_perm=999)
    section = {"activations": {"relu": {"widthdepth": {"runs": runs, "fit": h.to_dict()}}}}
    add_widthdepth_robustness(section, info, seed=0)
    blocks = widthdepth_evidence_blocks(SimpleNamespace(architecture=section, run_info=info))
    tables = [b.frame for b in blocks if b.kind == "table"]
    designs, tests = tables
    assert list(designs["runs"]) == [3] * 5
    assert "plateau at CETT 0.1: mean of seeds" in designs.columns
    assert len(tests) == 2 and tests["free breakpoint: p (power vs 2 pp)"].str.contains("%").all()
    assert tests["fixed: permutation p (power vs 2 pp)"].str.contains("%").all()
    assert any("three heaviest runs carry" in b.text for b in blocks if b.kind == "p")
