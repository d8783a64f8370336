"""Lab plans: a TOML file (or a preset name) -> validated :class:`Plan` dataclasses.

A plan names a corpus, training settings, a checkpoint schedule, measurement settings and
the models (width, depth, FFN width or ratio, activation, gated or not, head size).  Every
check happens here, before any heavy work, and a bad plan is one line naming the key.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sparsitylaws.errors import SparsityLawsError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ACTIVATIONS = ("relu", "silu", "gelu")
CORPUS_SOURCES = ("stdlib", "stdlib+packages", "stdlib+site-packages")
TOKENIZERS = ("bytes", "bpe")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class PlanError(SparsityLawsError):
    """A lab plan that cannot be used (names the file and the key)."""


@dataclass(frozen=True)
class CorpusSpec:
    """Where the text comes from and how it is split (see :mod:`.corpus`)."""

    source: str = "stdlib"  # Python standard library sources + pydoc_data.topics
    packages: tuple[str, ...] = ()  # stdlib+packages: installed distributions to add
    eval_per_mille: int = 100  # documents whose sha256(name) % 1000 < this are held out
    eval_slice: int = 512  # bytes taken from the middle of each held-out document (0: all)
    eval_bytes: int = 0  # cap on the evaluation text (0: none)
    clean: bool = False  # leave out generated tables, duplicates and train/eval overlap
    max_train_bytes: int = 0  # 0: no cap
    tokenizer: str = "bytes"  # bytes (ByT5's byte-level, vocabulary 259) | bpe (trained here)
    vocab_size: int = 4096  # bpe only: vocabulary of the byte-level BPE the lab trains


@dataclass(frozen=True)
class TrainSpec:
    """Optimizer, schedule, batch and token budget shared by the plan's models."""

    seq_len: int = 128
    batch_size: int = 32  # sequences per optimizer step, all processes together
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # WSD decay ends at lr * this
    warmup_frac: float = 0.02  # share of steps with linear warm-up
    decay_frac: float = 0.0  # WSD: share of final steps that decay (0: warm-up + stable only)
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    lr_width_ref: int = 0  # > 0: muP-style, hidden matrices get lr * ref/width, init std * sqrt(ref/width)
    tokens_per_param: float = 190.0  # budget per non-embedding parameter (paper: >= 190)
    checkpoints: int = 16  # log-spaced checkpoints per run
    first_checkpoint_frac: float = 0.01  # first checkpoint at this share of the budget
    mixed_precision: str = "no"  # accelerate: no | bf16 | fp16
    threads: int = 0  # torch CPU threads for the whole lab process (0: torch's default)
    init_std: float = 0.02


@dataclass(frozen=True)
class MeasureSpec:
    """Settings handed to the measurement runner for every run."""

    seq_len: int = 128
    num_seqs: int = 32
    p: float = 1.0
    zero_for_relu: bool = True
    device: str = "auto"
    dtype: str = "float32"
    stabilize_last: int = 5
    common_cett: float = 0.0  # > 0: also the cett metric at this one CETT for every run


@dataclass(frozen=True)
class FitSpec:
    """Settings of the fit and report stages."""

    n_boot: int = 200
    seed: int = 0


@dataclass(frozen=True)
class ModelSpec:
    """One model to train: shape, activation, FFN kind, and optionally its own budget."""

    name: str
    width: int
    depth: int
    activation: str = "relu"
    gated: bool = True
    ffn_width: int | None = None
    ffn_ratio: float = 2.5
    head_dim: int = 16
    tokens: int | None = None  # overrides train.tokens_per_param
    seed: int | None = None  # overrides the plan's seed
    batch_size: int | None = None  # overrides train.batch_size (small models: more steps)
    design: str | None = None  # the [[model]] name when the plan trains it once per seed

    @property
    def design_name(self) -> str:
        """The model's design: seeds of one design share it (its plain name otherwise)."""
        return self.design or self.name

    @property
    def d_ffn(self) -> int:
        """FFN width: ``ffn_width`` if given, else round(ffn_ratio * width)."""
        return int(self.ffn_width) if self.ffn_width else int(round(self.ffn_ratio * self.width))

    @property
    def width_depth_ratio(self) -> float:
        return self.width / self.depth

    def estimated_params(self) -> int:
        """Non-embedding parameters (attention 4 d^2, FFN 3 or 2 d d_f, norms) per layer."""
        d, f = self.width, self.d_ffn
        per_layer = 4 * d * d + (3 if self.gated else 2) * d * f
        return self.depth * per_layer


@dataclass(frozen=True)
class Plan:
    """A whole lab experiment."""

    name: str
    models: tuple[ModelSpec, ...]
    seed: int = 0
    seeds: tuple[int, ...] = ()  # every model without its own seed(s) runs once per seed
    corpus: CorpusSpec = field(default_factory=CorpusSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    measure: MeasureSpec = field(default_factory=MeasureSpec)
    fit: FitSpec = field(default_factory=FitSpec)
    note: str = ""
    source_text: str = ""

    def model(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise PlanError(f"plan {self.name!r}: no model named {name!r} "
                        f"(known: {', '.join(m.name for m in self.models)})")

    def select(self, names: Sequence[str]) -> list[ModelSpec]:
        """The models named (a [[model]] name trained with several seeds names all of them)."""
        out: list[ModelSpec] = []
        for n in names:
            hit = [m for m in self.models if n in (m.name, m.design)]
            if not hit:
                self.model(n)  # raises, listing the known names
            out.extend(m for m in hit if m not in out)
        return out

    def seed_of(self, m: ModelSpec) -> int:
        """The seed model ``m`` trains with."""
        return self.seed if m.seed is None else int(m.seed)

    def train_for(self, m: ModelSpec) -> TrainSpec:
        """The training settings of model ``m``: the plan's, with its own batch size if set."""
        if m.batch_size is None or m.batch_size == self.train.batch_size:
            return self.train
        return replace(self.train, batch_size=int(m.batch_size))

    def run_name(self, m: ModelSpec) -> str:
        """The run name in the measurement table: '<plan>-<model>'."""
        return f"{self.name}-{m.name}"


def _section(where: str, cls: type, raw: Any) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise PlanError(f"{where}: expected a table")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise PlanError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    kw = {}
    for k, v in raw.items():
        default = getattr(cls(), k)
        if isinstance(default, tuple):
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
                raise PlanError(f"{where}.{k}: expected a list of names, got {v!r}")
            kw[k] = tuple(v)
            continue
        if isinstance(default, bool) and not isinstance(v, bool):
            raise PlanError(f"{where}.{k}: expected true or false, got {v!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise PlanError(f"{where}.{k}: expected a number, got {v!r}")
            if isinstance(default, int) and not isinstance(default, bool) and v != int(v):
                raise PlanError(f"{where}.{k}: expected a whole number, got {v!r}")
            v = type(default)(v)
        kw[k] = v
    return cls(**kw)


def _seed_list(where: str, v: Any) -> tuple[int, ...]:
    if not isinstance(v, list) or not v or any(isinstance(x, bool) or not isinstance(x, int) or x < 0
                                               for x in v):
        raise PlanError(f"{where}: expected a list of whole numbers >= 0, got {v!r}")
    if len(set(v)) < len(v):
        raise PlanError(f"{where}: a seed is listed twice in {v!r}")
    return tuple(int(x) for x in v)


def _models(where: str, raw: Any, plan_seeds: tuple[int, ...]) -> list[ModelSpec]:
    """One [[model]] table -> its models: one per seed of ``seeds`` (the model's, else the
    plan's), named NAME-sSEED, unless it sets its own single ``seed``."""
    if isinstance(raw, dict) and "seeds" in raw:
        raw = dict(raw)
        seeds = _seed_list(f"{where}.seeds", raw.pop("seeds"))
        if "seed" in raw:
            raise PlanError(f"{where}: set seed or seeds, not both")
    else:
        seeds = () if isinstance(raw, dict) and "seed" in raw else plan_seeds
    m = _model(where, raw)
    if not seeds:
        return [m]
    return [replace(m, name=f"{m.name}-s{s}", seed=s, design=m.name) for s in seeds]


def _model(where: str, raw: Any) -> ModelSpec:
    if not isinstance(raw, dict):
        raise PlanError(f"{where}: expected a table")
    known = {f.name for f in fields(ModelSpec)} - {"design"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise PlanError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
    for req in ("name", "width", "depth"):
        if req not in raw:
            raise PlanError(f"{where}: missing key {req!r}")
    name = raw["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise PlanError(f"{where}.name: {name!r} must be letters, digits, '.', '_' or '-'")
    where = f"{where} ({name})"
    ints = {"width": 1, "depth": 1, "head_dim": 1, "ffn_width": 1, "tokens": 1, "seed": 0,
            "batch_size": 1}
    for k, lo in ints.items():
        v = raw.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
            raise PlanError(f"{where}.{k}: expected a whole number >= {lo}, got {v!r}")
    ratio = raw.get("ffn_ratio", 2.5)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not ratio > 0:
        raise PlanError(f"{where}.ffn_ratio: expected a number > 0, got {ratio!r}")
    act = raw.get("activation", "relu")
    if act not in ACTIVATIONS:
        raise PlanError(f"{where}.activation: {act!r} is not one of {', '.join(ACTIVATIONS)}")
    gated = raw.get("gated", True)
    if not isinstance(gated, bool):
        raise PlanError(f"{where}.gated: expected true or false, got {gated!r}")
    m = ModelSpec(**{**raw, "ffn_ratio": float(ratio)})
    if m.width % m.head_dim:
        raise PlanError(f"{where}: width {m.width} is not a multiple of head_dim {m.head_dim}")
    return m


def parse_plan(text: str, where: str = "plan") -> Plan:
    """Parse and validate plan TOML text; ``where`` names it in error messages."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlanError(f"{where}: not valid TOML ({exc})") from None
    known = {"name", "seed", "seeds", "note", "corpus", "train", "measure", "fit", "model"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise PlanError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise PlanError(f"{where}: 'name' must be set (letters, digits, '.', '_' or '-')")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise PlanError(f"{where}.seed: expected a whole number >= 0, got {seed!r}")
    seeds = _seed_list(f"{where}.seeds", raw["seeds"]) if "seeds" in raw else ()
    models_raw = raw.get("model")
    if not isinstance(models_raw, list) or not models_raw:
        raise PlanError(f"{where}: no models (add [[model]] tables with name, width, depth)")
    models = tuple(x for i, m in enumerate(models_raw) for x in _models(f"{where}: model[{i}]", m, seeds))
    names = [m.name for m in models]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise PlanError(f"{where}: model name {dup!r} used twice")
    plan = Plan(name=name, models=models, seed=seed, seeds=seeds, note=str(raw.get("note", "")),
                corpus=_section(f"{where}: corpus", CorpusSpec, raw.get("corpus")),
                train=_section(f"{where}: train", TrainSpec, raw.get("train")),
                measure=_section(f"{where}: measure", MeasureSpec, raw.get("measure")),
                fit=_section(f"{where}: fit", FitSpec, raw.get("fit")), source_text=text)
    _check(plan, where)
    return plan


def _check(plan: Plan, where: str) -> None:
    t, ms, c = plan.train, plan.measure, plan.corpus
    if c.source not in CORPUS_SOURCES:
        raise PlanError(f"{where}: corpus.source {c.source!r}: choose {' or '.join(CORPUS_SOURCES)}")
    if c.tokenizer not in TOKENIZERS:
        raise PlanError(f"{where}: corpus.tokenizer {c.tokenizer!r}: choose {' or '.join(TOKENIZERS)}")
    if c.tokenizer == "bpe" and not 259 < c.vocab_size <= 65535:
        raise PlanError(f"{where}: corpus.vocab_size {c.vocab_size} must lie in 260..65535")
    if not 0 < c.eval_per_mille < 1000:
        raise PlanError(f"{where}: corpus.eval_per_mille must lie in 1..999")
    if c.eval_slice < 0 or c.eval_bytes < 0:
        raise PlanError(f"{where}: corpus.eval_slice and corpus.eval_bytes must be >= 0 (0: no limit)")
    if c.source == "stdlib+packages" and not c.packages:
        raise PlanError(f"{where}: corpus.source stdlib+packages needs corpus.packages (a list of "
                        "installed distributions, e.g. [\"numpy\", \"scipy\"])")
    if c.packages and c.source != "stdlib+packages":
        raise PlanError(f"{where}: corpus.packages is read only with corpus.source = \"stdlib+packages\"")
    if t.seq_len < 8 or t.batch_size < 1 or not t.lr > 0:
        raise PlanError(f"{where}: train.seq_len >= 8, train.batch_size >= 1 and train.lr > 0 needed")
    if not (0 <= t.warmup_frac < 1 and 0 <= t.decay_frac < 1 and t.warmup_frac + t.decay_frac < 1):
        raise PlanError(f"{where}: train.warmup_frac and train.decay_frac must lie in [0, 1) "
                        "and sum to less than 1")
    if t.checkpoints < ms.stabilize_last + 1:
        raise PlanError(f"{where}: train.checkpoints {t.checkpoints} must exceed "
                        f"measure.stabilize_last {ms.stabilize_last}")
    if not 0 < t.first_checkpoint_frac < 1:
        raise PlanError(f"{where}: train.first_checkpoint_frac must lie in (0, 1)")
    if not t.tokens_per_param > 0:
        raise PlanError(f"{where}: train.tokens_per_param must be > 0")
    if t.threads < 0:
        raise PlanError(f"{where}: train.threads must be >= 0 (0: torch's default)")
    if t.mixed_precision not in ("no", "bf16", "fp16"):
        raise PlanError(f"{where}: train.mixed_precision must be no, bf16 or fp16")
    if not ms.p > 0 or ms.seq_len < 2 or ms.num_seqs < 1:
        raise PlanError(f"{where}: measure.p > 0, measure.seq_len >= 2, measure.num_seqs >= 1 needed")
    if ms.common_cett < 0 or ms.common_cett >= 1:
        raise PlanError(f"{where}: measure.common_cett must lie in [0, 1) (0: off)")
    if t.lr_width_ref < 0:
        raise PlanError(f"{where}: train.lr_width_ref must be >= 0 (0: one learning rate for every width)")
    if ms.seq_len > t.seq_len:
        raise PlanError(f"{where}: measure.seq_len {ms.seq_len} exceeds train.seq_len {t.seq_len} "
                        "(the models know no longer positions)")


def load_plan(spec: str | Path) -> Plan:
    """A preset name (ci, cpu, gpu) or a TOML file path -> :class:`Plan`."""
    from sparsitylaws.lab.presets import PRESETS

    s = str(spec)
    if s in PRESETS:
        return parse_plan(PRESETS[s], where=f"preset {s}")
    p = Path(s)
    if not p.is_file():
        raise PlanError(f"{s}: no such plan file (or give a preset: {', '.join(PRESETS)})")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"{s}: unreadable ({exc})") from None
    return parse_plan(text, where=str(p))


def checkpoint_steps(total_steps: int, n: int, first_frac: float) -> list[int]:
    """``n`` distinct steps, log-spaced from ``first_frac * total`` to ``total`` (inclusive).

    When the log grid repeats a step (short runs), the repeats move to the nearest free
    step so exactly ``min(n, total_steps)`` distinct steps come back, the last = total.
    """
    if total_steps < 1 or n < 1:
        raise PlanError(f"checkpoint schedule: total steps {total_steps} and count {n} must be >= 1")
    n = min(n, total_steps)
    first = max(1.0, first_frac * total_steps)
    if n == 1:
        return [total_steps]
    grid = [round(math.exp(math.log(first) + i * (math.log(total_steps) - math.log(first)) / (n - 1)))
            for i in range(n)]
    out: list[int] = []
    for i, g in enumerate(grid):
        lo = out[-1] + 1 if out else 1
        hi = total_steps - (n - 1 - i)  # leave room for the remaining ones
        out.append(min(max(g, lo), hi))
    return out
