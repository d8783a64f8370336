"""Sparsity metrics on one loaded model: zero, top-k, FAT-eps, CETT, CETT-PPL-p%.

Every metric ends in one masked (or plain) pass over the evaluation tokens whose hooks
count, per layer, the (token, neuron) pairs kept active; the activation ratio is the mean
over layers of the per-layer ratios (padding excluded), and a neuron is dead when it is
active on fewer than 0.1% of the tokens.  Ratios are measured in the truncated model
itself, as the paper's own inspection does.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from sparsitylaws.errors import MeasureError
from sparsitylaws.measure.cett import (
    N_CANDIDATES,
    CurveSet,
    LayerStats,
    build_layer_stats,
    threshold_index_bisect,
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
    """Observer: active (token, neuron) counts per layer and per neuron."""

    def __init__(self, n_layers: int, zero_mode: bool = False) -> None:
        self.n_layers = n_layers
        self.zero_mode = zero_mode
        self.reset()

    def reset(self) -> None:
        """Forget everything seen (a pass retried after out-of-memory starts over)."""
        self.kept: list[torch.Tensor | None] = [None] * self.n_layers
        self.tokens = [0] * self.n_layers

    def __call__(self, pos: int, a: torch.Tensor, s: torch.Tensor | None,
                 keep: torch.Tensor | None) -> None:
        if self.zero_mode:
            active = (s if s is not None else a) != 0
        elif keep is not None:
            active = keep
        else:
            active = torch.ones_like(a, dtype=torch.bool)
        per_neuron = active.sum(dim=0, dtype=torch.int64)  # stays on the device: no sync
        self.kept[pos] = per_neuron if self.kept[pos] is None else self.kept[pos] + per_neuron
        self.tokens[pos] += a.shape[0]

    def ratios(self) -> tuple[list[float], float]:
        layer, dead, total = [], 0, 0
        for k, t in zip(self.kept, self.tokens, strict=False):
            if k is None or t == 0:
                raise RuntimeError("a layer saw no tokens")
            k = k.cpu()
            layer.append(float(k.sum()) / (t * k.numel()))
            dead += int((k.double() / t < DEAD_FRACTION).sum())
            total += k.numel()
        return layer, dead / total


class _Capture:
    """Observer: the dense activations of some layers (float32), per forward."""

    def __init__(self, group: list[int]) -> None:
        self.group = group
        self.reset()

    def reset(self) -> None:
        """Forget everything seen (a pass retried after out-of-memory starts over)."""
        self.captured: dict[int, list[torch.Tensor]] = {i: [] for i in self.group}

    def __call__(self, pos: int, a: torch.Tensor, s: torch.Tensor | None,
                 keep: torch.Tensor | None) -> None:
        self.captured[pos].append(a.float())


class ModelMeasurer:
    """All metrics for one model on one evaluation set, sharing the dense pass."""

    def __init__(self, lm: LoadedModel, data: EvalData, batch_size: int | None = None,
                 n_candidates: int = N_CANDIDATES, max_memory_gb: float | None = None,
                 per_pass: int | None = None) -> None:
        self.lm = lm
        self.data = data
        self.ev = Evaluator(lm, data, batch_size)
        self.n_candidates = n_candidates
        self.max_memory_gb = max_memory_gb
        # one candidate per forward on every device unless asked: a device must not change
        # the answer (the search path depends on per_pass; it is part of the settings hash)
        self.per_pass = per_pass or 1
        self.wnorms, self.w_shapes = [], []
        for site in lm.sites:
            w = site.w_out()
            self.wnorms.append(w.norm(dim=0))
            self.w_shapes.append(tuple(w.shape))  # (D, F)
            del w
        self._curves: CurveSet | None = None
        self._cache: dict[tuple[str, float], float] = {}  # (method, c) -> truncated mean NLL
        self._thresholds: dict[tuple[str, float], np.ndarray] = {}
        self._counted: dict[tuple[str, float], tuple[float, list[float], float]] = {}
        self.timings: dict[str, float] = {}

    # --- one model on the accelerator at a time ---------------------------------------
    def park(self) -> None:
        """Move the model and its statistics to host memory (a no-op on CPU or with a
        device map), freeing the accelerator for another model."""
        if self.lm.device.type != "cpu" and not self.lm.extra.get("device_map"):
            self._move(torch.device("cpu"))

    def unpark(self) -> None:
        """Bring a parked model and its statistics back to its device."""
        if self.lm.device.type != "cpu" and not self.lm.extra.get("device_map"):
            self._move(self.lm.device)

    def _move(self, dev: torch.device) -> None:
        self.lm.model.to(dev)
        self.wnorms = [w.to(dev) for w in self.wnorms]
        if self._curves is not None:
            self._curves.to(dev)
        if dev.type == "cpu" and torch.cuda.is_available():
            torch.cuda.empty_cache()

    # --- dense ----------------------------------------------------------------------
    @property
    def nll_dense(self) -> float:
        return self.ev.dense_nll()

    def stats_bytes(self) -> int:
        """Memory the curves need, counting everything: per layer the activations and
        sizes (8 bytes per (token, neuron) pair), the float32 copy of W_out and four
        per-token vectors of width D (FFN output norm, tail sums at a window's ends, the
        traversal's copy); plus the largest layer's temporaries while its pairs are
        selected and sorted (24 bytes per pair)."""
        T = self.data.n_tokens
        total, widest = 0, 0
        for d, f in self.w_shapes:
            total += T * f * 8 + d * f * 4 + T * d * 4 * 4
            widest = max(widest, T * f * 24)
        return total + widest

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
        """CETT curves of every layer from one dense pass (layer groups if memory is short)."""
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
        for group in groups:
            for i, st in self._capture(group).items():
                part = CurveSet.from_stats([st], full=full)
                curves[i] = part.curves[0]
                stats[i] = None if full else st
        self._curves = CurveSet(curves, self.wnorms, None if full else stats)
        self.timings["dense_stats_s"] = time.perf_counter() - t0
        return self._curves

    def _capture(self, group: list[int]) -> dict[int, LayerStats]:
        """One dense pass capturing the activations of ``group``; their layer statistics."""
        grab = _Capture(group)
        res = self.ev.run(observer=grab, layers=set(group))
        if self.ev._dense_nll is None:
            self.ev._dense_nll = res.nll[0]
        out = {}
        for i in group:
            a = torch.cat(grab.captured.pop(i))
            out[i] = build_layer_stats(a, self.lm.sites[i].w_out().to(a.device), self.n_candidates)
        return out

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
        stats = self._capture(list(range(len(self.lm.sites))))
        return np.array([float(st.grid[threshold_index_bisect(st, c)[0]]) for st in stats.values()])

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
        counter = _Counter(len(self.lm.sites), zero_mode=zero_mode)
        res = self.ev.run(mask_fn=mask_fn, observer=counter, need_s=need_s)
        layer, dead = counter.ratios()
        return res.nll[0], layer, dead

    def log_ratios(self, cs: list[float], method: str = "fast") -> list[float]:
        """log PPL ratio at each CETT value (batched replicas share a forward)."""
        todo = [c for c in cs if (method, c) not in self._cache]
        if method == "paper":
            for c in todo:
                self._cache[(method, c)], self._thresholds[(method, c)] = self._paper_step(c)
            return [self._cache[(method, c)] - self.nll_dense for c in cs]
        curves = self.curves(keep_activations=(method == "bisect"))
        if todo:
            get = curves.thresholds_bisect if method == "bisect" else curves.thresholds
            thr_np = np.stack([get(c) for c in todo])
            thr = torch.tensor(thr_np, dtype=torch.float32)
            counter = _Counter(len(self.lm.sites)) if len(todo) == 1 else None
            res = self.ev.run(mask_fn=ThresholdMask(self.wnorms, thr), replicas=len(todo),
                              observer=counter)
            for c, nll, t in zip(todo, res.nll, thr_np, strict=True):
                self._cache[(method, c)] = nll
                self._thresholds[(method, c)] = t
            if counter is not None:  # ratios of this pass: the final row needs no extra pass
                self._counted[(method, todo[0])] = (res.nll[0], *counter.ratios())
        return [self._cache[(method, c)] - self.nll_dense for c in cs]

    # --- metrics -----------------------------------------------------------------------
    def zero(self) -> MetricResult:
        """Inactive iff the activation output s_i is exactly 0 (no truncation)."""
        nll, layer, dead = self._count_pass(None, need_s=True, zero_mode=True)
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

    def ppl_p(self, p: float, method: str = "fast", xtol: float = 1e-3,
              ftol: float = 5e-4) -> MetricResult:
        """CETT-PPL-p%: search c, then measure at it."""
        t0 = time.perf_counter()
        if method in ("bisect", "paper"):
            res = bisect_search(lambda cs: self.log_ratios(cs, method), p, xtol)
        else:
            res = fast_search(self.log_ratios, p, xtol, ftol, per_pass=self.per_pass)
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
