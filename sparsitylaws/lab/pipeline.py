"""The lab's stages, resumable: corpus -> (train, measure) per model -> fit -> report.

Outputs in the output folder ``OUT``:

* ``corpus/`` (see :mod:`.corpus`), ``runs/<model>/`` (checkpoints, train state, ``done.json``)
* ``lab-<plan>.parquet``: one measurement table (``measure``'s schema, all runs)
* ``lab-<plan>.laws.json``: the law set; ``lab-<plan>.report.html``: the report
* ``lab-<plan>.manifest.json``: the plan, the corpus facts, and the wall time of every stage

Each model is trained, then measured at once, so a long plan yields rows as it goes.  A
rerun skips trained models (``done.json``) and measured checkpoints (the runner's settings
hash), continues an unfinished model from its train state, and refits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sparsitylaws.lab.plan import ModelSpec, Plan
from sparsitylaws.tables.atomic import atomic_write_text

STAGES = ("corpus", "train", "measure", "fit", "report")


def outputs(plan: Plan, out: Path) -> dict[str, Path]:
    """Paths of the plan's result files in ``out``."""
    stem = f"lab-{plan.name}"
    return {"table": out / f"{stem}.parquet", "laws": out / f"{stem}.laws.json",
            "report": out / f"{stem}.report.html", "manifest": out / f"{stem}.manifest.json"}


class Manifest:
    """The manifest JSON, updated atomically after every stage.

    Every update re-reads the file under the output folder's lock and applies one entry,
    so worker processes (``--workers``) sharing the folder never overwrite each other.
    """

    def __init__(self, path: Path, plan: Plan) -> None:
        self.path = path
        self.data: dict[str, Any] = self._load()
        self.data["plan"] = plan.source_text
        self.data.setdefault("stages", {})

    def _load(self) -> dict[str, Any]:
        if self.path.is_file():
            try:
                return json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                return {}
        return {}

    def record(self, stage: str, key: str | None, seconds: float, *, accumulate: bool = False,
               **extra: Any) -> None:
        """Set one stage's entry (``key``: a model's); ``accumulate``: add the seconds and the
        numeric fields to what earlier invocations recorded (a resumed measuring stage)."""
        from sparsitylaws.tables.io import file_lock

        with file_lock(self.path):
            disk = self._load()
            disk.update({k: v for k, v in self.data.items() if k != "stages"})
            disk.setdefault("stages", {})
            st = disk["stages"].setdefault(stage, {})
            old = (st if key is None else st.get(key, {})) if accumulate else {}
            entry = {"wall_s": round(seconds + float(old.get("wall_s", 0.0)), 2)}
            for k, v in extra.items():
                prev = old.get(k)
                both = isinstance(v, (int, float)) and isinstance(prev, (int, float))
                entry[k] = v + prev if both and not isinstance(v, bool) else v
            if key is None:
                st.update(entry)
            else:
                st[key] = entry
            self.data = disk
            self.save()

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=1, sort_keys=True, default=str))


def measure_settings(plan: Plan, m: ModelSpec, run_dir: Path, table: Path, eval_text: Path,
                     quiet: bool) -> Any:
    """The runner settings of one run: PPL-p% with the stabilizing strategy, plus zero for ReLU.

    Checkpoints inside the learning-rate warm-up are flagged as warm-up (kept out of the
    stabilizing group, as the paper drops them).
    """
    from sparsitylaws.lab.train import DONE_FILE
    from sparsitylaws.measure.runner import MeasureSettings

    ms, t = plan.measure, plan.train_for(m)
    steps = int(json.loads((run_dir / DONE_FILE).read_text())["steps"])
    warm_steps = max(1, round(t.warmup_frac * steps)) if t.warmup_frac > 0 else 0
    metrics = ["ppl-p"] + (["zero"] if ms.zero_for_relu and m.activation == "relu" else [])
    if ms.common_cett > 0:  # one threshold for every run: comparable across runs
        metrics.append(f"cett:{ms.common_cett:g}")
    return MeasureSettings(run=plan.run_name(m), output=table, text=str(eval_text),
                           seq_len=ms.seq_len, num_seqs=ms.num_seqs, p=ms.p, metrics=metrics,
                           device=ms.device, dtype=ms.dtype,
                           warmup_tokens=warm_steps * t.batch_size * t.seq_len,
                           stabilize_last=ms.stabilize_last, quiet=quiet)


def run_lab(plan: Plan, out: Path, *, stages: Sequence[str] = STAGES, only: Sequence[str] = (),
            quiet: bool = False, log: Callable[[str], None] = print, workers: int = 1,
            plan_arg: str | None = None) -> dict[str, Path]:
    """Run the plan's stages into ``out``; returns the result paths.

    With ``workers`` > 1, training and measuring run in that many child processes (``plan_arg``
    is how they name the plan), each taking whole models: small models leave a GPU mostly
    idle between kernel launches, and several at once fill it.
    """
    from accelerate import Accelerator

    from sparsitylaws.lab.corpus import build_corpus
    from sparsitylaws.lab.train import train_model

    if plan.train.threads:
        import torch as _torch

        _torch.set_num_threads(plan.train.threads)
    _quiet_transformers()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = outputs(plan, out)
    runs_dir = out / "runs"
    models = plan.select(only) if only else list(plan.models)
    import torch

    # cpu=True where there is no GPU: a CPU-only torchrun / accelerate launch then runs as
    # MULTI_CPU (gloo) instead of every process training alone
    acc = Accelerator(mixed_precision=plan.train.mixed_precision, cpu=not torch.cuda.is_available())
    main = acc.is_main_process
    man = Manifest(paths["manifest"], plan) if main else None
    t0 = time.perf_counter()
    if main:
        corpus = build_corpus(plan.corpus, out / "corpus")
    acc.wait_for_everyone()
    if not main:
        corpus = build_corpus(plan.corpus, out / "corpus")  # reuses the main process's files
    if man:
        # a rerun (or a --workers child) reuses the corpus: keep the time it took to build
        reused = man.data.get("corpus") == corpus.info and "wall_s" in man.data["stages"].get("corpus", {})
        man.data["corpus"] = corpus.info
        if not reused:
            man.record("corpus", None, time.perf_counter() - t0)
    if workers > 1 and ({"train", "measure"} & set(stages)):
        from sparsitylaws.lab.workers import run_in_workers

        run_in_workers(plan_arg or plan.name, plan, out, models, workers,
                       [s for s in ("train", "measure") if s in stages], quiet, log)
        models = []
    for m in models:
        run_dir = runs_dir / m.name
        if "train" in stages:
            t0 = time.perf_counter()
            info = train_model(plan, m, corpus, run_dir, acc, log=log)
            if man and m.name not in man.data["stages"].get("train", {}):
                man.record("train", m.name, info["train_wall_s"], n_params=info["n_params"],
                           tokens=info["tokens_trained"], tokens_per_param=round(info["tokens_per_param"], 2),
                           steps=info["steps"])
        if "measure" in stages and main:
            if not (run_dir / "done.json").is_file():
                log(f"measure {m.name}: not trained yet, skipped")
                continue
            t0 = time.perf_counter()
            n = measure_run(plan, m, run_dir, paths["table"], corpus.eval_path, quiet, log)
            if n:  # rows and time add up over invocations (a resumed run measures the rest)
                man.record("measure", m.name, time.perf_counter() - t0, rows=n, accumulate=True)
    if not main:
        return paths
    if "fit" in stages:
        t0 = time.perf_counter()
        fit_lab(plan, paths["table"], paths["laws"])
        man.record("fit", None, time.perf_counter() - t0)
        log(f"law set written to {paths['laws']}")
    if "report" in stages:
        from sparsitylaws.views.report import make_report

        t0 = time.perf_counter()
        make_report(tables=[paths["table"]], laws=paths["laws"], output=paths["report"],
                    n_boot=plan.fit.n_boot, seed=plan.fit.seed, title=f"sparsitylaws lab: {plan.name}")
        man.record("report", None, time.perf_counter() - t0)
        log(f"report written to {paths['report']}")
    return paths


def _quiet_transformers() -> None:
    """No per-checkpoint 'Loading weights' bars or warnings from transformers."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def measure_run(plan: Plan, m: ModelSpec, run_dir: Path, table: Path, eval_text: Path,
                quiet: bool, log: Callable[[str], None]) -> int:
    """Measure a trained run's checkpoints into ``table`` (resumes by settings hash)."""
    from sparsitylaws.lab.train import CKPT_DIR
    from sparsitylaws.measure.runner import Runner

    settings = measure_settings(plan, m, run_dir, table, eval_text, quiet)
    runner = Runner(settings, log=(lambda msg: None) if quiet else log)
    return runner.run([], run_dir=str(run_dir / CKPT_DIR))


def fit_lab(plan: Plan, table: Path, laws: Path) -> Any:
    """Fit the plan's table into a law set (every run, architecture laws included)."""
    from sparsitylaws.lawset.build import fit_table
    from sparsitylaws.tables.io import read_table

    df = read_table(table)
    lawset = fit_table(df, n_boot=plan.fit.n_boot, seed=plan.fit.seed, name=f"lab-{plan.name}",
                       sources=[str(table)])
    lawset.save(laws)
    return lawset
