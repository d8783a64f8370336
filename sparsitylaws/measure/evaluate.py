"""Evaluation tokens and forward passes: dense and masked NLL, with OOM back-off.

The text is cut into ``num_seqs`` consecutive, non-overlapping windows of ``seq_len``
tokens, starting ``offset`` windows' worth of tokens into the text (0: its start); a short
text gives fewer windows, the last one padded (padding is excluded from NLL and from every
statistic).  A folder without tokenizer files is fed UTF-8 bytes (token id = byte value),
handy for tiny test models.

BOS: when the tokenizer itself puts a BOS token first (probed by encoding a word with its
default special tokens, as ``tokenizer(text)`` would; Gemma does, SmolLM2 does not), each
window starts with BOS followed by ``seq_len - 1`` text tokens, as lm-evaluation-harness
and the paper's own evaluation feed them.  ``bos=True``/``False`` forces the choice.  The
BOS position is context only: it is predicted by nothing and excluded from the activation
statistics (its activations are an attention sink, not text); the prediction of the first
text token from it counts in the NLL.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sparsitylaws.errors import MeasureError
from sparsitylaws.measure.hooks import FFNHooks, MaskFn, Observer
from sparsitylaws.measure.loading import LoadedModel

#: on_logits(logits (rows, seq, vocab), stat_mask (rows, seq)): a dense pass's logits
LogitsFn = Callable[[torch.Tensor, torch.Tensor], None]


def load_text(spec: str) -> tuple[str, str]:
    """(name, text) for ``--text``: a file path, or ``pydoc`` for Python's pydoc_data.topics."""
    if spec == "pydoc":
        import pydoc_data.topics as topics

        text = "\n\n".join(topics.topics[k] for k in sorted(topics.topics))
        return "pydoc_data.topics", text
    p = Path(spec)
    if not p.is_file():
        raise MeasureError(f"--text {spec}: file not found (give a text file or 'pydoc')")
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise MeasureError(f"--text {spec}: unreadable ({exc})") from exc
    if not text.strip():
        raise MeasureError(f"--text {spec}: the text is empty")
    return p.name, text


@dataclass
class EvalData:
    """Evaluation batch: token ids and a mask of real (non-padding) tokens."""

    input_ids: torch.Tensor  # (N, S) int64
    mask: torch.Tensor  # (N, S) bool: real tokens (BOS included), the attention mask
    name: str
    bos: bool = False  # whether every window starts with the tokenizer's BOS token
    requested: int = 0  # text tokens asked for (num_seqs x text tokens per window)

    @property
    def short(self) -> str | None:
        """A warning when the text gave fewer tokens than asked for, else None."""
        got = int(self.mask.sum()) - (int(self.mask[:, 0].sum()) if self.bos else 0)
        if self.requested and got < self.requested:
            return (f"{self.name}: the evaluation text gave {got:,} of the {self.requested:,} "
                    "tokens asked for (--num-seqs x --seq-len); the rows use what there is "
                    "(eval_tokens) and their numbers are noisier")
        return None

    @property
    def stat_mask(self) -> torch.Tensor:
        """(N, S) bool: the tokens whose activations count (real tokens, BOS excluded)."""
        if not self.bos:
            return self.mask
        m = self.mask.clone()
        m[:, 0] = False
        return m

    @property
    def n_tokens(self) -> int:
        """Text tokens whose activations are measured (padding and BOS excluded)."""
        return int(self.stat_mask.sum())

    @property
    def sha256(self) -> str:
        ids = self.input_ids[self.mask].to(torch.int64).cpu().numpy().astype("<i8")
        return hashlib.sha256(ids.tobytes()).hexdigest()


def tokenizer_adds_bos(tokenizer: Any) -> bool:
    """Whether ``tokenizer(text)`` (default special tokens) starts with its BOS token."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if tokenizer is None or bos is None:
        return False
    try:
        ids = tokenizer("hello", add_special_tokens=True)["input_ids"]
    except Exception:  # a tokenizer that cannot encode a plain word: no BOS policy to follow
        return False
    return bool(ids) and int(ids[0]) == int(bos)


def encode_text(text: str, tokenizer: Any, seq_len: int, num_seqs: int, name: str,
                vocab_size: int | None = None, pad_id: int = 0, bos: bool | None = None,
                offset: int = 0) -> EvalData:
    """Tokenize and window the text (see module docstring).

    ``bos``: None follows the tokenizer (:func:`tokenizer_adds_bos`), True/False forces it.
    ``offset``: skip ``offset * num_seqs`` windows of text first (disjoint evaluation sets).
    """
    if seq_len < 2 or num_seqs < 1:
        raise MeasureError(f"--seq-len must be >= 2 and --num-seqs >= 1 (got {seq_len}, {num_seqs})")
    if offset < 0:
        raise MeasureError(f"offset must be >= 0 (got {offset})")
    if not text.strip():
        raise MeasureError(f"{name}: the evaluation text is empty")
    bos_id = getattr(tokenizer, "bos_token_id", None) if tokenizer is not None else None
    use_bos = tokenizer_adds_bos(tokenizer) if bos is None else bool(bos)
    if use_bos and bos_id is None:
        raise MeasureError(f"--bos: {name}: the tokenizer has no BOS token"
                           if tokenizer is not None else
                           "--bos: no tokenizer in the checkpoint (bytes have no BOS token)")
    per_seq = seq_len - 1 if use_bos else seq_len  # text tokens per window
    need = per_seq * num_seqs
    skip = per_seq * num_seqs * offset
    if tokenizer is None:
        raw = text.encode("utf-8")[skip:skip + need]
        if vocab_size is not None and vocab_size < 256:
            raise MeasureError(f"{name}: no tokenizer in the checkpoint and vocabulary < 256 for bytes")
        ids = torch.tensor(list(raw), dtype=torch.int64)
    else:
        # Tokenize a prefix, doubled until it holds the budget or is the whole text (a huge
        # file is never encoded whole; a whitespace-heavy one still gives every token).
        chars = max((skip + need) * 8, 4096)
        while True:
            enc = tokenizer(text[:chars], add_special_tokens=False)["input_ids"]
            if len(enc) >= skip + need + 1 or chars >= len(text):
                break
            chars *= 2
        ids = torch.tensor(enc[skip:skip + need], dtype=torch.int64)
        if tokenizer.pad_token_id is not None:
            pad_id = int(tokenizer.pad_token_id)
    if ids.numel() < 2:
        raise MeasureError(f"{name}: fewer than 2 tokens of evaluation text"
                           + (f" after skipping {skip} tokens" if skip else ""))
    n = math.ceil(ids.numel() / per_seq)
    body = torch.full((n, per_seq), pad_id, dtype=torch.int64)
    body_mask = torch.zeros((n, per_seq), dtype=torch.bool)
    body.view(-1)[: ids.numel()] = ids
    body_mask.view(-1)[: ids.numel()] = True
    if use_bos:
        out = torch.cat([torch.full((n, 1), int(bos_id), dtype=torch.int64), body], dim=1)
        mask = torch.cat([torch.ones((n, 1), dtype=torch.bool), body_mask], dim=1)
    else:
        out, mask = body, body_mask
    return EvalData(out, mask, name, bos=use_bos, requested=need)


@dataclass
class PassResult:
    """One full pass over the evaluation tokens (one or several replicas)."""

    nll: list[float]  # mean NLL per replica


class Evaluator:
    """Runs a model over :class:`EvalData`, dense or masked, counting full passes.

    ``batch_size`` rows per forward (None: every sequence of every replica in one forward);
    on CUDA out-of-memory the rows are halved and the pass retried, down to one sequence.
    """

    def __init__(self, lm: LoadedModel, data: EvalData, batch_size: int | None = None) -> None:
        self.lm = lm
        self.data = data
        self._batch_size = batch_size or data.input_ids.shape[0]
        self.explicit = batch_size is not None  # rows per forward capped by the user
        self.passes = 0  # candidate evaluations (replicas count separately)
        self.forwards = 0  # model calls
        self.forward_s = 0.0  # wall time inside passes (forward, loss, hooks)
        self._dense_nll: float | None = None

    @property
    def batch_size(self) -> int:
        """Rows per forward when capped (``--batch-size`` or out-of-memory halving)."""
        return self._batch_size

    @batch_size.setter
    def batch_size(self, rows: int) -> None:
        self._batch_size = rows
        self.explicit = True

    @property
    def input_device(self) -> torch.device:
        emb = self.lm.model.get_input_embeddings()
        return emb.weight.device if emb is not None else self.lm.device

    def run(self, mask_fn: MaskFn | None = None, observer: Observer | None = None,
            replicas: int = 1, need_s: bool = False, layers: set[int] | None = None,
            on_logits: LogitsFn | None = None) -> PassResult:
        """Mean NLL per replica.  Replicas (several CETT values) share batched forwards:
        one forward holds up to ``batch_size`` rows of all replicas together (default: every
        sequence of every replica), so ``replicas`` values cost one model call, not
        ``replicas`` calls; on out-of-memory the rows per forward are halved.
        ``on_logits(logits, stat_mask)`` sees each forward's logits (dense passes)."""
        while True:
            t0 = time.perf_counter()
            try:
                return self._run(mask_fn, observer, replicas, need_s, layers, on_logits)
            except torch.cuda.OutOfMemoryError as exc:
                rows = self.rows_per_forward(replicas)
                if rows <= 1:
                    raise MeasureError(f"{self.lm.ref.path}: out of GPU memory even with one "
                                       "sequence per batch; use --device-map auto") from exc
                self.batch_size = max(1, rows // 2)
                # what the observer saw of the failed pass must not count twice
                for obs in (observer, on_logits):
                    reset = getattr(obs, "reset", None)
                    if obs is not None and reset is None:
                        raise MeasureError("internal: an observer without reset() cannot be "
                                           "retried after out-of-memory") from exc
                    if reset is not None:
                        reset()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            finally:
                self.forward_s += time.perf_counter() - t0

    def rows_per_forward(self, replicas: int) -> int:
        """Rows (sequences x replicas) in one forward: all of them unless a batch size was
        given or out-of-memory halved it."""
        n = self.data.input_ids.shape[0] * replicas
        return min(n, self.batch_size) if self.explicit else n

    @torch.no_grad()
    def _run(self, mask_fn: MaskFn | None, observer: Observer | None, replicas: int,
             need_s: bool, layers: set[int] | None, on_logits: LogitsFn | None) -> PassResult:
        ids_all, mask_all, stat_all = self.data.input_ids, self.data.mask, self.data.stat_mask
        dev = self.input_device
        n = ids_all.shape[0]
        sums = torch.zeros(replicas, dtype=torch.float64)
        counts = torch.zeros(replicas, dtype=torch.float64)
        rows = self.rows_per_forward(replicas)
        # the (replica, sequence) rows in order, replica-major; a forward takes a slice
        order = [(r, i) for r in range(replicas) for i in range(n)]
        for start in range(0, len(order), rows):
            part = order[start:start + rows]
            seqs = torch.tensor([i for _, i in part])
            reps = torch.tensor([r for r, _ in part])
            ids = ids_all[seqs].to(dev)
            m = mask_all[seqs].to(dev)
            hooks = FFNHooks(self.lm.sites, mask_fn=_rows(mask_fn, reps), observer=observer,
                             need_s=need_s, layers=layers)
            hooks.replica_of_row = reps.to(dev)
            if observer is not None:  # one index of the counted tokens per forward
                hooks.token_mask = stat_all[seqs].to(dev)
            with hooks:
                logits = self.lm.model(input_ids=ids, attention_mask=m.long(),
                                       use_cache=False).logits
            self.forwards += 1
            if on_logits is not None:
                on_logits(logits, stat_all[seqs].to(logits.device))
            tgt = ids[:, 1:]
            valid = m[:, 1:] & m[:, :-1]
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                reduction="none").view(ids.shape[0], -1)
            per_row = (nll * valid).sum(dim=1).double().cpu()
            sums.index_add_(0, reps, per_row)
            counts.index_add_(0, reps, valid.sum(dim=1).double().cpu())
            del logits, nll
        self.passes += replicas
        return PassResult(nll=[float(s) / max(float(c), 1.0) for s, c in zip(sums, counts, strict=True)])

    def dense_nll(self) -> float:
        """Mean NLL of the dense model (computed once, cached)."""
        if self._dense_nll is None:
            self._dense_nll = self.run().nll[0]
        return self._dense_nll


def _rows(mask_fn: MaskFn | None, replica_of_row: torch.Tensor) -> MaskFn | None:
    """Bind the batch layout (the replica of each row) into a threshold mask, if needed."""
    if mask_fn is None:
        return None
    bind = getattr(mask_fn, "bind_rows", None)
    return bind(replica_of_row) if bind is not None else mask_fn
