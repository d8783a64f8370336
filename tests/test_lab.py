"""The lab: plans and presets (no torch), and the ``ci`` preset end to end with a kill."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import torch_needed

from sparsitylaws.lab.plan import PlanError, checkpoint_steps, load_plan, parse_plan
from sparsitylaws.lab.presets import PRESETS

MINIMAL = 'name = "t"\n[[model]]\nname = "a"\nwidth = 32\ndepth = 2\n'


@pytest.mark.parametrize("bad, needle", [
    ('name = "t"\n', "no models"),
    (MINIMAL + "colour = 3\n", "colour"),
    (MINIMAL.replace("depth = 2", 'depth = 2\nactivation = "tanh"'), "activation"),
    (MINIMAL.replace("width = 32", "width = 30"), "head_dim"),
    (MINIMAL + '[[model]]\nname = "a"\nwidth = 32\ndepth = 1\n', "twice"),
    (MINIMAL.replace('name = "t"', 'name = "t"\n[train]\nlr = "fast"'), "train.lr"),
    (MINIMAL.replace('name = "t"', 'name = "t"\n[train]\ncheckpoints = 3'), "checkpoints"),
    ("name = [", "not valid TOML"),
])
def test_bad_plans_name_the_key(bad, needle):
    with pytest.raises(PlanError, match=needle):
        parse_plan(bad, where="p.toml")


def test_missing_plan_file_names_it(tmp_path):
    with pytest.raises(PlanError, match="nope.toml"):
        load_plan(tmp_path / "nope.toml")


@pytest.mark.parametrize("total, n, first", [(1000, 16, 0.02), (20, 16, 0.01), (5, 8, 0.1), (1, 4, 0.5)])
def test_checkpoint_steps_are_log_spaced_and_distinct(total, n, first):
    steps = checkpoint_steps(total, n, first)
    assert len(steps) == min(n, total) and len(set(steps)) == len(steps)
    assert steps == sorted(steps) and steps[-1] == total and steps[0] >= 1
    if total >= 100 * n:  # no collisions: the plain geometric grid
        grid = np.geomspace(first * total, total, n)
        assert np.allclose(steps, np.round(grid), atol=0.5)


def test_presets_parse_and_cpu_meets_the_design():
    """cpu and gpu (issue 22): a width/depth sweep of >= 5 ratios x >= 3 seeds at one size
    with one head size, on both sides of the paper's bottleneck (114), a learning rate per
    width and a decay phase, >= 65,536 evaluation tokens per checkpoint from a cleaned
    corpus, and one common CETT for every run."""
    plans = {k: load_plan(k) for k in PRESETS}
    assert set(plans) >= {"ci", "cpu", "gpu"}
    for name in ("cpu", "gpu"):
        p = plans[name]
        assert p.train.checkpoints >= 10
        assert p.train.decay_frac > 0 and p.train.lr_width_ref > 0
        assert p.measure.seq_len * p.measure.num_seqs >= 65_536, name
        assert p.measure.common_cett > 0
        c = p.corpus
        assert c.clean and c.source == "stdlib+packages" and c.eval_bytes >= 4 * 65_536
        relu = [m for m in p.models if m.activation == "relu"]
        sizes = [m.estimated_params() for m in relu]
        assert math.log10(max(sizes) / min(sizes)) < 0.11, name  # one size
        assert len({m.head_dim for m in relu}) == 1, name  # one head size
        seeds: dict[float, set] = {}
        for m in relu:
            seeds.setdefault(m.width_depth_ratio, set()).add(p.seed_of(m))
        assert len(seeds) >= 5 and all(len(v) >= 3 for v in seeds.values()), (name, seeds)
        ratios = sorted(seeds)
        assert ratios[0] < 114 < ratios[-1], (name, ratios)
        assert {m.design for m in relu} == {m.design_name for m in relu}


def test_lab_modules_stay_light():
    code = ("import sys\nimport sparsitylaws.lab.plan, sparsitylaws.lab.presets, sparsitylaws.cli.lab\n"
            "print('HEAVY', [m for m in ('torch', 'transformers') if m in sys.modules])\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_corpus_split_rule_is_the_documented_hash():
    import hashlib

    from sparsitylaws.lab.corpus import is_eval

    names = [f"pkg/mod{i}.py" for i in range(2000)]
    held = [n for n in names if is_eval(n, 100)]
    brute = [n for n in names if int(hashlib.sha256(n.encode()).hexdigest()[:8], 16) % 1000 < 100]
    assert held == brute and 0.07 < len(held) / len(names) < 0.13


def test_lr_schedule_is_wsd():
    from sparsitylaws.lab.plan import TrainSpec
    from sparsitylaws.lab.train import lr_factor

    t = TrainSpec(warmup_frac=0.1, decay_frac=0.2, min_lr_ratio=0.1)
    f = [lr_factor(s, 100, t) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == 1.0 and f[50] == 1.0 and f[79] == 1.0
    assert f[99] == pytest.approx(0.1) and all(a >= b for a, b in zip(f[10:], f[11:], strict=False))


# --- end to end ---------------------------------------------------------------------------



def _lab(out: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "SPARSITYLAWS_DEBUG": "1"}
    return subprocess.Popen([sys.executable, "-m", "sparsitylaws", "lab", "ci", "-o", str(out), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, **kw)


def _key(df):
    return list(zip(df["run"], df["tokens"], df["metric"], strict=False))


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab") / "ci"
    proc = _lab(out)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    return out


@torch_needed
@pytest.mark.slow
@pytest.mark.measure
def test_ci_preset_end_to_end(ci_run):
    from sparsitylaws.lab.train import CKPT_DIR
    from sparsitylaws.lawset.fileformat import load_lawset
    from sparsitylaws.tables.io import read_table

    plan = load_plan("ci")
    df = read_table(ci_run / "lab-ci.parquet")
    assert sorted(df["run"].unique()) == ["ci-relu-w32-d2", "ci-silu-w32-d2"]
    assert not df.duplicated(["run", "checkpoint", "metric"]).any()
    for m in plan.models:
        sub = df[df["run"] == plan.run_name(m)]
        ckpts = sorted((ci_run / "runs" / m.name / CKPT_DIR).iterdir())
        assert len(ckpts) == plan.train.checkpoints
        for c in ckpts:  # what measure --run-dir needs, without extra flags
            assert {"model.safetensors", "config.json", "trainer_state.json", "tokenizer_config.json"} <= {
                f.name for f in c.iterdir()}
        metrics = sorted(sub["metric"].unique())
        assert metrics == (["cett", "ppl-p", "zero"] if m.activation == "relu" else ["cett", "ppl-p"])
        assert (sub[sub["metric"] == "cett"]["metric_arg"] == plan.measure.common_cett).all()
        ppl = sub[sub["metric"] == "ppl-p"].sort_values("tokens")
        assert len(ppl) == plan.train.checkpoints
        # tokens = steps * batch * seq_len, read from trainer_state.json by measure
        steps = [int(Path(c).name.split("-")[1]) for c in ppl["checkpoint"]]
        assert list(ppl["tokens"]) == [s * plan.train.batch_size * plan.train.seq_len for s in steps]
        assert ppl["cett"].nunique() == 1  # one CETT per run: the stabilizing strategy
        assert ((ppl["activation_ratio"] > 0) & (ppl["activation_ratio"] <= 1)).all()
        assert (ppl["width"] == m.width).all() and (ppl["depth"] == m.depth).all()
        assert (ppl["ffn_width"] == m.d_ffn).all()
        assert int(ppl["n_params"].iloc[0]) == m.estimated_params() + (2 * m.depth + 1) * m.width  # + norms
        if m.activation == "relu":  # PPL-1% keeps fewer neurons than "nonzero"
            z = sub[sub["metric"] == "zero"].sort_values("tokens")
            assert (ppl["activation_ratio"].to_numpy() <= z["activation_ratio"].to_numpy() + 1e-12).all()
    laws = load_lawset(ci_run / "lab-ci.laws.json")
    assert laws.run_names() == sorted(plan.run_name(m) for m in plan.models)
    assert laws.runs["ci-relu-w32-d2"].activation == "relu"
    assert (ci_run / "lab-ci.report.html").stat().st_size > 10_000


@torch_needed
@pytest.mark.slow
@pytest.mark.measure
def test_ci_preset_killed_and_resumed_loses_and_repeats_nothing(ci_run, tmp_path):
    from sparsitylaws.tables.io import read_table

    out = tmp_path / "ci"
    first_state = out / "runs" / "silu-w32-d2" / "train_state.pt"
    proc = _lab(out)
    deadline = time.monotonic() + 600
    while not first_state.exists():  # the second model is half trained: the first is measured
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "runs" / "silu-w32-d2" / "done.json").exists()
    before = read_table(out / "lab-ci.parquet")
    assert set(before["run"]) == {"ci-relu-w32-d2"}
    relu_files = {p: p.stat().st_mtime_ns for p in (out / "runs" / "relu-w32-d2").rglob("*") if p.is_file()}

    proc = _lab(out)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log
    assert "resuming at step" in log
    after = read_table(out / "lab-ci.parquet")
    # nothing retrained or re-measured for the finished model
    assert {p: p.stat().st_mtime_ns for p in relu_files} == relu_files
    kept = after[after["run"] == "ci-relu-w32-d2"]
    assert sorted(kept["created_at"]) == sorted(before["created_at"])
    # nothing lost or duplicated: the same rows as the uninterrupted run, same numbers
    ref = read_table(ci_run / "lab-ci.parquet")
    assert not after.duplicated(["run", "checkpoint", "metric"]).any()
    a = after.sort_values(["run", "tokens", "metric"])
    r = ref.sort_values(["run", "tokens", "metric"])
    assert _key(a) == _key(r)
    np.testing.assert_allclose(a["activation_ratio"], r["activation_ratio"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(a["ppl_dense"], r["ppl_dense"], rtol=1e-9)


@torch_needed
@pytest.mark.measure
@pytest.mark.parametrize("gated, act", [(True, "relu"), (True, "silu"), (False, "relu"), (False, "gelu")])
def test_models_are_hf_classes_that_measure_finds(gated, act):
    from sparsitylaws.lab.models import build_model, byte_tokenizer, non_embedding_params
    from sparsitylaws.lab.plan import ModelSpec
    from sparsitylaws.measure.loading import activation_name, find_ffn_sites

    spec = ModelSpec(name="m", width=32, depth=3, activation=act, gated=gated, head_dim=16)
    tok = byte_tokenizer()
    assert len(tok) == 259 and tok("ab", add_special_tokens=False)["input_ids"] == [ord("a") + 3, ord("b") + 3]
    model = build_model(spec, len(tok), 64)
    assert type(model).__name__ == ("LlamaForCausalLM" if gated else "GPTNeoXForCausalLM")
    sites = find_ffn_sites(model)
    assert len(sites) == spec.depth and all(s.gated == gated for s in sites)
    assert all(s.w_out().shape == (spec.width, spec.d_ffn) for s in sites)
    assert activation_name(model.config) == act
    # non-embedding parameters: the documented count plus the norms (and GPT-NeoX's biases)
    n = non_embedding_params(model)
    extra = n - spec.estimated_params()
    norms = (2 * spec.depth + 1) * spec.width * (1 if gated else 2)
    biases = 0 if gated else spec.depth * (4 * spec.width + spec.d_ffn + spec.width) + 0
    assert extra == norms + biases


@torch_needed
@pytest.mark.slow
@pytest.mark.measure
def test_ci_preset_under_torchrun_matches_one_process(ci_run, tmp_path):
    """Two CPU processes (torchrun, gloo) split each batch; the result is the same run."""
    import json

    from sparsitylaws.tables.io import read_table

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(29500 + os.getpid() % 1000), "-m", "sparsitylaws", "lab", "ci",
           "-o", str(out), "-q", "--model", "relu-w32-d2", "--stage", "train", "--stage", "measure"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "SPARSITYLAWS_DEBUG": "1"})
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert json.loads((out / "runs" / "relu-w32-d2" / "done.json").read_text())["processes"] == 2
    two = read_table(out / "lab-ci.parquet").sort_values(["tokens", "metric"])
    one = read_table(ci_run / "lab-ci.parquet")
    one = one[one["run"] == "ci-relu-w32-d2"].sort_values(["tokens", "metric"])
    assert _key(two) == _key(one)  # same checkpoints, tokens and metrics, none twice
    # the same optimisation up to the order of floating-point sums across processes
    np.testing.assert_allclose(two["ppl_dense"], one["ppl_dense"], rtol=2e-3)
    np.testing.assert_allclose(two["activation_ratio"], one["activation_ratio"], atol=0.02)


def test_cli_bad_plan_is_one_line_exit_2(tmp_path):
    from cli_helpers import assert_one_line_error, run_cli

    bad = tmp_path / "bad.toml"
    bad.write_text(MINIMAL.replace("depth = 2", "depth = 0"))
    assert_one_line_error(run_cli("lab", str(bad)), "bad.toml", "depth")
    assert_one_line_error(run_cli("lab", "no-such-preset"), "no-such-preset", "ci, cpu, gpu")


@torch_needed
@pytest.mark.slow
@pytest.mark.measure
def test_changed_plan_refuses_to_reuse_a_finished_run(ci_run, tmp_path):
    import shutil

    from cli_helpers import assert_one_line_error, run_cli

    out = tmp_path / "ci"
    shutil.copytree(ci_run, out)
    plan = tmp_path / "ci.toml"
    plan.write_text(PRESETS["ci"].replace("lr = 3e-3", "lr = 1e-3"))
    assert_one_line_error(run_cli("lab", str(plan), "-o", str(out), "-q"),
                          "relu-w32-d2", "other settings")


@torch_needed
@pytest.mark.slow
@pytest.mark.measure
def test_a_plan_can_train_its_own_bpe_vocabulary(tmp_path):
    """corpus.tokenizer = "bpe": a byte-level BPE trained on the training part, saved with
    every checkpoint, read back by measure; the vocabulary is the plan's."""
    import json

    from transformers import AutoTokenizer

    from sparsitylaws.tables.io import read_table

    plan = tmp_path / "bpe.toml"
    plan.write_text('name = "bpe"\n[corpus]\nmax_train_bytes = 300_000\ntokenizer = "bpe"\n'
                    'vocab_size = 400\n[train]\nseq_len = 32\nbatch_size = 8\ncheckpoints = 6\n'
                    'first_checkpoint_frac = 0.1\nthreads = 1\n[measure]\nseq_len = 32\nnum_seqs = 4\n'
                    '[[model]]\nname = "m"\nwidth = 16\ndepth = 1\ntokens = 8_000\n')
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "sparsitylaws", "lab", str(plan), "-o", str(out), "-q",
                          "--stage", "train", "--stage", "measure"], capture_output=True, text=True,
                         timeout=600, env={**os.environ, "SPARSITYLAWS_DEBUG": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    last = sorted((out / "runs" / "m" / "checkpoints").iterdir())[-1]
    assert json.loads((last / "config.json").read_text())["vocab_size"] == 400
    tok = AutoTokenizer.from_pretrained(last)
    text = "def f(self):\n    return None\n"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(tok) == 400 and max(ids) < 400 and len(ids) < len(text.encode())  # merges, not bytes
    assert tok.decode(ids) == text
    rows = read_table(out / "lab-bpe.parquet")
    assert len(rows[rows["metric"] == "ppl-p"]) == 6 and rows["eval_tokens"].iloc[0] == 128
