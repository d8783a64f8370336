"""Predictions are valid by construction (issue 10, item 1), checked as properties.

For random configurations, budgets from 1e6 to 1e15 tokens, every method, the default law
set, a fitted one with a width/depth sweep (synthetic runs) and the law set `fit` builds
from the published runs (when ../shared is there): A(D) and its interval inside [0, 1], ReLU curves non-increasing and
SiLU curves non-decreasing in D (the point, both interval ends, and every single draw
behind them), A0 and its interval inside [0, 1], the point inside its interval; where the
form leaves [0, 1] the row is flagged and says so.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsitylaws.architecture import METHODS, build_architecture_section, predict_section
from sparsitylaws.architecture.compose import _compile, _predict_chunk
from sparsitylaws.lawset.fileformat import LawSet, load_lawset
from sparsitylaws.planning import predict

BUDGETS = np.geomspace(1e6, 1e15, 37)


def _fitted_lawset() -> LawSet:
    """A law set fitted by build_architecture_section: a ReLU sweep (hinge) plus scale runs,
    SiLU scale runs, all with bootstrap draws (synthetic run fits, no data files needed)."""
    rng = np.random.default_rng(5)
    fits, info = {}, {}
    sweep = {24: (768, 32), 32: (768, 24), 48: (768, 16), 64: (1024, 16), 96: (1152, 12),
             128: (1024, 8), 192: (1536, 8), 256: (1536, 6), 384: (2304, 6)}
    for r, (w, d) in sweep.items():
        a0 = 0.08 + 2.8e-4 * (min(r, 114) - 114) + rng.normal(0, 0.001)
        th = np.array([0.5, -3.0, 0.3, a0])
        fits[f"sweep_{r}"] = {"form": "logspace_power", "estimate": th.tolist(), "noise_sd": 0.001,
                              "boot_draws": (th * np.exp(rng.normal(0, 0.05, (200, 4)))).tolist(),
                              "tokens_b_min": 1.0, "tokens_b_max": 40.0}
        info[f"sweep_{r}"] = {"activation": "relu", "width": w, "depth": d, "n_params": 1.1e8}
    for i, n in enumerate((2.4e8, 4.5e8, 7.6e8, 1.2e9)):
        th = np.array([0.4 + 0.25 * i, -3.0 - 0.2 * i, 0.3 / (i + 1) ** 2, 0.065 + 0.002 * i])
        fits[f"relu_{i}"] = {"form": "logspace_power", "estimate": th.tolist(), "noise_sd": 0.001,
                             "boot_draws": (th * np.exp(rng.normal(0, 0.1, (200, 4)))).tolist(),
                             "tokens_b_min": 2.0, "tokens_b_max": 50.0 * (i + 1)}
        info[f"relu_{i}"] = {"activation": "relu", "width": 1024 + 256 * i, "depth": 20 + 4 * i,
                             "n_params": n}
        th = np.array([0.5 + 0.15 * i, 0.1 + 0.15 * i, 0.41 - 0.01 * i])
        fits[f"silu_{i}"] = {"form": "convergent_power", "estimate": th.tolist(), "noise_sd": 0.002,
                             "boot_draws": (th * np.exp(rng.normal(0, 0.1, (200, 3)))).tolist(),
                             "tokens_b_min": 2.0, "tokens_b_max": 50.0 * (i + 1)}
        info[f"silu_{i}"] = {"activation": "silu", "width": 1024 + 256 * i, "depth": 20 + 4 * i,
                             "n_params": n}
    sec = build_architecture_section(fits, info, n_boot=99, n_draws=120, seed=3)
    return LawSet(name="fitted (synthetic runs)", architecture=sec, source="test")


def _published_lawset() -> LawSet | None:
    """``sparsitylaws fit`` on the 8 published runs (few bootstrap replicates), when ../shared
    is there: a real fitted law set, bootstrap draws and all."""
    from conftest import SHARED_DATA

    if not (SHARED_DATA.is_dir() and any(SHARED_DATA.glob("*.json"))):
        return None
    from sparsitylaws.lawset.build import fit_table
    from sparsitylaws.tables.ingest import read_sparsinglaw_dir

    return fit_table(read_sparsinglaw_dir(SHARED_DATA), n_boot=30, backtest=False)


LAWSETS = {"default": load_lawset(None), "fitted": _fitted_lawset()}
if (_pub := _published_lawset()) is not None:
    LAWSETS["published"] = _pub

configs = st.tuples(
    st.integers(32, 65536),  # width
    st.integers(1, 1024),  # depth
    st.sampled_from(sorted(METHODS)),
    st.sampled_from(sorted(LAWSETS)),
    st.floats(6.0, 15.0),  # log10 of one more budget
)


def _monotone(y: np.ndarray, sign: float) -> bool:
    """ReLU (sign +1) non-increasing, SiLU (sign -1) non-decreasing along axis 0."""
    d = np.diff(y, axis=0)
    tol = 1e-9 + 1e-6 * np.abs(y[:-1])
    return bool(np.all(d <= tol)) if sign > 0 else bool(np.all(d >= -tol))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_every_prediction_is_a_valid_curve(cfg):
    width, depth, method, which, extra = cfg
    ls = LAWSETS[which]
    tokens = np.sort(np.append(BUDGETS, 10.0**extra))
    df = predict(width, depth, tokens=tokens, method=method, lawset=ls)
    for act, g in df.groupby("activation"):
        sign = 1.0 if act == "relu" else -1.0
        for col in ("a0", "a0_low", "a0_high", "activation_ratio", "ratio_low", "ratio_high"):
            v = g[col].to_numpy()
            assert np.all((v >= 0) & (v <= 1)), (col, v)
        assert np.all(g["a0_low"] <= g["a0"]) and np.all(g["a0"] <= g["a0_high"])
        assert np.all(g["ratio_low"] <= g["activation_ratio"])
        assert np.all(g["activation_ratio"] <= g["ratio_high"])
        assert g["a0"].nunique() == 1  # the limit does not depend on the budget
        for col in ("activation_ratio", "ratio_low", "ratio_high"):
            assert _monotone(g[col].to_numpy(), sign), (act, method, col, g[col].to_numpy())
        # ReLU approaches its limit from above, SiLU from below
        assert np.all(sign * (g["activation_ratio"] - g["a0"]) >= -1e-12)
        # a clamped row says so
        clamped = g["clamped"].to_numpy()
        assert all(("clamped to" in w) == c for w, c in zip(g["warning"], clamped, strict=True))


@settings(max_examples=40, deadline=None)
@given(configs)
def test_every_draw_behind_an_interval_is_monotone(cfg):
    """Each single draw of A(D) and A0 (before the form's clamp) is a valid curve."""
    width, depth, method, which, _ = cfg
    sec = LAWSETS[which].architecture
    n_params = 11.5 * width * width * depth
    D = BUDGETS / 1e9
    for act in sec["activations"]:
        c = _compile(sec["activations"][act], int(sec.get("seed", 0)))
        part = _predict_chunk(c, method, np.full(D.size, n_params), np.full(D.size, width / depth),
                              D, 5, 100)
        draws = part["ratio_draws"]  # (budgets, draws)
        assert np.all(np.isfinite(draws))
        assert _monotone(draws, c.sign), (act, method)
        assert _monotone(np.clip(draws, 0, 1), c.sign)


def test_silu_early_budget_is_clamped_with_a_warning_everywhere(tmp_path):
    from cli_helpers import run_cli

    df = predict(4096, 48, activation="silu", tokens=1e9)
    assert bool(df["clamped"].iloc[0]) and "below 0%" in df["warning"].iloc[0]
    r = run_cli("predict", "--width", "4096", "--depth", "48", "--tokens", "1e9")
    assert r.status == 0 and "(clamped)" in r.stdout and "below 0% at this budget" in r.stdout
    import json

    r = run_cli("predict", "--width", "4096", "--depth", "48", "--tokens", "1e9", "--json")
    data = json.loads(r.stdout)
    silu = next(p for p in data["predictions"] if p["activation"] == "silu")
    assert silu["clamped"] and any("below 0%" in w for w in silu["warnings"])
    assert data["caveats"] and all(isinstance(c, str) for c in data["caveats"])
    grid = tmp_path / "g.csv"
    grid.write_text("width,depth,tokens\n4096,48,1e9\n4096,48,\n")
    r = run_cli("predict", "--grid", str(grid))
    assert r.status == 0, r.stderr
    assert "grid row 1 (silu)" in r.stdout and "below 0% at this budget" in r.stdout
    assert "grid row 2 (silu)" not in r.stdout or "below 0%" not in r.stdout.split("grid row 2 (silu)")[1]
    # blank tokens = the default budget (190 per non-embedding parameter)
    r = run_cli("predict", "--grid", str(grid), "--json")
    rows = json.loads(r.stdout)["predictions"]
    assert [p["grid_row"] for p in rows] == [1, 1, 2, 2]
    assert rows[2]["tokens"] == pytest.approx(190 * rows[2]["n_params"])


@pytest.mark.parametrize("method", METHODS)
def test_must_show_budgets_4096x48(method):
    """The issue's table: T = 1e8..1e13 at width 4096, depth 48, every method."""
    T = [1e8, 1e9, 1e10, 1e11, 1e12, 1e13]
    df = predict(4096, 48, tokens=T, method=method)
    for act, g in df.groupby("activation"):
        y = g["activation_ratio"].to_numpy()
        assert np.all(np.diff(y) <= 1e-12) if act == "relu" else np.all(np.diff(y) >= -1e-12)
        # outside the fitted budgets for this scale (8.8e10 to 1.76e12) a warning says so
        for t, w in zip(g["tokens"], g["warning"], strict=True):
            outside = t < 8.79e10 or t > 1.77e12
            assert (("below the smallest fitted budget" in w) or ("above the largest fitted budget" in w)) \
                == outside, (t, w)


def test_point_inside_interval_for_a_far_configuration():
    df = predict(2 * 10**6, 1)  # width/depth 2e6: far outside everything (4.6e13 params, below MAX_PARAMS)
    for _, r in df.iterrows():
        assert 0 <= r["a0_low"] <= r["a0"] <= r["a0_high"] <= 1
    out = predict_section(LAWSETS["default"].architecture, "silu", 1e8, 50.0, 1e-3, method="coef")
    assert out["ratio_low"][0] <= out["ratio"][0] <= out["ratio_high"][0]


@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_forecast_term_widens_beyond_the_fitted_budget_only(monkeypatch, mu: float):
    """Fitted law set: beyond the largest fitted budget for this scale the band grows, on the
    side the curve moves to, by the forecast model's largest error quantile times the part of
    S(h) = sqrt(sigma^2 + (kappa h)^2 + (mu m)^2) beyond sigma (sparsitylaws.runfit.forecast),
    h = ln(D / D_fitted), m the law's move from D_fitted and mu the model's share of it (the
    scale its quantiles were calibrated in); the model is the law set's own, or the packaged
    default when it has none (mu 0; a model with mu 1/2 put in its place here)."""
    import dataclasses

    import sparsitylaws.planning.configs as configs
    from sparsitylaws.runfit.forecast import error_scale

    ls = LAWSETS["fitted"]
    model = dataclasses.replace(configs._calibration(ls), move=mu)
    monkeypatch.setattr(configs, "_calibration", lambda _ls: model)
    sec = ls.architecture
    w, d = 1280, 24
    n = predict(w, d, tokens=1e9, lawset=ls, activation="relu")["n_params"].iloc[0]
    rg = sec["activations"]["relu"]["ranges"]["tokens_per_param"]
    t_hi = rg[1] * n
    T = np.array([0.5 * t_hi, 4 * t_hi])
    df = predict(w, d, tokens=T, lawset=ls, activation="relu")
    raw = predict_section(sec, "relu", n, w / d, T / 1e9)
    sigma = sec["activations"]["relu"]["scale"]["sigma"]
    q = max(abs(v) for v in model.quantiles(float("nan"), None, 0.9, "relu"))  # its activation's weights
    move = abs(raw["ratio"][1] - predict_section(sec, "relu", n, w / d, np.array([t_hi]) / 1e9)["ratio"][0])
    assert move > 0
    # sqrt(sigma^2 + (kappa h)^2 + (mu m)^2) worked here, h = ln 4
    s = np.sqrt(sigma**2 + (model.kappa_for("relu") * np.log(4.0)) ** 2 + (mu * move) ** 2)
    assert s == pytest.approx(error_scale(sigma, np.log(4.0), model.kappa_for("relu"), "additive", move, mu), rel=1e-12)
    extra = q * (s - sigma)
    assert extra > 0
    assert df["ratio_low"].iloc[0] == pytest.approx(raw["ratio_low"][0])  # inside: unchanged
    assert df["ratio_low"].iloc[1] == pytest.approx(max(0.0, raw["ratio_low"][1] - extra))
    assert np.allclose(df["ratio_high"], raw["ratio_high"])  # ReLU only falls: the top is unchanged


def test_must_show_through_json_in_a_fresh_process_without_torch():
    """`predict --width 4096 --depth 48 --tokens T --json` for T = 1e8..1e13, in a fresh
    interpreter: monotone, inside [0, 1], warnings outside the fitted budgets, no torch."""
    import json
    import subprocess
    import sys

    code = (
        "import contextlib, io, json, sys\n"
        "from sparsitylaws.cli import main\n"
        "out = []\n"
        "for t in ('1e8', '1e9', '1e10', '1e11', '1e12', '1e13'):\n"
        "    buf = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buf):\n"
        "        try:\n"
        "            main(['predict', '--width', '4096', '--depth', '48', '--tokens', t, '--json'])\n"
        "        except SystemExit as e:\n"
        "            assert not e.code, e.code\n"
        "    out.append(json.loads(buf.getvalue()))\n"
        "print(json.dumps({'runs': out, 'heavy': [m for m in ('torch', 'transformers') if m in sys.modules]}))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["heavy"] == []
    for act, sign in (("relu", 1.0), ("silu", -1.0)):
        rows = [next(r for r in run["predictions"] if r["activation"] == act) for run in res["runs"]]
        y = np.array([[r["activation_ratio"], r["ratio_low"], r["ratio_high"]] for r in rows])
        assert np.all((y >= 0) & (y <= 1))
        assert _monotone(y, sign)
        for r in rows:
            outside = r["tokens"] < 8.79e10 or r["tokens"] > 1.77e12
            assert any("fitted budget for this scale" in w for w in r["warnings"]) == outside


@pytest.mark.parametrize("which", ["default", "fitted"])
def test_widthdepth_law_moves_the_odds_of_a0_by_the_hinges_own_ratio(which):
    """A0(N, r1) / A0(N, r2) in odds equals the hinge's own odds ratio h(r1) / h(r2), at any
    N: the width/depth law enters A0 as a log-odds shift (independent hinge arithmetic)."""
    sec = LAWSETS[which].architecture
    wd = sec["activations"]["relu"]["widthdepth"]
    p = wd["point"]

    def h(r):
        return p["plateau"] + p["slope"] * (min(r, p["breakpoint"]) - p["breakpoint"])

    def odds(x):
        return x / (1 - x)

    r1, r2 = 40.0, 90.0
    for n in (1e8, 3e9, 1e11):
        out = predict_section(sec, "relu", n, [r1, r2], 100.0)
        got = odds(out["a0"][0]) / odds(out["a0"][1])
        assert got == pytest.approx(odds(h(r1)) / odds(h(r2)), rel=1e-9)
