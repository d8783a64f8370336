"""Width/depth and scale laws: each estimator against an independent computation, and the
calibration of the breakpoint interval and test on simulated sweeps."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sparsitylaws.architecture import (
    ARCH_VERSION,
    RunSummary,
    aicc,
    assemble_section,
    build_architecture_section,
    check_section,
    fit_hinge,
    fit_scale_trends,
    hinge_profile_rss,
    limits_from_final,
    predict_section,
    smooth_hinge,
)
from sparsitylaws.errors import FitInputError, LawSetError

RATIOS = np.array([24, 32, 48, 64, 96, 128, 192, 256, 384.0])  # 9 ratios, as in a sweep
TRUE_RB, PLATEAU, SLOPE, NOISE = 114.0, 0.08, 2.8e-4, 0.003


def hinge(r, plateau=PLATEAU, slope=SLOPE, rb=TRUE_RB):
    return plateau + slope * (np.minimum(r, rb) - rb)


def brute_rss(r, y, rb, w=None):
    """Independent reference: numpy lstsq of the hinge with the breakpoint fixed."""
    w = np.ones_like(r) if w is None else w
    X = np.column_stack([np.ones_like(r), np.minimum(r, rb)]) * np.sqrt(w)[:, None]
    beta, *_ = np.linalg.lstsq(X, y * np.sqrt(w), rcond=None)
    return float(np.sum((y * np.sqrt(w) - X @ beta) ** 2))


# ---------------------------------------------------------------- hinge estimator


@pytest.mark.parametrize("seed", range(6))
def test_exact_hinge_beats_a_brute_force_grid(seed):
    rng = np.random.default_rng(seed)
    r = np.sort(rng.uniform(10, 400, 9))
    y = hinge(r, rb=rng.uniform(60, 250)) + rng.normal(0, NOISE, r.size)
    h = fit_hinge(r, y, n_boot=49, smooth_fit=False)
    u = np.unique(r)
    grid = np.linspace(u[1], u[-2], 20001)
    ref = np.array([brute_rss(r, y, g) for g in grid[::20]])
    fine_best = grid[::20][np.argmin(ref)]
    local = np.linspace(fine_best - 1, fine_best + 1, 2001)
    local = local[(local >= u[1]) & (local <= u[-2])]
    ref_min = min(ref.min(), min(brute_rss(r, y, g) for g in local))
    # exact optimum: never worse than the grid, and the grid gets arbitrarily close to it
    assert h.rss <= ref_min + 1e-15
    assert h.rss == pytest.approx(ref_min, rel=1e-4, abs=1e-12)
    assert h.rss == pytest.approx(brute_rss(r, y, h.breakpoint), rel=1e-9, abs=1e-15)
    want = h.plateau + h.slope * (np.minimum(r, h.breakpoint) - h.breakpoint)
    assert np.allclose(h.predict(r), want)


def test_profile_rss_matches_lstsq_weighted():
    rng = np.random.default_rng(3)
    y = hinge(RATIOS) + rng.normal(0, NOISE, RATIOS.size)
    se = rng.uniform(0.001, 0.004, RATIOS.size)
    grid = [40.0, 100.0, 114.0, 200.0]
    got = hinge_profile_rss(RATIOS, y, grid, 1 / se)
    want = [brute_rss(RATIOS, y, g, 1 / se**2) for g in grid]
    assert np.allclose(got, want, rtol=1e-9, atol=1e-15)


def test_noise_free_hinge_is_recovered_exactly():
    h = fit_hinge(RATIOS, hinge(RATIOS) + 1e-9 * np.sin(RATIOS), n_boot=49, smooth_fit=False)
    assert h.breakpoint == pytest.approx(TRUE_RB, rel=1e-4)
    assert h.plateau == pytest.approx(PLATEAU, abs=1e-7)
    assert h.slope == pytest.approx(SLOPE, rel=1e-4)
    assert h.test["supported"]


def test_common_scaling_of_data_and_se_does_not_change_the_fit():
    # weights are 1/(se^2 + tau^2): scaling the A0 deviations and their se together scales
    # tau with them and leaves the breakpoint, its interval and the test unchanged
    rng = np.random.default_rng(5)
    y = hinge(RATIOS) + rng.normal(0, NOISE, RATIOS.size)
    se = rng.uniform(0.001, 0.004, RATIOS.size)
    a = fit_hinge(RATIOS, y, se, n_boot=99, smooth_fit=False, seed=1)
    b = fit_hinge(RATIOS, 0.1 + 7 * (y - 0.1), 7 * se, n_boot=99, smooth_fit=False, seed=1)
    assert b.tau == pytest.approx(7 * a.tau, rel=1e-6, abs=1e-12)
    assert a.breakpoint == pytest.approx(b.breakpoint, rel=1e-9)
    assert a.breakpoint_interval == pytest.approx(b.breakpoint_interval, rel=1e-6)
    assert a.test["p_value"] == b.test["p_value"]


def test_smooth_hinge_tends_to_the_hinge_and_fits_it():
    r = np.linspace(10, 400, 50)
    assert np.allclose(smooth_hinge(r, PLATEAU, SLOPE, TRUE_RB, 1e-6), hinge(r), atol=1e-12)
    h = fit_hinge(RATIOS, hinge(RATIOS) + 1e-6 * np.cos(RATIOS), n_boot=49)
    sm = h.models["smooth_hinge"]["params"]
    assert sm["breakpoint"] == pytest.approx(TRUE_RB, rel=0.05)
    assert h.models["smooth_hinge"]["rss"] <= h.models["line"]["rss"]


def test_aicc_formula_and_model_table():
    rss, n, k = 0.0123, 9, 4
    want = n * math.log(rss / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)
    assert aicc(rss, n, k) == pytest.approx(want)
    assert aicc(rss, 5, 4) == math.inf
    rng = np.random.default_rng(9)
    y = hinge(RATIOS) + rng.normal(0, NOISE / 3, RATIOS.size)
    h = fit_hinge(RATIOS, y, n_boot=99)
    # the line and the constant are ordinary least squares: check against np.polyfit
    coef, res, *_ = np.polyfit(RATIOS, y, 1, full=True)
    assert h.models["line"]["rss"] == pytest.approx(float(res[0]), rel=1e-9)
    assert h.models["constant"]["rss"] == pytest.approx(float(np.sum((y - y.mean()) ** 2)), rel=1e-9)
    assert h.preferred in ("hinge", "smooth_hinge")
    json.dumps(h.to_dict())  # JSON-safe


def test_bad_input_names_the_problem():
    with pytest.raises(FitInputError, match="at least 5"):
        fit_hinge([1, 2, 3, 4], [0.1, 0.1, 0.1, 0.1])
    with pytest.raises(FitInputError, match="ratio"):
        fit_hinge([1, 2, -3, 4, 5], [0.1] * 5)
    with pytest.raises(FitInputError, match="se"):
        fit_hinge(RATIOS, hinge(RATIOS), np.zeros(9))


def test_calibration_on_200_simulated_sweeps():
    """Breakpoint 90% interval covers 80-97%; no-breakpoint sweeps: claims <= 10%."""
    rng = np.random.default_rng(20241104)
    n_sets = 200
    covered = claimed_true = claimed_null = 0
    for i in range(n_sets):
        y = hinge(RATIOS) + rng.normal(0, NOISE, RATIOS.size)
        h = fit_hinge(RATIOS, y, n_boot=199, seed=i, smooth_fit=False)
        lo, hi = h.breakpoint_interval
        covered += lo <= TRUE_RB <= hi
        claimed_true += h.test["supported"]
        # no breakpoint: half straight lines, half constants, same noise
        slope0 = 1e-4 if i % 2 else 0.0
        y0 = 0.06 + slope0 * RATIOS + rng.normal(0, NOISE, RATIOS.size)
        claimed_null += fit_hinge(RATIOS, y0, n_boot=199, seed=10_000 + i, smooth_fit=False).test["supported"]
    coverage = covered / n_sets
    false_pos = claimed_null / n_sets
    print(f"breakpoint coverage {coverage:.3f}, power {claimed_true / n_sets:.3f}, "
          f"false-positive rate {false_pos:.3f}")
    assert 0.80 <= coverage <= 0.97
    assert false_pos <= 0.10
    assert claimed_true / n_sets >= 0.8  # the test is not simply conservative


# ---------------------------------------------------------------- scale trends


def _a0_line(x):
    """A0 exactly linear in log-odds (the space predictions compose A0 in)."""
    z = math.log(0.39 / 0.61) - 0.04 * (x - 8.45)
    return 1.0 / (1.0 + math.exp(-z))


def _runs(act="silu", xs=(8.0, 8.3, 8.6, 8.9), scatter=None, draws=False, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i, x in enumerate(xs):
        la = -0.5 + 0.6 * (x - 8.45)
        lc = -1.0 + 1.2 * (x - 8.45)
        a0 = _a0_line(x)
        g = np.array([la, lc, a0]) + (0 if scatter is None else scatter[i])
        theta = np.array([math.exp(g[0]), math.exp(g[1]), g[2]])
        dr = None
        if draws:
            dr = theta * np.exp(rng.normal(0, 0.02, (300, 3)))
        out.append(RunSummary(name=f"r{i}", activation=act, form="convergent_power",
                              param_names=["alpha", "c", "A0"], theta=theta, draws=dr,
                              a0=theta[2], a0_interval=None, a0_level=0.9,
                              tokens_b=(1.0, 100.0), sigma=0.002, n_params=10**x,
                              width=1024.0, depth=20.0))
    return out


def test_scale_trend_matches_polyfit_and_linregress():
    rng = np.random.default_rng(1)
    sc = rng.normal(0, 0.05, (5, 3))
    runs = _runs(xs=(8.0, 8.2, 8.4, 8.7, 9.0), scatter=sc)
    tr = fit_scale_trends(runs, n_draws=50)
    x = np.log10([r.n_params for r in runs])
    g = np.column_stack([np.log([r.theta[0] for r in runs]), np.log([r.theta[1] for r in runs]),
                         [r.theta[2] for r in runs]])
    for j in range(3):
        slope, intercept = np.polyfit(x - x.mean(), g[:, j], 1)
        assert tr.coef[1, j] == pytest.approx(slope, rel=1e-9)
        assert tr.coef[0, j] == pytest.approx(intercept, rel=1e-9)
    lr = stats.linregress(x, g[:, 2])
    tq = stats.t.ppf(0.95, 3)
    assert tr.a0_slope["estimate"] == pytest.approx(lr.slope)
    assert tr.a0_slope["interval"] == pytest.approx([lr.slope - tq * lr.stderr, lr.slope + tq * lr.stderr])
    assert tr.a0_slope["distinguishable_from_zero"] == (abs(lr.slope) > tq * lr.stderr)


def test_exact_trend_predicts_unseen_scale_exactly_with_collapsing_interval():
    """Six scales exactly on lines (residuals 0): empirical Bayes keeps every slope (B = 0),
    the trend methods predict a new scale exactly and the band collapses: nothing widens it
    afterwards (the band is not stretched to the nearest run's curve)."""
    runs = _runs(xs=(8.0, 8.2, 8.4, 8.6, 8.8, 9.0))  # no draws
    tr = fit_scale_trends(runs, n_draws=100)
    assert tr.a0_slope["shrinkage"] < 1e-5  # A0 is linear in logit, nearly so in A0 units
    sec = assemble_section({"silu": {"scale": tr.to_dict(), "widthdepth": None, "ranges": {}}},
                           n_draws=100, seed=0)
    x0 = 9.5
    D = np.array([5.0, 50.0, 500.0])
    from sparsitylaws.runfit.forms import get_form

    alpha = math.exp(-0.5 + 0.6 * (x0 - 8.45))
    c = math.exp(-1.0 + 1.2 * (x0 - 8.45))
    a0 = _a0_line(x0)
    want = get_form("convergent_power").evaluate(D, np.array([alpha, c, a0]))
    out = predict_section(sec, "silu", 10**x0, 50.0, D, method="coef")
    assert np.allclose(out["ratio"], want, rtol=1e-9)
    assert np.allclose(out["a0"], a0)
    assert np.allclose(out["ratio_high"] - out["ratio_low"], 0, atol=1e-6)  # float32 draws


def test_trend_slopes_are_shrunk_toward_no_trend():
    """Empirical-Bayes shrinkage: B = min(1, se^2 nu / (nu - 2) / b^2) against its closed
    form; no slope with nu <= 2 (four scales or fewer); a slope buried in scatter is dropped,
    a clear one kept; the trend methods' A0 follows the shrunk line."""
    from sparsitylaws.architecture.scale import shrinkage

    assert shrinkage(0.5, 0.1, 4) == pytest.approx(0.1**2 * 4 / 2 / 0.25)
    assert shrinkage(0.01, 0.1, 4) == 1.0 and shrinkage(0.5, 0.1, 2) == 1.0
    four = fit_scale_trends(_runs(), n_draws=20)  # exact lines, but dof 2: no trend carried
    assert four.a0_slope["shrinkage"] == 1.0 and four.a0_slope["shrunk_estimate"] == 0.0
    xs = (8.0, 8.2, 8.4, 8.6, 8.8, 9.0)
    rng = np.random.default_rng(7)
    noisy = _runs(xs=xs, scatter=np.column_stack([np.zeros(6), np.zeros(6), rng.normal(0, 0.02, 6)]))
    tr = fit_scale_trends(noisy, n_draws=50)
    b, se = tr.a0_slope["estimate"], tr.a0_slope["se"]
    assert tr.a0_slope["shrinkage"] == pytest.approx(shrinkage(b, se, 4))
    # the predicted A0 is the shrunk line's (in logit; dof 4: the same rule per coefficient)
    sec = assemble_section({"silu": {"scale": tr.to_dict(), "widthdepth": None, "ranges": {}}},
                           n_draws=50, seed=0)
    x = np.array(xs)
    g = np.log(np.array([r.theta[2] for r in noisy]) / (1 - np.array([r.theta[2] for r in noisy])))
    bl, il = np.polyfit(x - x.mean(), g, 1)
    sel = np.sqrt(np.sum((g - il - bl * (x - x.mean())) ** 2) / 4 / np.sum((x - x.mean()) ** 2))
    Bl = shrinkage(bl, sel, 4)
    for x0 in (7.5, 9.8):
        out = predict_section(sec, "silu", 10**x0, 50.0, 20.0, method="excess")
        want = 1 / (1 + np.exp(-(g.mean() + (1 - Bl) * bl * (x0 - x.mean()))))
        assert out["a0"][0] == pytest.approx(want, rel=1e-9)


def test_draws_propagate_run_uncertainty_and_scatter():
    sc = np.random.default_rng(2).normal(0, 0.03, (4, 3))
    tr = fit_scale_trends(_runs(scatter=sc, draws=True), n_draws=400)
    sec = assemble_section({"silu": {"scale": tr.to_dict(), "widthdepth": None, "ranges": {}}},
                           n_draws=400, seed=0)
    near = predict_section(sec, "silu", 10**8.45, 50.0, 20.0)
    far = predict_section(sec, "silu", 10**10.0, 50.0, 20.0)
    w_near = near["a0_high"] - near["a0_low"]
    w_far = far["a0_high"] - far["a0_low"]
    assert w_near[0] > 0
    assert w_far[0] > w_near[0]  # extrapolating further in scale widens the interval


def test_one_and_two_scales_are_flagged():
    tr1 = fit_scale_trends(_runs(xs=(8.0,)), n_draws=10)
    assert any("one scale" in w for w in tr1.warnings)
    tr2 = fit_scale_trends(_runs(xs=(8.0, 8.5)), n_draws=10)
    assert any("scatter" in w for w in tr2.warnings)
    assert tr2.a0_slope["interval"] is None


# ---------------------------------------------------------------- section and limits


def _sweep_runfits(seed=0):
    """Dict run fits: a 9-run ReLU sweep at one scale plus three scale runs."""
    rng = np.random.default_rng(seed)
    fits, info = {}, {}
    widths = {24: (768, 32), 32: (768, 24), 48: (768, 16), 64: (1024, 16), 96: (1152, 12),
              128: (1024, 8), 192: (1536, 8), 256: (1536, 6), 384: (2304, 6)}
    for r, (w, d) in widths.items():
        a0 = hinge(r) + rng.normal(0, 0.001)
        th = [0.5, -3.0, 0.3, a0]
        name = f"sweep_{r}"
        fits[name] = {"form": "logspace_power", "estimate": th, "noise_sd": 0.001,
                      "boot_draws": (np.array(th) + rng.normal(0, [0.01, 0.02, 0.01, 0.001], (200, 4))).tolist(),
                      "tokens_b_min": 1.0, "tokens_b_max": 40.0}
        info[name] = {"activation": "relu", "width": w, "depth": d, "n_params": 1.1e8}
    for i, n in enumerate((2.4e8, 4.5e8, 7.6e8)):
        th = [0.5 + 0.1 * i, -3.0, 0.3 / (i + 1), 0.065 + 0.002 * i]
        fits[f"scale_{i}"] = {"form": "logspace_power", "estimate": th, "noise_sd": 0.001,
                              "boot_draws": None, "tokens_b_min": 2.0, "tokens_b_max": 100.0 * (i + 1)}
        info[f"scale_{i}"] = {"activation": "relu", "width": 1024 + 256 * i, "depth": 20 + 4 * i,
                              "n_params": n}
    return fits, info


def test_a_second_sweep_gives_one_run_to_the_scale_trends():
    """Two sweeps at two sizes (two lab tables pooled): one sweep makes the width/depth law,
    and each contributes one run to the scale trends (width/depth must not leak into them)."""
    fits, info = _sweep_runfits()
    rng = np.random.default_rng(3)
    for r in (8, 16, 32, 64, 128):  # a second sweep at 3e7 parameters
        th = [0.5, -3.0, 0.3, 0.08 + rng.normal(0, 0.001)]
        fits[f"small_{r}"] = {"form": "logspace_power", "estimate": th, "noise_sd": 0.001,
                              "boot_draws": None, "tokens_b_min": 1.0, "tokens_b_max": 40.0}
        info[f"small_{r}"] = {"activation": "relu", "width": 64 * r // 8, "depth": 8 // (r // 8) or 1,
                              "n_params": 3e7}
    sec = build_architecture_section(fits, info, n_boot=99, n_draws=50)
    runs = sec["activations"]["relu"]["scale"]["runs"]
    assert len(runs) == 5  # three scale runs, one of each sweep
    assert sum(r.startswith("small_") for r in runs) == 1 and sum(r.startswith("sweep_") for r in runs) == 1


def test_section_from_a_sweep_roundtrips_through_a_lawset(tmp_path):
    from sparsitylaws.lawset.fileformat import LawSet

    fits, info = _sweep_runfits()
    sec = build_architecture_section(fits, info, n_boot=199, n_draws=100)
    json.dumps(sec)
    wd = sec["activations"]["relu"]["widthdepth"]
    assert wd["model"] == "hinge" and wd["fit"]["test"]["supported"]
    lo, hi = wd["fit"]["breakpoint"]["interval"]
    assert lo < wd["point"]["breakpoint"] < hi
    assert sec["bottleneck"]["source"].startswith("width/depth hinge")
    sc = sec["activations"]["relu"]["scale"]
    assert len(sc["runs"]) == 4  # three scale runs plus one run of the sweep
    ls = LawSet(name="sim", architecture=sec)
    ls.save(tmp_path / "laws.json")
    back = LawSet.load(tmp_path / "laws.json")
    from sparsitylaws.planning import predict

    a = predict([1024, 4096], [16, 48], lawset=ls)
    b = predict([1024, 4096], [16, 48], lawset=back)
    pd.testing.assert_frame_equal(a.drop(columns="lawset"), b.drop(columns="lawset"))


def test_limits_from_final_mean_and_se():
    df = pd.DataFrame({"run": ["a"] * 5 + ["b"] * 3, "tokens": [1, 2, 3, 4, 5, 1, 2, 3],
                       "activation_ratio": [0.2, 0.1, 0.08, 0.07, 0.09, 0.3, 0.31, 0.29],
                       "width": [768] * 5 + [1024] * 3, "depth": [16] * 5 + [8] * 3,
                       "n_params": [1e8] * 8})
    lim = limits_from_final(df, n_last=3).set_index("run")
    assert lim.loc["a", "a0"] == pytest.approx(np.mean([0.08, 0.07, 0.09]))
    assert lim.loc["a", "a0_se"] == pytest.approx(np.std([0.08, 0.07, 0.09], ddof=1) / math.sqrt(3))
    assert lim.loc["b", "ratio"] == pytest.approx(128.0)


def test_check_section_refuses_unknown_versions():
    with pytest.raises(LawSetError, match="no architecture section"):
        check_section(None)
    bad = {"format": "sparsitylaws-architecture", "format_version": ARCH_VERSION + 1, "activations": {}}
    with pytest.raises(LawSetError, match="version"):
        check_section(bad)


# ---------------------------------------------------------------- published runs


@pytest.fixture(scope="module")
def published_fits(request):
    data_dir = request.getfixturevalue("sparsinglaw_dir")
    from sparsitylaws import paper
    from sparsitylaws.runfit.run import fit_run

    fits, info, pts = {}, {}, {}
    for f in sorted(data_dir.glob("*.json")):
        name = f.stem
        scale, act = name.split("_")
        d = json.loads(f.read_text())
        fits[name] = fit_run(d["token_passed"], d["activation_ratio"], run=name, activation=act,
                             n_boot=300, compare=False, backtest=False)
        c = paper.CONFIGS[scale]
        info[name] = {"activation": act, "width": c.width, "depth": c.depth, "n_params": c.n_params}
        pts[name] = (d["token_passed"], d["activation_ratio"])
    return fits, info, pts


def test_cross_scale_check_on_published_runs(published_fits):
    from sparsitylaws.architecture import cross_scale_check

    fits, info, pts = published_fits
    train = [f"{s}_{a}" for s in ("0.1b", "0.2b", "0.4b") for a in ("relu", "silu")]
    res = cross_scale_check(fits, info, pts, train=train, test=["0.8b_relu", "0.8b_silu"])
    print(res.to_string())
    assert list(res["run"]) == ["0.8b_relu", "0.8b_silu"]
    assert (res["n_points"] >= 10).all()
    # a prediction from three smaller scales is rough, but must stay in the right regime
    assert (res["mae"] < 0.05).all()
    assert ((res["coverage_point"] >= 0) & (res["coverage_point"] <= 1)).all()
    # the predicted limit is on the activation's side (ReLU ~7%, SiLU ~38%)
    relu, silu = res.set_index("run").loc["0.8b_relu"], res.set_index("run").loc["0.8b_silu"]
    assert relu["a0_low"] < relu["a0_fitted"] < relu["a0_high"] or abs(relu["a0_predicted"] - relu["a0_fitted"]) < 0.02
    assert silu["a0_predicted"] > 0.2 > relu["a0_predicted"]


def test_cross_scale_check_refuses_overlap(published_fits):
    from sparsitylaws.architecture import cross_scale_check

    fits, info, pts = published_fits
    with pytest.raises(FitInputError, match="both in train and test"):
        cross_scale_check(fits, info, pts, train=["0.1b_relu"], test=["0.1b_relu"])


@pytest.mark.parametrize("method", ["nearest", "step", "auto"])
def test_measured_curve_methods_reproduce_a_run_at_its_own_scale(method):
    """At a run's own N the nearest-scale methods return that run's curve: its law where no
    points are stored (an older section), else the monotone summary of its points."""
    from sparsitylaws.runfit.forms import get_form

    runs = _runs(xs=(8.0, 8.6), scatter=np.array([[0.1, -0.2, 0.01], [0.0, 0.3, -0.02]]))
    tr = fit_scale_trends(runs, n_draws=50)
    sec = assemble_section({"silu": {"scale": tr.to_dict(), "widthdepth": None,
                                     "ranges": {"tokens_per_param": [5.0, 500.0]}}},
                           n_draws=50, seed=0)
    for run in runs:
        tpp = np.array([8.0, 20.0, 200.0])
        D = tpp * run.n_params / 1e9
        out = predict_section(sec, "silu", run.n_params, 50.0, D, method=method)
        want = get_form("convergent_power").evaluate(D, run.theta)
        assert np.allclose(out["ratio"], want, rtol=1e-9), method
        # no scale step: the band is the run's own point noise only (it was 0 width before, which
        # promised a new run of that size the old run's curve exactly)
        sigma = sec["activations"]["silu"]["scale"].get("sigma") or 0.0
        width = out["ratio_high"] - out["ratio_low"]
        assert np.all(out["ratio_low"] <= out["ratio"] + 1e-12) and np.all(out["ratio"] <= out["ratio_high"] + 1e-12)
        assert np.all(width <= 8 * sigma + 1e-6) and (sigma == 0 or np.all(width > 0))
        assert out["method"] == ("nearest" if method == "auto" else method)  # 2 scales: baseline
    # stored points: the isotonic summary of them (a dip is averaged out, never followed)
    from sparsitylaws.architecture.curves import measured_curve

    y = np.array([0.30, 0.36, 0.34, 0.38, 0.39])
    tok = np.array([1.0, 2.0, 4.0, 8.0, 16.0]) * 1e9
    for run in runs:
        run.curve = measured_curve(run.name, tok * run.n_params / 1e9, y, run.n_params)
    tr = fit_scale_trends(runs, n_draws=50)
    sec = assemble_section({"silu": {"scale": tr.to_dict(), "widthdepth": None, "ranges": {}}},
                           n_draws=50, seed=0)
    out = predict_section(sec, "silu", runs[0].n_params, 50.0, tok / 1e9 * runs[0].n_params / 1e9,
                          method="nearest")
    assert np.allclose(out["ratio"], [0.30, 0.35, 0.35, 0.38, 0.39], atol=1e-3)


def test_trend_methods_with_two_scales_carry_no_trend():
    runs = _runs(xs=(8.0, 8.6), scatter=np.array([[0.1, -0.2, 0.01], [0.0, 0.3, -0.02]]))
    tr = fit_scale_trends(runs, n_draws=50)
    sec = assemble_section({"silu": {"scale": tr.to_dict(), "widthdepth": None, "ranges": {}}},
                           n_draws=50, seed=0)
    for method in ("excess", "coef"):
        a = predict_section(sec, "silu", 1e8, 50.0, 20.0, method=method)
        b = predict_section(sec, "silu", 1e10, 50.0, 20.0 * 100, method=method)
        assert a["a0"][0] == pytest.approx(b["a0"][0], rel=1e-12)


def test_excess_method_stays_on_the_laws_side_of_the_limit():
    sc = np.random.default_rng(4).normal(0, 0.05, (4, 3))
    tr = fit_scale_trends(_runs(scatter=sc, draws=True), n_draws=200)
    sec = assemble_section({"silu": {"scale": tr.to_dict(), "widthdepth": None, "ranges": {}}},
                           n_draws=200, seed=0)
    out = predict_section(sec, "silu", 10 ** np.linspace(7.5, 11, 20), 50.0, 30.0, method="excess")
    assert np.all(out["ratio"] < out["a0"])  # SiLU approaches its limit from below
    with pytest.raises(ValueError, match="method"):
        predict_section(sec, "silu", 1e9, 50.0, 30.0, method="magic")


def test_cross_scale_from_a_users_table(sparsinglaw_dir):
    from sparsitylaws.architecture import cross_scale_from_table
    from sparsitylaws.tables.ingest import read_sparsinglaw_dir

    table = read_sparsinglaw_dir(sparsinglaw_dir)
    res = cross_scale_from_table(table, train=["0.1b_silu", "0.4b_silu", "0.8b_silu"],
                                 test=["0.2b_silu"], methods=["excess", "curve"], n_boot=50)
    assert list(res["method"]) == ["excess", "curve"]
    assert (res["mae"] < 0.02).all()
    with pytest.raises(FitInputError, match="not in the table"):
        cross_scale_from_table(table, train=["0.1b_silu"], test=["9b_silu"], n_boot=10)


def test_final_limits_and_a_flat_sweep_give_no_breakpoint():
    """limit_from='final' on a sweep with no width/depth effect: no hinge is claimed."""
    rng = np.random.default_rng(11)
    fits, info = _sweep_runfits()
    rows = []
    for name, inf in info.items():
        level = 0.07 if name.startswith("sweep") else fits[name]["estimate"][3]
        for t in range(1, 7):
            rows.append({"run": name, "tokens": t * 1e9, "activation_ratio": level + 0.03 / t**2
                         + rng.normal(0, 5e-4), "width": inf["width"], "depth": inf["depth"],
                         "n_params": inf["n_params"], "metric": "ppl-p"})
    table = pd.DataFrame(rows)
    sec = build_architecture_section(fits, info, table=table, limit_from="final", n_boot=199, n_draws=50)
    wd = sec["activations"]["relu"]["widthdepth"]
    assert wd["model"] in ("line", "constant")
    assert not wd["fit"]["test"]["supported"]
    assert "final" in wd["source"]
    with pytest.raises(ValueError, match="limit_from"):
        build_architecture_section(fits, info, limit_from="last")


def test_interval_score_against_its_definition():
    from sparsitylaws.runfit.backtest import interval_score

    # inside: the width; below: width + 2/alpha * miss; above likewise (alpha = 0.1)
    assert interval_score(0.4, 0.6, 0.5, 0.9) == pytest.approx(0.2)
    assert interval_score(0.4, 0.6, 0.3, 0.9) == pytest.approx(0.2 + 20 * 0.1)
    assert interval_score(0.4, 0.6, 0.65, 0.9) == pytest.approx(0.2 + 20 * 0.05)


def test_leave_one_scale_out_naive_forecasts_are_what_they_say(published_fits):
    from sparsitylaws.architecture.crosscheck import leave_one_scale_out

    fits, info, pts = published_fits
    relu = [n for n in fits if n.endswith("_relu")]
    rows = leave_one_scale_out(fits, info, pts, runs=relu, methods=["curve"], n_draws=200)
    held = rows[rows["held_out"] == "0.4b_relu"]
    # largest_final: the 0.8B run's last measured value, at every budget
    lf = held[held["method"] == "largest_final"]
    assert np.allclose(lf["predicted"], pts["0.8b_relu"][1][-1])
    # nearest: the nearest scale's own law at the same tokens per parameter
    from sparsitylaws.runfit.forms import get_form

    near = held[held["method"] == "nearest"]
    n04 = info["0.4b_relu"]["n_params"]
    d04 = abs(np.log10(n04) - np.log10(info["0.2b_relu"]["n_params"]))
    d08 = abs(np.log10(n04) - np.log10(info["0.8b_relu"]["n_params"]))
    name = "0.2b_relu" if d04 <= d08 else "0.8b_relu"
    n_near = info[name]["n_params"]
    th = np.asarray(fits[name].estimate, float)
    want = get_form("logspace_power").evaluate(near["tokens"].to_numpy() / 1e9 * n_near / n04, th)
    assert np.allclose(near["predicted"], np.clip(want, 0, 1), rtol=1e-9)
    # errors are predicted - measured, coverage is inside the band
    assert np.allclose(rows["error"], rows["predicted"] - rows["measured"])
    assert (rows["covered"] == ((rows["low"] <= rows["measured"]) & (rows["measured"] <= rows["high"]))).all()


def test_a_version_1_section_still_loads_and_predicts():
    """Sections written before the measured curves were stored (version 1) load; the runs'
    laws stand in for their curves, so the nearest-scale methods give the nearest run's law."""
    from sparsitylaws.runfit.forms import get_form

    runs = _runs(xs=(8.0, 8.3, 8.6))
    tr = fit_scale_trends(runs, n_draws=30)
    sec = assemble_section({"silu": {"scale": tr.to_dict(), "widthdepth": None,
                                     "ranges": {"tokens_per_param": [5.0, 500.0]}}},
                           n_draws=30, seed=0)
    old = json.loads(json.dumps(sec))
    old["format_version"] = 1
    for e in old["activations"].values():
        e["scale"].pop("curves", None)
        for k in ("shrinkage", "shrunk_estimate"):
            e["scale"]["a0_slope"].pop(k, None)
    check_section(old)
    D = np.array([2.0, 20.0]) * runs[2].n_params / 1e9 * 10
    out = predict_section(old, "silu", runs[2].n_params * 1.5, 50.0, D, method="nearest")
    want = get_form("convergent_power").evaluate(D / 1.5, runs[2].theta)  # same tokens per parameter
    assert np.allclose(out["ratio"], want, rtol=1e-9)


def test_crosscheck_numbers_are_consistent_on_a_lab_series():
    """Issue 21: crosscheck showed 89 pp errors '100% in band' for coef/excess (a band stretched
    to the nearest run's curve and clamped to [0, 1], and a point band narrower than the curve
    band).  Now the point band holds the curve band, coverage follows from the bands shown, and
    the interval score (width + 20 x miss) exposes a band that says nothing."""
    from conftest import REPO_ROOT

    from sparsitylaws.architecture import cross_scale_from_table
    from sparsitylaws.tables.io import read_table
    from sparsitylaws.tables.rows import select_fit_rows

    t = select_fit_rows(read_table(REPO_ROOT / "measurements" / "lab-gpu.parquet")).rows
    res = cross_scale_from_table(t, train=["gpu-silu-w64-d2", "gpu-silu-w112-d3"],
                                 test=["gpu-silu-w192-d4"], methods=["coef", "excess", "auto"], n_boot=0)
    for _, r in res.iterrows():
        assert r["coverage_point"] >= r["coverage_curve"]
        assert r["interval_score"] >= r["mean_band_width"] - 1e-12
        if r["mae"] > 0.2:  # far off: either outside the band, or a band as wide as the miss
            assert r["coverage_point"] < 1 or r["mean_band_width"] > r["mae"]
    assert res.set_index("method").loc["auto", "method_used"] == "nearest"  # two scales: baseline
