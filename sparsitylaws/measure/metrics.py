"""Sparsity metrics on one loaded model: zero, top-k, FAT-eps, CETT, CETT-PPL-p%.

Every metric ends in one masked (or plain) pass over the evaluation tokens whose hooks
count, per layer, the (token, neuron) pairs kept active; the activation ratio is the mean
over layers of the per-layer ratios (padding excluded), and a neuron is dead when it is
active on fewer than 0.1% of the tokens.  Ratios are measured in the truncated model
itself, as the paper's own inspection does.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from sparsitylaws.errors import MeasureError
from sparsitylaws.measure.cett import (
    MAX_SEGMENTS,
    N_CANDIDATES,
    CurveSet,
    LayerStats,
    build_layer_stats,
    threshold_index_bisect,
    traverse_elems,
)
from sparsitylaws.measure.evaluate import EvalData, Evaluator
from sparsitylaws.measure.hooks import MaskFn, ThresholdMask
from sparsitylaws.measure.loading import LoadedModel
from sparsitylaws.measure.search import SearchResult, bisect_search, fast_search

DEAD_FRACTION = 1e-3


@dataclass
class MetricResult:
    """What one metric measured (becomes one table row)."""

    metric: str
    metric_arg: float
    activation_ratio: float
    layer_ratios: list[float]
    dead_neuron_ratio: float
    ppl_dense: float
    ppl_sparse: float
    cett: float | None = None
    layer_thresholds: list[float] | None = None
    search: SearchResult | None = None
    extra: dict = field(default_factory=dict)


class _Counter:
    """Observer: active (token, neuron) counts per layer and per neuron, per replica."""

    def __init__(self, n_layers: int, zero_mode: bool = False, replicas: int = 1,
                 widths: list[int] | None = None) -> None:
        self.n_layers = n_layers
        self.zero_mode = zero_mode
        self.replicas = replicas
        self.widths = widths  # neurons per layer (needed only for a plain pass)
        # without widths a plain pass reads them off the activations
        self.wants_a = widths is None and not zero_mode
        self.reset()

    def reset(self) -> None:
        """Forget everything seen (a pass retried after out-of-memory starts over)."""
        self.kept: list[torch.Tensor | None] = [None] * self.n_layers  # (replicas, F)
        self.counts: list[torch.Tensor | None] = [None] * self.n_layers  # (replicas,)

    @property
    def tokens(self) -> list[int]:
        """Tokens seen per layer (replica 0)."""
        return [int(c[0]) if c is not None else 0 for c in self.counts]

    def __call__(self, pos: int, a: torch.Tensor | None, s: torch.Tensor | None,
                 keep: torch.Tensor | None, rep: torch.Tensor) -> None:
        active = ((s if s is not None else a) != 0) if self.zero_mode else keep
        n = torch.bincount(rep, minlength=self.replicas)  # stays on the device: no sync
        if active is None:  # a plain pass: every pair is active
            f = self.widths[pos] if self.widths is not None else a.shape[-1]
            per = n[:, None].expand(self.replicas, f)
        elif self.replicas == 1:
            per = active.sum(dim=0, dtype=torch.int64)[None]
        else:
            per = torch.zeros(self.replicas, active.shape[-1], dtype=torch.int64,
                              device=active.device).index_add_(0, rep, active.long())
        self.kept[pos] = per if self.kept[pos] is None else self.kept[pos] + per
        self.counts[pos] = n if self.counts[pos] is None else self.counts[pos] + n

    def ratios(self, replica: int = 0) -> tuple[list[float], float]:
        layer, dead, total = [], 0, 0
        for k, c in zip(self.kept, self.counts, strict=False):
            if k is None or c is None or int(c[replica]) == 0:
                raise RuntimeError("a layer saw no tokens")
            k, t = k[replica].cpu(), int(c[replica])
            layer.append(float(k.sum()) / (t * k.numel()))
            dead += int((k.double() / t < DEAD_FRACTION).sum())
            total += k.numel()
        return layer, dead / total


class _Capture:
    """Observer: the dense activations of some layers (float32), per forward."""

    wants_a = True

    def __init__(self, group: list[int]) -> None:
        self.group = group
        self.reset()

    def reset(self) -> None:
        """Forget everything seen (a pass retried after out-of-memory starts over)."""
        self.captured: dict[int, list[torch.Tensor]] = {i: [] for i in self.group}

    def __call__(self, pos: int, a: torch.Tensor | None, s: torch.Tensor | None,
                 keep: torch.Tensor | None, rep: torch.Tensor) -> None:
        if pos in self.captured and a is not None:
            self.captured[pos].append(a)


class _Fanout:
    """Several observers on one pass (the dense capture and the zero metric's counts)."""

    def __init__(self, *observers: object) -> None:
        self.observers = [o for o in observers if o is not None]
        self.wants_a = any(getattr(o, "wants_a", True) for o in self.observers)

    def reset(self) -> None:
        for o in self.observers:
            o.reset()

    def __call__(self, *args: object) -> None:
        for o in self.observers:
            o(*args)


class ModelMeasurer:
    """All metrics for one model on one evaluation set, sharing the dense pass."""

    def __init__(self, lm: LoadedModel, data: EvalData, batch_size: int | None = None,
                 n_candidates: int = N_CANDIDATES, max_memory_gb: float | None = None,
                 per_pass: int | None = None, want_zero: bool = False,
                 reload: Callable[[], LoadedModel] | None = None) -> None:
        self.lm = lm
        self.data = data
        self.ev = Evaluator(lm, data, batch_size)
        self.n_candidates = n_candidates
        self.max_memory_gb = max_memory_gb
        # one candidate per forward on every device unless asked: a device must not change
        # the answer (the search path depends on per_pass; it is part of the settings hash)
        self.per_pass = per_pass or 1
        self.want_zero = want_zero  # count the zero metric in the dense pass
        self.reload = reload  # loads the model again after park(drop=True)
        self.wnorms, self.w_shapes = [], []
        for site in lm.sites:
            w = site.w_out()
            self.wnorms.append(w.norm(dim=0))
            self.w_shapes.append(tuple(w.shape))  # (D, F)
            del w
        self._curves: CurveSet | None = None
        self._zero: tuple[float, list[float], float] | None = None  # from the dense pass
        self._fisher: float | None = None  # K of the dense-statistics prediction K c^2
        self._cache: dict[tuple[str, float], float] = {}  # (method, c) -> truncated mean NLL
        self._thresholds: dict[tuple[str, float], np.ndarray] = {}
        self._counted: dict[tuple[str, float], tuple[float, list[float], float]] = {}
        self.timings: dict[str, float] = {}
        self.parked = False
        self.loads = 1

    # --- one model on the accelerator at a time ---------------------------------------
    def park(self, drop: bool = False) -> None:
        """Free the accelerator for another model: complete the CETT curves (65,536 numbers
        per layer stay; the activations go), then move the weights to host memory, or with
        ``drop`` free them (reloaded from disk by :meth:`unpark`).  On CPU without ``drop``
        nothing moves (the weights are in host memory already)."""
        if self._curves is not None and self.lm.device.type != "cpu" or drop:
            self.curves().complete()
        if drop:
            self._free_model()
        elif self.lm.device.type != "cpu" and not self.lm.extra.get("device_map"):
            self._move(torch.device("cpu"))
        self.parked = True

    def unpark(self) -> None:
        """Bring a parked model back to its device (reloading dropped weights)."""
        if not self.parked:
            return
        if self.lm.model is None:
            if self.reload is None:
                raise RuntimeError("a dropped model cannot be reloaded (no loader given)")
            lm = self.reload()
            self.lm.model, self.lm.sites = lm.model, lm.sites
            self.ev.lm = self.lm
            self.loads += 1
        elif self.lm.device.type != "cpu" and not self.lm.extra.get("device_map"):
            self._move(self.lm.device)
        self.parked = False

    def _free_model(self) -> None:
        self.lm.model = None
        self.lm.sites = []
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _move(self, dev: torch.device) -> None:
        self.lm.model.to(dev)
        self.wnorms = [w.to(dev) for w in self.wnorms]
        if self._curves is not None:
            self._curves.to(dev)
        if dev.type == "cpu" and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def release(self) -> None:
        """Free the model and every statistic (the measurer is done)."""
        self._curves = None
        self._free_model()

    # --- dense ----------------------------------------------------------------------
    @property
    def nll_dense(self) -> float:
        return self.ev.dense_nll()

    def stats_bytes(self) -> int:
        """Memory the curves need, counting everything they keep and the largest transient.

        Kept, per layer: the activations and sizes (8 bytes per (token, neuron) pair), the
        float32 copy of W_out (4 D F), the neuron norms (twice), the per-token FFN output
        norms, the candidate grid (float32, float64 and the bucketing's padded copy) and
        three float64 arrays over it (values, coarse proxy, pair counts), and the tail sums
        of up to ``MAX_SEGMENTS`` windows (two (T, D) float32 matrices each).
        Transient, once (the largest layer): selecting and sorting a window's pairs (a
        boolean mask and 40 bytes per pair), a new window's base and the traversal's copy
        (two (T, D) matrices) and three traversal blocks of ``traverse_elems`` floats."""
        T = self.data.n_tokens
        K = self.n_candidates
        total, widest = 0, 0
        for d, f in self.w_shapes:
            total += T * f * 8 + d * f * 4 + f * 8 + T * 4 + K * 40 + 16
            total += MAX_SEGMENTS * 2 * T * d * 4
            widest = max(widest, T * f * 41 + 2 * T * d * 4)
        return total + widest + 3 * 4 * traverse_elems(self.lm.device)

    def retained_bytes(self) -> int:
        """Bytes of the tensors and arrays the curves hold now (for checking the estimate)."""
        if self._curves is None:
            return 0
        return self._curves.retained_bytes()

    def memory_budget(self) -> int:
        """Bytes the statistics may take: ``--max-memory-gb``, else 80% of the device's
        free memory (CUDA: ``mem_get_info`` after the model is loaded; CPU: MemAvailable)."""
        if self.max_memory_gb is not None:
            return int(self.max_memory_gb * 2 ** 30)
        dev = self.lm.device
        if dev.type == "cuda":
            free, _ = torch.cuda.mem_get_info(dev)
            return int(0.8 * free)
        return int(0.8 * _available_ram())

    def _budget_text(self) -> str:
        if self.max_memory_gb is not None:
            return f"--max-memory-gb {self.max_memory_gb:g}"
        return f"80% of free {self.lm.device.type} memory, {self.memory_budget() / 2 ** 30:.1f} GiB"

    def curves(self, keep_activations: bool = False) -> CurveSet:
        """CETT curves of every layer from one dense pass (layer groups if memory is short).
        The first pass also counts the zero metric when it is wanted and collects what the
        first probe's prediction needs, so neither costs a forward of its own."""
        if self._curves is not None:
            return self._curves
        t0 = time.perf_counter()
        budget = self.memory_budget()
        n_layers = len(self.lm.sites)
        need = self.stats_bytes()
        if need <= budget:
            groups = [list(range(n_layers))]
            full = False
        else:
            if keep_activations:
                self._require_all_activations("bisect")
            per = max(1, int(budget // max(1, need // n_layers)))
            groups = [list(range(i, min(n_layers, i + per))) for i in range(0, n_layers, per)]
            full = True
        curves: list = [None] * n_layers
        stats: list = [None] * n_layers
        energy = None  # sum over layers of ||FFN output||^2 per token
        fisher = None
        for j, group in enumerate(groups):
            captured, fisher_part = self._capture(group, first=j == 0)
            fisher = fisher_part if j == 0 else fisher
            for i, st in captured.items():
                e = st.fnorm.double().square()
                energy = e if energy is None else energy + e
                part = CurveSet.from_stats([st], full=full)
                curves[i] = part.curves[0]
                stats[i] = None if full else st
        self._curves = CurveSet(curves, self.wnorms, None if full else stats)
        if fisher is not None and energy is not None:
            self._fisher = fisher.value(energy.cpu())
        self.timings["dense_stats_s"] = time.perf_counter() - t0
        return self._curves

    def _capture(self, group: list[int], first: bool = False
                 ) -> tuple[dict[int, LayerStats], _Fisher | None]:
        """One dense pass capturing the activations of ``group``; their layer statistics.
        The first pass observes every layer for the zero metric and the prediction."""
        grab = _Capture(group)
        zero = _Counter(len(self.lm.sites), zero_mode=True) if first and self.want_zero else None
        fisher = _Fisher(self.lm) if first else None
        with fisher if fisher is not None else contextlib.nullcontext():
            res = self.ev.run(observer=_Fanout(grab, zero),
                              layers=None if zero is not None else set(group),
                              need_s=zero is not None, on_logits=fisher)
        _check_finite(res.nll[0], self.lm, "dense")
        if self.ev._dense_nll is None:
            self.ev._dense_nll = res.nll[0]
        if zero is not None:
            self._zero = (res.nll[0], *zero.ratios())
        out = {}
        for i in group:
            a = torch.cat(grab.captured.pop(i))
            out[i] = build_layer_stats(a, self.lm.sites[i].w_out().to(a.device), self.n_candidates)
        return out, fisher if fisher is not None and fisher.ok else None

    def predicted_cett(self, p: float) -> float | None:
        """The CETT whose predicted log PPL ratio K c^2 reaches log(1 + p/100) (module
        :class:`_Fisher`); None when the model's output layer could not be read."""
        self.curves()
        if not self._fisher or not math.isfinite(self._fisher) or self._fisher <= 0:
            return None
        return min(1.0, math.sqrt(math.log1p(p / 100.0) / self._fisher))

    def _require_all_activations(self, search: str) -> None:
        """Refuse, naming the numbers, a search that needs every layer's activations at once
        when they exceed --max-memory-gb."""
        need = self.stats_bytes()
        if need > self.memory_budget():
            raise MeasureError(
                f"{self.lm.ref.path}: --search {search} needs all activations in memory "
                f"({need / 2 ** 30:.1f} GiB > {self._budget_text()}); "
                "use --search fast or fewer tokens")

    def paper_thresholds(self, c: float) -> np.ndarray:
        """Per-layer thresholds for c as the authors' code derives them: a fresh dense pass
        capturing activations, then per-layer bisection over the candidates."""
        self._require_all_activations("paper")
        stats, _ = self._capture(list(range(len(self.lm.sites))))
        out = []
        for st in stats.values():
            k, n = threshold_index_bisect(st, c)
            self.paper_evals = getattr(self, "paper_evals", 0) + n
            out.append(float(st.grid[k]))
        return np.array(out)

    def _paper_step(self, c: float) -> tuple[float, np.ndarray]:
        """One step of the authors' procedure: :meth:`paper_thresholds`, then the truncated
        pass (mean NLL, thresholds)."""
        thr = self.paper_thresholds(c)
        counter = _Counter(len(self.lm.sites))
        res = self.ev.run(mask_fn=ThresholdMask(self.wnorms, torch.tensor(thr, dtype=torch.float32)),
                          observer=counter)
        self._counted[("paper", c)] = (res.nll[0], *counter.ratios())
        return res.nll[0], thr

    # --- masked passes -----------------------------------------------------------------
    def _count_pass(self, mask_fn: MaskFn | None, need_s: bool = False,
                    zero_mode: bool = False) -> tuple[float, list[float], float]:
        counter = _Counter(len(self.lm.sites), zero_mode=zero_mode,
                           widths=[f for _, f in self.w_shapes])
        res = self.ev.run(mask_fn=mask_fn, observer=counter, need_s=need_s)
        _check_finite(res.nll[0], self.lm, "truncated")
        layer, dead = counter.ratios()
        return res.nll[0], layer, dead

    def log_ratios(self, cs: list[float], method: str = "fast") -> list[float]:
        """log PPL ratio at each CETT value; several values share one batched forward (one
        replica of the batch each) and every replica's activation ratios are counted, so
        the row at the answer needs no pass of its own."""
        todo = list(dict.fromkeys(c for c in cs if (method, c) not in self._cache))
        if method == "paper":
            for c in todo:
                self._cache[(method, c)], self._thresholds[(method, c)] = self._paper_step(c)
            return [self._cache[(method, c)] - self.nll_dense for c in cs]
        curves = self.curves(keep_activations=(method == "bisect"))
        if todo:
            get = curves.thresholds_bisect if method == "bisect" else curves.thresholds
            thr_np = np.stack([get(c) for c in todo])
            thr = torch.tensor(thr_np, dtype=torch.float32)
            counter = _Counter(len(self.lm.sites), replicas=len(todo))
            res = self.ev.run(mask_fn=ThresholdMask(self.wnorms, thr), replicas=len(todo),
                              observer=counter)
            for j, (c, nll, t) in enumerate(zip(todo, res.nll, thr_np, strict=True)):
                self._cache[(method, c)] = nll
                self._thresholds[(method, c)] = t
                self._counted[(method, c)] = (nll, *counter.ratios(j))
        return [self._cache[(method, c)] - self.nll_dense for c in cs]

    # --- metrics -----------------------------------------------------------------------
    def zero(self) -> MetricResult:
        """Inactive iff the activation output s_i is exactly 0 (no truncation).  Counted in
        the dense pass when it ran with ``want_zero``; else its own plain pass, which is
        then the dense pass (its NLL is the dense NLL)."""
        if self._zero is None:
            nll, layer, dead = self._count_pass(None, need_s=True, zero_mode=True)
            if self.ev._dense_nll is None:
                self.ev._dense_nll = nll
            self._zero = (nll, layer, dead)
        nll, layer, dead = self._zero
        return self._result("zero", float("nan"), layer, dead, nll)

    def topk(self, k: float) -> MetricResult:
        """Keep the ceil(k * d_f) neurons of largest |s_i| per token and layer."""
        if not 0 < k <= 1:
            raise MeasureError(f"--metric topk:{k}: k must be a fraction in (0, 1]")

        def fn(pos: int, a: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
            ref = (s if s is not None else a).float().abs()
            n = max(1, math.ceil(k * ref.shape[-1]))
            idx = ref.topk(n, dim=-1).indices
            return torch.zeros_like(ref, dtype=torch.bool).scatter_(-1, idx, True)

        nll, layer, dead = self._count_pass(fn, need_s=True)
        return self._result("topk", k, layer, dead, nll)

    def fat(self, eps: float) -> MetricResult:
        """FAT-eps: inactive when |s_i| < eps."""
        if eps < 0:
            raise MeasureError(f"--metric fat:{eps}: eps must be >= 0")

        def fn(pos: int, a: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
            return (s if s is not None else a).float().abs() >= eps

        nll, layer, dead = self._count_pass(fn, need_s=True)
        return self._result("fat", eps, layer, dead, nll)

    def cett(self, c: float, thresholds: np.ndarray | None = None) -> MetricResult:
        """Per-layer thresholds for CETT c, then one truncated pass."""
        if thresholds is None:
            thresholds = self.curves().thresholds(c)
        mask = ThresholdMask(self.wnorms, torch.tensor(thresholds, dtype=torch.float32))
        nll, layer, dead = self._count_pass(mask)
        r = self._result("cett", c, layer, dead, nll)
        r.cett, r.layer_thresholds = c, [float(x) for x in thresholds]
        return r

    def search(self, p: float, method: str = "fast", xtol: float = 1e-3,
               progress: Callable[[int], None] | None = None) -> SearchResult:
        """The PPL-p% search on this model alone (module :mod:`search`)."""
        def objective(cs: list[float]) -> list[float]:
            out = self.log_ratios(cs, method)
            if progress is not None:
                progress(1)
            return out

        if method in ("bisect", "paper"):
            return bisect_search(objective, p, xtol, per_pass=1 if method == "paper" else
                                 self.per_pass, method=method)
        return fast_search(objective, p, xtol, c_init=self.predicted_cett(p),
                           per_pass=self.per_pass)

    def ppl_p(self, p: float, method: str = "fast", xtol: float = 1e-3,
              progress: Callable[[int], None] | None = None) -> MetricResult:
        """CETT-PPL-p%: search c, then measure at it."""
        t0 = time.perf_counter()
        res = self.search(p, method, xtol, progress)
        return self.at_cett(p, res, time.perf_counter() - t0, method)

    def at_cett(self, p: float, res: SearchResult, seconds: float = float("nan"),
                method: str = "fast") -> MetricResult:
        """The ppl-p row for a CETT value found by a search (own or joint)."""
        key = (method, res.cett)
        if key in self._counted:  # measured during the search: reuse that pass
            nll, layer, dead = self._counted[key]
            r = self._result("cett", res.cett, layer, dead, nll)
            r.cett, r.layer_thresholds = res.cett, [float(x) for x in self._thresholds[key]]
        else:
            curves = self.curves(keep_activations=method != "fast")
            thr = (curves.thresholds(res.cett) if method == "fast"
                   else curves.thresholds_bisect(res.cett))
            r = self.cett(res.cett, thr)
        r.metric, r.metric_arg, r.search = "ppl-p", p, res
        r.extra.update(search_s=seconds, search_passes=res.passes)
        return r

    def _result(self, metric: str, arg: float, layer: list[float], dead: float,
                nll: float) -> MetricResult:
        return MetricResult(metric=metric, metric_arg=arg,
                            activation_ratio=float(np.mean(layer)), layer_ratios=layer,
                            dead_neuron_ratio=dead, ppl_dense=math.exp(self.nll_dense),
                            ppl_sparse=math.exp(nll))


class _Fisher:
    """The dense statistics behind the first probe of the fast search.

    Truncating layer l at CETT c removes a vector of norm about c ||FFN_l(x_t)|| from the
    residual stream of token t; carried to the last layer (residual connections) and
    through the final norm (a relative change of x_L is one of h), it changes the logits
    by U dh, and the NLL by about 1/2 dz^T F_t dz, F_t = diag(p_t) - p_t p_t^T.  For
    directions spread evenly over the width d: E[NLL change] = c^2 K with
    K = mean_t 1/2 S_t (|h_t|^2 / |x_t|^2) tr(U^T F_t U) / d, S_t = sum_l ||FFN_l(x_t)||^2,
    tr(U^T F_t U) = sum_v p_v |u_v|^2 - |sum_v p_v u_v|^2.  A rough model (gains of 1,
    independent layers): it only places the first probe; every later one uses measured
    ratios.  Hooks: the last decoder layer's output (x_L) and the output layer's input (h).
    """

    def __init__(self, lm: LoadedModel) -> None:
        from sparsitylaws.measure.loading import decoder_layers

        self.model = lm.model
        self.ok = True
        try:
            self.head = lm.model.get_output_embeddings()
            self.layers = decoder_layers(lm.model)
            w = self.head.weight if self.head is not None else None
            if w is None or w.device.type == "meta" or not self.layers:
                raise ValueError("no output layer weights")
            self.u = w.detach()
            self.u_sq = w.detach().float().square().sum(dim=1)
        except Exception:  # an architecture whose output layer is not readable: no prediction
            self.ok = False
        self._handles: list = []
        self.reset()

    def reset(self) -> None:
        self.x: list[torch.Tensor] = []  # |x_L|^2 per stat token
        self.h: list[torch.Tensor] = []  # |h|^2
        self.tr: list[torch.Tensor] = []
        self._x_now = self._h_now = None

    def __enter__(self) -> _Fisher:
        if self.ok:
            self._handles = [
                self.layers[-1].register_forward_hook(self._grab_x),
                self.head.register_forward_pre_hook(self._grab_h)]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _grab_x(self, module: torch.nn.Module, args: tuple, out: object) -> None:
        x = out[0] if isinstance(out, tuple) else out
        self._x_now = x.detach().float().square().sum(dim=-1) if torch.is_tensor(x) else None

    def _grab_h(self, module: torch.nn.Module, args: tuple) -> None:
        self._h_now = args[0].detach()

    def __call__(self, logits: torch.Tensor, stat: torch.Tensor) -> None:
        """The evaluator's ``on_logits``: per stat token, |x_L|^2, |h|^2 and the trace."""
        if not self.ok or self._x_now is None or self._h_now is None:
            self.ok = False
            return
        try:
            sel = stat.reshape(-1)
            h = self._h_now.reshape(-1, self._h_now.shape[-1])[sel]
            x2 = self._x_now.reshape(-1)[sel]
            z = logits.reshape(-1, logits.shape[-1])[sel]
            for i in range(0, z.shape[0], 512):
                p = torch.softmax(z[i:i + 512].float(), dim=-1)
                mean_u = (p.to(self.u.dtype) @ self.u).float()
                self.tr.append((p @ self.u_sq.to(p.device) - mean_u.square().sum(dim=1)).cpu())
            self.h.append(h.float().square().sum(dim=-1).cpu())
            self.x.append(x2.cpu())
        except Exception:  # shapes that do not line up (e.g. a flattened batch): no prediction
            self.ok = False
        self._x_now = self._h_now = None

    def value(self, energy: torch.Tensor) -> float | None:
        """K, given S_t (per stat token, the same order as the captured activations)."""
        if not self.ok or not self.tr:
            return None
        tr, h2, x2 = torch.cat(self.tr).double(), torch.cat(self.h).double(), torch.cat(self.x).double()
        if not tr.shape == h2.shape == x2.shape == energy.shape:
            return None
        d = self.u.shape[1]
        k = 0.5 * energy * (h2 / x2.clamp_min(1e-30)) * tr / d
        return float(k.mean())


def _check_finite(nll: float, lm: LoadedModel, what: str) -> None:
    """A NaN or infinite dense NLL means the model's outputs are not finite: no row."""
    if not math.isfinite(nll) and (what == "dense" or math.isnan(nll)):
        raise MeasureError(f"{lm.ref.path}: the {what} NLL is {nll} (the model's outputs are "
                           "not finite); no row is written")


def _available_ram() -> int:
    """Bytes of memory available to a new process (Linux MemAvailable; else 8 GiB)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2 ** 30


def parse_metric(spec: str) -> tuple[str, float]:
    """'ppl-p' | 'zero' | 'topk:0.3' | 'fat:0.01' | 'cett:0.2' -> (name, arg)."""
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    if name not in ("ppl-p", "zero", "topk", "fat", "cett"):
        raise MeasureError(f"--metric {spec}: unknown metric (ppl-p, zero, topk:K, fat:EPS, cett:C)")
    if name in ("zero", "ppl-p"):
        if arg:
            raise MeasureError(f"--metric {spec}: {name} takes no argument (use --p for ppl-p)")
        return name, float("nan")
    try:
        value = float(arg)
    except ValueError:
        raise MeasureError(f"--metric {spec}: {name} needs a number, e.g. {name}:0.1") from None
    if name == "cett" and not 0 <= value <= 1:
        raise MeasureError(f"--metric {spec}: CETT must lie in [0, 1]")
    return name, value
