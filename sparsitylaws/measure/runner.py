"""Many checkpoints -> table rows: planning, stabilizing, resume, atomic appends.

* A checkpoint is keyed by its path relative to ``--run-dir`` (or its resolved absolute
  path), so the same folder reached by two spellings is one checkpoint.
* Cluster jobs: ``--find-cett FILE`` runs only the run's joint search and writes the CETT
  with the settings it depends on; ``--cett-from FILE`` measures checkpoints at that CETT
  (checked against the current settings), so an array of shards does no search.
* ``--run-dir``: checkpoints ordered by tokens; the paper's stabilizing strategy searches
  one CETT jointly on the last five non-warm-up checkpoints (mean PPL ratio) and applies it
  to every checkpoint; warm-up ones are flagged in the ``warmup`` column.
* Each finished checkpoint is appended to the output at once (temp file + rename), so an
  interrupted run loses no finished row, and a rerun skips checkpoints whose rows exist
  with the same ``settings_hash``.

Around the runner, one job each (their names are still importable from here):

* :mod:`~sparsitylaws.measure.settings`       :class:`MeasureSettings` and the settings hash
* :mod:`~sparsitylaws.measure.trained_tokens` tokens trained of a checkpoint
* :mod:`~sparsitylaws.measure.sharding`       ``--shard`` (Slurm, torchrun) and the GPU per rank
* :mod:`~sparsitylaws.measure.sidecar`        the JSON files beside the output table
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sparsitylaws.errors import MeasureError
from sparsitylaws.measure.evaluate import encode_text, load_text
from sparsitylaws.measure.loading import (
    CheckpointRef,
    _cfg,
    architecture_key,
    hf_folder,
    load_config,
    load_model,
    param_counts,
    pick_device,
    pick_dtype,
    resolve_checkpoint,
    text_config,
)
from sparsitylaws.measure.metrics import MetricResult, ModelMeasurer, parse_metric
from sparsitylaws.measure.search import (
    SEARCHES,
    SearchResult,
    bisect_search,
    fast_search,
    grid_size,
)
from sparsitylaws.measure.settings import (  # noqa: F401  (ALGORITHM_VERSION re-exported)
    ALGORITHM_VERSION,
    MeasureSettings,
    settings_hash,
    settings_payload,
)
from sparsitylaws.measure.sharding import (  # noqa: F401  (shard_from_env re-exported)
    local_device,
    parse_shard,
    shard_from_env,
)
from sparsitylaws.measure.sidecar import (
    _atomic_json,
    _existing,
    _read_json,
    joint_state_path,
    sidecar_path,
)
from sparsitylaws.measure.trained_tokens import (  # noqa: F401  (the first three re-exported)
    _SCALE,
    TOKEN_PATTERNS,
    tokens_from_name,
    tokens_trained,
)
from sparsitylaws.version import __version__


@dataclass
class Job:
    """One checkpoint to measure."""

    ref: CheckpointRef
    label: str
    tokens: int
    warmup: bool = False


class Runner:
    """Measures checkpoints per :class:`MeasureSettings`; see module doc."""

    def __init__(self, settings: MeasureSettings, log: Callable[[str], None] | None = None) -> None:
        self.s = settings
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        if settings.p <= 0:
            raise MeasureError(f"--p {settings.p:g}: p must be > 0 (percent of PPL increase)")
        if settings.search not in SEARCHES:
            raise MeasureError(f"--search {settings.search}: choose one of {', '.join(SEARCHES)}")
        self.metrics = [parse_metric(m) for m in settings.metrics] or [("ppl-p", math.nan)]
        self.text_name, self.text = load_text(settings.text)
        self.text_sha = hashlib.sha256(self.text.encode()).hexdigest()
        self.rows_written = 0
        self._joint_mms: dict[str, ModelMeasurer] = {}
        self._warned: set[str] = set()
        if settings.per_pass < 1:
            raise MeasureError(f"--per-pass {settings.per_pass}: must be >= 1")
        if settings.find_cett and settings.cett_from:
            raise MeasureError("give --find-cett or --cett-from, not both")
        self.device = local_device(settings.device)
        dev = pick_device(self.device)
        self.device_type = f"map:{settings.device_map}" if settings.device_map else dev.type
        self.dtype_used = str(pick_dtype(settings.dtype, dev)).replace("torch.", "")
        grid_size(settings.xtol)  # --xtol in (0, 0.5]
        if settings.quiet:  # no "Loading weights" bars, nor the GGUF conversion's tqdm bar
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            os.environ["TQDM_DISABLE"] = "1"

    # --- planning ----------------------------------------------------------------------
    def plan(self, checkpoints: list[str], run_dir: str | None = None) -> list[Job]:
        """Resolve, check architectures, read tokens; all checks before any heavy work."""
        if run_dir:
            d = Path(run_dir)
            if not d.is_dir():
                raise MeasureError(f"--run-dir {run_dir}: not a folder")
            root = d.resolve()
            cands = sorted(p for p in d.iterdir()
                           if (p.is_dir() and not p.name.startswith(".")) or p.suffix == ".gguf")
            refs = []
            for p in cands:
                if p.is_dir() and not _has_weights(p):
                    # not a checkpoint: a Trainer's runs/ (TensorBoard), logs, an empty folder
                    self.log(f"skip {p.name}/: not a checkpoint (no weights inside)")
                    continue
                refs.append(resolve_checkpoint(p, self.s.allow_pickle))
            if not refs:
                raise MeasureError(f"--run-dir {run_dir}: no checkpoints inside")
            labels = [r.path.resolve().relative_to(root).as_posix() for r in refs]
        else:
            if not checkpoints:
                raise MeasureError("no checkpoint given (name checkpoints or use --run-dir)")
            refs = [resolve_checkpoint(c, self.s.allow_pickle) for c in checkpoints]
            paths = [r.path.resolve() for r in refs]
            if len(set(paths)) < len(paths):
                dup = next(p for p in paths if paths.count(p) > 1)
                raise MeasureError(f"{dup}: the same checkpoint is named twice")
            labels = checkpoint_labels(paths)
        if self.s.tokens_trained is not None and len(refs) > 1:
            raise MeasureError("--tokens-trained applies to one checkpoint; for several use "
                               "trainer_state.json or token counts in their names")
        keys = []
        for r in refs:
            cfg = load_config(r, self.s.trust_remote_code)
            keys.append(architecture_key(cfg))
        for r, k in zip(refs, keys, strict=False):
            if k != keys[0]:
                raise MeasureError(
                    f"run {self.s.run!r} mixes architectures: {refs[0].path} is {_arch(keys[0])} "
                    f"but {r.path} is {_arch(k)}; measure them as separate runs")
        jobs = [Job(r, lb, tokens_trained(r, self.s.tokens_trained, self.s.tokens_per_step))
                for r, lb in zip(refs, labels, strict=True)]
        seen: dict[int, str] = {}
        for j in jobs:
            if j.tokens in seen:
                raise MeasureError(f"checkpoints {seen[j.tokens]} and {j.label} both have "
                                   f"{j.tokens} tokens trained; one run has one checkpoint per "
                                   "token count")
            seen[j.tokens] = j.label
        jobs.sort(key=lambda j: (j.tokens, j.label) if run_dir else (j.label,))
        if run_dir:
            for i, j in enumerate(jobs):
                j.warmup = i < self.s.warmup_checkpoints or j.tokens < self.s.warmup_tokens
        return jobs

    # --- measuring ---------------------------------------------------------------------
    def _measurer(self, job: Job) -> ModelMeasurer:
        s = self.s

        def load() -> Any:
            return load_model(job.ref, self.device, s.dtype, s.device_map, s.trust_remote_code,
                              s.activation_override, s.offload_folder)

        lm = load()
        data = encode_text(self.text, lm.tokenizer, s.seq_len, s.num_seqs, self.text_name,
                           vocab_size=_cfg(text_config(lm.config), "vocab_size"), bos=s.bos)
        if data.short and data.short not in self._warned:
            self._warned.add(data.short)
            self.log(f"warning: {data.short}")
        return ModelMeasurer(lm, data, s.batch_size, s.n_candidates, s.max_memory_gb,
                             per_pass=s.per_pass, want_zero=any(m == "zero" for m, _ in self.metrics),
                             reload=load)

    def _arg(self, m: str, a: float) -> float:
        return self.s.p if m == "ppl-p" else a

    def _hashes(self, extra: dict | None = None) -> dict[tuple[str, float | None], str]:
        return {_key(m, self._arg(m, a)): settings_hash(self.s, self.text_sha, m, self._arg(m, a),
                                                        extra, self.device_type, self.dtype_used)
                for m, a in self.metrics}

    def _done(self, existing: pd.DataFrame | None, job: Job, hashes: dict) -> bool:
        if existing is None or "settings_hash" not in existing.columns:
            return False
        rows = existing[(existing["run"] == self.s.run) & (existing["checkpoint"] == job.label)]
        for (m, a), h in hashes.items():
            hit = rows[(rows["metric"] == m) & (rows["settings_hash"] == h)]
            if a is not None:
                hit = hit[np.isclose(hit["metric_arg"].astype(float), a)]
            if hit.empty:
                return False
        return True

    def _bar(self, **kwargs: Any) -> Any:
        from tqdm.auto import tqdm

        return tqdm(file=sys.stderr, disable=self.s.quiet, **kwargs)

    def run(self, checkpoints: list[str], run_dir: str | None = None) -> int:
        """Measure; returns the number of rows written (0 with --find-cett)."""
        jobs = self.plan(checkpoints, run_dir)
        self.s.output.parent.mkdir(parents=True, exist_ok=True)  # e.g. -o shards/NAME.parquet
        i, n = parse_shard(self.s.shard)
        mine = [j for k, j in enumerate(jobs) if k % n == i]
        joint: SearchResult | None = None
        extra: dict = {}
        wants_ppl = any(m == "ppl-p" for m, _ in self.metrics)
        for flag, value in (("--find-cett", self.s.find_cett), ("--cett-from", self.s.cett_from)):
            if value and not (run_dir and wants_ppl):
                raise MeasureError(f"{flag} needs --run-dir and the ppl-p metric (the run's "
                                   "joint CETT)")
        if run_dir and wants_ppl:
            group = [j for j in jobs if not j.warmup][-self.s.stabilize_last:]
            if not group:
                raise MeasureError(f"--run-dir {run_dir}: every checkpoint is warm-up")
            extra = {"stabilize": [j.label for j in group]}
        hashes = self._hashes(extra)
        if self.s.find_cett:
            self._write_cett(self.s.find_cett, self._joint_search(group, extra), extra)
            self._release_joint()
            return 0
        if self.s.cett_from:
            joint = self._read_cett(self.s.cett_from, extra)
        existing = _existing(self.s.output)
        todo = [j for j in mine if not self._done(existing, j, hashes)]
        for j in mine:
            if j not in todo:
                self.log(f"skip {j.label}: rows with the same settings already in {self.s.output}")
        if not todo:
            return 0
        if extra and joint is None:
            joint = self._joint_search([j for j in jobs if j.label in extra["stabilize"]], extra)
        bar = self._bar(iterable=todo, desc=f"measure {self.s.run}", unit="ckpt")
        for job in bar:
            bar.set_postfix_str(_short(Path(job.label).name))
            mm = self._joint_mms.pop(job.label, None)  # loaded once, for the joint search
            if mm is None:
                mm = self._measurer(job)
            else:
                mm.unpark()
            results = self._metrics(mm, joint)
            self._write(job, mm, results, hashes, joint is not None)
            mm.release()
            del mm
        self._release_joint()
        return self.rows_written

    def _release_joint(self) -> None:
        for mm in self._joint_mms.values():
            mm.release()
        self._joint_mms = {}

    # --- the joint CETT of a run, shared by the jobs of a cluster ----------------------------
    def _ppl_payload(self, extra: dict) -> dict:
        return settings_payload(self.s, self.text_sha, "ppl-p", self.s.p, extra,
                                self.device_type, self.dtype_used)

    def _write_cett(self, path: Path, res: SearchResult, extra: dict) -> None:
        """The run's joint CETT and the settings it depends on (JSON, atomic)."""
        from sparsitylaws.tables.atomic import atomic_path

        doc = {"run": self.s.run, "p": self.s.p, "cett": res.cett, "ppl_ratio": res.ppl_ratio,
               "settings": self._ppl_payload(extra),
               "settings_hash": self._hashes(extra)[_key("ppl-p", self.s.p)],
               "search": asdict(res), "tool_version": __version__}
        with atomic_path(Path(path)) as tmp:
            Path(tmp).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        print(f"# run={self.s.run} joint cett={res.cett:.6f} ppl_ratio={res.ppl_ratio:.5f} "
              f"written to {path}", flush=True)

    def _read_cett(self, path: Path, extra: dict) -> SearchResult:
        """The joint CETT written by --find-cett, refused when its settings differ."""
        try:
            doc = json.loads(Path(path).read_text())
            res = _search_result(doc["search"])
            theirs = doc["settings"]
        except FileNotFoundError:
            raise MeasureError(f"--cett-from {path}: file not found (write it with "
                               "--find-cett first)") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise MeasureError(f"--cett-from {path}: not a CETT file written by --find-cett "
                               f"({type(exc).__name__}: {exc})") from None
        if doc.get("run") != self.s.run:
            raise MeasureError(f"--cett-from {path}: written for run {doc.get('run')!r}, not "
                               f"{self.s.run!r}")
        ours = json.loads(json.dumps(self._ppl_payload(extra)))
        diff = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
        if diff:
            raise MeasureError(f"--cett-from {path}: found with other settings ({', '.join(diff)} "
                               "differ); rerun --find-cett with the same options")
        return res

    def _joint_search(self, group: list[Job], extra: dict | None = None) -> SearchResult:
        """One CETT for the whole run: mean PPL ratio over the group (paper's strategy).

        Each checkpoint of the group is loaded once: its measurer is kept for its own rows
        afterwards.  One model at a time sits on the accelerator; between its turns a model
        is parked (curves completed, activations freed, weights in host memory, or dropped
        and reloaded from disk when host memory cannot hold the group: see
        :meth:`_drop_weights`).  Every pass's per-model log ratios are written to
        ``OUT.joint.json`` as they come, so a rerun after a crash repeats no forward.
        """
        self.log(f"stabilizing: joint CETT search on {len(group)} checkpoints: "
                 + ", ".join(Path(j.label).name for j in group))
        state_file = joint_state_path(self.s.output)
        extra = extra if extra is not None else {"stabilize": [j.label for j in group]}
        key = self._hashes(extra)[_key("ppl-p", self.s.p)]
        state = _read_json(state_file).get(self.s.run, {})
        if state.get("settings_hash") != key:
            state = {"settings_hash": key, "evals": {}}
        if "result" in state:
            res = _search_result(state["result"])
            self.log(f"stabilizing: CETT = {res.cett:.6f} from {state_file} (search done before)")
            return res
        evals: dict[str, dict[str, float]] = state["evals"]
        method = self.s.search
        drop = self._drop_weights(group)
        bar = self._bar(desc=f"joint search {self.s.run}", unit="pass")

        def measurer(job: Job) -> ModelMeasurer:
            mm = self._joint_mms.get(job.label)
            if mm is None:
                mm = self._joint_mms[job.label] = self._measurer(job)
            mm.unpark()
            return mm

        def objective(cs: list[float]) -> list[float]:
            rows = []
            for job in group:
                known = evals.setdefault(job.label, {})
                todo = [c for c in cs if repr(c) not in known]
                if todo:
                    mm = measurer(job)
                    try:
                        for c, g in zip(todo, mm.log_ratios(todo, method), strict=True):
                            known[repr(c)] = g
                    finally:
                        if len(group) > 1:
                            mm.park(drop=drop)
                    _atomic_json(state_file, {self.s.run: state})
                rows.append([known[repr(c)] for c in cs])
            bar.update(1)
            per = np.array(rows)  # (models, cs)
            return list(np.log(np.mean(np.exp(per), axis=0)))

        if method in ("bisect", "paper"):
            res = bisect_search(objective, self.s.p, self.s.xtol,
                                per_pass=1 if method == "paper" else self.s.per_pass, method=method)
        else:
            c0 = self._predicted_cett(group, measurer, drop)
            res = fast_search(objective, self.s.p, self.s.xtol, c_init=c0, per_pass=self.s.per_pass)
        bar.close()
        state["result"] = asdict(res)
        _atomic_json(state_file, {self.s.run: state})
        self.log(f"stabilizing: CETT = {res.cett:.6f} (mean PPL ratio {res.ppl_ratio:.5f}, "
                 f"{res.passes} passes)")
        if res.warning:
            self.log(f"warning: stabilizing search: {res.warning}")
        return res

    def _predicted_cett(self, group: list[Job], measurer: Callable, drop: bool) -> float | None:
        """The first probe of the joint search: the geometric mean of each model's prediction
        from its dense statistics (needs every model's dense pass, which the search needs
        anyway)."""
        preds = []
        for job in group:
            mm = measurer(job)
            c = mm.predicted_cett(self.s.p)
            if len(group) > 1:
                mm.park(drop=drop)
            if c:
                preds.append(c)
        return float(np.exp(np.mean(np.log(preds)))) if preds else None

    def _drop_weights(self, group: list[Job]) -> bool:
        """Whether the parked models' weights must leave host memory (reloaded from disk at
        each turn): when the group's weights exceed 80% of the available host memory."""
        if len(group) <= 1:
            return False
        from sparsitylaws.measure.metrics import _available_ram

        need = sum(f.stat().st_size for job in group
                   for f in folder_of(job.ref).glob("*.safetensors"))  # about their size in memory
        return need > 0.8 * _available_ram()

    def _metrics(self, mm: ModelMeasurer, joint: SearchResult | None) -> list[MetricResult]:
        out = []
        for m, a in self.metrics:
            if m == "zero":
                out.append(mm.zero())
            elif m == "topk":
                out.append(mm.topk(a))
            elif m == "fat":
                out.append(mm.fat(a))
            elif m == "cett":
                out.append(mm.cett(a))
            elif joint is not None:
                out.append(mm.at_cett(self.s.p, joint, method=self.s.search))
            else:
                bar = self._bar(desc="PPL-p% search", unit="pass", leave=False)
                try:
                    out.append(mm.ppl_p(self.s.p, self.s.search, self.s.xtol,
                                        progress=bar.update))
                finally:
                    bar.close()
        return out

    def _write(self, job: Job, mm: ModelMeasurer, results: list[MetricResult],
               hashes: dict, joint: bool = False) -> None:
        from sparsitylaws.tables.io import append_rows

        lm = mm.lm
        cfg = lm.config
        n_params, n_total = param_counts(lm.model)
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        rows, side = [], {}
        for r in results:
            arg = r.metric_arg
            row: dict[str, Any] = {
                "run": self.s.run, "checkpoint": job.label, "tokens": job.tokens,
                "activation": lm.activation, "metric": r.metric, "metric_arg": arg,
                "activation_ratio": r.activation_ratio,
                "width": _cfg(text_config(cfg), "hidden_size", "n_embd", "d_model"),
                "depth": len(lm.sites),
                "ffn_width": int(mm.wnorms[0].numel()),
                "n_params": n_params, "n_params_total": n_total,
                "cett": r.cett, "ppl_dense": r.ppl_dense, "ppl_sparse": r.ppl_sparse,
                "layer_ratios": r.layer_ratios, "layer_thresholds": r.layer_thresholds,
                "dead_neuron_ratio": r.dead_neuron_ratio, "warmup": job.warmup,
                "eval_dataset": mm.data.name, "eval_tokens": mm.data.n_tokens,
                "eval_sha256": mm.data.sha256, "dtype": str(lm.dtype).replace("torch.", ""),
                "device": self.device_type, "bos": mm.data.bos,
                "search_warning": r.search.warning if r.search is not None else None,
                "cett_joint": bool(joint and r.metric == "ppl-p"),
                "settings_hash": hashes[_key(r.metric, arg)],
                "source": "measured", "tool_version": __version__, "created_at": now,
            }
            rows.append(row)
            if r.layer_thresholds is not None:
                line = "thresholds=" + ",".join(f"{t:.8g}" for t in r.layer_thresholds)
                key = f"{self.s.run}|{job.label}|{r.metric}|{arg:g}"
                entry = {"cett": r.cett, "thresholds": r.layer_thresholds, "line": line,
                         "ppl_ratio": r.ppl_sparse / r.ppl_dense}
                if r.search is not None:
                    entry["search"] = {k: v for k, v in asdict(r.search).items()}
                    entry["search"].update(r.extra)
                side[key] = entry
                print(f"# run={self.s.run} checkpoint={job.label} metric={_metric_label(r)} "
                      f"cett={r.cett:.6f} ppl_ratio={r.ppl_sparse / r.ppl_dense:.5f} "
                      f"activation_ratio={r.activation_ratio:.5f}")
                print(line, flush=True)
            else:
                print(f"# run={self.s.run} checkpoint={job.label} metric={_metric_label(r)} "
                      f"activation_ratio={r.activation_ratio:.5f}", flush=True)
            if r.search is not None and r.search.warning:
                self.log(f"warning: {job.label}: {r.search.warning}")
        if side:
            _atomic_json(sidecar_path(self.s.output), side)
        self.s.output.parent.mkdir(parents=True, exist_ok=True)
        append_rows(self.s.output, pd.DataFrame(rows))
        self.rows_written += len(rows)


def _search_result(doc: dict) -> SearchResult:
    """A :class:`SearchResult` from its JSON form (``asdict``)."""
    res = SearchResult(**doc)
    res.bracket = tuple(res.bracket)
    res.evaluations = [tuple(e) for e in res.evaluations]
    res.drop_at = tuple(res.drop_at) if res.drop_at is not None else None
    return res


def checkpoint_labels(paths: list[Path]) -> list[str]:
    """Machine-independent keys of explicitly named checkpoints: the file or folder name, or
    as many trailing path components as it takes to tell two of them apart (the same
    checkpoint spelled two ways gets one key; no absolute path of this machine is stored)."""
    depth = 1
    while True:
        labels = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels) or depth >= max(len(p.parts) for p in paths):
            return labels
        depth += 1


def _metric_label(r: MetricResult) -> str:
    """'ppl-p:1', 'cett:0.2', 'zero' (no ':nan' for metrics without an argument)."""
    arg = r.metric_arg
    return r.metric if arg is None or math.isnan(arg) else f"{r.metric}:{arg:g}"


def _short(name: str, width: int = 40) -> str:
    """A progress label: the name, or its start and end around an ellipsis."""
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return name[:head] + "\u2026" + name[-(width - 1 - head):]


def _has_weights(folder: Path) -> bool:
    """Whether a folder holds model weights of any kind we read."""
    return any(any(folder.glob(p)) for p in ("*.safetensors", "*.gguf", "pytorch_model*.bin", "*.pt"))


def _key(metric: str, arg: float) -> tuple[str, float | None]:
    """Dictionary key for (metric, arg) with NaN (no argument) as None."""
    return metric, None if arg is None or math.isnan(arg) else float(arg)


def _arch(key: tuple) -> str:
    t, d, layers, f = key
    return f"{t} (width {d}, depth {layers}, ffn {f})"


def folder_of(ref: CheckpointRef) -> Path:
    """The Hugging Face folder behind a checkpoint (GGUF converted on first use)."""
    return hf_folder(ref)
