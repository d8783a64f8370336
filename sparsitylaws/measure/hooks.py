"""Forward pre-hooks on the FFN down projections: capture the input a, apply masks.

No model code is forked: each down projection gets a forward pre-hook that sees
``a`` (its input: act(gate) * up, or act(up) for non-gated FFNs) and may replace it by
``a * keep``.  When a metric needs the gate activation ``s`` (zero, top-k, FAT), a forward
hook on the activation module stashes its output for the pre-hook of the same layer.
Padding tokens are excluded from every statistic through :attr:`FFNHooks.token_mask`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from sparsitylaws.measure.loading import FFNSite

#: mask_fn(layer_pos, a, s) -> keep (bool, same shape as a) or None for "keep all".
MaskFn = Callable[[int, torch.Tensor, "torch.Tensor | None"], "torch.Tensor | None"]
#: observer(layer_pos, a_valid (N, F) float32 or None, s_valid or None, keep_valid or None,
#: replica_valid (N,) int64: the replica of each observed token).  a_valid is None for an
#: observer whose ``wants_a`` is False (no float32 copy of the activations is made for it).
Observer = Callable[[int, "torch.Tensor | None", "torch.Tensor | None", "torch.Tensor | None",
                     torch.Tensor], None]


class FFNHooks:
    """Context manager installing the hooks on every FFN site.

    Set :attr:`token_mask` (bool, batch x seq) before each forward so observers see only
    real tokens.  ``layers`` restricts observation (not masking) to some layer positions.
    """

    def __init__(
        self,
        sites: list[FFNSite],
        mask_fn: MaskFn | None = None,
        observer: Observer | None = None,
        need_s: bool = False,
        layers: set[int] | None = None,
    ) -> None:
        self.sites = sites
        self.mask_fn = mask_fn
        self.observer = observer
        self.need_s = need_s
        self.layers = layers
        self._token_index: dict[torch.device, torch.Tensor] = {}
        self._token_replica: dict[torch.device, torch.Tensor] = {}
        self._token_mask: torch.Tensor | None = None
        #: (rows,) replica of each batch row (several CETT values in one forward)
        self.replica_of_row: torch.Tensor | None = None
        self._wants_a = getattr(observer, "wants_a", True)
        self._s: dict[int, torch.Tensor] = {}
        self._handles: list[Any] = []

    @property
    def token_mask(self) -> torch.Tensor | None:
        return self._token_mask

    @token_mask.setter
    def token_mask(self, mask: torch.Tensor | None) -> None:
        """Tokens the observer sees; their flat index is computed once per forward (one
        host sync), not in every layer."""
        self._token_mask = mask
        self._token_index = {}
        self._token_replica = {}
        if mask is not None:
            idx = mask.reshape(-1).nonzero().squeeze(1)
            self._token_index[idx.device] = idx
            reps = self.replica_of_row
            if reps is None:
                reps = torch.zeros(mask.shape[0], dtype=torch.int64)
            reps = reps.to(mask.device)[:, None].expand(mask.shape).reshape(-1)
            self._token_replica[idx.device] = reps.index_select(0, idx)

    def __enter__(self) -> FFNHooks:
        for pos, site in enumerate(self.sites):
            self._handles.append(site.down.register_forward_pre_hook(self._pre_hook(pos)))
            if self.need_s and site.act is not None:
                self._handles.append(site.act.register_forward_hook(self._act_hook(pos)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._s.clear()

    def _act_hook(self, pos: int) -> Callable:
        def hook(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
            self._s[pos] = output

        return hook

    def _pre_hook(self, pos: int) -> Callable:
        def hook(module: torch.nn.Module, args: tuple) -> tuple | None:
            a = args[0]
            s = self._s.pop(pos, None) if self.need_s else None
            if s is not None and s.shape != a.shape:
                s = None
            if s is None and self.need_s:
                s = a  # non-gated FFN (a = act(up)) or activation not hookable: s := a
            keep = self.mask_fn(pos, a, s) if self.mask_fn is not None else None
            if self.observer is not None and (self.layers is None or pos in self.layers):
                f = a.shape[-1]
                sel = self._valid(a)
                a_v = a.reshape(-1, f).index_select(0, sel).float() if self._wants_a else None
                s_v = s.reshape(-1, f).index_select(0, sel).float() if s is not None else None
                k_v = keep.reshape(-1, f).index_select(0, sel) if keep is not None else None
                self.observer(pos, a_v, s_v, k_v, self._replicas(a, sel))
            if keep is None:
                return None
            return (a * keep.to(a.dtype),) + tuple(args[1:])

        return hook

    def _replicas(self, a: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
        """Replica of each observed token, on a's device."""
        rep = self._token_replica.get(a.device)
        if rep is None:
            if self._token_replica:
                rep = next(iter(self._token_replica.values())).to(a.device)
            else:
                rep = torch.zeros(sel.shape[0], dtype=torch.int64, device=a.device)
            self._token_replica[a.device] = rep
        return rep

    def _valid(self, a: torch.Tensor) -> torch.Tensor:
        """Flat index of the observed tokens among a's rows, on a's device."""
        n = a.reshape(-1, a.shape[-1]).shape[0]
        if self._token_mask is None:
            return torch.arange(n, device=a.device)
        if self._token_mask.numel() != n:
            raise RuntimeError(f"token mask has {self._token_mask.numel()} entries for {n} tokens")
        idx = self._token_index.get(a.device)
        if idx is None:  # a layer on another device (device_map): move the index once
            idx = next(iter(self._token_index.values())).to(a.device)
            self._token_index[a.device] = idx
        return idx


class ThresholdMask:
    """Mask for CETT thresholds: drop neuron i when |a_i| * ||W_out[:, i]|| < eps_l.

    ``thresholds`` is (replicas, layers).  The evaluator binds the batch layout with
    :meth:`bind_rows` (the replica of each batch row), so several candidate CETT values
    share one batched forward.
    """

    def __init__(self, wnorms: list[torch.Tensor], thresholds: torch.Tensor) -> None:
        self.wnorms = wnorms
        self.thresholds = torch.as_tensor(thresholds, dtype=torch.float32)
        if self.thresholds.dim() == 1:
            self.thresholds = self.thresholds[None]
        self._cache: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}

    def _on(self, pos: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer pos's thresholds and neuron norms on ``device`` (copied once per device)."""
        key = (pos, device)
        if key not in self._cache:
            self._cache[key] = (self.thresholds[:, pos].to(device), self.wnorms[pos].to(device))
        return self._cache[key]

    def bind_rows(self, replica_of_row: torch.Tensor | None) -> MaskFn:
        def fn(pos: int, a: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
            eps, wn = self._on(pos, a.device)
            if replica_of_row is None:
                eps = eps[:1].expand(a.shape[0])
            else:
                eps = eps[replica_of_row.to(a.device)]
                # a is (rows, seq, F), or flattened to (rows * seq, F) as OPT does
                eps = eps.repeat_interleave(a.shape[0] // eps.numel())
            eps = eps.view(-1, *([1] * (a.dim() - 1)))
            sizes = a.float().abs() * wn
            return sizes >= eps

        return fn

    def __call__(self, pos: int, a: torch.Tensor, s: torch.Tensor | None) -> torch.Tensor:
        return self.bind_rows(None)(pos, a, s)
