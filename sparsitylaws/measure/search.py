"""CETT-PPL-p%: the last grid point before the PPL ratio first exceeds 1 + p/100, certified.

**The defined point.**  On the grid c_k = k * xtol (k = 0 .. N, N = 1/xtol, c_N = 1) let
f_k = log PPL ratio(c_k) - log(1 + p/100).  The answer is c_{h-1}, where h is the smallest
k with f_k > 0: every grid point up to the answer keeps the PPL within 1 + p/100 and the
next one does not.  The paper defines the point as the CETT at which the PPL ratio reaches
1 + p/100 and finds it by bisection, which assumes the ratio grows with c; where it does,
both are the same crossing (to within xtol).  Where it does not (a few thousand evaluation
tokens make it jagged), bisection returns *some* crossing, which depends on its path; the
first crossing does not.

**The certificate.**  Proving that no grid point below the answer exceeds the target would
take h passes, so every search ends with the same certificate: a *clearing point* z < h
whose log ratio is at least M below the target, every grid point between z and h measured
and within the target (at least ``MIN_WALK`` of them), and h measured above it.  The rule
behind it: a point that far below the target has no crossing beneath it.
M = max(``margin`` x target, R), capped at the target, where R is the largest drop of the
(clipped) log ratio between two grid points c_z <= c_i < c_j <= c_h (the jaggedness the
curve shows next to the answer); z is the first point walking down from h that clears.
The certificate is thus a property of the curve on [c_z, c_h] alone: two searches that
find the same h walk the same block, and they return the same point whenever the curve
obeys the rule (a lower crossing below a clearing point breaks it; no measured point ever
does, since h is the lowest measured crossing).  f(0) = -target needs no forward, so z = 0
always clears.  R / target is reported with every answer.

* :func:`fast_search`: model-guided.  The log PPL ratio is modelled as A c^beta, fitted on
  a log-log scale to the measured points nearest the target (beta = 2 from one point, the
  exponent of the dense-statistics prediction that places the first probe, ``c_init``).
  Each pass goes to the model's first infeasible grid point (to find h), to the top of the
  predicted clearing region (to raise z), or walks up the remaining gaps from z; after two
  model misses in a row it takes the bisection step instead.
* :func:`bisect_search`: the paper's Algorithm 1 on the grid (bisection of [0, 1] until the
  bracket is one grid step wide: ceil(log2(N + 1)) passes, 10 for xtol = 1e-3), then the
  same certificate, filling its gaps by bisection of the lowest run.

With ``per_pass`` n > 1 each forward evaluates up to n grid points at once (the walk's next
gaps, the model's probes, or the next levels of the bisection tree).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from sparsitylaws.errors import MeasureError

Objective = Callable[[list[float]], list[float]]

#: search methods of ``measure --search``: ours, the paper's bisection on cached dense
#: statistics, and the paper's procedure as its authors' code runs it (a fresh dense pass
#: and per-layer threshold bisection at every step); all three return the defined point
SEARCHES = ("fast", "bisect", "paper")
#: default clearing margin, in units of the target log(1 + p/100)
MARGIN = 0.1
#: the clearing margin is at least this many times the largest drop within the certificate
DROP_FACTOR = 1.0
#: the certificate measures at least this many grid points just below the first point
#: above the target (they show the curve's local jitter)
MIN_WALK = 3
#: the first probe when no prediction from the dense statistics is available
C_INIT = 0.05
#: ITP's slack: a bracketing takes at most this many passes more than bisection's
SLACK = 2
#: unbracketed, the model's crossing is probed this much beyond its estimate (an
#: overshoot brackets at once; an undershoot by noise costs a pass)
OVERSHOOT = 0.1
#: warn when the final step's two ends differ by more than this many targets, or when the
#: answer's log ratio is below this share of the target
JUMP_FACTOR = 2.0
LOW_SHARE = 0.5


@dataclass
class SearchResult:
    """Outcome of a PPL-p% search (see the module doc for the definition)."""

    cett: float
    log_ratio: float  # at cett
    method: str
    evaluations: list[tuple[float, float]] = field(default_factory=list)  # (c, log ratio)
    passes: int = 0  # batched forwards over the evaluation tokens
    bracket: tuple[float, float] = (0.0, 1.0)  # (answer, first grid point above the target)
    warning: str | None = None
    clearing: float = 0.0  # the certificate's clearing point z
    margin: float = 0.0  # M, in units of the target
    jaggedness: float = 0.0  # R: largest drop in [z, h], in targets
    #: largest drop between any two measured points up to h, in targets: what the search saw
    #: of the curve below the answer (not part of the certificate; it only warns)
    drop_seen: float = 0.0
    drop_at: tuple[float, float] | None = None  # (c_i, c_j) of that drop
    capped: bool = False  # no grid point up to c = 1 exceeds the target
    certified: bool = True  # False when max_passes stopped the search first

    @property
    def ppl_ratio(self) -> float:
        return math.exp(self.log_ratio)


def grid_size(xtol: float) -> int:
    """N: grid points c_k = k * xtol for k = 0..N, the last one c = 1."""
    if not 0 < xtol <= 0.5:
        raise MeasureError(f"--xtol {xtol:g}: must lie in (0, 0.5]")
    n = 1.0 / xtol
    return int(round(n)) if abs(n - round(n)) < 1e-6 else int(math.ceil(n))


def bisection_passes(xtol: float) -> int:
    """Passes of the paper's bisection on the grid: ceil(log2(N + 1))."""
    return int(math.ceil(math.log2(grid_size(xtol) + 1)))


class Grid:
    """The measured grid points: f_k = log ratio(c_k) - target, passes counted."""

    def __init__(self, objective: Objective, p: float, xtol: float) -> None:
        self.objective = objective
        self.target = math.log1p(p / 100.0)
        self.xtol = xtol
        self.N = grid_size(xtol)
        self.f: dict[int, float] = {0: -self.target}  # f(0): nothing truncated, no forward
        self.order: list[tuple[float, float]] = []  # (c, log ratio) in evaluation order
        self.passes = 0

    def c(self, k: int) -> float:
        return 1.0 if k >= self.N else round(k * self.xtol, 12)

    def evaluate(self, ks: list[int]) -> None:
        ks = sorted({k for k in ks if k not in self.f and 0 < k <= self.N})
        if not ks:
            raise RuntimeError("search proposed no new grid point")
        cs = [self.c(k) for k in ks]
        vals = self.objective(cs)
        self.passes += 1
        for k, c, g in zip(ks, cs, vals, strict=True):
            if math.isnan(g):
                raise MeasureError(f"the PPL at CETT {c:g} is not a number (NaN); the model's "
                                   "outputs are not finite")
            self.f[k] = g - self.target
            self.order.append((c, g))


@dataclass
class State:
    """What the measured points certify (see the module doc)."""

    h: int | None  # smallest measured grid index above the target
    z: int  # clearing point (the highest below h)
    margin: float  # M (log-ratio units)
    drop: float  # R (log-ratio units)
    gaps: list[int]  # unmeasured grid points between z and h (or N)

    @property
    def done(self) -> bool:
        return not self.gaps


def certificate(grid: Grid, margin: float = MARGIN) -> State:
    """The clearing point, margin and remaining gaps for the points measured so far.

    Walking down from the first point above the target, the clearing point is the first
    k whose f_k <= -M(k), with M(k) from the largest drop R(k) among the measured points in
    [c_k, c_h] only (the certificate's own block, all of it measured in the end): the answer
    and its certificate then depend on the curve near the answer, not on where the search
    happened to probe elsewhere, and a jagged stretch far below cannot drag the walk down."""
    t = grid.target
    ks = sorted(grid.f)
    h = next((k for k in ks if grid.f[k] > 0), None)
    top = h if h is not None else grid.N + 1
    below = [k for k in ks if k < top]
    floor = min(max(grid.f[h], -t), t) if h is not None else math.inf  # min of later values
    drop = 0.0
    clear, m = 0, min(t, max(margin * t, 0.0))
    for k in reversed(below):  # R(k): largest v_i - v_j, c_k <= c_i < c_j <= c_h, clipped
        v = min(max(grid.f[k], -t), t)
        drop = max(drop, v - floor)
        floor = min(floor, v)
        mk = min(t, max(margin * t, DROP_FACTOR * drop))
        if grid.f[k] <= -mk + 1e-15:
            clear, m = k, mk
            break
    z = min(clear, max(0, h - 1 - MIN_WALK)) if h is not None else clear
    gaps = [k for k in range(z + 1, top) if k not in grid.f]
    return State(h, clear, m, drop, gaps)


def _runs(gaps: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs [a, b] of the gaps, lowest first."""
    out: list[tuple[int, int]] = []
    for k in gaps:
        if out and out[-1][1] == k - 1:
            out[-1] = (out[-1][0], k)
        else:
            out.append((k, k))
    return out


def _bracket(grid: Grid, st: State) -> tuple[int, int]:
    """The bisection's bracket: (largest measured feasible point below hi, hi), where hi is
    the smallest measured point above the target (N + 1 while none is)."""
    hi = st.h if st.h is not None else grid.N + 1
    lo = max(k for k, f in grid.f.items() if k < hi and f <= 0)
    return lo, hi


def _walk_down(st: State, per_pass: int) -> list[int]:
    """The certificate's remaining gaps, highest first: walking down from the first point
    above the target stops at the first clearing point, and every point it passes is one
    the certificate needs (or a lower crossing)."""
    return st.gaps[::-1][:per_pass]


def _bisect_probes(grid: Grid, st: State, per_pass: int) -> list[int]:
    """Bisection of the bracket while it is wider than one step (the next levels of the
    tree when several points fit in a pass); then the walk down."""
    lo, hi = _bracket(grid, st)
    if hi - lo > 1:
        out, level = [], [(lo, hi)]
        while level and len(out) < per_pass:
            nxt = []
            for a, b in level:
                if b - a > 1 and len(out) < per_pass:
                    m = (a + b) // 2
                    out.append(m)
                    nxt += [(a, m), (m, b)]
            level = nxt
        return [k for k in out if k <= grid.N] or [grid.N]
    return _walk_down(st, per_pass)


def bisect_search(objective: Objective, p: float, xtol: float = 1e-3, per_pass: int = 1,
                  margin: float = MARGIN, max_passes: int = 200,
                  method: str = "bisect") -> SearchResult:
    """The paper's Algorithm 1 on the xtol grid, then the certificate (module doc)."""
    grid = Grid(objective, p, xtol)
    return _run(grid, lambda st: _bisect_probes(grid, st, per_pass), margin, max_passes, method)


def _run(grid: Grid, propose: Callable[[State], list[int]], margin: float, max_passes: int,
         method: str) -> SearchResult:
    st = certificate(grid, margin)
    while not st.done and grid.passes < max_passes:
        grid.evaluate(propose(st))
        st = certificate(grid, margin)
    return _result(grid, st, method)


def _result(grid: Grid, st: State, method: str) -> SearchResult:
    t = grid.target
    if st.h is None:
        k = max(grid.f) if st.done else max(k for k, f in grid.f.items() if f <= 0)
        hi = grid.c(min(grid.N, k + 1))
    else:
        k = st.h - 1 if st.done else max(k for k, f in grid.f.items() if k < st.h and f <= 0)
        hi = grid.c(st.h)
    g = grid.f.get(k, -t) + t
    seen, at = drop_seen(grid, st.h)
    res = SearchResult(grid.c(k), g, method, list(grid.order), grid.passes, (grid.c(k), hi),
                       clearing=grid.c(st.z), margin=st.margin / t, jaggedness=st.drop / t,
                       drop_seen=seen / t, drop_at=at,
                       capped=st.h is None and st.done, certified=st.done)
    res.warning = search_warning(res, grid, st)
    return res


def drop_seen(grid: Grid, h: int | None) -> tuple[float, tuple[float, float] | None]:
    """The largest drop of the clipped log ratio between two measured points c_i < c_j <= c_h
    (all measured points when no h), and where it was."""
    t = grid.target
    best, at, peak, peak_k = 0.0, None, -math.inf, 0
    for k in sorted(grid.f):
        if h is not None and k > h:
            break
        v = min(max(grid.f[k], -t), t)
        if peak - v > best:
            best, at = peak - v, (grid.c(peak_k), grid.c(k))
        if v > peak:
            peak, peak_k = v, k
    return best, at


def search_warning(res: SearchResult, grid: Grid, st: State) -> str | None:
    """One line when the answer needs a caveat: capped at c = 1, below the first grid step,
    not certified, or a jagged PPL ratio (a drop of more than half the allowed increase within
    its certificate or between any two points measured up to the first one above the target,
    a jump across the final step, a ratio far below the target); None when sound."""
    t = grid.target
    if res.capped:
        return (f"capped: even c = 1 keeps the PPL ratio within 1 + p/100 = {math.exp(t):.6g} "
                f"(ratio {res.ppl_ratio:.4g} at c = 1); the PPL-p% point lies beyond the "
                "largest CETT, so this row reports c = 1 (use a smaller --p)")
    if not res.certified:
        return (f"not certified: stopped after {res.passes} passes with grid points between "
                f"c={grid.c(st.z):.5f} and c={res.bracket[1]:.5f} unmeasured")
    if res.cett == 0.0:
        return (f"the first grid step c = {grid.xtol:g} already exceeds the target PPL ratio "
                f"{math.exp(t):.4f}; the answer lies below it (use a smaller --xtol)")
    why = []
    if max(res.jaggedness, res.drop_seen) > 0.5:
        drop, at = ((res.jaggedness, None) if res.jaggedness >= res.drop_seen else
                    (res.drop_seen, res.drop_at))
        where = f" (c={at[0]:.5f} to c={at[1]:.5f})" if at else ""
        why.append(f"it fell by {drop:.2f} times the allowed increase between two measured "
                   f"points{where}, so another search path may find another crossing")
    g_hi = grid.f.get(st.h, 0.0) + t if st.h is not None else None
    if g_hi is not None and g_hi - res.log_ratio > JUMP_FACTOR * t:
        why.append("it jumps across the final step")
    if res.log_ratio < LOW_SHARE * t:
        why.append("the ratio at the answer is far below the target")
    if not why:
        return None
    ends = f"{res.ppl_ratio:.4f} at c={res.cett:.5f}"
    if g_hi is not None:
        ends += f", {math.exp(g_hi):.4f} at c={res.bracket[1]:.5f}"
    return (f"jagged PPL ratio: {ends} (target {math.exp(t):.4f}; {'; '.join(why)}); the "
            "answer is noisy: use more evaluation tokens (--num-seqs, --seq-len)")


# --- the fast search ------------------------------------------------------------------------

def _model(grid: Grid, prior: float | None) -> tuple[float, float] | None:
    """(A, beta) of log ratio = A c^beta, fitted on a log-log scale to the measured points
    whose log ratio lies within a factor 8 of the target (else the two nearest); beta = 2
    from one point;
    the dense-statistics prior ``A c^2`` when none is measured."""
    t = grid.target
    pts = [(grid.c(k), f + t) for k, f in grid.f.items() if k > 0 and f + t > 0]
    if not pts:
        return (prior, 2.0) if prior else None
    pts.sort(key=lambda e: abs(math.log(e[1] / t)))
    band = [e for e in pts if t / 8 <= e[1] <= 8 * t]
    near = band if len({c for c, _ in band}) >= 2 else pts[:2]
    if len({c for c, _ in near}) == 1:
        c, g = near[0]
        return g / c ** 2, 2.0
    xs = [math.log(c) for c, _ in near]
    ys = [math.log(g) for _, g in near]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    beta = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx > 0 else 2.0
    if not 0.5 <= beta <= 8.0:
        beta = min(8.0, max(0.5, beta)) if beta > 0 else 2.0
    log_a = my - beta * mx
    return math.exp(log_a), beta


def _index_where(grid: Grid, model: tuple[float, float], level: float) -> float:
    """Grid position (fractional) where the model's log ratio equals ``level`` > 0."""
    a, beta = model
    return (level / a) ** (1.0 / beta) / grid.xtol


def _fast_probes(grid: Grid, st: State, per_pass: int, prior: float | None,
                 misses: list[int]) -> list[int]:
    """While the bracket is wider than one step: the model's crossing r, probed at the grid
    point on the side that cuts the larger part of the bracket (both sides with two or more
    per pass), so that a right model closes the bracket; unbracketed, just above r.  After
    two misses in a row, one bisection step.  Then the walk down."""
    lo, hi = _bracket(grid, st)
    if hi - lo <= 1:
        return _walk_down(st, per_pass)
    if misses[0] >= 2:
        misses[0] = 0
        return [min(grid.N, (lo + hi) // 2)]
    model = _model(grid, prior)
    if model is None:  # nothing measured above c = 0 yet: go up fourfold
        return [min(grid.N, max(lo + 1, 4 * lo))]
    r = _index_where(grid, model, grid.target)
    if hi > grid.N:  # not bracketed: just above the estimate, at least 25% past lo
        k = max(int(math.ceil(r * (1 + OVERSHOOT))), lo + 1, int(math.ceil(1.25 * lo)))
        out = [min(grid.N, _project(grid, k, lo, hi) if grid.passes else k)]
        while len(out) < per_pass and out[-1] < grid.N:
            out.append(min(grid.N, 2 * out[-1]))
        return out
    below = min(max(int(math.floor(r)), lo + 1), hi - 1)
    above = min(max(int(math.ceil(r)), lo + 1), hi - 1)
    if above == below:
        above = min(below + 1, hi - 1)
    first = above if hi - r > r - lo else below
    out = [_project(grid, first, lo, hi)] + [k for k in (below, above) if k != first]
    step = (hi - lo) / (per_pass + 1)
    out += [lo + round(step * (j + 1)) for j in range(per_pass)]
    out = [k for k in dict.fromkeys(out) if lo < k < hi]
    return out[:per_pass] or [(lo + hi) // 2]


def _project(grid: Grid, k: int, lo: int, hi: int) -> int:
    """ITP's projection (Oliveira & Takahashi 2020): keep the probe within
    2^(n_max - j) / 2 - (hi - lo) / 2 of the bracket's midpoint at pass j, so that the first
    bracket is one step wide after at most n_max = ceil(log2(N + 1)) + SLACK passes (12 for
    xtol = 1e-3), SLACK more than bisection, however the model errs (the slack pays for a
    first probe far from 1/2).  A bracket the walk reopens (it found a lower crossing with
    no measured point just below) after that budget is bisected."""
    n_max = bisection_passes(grid.xtol) + SLACK
    r = max(0.0, 0.5 * 2.0 ** (n_max - grid.passes) - 0.5 * (hi - lo))
    mid = 0.5 * (lo + hi)
    k = min(max(k, math.ceil(mid - r)), math.floor(mid + r))
    return min(max(k, lo + 1), hi - 1)


def fast_search(objective: Objective, p: float, xtol: float = 1e-3, c_init: float | None = None,
                per_pass: int = 1, margin: float = MARGIN, max_passes: int = 200) -> SearchResult:
    """Model-guided search for the defined point (module doc).  ``c_init``: the first probe,
    e.g. predicted from the dense statistics (:data:`C_INIT` when None)."""
    grid = Grid(objective, p, xtol)
    c0 = C_INIT if c_init is None or not math.isfinite(c_init) or c_init <= 0 else c_init
    prior = grid.target / c0 ** 2  # A of the model A c^2 that crosses the target at c0
    misses = [0]
    expect: dict[int, bool] = {}  # probe -> whether the model expected it above the target

    def propose(st: State) -> list[int]:
        for k, above in list(expect.items()):  # a miss: the model put the crossing wrong
            if k in grid.f:
                misses[0] = misses[0] + 1 if (grid.f[k] > 0) != above else 0
                del expect[k]
        ks = _fast_probes(grid, st, per_pass, prior, misses)
        model = _model(grid, prior)
        if model is not None and len(ks) == 1:
            expect[ks[0]] = grid.c(ks[0]) > model_c(grid, model)
        return ks

    return _run(grid, propose, margin, max_passes, "fast")


def model_c(grid: Grid, model: tuple[float, float]) -> float:
    """The model's crossing c (where its log ratio equals the target)."""
    return _index_where(grid, model, grid.target) * grid.xtol
