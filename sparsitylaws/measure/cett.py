"""Neuron sizes, exact CETT curves and per-layer thresholds (PAPER.md definitions).

For one layer and the valid evaluation tokens t (dense activations a_t):

* size of neuron i on token t: ``s_ti = |a_ti| * ||W_out[:, i]||``
* CETT of token t at threshold g: ``||sum_{i: s_ti < g} a_ti W_out[:, i]|| / ||W_out a_t||``
  (0 when the FFN output is 0); the layer's CETT at g is its mean over tokens
* candidates: ``n_candidates`` (65,536) values evenly spaced between the minimum and the
  0.99-quantile of all sizes of the layer, as in the paper
* threshold for a target c: the largest candidate whose CETT is <= c.

The numerator is the norm of a vector sum, not a sum of sizes, so a curve built from sorted
sizes alone would be wrong.  :class:`CettCurve` computes it *exactly*: over a range of
candidates it selects the (token, neuron) pairs whose sizes fall inside the range, sorts
them by token and size, and adds their output vectors ``a_ti W_out[:, i]`` to each token's
tail sum in that order (a running prefix sum); each neuron's change of the token's CETT is
binned at the first candidate above its size, and a cumulative sum over candidates gives
the layer's mean CETT at every candidate of the range, exact up to float32 rounding.  The
curve is built lazily over contiguous candidate ranges: a window around the target whose
base (the tail sums at its lower end) comes from one masked matrix product, or, when fewer
than 1/200 of the layer's pairs lie in between (measured on CPU: moving a tail sum costs
about 1.5 us per pair, a matrix product over all pairs about 17 ms for SmolLM2's layers),
from a known window by adding or removing those pairs.  A coarse summary (512 bins of
candidates, one pass over the sizes) prices these moves and guides the window: the CETT
as if neuron output vectors were orthogonal, corrected by the exact values known so far.
``full()`` computes the whole curve without a matrix product, in pieces of bounded memory.
Once a range is known, the threshold for any c inside it is a search over stored numbers.

At the resolution of 65,536 candidates the mean curve is not exactly monotone (adding a
neuron's vector can shorten a token's tail sum).  A complete curve gives the largest
candidate with CETT <= c exactly (suffix minimum + binary search).  A lazy curve gives the
largest such candidate within its computed range, which always reaches at least
``K/4096`` candidates (and 8) beyond the answer, where the answer k has CETT(k) <= c <
CETT(k+1).  The paper's bisection assumes monotonicity everywhere and returns some
crossing; the two differ by at most a few candidates where the curve wiggles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

N_CANDIDATES = 65536
QUANTILE = 0.99
#: elements of one temporary (tokens x neurons x d) block in the curve computation
BLOCK_ELEMS = 1 << 23
#: elements of one temporary (tokens x neurons x d) block of the curve traversal: small
#: enough to stay in cache (measured on CPU: 2**18 about 1.5x faster than 2**23)
TRAVERSE_ELEMS = 1 << 18
#: the same on an accelerator: blocks large enough that kernel launches do not dominate
#: (2**26 float32 elements = 256 MiB per temporary); the traversal has no per-block host
#: synchronisation, so a GPU streams its blocks back to back
DEVICE_TRAVERSE_ELEMS = 1 << 26


def traverse_elems(device: torch.device) -> int:
    """Block size of the curve traversal on ``device`` (see the two constants above)."""
    return TRAVERSE_ELEMS if device.type == "cpu" else DEVICE_TRAVERSE_ELEMS
#: coarse bins of the candidate range for the guide curve and the pair counts
COARSE_BINS = 512
#: moving tail sums pair by pair is preferred to a new matrix product while it touches at
#: most this share of the layer's (token, neuron) pairs (measured on CPU, see docs/measure.md)
MOVE_FRACTION = 1 / 200
#: pairs per traversal piece (bounds the memory of a complete curve)
MAX_PAIRS = 1 << 22
#: windows per layer whose tail sums are kept (two (T, D) matrices each); the least
#: recently used one beyond this is forgotten (its values stay, it is no longer extended)
MAX_SEGMENTS = 3


@dataclass
class LayerStats:
    """Dense statistics of one layer over the valid evaluation tokens (float32)."""

    a: torch.Tensor  # (T, F) down-projection inputs
    w_t: torch.Tensor  # (F, D) W_out transposed: row i is neuron i's output vector
    wnorm: torch.Tensor  # (F,) ||W_out[:, i]||
    fnorm: torch.Tensor  # (T,) ||W_out a_t||
    grid: torch.Tensor  # (K,) candidate thresholds, ascending
    min_size: float = 0.0
    _sizes: torch.Tensor | None = None
    _bucketer: Bucketer | None = None

    def bucket(self, x: torch.Tensor) -> torch.Tensor:
        """Number of candidates <= x, elementwise (see :class:`Bucketer`)."""
        if self._bucketer is None:
            self._bucketer = Bucketer(self.grid)
        return self._bucketer(x)

    @property
    def n_tokens(self) -> int:
        return int(self.a.shape[0])

    def sizes(self) -> torch.Tensor:
        """(T, F) neuron sizes |a_ti| * ||W_out[:, i]|| (computed once)."""
        if self._sizes is None:
            self._sizes = self.a.abs() * self.wnorm
        return self._sizes


def quantile(x: torch.Tensor, q: float) -> float:
    """Linear-interpolated quantile of all entries of x, without a size limit."""
    flat = x.reshape(-1)
    n = flat.numel()
    pos = (n - 1) * q
    lo = int(np.floor(pos))
    hi = min(lo + 1, n - 1)
    v_lo_t = flat.kthvalue(lo + 1).values
    v_lo = v_lo_t.double().item()
    if hi == lo or int((flat <= v_lo_t).sum()) >= hi + 1:  # the next order statistic ties
        v_hi = v_lo
    else:  # the next order statistic: the smallest entry above v_lo (no second selection)
        v_hi = flat[flat > v_lo_t].min().double().item()
    return v_lo + (pos - lo) * (v_hi - v_lo)


def build_layer_stats(a: torch.Tensor, w_out: torch.Tensor, n_candidates: int = N_CANDIDATES,
                      q: float = QUANTILE) -> LayerStats:
    """Statistics of one layer from its dense activations ``a`` (T, F) and ``W_out`` (D, F)."""
    a = a.float()
    w_t = w_out.float().t().contiguous().to(a.device)
    wnorm = w_t.norm(dim=1)
    sizes = a.abs() * wnorm
    fnorm = torch.cat([(a[i:i + 4096] @ w_t).norm(dim=1) for i in range(0, a.shape[0], 4096)])
    lo = float(sizes.min())
    hi = quantile(sizes, q)
    grid = torch.linspace(lo, hi, n_candidates, dtype=torch.float64).float().to(a.device)
    return LayerStats(a=a, w_t=w_t, wnorm=wnorm, fnorm=fnorm, grid=grid, min_size=lo, _sizes=sizes)


class Bucketer:
    """``torch.searchsorted(grid, x, right=True)`` (number of candidates <= x), exactly,
    for the evenly spaced candidate grid: an arithmetic guess, then a check against the
    stored float32 candidates (binary search only where the check fails, e.g. an uneven
    grid)."""

    def __init__(self, grid: torch.Tensor) -> None:
        self.grid = grid
        self.K = grid.numel()
        self.g0 = float(grid[0]) if self.K else 0.0
        self.step = (float(grid[-1]) - self.g0) / (self.K - 1) if self.K > 1 else 0.0
        inf = torch.full((1,), float("inf"), dtype=grid.dtype, device=grid.device)
        self.gext = torch.cat([-inf, grid, inf])  # gext[j] = grid[j - 1]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        k, bad = self.guess(x)
        if bad is not None and bool(bad.any()):
            k[bad] = torch.searchsorted(self.grid, x[bad].contiguous(), right=True)
        return k

    def guess(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The arithmetic guess and where it may be wrong (None: exact), without a host
        synchronisation; the caller checks ``bad`` once for many calls."""
        grid, K, gext = self.grid, self.K, self.gext
        if self.step <= 0:
            return torch.searchsorted(grid, x.contiguous(), right=True), None
        k = ((x.double() - self.g0) / self.step).floor_().add_(1).clamp_(0, K).long()
        for _ in range(2):
            k += (gext[k + 1] <= x).long()  # candidate k is <= x: count it
            k -= (gext[k] > x).long()  # candidate k - 1 is > x: do not count it
        bad = (gext[k + 1] <= x) | (gext[k] > x)
        return k, bad


def bucket(grid: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``torch.searchsorted(grid, x, right=True)`` by :class:`Bucketer` (one call)."""
    return Bucketer(grid)(x)


def _safe_div(x: torch.Tensor, fnorm: torch.Tensor) -> torch.Tensor:
    """x / fnorm along tokens, 0 where the FFN output is 0."""
    f = fnorm.view(-1, *([1] * (x.dim() - 1)))
    return torch.where(f > 0, x / f.clamp_min(torch.finfo(torch.float32).tiny), torch.zeros_like(x))


def truncated_sum(st: LayerStats, g: float, rows: slice = slice(None)) -> torch.Tensor:
    """sum over neurons with size < g of a_ti W_out[:, i], per token (one matrix product)."""
    a = st.a[rows]
    return torch.where(st.sizes()[rows] < g, a, 0.0) @ st.w_t


def cett_direct(st: LayerStats, g: float) -> float:
    """Token-averaged CETT at threshold g by a masked matrix product (the paper's way)."""
    total = 0.0
    step = max(1, BLOCK_ELEMS // max(1, st.a.shape[1]))
    for i in range(0, st.n_tokens, step):
        rows = slice(i, i + step)
        num = truncated_sum(st, g, rows).norm(dim=1)
        total += float(_safe_div(num, st.fnorm[rows]).double().sum())
    return total / st.n_tokens


class CettCurve:
    """Exact mean CETT of one layer at its candidate thresholds, built lazily (see module doc)."""

    def __init__(self, st: LayerStats) -> None:
        self.st: LayerStats | None = st
        self.grid = st.grid.detach().cpu().double().numpy()
        self.K = len(self.grid)
        self.values = np.full(self.K, np.nan)
        self.segments: list[_Segment] = []
        self._last: _Segment | None = None
        self._proxy: np.ndarray | None = None
        self._pairs: np.ndarray | None = None
        self.matmuls = 0  # window placements (matrix products)
        self._clock = 0

    # --- coarse summaries (one pass over the sizes) --------------------------------------
    def _coarse(self) -> None:
        """Per coarse bin of candidates: the number of (token, neuron) pairs below each bin
        edge (to price a traversal) and the orthogonal proxy of the mean CETT (a guide)."""
        st = self.st
        assert st is not None
        T = st.n_tokens
        B = max(1, min(COARSE_BINS, self.K - 1))
        per = (self.K - 1) / B  # candidates per coarse bin; edge j is candidate j * per
        edges = np.arange(B + 1) * per
        counts = torch.zeros(B + 2, dtype=torch.float64, device=st.a.device)
        proxy = torch.zeros(B + 2, dtype=torch.float64, device=st.a.device)
        rows = max(1, (1 << 22) // max(1, B + 2))
        sizes = st.sizes()
        g0, width = float(self.grid[0]), float(self.grid[-1] - self.grid[0])
        scale = B / width if width > 0 else 0.0
        for i in range(0, T, rows):  # token blocks bound the (tokens x bins) temporary
            sz = sizes[i:i + rows]
            # edges <= size, by arithmetic on the even grid (a guide: an edge off is fine)
            b = ((sz - g0) * scale).floor_().add_(1).clamp_(0, B + 1).long()
            n = sz.shape[0]
            flat = (torch.arange(n, device=sz.device)[:, None] * (B + 2) + b).view(-1)
            sq = torch.zeros(n * (B + 2), dtype=torch.float32, device=sz.device)
            sq.index_add_(0, flat, sz.square().view(-1))
            part = sq.view(n, B + 2).cumsum_(dim=1).sqrt_()  # orthogonal tail norm below each edge
            proxy += _safe_div(part, st.fnorm[i:i + rows]).sum(dim=0).double()
            counts += torch.bincount(b.view(-1), minlength=B + 2).double()
        # entry j: pairs (and tails) below edge j, i.e. pairs with at most j edges <= size
        cand = np.arange(self.K)
        self._pairs = np.interp(cand, edges, counts.cumsum(0).cpu().numpy()[:B + 1])
        self._proxy = np.interp(cand, edges, proxy.cpu().numpy()[:B + 1] / max(T, 1))

    def _pairs_between(self, ka: int, kb: int) -> float:
        """Estimated (token, neuron) pairs with sizes between candidates ka and kb."""
        if self._proxy is None:
            self._coarse()
        return abs(float(self._pairs[kb] - self._pairs[ka]))

    # --- exact pieces -------------------------------------------------------------------
    def _base(self, k: int) -> torch.Tensor:
        """Per-token tail sums at candidate k by one (blocked) matrix product."""
        st = self.st
        assert st is not None
        g = float(self.grid[k])
        if g <= st.min_size:
            return torch.zeros(st.n_tokens, st.w_t.shape[1], device=st.a.device)
        self.matmuls += 1
        step = max(1, BLOCK_ELEMS // max(1, st.a.shape[1]))
        return torch.cat([truncated_sum(st, g, slice(i, i + step))
                          for i in range(0, st.n_tokens, step)])

    def _select(self, ka: int, kb: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pairs with grid[ka] <= size < grid[kb] (they join the tail at candidates ka+1..kb),
        sorted by token, then size: (flat index t * F + i, size, pairs per token)."""
        st = self.st
        assert st is not None
        sizes = st.sizes()
        T, F = sizes.shape
        m = (sizes >= st.grid[ka]) & (sizes < st.grid[kb])
        flat = m.view(-1).nonzero().squeeze(1)
        sz = sizes.view(-1)[flat]
        # sizes are >= 0: their float32 bits sort like integers; one int64 key per pair
        key = (flat // F) * (1 << 32) + sz.view(torch.int32).long()
        order = torch.argsort(key)
        flat, sz = flat[order], sz[order]
        counts = torch.bincount(flat // F, minlength=T)
        return flat, sz, counts

    def _shift(self, base: torch.Tensor, ka: int, kb: int) -> torch.Tensor:
        """Tail sums at kb from those at ka by adding (or removing) the pairs in between."""
        st = self.st
        assert st is not None
        lo, hi = min(ka, kb), max(ka, kb)
        flat, _, _ = self._select(lo, hi)
        F = st.a.shape[1]
        out = base.clone()
        sign = 1.0 if kb > ka else -1.0
        step = max(1, TRAVERSE_ELEMS // max(1, st.w_t.shape[1]))
        a_flat = st.a.reshape(-1)
        for i in range(0, flat.numel(), step):
            f = flat[i:i + step]
            vec = (a_flat[f] * sign).unsqueeze(1) * st.w_t[f % F]
            out.index_add_(0, f // F, vec)
        return out

    def _traverse(self, base: torch.Tensor, ka: int, kb: int,
                  exact: bool = False) -> tuple[np.ndarray, torch.Tensor]:
        """Exact mean CETT at candidates ka..kb from the per-token sums ``base`` at ka.

        Adds, per token in size order, the neurons with grid[ka] <= size < grid[kb].
        Returns the values and the per-token sums at kb.

        Blocks of tokens (sorted by how many neurons they add, each block padded to its
        widest token) are sized by :func:`traverse_elems`; the block plan is made on the host
        from one copy of the widths, and inside the loop nothing waits for the device (no
        ``.item()``, no boolean indexing): padded entries add zero, and the bucketing's
        check runs once after the loop (``exact`` redoes it with ``searchsorted``).
        """
        st = self.st
        assert st is not None
        dev = st.a.device
        T, F = st.a.shape
        D = st.w_t.shape[1]
        flat, sz_all, width = self._select(ka, kb)
        start = torch.cumsum(width, 0) - width  # first pair of each token
        acc = torch.zeros(kb - ka + 1, dtype=torch.float64, device=dev)
        base_norm = _safe_div(base.norm(dim=1), st.fnorm)
        start_total = base_norm.double().sum()
        # the block plan, on the host: one copy of the widths in size order
        by_width = torch.argsort(width, descending=True)
        widths = width[by_width].cpu().tolist()
        if not widths or widths[0] == 0:
            return np.full(kb - ka + 1, float(start_total) / T), base
        out = base.clone()
        a_flat = st.a.reshape(-1)
        n_pairs = flat.numel()
        elems = traverse_elems(dev)
        bucketer = None if exact else (st._bucketer or Bucketer(st.grid))
        st._bucketer = bucketer or st._bucketer
        bad_any = torch.zeros((), dtype=torch.bool, device=dev)
        i = 0
        while i < T:
            wc = widths[i]
            if wc == 0:
                break
            step = max(1, elems // (wc * D))
            rows = by_width[i:i + step]
            i += step
            ar = torch.arange(wc, device=dev)
            w = width[rows]
            valid = ar < w[:, None]
            pos = (start[rows, None] + ar).clamp_max(n_pairs - 1)
            f = flat[pos]
            sz = sz_all[pos]
            av = a_flat[f] * valid
            b = base[rows]
            vec = av.unsqueeze(-1) * st.w_t[f % F]  # (c, wc, D)
            vec = vec.cumsum_(dim=1).add_(b.unsqueeze(1))
            norms = torch.linalg.vector_norm(vec, dim=2)
            prev = torch.cat([b.norm(dim=1, keepdim=True), norms[:, :-1]], dim=1)
            incr = _safe_div(norms - prev, st.fnorm[rows]) * valid  # padding adds 0
            if bucketer is None:
                k = torch.searchsorted(st.grid, sz.contiguous(), right=True)
            else:
                k, bad = bucketer.guess(sz)
                if bad is not None:
                    bad_any |= (bad & valid).any()
            acc.index_add_(0, (k - ka).clamp_(0, kb - ka).view(-1), incr.view(-1).double())
            last = (w - 1).clamp_min(0)
            out[rows] = vec[torch.arange(vec.shape[0], device=dev), last]
        if bucketer is not None and bool(bad_any):  # one check for the whole traversal
            return self._traverse(base, ka, kb, exact=True)
        vals = (start_total + acc.cumsum(0)).cpu().numpy() / T
        return vals, out

    def _traverse_chunked(self, base: torch.Tensor, ka: int, kb: int) -> torch.Tensor:
        """:meth:`_traverse` over ka..kb in pieces of at most MAX_PAIRS pairs (bounded
        memory); stores the values and returns the sums at kb."""
        k = ka
        while k < kb:
            if self._pairs_between(k, kb) <= MAX_PAIRS:
                nxt = kb
            else:  # the candidate where about MAX_PAIRS more pairs have joined
                target = self._pairs[k] + MAX_PAIRS
                nxt = int(np.searchsorted(self._pairs, target, side="right")) - 1
                nxt = min(kb, max(k + 1, nxt))
            vals, base = self._traverse(base, k, nxt)
            self.values[k:nxt + 1] = vals
            k = nxt
        return base

    def _cheap(self, ka: int, kb: int) -> bool:
        """Whether moving tail sums from ka to kb pair by pair beats one matrix product."""
        return self._cheap_pairs(self._pairs_between(ka, kb))

    # --- segments of known values --------------------------------------------------------
    def _new_segment(self, lo: int, hi: int) -> _Segment:
        lo, hi = max(0, lo), min(self.K - 1, hi)
        near = min(self.segments, key=lambda g: min(abs(g.lo - lo), abs(g.hi - lo)), default=None)
        if near is not None and near.s_lo is not None and self._cheap(near.lo, lo):
            base = self._shift(near.s_lo, near.lo, lo)
        elif near is not None and near.s_hi is not None and self._cheap(near.hi, lo):
            base = self._shift(near.s_hi, near.hi, lo)
        else:
            base = self._base(lo)
        s_hi = self._traverse_chunked(base, lo, hi)
        seg = _Segment(lo, hi, base, s_hi)
        self.segments.append(seg)
        self._use(seg)
        while len(self.segments) > MAX_SEGMENTS:  # forget the least recently used window
            old = min((g for g in self.segments if g is not seg), key=lambda g: g.used)
            self.segments.remove(old)
        return seg

    def _use(self, seg: _Segment) -> None:
        self._clock += 1
        seg.used = self._clock

    def _extend_up(self, seg: _Segment, hi: int) -> None:
        hi = min(self.K - 1, hi)
        if hi <= seg.hi:
            return
        seg.s_hi = self._traverse_chunked(seg.s_hi, seg.hi, hi)
        seg.hi = hi

    def _extend_down(self, seg: _Segment, lo: int) -> None:
        lo = max(0, lo)
        if lo >= seg.lo:
            return
        base = self._shift(seg.s_lo, seg.lo, lo) if self._cheap(lo, seg.lo) else self._base(lo)
        keep = self.values[seg.lo]
        self._traverse_chunked(base, lo, seg.lo)
        self.values[seg.lo] = keep  # the value known before (same number up to rounding)
        seg.lo, seg.s_lo = lo, base

    def _reach(self, seg: _Segment, lo: int, hi: int) -> bool:
        """Whether extending ``seg`` to cover lo..hi is cheaper than a new window."""
        lo, hi = max(0, lo), min(self.K - 1, hi)
        gap_lo = self._pairs_between(lo, seg.lo) if lo < seg.lo else 0.0
        gap_hi = self._pairs_between(seg.hi, hi) if hi > seg.hi else 0.0
        return self._cheap_pairs(gap_lo + gap_hi)

    def _cheap_pairs(self, pairs: float) -> bool:
        st = self.st
        assert st is not None
        return pairs <= st.a.numel() * MOVE_FRACTION

    def ensure(self, lo: int, hi: int) -> None:
        """Make the exact values on candidates lo..hi known (as one segment)."""
        lo, hi = max(0, lo), min(self.K - 1, hi)
        seg = next((g for g in self.segments if g.lo <= hi and lo <= g.hi), None)
        if seg is None:
            seg = self._new_segment(lo, hi)
        self._extend_up(seg, hi)
        self._extend_down(seg, lo)
        self._last = seg
        self._use(seg)

    @property
    def L(self) -> int | None:
        return self._last.lo if self._last is not None else None

    @property
    def R(self) -> int | None:
        return self._last.hi if self._last is not None else None

    def full(self) -> CettCurve:
        """Compute the whole curve (no matrix product), then drop the activations."""
        self.ensure(0, self.K - 1)
        self.release()
        return self

    def release(self) -> None:
        """Free the activations; only a complete curve can answer afterwards."""
        self.st = None
        for seg in self.segments:
            seg.s_lo = seg.s_hi = None

    @property
    def complete(self) -> bool:
        return any(g.lo == 0 and g.hi == self.K - 1 for g in self.segments)

    # --- thresholds ---------------------------------------------------------------------
    def _hint(self, c: float) -> int:
        """Guess of the crossing: the coarse orthogonal proxy corrected by the exact values
        known so far."""
        if self._proxy is None:
            self._coarse()
        proxy = self._proxy
        known = np.flatnonzero(~np.isnan(self.values) & (proxy > 0))
        if known.size:
            pick = known[:: max(1, known.size // 512)]
            ratio = np.interp(np.arange(self.K), pick, self.values[pick] / proxy[pick])
            guide = proxy * ratio
        else:
            guide = proxy
        guide = np.minimum.accumulate(guide[::-1])[::-1]
        return int(np.clip(np.searchsorted(guide, c, side="right") - 1, 0, self.K - 1))

    def threshold_index(self, c: float) -> int:
        """Index of the largest candidate with mean CETT <= c (see module doc)."""
        if self.complete:
            suffix_min = np.minimum.accumulate(self.values[::-1])[::-1]
            return int(max(0, np.searchsorted(suffix_min, c, side="right") - 1))
        if self.st is None:
            raise RuntimeError("curve released before it was complete")
        half = max(8, self.K // 4096)
        k0 = self._hint(c)
        seg = next((g for g in self.segments if g.lo <= k0 <= g.hi), None)
        if seg is None:
            near = [g for g in self.segments if self._reach(g, k0 - half, k0 + half)]
            if near:
                seg = min(near, key=lambda g: min(abs(g.lo - k0), abs(g.hi - k0)))
                self._extend_up(seg, k0 + half)
                self._extend_down(seg, k0 - half)
            else:
                seg = self._new_segment(k0 - half, k0 + half)
        grow = half
        while True:
            ok = self.values[seg.lo:seg.hi + 1] <= c
            if ok[-1]:
                if seg.hi == self.K - 1:
                    ans = self.K - 1
                    break
                kh = self._hint(c)
                if not self._reach(seg, seg.lo, kh + half):
                    seg = self._new_segment(kh - half, kh + half)
                else:
                    self._extend_up(seg, max(seg.hi + grow, kh + half))
                grow *= 2
                continue
            idx = np.flatnonzero(ok)
            if idx.size == 0:
                if seg.lo == 0:
                    ans = 0
                    break
                kh = self._hint(c)
                if not self._reach(seg, kh - half, seg.hi):
                    seg = self._new_segment(kh - half, kh + half)
                else:
                    self._extend_down(seg, min(seg.lo - grow, kh - half))
                grow *= 2
                continue
            ans = seg.lo + int(idx[-1])
            if seg.hi < min(self.K - 1, ans + half):  # guard band above the crossing
                self._extend_up(seg, ans + half)
                continue
            break
        self._last = seg
        self._use(seg)
        return ans


@dataclass
class _Segment:
    """A contiguous range of candidates whose exact values are known."""

    lo: int
    hi: int
    s_lo: torch.Tensor | None  # per-token tail sums at grid[lo]
    s_hi: torch.Tensor | None  # per-token tail sums at grid[hi]
    used: int = 0  # when it was last used (windows beyond MAX_SEGMENTS are forgotten)


def threshold_index_bisect(st: LayerStats, c: float) -> tuple[int, int]:
    """The paper's per-layer bisection over the candidates, each step a full CETT
    evaluation (masked matrix product).  Returns (index, evaluations)."""
    lo, hi = 0, len(st.grid) - 1
    evals = 0
    grid = st.grid.detach().cpu().double().numpy()
    while lo < hi:
        mid = (lo + hi + 1) // 2
        evals += 1
        if cett_direct(st, float(grid[mid])) <= c:
            lo = mid
        else:
            hi = mid - 1
    return lo, evals


class CurveSet:
    """CETT curves of all layers of one model: thresholds for a shared c."""

    def __init__(self, curves: list[CettCurve], wnorms: list[torch.Tensor],
                 stats: list[LayerStats] | None = None) -> None:
        self.curves = curves
        self.wnorms = wnorms
        self.stats = stats
        self.bisect_evals = 0

    @classmethod
    def from_stats(cls, stats: list[LayerStats], full: bool = False) -> CurveSet:
        curves = [CettCurve(s) for s in stats]
        if full:
            for cv in curves:
                cv.full()
        return cls(curves, [s.wnorm for s in stats], None if full else stats)

    def thresholds(self, c: float) -> np.ndarray:
        """Per-layer thresholds eps_l for CETT target c (fast, exact curves)."""
        return np.array([cv.grid[cv.threshold_index(c)] for cv in self.curves])

    def thresholds_bisect(self, c: float) -> np.ndarray:
        """Per-layer thresholds by the paper's bisection (reference; slow)."""
        if self.stats is None:
            raise RuntimeError("bisection needs the activations (not kept in full-curve mode)")
        out = []
        for st in self.stats:
            k, n = threshold_index_bisect(st, c)
            self.bisect_evals += n
            out.append(float(st.grid[k]))
        return np.array(out)

    def release(self) -> None:
        for cv in self.curves:
            cv.release()
        self.stats = None

    def complete(self) -> CurveSet:
        """Compute every layer's whole curve and drop the activations (65,536 numbers per
        layer stay): what a model parked between the passes of a joint search keeps."""
        for cv in self.curves:
            if not cv.complete:
                cv.full()
            cv.release()
        self.stats = None
        return self

    def retained_bytes(self) -> int:
        """Bytes held by the curves' tensors and arrays (each storage counted once)."""
        seen: set[int] = set()
        total = 0

        def add(x: object) -> None:
            nonlocal total
            if isinstance(x, torch.Tensor):
                key = x.untyped_storage().data_ptr()
                if key not in seen:
                    seen.add(key)
                    total += x.untyped_storage().nbytes()
            elif isinstance(x, np.ndarray):
                total += x.nbytes

        for cv in self.curves:
            for arr in (cv.grid, cv.values, cv._proxy, cv._pairs):
                add(arr)
            for seg in cv.segments:
                add(seg.s_lo)
                add(seg.s_hi)
            st = cv.st
            if st is not None:
                for name in ("a", "w_t", "wnorm", "fnorm", "grid", "_sizes"):
                    add(getattr(st, name))
                if st._bucketer is not None:
                    add(st._bucketer.gext)
        for w in self.wnorms:
            add(w)
        return total
    def to(self, dev: torch.device) -> None:
        """Move every tensor the curves keep (statistics, tail sums) to ``dev``."""
        self.wnorms = [w.to(dev) for w in self.wnorms]
        done: set[int] = set()
        for cv in self.curves:
            if cv.st is not None and id(cv.st) not in done:
                done.add(id(cv.st))
                st = cv.st
                for name in ("a", "w_t", "wnorm", "fnorm", "grid", "_sizes"):
                    t = getattr(st, name)
                    if t is not None:
                        setattr(st, name, t.to(dev))
                st._bucketer = None
            for seg in cv.segments:
                seg.s_lo = seg.s_lo.to(dev) if seg.s_lo is not None else None
                seg.s_hi = seg.s_hi.to(dev) if seg.s_hi is not None else None

    @property
    def matmuls(self) -> int:
        return sum(cv.matmuls for cv in self.curves)
