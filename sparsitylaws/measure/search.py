"""CETT-PPL-p%: the largest CETT c whose PPL ratio stays within (1 + p/100).

Both searches work on f(c) = log PPL ratio(c) - log(1 + p/100), evaluated by an
``objective(cs) -> [log ratio, ...]`` callback (several values may share one batched
forward).  f(0) = -log(1 + p/100) needs no forward: at c = 0 nothing is truncated.

* :func:`fast_search`: bracket from a first guess (expanding by doubling), then bracketed
  secant steps on a log-log scale (the log PPL ratio grows like a power of c, so these
  converge in a few steps), falling back to the Illinois variant of regula falsi
  (superlinear, never leaves the bracket), with a bisection safeguard.  Stops when the bracket is narrower than ``xtol`` or when the feasible end is
  within ``ftol`` of the target in log ratio.  With ``per_pass`` > 1 (GPU) each step
  evaluates the Illinois point plus evenly spaced interior points in one batched forward.
* :func:`bisect_search`: the paper's Algorithm 1, plain bisection on [0, 1] to ``xtol``.

Both return the feasible end of the final bracket (ratio <= target), whose measured PPL is
known; the paper prints the midpoint, which differs by less than ``xtol``/2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

Objective = Callable[[list[float]], list[float]]


@dataclass
class SearchResult:
    """Outcome of a PPL-p% search."""

    cett: float
    log_ratio: float  # at cett
    method: str
    evaluations: list[tuple[float, float]] = field(default_factory=list)  # (c, log ratio)
    passes: int = 0  # batched forwards over the evaluation tokens
    bracket: tuple[float, float] = (0.0, 1.0)

    @property
    def ppl_ratio(self) -> float:
        return math.exp(self.log_ratio)


class _Tracker:
    def __init__(self, objective: Objective, target: float) -> None:
        self.objective = objective
        self.target = target
        self.evals: list[tuple[float, float]] = []
        self.passes = 0

    def __call__(self, cs: list[float]) -> list[float]:
        vals = self.objective(cs)
        self.passes += 1
        self.evals.extend(zip(cs, vals, strict=False))
        return [v - self.target for v in vals]


def fast_search(objective: Objective, p: float, xtol: float = 1e-3, ftol: float = 5e-4,
                c_init: float = 0.05, per_pass: int = 1, max_passes: int = 60) -> SearchResult:
    """Bracketed Illinois root finding of f(c) (see module doc)."""
    target = math.log1p(p / 100.0)
    f = _Tracker(objective, target)
    lo, f_lo = 0.0, -target
    hi, f_hi = None, None
    c = min(max(c_init, xtol), 1.0)
    # --- bracket ---------------------------------------------------------------------
    while hi is None:
        cs = [min(1.0, c * 2.0 ** j) for j in range(per_pass)]
        cs = sorted(set(cs))
        vals = f(cs)
        for ci, fi in zip(cs, vals, strict=False):
            if fi <= 0 and ci > lo:
                lo, f_lo = ci, fi
            elif fi > 0 and (hi is None or ci < hi):
                hi, f_hi = ci, fi
        if hi is None:
            if lo >= 1.0:
                return SearchResult(1.0, f_lo + target, "fast", f.evals, f.passes, (1.0, 1.0))
            c = min(1.0, max(cs) * 2.0)
        if f.passes >= max_passes:
            break
    assert hi is not None and f_hi is not None
    # --- Illinois --------------------------------------------------------------------
    side = 0
    stalls = 0
    true_f = dict(zip((e[0] for e in f.evals), (e[1] - target for e in f.evals), strict=False))
    true_f[0.0] = -target
    while hi - lo > xtol and true_f[lo] < -ftol and f.passes < max_passes:
        width = hi - lo
        c_rf = _power_step(f.evals, target, lo, hi)
        if c_rf is None:  # Illinois (regula falsi with halving) when no power-law step applies
            c_rf = hi - f_hi * (hi - lo) / (f_hi - f_lo) if f_hi != f_lo else 0.5 * (lo + hi)
        c_rf = min(max(c_rf, lo + 0.01 * width), hi - 0.01 * width)
        if stalls >= 2:  # safeguard: bisect when the bracket stops shrinking fast
            c_rf, stalls = 0.5 * (lo + hi), 0
        cs = [c_rf] + [lo + width * (j + 1) / per_pass for j in range(per_pass - 1)]
        cs = sorted(set(cs))
        vals = f(cs)
        true_f.update(zip(cs, vals, strict=False))
        new_lo, new_flo, new_hi, new_fhi = lo, f_lo, hi, f_hi
        for ci, fi in zip(cs, vals, strict=False):
            if fi <= 0 and ci > new_lo:
                new_lo, new_flo = ci, fi
            elif fi > 0 and ci < new_hi:
                new_hi, new_fhi = ci, fi
        moved_lo, moved_hi = new_lo != lo, new_hi != hi
        # Illinois: halve the stored value at the end that did not move twice in a row
        if moved_lo and not moved_hi:
            new_fhi = f_hi * 0.5 if side == -1 else f_hi
            side = -1
        elif moved_hi and not moved_lo:
            new_flo = f_lo * 0.5 if side == 1 else f_lo
            side = 1
        stalls = stalls + 1 if (new_hi - new_lo) > 0.5 * width else 0
        lo, f_lo, hi, f_hi = new_lo, new_flo, new_hi, new_fhi
    best = max((e for e in f.evals if e[1] <= target), key=lambda e: e[0], default=(0.0, 0.0))
    return SearchResult(best[0], best[1], "fast", f.evals, f.passes, (lo, hi))


def _power_step(evals: list[tuple[float, float]], target: float, lo: float,
                hi: float) -> float | None:
    """Secant step on log-log scale: log ratio modelled as A * c**beta near the root.

    Uses the two evaluated points with positive log ratio nearest the target (beta = 2
    assumed when only one exists); None when the step would leave the bracket.
    """
    pts = sorted({(c, g) for c, g in evals if c > 0 and g > 0}, key=lambda e: abs(math.log(e[1] / target)))
    if not pts:
        return None
    c2, g2 = pts[0]
    beta = 2.0
    for c1, g1 in pts[1:]:
        if c1 != c2 and g1 != g2:
            beta = math.log(g2 / g1) / math.log(c2 / c1)
            break
    if not (0.2 < beta < 20):
        return None
    c = c2 * (target / g2) ** (1.0 / beta)
    return c if lo < c < hi else None


def bisect_search(objective: Objective, p: float, xtol: float = 1e-3) -> SearchResult:
    """The paper's Algorithm 1: bisection on c in [0, 1] until the bracket is < xtol."""
    target = math.log1p(p / 100.0)
    f = _Tracker(objective, target)
    lo, hi = 0.0, 1.0
    best = (0.0, 0.0)
    while hi - lo > xtol:
        mid = 0.5 * (lo + hi)
        (fm,) = f([mid])
        if fm < 0:
            lo, best = mid, (mid, fm + target)
        else:
            hi = mid
    return SearchResult(best[0], best[1], "bisect", f.evals, f.passes, (lo, hi))
