"""PPL-p% root finders on synthetic monotone objectives with a known root."""

from __future__ import annotations

import math

import pytest

from sparsitylaws.measure.search import bisect_search, fast_search

TARGET = math.log(1.01)


def _power(a: float, b: float):
    return lambda cs: [a * c ** b for c in cs], (TARGET / a) ** (1 / b)


def _exp_like(k: float):
    # not a power law: log ratio = exp(k c) - 1
    return lambda cs: [math.expm1(k * c) for c in cs], math.log1p(TARGET) / k


def _steps(a: float, n: int = 65536):
    # a staircase, as thresholds on a discrete candidate grid produce
    def obj(cs):
        return [a * (math.floor(c * n) / n) ** 2 for c in cs]
    return obj, math.sqrt(TARGET / a)


@pytest.mark.parametrize("case", [_power(5, 2), _power(0.3, 1.2), _power(40, 3), _exp_like(0.2),
                                  _exp_like(3.0), _steps(7.0)])
def test_fast_and_bisect_find_the_same_root(case) -> None:
    obj, root = case
    fast = fast_search(obj, 1.0, xtol=1e-3, ftol=0.0)
    ref = bisect_search(obj, 1.0, xtol=1e-3)
    assert ref.passes == 10
    assert fast.passes < ref.passes
    assert abs(fast.cett - root) <= 1e-3 and abs(ref.cett - root) <= 1e-3
    assert fast.log_ratio <= TARGET and ref.log_ratio <= TARGET  # feasible ends


def test_ftol_stops_close_to_target() -> None:
    obj, root = _power(5, 2)
    res = fast_search(obj, 1.0, ftol=5e-4)
    assert abs(res.ppl_ratio - 1.01) <= 1.01 * 1e-3 and res.cett <= root


def test_batched_candidates_use_fewer_passes() -> None:
    obj, root = _exp_like(0.5)
    many = fast_search(obj, 1.0, xtol=1e-4, ftol=0.0, per_pass=4)
    assert abs(many.cett - root) <= 1e-4
    assert len(many.evaluations) > many.passes  # several values per batched pass


def test_whole_range_feasible() -> None:
    res = fast_search(lambda cs: [0.001 * c for c in cs], 1.0)
    assert res.cett == 1.0
