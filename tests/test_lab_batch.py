"""A model's own ``batch_size``: small models of a scale series get enough optimizer steps.

The lab's gpu run trained its 95k model for 91 steps at the plan's 128 x 512 batch; a
per-model batch gives such models as many steps as they need at the same token budget.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from sparsitylaws.lab.plan import PlanError, parse_plan
from sparsitylaws.lab.presets import PRESETS
from sparsitylaws.lab.sizing import steps_at

BASE = 'name = "t"\n[train]\nbatch_size = 16\nseq_len = 64\n[measure]\nseq_len = 64\n[[model]]\nname = "a"\nwidth = 32\ndepth = 2\n'


def test_batch_size_override_parses_and_sets_the_models_training():
    plan = parse_plan(BASE + "batch_size = 4\ntokens = 10240\n")
    m = plan.models[0]
    assert m.batch_size == 4 and plan.train_for(m).batch_size == 4
    assert plan.train_for(m).seq_len == plan.train.seq_len == 64  # nothing else changes
    assert steps_at(plan, m, 190) == 10240 // (4 * 64)
    plain = parse_plan(BASE + "tokens = 10240\n")
    assert plain.train_for(plain.models[0]) is plain.train
    assert steps_at(plain, plain.models[0], 190) == 10240 // (16 * 64)


@pytest.mark.parametrize("bad", ["0", "-2", "2.5", '"big"', "true"])
def test_bad_batch_size_names_the_model_and_key(bad):
    with pytest.raises(PlanError, match=r"\(a\)\.batch_size"):
        parse_plan(BASE + f"batch_size = {bad}\n")


def test_unset_batch_size_keeps_the_run_fingerprint():
    """Runs trained before the field existed resume: an unset batch_size is not hashed."""
    import hashlib
    from dataclasses import asdict

    from sparsitylaws.lab.train import fingerprint

    plan = parse_plan(PRESETS["ci"])
    m = plan.models[0]
    before = asdict(m)
    before.pop("batch_size")
    before.pop("design")  # unset (a model without seeds): not hashed either
    payload = {"model": before, "train": asdict(plan.train), "seed": 0, "corpus": "c"}
    ref = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    assert fingerprint(m, plan.train, 0, "c") == ref
    own = parse_plan(PRESETS["ci"].replace('name = "relu-w32-d2"\n', 'name = "relu-w32-d2"\nbatch_size = 8\n'))
    m8 = own.models[0]
    assert fingerprint(m8, own.train_for(m8), 0, "c") != ref


@pytest.mark.skipif(any(importlib.util.find_spec(x) is None for x in ("torch", "transformers", "accelerate")),
                    reason="needs the [measure] extra")
@pytest.mark.slow
@pytest.mark.measure
def test_a_model_trains_and_is_measured_at_its_own_batch(tmp_path):
    from sparsitylaws.tables.io import read_table

    text = PRESETS["ci"].replace('name = "relu-w32-d2"\n', 'name = "relu-w32-d2"\nbatch_size = 8\n')
    plan_path = tmp_path / "plan.toml"
    plan_path.write_text(text)
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "sparsitylaws", "lab", str(plan_path), "-o", str(out), "-q",
                          "--model", "relu-w32-d2", "--stage", "train", "--stage", "measure"],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "SPARSITYLAWS_DEBUG": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    plan = parse_plan(text)
    m = plan.model("relu-w32-d2")
    done = json.loads((out / "runs" / m.name / "done.json").read_text())
    seq = plan.train.seq_len
    assert done["steps"] == -(-m.tokens // (8 * seq))  # twice the steps of the plan's batch 16
    assert done["tokens_trained"] == done["steps"] * 8 * seq
    df = read_table(out / "lab-ci.parquet")
    ppl = df[df["metric"] == "ppl-p"].sort_values("tokens")
    steps = [int(str(c).rsplit("step-", 1)[1]) for c in ppl["checkpoint"]]
    assert list(ppl["tokens"]) == [s * 8 * seq for s in steps] and steps[-1] == done["steps"]
    state = json.loads((out / "runs" / m.name / "checkpoints" / f"step-{done['steps']:07d}"
                        / "trainer_state.json").read_text())
    assert state["train_batch_size"] == 8
