"""Pieces the forecast tests share: a forecast origin, simulated backtests, a band's validity, a
run's warning, a benchmark module."""

from __future__ import annotations

import numpy as np

from sparsitylaws.runfit.backtest import backtest
from sparsitylaws.runfit.calibration import RunBacktest
from sparsitylaws.runfit.forecast import CutState, RunCurve


def cut_state(act: str = "relu", n: float | None = 1e8, d_cut: float = 10.0, run: str = "r") -> CutState:
    """A forecast origin with a law of the activation's form (ReLU falling, SiLU rising)."""
    theta = [0.5, -3.0, 0.3, 0.07] if act == "relu" else [0.8, 0.2, 0.39]
    form = "logspace_power" if act == "relu" else "convergent_power"
    return CutState(run, act, n, d_cut, 1e-3, form, theta, 0.12, -0.01 if act == "relu" else 0.01, 0.095)


def sim_backtests(shift_big: float = 0.0, n_runs: int = 6, seed: int = 0, points: int = 24) -> list[RunBacktest]:
    """ReLU-like runs of ``n_runs`` sizes (1e8 * 2^i) on the same tokens-per-parameter grid
    (``points`` from 5 to 200), the same shape in ln tau (the truth is a straight line in ln tau
    beyond a knee, falling ``shift_big`` per size step faster), noise 0.02 pp; backtested."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_runs):
        n = 1e8 * 2**i
        tau = np.exp(np.linspace(np.log(5), np.log(200), points))
        d = tau * n / 1e9
        y = 0.07 + 0.05 * tau**-0.6 - (0.002 + shift_big * i) * np.log(tau / 5) + 2e-4 * rng.standard_normal(tau.size)
        rows = backtest(d, y, "logspace_power", run=f"r{i}", activation="relu", n_params=n)
        out.append(RunBacktest(f"r{i}", "relu", n, rows, RunCurve.from_points(f"r{i}", "relu", n, d, y)))
    return out


def assert_monotone_valid_band(b: dict, activation: str) -> None:
    """Estimate and both band ends move only in the law's direction (ReLU down, SiLU up), lie in
    [0, 1], and the band holds the estimate."""
    s = -1 if activation == "relu" else 1
    for k in ("estimate", "low", "high"):
        assert np.all(s * np.diff(b[k]) >= -1e-12), k
        assert np.all((b[k] >= 0) & (b[k] <= 1)), k
    assert np.all(b["low"] <= b["estimate"] + 1e-15) and np.all(b["estimate"] <= b["high"] + 1e-15)


def default_warning(lawset, run: str) -> str:
    """The one ``forecast_default`` warning of ``run`` in ``lawset``."""
    (w,) = [w["message"] for w in lawset.runs[run].warnings if w["code"] == "forecast_default"]
    return w


def benchmark(name: str):
    """A module of benchmarks/ (they import each other by bare name, so the folder goes on the path)."""
    import importlib
    import sys
    from pathlib import Path

    folder = str(Path(__file__).resolve().parents[1] / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)
