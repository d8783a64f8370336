"""Size a plan to a wall-time budget: time a few optimizer steps and the measuring passes
of each model, then set ``train.tokens_per_param`` (never above the plan's own) so that
training and measuring fit.

A GPU lent for minutes, or a laptop for an hour, fits a plan at fewer tokens per parameter
than the paper's 190; this says how many, from steps timed on the machine itself:

    python -m sparsitylaws.lab.sizing PLAN --budget-s 300 --workers 5 -o sized.toml

The timed step is the lab's own (the model class, batch, mixed precision and AdamW of
:mod:`.train`) on random token ids; the first ``--warmup`` steps are not timed.  Measuring
does not shrink with the token budget, so it is counted as it is: a freshly initialised
model of each shape is saved as a checkpoint and timed as ``measure`` works on it (load,
the dense statistics pass, one truncated pass over the plan's evaluation tokens), and a
model's measuring time is :func:`measure_seconds` of those.  Seeds of one design share
their timings.  With ``--workers`` K > 1 the estimate is ``max(sum of all models /
overlap, busiest worker)``, where ``overlap`` (default 1: no gain assumed) is how much
faster K processes share the device than one; the split is the one ``lab --workers`` uses.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sparsitylaws.lab.plan import ModelSpec, Plan, load_plan, parse_plan
from sparsitylaws.lab.workers import split_models


def time_step(plan: Plan, spec: ModelSpec, steps: int = 6, warmup: int = 2) -> float:
    """Seconds per optimizer step of ``spec`` at the plan's batch, on this machine."""
    import torch
    from accelerate import Accelerator

    from sparsitylaws.lab.models import build_model, byte_tokenizer

    t = plan.train_for(spec)
    if t.threads:
        torch.set_num_threads(t.threads)
    acc = Accelerator(mixed_precision=t.mixed_precision, cpu=not torch.cuda.is_available())
    torch.manual_seed(0)
    vocab = plan.corpus.vocab_size if plan.corpus.tokenizer == "bpe" else len(byte_tokenizer())
    model = build_model(spec, vocab, t.seq_len, t.init_std)  # the embedding and head cost too
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr)
    model, opt = acc.prepare(model, opt)
    model.train()
    ids = torch.randint(3, vocab, (t.batch_size, t.seq_len), device=acc.device)

    def step() -> None:
        with acc.autocast():
            loss = model(input_ids=ids, labels=ids).loss
        acc.backward(loss)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


#: truncated passes of the joint CETT search per stabilizing checkpoint (the committed runs'
#: searches took 3-5; the sidecar's ``passes``)
SEARCH_PASSES = 4


@dataclass(frozen=True)
class MeasureTiming:
    """Seconds of the pieces of measuring one checkpoint of a model on this machine."""

    load_s: float  # read the checkpoint, build the model
    stats_s: float  # the dense pass with the CETT statistics
    pass_s: float  # one truncated pass over the evaluation tokens


def time_measure(plan: Plan, spec: ModelSpec) -> MeasureTiming:
    """Time measuring one checkpoint of ``spec`` (freshly initialised) at the plan's
    measuring settings on this machine (device and dtype as the runner picks them)."""
    import tempfile

    import torch

    from sparsitylaws.lab.models import build_model, byte_tokenizer
    from sparsitylaws.measure.evaluate import encode_text, load_text
    from sparsitylaws.measure.loading import load_model, resolve_checkpoint
    from sparsitylaws.measure.metrics import ModelMeasurer

    ms = plan.measure
    torch.manual_seed(0)
    vocab = plan.corpus.vocab_size if plan.corpus.tokenizer == "bpe" else len(byte_tokenizer())
    model = build_model(spec, vocab, plan.train.seq_len, plan.train.init_std)
    _, text = load_text("pydoc")
    text = text * max(1, -(-ms.seq_len * ms.num_seqs * 2 // max(1, len(text.encode()))))
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        byte_tokenizer().save_pretrained(tmp)
        for _ in range(2):  # the first round warms up (lazy initialisation, kernels); timed: the second
            t0 = time.perf_counter()
            lm = load_model(resolve_checkpoint(tmp), ms.device, ms.dtype)
            data = encode_text(text, lm.tokenizer, ms.seq_len, ms.num_seqs, "pydoc", vocab_size=vocab)
            mm = ModelMeasurer(lm, data)
            t1 = time.perf_counter()
            mm.curves()
            _sync(lm.device)
            t2 = time.perf_counter()
            mm.log_ratios([0.05])
            _sync(lm.device)
            t3 = time.perf_counter()
            del mm, lm
    return MeasureTiming(load_s=t1 - t0, stats_s=t2 - t1, pass_s=t3 - t2)


def _sync(device) -> None:
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        torch.cuda.synchronize(device)


def measure_seconds(plan: Plan, spec: ModelSpec, t: MeasureTiming) -> float:
    """Measuring time of one model: each checkpoint is loaded, its statistics built and one
    truncated pass run per metric (PPL-p% at the run's CETT, ``zero`` for ReLU, the common
    CETT); the joint search loads the last ``stabilize_last`` checkpoints and runs about
    :data:`SEARCH_PASSES` truncated passes on each."""
    ms = plan.measure
    metrics = 1 + (ms.zero_for_relu and spec.activation == "relu") + (ms.common_cett > 0)
    per_ckpt = t.load_s + t.stats_s + metrics * t.pass_s
    search = ms.stabilize_last * (t.load_s + t.stats_s + SEARCH_PASSES * t.pass_s)
    return plan.train.checkpoints * per_ckpt + search


def _shape(plan: Plan, m: ModelSpec) -> tuple:
    """What a timing depends on: seeds of one design share it."""
    return (m.width, m.depth, m.d_ffn, m.gated, m.activation, m.head_dim, plan.train_for(m).batch_size)


def steps_at(plan: Plan, spec: ModelSpec, tokens_per_param: float) -> int:
    """Optimizer steps of ``spec`` at ``tokens_per_param`` (its own ``tokens`` win)."""
    tokens = spec.tokens or math.ceil(tokens_per_param * spec.estimated_params())
    t = plan.train_for(spec)
    return max(1, math.ceil(tokens / (t.batch_size * t.seq_len)))


def estimate_seconds(plan: Plan, step_s: dict[str, float], tokens_per_param: float, workers: int,
                     overlap: float = 1.0, measure_s: dict[str, float] | None = None) -> float:
    """Wall time of the plan at ``tokens_per_param``: per-step times times steps, plus each
    model's measuring time (``measure_s``, which does not depend on the token budget)."""
    extra = measure_s or {}
    cost = {m.name: step_s[m.name] * steps_at(plan, m, tokens_per_param) + extra.get(m.name, 0.0)
            for m in plan.models}
    groups = split_models(plan, plan.models, workers)
    busiest = max(sum(cost[m.name] for m in g) for g in groups)
    total = sum(cost.values())
    return max(total / overlap, busiest) if len(groups) > 1 else total


def fit_tokens_per_param(plan: Plan, step_s: dict[str, float], budget_s: float, workers: int,
                         overlap: float = 1.0, measure_s: dict[str, float] | None = None) -> float:
    """The largest whole tokens-per-parameter (<= the plan's) whose estimate fits ``budget_s``."""
    hi = plan.train.tokens_per_param
    if estimate_seconds(plan, step_s, hi, workers, overlap, measure_s) <= budget_s:
        return hi
    lo = 1.0
    if estimate_seconds(plan, step_s, lo, workers, overlap, measure_s) > budget_s:
        return lo
    while hi - lo > 1:
        mid = math.floor((lo + hi) / 2)
        if estimate_seconds(plan, step_s, mid, workers, overlap, measure_s) <= budget_s:
            lo = mid
        else:
            hi = mid
    return lo


def with_tokens_per_param(text: str, tokens_per_param: float, comment: str = "") -> str:
    """Plan TOML ``text`` with ``train.tokens_per_param`` set (the rest unchanged).

    A line edit, so comments and layout survive; the result is then parsed and must equal
    the original plan with only that key changed (a ``[train]`` line inside a multi-line
    string, an inline ``train = {...}`` table or a dotted key would otherwise be edited
    wrongly): where it does not, a :class:`PlanError` asks for the edit by hand.
    """
    import copy

    from sparsitylaws.lab.plan import PlanError, tomllib  # tomli before Python 3.11

    num = float(tokens_per_param)
    shown = str(int(num)) if num.is_integer() and abs(num) < 2 ** 53 else repr(num)
    value = f"tokens_per_param = {shown}" + (f"  # {comment}" if comment else "")
    lines = text.splitlines()
    section, train_at = None, None
    for i, line in enumerate(lines):
        head = re.match(r"\s*\[\[?\s*([A-Za-z_.]+)\s*\]\]?\s*(#.*)?$", line)
        if head:
            section = head.group(1)
            if section == "train":
                train_at = i
            continue
        if section == "train" and re.match(r"\s*tokens_per_param\s*=", line):
            lines[i] = value
            break
    else:
        if train_at is None:  # a new table goes last: before other tables it would take their keys
            lines += ["", "[train]", value]
        else:
            lines.insert(train_at + 1, value)
    out = "\n".join(lines) + "\n"
    try:
        expected = copy.deepcopy(tomllib.loads(text))
        expected.setdefault("train", {})["tokens_per_param"] = num
        ok = tomllib.loads(out) == expected
    except (tomllib.TOMLDecodeError, AttributeError, TypeError):
        ok = False
    if not ok:
        raise PlanError("sizing: cannot set train.tokens_per_param in this plan's text safely "
                        f"(set tokens_per_param = {shown} under [train] by hand)")
    parse_plan(out, where="sized plan")  # still a valid plan
    return out


def size_plan(plan: Plan, steps: int = 6, warmup: int = 2, measure: bool = True,
              log: Callable[[str], None] = print) -> tuple[dict[str, float], dict[str, float]]:
    """Per model: seconds per optimizer step, and (``measure``) seconds of measuring."""
    step_s: dict[str, float] = {}
    measure_s: dict[str, float] = {}
    done: dict[tuple, tuple[float, MeasureTiming | None]] = {}
    for m in plan.models:
        key = _shape(plan, m)
        if key not in done:
            mt = time_measure(plan, m) if measure else None
            done[key] = (time_step(plan, m, steps, warmup), mt)
            tr = plan.train_for(m)
            line = (f"# {m.design_name}: {done[key][0] * 1e3:.1f} ms/step "
                    f"({tr.batch_size * tr.seq_len / done[key][0]:,.0f} tokens/s alone)")
            if mt:
                line += (f"; measuring a checkpoint: load {mt.load_s:.2f} s, statistics "
                         f"{mt.stats_s:.2f} s, a pass {mt.pass_s:.2f} s; "
                         f"{measure_seconds(plan, m, mt):.0f} s per model")
            log(line)
        step_s[m.name] = done[key][0]
        if done[key][1] is not None:
            measure_s[m.name] = measure_seconds(plan, m, done[key][1])
    return step_s, measure_s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sparsitylaws.lab.sizing", description=__doc__.split("\n\n")[0])
    ap.add_argument("plan", help="plan TOML file or preset name")
    ap.add_argument("--budget-s", type=float, required=True,
                    help="wall seconds for training and measuring")
    ap.add_argument("--workers", type=int, default=1, help="as 'lab --workers'")
    ap.add_argument("--overlap", type=float, default=1.0,
                    help="speed-up of the workers together over one (default 1: none assumed)")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per model")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    ap.add_argument("--no-measure", action="store_true",
                    help="size training alone (measuring not counted)")
    ap.add_argument("-o", "--output", type=Path, help="write the sized plan here")
    a = ap.parse_args(argv)
    from sparsitylaws.errors import SparsityLawsError

    try:
        plan = load_plan(a.plan)
    except SparsityLawsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no bars per timed checkpoint
    hf_logging.set_verbosity_error()
    step_s, measure_s = size_plan(plan, a.steps, a.warmup, measure=not a.no_measure, log=print)
    tpp = fit_tokens_per_param(plan, step_s, a.budget_s, a.workers, a.overlap, measure_s)
    est = estimate_seconds(plan, step_s, tpp, a.workers, a.overlap, measure_s)
    meas = estimate_seconds(plan, {k: 0.0 for k in step_s}, tpp, a.workers, a.overlap, measure_s)
    note = (f"sized: {a.budget_s:g} s budget, {a.workers} workers, overlap {a.overlap:g}, "
            f"estimated {est:.0f} s" + (f" (measuring {meas:.0f} s)" if measure_s else ""))
    print(f"# tokens_per_param = {tpp:g} ({note})")
    if a.output:
        from sparsitylaws.tables.atomic import atomic_write_text

        try:
            sized = with_tokens_per_param(plan.source_text, tpp, note)
        except SparsityLawsError as exc:
            print(f"error: {a.plan}: {exc}", file=sys.stderr)
            return 2
        atomic_write_text(a.output, sized)
        print(f"# sized plan written to {a.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
