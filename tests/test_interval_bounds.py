"""Interval ends at the parameters' bounds: failed bootstrap replicates reach a parameter's
bound (finite for A0, alpha, c; +-inf only for the free b), the ends survive JSON, print as
numbers or "inf"/"-inf" ("n/a" only when missing); and ``fit`` on the published runs emits
no RuntimeWarning."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
from cli_helpers import run_cli

import sparsitylaws.runfit.run as runfit_mod
from sparsitylaws.cli.fit import _fmt, render_text
from sparsitylaws.lawset.fileformat import LawSet
from sparsitylaws.runfit.forms import get_form
from sparsitylaws.runfit.run import RunFit, fit_run
from sparsitylaws.runfit.uncertainty import BootstrapResult, clip_to_bounds, percentile_intervals

RELU = get_form("logspace_power")  # alpha > 0, b free, c > 0, 0 < A0 < 1
TRUE = np.array([0.6, -3.0, 0.1, 0.07])


def _relu_data(n: int = 30, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = np.linspace(2.0, 120.0, n)
    return d * 1e9, RELU.evaluate(d, TRUE) + rng.normal(0, 2e-4, n)


def test_failed_replicates_reach_the_bound_of_their_side() -> None:
    lower = np.array([0.0, -np.inf, 0.0, 0.0])
    upper = np.array([np.inf, np.inf, np.inf, 1.0])
    draws = np.array([[0.5, -3.0, 0.1, 0.07], [0.6, -2.9, 0.2, 0.06], [0.1, -4.0, 9.0, 0.5]])
    bs = BootstrapResult(draws, 3, 1, 1, 0, failed=np.array([False, False, True]),
                         center=np.array([0.55, -3.0, 0.15, 0.065]), lower=lower, upper=upper)
    d = bs.interval_draws()
    # alpha ran low -> 0; b ran low -> -inf (free); c ran high -> inf; A0 ran high -> 1
    assert d[2].tolist() == [0.0, -np.inf, np.inf, 1.0]
    assert np.array_equal(d[:2], draws[:2])
    lo, hi = percentile_intervals(d, 0.99)
    assert lo.tolist()[:2] == [0.0, -np.inf] and hi.tolist()[2:] == [np.inf, 1.0]


def test_clip_to_bounds_keeps_nan_and_infinite_free_ends() -> None:
    lo, hi = clip_to_bounds(RELU, np.array([-np.inf, -np.inf, -1.0, np.nan]),
                            np.array([np.inf, np.inf, 2.0, 7.0]))
    assert lo[:3].tolist() == [0.0, -np.inf, 0.0] and math.isnan(lo[3])
    assert hi.tolist() == [np.inf, np.inf, 2.0, 1.0]


def _with_failures(monkeypatch, share: float = 0.2) -> None:
    """Make fit_run's bootstrap mark the replicates with the highest A0 and the lowest alpha
    (``share`` of them each) as failed: one side of each interval must reach the bound."""
    real = runfit_mod.bootstrap

    def fake(pf, n_boot, seed, **kw):
        bs = real(pf, n_boot, seed, **kw)
        m = bs.draws.shape[0]
        n_bad = int(share * m)
        hi_a0 = np.argsort(bs.draws[:, 3])[-n_bad:]
        lo_alpha = np.argsort(bs.draws[:, 0])[:n_bad]
        failed = np.zeros(m, bool)
        failed[hi_a0] = failed[lo_alpha] = True
        # the marked replicates ran away from the estimate on those sides
        bs.draws[hi_a0, 3] = np.maximum(bs.draws[hi_a0, 3], pf.theta[3])
        bs.draws[lo_alpha, 0] = np.minimum(bs.draws[lo_alpha, 0], pf.theta[0])
        bs.failed, bs.n_failed = failed, int(failed.sum())
        return bs

    monkeypatch.setattr(runfit_mod, "bootstrap", fake)


def test_fit_with_failures_ends_at_bounds_roundtrips_and_prints(monkeypatch) -> None:
    _with_failures(monkeypatch)
    t, y = _relu_data()
    rf = fit_run(t, y, run="bounded", activation="relu", n_boot=200, compare=False, backtest=False)
    names = rf.param_names
    ia, ib, ic, i0 = (names.index(p) for p in ("alpha", "b", "c", "A0"))
    assert rf.n_boot_failed >= 40
    # the failing sides end at the bound, not at +-inf / None
    assert rf.boot_low[ia] == 0.0 and rf.pct_low[ia] == 0.0
    assert rf.boot_high[i0] == 1.0 and rf.pct_high[i0] == 1.0
    lim = rf.limit()
    assert lim["boot_high"] == 1.0 and lim["pct_high"] == 1.0
    # every end is a number within the parameter's bounds and holds the estimate
    for j, p in enumerate(RELU.parameters):
        lo, est, hi = rf.boot_low[j], rf.estimate[j], rf.boot_high[j]
        assert not (math.isnan(lo) or math.isnan(hi))
        assert p.lower <= lo <= est <= hi <= p.upper
        assert math.isfinite(lo) or p.lower == -np.inf
        assert math.isfinite(hi) or p.upper == np.inf
    # JSON: strict (no Infinity), infinite ends as strings, reloaded bit for bit
    d = rf.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = RunFit.from_dict(json.loads(text))
    assert back.boot_low == rf.boot_low and back.boot_high == rf.boot_high
    assert back.pct_low == rf.pct_low and back.pct_high == rf.pct_high
    assert back.to_dict() == d and back.limit() == lim
    x = np.array([5e9, 1e11, 1e12])
    assert rf.predict(x).equals(back.predict(x))


def test_only_the_free_parameter_can_be_unbounded(monkeypatch) -> None:
    """b is free: a failure that ran it away stays -inf/inf, stored as "-inf"/"inf", printed so."""
    real = runfit_mod.bootstrap

    def fake(pf, n_boot, seed, **kw):
        bs = real(pf, n_boot, seed, **kw)
        m = bs.draws.shape[0]
        failed = np.zeros(m, bool)
        failed[np.argsort(bs.draws[:, 1])[: m // 4]] = True  # the lowest b: ran low
        bs.draws[failed, 1] = np.minimum(bs.draws[failed, 1], pf.theta[1])
        bs.failed, bs.n_failed = failed, int(failed.sum())
        return bs

    monkeypatch.setattr(runfit_mod, "bootstrap", fake)
    t, y = _relu_data(seed=2)
    rf = fit_run(t, y, run="free_b", activation="relu", n_boot=120, compare=False, backtest=False)
    ib = rf.param_names.index("b")
    assert rf.boot_low[ib] == -np.inf and rf.to_dict()["boot_low"][ib] == "-inf"
    for j, p in enumerate(RELU.parameters):  # infinite only where the bound is
        assert math.isfinite(rf.boot_low[j]) or p.lower == -np.inf
        assert math.isfinite(rf.boot_high[j]) or p.upper == np.inf
    ls = LawSet(name="t", runs={"free_b": rf})
    line = next(ln for ln in render_text(ls).splitlines() if ln.split()[:1] == ["b"])
    assert "[-inf, " in line and "n/a" not in line.split("delta")[0]


def test_fmt_prints_infinite_ends_and_na_only_when_missing() -> None:
    assert _fmt(float("inf")) == "inf" and _fmt(float("-inf")) == "-inf"
    assert _fmt(None) == "n/a" and _fmt(float("nan")) == "n/a"
    assert _fmt(0.0) == "0" and _fmt(0.12345) == "0.1235"


def test_older_files_with_null_ends_read_as_the_bound() -> None:
    """Before ends were stored as numbers/"inf", an unbounded side was null: it reaches the bound."""
    t, y = _relu_data(seed=3)
    rf = fit_run(t, y, run="old", activation="relu", n_boot=60, compare=False, backtest=False)
    d = rf.to_dict()
    d["boot_low"] = [None, None, d["boot_low"][2], None]
    d["boot_high"] = [None, d["boot_high"][1], None, None]
    back = RunFit.from_dict(d)
    assert back.boot_low[0] == 0.0 and back.boot_low[1] == -np.inf and back.boot_low[3] == 0.0
    assert back.boot_high[0] == np.inf and back.boot_high[2] == np.inf and back.boot_high[3] == 1.0
    # without draws, null stays missing (NaN)
    d0 = rf.to_dict()
    d0["boot_draws"], d0["boot_low"] = [], [None] * 4
    assert all(math.isnan(v) for v in RunFit.from_dict(d0).boot_low)


def test_fit_on_published_runs_emits_no_runtime_warning(tmp_path, sparsinglaw_dir) -> None:
    table = tmp_path / "pub.parquet"
    assert run_cli("ingest", "sparsinglaw-data", str(sparsinglaw_dir), "-o", str(table)).status == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = run_cli("fit", str(table), "--n-boot", "40", "-o", str(tmp_path / "laws.json"))
        p = run_cli("predict", "--laws", str(tmp_path / "laws.json"), "--width", "64", "--depth", "4")
    assert r.status == 0, r.stderr
    assert p.status == 0, p.stderr
    bad = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught if issubclass(w.category, RuntimeWarning)]
    assert bad == []
    assert "RuntimeWarning" not in r.stderr + p.stderr


def test_logspace_jacobian_is_exact_and_quiet_at_the_edge() -> None:
    """The analytic d(theta)/d(u) of logspace_power matches central differences inside, and at
    alpha -> 0 (c = exp(u2 - u0) beyond float range) is +-inf without a RuntimeWarning."""
    u = np.array([-0.7, -1.3, 0.4, -2.0])
    h = 1e-6
    num = np.stack([(RELU.from_unconstrained(u + h * e) - RELU.from_unconstrained(u - h * e)) / (2 * h)
                    for e in np.eye(4)], axis=1)
    np.testing.assert_allclose(RELU.dtheta_du(u), num, rtol=1e-7, atol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        edge = RELU.dtheta_du(np.array([-800.0, 0.0, 1.0, 0.0]))
    assert edge[2, 2] == np.inf and edge[2, 0] == -np.inf and edge[0, 0] == 0.0 and edge[3, 3] == 0.25


def test_multistart_distance_and_compose_helpers_are_quiet() -> None:
    from sparsitylaws.architecture.compose import _as_float32, _mix
    from sparsitylaws.runfit.pointfit import _param_distance

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = _param_distance(np.array([[np.inf, 1.0], [2.0, 3.0]]), np.array([np.inf, 2.0]))
        a32 = _as_float32(np.array([1e65, -1e300, 1.5]))
        a = np.array([[-np.inf, 1.0], [2.0, 3.0], [4.0, -np.inf]])
        b = np.array([[5.0, 6.0], [-np.inf, 7.0], [8.0, 9.0]])
        m = _mix(a, b, np.array([0.0, 0.5, 1.0]))
    assert d.tolist() == [[0.0, 1.0], [np.inf, 1.0]]
    big = float(np.finfo(np.float32).max)
    assert a32.dtype == np.float32 and a32.tolist() == [big, -big, 1.5]
    # weight 0 -> a, weight 1 -> b exactly; in between the convex mix (-inf stays -inf)
    assert m.tolist() == [[-np.inf, 1.0], [-np.inf, 5.0], [8.0, 9.0]]
