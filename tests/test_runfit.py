"""RunFit: the bundle's fields, JSON round trip (bit-identical predictions), predict, limit."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from sparsitylaws.errors import FitInputError
from sparsitylaws.runfit.forms import get_form
from sparsitylaws.runfit.run import RunFit, fit_run

SILU = np.array([0.84, 0.208, 0.39])


def _run(n: int = 30, seed: int = 0, **kw) -> tuple[RunFit, np.ndarray]:
    rng = np.random.default_rng(seed)
    D = 90.0 * np.arange(1, n + 1) / n
    y = get_form("convergent_power").evaluate(D, SILU) + 8e-4 * rng.standard_normal(n)
    kw.setdefault("n_boot", 300)
    return fit_run(D * 1e9, y, run="sim", activation="silu", **kw), D


def _json_types_only(x: object) -> bool:
    if isinstance(x, dict):
        return all(isinstance(k, str) and _json_types_only(v) for k, v in x.items())
    if isinstance(x, list):
        return all(_json_types_only(v) for v in x)
    if isinstance(x, float):
        return math.isfinite(x)
    return x is None or isinstance(x, (str, int, bool))


def test_fields() -> None:
    rf, D = _run()
    k = 3
    assert rf.form == "convergent_power" and rf.formula == get_form("convergent_power").formula
    assert rf.param_names == ["alpha", "c", "A0"]
    assert len(rf.estimate) == len(rf.se) == len(rf.delta_low) == len(rf.boot_high) == k
    assert np.array(rf.covariance).shape == (k, k) and np.array(rf.cov_u).shape == (k, k)
    draws = np.array(rf.boot_draws)
    assert draws.shape == (300 - rf.n_boot_failed, k)
    assert rf.n_points + len(rf.dropped) == rf.n_total == D.size
    assert rf.tokens_b_min == pytest.approx(D[0]) and rf.tokens_b_max == pytest.approx(D[-1])
    # warm-up weights make the effective number of points fractional (n_effective <= n_points)
    assert rf.n_effective <= rf.n_points + 1e-12
    assert rf.rmse == pytest.approx(math.sqrt(rf.rss / rf.n_effective))
    assert rf.noise_sd == pytest.approx(math.sqrt(rf.rss / (rf.n_effective - k)))
    assert rf.dof == pytest.approx(rf.n_effective - k)
    assert rf.settings["seed"] == 0 and rf.settings["n_boot"] == 300 and rf.settings["level"] == 0.9
    assert rf.settings["loss"] == "linear"
    assert rf.multistart["n_starts"] >= 1 and rf.comparison and rf.backtest
    assert "auto" in rf.warmup_rule
    assert rf.interval_method.startswith("block residual bootstrap")
    for lo, est, hi in zip(rf.boot_low, rf.estimate, rf.boot_high, strict=True):
        assert lo <= hi and lo < est * 1.5


def test_to_dict_is_json_safe_and_roundtrips_exactly() -> None:
    rf, _ = _run()
    d = rf.to_dict()
    assert _json_types_only(d)
    text = json.dumps(d, allow_nan=False)
    back = RunFit.from_dict(json.loads(text))
    assert back.to_dict() == d
    assert back.estimate == rf.estimate and back.boot_draws == rf.boot_draws
    x = np.array([1e9, 45e9, 90e9, 180e9, 5e12])
    pd.testing.assert_frame_equal(rf.predict(x), back.predict(x), check_exact=True)
    assert rf.predict(x, level=0.8).equals(back.predict(x, level=0.8))
    assert rf.limit() == back.limit()


def test_roundtrip_without_bootstrap_uses_delta_band() -> None:
    rf, _ = _run(n_boot=0)
    ia0 = rf.param_names.index("A0")
    assert rf.boot_draws == [] and all(math.isnan(v) for i, v in enumerate(rf.boot_low) if i != ia0)
    # without a bootstrap the limit's interval is the profile likelihood's, widened in
    # quadrature by the spread over warm-up lengths when there is one
    spread = (rf.extra.get("warmup_average") or {}).get("limit_spread", 0.0)
    if spread == 0.0:
        assert (rf.boot_low[ia0], rf.boot_high[ia0]) == (rf.profile_low, rf.profile_high)
    assert rf.boot_low[ia0] <= rf.profile_low and rf.profile_high <= rf.boot_high[ia0]
    assert rf.boot_high[ia0] - rf.boot_low[ia0] <= rf.profile_high - rf.profile_low + 2 * 6.4 * spread
    back = RunFit.from_dict(json.loads(json.dumps(rf.to_dict(), allow_nan=False)))
    x = np.array([10e9, 300e9])
    p = rf.predict(x)
    assert p.equals(back.predict(x))
    assert np.all(p.conf_low < p.estimate) and np.all(p.estimate < p.conf_high)


def test_roundtrip_with_zero_residual_dof() -> None:
    """n == k: no noise estimate (None in JSON, NaN back) and still identical predictions."""
    rf, _ = _run(n=3, n_boot=50, compare=False, backtest=False)
    assert rf.dof == 0 and math.isnan(rf.noise_sd)
    assert any(w["code"] == "few_points" for w in rf.warnings)
    d = rf.to_dict()
    assert d["noise_sd"] is None
    back = RunFit.from_dict(json.loads(json.dumps(d, allow_nan=False)))
    assert rf.predict([1e11]).equals(back.predict([1e11]))


def test_predict_columns_bands_and_extrapolation() -> None:
    rf, D = _run()
    x = np.array([D[0] * 1e9 / 2, D[5] * 1e9, D[-1] * 1e9, 2 * D[-1] * 1e9])
    p = rf.predict(x)
    assert list(p.columns) == ["tokens", "tokens_b", "estimate", "conf_low", "conf_high", "pred_low",
                               "pred_high", "law_estimate", "law_low", "law_high", "forecast", "extrapolation"]
    # inside the fitted range the band is the law's own; past it, the calibrated forecast's
    inside = p.tokens_b <= rf.tokens_b_max
    assert not p.forecast[inside].any() and p.forecast.iloc[-1]
    assert np.array_equal(p.pred_low[inside], p.law_low[inside])
    np.testing.assert_allclose(p.estimate[inside], p.law_estimate[inside])
    model, curves = rf.forecast_model()
    fb = model.band(rf.forecast_state(), np.array([x[-1] / 1e9]), curves, exclude=rf.run)
    assert (p.pred_low.iloc[-1], p.estimate.iloc[-1], p.pred_high.iloc[-1]) == (
        fb["low"][0], fb["estimate"][0], fb["high"][0])
    assert p.extrapolation.tolist() == [True, False, False, True]
    assert [w["code"] for w in p.attrs["warnings"]][0] == "extrapolation"
    assert "2 of 4" in p.attrs["warnings"][0]["message"]
    assert rf.predict(x[1:3]).attrs["warnings"] == []
    assert np.allclose(p.tokens_b, x / 1e9)
    np.testing.assert_allclose(p.law_estimate, get_form(rf.form).evaluate(x / 1e9, np.array(rf.estimate)))
    assert np.all(p.pred_low <= p.conf_low) and np.all(p.conf_high <= p.pred_high)
    wide = rf.predict(x, level=0.99)
    assert np.all(wide.pred_high - wide.pred_low > p.pred_high - p.pred_low)
    with pytest.raises(FitInputError, match="'tokens'"):
        rf.predict([-1.0])
    with pytest.raises(FitInputError, match="'level'"):
        rf.predict([1e9], level=0.0)


def test_limit() -> None:
    rf, _ = _run()
    lim = rf.limit()
    assert lim["parameter"] == "A0" and lim["estimate"] == rf.estimate[2]
    assert lim["boot_low"] <= lim["estimate"] <= lim["boot_high"]
    assert lim["delta_low"] <= lim["estimate"] <= lim["delta_high"]
    lim50 = rf.limit(level=0.5)
    assert lim["boot_low"] <= lim50["boot_low"] <= lim50["boot_high"] <= lim["boot_high"]
    rng = np.random.default_rng(1)
    D = np.linspace(1, 90, 25)
    y = 0.3 + 0.01 * np.log1p(D) + 5e-4 * rng.standard_normal(25)
    assert fit_run(D * 1e9, y, run="l", activation="silu", form="log", n_boot=50, compare=False,
                   backtest=False).limit() is None


def test_from_dict_reports_missing_fields() -> None:
    rf, _ = _run(n_boot=10, compare=False, backtest=False)
    d = rf.to_dict()
    del d["estimate"]
    with pytest.raises(FitInputError, match="estimate"):
        RunFit.from_dict(d)


def test_unsorted_input_is_sorted() -> None:
    rng = np.random.default_rng(2)
    D = 90.0 * np.arange(1, 31) / 30
    y = get_form("convergent_power").evaluate(D, SILU) + 8e-4 * rng.standard_normal(30)
    perm = rng.permutation(30)
    a = fit_run(D * 1e9, y, run="s", activation="silu", n_boot=50, compare=False, backtest=False)
    b = fit_run(D[perm] * 1e9, y[perm], run="s", activation="silu", n_boot=50, compare=False,
                backtest=False)
    assert a.estimate == b.estimate


def test_weights_and_robust_loss_end_to_end() -> None:
    rng = np.random.default_rng(3)
    D = 90.0 * np.arange(1, 31) / 30
    se = np.full(30, 8e-4)
    se[-10:] = 4e-4
    y = get_form("convergent_power").evaluate(D, SILU) + se * rng.standard_normal(30)
    y[12] += 0.02  # an outlier
    rf = fit_run(D * 1e9, y, run="w", activation="silu", se=se, loss="soft_l1", n_boot=200)
    assert rf.settings["loss"] == "soft_l1" and rf.settings["f_scale"] > 0
    assert get_form(rf.form).in_bounds(rf.estimate)
    assert abs(rf.estimate[2] - SILU[2]) < 0.003
    back = RunFit.from_dict(json.loads(json.dumps(rf.to_dict(), allow_nan=False)))
    assert rf.predict([5e10, 4e11]).equals(back.predict([5e10, 4e11]))
