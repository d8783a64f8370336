"""Train one model of a plan on an ``accelerate`` loop and save its checkpoint series.

* Batches are a pure function of (seed, step): step ``s`` reads ``batch_size`` windows of
  the training bytes at offsets drawn from ``numpy.random.default_rng([seed, s])``; each
  process takes its slice.  So a resumed run sees exactly the batches it would have seen.
* Schedule: WSD (linear warm-up, constant, optional linear decay to ``min_lr_ratio``).
* At each checkpoint step: ``checkpoints/step-NNNNNNN/`` with ``model.safetensors``,
  ``config.json``, the tokenizer and ``trainer_state.json`` (``global_step``,
  ``num_input_tokens_seen``, loss history), written under a hidden name and renamed; then
  ``train_state.pt`` (model, optimizer, scheduler, step), written atomically.
* Resume: a run with ``done.json`` is never retrained; otherwise training continues from
  ``train_state.pt`` (or from scratch), deterministically on CPU.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.lab.corpus import Corpus
from sparsitylaws.lab.models import build_model, non_embedding_params
from sparsitylaws.lab.plan import ModelSpec, Plan, TrainSpec, checkpoint_steps
from sparsitylaws.tables.atomic import atomic_path, atomic_write_text

CKPT_DIR = "checkpoints"
STATE_FILE = "train_state.pt"
DONE_FILE = "done.json"


#: keys added after runs were committed, left out of the hash at these values, so that a
#: run trained before they existed keeps its fingerprint (and resumes)
_LATER_MODEL_KEYS = {"batch_size": None, "design": None}
_LATER_TRAIN_KEYS = {"lr_width_ref": 0}


def fingerprint(spec: ModelSpec, train: TrainSpec, seed: int, corpus_sha: str) -> str:
    """Hash of everything that determines the trained weights."""
    model = {k: v for k, v in asdict(spec).items()
             if not (k in _LATER_MODEL_KEYS and v == _LATER_MODEL_KEYS[k])}
    tr = {k: v for k, v in asdict(train).items()
          if not (k in _LATER_TRAIN_KEYS and v == _LATER_TRAIN_KEYS[k])}
    payload = {"model": model, "train": tr, "seed": seed, "corpus": corpus_sha}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def lr_factor(step: int, total: int, t: TrainSpec) -> float:
    """WSD multiplier of the peak learning rate for optimizer step ``step`` (0-based)."""
    warm = max(1, round(t.warmup_frac * total)) if t.warmup_frac > 0 else 0
    decay = round(t.decay_frac * total)
    if step < warm:
        return (step + 1) / warm
    start = total - decay
    if decay and step >= start:
        return 1.0 - (1.0 - t.min_lr_ratio) * (step - start + 1) / decay
    return 1.0


def batch_offsets(seed: int, step: int, n_bytes: int, seq_len: int, batch: int) -> np.ndarray:
    """Start offsets of step ``step``'s windows (a pure function of its arguments)."""
    rng = np.random.default_rng([seed, step])
    return rng.integers(0, n_bytes - seq_len, size=batch)


def width_scale(spec: ModelSpec, t: TrainSpec) -> float:
    """muP-style factor of the hidden matrices' learning rate: ref/width (1 when off).

    With Adam, a hidden matrix's update moves its output by about lr x fan-in, so a learning
    rate inversely proportional to the width keeps that move the same across widths; their
    initial standard deviation scales with the factor's square root (variance ~ 1/fan-in).
    Embeddings (tied to the output head) and norms keep the plan's learning rate.
    """
    return t.lr_width_ref / spec.width if t.lr_width_ref else 1.0


def param_groups(model: Any, spec: ModelSpec, t: TrainSpec) -> list[dict]:
    """AdamW groups: hidden matrices (weight decay, width-scaled lr), the rest (none)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "embed" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": t.weight_decay, "lr": t.lr * width_scale(spec, t)},
            {"params": no_decay, "weight_decay": 0.0, "lr": t.lr}]


def rescale_init(model: Any, spec: ModelSpec, t: TrainSpec) -> None:
    """Hidden matrices drawn again with std init_std * sqrt(ref/width) (muP-style; a no-op
    when ``lr_width_ref`` is 0)."""
    import torch

    if not t.lr_width_ref:
        return
    std = t.init_std * math.sqrt(width_scale(spec, t))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2 and "embed" not in name:
                p.normal_(0.0, std)


def budget_steps(n_params: int, spec: ModelSpec, t: TrainSpec) -> tuple[int, int]:
    """(token budget, optimizer steps) of a model."""
    tokens = spec.tokens if spec.tokens else int(math.ceil(t.tokens_per_param * n_params))
    per_step = t.batch_size * t.seq_len
    return tokens, max(1, int(math.ceil(tokens / per_step)))


def is_done(run_dir: Path) -> bool:
    return (run_dir / DONE_FILE).is_file()


def train_model(plan: Plan, spec: ModelSpec, corpus: Corpus, run_dir: Path, accelerator: Any,
                log: Callable[[str], None] = print) -> dict:
    """Train ``spec`` into ``run_dir`` (resuming if possible); returns the run's summary."""
    import torch
    from accelerate.utils import set_seed

    t = plan.train_for(spec)
    seed = plan.seed if spec.seed is None else spec.seed
    fp = fingerprint(spec, t, seed, corpus.fingerprint())
    done = run_dir / DONE_FILE
    if done.is_file():
        info = json.loads(done.read_text())
        if info.get("fingerprint") != fp:
            raise SparsityLawsError(
                f"{run_dir}: trained with other settings (fingerprint {info.get('fingerprint')} != {fp}); "
                "use a new output folder or remove this run")
        return info
    world, rank = accelerator.num_processes, accelerator.process_index
    if t.batch_size % world:
        raise SparsityLawsError(f"train.batch_size {t.batch_size} is not divisible by the "
                                f"{world} processes")
    local = t.batch_size // world
    tok = corpus.tokenizer()
    set_seed(seed)
    model = build_model(spec, len(tok), t.seq_len, t.init_std)
    rescale_init(model, spec, t)
    n_params = non_embedding_params(model)
    tokens, total = budget_steps(n_params, spec, t)
    ckpts = checkpoint_steps(total, t.checkpoints, t.first_checkpoint_frac)
    opt = torch.optim.AdamW(param_groups(model, spec, t), lr=t.lr, betas=(t.beta1, t.beta2), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, t))
    state_path = run_dir / STATE_FILE
    start, history, wall_before = 0, [], 0.0
    if state_path.is_file():
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        if st.get("fingerprint") != fp:
            raise SparsityLawsError(f"{state_path}: saved with other settings; use a new output "
                                    "folder or remove this run")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        start, history, wall_before = st["step"], st["history"], st["wall_s"]
        log(f"train {spec.name}: resuming at step {start}/{total}")
    model, opt = accelerator.prepare(model, opt)
    data, offset = corpus.train_ids()
    n_bytes = len(data)
    if n_bytes <= t.seq_len + 1:
        raise SparsityLawsError(f"{corpus.train_path}: training text shorter than one window")
    model.train()
    t0 = time.perf_counter()
    window_loss, window_n = torch.zeros((), device=accelerator.device), 0  # summed on the device: no sync per step
    ck = set(ckpts)
    idx = np.arange(t.seq_len)
    for step in range(start, total):
        offs = batch_offsets(seed, step, n_bytes, t.seq_len, t.batch_size)[rank * local:(rank + 1) * local]
        ids = torch.from_numpy(data[offs[:, None] + idx[None, :]].astype(np.int64) + offset)
        ids = ids.to(accelerator.device)
        with accelerator.autocast():
            loss = model(input_ids=ids, labels=ids).loss
        accelerator.backward(loss)
        if t.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), t.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        window_loss += loss.detach().float()
        window_n += 1
        done_steps = step + 1
        if done_steps in ck:
            wall = wall_before + time.perf_counter() - t0
            mean_loss = float(accelerator.reduce(  # mean over processes: the global batch's loss
                window_loss / window_n, "mean"))
            entry = {"step": done_steps, "num_input_tokens_seen": done_steps * t.batch_size * t.seq_len,
                     "loss": mean_loss, "learning_rate": t.lr * lr_factor(step, total, t),
                     "wall_s": round(wall, 3)}
            history.append(entry)
            window_loss, window_n = torch.zeros((), device=accelerator.device), 0
            if accelerator.is_main_process:
                _save_checkpoint(accelerator.unwrap_model(model), tok, run_dir, entry, history,
                                 total, t, plan, spec)
                _save_state(state_path, accelerator.unwrap_model(model), opt, sched, done_steps,
                            history, wall, fp)
            accelerator.wait_for_everyone()
            rate = (done_steps - start) * t.batch_size * t.seq_len / max(time.perf_counter() - t0, 1e-9)
            if accelerator.is_main_process:
                log(f"train {spec.name}: step {done_steps}/{total}, "
                    f"{entry['num_input_tokens_seen']:,} tokens, loss {entry['loss']:.4f}, {rate:,.0f} tokens/s")
    wall = wall_before + time.perf_counter() - t0
    info = {"model": spec.name, "fingerprint": fp, "n_params": n_params, "tokens_budget": tokens,
            "steps": total, "tokens_trained": total * t.batch_size * t.seq_len,
            "tokens_per_param": total * t.batch_size * t.seq_len / n_params,
            "checkpoint_steps": ckpts, "final_loss": history[-1]["loss"] if history else None,
            "train_wall_s": round(wall, 2), "processes": world}
    if accelerator.is_main_process:
        atomic_write_text(done, json.dumps(info, indent=1))
        if state_path.is_file():
            state_path.unlink()  # optimizer state no longer needed once the run is complete
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    return info


def _save_checkpoint(model: Any, tok: Any, run_dir: Path, entry: dict, history: list, total: int,
                     t: TrainSpec, plan: Plan, spec: ModelSpec) -> Path:
    root = run_dir / CKPT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{entry['step']:07d}"
    tmp = root / f".tmp-{final.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    state = {"global_step": entry["step"], "max_steps": total,
             "num_input_tokens_seen": entry["num_input_tokens_seen"],
             "train_batch_size": t.batch_size, "seq_len": t.seq_len, "log_history": list(history),
             "lab": {"plan": plan.name, "model": asdict(spec)}}
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1))
    if final.exists():  # left by a run killed between this rename and its state file
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def _save_state(path: Path, model: Any, opt: Any, sched: Any, step: int, history: list,
                wall: float, fp: str) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save({"step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "history": history, "wall_s": wall,
                    "fingerprint": fp}, tmp)
