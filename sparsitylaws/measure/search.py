"""CETT-PPL-p%: the largest CETT c whose PPL ratio stays within (1 + p/100).

Both searches work on f(c) = log PPL ratio(c) - log(1 + p/100), evaluated by an
``objective(cs) -> [log ratio, ...]`` callback (several values may share one batched
forward).  f(0) = -log(1 + p/100) needs no forward: at c = 0 nothing is truncated.

* :func:`fast_search`: model-guided bracketing.  The log PPL ratio g(c) is modelled as
  A * c**beta (a straight line on a log-log scale): the first point is ``c_init``
  (0.05), then estimates r of the root come from a secant through the two evaluated points
  nearest the target (local beta; beta = 2 from one point), else from log-log
  interpolation between the bracket ends with Illinois weights (an end kept for two
  passes counts with a halved residual).  The pass does not evaluate r itself but a point
  that can *certify* the answer: r +- h (h = 0.49 xtol) on the side of the larger part of
  the bracket, or, once r lies within 1.5 h of a bracket end, the point 2 h inside that
  end, so that a correct model closes a bracket of width <= xtol (the guarantee the
  bisection gives) in that pass.  Not yet bracketed: r + h, at least 1.25x the feasible
  end.  Bisection when the model put the root on the wrong side twice in a row without
  the bracket halving.  Stops when the bracket is at most ``xtol`` wide or when the
  feasible end is within ``ftol`` of the target in log ratio.  With ``per_pass`` > 1 (opt-in)
  one batched forward evaluates both r - h and r + h plus evenly spaced interior points.
* :func:`bisect_search`: the paper's Algorithm 1, plain bisection on [0, 1] to ``xtol``.

Both return the feasible end of the final bracket (ratio <= target), whose measured PPL is
known; the paper prints the midpoint, which differs by less than ``xtol``/2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

Objective = Callable[[list[float]], list[float]]

#: search methods of ``measure --search``: ours, the paper's bisection on cached dense
#: statistics, and the paper's procedure as its authors' code runs it (a fresh dense pass
#: and per-layer threshold bisection at every step)
SEARCHES = ("fast", "bisect", "paper")


@dataclass
class SearchResult:
    """Outcome of a PPL-p% search."""

    cett: float
    log_ratio: float  # at cett
    method: str
    evaluations: list[tuple[float, float]] = field(default_factory=list)  # (c, log ratio)
    passes: int = 0  # batched forwards over the evaluation tokens
    bracket: tuple[float, float] = (0.0, 1.0)
    warning: str | None = None  # see :func:`bracket_warning`

    @property
    def ppl_ratio(self) -> float:
        return math.exp(self.log_ratio)


#: warn when the final bracket's two ends differ in log PPL ratio by more than this many
#: times the target log(1 + p/100), or when the answer's is below this share of it
JUMP_FACTOR = 2.0
LOW_SHARE = 0.5


def bracket_warning(res: SearchResult, p: float) -> str | None:
    """A one-line warning when the answer is far from its target: the PPL ratio jumps across
    the final bracket by much more than p, or the ratio at the answer is far below
    1 + p/100 (the ratio is jagged at this token count).  None when the answer is sound
    or when even c = 1 stays within the target."""
    target = math.log1p(p / 100.0)
    lo, hi = res.bracket
    g_lo = res.log_ratio if lo > 0 else 0.0
    ev = dict(res.evaluations)
    g_hi = ev.get(hi)
    if g_hi is None:  # the upper end was never evaluated: c = 1 untested or all feasible
        if lo >= 1.0 or g_lo >= LOW_SHARE * target:
            return None
        return (f"PPL ratio {math.exp(g_lo):.4f} at c={lo:.5f} is far below the target "
                f"{1 + p / 100:.4f}; use more evaluation tokens (--num-seqs, --seq-len)")
    jump = g_hi - g_lo > JUMP_FACTOR * target
    low = g_lo < LOW_SHARE * target
    if not (jump or low):
        return None
    why = ("the ratio jumps across the final bracket" if jump else
           "the ratio at the answer is far below the target")
    return (f"jagged PPL ratio: {math.exp(g_lo):.4f} at c={lo:.5f}, {math.exp(g_hi):.4f} at "
            f"c={hi:.5f} (target {1 + p / 100:.4f}; {why}); "
            "the answer is noisy: use more evaluation tokens (--num-seqs, --seq-len)")


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
    """Model-guided bracketing root finder for f(c) (see module doc)."""
    target = math.log1p(p / 100.0)
    f = _Tracker(objective, target)
    h = 0.49 * xtol  # half of a certifying bracket
    lo, g_lo = 0.0, 0.0  # feasible end and its log ratio (f(0) needs no forward)
    hi: float | None = None
    g_hi = math.inf
    stalls = 0
    predicted: bool | None = None  # whether the model expected cs[0] to be feasible
    kept = [0, 0]  # passes in a row that left lo (resp. hi) where it was (Illinois weights)
    cs = [min(max(c_init, xtol), 1.0) * 2.0 ** j for j in range(per_pass)]
    while True:
        cs = sorted({min(1.0, c) for c in cs})
        width = (1.0 if hi is None else hi) - lo
        old = (lo, hi)
        vals = [v + target for v in f(cs)]
        for c, g in zip(cs, vals, strict=True):  # lowest infeasible point first
            if g > target and (hi is None or c < hi):
                hi, g_hi = c, g
        for c, g in zip(cs, vals, strict=True):  # then the highest feasible point below it
            if g <= target and c > lo and (hi is None or c < hi):
                lo, g_lo = c, g
        if hi is None and lo >= 1.0:
            break
        if hi is not None and hi - lo <= xtol:
            break
        if lo > 0 and g_lo >= target - ftol:
            break
        if f.passes >= max_passes:
            break
        # a stall: the model put the root on the wrong side of cs[0] and the bracket did not halve
        wrong = predicted is not None and (vals[0] <= target) != predicted
        stalls = stalls + 1 if wrong and (1.0 if hi is None else hi) - lo > 0.5 * width else 0
        predicted = None
        kept = [kept[0] + 1 if lo == old[0] else 0, kept[1] + 1 if hi == old[1] else 0]
        weights = (0.5 ** max(0, kept[0] - 1), 0.5 ** max(0, kept[1] - 1))
        r = _estimate(f.evals, target, lo, g_lo, hi, g_hi, weights)
        if hi is None:  # not bracketed yet: aim just past the estimate, at least 25% further
            c = min(1.0, max((r if r is not None else 2.0 * lo) + h, 1.25 * lo))
            cs = [c * 2.0 ** j for j in range(per_pass)]
            continue
        w = hi - lo
        r = 0.5 * (lo + hi) if r is None else min(max(r, lo), hi)
        if stalls >= 2:  # safeguard: bisect when the model keeps missing and the bracket does not halve
            c, stalls = 0.5 * (lo + hi), 0
        elif hi - r <= 1.5 * h:  # root near hi: one feasible point 2h below hi certifies it
            c = hi - 2.0 * h
        elif r - lo <= 1.5 * h:  # root near lo: one infeasible point 2h above lo certifies it
            c = lo + 2.0 * h
        elif hi - r > r - lo:  # cut the larger side, just past the estimate
            c = r + h
        else:
            c = r - h
        predicted = c < r
        pair = 2.0 * r - c if abs(c - r) <= h * 1.0001 else None  # the estimate's other side
        cs = [c] + ([pair] if pair is not None else [])
        cs += [lo + w * (j + 1) / per_pass for j in range(per_pass)]
        cs = [min(max(x, lo + 0.01 * w), hi - 0.01 * w) for x in cs]
        cs = list(dict.fromkeys(cs))[:per_pass]
    g_best = g_lo if lo > 0 else 0.0
    res = SearchResult(lo, g_best, "fast", f.evals, f.passes, (lo, hi if hi is not None else 1.0))
    res.warning = bracket_warning(res, p)
    return res


def _estimate(evals: list[tuple[float, float]], target: float, lo: float, g_lo: float,
              hi: float | None, g_hi: float,
              weights: tuple[float, float] = (1.0, 1.0)) -> float | None:
    """Where the log ratio g(c) reaches ``target``, modelling g = A * c**beta (log-log scale).

    Bracketed with g_lo > 0: log-log interpolation between the bracket ends.  Only c = 0
    below: beta from the two lowest infeasible points (2 when only one exists).  Not
    bracketed: beta from the two highest feasible points.  g_lo <= 0: linear secant.
    None when no model applies.
    """
    if hi is not None and lo > 0:
        if g_lo > 0 and g_hi > g_lo:
            xl, xh, yl, yh, y = (math.log(v) for v in (lo, hi, g_lo, g_hi, target))
            # Illinois: an end kept for two passes or more counts with a halved residual
            fl, fh = (yl - y) * weights[0], (yh - y) * weights[1]
            x = xl - fl * (xh - xl) / (fh - fl)
            # a secant through the two points nearest the target (local slope), if inside
            near = sorted({(c, g) for c, g in evals if c > 0 and g > 0},
                          key=lambda e: abs(math.log(e[1]) - y))
            if weights == (1.0, 1.0) and len(near) >= 2:
                (c2, g2), (c1, g1) = near[0], near[1]
                if c1 != c2 and g1 != g2:
                    beta = math.log(g2 / g1) / math.log(c2 / c1)
                    if 0.2 < beta < 20 and xl < math.log(c2) + (y - math.log(g2)) / beta < xh:
                        x = math.log(c2) + (y - math.log(g2)) / beta
            return math.exp(x)
        return lo + (target - g_lo) * (hi - lo) / (g_hi - g_lo) if g_hi > g_lo else None
    if hi is not None:  # lo == 0, g(0) = 0
        pts = sorted((c, g) for c, g in evals if c >= hi and g > 0)
        c2, g2 = pts[0]
    else:
        pts = sorted(((c, g) for c, g in evals if c <= lo and g > 0), reverse=True)
        if not pts:
            return None
        c2, g2 = pts[0]
    beta = 2.0
    for c1, g1 in pts[1:]:
        if c1 != c2 and g1 != g2:
            b = math.log(g2 / g1) / math.log(c2 / c1)
            if 0.2 < b < 20:
                beta = b
            break
    return c2 * (target / g2) ** (1.0 / beta)


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
    res = SearchResult(best[0], best[1], "bisect", f.evals, f.passes, (lo, hi))
    res.warning = bracket_warning(res, p)
    return res
