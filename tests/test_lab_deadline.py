"""A lab run inside a fixed wall time (scripts/lab-gpu.sh, sparsitylaws.lab.deadline): the
prepared script runs end to end on CPU, and work past the deadline is stopped, children
included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import torch_needed

from sparsitylaws.lab.deadline import run_until

ROOT = Path(__file__).resolve().parents[1]


def test_run_until_stops_the_whole_group_at_the_deadline(tmp_path):
    marker = tmp_path / "child.pid"
    code = ("import os, subprocess, sys, time\n"
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open({str(marker)!r}, 'w').write(str(c.pid))\n"
            "time.sleep(60)\n")
    rc, ran = run_until([sys.executable, "-c", code], time.monotonic() + 3.0, tmp_path / "log")
    assert rc is None and ran < 40
    child = int(marker.read_text())
    time.sleep(0.5)
    status = Path(f"/proc/{child}/status")
    if status.exists():  # the grandchild went with the group: gone, or a zombie not yet reaped
        state = next(ln for ln in status.read_text().splitlines() if ln.startswith("State:"))
        assert "Z" in state.split()[1], state


def test_run_until_returns_the_status_of_a_finished_command(tmp_path):
    rc, _ = run_until([sys.executable, "-c", "raise SystemExit(3)"], time.monotonic() + 60, tmp_path / "log")
    assert rc == 3


TINY = """\
name = "tiny"
[corpus]
max_train_bytes = 300_000
eval_bytes = 8_192
clean = true
[train]
seq_len = 32
batch_size = 8
checkpoints = 6
first_checkpoint_frac = 0.1
decay_frac = 0.2
threads = 1
[measure]
seq_len = 32
num_seqs = 4
common_cett = 0.1
[fit]
n_boot = 20
[[model]]
name = "m"
width = 16
depth = 1
tokens = 20_000
"""


@torch_needed
@pytest.mark.slow
@pytest.mark.measure
def test_the_prepared_gpu_script_runs_end_to_end_on_cpu(tmp_path):
    plan = tmp_path / "tiny.toml"
    plan.write_text(TINY)
    out, dest = tmp_path / "out", tmp_path / "dest"
    env = {**os.environ, "PLAN": str(plan), "TOTAL_S": "400", "WORKERS": "1", "OUT": str(out),
           "DEST": str(dest), "SPARSITYLAWS_DEBUG": "1"}
    res = subprocess.run([str(ROOT / "scripts" / "lab-gpu.sh")], capture_output=True, text=True,
                         timeout=900, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert {p.name for p in dest.iterdir()} == {f"lab-tiny.{s}" for s in
                                                ("parquet", "laws.json", "manifest.json", "thresholds.json", "plan.toml")}
    man = json.loads((dest / "lab-tiny.manifest.json").read_text())
    d = man["deadline"]
    assert d["stopped_at_deadline"] is False and d["total_s"] == 400
    assert set(d["timings_s"]) == {"corpus_s", "sizing_s", "train_measure_s", "fit_report_s", "total_s"}
    assert "sized by lab.deadline" in (dest / "lab-tiny.plan.toml").read_text()
    assert man["stages"]["measure"]["m"]["rows"] == 6 * 3  # ppl-p, zero and the common CETT
    assert (out / "lab-tiny.report.html").is_file()
