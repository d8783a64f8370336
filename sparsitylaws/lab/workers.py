"""Several lab processes at once: whole models shared out to ``--workers`` child processes.

Small models leave a GPU idle between kernel launches; several processes training different
models fill it (and many CPU cores likewise).  Each child is ``sparsitylaws lab PLAN -o OUT
--model ... --stage train --stage measure``: the runs live in their own folders, measured rows
go into the one table under its lock, and the manifest is updated under the same lock, so the
output folder is the one a single process would have written.  The split is by estimated
training cost (longest first, each to the least loaded worker) and depends only on the plan,
so a rerun after an interruption gives every worker the models it had and resumes them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sparsitylaws.errors import SparsityLawsError
from sparsitylaws.lab.plan import ModelSpec, Plan


def training_cost(plan: Plan, m: ModelSpec) -> float:
    """Training FLOPs, about: 6 N per token plus attention (12 L T d per token)."""
    n = m.estimated_params()
    tokens = m.tokens or plan.train.tokens_per_param * n
    return tokens * (6.0 * n + 12.0 * m.depth * plan.train.seq_len * m.width)


def split_models(plan: Plan, models: Sequence[ModelSpec], workers: int,
                 cost: Callable[[ModelSpec], float] | None = None) -> list[list[ModelSpec]]:
    """Longest-processing-time split of ``models`` into at most ``workers`` non-empty groups."""
    cost = cost or (lambda m: training_cost(plan, m))
    groups: list[list[ModelSpec]] = [[] for _ in range(max(1, min(workers, len(models))))]
    loads = [0.0] * len(groups)
    for m in sorted(models, key=lambda m: (-cost(m), m.name)):
        i = min(range(len(groups)), key=lambda k: (loads[k], k))
        groups[i].append(m)
        loads[i] += cost(m)
    return [g for g in groups if g]


def run_in_workers(plan_arg: str, plan: Plan, out: Path, models: Sequence[ModelSpec], workers: int,
                   stages: Sequence[str], quiet: bool, log: Callable[[str], None]) -> None:
    """Train and measure ``models`` in ``workers`` child processes; stop all at the first failure.

    Each child's output goes to ``OUT/logs/worker-I.log``.  CPU threads are shared out
    (``OMP_NUM_THREADS``) unless the plan or the environment sets them.
    """
    plan_path = Path(plan_arg)
    if plan_path.is_file():
        plan_arg = str(plan_path.resolve())
    groups = split_models(plan, models, workers)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if not plan.train.threads and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // len(groups)))
    procs = []
    for i, group in enumerate(groups):
        cmd = [sys.executable, "-m", "sparsitylaws", "lab", plan_arg, "-o", str(out), "-q"]
        for s in stages:
            cmd += ["--stage", s]
        for m in group:
            cmd += ["--model", m.name]
        path = logs / f"worker-{i}.log"
        fh = path.open("a")
        procs.append((subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env), fh, path, group))
        log(f"worker {i}: {', '.join(m.name for m in group)} (log: {path})")
    try:
        pending = list(range(len(procs)))
        while pending:
            for i in list(pending):
                proc, _, path, group = procs[i]
                rc = proc.poll()
                if rc is None:
                    continue
                pending.remove(i)
                if rc != 0:
                    tail = path.read_text(errors="replace").strip().splitlines()[-5:]
                    raise SparsityLawsError(
                        f"lab worker {i} ({', '.join(m.name for m in group)}) stopped with status "
                        f"{rc}; see {path}:\n" + "\n".join(tail))
                log(f"worker {i}: done")
            time.sleep(0.5)
    finally:
        for proc, fh, _, _ in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            fh.close()
