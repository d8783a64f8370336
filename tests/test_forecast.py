"""Forecast calibration: conformal quantiles, leave-one-run-out, law-set storage, the published check.

The published-runs checks read ../shared/reference/sparsinglaw-data at run time (skipped
without it); nothing from them is stored in the repository.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from sparsitylaws.lawset.build import fit_table
from sparsitylaws.lawset.fileformat import LawSet
from sparsitylaws.runfit.backtest import calibrate_backtest, interval_score
from sparsitylaws.runfit.forecast import (
    ForecastCalibration,
    conformal_quantile,
    default_calibration,
    forecast_scale,
    horizon,
    score,
)
from sparsitylaws.tables.ingest import read_sparsinglaw_dir


def _rows(run: str, scores: list[float]) -> list[dict]:
    return [{"run": run, "cutoff": 0.5, "score": s, "is_last": i == len(scores) - 1}
            for i, s in enumerate(scores)]


def test_conformal_quantile_is_the_ceil_rank_order_statistic() -> None:
    rng = np.random.default_rng(0)
    for n in (5, 19, 40):
        s = rng.exponential(size=n)
        for level in (0.5, 0.8, 0.9):
            k = math.ceil((n + 1) * level)
            expect = np.sort(s)[k - 1] if k <= n else math.inf
            assert conformal_quantile(s, level) == expect
    assert conformal_quantile(np.array([1.0, 2.0]), 0.9) == math.inf  # too few to say


def test_conformal_band_covers_exchangeable_scores() -> None:
    """Split-conformal guarantee: a new exchangeable score is <= q with probability >= level."""
    rng = np.random.default_rng(1)
    hits = []
    for _ in range(2000):
        s = rng.standard_normal(30) ** 2
        hits.append(rng.standard_normal() ** 2 <= conformal_quantile(s, 0.9))
    assert 0.89 <= np.mean(hits) <= 0.95


def test_score_and_halfwidth_are_inverse() -> None:
    """A point exactly on the widened band's edge has score q."""
    half_law, f, q = 0.3, 0.5, 1.7
    cal = ForecastCalibration.from_scores(_rows("a", [q] * 20) + _rows("b", [q] * 20) + _rows("c", [q] * 20),
                                          source="t")
    hw = float(cal.halfwidth(half_law, f, 0.9))
    assert hw == pytest.approx(math.hypot(half_law, q * f))
    assert float(score(hw, half_law, f)) == pytest.approx(q)
    assert float(score(0.1, half_law, f)) == 0.0  # inside the law's band
    # no forecast term inside the fitted range
    assert float(cal.halfwidth(half_law, forecast_scale(horizon(5.0, 10.0), 1e-3, 0.2), 0.9)) == half_law


def test_leave_one_run_out_ignores_the_runs_own_scores() -> None:
    rows = _rows("a", list(np.linspace(0, 1, 20))) + _rows("b", list(np.linspace(0, 2, 20))) \
        + _rows("c", list(np.linspace(0, 3, 20))) + _rows("d", list(np.linspace(0, 4, 20)))
    cal = ForecastCalibration.from_scores(rows, source="t")
    wild = [r if r["run"] != "a" else {**r, "score": 1e6} for r in rows]
    cal2 = ForecastCalibration.from_scores(wild, source="t")
    assert cal.quantile(0.9, exclude="a") == cal2.quantile(0.9, exclude="a")
    assert cal2.quantile(0.9, exclude="b") > cal.quantile(0.9, exclude="b")
    pool = np.concatenate([np.linspace(0, x, 20) for x in (2, 3, 4)])
    assert cal.quantile(0.9, exclude="a") == conformal_quantile(pool, 0.9)
    assert cal.usable(exclude="a") and not ForecastCalibration.from_scores(rows[:40], source="t").usable("a")
    back = ForecastCalibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back.quantile(0.8, exclude="c") == cal.quantile(0.8, exclude="c")
    assert back.n_forecasts == 4 and back.n_points == 80


def test_interval_score_matches_gneiting_raftery() -> None:
    # width + 2/alpha * miss; alpha = 0.1
    assert float(interval_score(1.0, 2.0, 1.5, 0.9)) == pytest.approx(1.0)
    assert float(interval_score(1.0, 2.0, 0.5, 0.9)) == pytest.approx(1.0 + 20 * 0.5)
    assert float(interval_score(1.0, 2.0, 2.25, 0.9)) == pytest.approx(1.0 + 20 * 0.25)


def test_packaged_default_is_documented_and_usable() -> None:
    cal = default_calibration()
    assert "published" in cal.source and cal.cuts == [0.3, 0.5, 0.7]
    assert cal.n_forecasts == 24 and len(cal.runs) == 8
    q = cal.quantile(0.9)
    assert 0 < q < math.inf and cal.quantile(0.95) >= q


def test_packaged_default_is_reproducible(sparsinglaw_dir) -> None:
    """``python -m sparsitylaws.runfit.calibration DIR`` rebuilds exactly the packaged scores."""
    from sparsitylaws.runfit.calibration import build_default

    rebuilt = build_default(str(sparsinglaw_dir), runs=["0.8b_silu"])
    assert rebuilt.scores["0.8b_silu"] == default_calibration().scores["0.8b_silu"]


# --------------------------------------------------------------------------- published runs


@pytest.fixture(scope="module")
def published(sparsinglaw_dir) -> LawSet:
    return fit_table(read_sparsinglaw_dir(sparsinglaw_dir), n_boot=300, architecture=False)


def test_leave_one_run_out_coverage_on_published_runs(published: LawSet) -> None:
    """24 forecasts of the last checkpoint (8 runs x 30/50/70% cuts) and every later point:
    the 90% bands, calibrated on the other 7 runs only, cover 85-97%."""
    rows = [r for rf in published.runs.values() for r in rf.backtest]
    last = [r for r in rows if r["is_last"]]
    assert len(last) == 24 and {r["cutoff"] for r in rows} == {0.3, 0.5, 0.7}
    cov_last = np.mean([r["covered"] for r in last])
    cov_all = np.mean([r["covered"] for r in rows])
    width = np.median([r["pred_high"] - r["pred_low"] for r in last])
    law_last = np.mean([r["law_covered"] for r in last])
    print(f"LORO: last {cov_last:.3f}, all {cov_all:.3f} ({len(rows)} points), median last width "
          f"{100 * width:.3f} pp; law band alone: last {law_last:.3f}")
    assert 0.85 <= cov_last <= 0.97
    assert 0.85 <= cov_all <= 0.97
    # every band holds its forecast, and the calibrated band contains the law's own band
    for r in rows:
        assert r["pred_low"] <= r["law_low"] <= r["predicted"] <= r["law_high"] <= r["pred_high"]
    prov = published.provenance["forecast_calibration"]
    assert prov["n_forecasts"] == 24 and prov["cuts"] == [0.3, 0.5, 0.7] and len(prov["calibrated_runs"]) == 8


def test_each_run_is_calibrated_without_itself(published: LawSet) -> None:
    for name, rf in published.runs.items():
        assert rf.forecast["exclude"] == name
        cal, exclude = rf.calibration()
        assert exclude == name and name in cal.runs
        pool = np.concatenate([v for r, v in cal.scores.items() if r != name])
        assert cal.quantile(0.9, exclude=name) == conformal_quantile(pool, 0.9)
        assert not any(w["code"] == "forecast_default" for w in rf.warnings)


def test_leaving_out_the_largest_scale(published: LawSet) -> None:
    """Calibrated on the 0.1B-0.4B runs only, the bands of the 0.8B runs (never seen) still cover."""
    small = [{**r, "run": n} for n, rf in published.runs.items() if not n.startswith("0.8b")
             for r in rf.backtest]
    cal = ForecastCalibration.from_scores(small, source="small runs")
    big = [r for n, rf in published.runs.items() if n.startswith("0.8b")
           for r in calibrate_backtest(rf.backtest, cal)]
    cov = np.mean([r["covered"] for r in big])
    last = [r["covered"] for r in big if r["is_last"]]
    print(f"0.8B runs from 0.1-0.4B calibration: all {cov:.3f} ({len(big)}), last {sum(last)}/{len(last)}")
    assert cov >= 0.8 and sum(last) >= 4


def test_predictions_include_the_forecast_term_and_reload_bit_identically(published: LawSet, tmp_path) -> None:
    tokens = [3e10, 1e11, 4e11, 1e12]
    p = published.predict(tokens=tokens)
    beyond = p["forecast_scale"] > 0
    assert beyond.any()
    wide = p.loc[beyond, "pred_high"] - p.loc[beyond, "pred_low"]
    law = p.loc[beyond, "law_high"] - p.loc[beyond, "law_low"]
    assert (wide >= law).all() and (wide > law * 1.01).mean() > 0.5
    published.save(tmp_path / "laws.json")
    back = LawSet.load(tmp_path / "laws.json")
    assert back.predict(tokens=tokens).equals(p)
    assert back.predict(tokens=tokens, level=0.8).equals(published.predict(tokens=tokens, level=0.8))


def test_version_1_law_sets_still_load_and_predict(published: LawSet) -> None:
    d = copy.deepcopy(published.to_dict())
    d["format_version"] = 1
    for raw in d["runs"].values():
        for key in ("naive", "forecast", "pct_low", "pct_high", "profile_low", "profile_high",
                    "n_boot_stalled", "n_boot_refit"):
            raw.pop(key)
        raw["version"] = 1
    old = LawSet.from_dict(json.loads(json.dumps(d)), source="v1")
    p = old.predict(run="0.4b_relu", tokens=[1e12])
    assert p["forecast_scale"].iloc[0] > 0  # sigma * horizon with the packaged default
    rf = old.runs["0.4b_relu"]
    cal, exclude = rf.calibration()
    assert cal is default_calibration() and exclude == "0.4b_relu"
    q = cal.horizon_quantile(0.9, exclude)  # may be 0: the other runs' law bands alone cover
    half = float(p["law_high"].iloc[0] - p["activation_ratio"].iloc[0])
    assert p["pred_high"].iloc[0] - p["activation_ratio"].iloc[0] == pytest.approx(
        math.hypot(half, q * p["forecast_scale"].iloc[0]), rel=1e-9)


def test_analog_forecast_follows_other_runs_in_tokens_per_parameter() -> None:
    """Median over analogs of law(D_last) + (A_j(D N_j/N) - A_j(D_last N_j/N)), where covered."""
    from sparsitylaws.runfit.forecast import analog_forecast
    from sparsitylaws.runfit.forms import get_form

    form = get_form("convergent_power")
    specs = [{"run": f"r{i}", "activation": "silu", "form": "convergent_power", "estimate": th,
              "tokens_b_min": 1.0, "tokens_b_max": tmax, "n_params": n}
             for i, (th, tmax, n) in enumerate([([0.5, 0.1, 0.40], 100.0, 2e8), ([0.8, 0.3, 0.38], 300.0, 4e8),
                                                ([0.6, 0.2, 0.39], 40.0, 1e8)])]
    n_self, last_b, at_last = 3e8, 30.0, 0.37
    d = np.array([20.0, 60.0, 150.0, 1000.0])
    got = analog_forecast(at_last, last_b, d, n_self, specs)
    for k, dk in enumerate(d):
        vals = []
        for a in specs:
            s = a["n_params"] / n_self
            if dk > last_b and dk * s <= a["tokens_b_max"] and last_b * s >= a["tokens_b_min"]:
                th = np.array(a["estimate"])
                vals.append(at_last + form.evaluate([dk * s], th)[0] - form.evaluate([last_b * s], th)[0])
        if vals:
            assert got[k] == pytest.approx(np.median(vals), rel=1e-12)
        else:
            assert np.isnan(got[k])
    assert np.isnan(got[0]) and np.isfinite(got[1]) and np.isnan(got[3])


def test_bands_hold_the_analog_forecast(published: LawSet) -> None:
    """A young run (0.4B ReLU cut at 30%) refitted inside a law set: its forecast band holds the
    median analog forecast wherever other runs cover the same tokens per parameter."""
    rows = [r for r in published.runs["0.4b_relu"].backtest if r.get("analog") is not None
            and np.isfinite(r["analog"])]
    assert rows
    for r in rows:
        assert r["pred_low"] <= r["analog"] <= r["pred_high"]
    rf = published.runs["0.4b_relu"]
    assert rf.forecast["n_params"] == 452_000_000
    assert {a["run"] for a in rf.forecast["analogs"]} == {"0.1b_relu", "0.2b_relu", "0.8b_relu"}


def test_horizon_only_quantile_matches_its_scores() -> None:
    """For callers without naive forecasts: scores with f = sigma * h, pooled without the run."""
    rows = []
    for run, err in (("a", 0.004), ("b", 0.002), ("c", 0.003), ("d", 0.001)):
        for h in (0.1, 0.5, 1.0):
            rows.append({"run": run, "cutoff": 0.5, "score": 0.0, "is_last": h == 1.0, "predicted": 0.5,
                         "measured": 0.5 - err * h, "law_low": 0.499, "law_high": 0.501, "sigma": 1e-3,
                         "horizon": h})
    cal = ForecastCalibration.from_scores(rows, source="t")
    expect = [np.sqrt(max((err * h) ** 2 - 0.001**2, 0)) / (1e-3 * h)
              for run, err in (("b", 0.002), ("c", 0.003), ("d", 0.001)) for h in (0.1, 0.5, 1.0)]
    assert cal.horizon_quantile(0.5, exclude="a") == conformal_quantile(np.array(expect), 0.5)
    assert default_calibration().horizon_quantile(0.9) > default_calibration().quantile(0.9)


def test_forecasts_beyond_the_calibrated_horizons_warn(published: LawSet) -> None:
    rf = published.runs["0.8b_silu"]
    cal, _ = rf.calibration()
    assert 0 < cal.max_horizon == max(r["horizon"] for f in published.runs.values() for r in f.backtest)
    near = rf.predict([rf.tokens_b_max * 1e9 * 1.5])
    far = rf.predict([rf.tokens_b_max * 1e9 * math.exp(cal.max_horizon) * 1.1])
    assert "forecast_horizon" not in [w["code"] for w in near.attrs["warnings"]]
    assert "forecast_horizon" in [w["code"] for w in far.attrs["warnings"]]
