"""A whole lab run inside a fixed wall time: sizing, corpus, training, measuring, fit, report.

What ``scripts/lab-gpu.sh`` runs on a machine lent for minutes (issue 22: the ``gpu`` preset
end to end in 10 minutes on one H100):

    python -m sparsitylaws.lab.deadline gpu --total-s 600 --workers 5 -o /tmp/lab-gpu --dest measurements

1. the corpus is built (its time counts against the total);
2. sizing (:mod:`.sizing`) times a few training steps and the measuring of one checkpoint
   per distinct shape, and sets ``train.tokens_per_param`` so that training and measuring
   fit the time left, less ``--reserve-s`` for fit and report and a ``--margin`` for what
   the estimate misses; the sized plan is written beside the results;
3. training and measuring run (``lab --stage train --stage measure``, ``--workers`` K) in
   their own process group, stopped at the deadline if the estimate was wrong: every row
   measured by then is kept (rows are appended one by one), the rest is said in the
   manifest (``deadline`` entry);
4. fit and report run on what was measured;
5. the table, law set, manifest, thresholds and sized plan are copied to ``--dest`` as
   ``lab-NAME.*``, ready to commit (the report stays in ``-o``).

Every stage's wall time, the sizing's estimate and the deadline go into the manifest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

RESULT_SUFFIXES = ("parquet", "laws.json", "manifest.json", "thresholds.json", "plan.toml")


def run_until(cmd: list[str], deadline: float, log_path: Path, env: dict | None = None) -> tuple[int | None, float]:
    """Run ``cmd`` in its own process group until it ends or ``deadline`` (a
    ``time.monotonic()`` value) passes; then the whole group is stopped (SIGTERM, then
    SIGKILL after 20 s).  Returns (exit status or None when stopped, seconds run)."""
    t0 = time.monotonic()
    with open(log_path, "a") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            return rc, time.monotonic() - t0
        except subprocess.TimeoutExpired:
            _stop_group(proc)
            return None, time.monotonic() - t0


def _stop_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _lab(plan_arg: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sparsitylaws", "lab", plan_arg, "-o", str(out), "-q", *extra]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sparsitylaws.lab.deadline",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("plan", help="plan TOML file or preset name (e.g. gpu)")
    ap.add_argument("--total-s", type=float, default=600.0, help="wall seconds for everything")
    ap.add_argument("--workers", type=int, default=1, help="as 'lab --workers'")
    ap.add_argument("--reserve-s", type=float, default=75.0,
                    help="seconds kept for fit, report and copying (default 75)")
    ap.add_argument("--margin", type=float, default=0.15,
                    help="share of the time left not given to the estimate (default 0.15)")
    ap.add_argument("--overlap", type=float, default=1.0, help="as sizing's --overlap")
    ap.add_argument("-o", "--output", type=Path, required=True, help="the lab's output folder")
    ap.add_argument("--dest", type=Path, default=None, help="copy the results here (e.g. measurements)")
    a = ap.parse_args(argv)
    start = time.monotonic()
    end = start + a.total_s
    from sparsitylaws.errors import SparsityLawsError
    from sparsitylaws.lab.plan import load_plan

    try:
        plan = load_plan(a.plan)
    except SparsityLawsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = a.output
    out.mkdir(parents=True, exist_ok=True)
    stem = f"lab-{plan.name}"
    timings: dict[str, float] = {}

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - start:6.0f} s] {msg}", flush=True)

    # 1. corpus (its own stage; the lab reuses it)
    t0 = time.monotonic()
    rc, _ = run_until(_lab(a.plan, out, "--stage", "corpus"), end - a.reserve_s, out / "deadline.log")
    timings["corpus_s"] = time.monotonic() - t0
    if rc != 0:
        print(f"error: building the corpus failed (see {out / 'deadline.log'})", file=sys.stderr)
        return 2
    say(f"corpus built in {timings['corpus_s']:.0f} s")

    # 2. sizing: training and measuring must fit what is left
    from transformers.utils import logging as hf_logging

    from sparsitylaws.lab.sizing import (
        estimate_seconds,
        fit_tokens_per_param,
        size_plan,
        with_tokens_per_param,
    )
    from sparsitylaws.tables.atomic import atomic_write_text

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    t0 = time.monotonic()
    step_s, measure_s = size_plan(plan, log=say)
    timings["sizing_s"] = time.monotonic() - t0
    budget = (end - time.monotonic() - a.reserve_s) * (1.0 - a.margin)
    tpp = fit_tokens_per_param(plan, step_s, budget, a.workers, a.overlap, measure_s)
    est = estimate_seconds(plan, step_s, tpp, a.workers, a.overlap, measure_s)
    note = (f"sized by lab.deadline: {a.total_s:g} s in all, {budget:.0f} s for training and "
            f"measuring, {a.workers} workers; estimated {est:.0f} s")
    sized_path = out / f"{stem}.plan.toml"
    atomic_write_text(sized_path, with_tokens_per_param(plan.source_text, tpp, note))
    say(f"sizing took {timings['sizing_s']:.0f} s: tokens_per_param = {tpp:g}, estimated {est:.0f} s "
        f"of the {budget:.0f} s budget")

    # 3. training and measuring, stopped at the deadline if the estimate was wrong
    t0 = time.monotonic()
    work = _lab(str(sized_path), out, "--stage", "train", "--stage", "measure", "--workers", str(a.workers))
    rc, ran = run_until(work, end - a.reserve_s, out / "deadline.log")
    timings["train_measure_s"] = ran
    cut = rc is None
    if rc not in (0, None):
        print(f"error: training or measuring failed with status {rc} (see {out / 'deadline.log'})",
              file=sys.stderr)
        return 2
    say(f"training and measuring: {ran:.0f} s" + (" (stopped at the deadline)" if cut else ""))

    # 4. fit and report on what was measured
    t0 = time.monotonic()
    rc, _ = run_until(_lab(str(sized_path), out, "--stage", "fit", "--stage", "report"),
                      end + 60.0, out / "deadline.log")
    timings["fit_report_s"] = time.monotonic() - t0
    say(f"fit and report: {timings['fit_report_s']:.0f} s" + ("" if rc == 0 else f" (status {rc})"))

    # 5. record, copy
    timings["total_s"] = time.monotonic() - start
    _record(out / f"{stem}.manifest.json", {
        "total_s": round(a.total_s, 1), "workers": a.workers, "tokens_per_param": tpp,
        "estimated_train_measure_s": round(est, 1), "budget_train_measure_s": round(budget, 1),
        "stopped_at_deadline": cut, "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "command": "python -m sparsitylaws.lab.deadline " + " ".join(argv if argv is not None else sys.argv[1:])})
    if a.dest:
        a.dest.mkdir(parents=True, exist_ok=True)
        for suffix in RESULT_SUFFIXES:
            src = out / f"{stem}.{suffix}"
            if src.is_file():
                shutil.copyfile(src, a.dest / src.name)
        say(f"results copied to {a.dest}/{stem}.* (report: {out / (stem + '.report.html')})")
    say(f"done in {timings['total_s']:.0f} s of {a.total_s:g}")
    return 0 if rc == 0 else 1


def _record(path: Path, entry: dict) -> None:
    """Add the deadline run's facts to the lab manifest (under its lock)."""
    from sparsitylaws.tables.atomic import atomic_write_text
    from sparsitylaws.tables.io import file_lock

    with file_lock(path):
        data = json.loads(path.read_text()) if path.is_file() else {}
        data["deadline"] = entry
        atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True, default=str))


if __name__ == "__main__":
    sys.exit(main())
