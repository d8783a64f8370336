"""``lab --workers``: the split of models, the shared manifest, and the ci preset in 2 processes."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli
from conftest import torch_needed
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsitylaws.lab.plan import ModelSpec, load_plan, parse_plan
from sparsitylaws.lab.presets import PRESETS
from sparsitylaws.lab.workers import split_models, training_cost

MINIMAL = 'name = "t"\n[[model]]\nname = "a"\nwidth = 32\ndepth = 2\n'


# --- the split -----------------------------------------------------------------------------

def _optimum(costs: list[int], k: int) -> int:
    """The smallest busiest-worker load over every assignment of the models to k workers."""
    best = sum(costs)
    for assign in itertools.product(range(k), repeat=len(costs)):
        loads = [0] * k
        for c, w in zip(costs, assign, strict=True):
            loads[w] += c
        best = min(best, max(loads))
    return best


@settings(max_examples=120, deadline=None)
@given(costs=st.lists(st.integers(1, 30), min_size=1, max_size=7),
       workers=st.integers(1, 4), order=st.randoms(use_true_random=False))
def test_split_models_is_a_deterministic_lpt_split(costs, workers, order):
    plan = parse_plan(MINIMAL)
    models = [ModelSpec(name=f"m{i}", width=32, depth=2) for i in range(len(costs))]
    cost = {m.name: float(c) for m, c in zip(models, costs, strict=True)}
    groups = split_models(plan, models, workers, cost=lambda m: cost[m.name])
    names = [[m.name for m in g] for g in groups]
    # every model exactly once, no empty group, at most K groups
    assert sorted(n for g in names for n in g) == sorted(cost)
    assert all(names) and len(names) <= workers
    assert len(names) == min(workers, len(models))  # K models or more: every worker busy
    # deterministic, and the same whatever order the models come in
    shuffled = list(models)
    order.shuffle(shuffled)
    for again in (models, shuffled, shuffled[::-1]):
        assert [[m.name for m in g] for g in split_models(plan, again, workers,
                                                          cost=lambda m: cost[m.name])] == names
    # the LPT bound against the brute-force optimum
    busiest = max(sum(cost[n] for n in g) for g in names)
    opt = _optimum(costs, workers)
    assert busiest <= (4 / 3 - 1 / (3 * workers)) * opt + 1e-9, (costs, workers, names)


@pytest.mark.parametrize("costs, workers, busiest", [
    ([3, 3, 2, 2, 2], 2, 7),  # the classic LPT example: 7 against the optimum 6 (= 4/3 - 1/6)
    ([5, 5, 4, 4, 3, 3, 3], 3, 11),  # LPT's worst case for 3 machines: 11 against 9
    ([1], 4, 1),
])
def test_split_models_known_cases(costs, workers, busiest):
    plan = parse_plan(MINIMAL)
    models = [ModelSpec(name=f"m{i}", width=32, depth=2) for i in range(len(costs))]
    cost = {m.name: c for m, c in zip(models, costs, strict=True)}
    groups = split_models(plan, models, workers, cost=lambda m: cost[m.name])
    assert max(sum(cost[m.name] for m in g) for g in groups) == busiest


def test_split_models_default_cost_is_training_cost():
    plan = load_plan("gpu")
    own = split_models(plan, plan.models, 5)
    given_cost = split_models(plan, plan.models, 5, cost=lambda m: training_cost(plan, m))
    assert [[m.name for m in g] for g in own] == [[m.name for m in g] for g in given_cost]
    # more tokens or a bigger model cost more
    m = plan.models[0]
    assert training_cost(plan, ModelSpec(name="x", width=m.width, depth=m.depth + 1)) > training_cost(
        plan, ModelSpec(name="x", width=m.width, depth=m.depth))
    assert training_cost(plan, ModelSpec(name="x", width=32, depth=2, tokens=2000)) == pytest.approx(
        2 * training_cost(plan, ModelSpec(name="x", width=32, depth=2, tokens=1000)))


# --- the manifest shared by processes ------------------------------------------------------

def _record_many(path: str, worker: int, n: int, barrier) -> None:
    from sparsitylaws.lab.pipeline import Manifest

    man = Manifest(Path(path), parse_plan(MINIMAL))  # each process reads the file once, as a child does
    barrier.wait()
    for j in range(n):
        man.record("train", f"w{worker}-k{j}", 0.5 + j, worker=worker)
        if j % 5 == 0:
            man.record(f"stage-{worker}", None, float(j))


def test_manifest_records_from_several_processes_lose_nothing(tmp_path):
    from sparsitylaws.lab.pipeline import Manifest

    path = tmp_path / "lab-t.manifest.json"
    man = Manifest(path, parse_plan(MINIMAL))
    man.record("corpus", None, 1.0)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_record_many, args=(str(path), w, 20, barrier)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 4
    data = json.loads(path.read_text())
    assert data["plan"] == MINIMAL
    stages = data["stages"]
    assert stages["corpus"] == {"wall_s": 1.0}
    assert set(stages["train"]) == {f"w{w}-k{j}" for w in range(4) for j in range(20)}
    for w in range(4):
        for j in range(20):
            assert stages["train"][f"w{w}-k{j}"] == {"wall_s": 0.5 + j, "worker": w}
        assert stages[f"stage-{w}"] == {"wall_s": 15.0}
    # a process that read the file before the others wrote keeps their entries too
    man.record("fit", None, 2.0)
    stages = json.loads(path.read_text())["stages"]
    assert len(stages["train"]) == 80 and stages["fit"] == {"wall_s": 2.0}


# --- the ci preset in two processes --------------------------------------------------------

CI_MODELS = ("relu-w32-d2", "silu-w32-d2")


def _lab(plan: str, out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "SPARSITYLAWS_DEBUG": "1"}
    return subprocess.Popen([sys.executable, "-m", "sparsitylaws", "lab", plan, "-o", str(out), "-q", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _finish(proc: subprocess.Popen) -> tuple[str, str]:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    return out, err


@pytest.fixture(scope="module")
def one_and_two(tmp_path_factory):
    """The ci preset in one process (A) and with --workers 2 (B), run side by side."""
    root = tmp_path_factory.mktemp("workers")
    a, b = root / "A", root / "B"
    pa, pb = _lab("ci", a), _lab("ci", b, "--workers", "2")
    _finish(pa)
    _, err_b = _finish(pb)
    return a, b, err_b


def _mtimes(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@torch_needed
@pytest.mark.slow
@pytest.mark.measure
def test_two_workers_write_what_one_process_writes(one_and_two):
    from sparsitylaws.tables.io import read_table

    a, b, err = one_and_two
    keys = ["run", "checkpoint", "metric"]
    ta = read_table(a / "lab-ci.parquet").sort_values(keys).reset_index(drop=True)
    tb = read_table(b / "lab-ci.parquet").sort_values(keys).reset_index(drop=True)
    assert not tb.duplicated(keys).any() and not ta.duplicated(keys).any()
    assert len(ta) == 40  # 8 checkpoints x (ppl-p and the common CETT for both, zero for ReLU)
    assert ta[keys].values.tolist() == tb[keys].values.tolist()
    assert list(ta["tokens"]) == list(tb["tokens"])
    # training is deterministic on CPU: the very same numbers
    np.testing.assert_array_equal(ta["activation_ratio"].to_numpy(), tb["activation_ratio"].to_numpy())
    np.testing.assert_array_equal(ta["ppl_dense"].to_numpy(), tb["ppl_dense"].to_numpy())
    # the workers ran, each with a log, and the parent said so
    for i in range(2):
        assert (b / "logs" / f"worker-{i}.log").is_file()
        assert f"worker {i}: done" in err
    assert not (a / "logs").exists()
    man = json.loads((b / "lab-ci.manifest.json").read_text())["stages"]
    for stage in ("train", "measure"):
        assert set(man[stage]) == set(CI_MODELS), (stage, man[stage])
    assert all(man["train"][m]["steps"] > 0 for m in CI_MODELS)
    assert man["measure"]["relu-w32-d2"]["rows"] == 24 and man["measure"]["silu-w32-d2"]["rows"] == 16
    assert {"corpus", "fit", "report"} <= set(man)
    for name in ("laws.json", "report.html"):
        assert (b / f"lab-ci.{name}").is_file()

    # the same command again: nothing retrained or re-measured
    runs = _mtimes(b / "runs")
    before = read_table(b / "lab-ci.parquet")
    _finish(_lab("ci", b, "--workers", "2"))
    assert _mtimes(b / "runs") == runs
    after = read_table(b / "lab-ci.parquet")
    assert sorted(after["created_at"]) == sorted(before["created_at"]) and len(after) == len(before)
    man2 = json.loads((b / "lab-ci.manifest.json").read_text())["stages"]
    assert man2["train"] == man["train"] and man2["measure"] == man["measure"]
    # the corpus was built once; the children and the rerun reuse it and keep its build time
    assert man2["corpus"] == man["corpus"] and man["corpus"]["wall_s"] > 0


def _procs_naming(text: str) -> list[str]:
    """Command lines of live processes that mention ``text`` (Linux /proc)."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (d / "stat").read_text().split(") ")[-1][:1]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(cmd)
    return found


@torch_needed
@pytest.mark.slow
@pytest.mark.measure
def test_a_failing_worker_stops_all_and_names_its_log(tmp_path):
    # ReLU trains for a long time; SiLU's folder holds a run from other settings, so its
    # worker fails at once, and the ReLU worker must be stopped with it
    text = PRESETS["ci"].replace("tokens = 120_000", "tokens = 120_000_000", 1)
    assert text != PRESETS["ci"]
    plan_file = tmp_path / "ci-copy.toml"
    plan_file.write_text(text)
    plan = load_plan(str(plan_file))
    groups = split_models(plan, plan.models, 2)
    bad = next(i for i, g in enumerate(groups) if [m.name for m in g] == ["silu-w32-d2"])
    out = tmp_path / "out"
    (out / "runs" / "silu-w32-d2").mkdir(parents=True)
    (out / "runs" / "silu-w32-d2" / "done.json").write_text(json.dumps({"fingerprint": "not-these-settings"}))

    t0 = time.monotonic()
    proc = _lab(str(plan_file), out, "--workers", "2")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 2, stdout + stderr
    assert time.monotonic() - t0 < 200  # not after training ReLU on 120M tokens
    assert "Traceback" not in stderr
    log = out / "logs" / f"worker-{bad}.log"
    error = [ln for ln in stderr.splitlines() if ln.startswith("sparsitylaws: error:")]
    # the parent's one error, then the tail of the worker's log (its own error line)
    assert len(error) == 2, stderr
    assert f"lab worker {bad} (silu-w32-d2) stopped with status 2" in error[0], error[0]
    assert str(log) in error[0]
    assert "other settings" in stderr  # the tail of the worker's log says why
    assert "other settings" in log.read_text()
    # the other worker was stopped, not left training
    if Path("/proc/self/cmdline").exists():
        deadline = time.monotonic() + 10
        while _procs_naming(str(out)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _procs_naming(str(out)) == []
    assert not (out / "runs" / "relu-w32-d2" / "done.json").exists()
    # nothing was fitted or reported after the failure
    assert not (out / "lab-ci.laws.json").exists()


def test_workers_under_torchrun_are_refused(monkeypatch, tmp_path):
    """Every torchrun process would start its own workers: one clear line, exit 2."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    res = run_cli("lab", "ci", "-o", tmp_path / "out", "--workers", "2")
    assert_one_line_error(res, "--workers", "torchrun")
    assert not (tmp_path / "out").exists()
