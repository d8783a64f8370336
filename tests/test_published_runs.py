"""The 8 published runs (../shared/reference/sparsinglaw-data): validity, RMSE vs the paper, backtests.

The data are read at run time through the ``sparsinglaw_dir`` fixture (skipped without ../shared);
nothing from them is stored in the repository.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import curve_fit

from sparsitylaws.paper import TABLE2
from sparsitylaws.runfit.backtest import backtest_summary
from sparsitylaws.runfit.forms import get_form
from sparsitylaws.runfit.run import RunFit, fit_run

RUNS = [f"{s}_{a}" for a in ("relu", "silu") for s in ("0.1b", "0.2b", "0.4b", "0.8b")]


def load(dir_: Path, run: str) -> tuple[np.ndarray, np.ndarray]:
    d = json.loads((dir_ / f"{run}.json").read_text())
    return np.asarray(d["token_passed"], float), np.asarray(d["activation_ratio"], float)


@pytest.fixture(scope="module")
def fits(sparsinglaw_dir: Path) -> dict[str, tuple[RunFit, np.ndarray, np.ndarray]]:
    out = {}
    for run in RUNS:
        t, y = load(sparsinglaw_dir, run)
        out[run] = (fit_run(t, y, run=run, activation=run.split("_")[1]), t, y)
    return out


@pytest.mark.parametrize("run", RUNS)
def test_fit_is_physical_and_beats_published_coefficients(fits, run: str) -> None:
    rf, t, y = fits[run]
    scale, act = run.split("_")
    form = get_form(rf.form)
    assert rf.form == ("logspace_power" if act == "relu" else "convergent_power")
    assert form.in_bounds(rf.estimate), rf.estimate
    a0 = rf.limit()
    assert 0.0 < a0["estimate"] < 1.0
    assert 0.0 <= a0["boot_low"] <= a0["estimate"] <= a0["boot_high"] <= 1.0
    assert 0.0 <= a0["delta_low"] <= a0["estimate"] <= a0["delta_high"] <= 1.0
    # RMSE on the kept points, each weighted by its warm-up inclusion weight, vs the paper's
    # Table 2 coefficients on the same points and weights
    keep = np.ones(t.size, bool)
    keep[[d["index"] for d in rf.dropped]] = False
    assert keep.sum() == rf.n_points
    w = np.asarray(rf.extra["warmup_average"]["inclusion"], float)[np.argsort(t, kind="stable")]
    w = w[keep]
    assert rf.n_effective == pytest.approx(w.sum(), rel=1e-6)
    D = t[keep] / 1e9
    published = np.array([TABLE2[(act, scale)][p] for p in form.param_names])
    rmse_pub = float(np.sqrt(np.sum(w * (form.evaluate(D, published) - y[keep]) ** 2) / w.sum()))
    rmse_ours = float(np.sqrt(np.sum(w * (form.evaluate(D, np.array(rf.estimate)) - y[keep]) ** 2) / w.sum()))
    assert rmse_ours == pytest.approx(rf.rmse, rel=1e-6)
    print(f"{run}: kept {rf.n_points}/{t.size} (effective {w.sum():.2f}), RMSE ours {rmse_ours:.3e} "
          f"vs published {rmse_pub:.3e}")
    # ours is a MAP fit (a weakly informative prior): where the data leave alpha free (0.1B
    # ReLU) the prior costs up to 0.1% of RMSE against the published coefficients
    assert rmse_ours <= rmse_pub * (1 + 1e-3)


@pytest.mark.parametrize("run", RUNS)
def test_backtest_70_percent_last_checkpoint_within_0_3_points(fits, run: str) -> None:
    """The forecast from the first 70% of each run (the packaged default model, this run's
    namesake left out of its calibration) lands within 0.3 points of the last checkpoint."""
    rf, t, y = fits[run]
    summ = {s["cutoff"]: s for s in backtest_summary(rf.backtest)}
    last = [r for r in rf.backtest if r["cutoff"] == 0.7 and r["index"] == t.size - 1]
    assert len(last) == 1 and last[0]["measured"] == y[-1]
    print(f"{run}: 70% backtest last-point error {last[0]['error'] * 100:+.3f} pp, "
          f"coverage {summ[0.7]['coverage']:.2f}")
    assert abs(last[0]["error"]) <= 0.003


@pytest.mark.parametrize("run", ["0.4b_relu", "0.1b_silu"])
def test_json_roundtrip_predicts_bit_identically(fits, run: str) -> None:
    rf, t, _ = fits[run]
    back = RunFit.from_dict(json.loads(json.dumps(rf.to_dict(), allow_nan=False)))
    x = np.array([t[0], t[-1], 2 * t[-1], 1e13, 123456789.0])
    a, b = rf.predict(x), back.predict(x)
    assert a.equals(b)
    assert rf.predict(x, level=0.5).equals(back.predict(x, level=0.5))


def test_relu_0_4b_cannot_go_unphysical(sparsinglaw_dir: Path) -> None:
    """Without warm-up dropping, unconstrained least squares drifts to A0 < 0; ours stays >= 0."""
    t, y = load(sparsinglaw_dir, "0.4b_relu")
    D = t / 1e9

    def relu(d, alpha, b, c, a0):
        return np.exp(-c * d**alpha + b) + a0

    with np.errstate(over="ignore"):
        naive, _ = curve_fit(relu, D, y, p0=[1.0, 0.0, 1.0, 0.5], maxfev=100000)
    print("naive least squares on all 0.4B ReLU points:", naive)
    assert naive[3] < 0  # the trap the issue describes (A0 = -0.58)
    rf = fit_run(t, y, run="0.4b_relu", activation="relu", drop_first=0, n_boot=200, compare=False,
                 backtest=False)
    assert rf.n_points == t.size
    assert 0.0 <= rf.estimate[3] < 1.0
    assert np.all(np.array(rf.boot_draws)[:, 3] >= 0.0)
    if rf.estimate[3] < 1e-6:  # pinned at the bound: it must say so
        assert any(w["code"] == "param_at_bound" and w["parameter"] == "A0" for w in rf.warnings)


#: Which published runs are flagged weakly identified, and in what (docs/fitting.md): for the
#: three smaller ReLU runs the bootstrap and the AR-aware profile intervals of A0 differ (the
#: limit is less certain than either alone says).  With the weakly informative prior alpha no
#: longer runs to 0.  The SiLU runs and 0.8B ReLU are well identified.
EXPECTED_WEAK = {"0.1b_relu": {"A0"}, "0.2b_relu": {"A0"}, "0.4b_relu": {"A0"}}


@pytest.mark.parametrize("run", RUNS)
def test_weakly_identified_runs_are_the_expected_ones(fits, run: str) -> None:
    rf, _, _ = fits[run]
    weak = {w["parameter"] for w in rf.warnings if w["code"] == "weakly_identified"}
    print(run, sorted(map(str, weak)))
    assert EXPECTED_WEAK.get(run, set()) <= weak
    if run not in EXPECTED_WEAK:
        assert not weak


def test_weakly_identified_0_4b_relu_limit_reaches_zero(sparsinglaw_dir: Path) -> None:
    """0.4B ReLU without its points below 10% of its last token count: the data cannot pin A0
    down (profile likelihood ~[0.0001, 0.0685]); the reported interval's lower end must say so,
    the fit must warn, and the full run keeps an interval no wider than its profile likelihood's."""
    t, y = load(sparsinglaw_dir, "0.4b_relu")
    weak = fit_run(t, y, run="0.4b_relu", activation="relu", min_tokens=0.1 * t.max(), compare=False,
                   backtest=False)
    lim = weak.limit()
    print(f"0.4B ReLU >= 10%: A0 {lim['estimate']:.4f} reported [{lim['boot_low']:.4f}, {lim['boot_high']:.4f}] "
          f"bootstrap [{lim['pct_low']:.4f}, {lim['pct_high']:.4f}] profile [{lim['profile_low']:.4f}, "
          f"{lim['profile_high']:.4f}]")
    assert lim["boot_low"] < 0.01 and lim["profile_low"] < 0.01
    assert lim["boot_low"] <= lim["estimate"] <= lim["boot_high"]
    assert any(w["code"] == "weakly_identified" and w["parameter"] == "A0" for w in weak.warnings)
    full_rf = fit_run(t, y, run="0.4b_relu", activation="relu", compare=False, backtest=False)
    full = full_rf.limit()
    print(f"0.4B ReLU full: reported [{full['boot_low']:.4f}, {full['boot_high']:.4f}] profile "
          f"[{full['profile_low']:.4f}, {full['profile_high']:.4f}]")
    # the reported interval is the profile likelihood's, widened in quadrature by the spread
    # over warm-up lengths (nothing else): no wider than the two added linearly
    spread = full_rf.extra["warmup_average"]["limit_spread"]
    assert full["boot_high"] - full["boot_low"] <= (
        full["profile_high"] - full["profile_low"] + 2 * 2.5 * spread) * (1 + 1e-9)
    assert full["boot_low"] > 0.05


def test_no_bootstrap_replicate_is_dropped_and_intervals_hold_estimates(sparsinglaw_dir: Path) -> None:
    """0.2B ReLU without its early points: many replicates need refits; none is dropped and the
    point estimate lies inside its own interval (it did not before: 456 of 1000 were dropped)."""
    t, y = load(sparsinglaw_dir, "0.2b_relu")
    rf = fit_run(t, y, run="0.2b_relu", activation="relu", min_tokens=0.1 * t.max(), compare=False,
                 backtest=False)
    assert len(rf.boot_draws) == rf.n_boot and rf.n_boot_failed == 0
    for lo, est, hi in zip(rf.boot_low, rf.estimate, rf.boot_high, strict=True):
        assert lo <= est <= hi
