"""CETT curves and thresholds against brute-force loops (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sparsitylaws.measure.cett import (  # noqa: E402
    CettCurve,
    CurveSet,
    build_layer_stats,
    threshold_index_bisect,
)


def brute_cett(a: np.ndarray, w: np.ndarray, g: float) -> float:
    """Token-averaged CETT at threshold g, one token and one neuron at a time (float64)."""
    wn = np.linalg.norm(w, axis=0)
    total = 0.0
    for t in range(a.shape[0]):
        full = w @ a[t]
        tail = np.zeros(w.shape[0])
        for i in range(a.shape[1]):
            if abs(a[t, i]) * wn[i] < g:
                tail += a[t, i] * w[:, i]
        f = np.linalg.norm(full)
        total += np.linalg.norm(tail) / f if f > 0 else 0.0
    return total / a.shape[0]


def _layer(seed: int, t: int = 24, f: int = 40, d: int = 12, relu: bool = False):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(t, f, generator=g) * torch.rand(f, generator=g) * 3
    if relu:
        a = a.clamp_min(0)
    w = torch.randn(d, f, generator=g)
    return a, w


@pytest.mark.parametrize("relu", [False, True])
def test_full_curve_matches_brute_force(relu: bool) -> None:
    a, w = _layer(1, relu=relu)
    st = build_layer_stats(a, w, n_candidates=257)
    curve = CettCurve(st)
    curve.ensure(0, curve.K - 1)
    an, wn = a.double().numpy(), w.double().numpy()
    for k in range(0, curve.K, 16):
        g = float(st.grid[k])
        assert curve.values[k] == pytest.approx(brute_cett(an, wn, g), abs=2e-6)


@pytest.mark.parametrize("c", [0.01, 0.05, 0.1, 0.2, 0.4])
def test_lazy_threshold_meets_target(c: float) -> None:
    a, w = _layer(2, t=40, f=64, d=16)
    st = build_layer_stats(a, w, n_candidates=4096)
    curve = CettCurve(st)
    k = curve.threshold_index(c)
    an, wn = a.double().numpy(), w.double().numpy()
    grid = st.grid.double().numpy()
    assert brute_cett(an, wn, grid[k]) <= c + 1e-6
    if k + 1 < len(grid):
        assert brute_cett(an, wn, grid[k + 1]) > c - 1e-6
    # the largest candidate in the computed range, which extends past the answer
    assert k == curve.L + int(np.flatnonzero(curve.values[curve.L:curve.R + 1] <= c)[-1])
    assert min(curve.K - 1, k + 8) <= curve.R
    # the complete curve gives the global largest candidate with CETT <= c (checked against
    # a vectorised float64 evaluation at every candidate)
    full = CettCurve(build_layer_stats(a, w, n_candidates=4096))
    full.ensure(0, full.K - 1)
    kf = full.threshold_index(c)
    sizes = np.abs(an) * np.linalg.norm(wn, axis=0)
    fn = np.linalg.norm(an @ wn.T, axis=1)
    every = np.array([np.mean(np.linalg.norm((an * (sizes < g)) @ wn.T, axis=1) / fn) for g in grid])
    assert kf == int(np.flatnonzero(every <= c)[-1])
    np.testing.assert_allclose(full.values, every, atol=2e-6)
    # the paper's bisection finds a crossing too (12 steps over 4096 candidates)
    kb, evals = threshold_index_bisect(st, c)
    assert evals == 12
    assert every[kb] <= c + 1e-6 and (kb + 1 == len(grid) or every[kb + 1] > c - 1e-6)


def test_lazy_curve_agrees_with_full_on_known_range() -> None:
    a, w = _layer(3, t=32, f=48, d=10)
    st = build_layer_stats(a, w, n_candidates=2048)
    lazy = CettCurve(st)
    for c in (0.3, 0.05, 0.2, 0.1):  # moves the window up and down
        lazy.threshold_index(c)
    full = CettCurve(build_layer_stats(a, w, n_candidates=2048))
    full.ensure(0, full.K - 1)
    sl = slice(lazy.L, lazy.R + 1)
    np.testing.assert_allclose(lazy.values[sl], full.values[sl], atol=2e-6)


def test_curveset_thresholds_per_layer() -> None:
    stats = [build_layer_stats(*_layer(s, t=16, f=32, d=8), n_candidates=1024) for s in (4, 5)]
    cs = CurveSet.from_stats(stats)
    fast = cs.thresholds(0.15)
    ref = cs.thresholds_bisect(0.15)
    assert fast.shape == ref.shape == (2,)
    # both are crossings of the same exact curve: equal up to a few candidates' spacing
    spacing = np.array([float(s.grid[1] - s.grid[0]) for s in stats])
    assert np.all(np.abs(fast - ref) <= 40 * spacing)
    assert cs.bisect_evals == 2 * 10


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bucket_equals_searchsorted(seed: int) -> None:
    """The arithmetic bucketing on the even candidate grid is exactly searchsorted(right)."""
    from sparsitylaws.measure.cett import bucket

    gen = torch.Generator().manual_seed(seed)
    lo, hi = float(torch.rand(1, generator=gen)) * 1e-3, 0.5 + float(torch.rand(1, generator=gen))
    grid = torch.linspace(lo, hi, 65536, dtype=torch.float64).float()
    x = torch.cat([torch.rand(200_000, generator=gen) * (hi * 1.2) - 0.01 * hi, grid,
                   torch.nextafter(grid, torch.tensor(-1.0)), torch.nextafter(grid, torch.tensor(2.0))])
    x = x.view(-1, 64)
    assert torch.equal(bucket(grid, x), torch.searchsorted(grid, x.contiguous().view(-1), right=True).view_as(x))
    uneven = grid.square()  # not evenly spaced: falls back where the guess fails
    assert torch.equal(bucket(uneven, x), torch.searchsorted(uneven, x.view(-1), right=True).view_as(x))


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 4097])
def test_quantile_matches_numpy(n: int) -> None:
    from sparsitylaws.measure.cett import quantile

    gen = torch.Generator().manual_seed(n)
    x = torch.rand(n, generator=gen)
    for q in (0.0, 0.5, 0.99, 1.0):
        assert quantile(x, q) == pytest.approx(float(np.quantile(x.double().numpy(), q)), rel=1e-12, abs=1e-12)
    ties = torch.round(x * 3) / 3  # many equal entries
    for q in (0.3, 0.99):
        assert quantile(ties, q) == pytest.approx(float(np.quantile(ties.double().numpy(), q)), rel=1e-12, abs=1e-12)


def test_moves_by_pairs_and_pieces_equal_the_full_curve(monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows moved pair by pair (up and down, no matrix product) and a complete curve
    built in small pieces give the same values as one complete traversal."""
    import sparsitylaws.measure.cett as cett

    a, w = _layer(6, t=32, f=48, d=10)
    full = CettCurve(build_layer_stats(a, w, n_candidates=2048))
    full.ensure(0, full.K - 1)
    monkeypatch.setattr(cett, "MOVE_FRACTION", 1.0)  # every move is cheaper by pairs
    lazy = CettCurve(build_layer_stats(a, w, n_candidates=2048))
    for c in (0.3, 0.05, 0.2, 0.1, 0.02):
        k = lazy.threshold_index(c)
        assert k == int(np.flatnonzero(full.values[lazy.L:lazy.R + 1] <= c)[-1]) + lazy.L
    assert lazy.matmuls <= 1  # the first window only
    known = ~np.isnan(lazy.values)
    np.testing.assert_allclose(lazy.values[known], full.values[known], atol=2e-6)
    monkeypatch.setattr(cett, "MAX_PAIRS", 37)  # a complete curve in many small pieces
    pieces = CettCurve(build_layer_stats(a, w, n_candidates=2048))
    pieces.ensure(0, pieces.K - 1)
    np.testing.assert_allclose(pieces.values, full.values, atol=2e-6)


def test_coarse_pair_counts_and_guide() -> None:
    """The coarse summary counts pairs below candidates (against a direct count) and its
    orthogonal guide equals the exact CETT when neuron output vectors are orthogonal."""
    gen = torch.Generator().manual_seed(8)
    t, f = 30, 16
    a = torch.randn(t, f, generator=gen)
    w = torch.eye(f)[:, :f] * torch.rand(f, generator=gen).add(0.5)  # orthogonal columns
    st = build_layer_stats(a, w, n_candidates=513)
    curve = CettCurve(st)
    curve.ensure(0, curve.K - 1)
    sizes = st.sizes().double().numpy()
    grid = st.grid.double().numpy()
    for k in (0, 64, 200, 511):
        assert curve._pairs[k] == pytest.approx(float((sizes < grid[k]).sum()), abs=f)
    edges = np.arange(0, 513, 1)  # 512 coarse bins: one per candidate step
    np.testing.assert_allclose(curve._proxy[edges], curve.values[edges], atol=1e-5)
