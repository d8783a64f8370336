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


def _brute_root(obj, n: int = 100_000) -> float:
    """sup{c on a fine grid: log ratio(c) <= target} by scanning (monotone objectives)."""
    cs = [i / n for i in range(n + 1)]
    vals = obj(cs)
    return max(c for c, v in zip(cs, vals, strict=True) if v <= TARGET)


def _family():
    import random

    rnd = random.Random(7)
    cases = []
    for _ in range(12):  # power laws A c^beta with the root anywhere in (0.005, 0.5)
        beta, root = rnd.uniform(1.0, 3.5), math.exp(rnd.uniform(math.log(0.005), math.log(0.5)))
        a = TARGET / root ** beta
        cases.append(lambda cs, a=a, beta=beta: [a * c ** beta for c in cs])
    for k in (5.0, 10.0, 20.0):  # curved on a log-log scale
        cases.append(lambda cs, k=k: [0.2 * c ** 1.2 * math.exp(k * c) for c in cs])
    cases.append(lambda cs: [7.0 * (math.floor(c * 4096) / 4096) ** 2 for c in cs])  # staircase
    return cases


@pytest.mark.parametrize("i", range(16))
def test_certified_bracket_against_brute_force(i: int) -> None:
    """The fast search ends on a bracket [feasible, infeasible] of width <= xtol holding the
    brute-force root, in clearly fewer passes than bisection."""
    obj = _family()[i]
    root = _brute_root(obj)
    res = fast_search(obj, 1.0, xtol=1e-3, ftol=0.0)
    lo, hi = res.bracket
    assert hi - lo <= 1e-3
    assert lo - 1e-5 <= root <= hi
    assert res.cett == lo and res.log_ratio <= TARGET
    f = dict(res.evaluations)
    assert f[hi] > TARGET
    assert res.passes <= 6


def test_noisy_objective_stays_certified() -> None:
    """Multiplicative noise (like PPL steps of a real model): still a certified bracket,
    and on average about half the passes of bisection."""
    import random

    passes = []
    for seed in range(10):
        def obj(cs, seed=seed):
            return [200 * c ** 2.8 * math.exp(0.2 * (random.Random(int(c * 1e6) + seed).random() - 0.5))
                    for c in cs]
        res = fast_search(obj, 1.0, xtol=1e-3, ftol=0.0)
        lo, hi = res.bracket
        f = dict(res.evaluations)
        assert hi - lo <= 1e-3 and f[hi] > TARGET and res.log_ratio <= TARGET
        passes.append(res.passes)
    assert sum(passes) / len(passes) <= 6


def test_two_per_pass_evaluates_both_sides_of_the_estimate() -> None:
    obj, root = _power(40, 3)
    one = fast_search(obj, 1.0, xtol=1e-3, ftol=0.0)
    two = fast_search(obj, 1.0, xtol=1e-3, ftol=0.0, per_pass=2)
    assert two.bracket[1] - two.bracket[0] <= 1e-3 and two.bracket[0] <= root <= two.bracket[1]
    assert two.passes <= one.passes

