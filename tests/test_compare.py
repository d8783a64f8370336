"""Paired comparison of two forecasts over runs, against scipy's own computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest, ttest_rel

from sparsitylaws.runfit.compare import paired_comparison


def test_mean_difference_and_interval_are_scipys_paired_t() -> None:
    rng = np.random.default_rng(3)
    a = rng.gamma(2.0, 0.5, size=7)
    b = a + rng.normal(0.1, 0.2, size=7)
    runs = [f"r{i}" for i in range(7)]
    c = paired_comparison(dict(zip(runs, a, strict=True)), dict(zip(runs, b, strict=True)), level=0.9)
    ci = ttest_rel(a, b).confidence_interval(confidence_level=0.9)
    assert c.n_runs == 7
    assert c.mean_difference == pytest.approx(float(np.mean(a - b)), abs=1e-12)
    assert (c.low, c.high) == (pytest.approx(ci.low, abs=1e-10), pytest.approx(ci.high, abs=1e-10))
    assert c.wins == int(np.sum(a < b))


def test_win_rate_interval_is_the_exact_binomial_one() -> None:
    a = {"x": 1.0, "y": 1.0, "z": 3.0, "w": 0.5, "v": 2.0}
    b = {"x": 2.0, "y": 1.0, "z": 2.0, "w": 1.0, "v": 2.5, "only_b": 9.0}
    c = paired_comparison(a, b, level=0.9)
    assert (c.n_runs, c.wins, c.ties) == (5, 3, 1)  # y ties; only_b is not shared
    ci = binomtest(3, 4).proportion_ci(confidence_level=0.9, method="exact")
    assert (c.win_rate_low, c.win_rate_high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_verdicts() -> None:
    runs = [f"r{i}" for i in range(5)]
    base = dict.fromkeys(runs, 1.0)
    assert paired_comparison({r: 0.5 + 0.01 * i for i, r in enumerate(runs)}, base).verdict == "better"
    assert paired_comparison({r: 1.5 + 0.01 * i for i, r in enumerate(runs)}, base).verdict == "worse"
    mixed = {r: 1.0 + (0.3 if i % 2 else -0.3) for i, r in enumerate(runs)}
    assert paired_comparison(mixed, base).verdict == "undecided"
    one = paired_comparison({"r0": 0.1}, {"r0": 5.0})
    assert one.verdict == "one run" and math.isnan(one.low)  # one run certifies nothing
    assert paired_comparison({}, {}).verdict == "no runs"


def test_float_noise_ties_and_certifies_nothing() -> None:
    """A combination with all its weight on the last value scores as the last value up to
    rounding: differences of 1e-15 in every run are ties, not a zero-width interval that
    excludes 0 ("worse", as the docs' table once said)."""
    runs = [f"r{i}" for i in range(6)]
    b = {r: 0.02 + 0.001 * i for i, r in enumerate(runs)}
    a = {r: v + 1e-15 for r, v in b.items()}
    c = paired_comparison(a, b)
    assert (c.ties, c.wins, c.mean_difference, c.low, c.high) == (6, 0, 0.0, 0.0, 0.0)
    assert c.verdict == "tied" and "tied in all 6 runs" in c.describe()
    a["r0"] = b["r0"] - 1e-3  # one real win: no longer tied
    assert paired_comparison(a, b).verdict == "undecided"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 50), st.floats(0, 50)), min_size=2, max_size=20))
def test_swapping_the_forecasts_mirrors_the_comparison(pairs: list[tuple[float, float]]) -> None:
    a = {f"r{i}": p[0] for i, p in enumerate(pairs)}
    b = {f"r{i}": p[1] for i, p in enumerate(pairs)}
    ab, ba = paired_comparison(a, b), paired_comparison(b, a)
    assert ab.mean_difference == pytest.approx(-ba.mean_difference, abs=1e-9)
    assert ab.low == pytest.approx(-ba.high, abs=1e-9) and ab.high == pytest.approx(-ba.low, abs=1e-9)
    assert ab.wins + ba.wins + ab.ties == ab.n_runs
    assert ab.low <= ab.mean_difference <= ab.high
    assert {ab.verdict, ba.verdict} in ({"better", "worse"}, {"undecided"}, {"tied"})


def test_the_paired_verdicts_in_words() -> None:
    from sparsitylaws.runfit.compare import paired_text

    def per_run(vals: list[float]) -> dict:
        return {"per_run": {f"r{i}": {"interval_score": v} for i, v in enumerate(vals)}}

    s = {"combined": per_run([0.010, 0.012, 0.011]), "naive_last": per_run([0.020, 0.022, 0.021]),
         "naive_line": per_run([0.010, 0.020, 0.000]), "naive_nearest": per_run([0.005, 0.006, 0.007])}
    line = paired_text(s)
    assert line.startswith("last value -1.00 [-1.00, -1.00] better, won 3/3")
    assert "local line +0.10 [" in line and "undecided, won 1/3" in line
    # the nearest run too. By hand: differences +0.5, +0.6, +0.4 pp, mean 0.5, sd 0.1,
    # t(0.95, 2 dof) = 2.920 -> half-width 2.920 * 0.1 / sqrt(3) = 0.169
    assert line.endswith("nearest run +0.50 [+0.33, +0.67] worse, won 0/3")
    one = {k: {"per_run": {"r0": v["per_run"]["r0"]}} for k, v in s.items()}
    assert "one run: nothing certified" in paired_text(one)
