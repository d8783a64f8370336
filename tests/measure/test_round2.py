"""Measurement round two: out-of-memory retries, checkpoint identity, the jagged-bracket
warning, the traversal's host synchronisations, cluster jobs (--find-cett, --cett-from,
--shard auto, merge checks), concurrent appends, token counts, the light install."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from sparsitylaws.cli import main  # noqa: E402
from sparsitylaws.errors import MeasureError  # noqa: E402
from sparsitylaws.measure import cett as cett_mod  # noqa: E402
from sparsitylaws.measure.cett import CettCurve, build_layer_stats  # noqa: E402
from sparsitylaws.measure.metrics import _Counter  # noqa: E402
from sparsitylaws.measure.runner import _short, parse_shard  # noqa: E402
from sparsitylaws.measure.search import bisect_search, fast_search  # noqa: E402
from sparsitylaws.tables.io import read_table  # noqa: E402

from .test_cli import SMALL, _error_line, run_cli  # noqa: E402
from .test_models import _measurer  # noqa: E402

# --- 4: out-of-memory retry does not count tokens twice -------------------------------------

def _flaky_forward(model, monkeypatch, fail_call: int):
    """Make the model's forward raise CUDA out-of-memory on call ``fail_call`` (1-based)."""
    original = type(model).forward
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        if len(calls) == fail_call:
            raise torch.cuda.OutOfMemoryError("simulated")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(model), "forward", flaky)
    return calls


def test_oom_after_observers_hold_data(tiny_llama: Path, monkeypatch) -> None:
    ref = _measurer(tiny_llama, seq_len=32, num_seqs=4)
    ref.ev.batch_size = 2
    want_counter = _Counter(2)
    ref.ev.run(observer=want_counter)
    want_thr = ref.curves().thresholds(0.1)
    mm = _measurer(tiny_llama, seq_len=32, num_seqs=4)
    mm.ev.batch_size = 2
    calls = _flaky_forward(mm.lm.model, monkeypatch, fail_call=2)  # the 1st batch was observed
    counter = _Counter(2)
    mm.ev.run(observer=counter)
    assert calls == [2, 2, 1, 1, 1, 1] and mm.ev.batch_size == 1
    assert counter.tokens == [mm.data.n_tokens] * 2 == want_counter.tokens
    for a, b in zip(counter.kept, want_counter.kept, strict=True):
        assert torch.equal(a, b)
    # the activation capture behind the curves is reset too
    mm2 = _measurer(tiny_llama, seq_len=32, num_seqs=4)
    mm2.ev.batch_size = 2
    _flaky_forward(mm2.lm.model, monkeypatch, fail_call=2)
    curves = mm2.curves()
    assert all(st.n_tokens == mm2.data.n_tokens for st in curves.stats)
    np.testing.assert_array_equal(curves.thresholds(0.1), want_thr)


# --- 5: a checkpoint is not its path as typed -------------------------------------------------

def test_run_dir_spelled_two_ways_is_one_run(make_llama, tmp_path: Path, text_file: Path,
                                             capsys, monkeypatch) -> None:
    run = tmp_path / "run4"
    for i, tok in enumerate(["1M", "2M"]):
        make_llama(run / f"ckpt-tokens-{tok}", seed=i)
    out = tmp_path / "r.parquet"
    monkeypatch.chdir(tmp_path)
    args = ["--run", "r4", "-o", str(out), "--text", str(text_file), *SMALL, "--metric", "zero"]
    code, _, err = run_cli([*args, "--run-dir", "run4"], capsys)
    assert code == 0, err
    code, _, err = run_cli([*args, "--run-dir", str(run.resolve())], capsys)
    assert code == 0, err
    assert err.count("skip ckpt-tokens-") == 2
    df = read_table(out)
    assert len(df) == 2 and sorted(df["checkpoint"]) == ["ckpt-tokens-1M", "ckpt-tokens-2M"]
    # explicit checkpoints: keyed by the resolved path
    out2 = tmp_path / "e.parquet"
    one = ["--run", "e", "-o", str(out2), "--text", str(text_file), *SMALL, "--metric", "zero"]
    assert run_cli(["run4/ckpt-tokens-1M", *one], capsys)[0] == 0
    code, _, err = run_cli([str(run / "ckpt-tokens-1M"), *one], capsys)
    assert code == 0 and "skip" in err
    assert list(read_table(out2)["checkpoint"]) == ["ckpt-tokens-1M"]  # no path of this machine


def test_validate_refuses_two_rows_for_one_point(tmp_path: Path, capsys) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = pd.DataFrame({"run": "r", "checkpoint": ["run4/a", "/abs/run4/a", "b"],
                       "tokens": [1_000_000, 1_000_000, 2_000_000], "activation": "relu",
                       "metric": "ppl-p", "metric_arg": 1.0,
                       "activation_ratio": [0.2, 0.2, 0.1]})
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.Table.from_pandas(df), path)  # written by something else
    with pytest.raises(SystemExit) as exc:
        main(["validate", str(path)])
    _, err = capsys.readouterr()
    assert exc.value.code == 2
    line = _error_line(err)
    assert "two rows for one point" in line and "tokens 1000000" in line and "dup.parquet" in line
    with pytest.raises(SystemExit) as exc:  # fit reads through the same validation
        main(["fit", str(path), "-o", str(tmp_path / "laws.json")])
    _, err = capsys.readouterr()
    assert exc.value.code == 2 and "two rows for one point" in _error_line(err)
    df.loc[1, "metric"] = "zero"  # another metric at the same tokens is a different point
    pq.write_table(pa.Table.from_pandas(df), path)
    with pytest.raises(SystemExit) as exc:
        main(["validate", str(path)])
    assert exc.value.code == 0


# --- 2: the jagged-bracket warning ---------------------------------------------------------

def _jump(cs):  # log PPL ratio: -0.047 up to c = 0.0856, +0.079 beyond (the numbers)
    return [-0.047 if c < 0.0859 else 0.079 for c in cs]


def _smooth(cs):
    return [0.0099 * (c / 0.04) ** 1.5 for c in cs]


@pytest.mark.parametrize("search", [fast_search, bisect_search])
def test_jagged_bracket_warns_with_both_ends(search) -> None:
    res = search(_jump, 1.0)
    assert res.warning is not None
    lo, hi = res.bracket
    assert lo < 0.0859 <= hi and hi - lo <= 1e-3
    assert f"{math.exp(-0.047):.4f} at c={lo:.5f}" in res.warning
    assert f"{math.exp(0.079):.4f} at c={hi:.5f}" in res.warning
    assert "more evaluation tokens" in res.warning
    ok = search(_smooth, 1.0)
    assert ok.warning is None and abs(ok.cett - 0.04) < 2e-3


def test_warning_reaches_the_row_and_stderr(tiny_llama: Path, text_file: Path, tmp_path: Path,
                                            capsys, monkeypatch) -> None:
    from sparsitylaws.measure import metrics as metrics_mod

    real = metrics_mod.fast_search

    def warned(*args, **kwargs):
        res = real(*args, **kwargs)
        res.warning = "jagged PPL ratio: test"
        return res

    monkeypatch.setattr(metrics_mod, "fast_search", warned)
    out = tmp_path / "w.parquet"
    code, _, err = run_cli([str(tiny_llama), "--run", "w", "-o", str(out), "--text",
                            str(text_file), *SMALL, "--metric", "ppl-p", "--metric", "zero"], capsys)
    assert code == 0, err
    assert "warning:" in err and "jagged PPL ratio: test" in err
    df = read_table(out).set_index("metric")
    assert df.loc["ppl-p", "search_warning"] == "jagged PPL ratio: test"
    assert df.loc["zero", "search_warning"] is None or pd.isna(df.loc["zero", "search_warning"])


# --- 10: the curve traversal has no per-block host synchronisation ---------------------------

class _Count:
    """Counts aten operators (kernel launches on a device) and host synchronisations
    (``_local_scalar_dense``: item/bool/int/float; ``nonzero``: data-dependent shapes)."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        outer = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                outer.ops += 1
                name = func.overloadpacket.__name__
                if name in ("_local_scalar_dense", "nonzero", "masked_select"):
                    outer.syncs += 1
                return func(*args, **(kwargs or {}))

        self.mode = Mode()
        self.ops = self.syncs = 0

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode.__exit__(*exc)


def _traverse_counted(st, elems: int, monkeypatch) -> tuple[np.ndarray, int, int, int]:
    monkeypatch.setattr(cett_mod, "TRAVERSE_ELEMS", elems)
    cv = CettCurve(st)
    base = torch.zeros(st.n_tokens, st.w_t.shape[1])
    kb = cv.K - 1
    _, _, width = cv._select(0, kb)
    blocks, i, order = 0, 0, sorted(width.tolist(), reverse=True)
    while i < len(order) and order[i] > 0:
        i += max(1, elems // (order[i] * st.w_t.shape[1]))
        blocks += 1
    st._bucketer = None  # both counts include the bucketing's one-time set-up
    with _Count() as c:
        vals, _ = cv._traverse(base, 0, kb)
    return vals, c.ops, c.syncs, blocks


def test_traversal_syncs_do_not_grow_with_blocks(monkeypatch) -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(96, 48, generator=g) * torch.rand(96, 48, generator=g)
    st = build_layer_stats(a, torch.randn(16, 48, generator=g), 512)
    few_vals, few_ops, few_syncs, few_blocks = _traverse_counted(st, 1 << 20, monkeypatch)
    many_vals, many_ops, many_syncs, many_blocks = _traverse_counted(st, 1 << 9, monkeypatch)
    assert many_blocks >= 40 * few_blocks  # the small size really makes many blocks
    np.testing.assert_allclose(many_vals, few_vals, rtol=1e-6, atol=1e-7)
    assert many_syncs == few_syncs <= 8  # per traversal, not per block
    per_block = (many_ops - few_ops) / (many_blocks - few_blocks)
    assert per_block <= 100  # operators per block (views included): a fixed number, about 80
    # an accelerator gets large blocks, a CPU cache-sized ones
    assert cett_mod.traverse_elems(torch.device("cuda")) >= 256 * cett_mod.TRAVERSE_ELEMS
    # the exact fallback (searchsorted) gives the same values
    cv = CettCurve(st)
    exact, _ = cv._traverse(torch.zeros(96, 16), 0, cv.K - 1, exact=True)
    np.testing.assert_allclose(exact, few_vals, rtol=1e-6, atol=1e-7)


# --- 11: memory counted, default from the device -----------------------------------------------

def test_memory_estimate_counts_everything_kept(tiny_llama: Path) -> None:
    """Issue 23: the estimate counts the windows' tail sums, the arrays over the candidates
    and the traversal's blocks; what the curves hold after a search stays below it."""
    from sparsitylaws.measure.cett import MAX_SEGMENTS, traverse_elems

    mm = _measurer(tiny_llama)
    T, K = mm.data.n_tokens, mm.n_candidates
    (d, f), n = mm.w_shapes[0], len(mm.w_shapes)
    assert (d, f) == (32, 64)
    kept = T * f * 8 + d * f * 4 + f * 8 + T * 4 + K * 40 + 16 + MAX_SEGMENTS * 2 * T * d * 4
    transient = T * f * 41 + 2 * T * d * 4 + 3 * 4 * traverse_elems(torch.device("cpu"))
    assert mm.stats_bytes() == n * kept + transient
    for c in (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7):  # many windows per layer
        mm.curves().thresholds(c)
    assert all(len(cv.segments) <= MAX_SEGMENTS for cv in mm.curves().curves)
    held = mm.retained_bytes()
    assert n * (T * f * 8) < held <= n * kept
    assert mm.max_memory_gb is None and mm.memory_budget() > 2 ** 20  # from free memory
    mm.max_memory_gb = 0.5
    assert mm.memory_budget() == 2 ** 29


# --- 12: one model on the accelerator at a time in the joint search --------------------------

def test_joint_search_holds_one_model_at_a_time(make_llama, tmp_path: Path, text_file: Path,
                                                monkeypatch) -> None:
    from sparsitylaws.measure import metrics as metrics_mod
    from sparsitylaws.measure import runner as runner_mod

    run = tmp_path / "run"
    for i in range(3):
        make_llama(run / f"ckpt-tokens-{i + 1}M", seed=i)
    resident: set[int] = set()
    peak = [0]

    def park(self, drop=False):
        resident.discard(id(self))

    def unpark(self):
        resident.add(id(self))
        peak[0] = max(peak[0], len(resident))

    real_log_ratios = metrics_mod.ModelMeasurer.log_ratios

    def log_ratios(self, cs, method="fast"):
        assert id(self) in resident  # evaluated only while on the device
        return real_log_ratios(self, cs, method)

    monkeypatch.setattr(metrics_mod.ModelMeasurer, "park", park)
    monkeypatch.setattr(metrics_mod.ModelMeasurer, "unpark", unpark)
    monkeypatch.setattr(metrics_mod.ModelMeasurer, "log_ratios", log_ratios)
    s = runner_mod.MeasureSettings(run="j", output=tmp_path / "j.parquet", text=str(text_file),
                                   seq_len=32, num_seqs=2, p=5.0, quiet=True)
    r = runner_mod.Runner(s, log=lambda m: None)
    jobs = r.plan([], str(run))
    res = r._joint_search(jobs)
    assert peak[0] == 1 and not resident and 0 <= res.cett <= 1


# --- 13: the settings hash holds per_pass, the device type and the dtype used -----------------

def test_settings_hash_has_device_dtype_and_per_pass(tmp_path: Path) -> None:
    from sparsitylaws.measure.runner import ALGORITHM_VERSION, MeasureSettings, settings_payload

    s = MeasureSettings(run="x", output=tmp_path / "x.parquet")
    pay = settings_payload(s, "sha", "ppl-p", 1.0, None, "cuda", "bfloat16")
    assert ALGORITHM_VERSION >= 3
    assert pay["device_type"] == "cuda" and pay["dtype"] == "bfloat16" and pay["per_pass"] == 1
    assert pay["bos"] == "tokenizer"


# --- 15: cluster: --find-cett, --cett-from, shards, merge checks ------------------------------

@pytest.mark.parametrize("env,want", [
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}, (3, 4)),
    ({"SLURM_ARRAY_TASK_ID": "11", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "10"}, (1, 4)),
    ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}, (1, 2)),
])
def test_shard_auto_from_environment(env: dict, want: tuple) -> None:
    assert parse_shard("auto", env) == want


def test_shard_auto_without_environment() -> None:
    with pytest.raises(MeasureError, match="SLURM_ARRAY_TASK_ID nor RANK"):
        parse_shard("auto", {})


def test_two_stage_cluster_job(make_llama, tmp_path: Path, text_file: Path, capsys,
                               monkeypatch) -> None:
    run = tmp_path / "run"
    for i, tok in enumerate(["1M", "2M", "3M"]):
        make_llama(run / f"ckpt-tokens-{tok}", seed=i)
    cett_file = tmp_path / "cett.json"
    base = ["--run", "c", "--text", str(text_file), *SMALL, "--p", "5", "--run-dir", str(run),
            "--metric", "ppl-p", "--metric", "zero"]
    code, out, err = run_cli([*base, "-o", str(tmp_path / "unused.parquet"),
                              "--find-cett", str(cett_file)], capsys)
    assert code == 0, err
    assert not (tmp_path / "unused.parquet").exists()
    doc = json.loads(cett_file.read_text())
    assert doc["run"] == "c" and 0 <= doc["cett"] <= 1 and "joint cett=" in out
    shards = []
    for i in range(2):  # an array of two tasks, as Slurm would start them
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(i))
        monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "2")
        part = tmp_path / f"shard{i}.parquet"
        code, _, err = run_cli([*base, "-o", str(part), "--cett-from", str(cett_file),
                                "--shard", "auto"], capsys)
        assert code == 0, err
        assert "joint CETT search" not in err  # no search in the array
        shards.append(part)
    merged = tmp_path / "all.parquet"
    with pytest.raises(SystemExit) as exc:
        main(["merge", *map(str, shards), "-o", str(merged)])
    assert exc.value.code == 0, capsys.readouterr().err
    df = read_table(merged)
    ppl = df[df["metric"] == "ppl-p"]
    assert len(ppl) == 3 and set(ppl["cett"]) == {doc["cett"]} and ppl["cett_joint"].all()
    # a shard measured with other settings is refused at --cett-from and at merge
    code, _, err = run_cli([*base[:-4], "--seq-len", "24", "--num-seqs", "2", "-q",
                            "--p", "5", "--run-dir", str(run), "--metric", "ppl-p",
                            "-o", str(tmp_path / "x.parquet"), "--cett-from", str(cett_file)],
                           capsys)
    assert code == 2 and "seq_len" in _error_line(err) and "--find-cett" in err
    other = tmp_path / "other.parquet"
    odd = read_table(shards[1])
    odd.loc[odd["metric"] == "ppl-p", "cett"] = 0.5
    from sparsitylaws.tables.io import write_table

    write_table(odd, other)
    with pytest.raises(SystemExit) as exc:
        main(["merge", str(shards[0]), str(other), "-o", str(tmp_path / "bad.parquet")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "joint CETT" in _error_line(err) and "other.parquet" in err
    assert not (tmp_path / "bad.parquet").exists()


# --- #12 items 3, 6, 17 -----------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [("2e12", 2_000_000_000_000), ("2T", 2 * 10 ** 12),
                                        ("2.5B", 2_500_000_000), ("1_000_000", 10 ** 6),
                                        ("300m", 300_000_000), ("64k", 64_000), ("7", 7)])
def test_token_counts_in_every_form(text: str, value: int) -> None:
    from sparsitylaws.cli.params import parse_token_count

    assert parse_token_count(text) == value


@pytest.mark.parametrize("text", ["1.5", "2e-3", "-5", "0", "abc", "1e400", "2X"])
def test_bad_token_counts(text: str) -> None:
    from sparsitylaws.cli.params import parse_token_count

    with pytest.raises(ValueError):
        parse_token_count(text)


def test_measure_accepts_2e12_and_quiet_hides_bars(tiny_llama: Path, text_file: Path,
                                                    tmp_path: Path, capsys) -> None:
    out = tmp_path / "q.parquet"
    code, stdout, err = run_cli([str(tiny_llama), "--run", "q", "-o", str(out), "--text",
                                 str(text_file), *SMALL, "--metric", "zero",
                                 "--tokens-trained", "2e12"], capsys)
    assert code == 0, err
    assert read_table(out)["tokens"].tolist() == [2_000_000_000_000]
    assert "Loading weights" not in err and "%|" not in err
    assert "metric=zero " in stdout and "nan" not in stdout
    code, _, err = run_cli([str(tiny_llama), "--run", "q", "-o", str(out), "--tokens-trained",
                            "1.5"], capsys)
    assert code == 2 and "--tokens-trained" in _error_line(err)


def test_progress_label_keeps_the_start() -> None:
    name = "SmolLM2-135M-Instruct.Q4_1.gguf-and-a-long-suffix-here"
    label = _short(name)
    assert len(label) == 40 and label.startswith("SmolLM2-135M") and label.endswith("suffix-here")
    assert _short("checkpoint-100") == "checkpoint-100"


def test_light_install_says_install_the_extra(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
            "from sparsitylaws.cli import main\n"
            f"main(['measure', 'ckpt', '--run', 'r', '-o', {str(tmp_path / 'o.parquet')!r}])")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "internal error" not in lines[0]
    assert "measure" in lines[0] and "pip install 'sparsitylaws[measure]'" in lines[0]


# --- 15: the shipped Slurm scripts, run with a stand-in for sbatch ----------------------------

SBATCH_STUB = '''#!{python}
"""sbatch stand-in: runs the job at once (array tasks one after another), prints an id."""
import os, subprocess, sys
opts, script = {{}}, None
for a in sys.argv[1:]:
    if a.startswith("--"):
        k, _, v = a[2:].partition("=")
        opts[k] = v
    else:
        script = a
cmd = ["bash", "-c", opts["wrap"]] if "wrap" in opts else ["bash", script]
tasks = [None]
if "array" in opts:
    lo, hi = (int(x) for x in opts["array"].split("-"))
    tasks = range(lo, hi + 1)
for t in tasks:
    env = dict(os.environ)
    if t is not None:
        env.update(SLURM_ARRAY_TASK_ID=str(t), SLURM_ARRAY_TASK_MIN=str(tasks[0]),
                   SLURM_ARRAY_TASK_COUNT=str(len(tasks)))
    subprocess.run(cmd, env=env, check=True, stdout=sys.stderr)
print(abs(hash(tuple(sys.argv))) % 100000)
'''


@pytest.mark.slow
def test_slurm_scripts_run_end_to_end(make_llama, tmp_path: Path, text_file: Path) -> None:
    import os
    import shutil

    if shutil.which("sparsitylaws", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the sparsitylaws console script is not installed next to python")
    run = tmp_path / "run"
    for i, tok in enumerate(["1M", "2M", "3M"]):
        make_llama(run / f"ckpt-tokens-{tok}", seed=i)
    stub = tmp_path / "bin" / "sbatch"
    stub.parent.mkdir()
    stub.write_text(SBATCH_STUB.format(python=sys.executable))
    stub.chmod(0o755)
    env = dict(os.environ, PATH=f"{stub.parent}:{Path(sys.executable).parent}:{os.environ['PATH']}",
               SPARSITYLAWS_CACHE=str(tmp_path / "cache"))
    out = tmp_path / "out"
    script = Path(__file__).parents[2] / "scripts" / "slurm" / "measure-run.sh"
    res = subprocess.run(["bash", str(script), str(run), "relu-x", str(out), "2", "--", "--text",
                          str(text_file), "--seq-len", "32", "--num-seqs", "2", "--p", "5",
                          "--metric", "ppl-p", "--metric", "zero", "--device", "cpu"],
                         env=env, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "submitted:" in res.stdout
    assert sorted(p.name for p in (out / "shards").glob("*.parquet")) == ["shard-0.parquet",
                                                                         "shard-1.parquet"]
    df = read_table(out / "relu-x.parquet")
    ppl = df[df["metric"] == "ppl-p"]
    doc = json.loads((out / "cett.json").read_text())
    assert len(df) == 6 and len(ppl) == 3 and set(ppl["cett"]) == {doc["cett"]}
    assert ppl["cett_joint"].all()


# --- 12, 14: loading straight onto the device, out-of-memory while loading, no KV cache -------

def test_load_on_device_no_cache_and_oom_while_loading(tiny_llama: Path, monkeypatch) -> None:
    import transformers

    from sparsitylaws.measure.loading import CheckpointRef, load_model

    real = transformers.AutoModelForCausalLM.from_pretrained
    seen: dict = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    lm = load_model(CheckpointRef(tiny_llama, "hf"), "cpu", "float32")
    assert seen["device_map"] == "cpu"  # weights go straight to the device
    forward = type(lm.model).forward
    calls = []

    def record(self, *args, **kwargs):
        calls.append(kwargs.get("use_cache"))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(type(lm.model), "forward", record)
    from sparsitylaws.measure.evaluate import Evaluator, encode_text

    Evaluator(lm, encode_text("some text to read " * 8, None, 16, 2, "t")).dense_nll()
    assert calls and all(c is False for c in calls)

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", oom)
    with pytest.raises(MeasureError, match="out of GPU memory while loading.*--device-map auto"):
        load_model(CheckpointRef(tiny_llama, "hf"), "cpu", "float32")


def test_observed_pass_syncs_once_per_forward_not_per_layer(tiny_llama: Path) -> None:
    """14: the hooks index the counted tokens once per forward; layers add no host sync."""
    mm = _measurer(tiny_llama, seq_len=32, num_seqs=4)
    mm.ev.batch_size = 2  # two forwards per pass
    mm.ev.run()  # warm-up (lazy initialisations)
    with _Count() as plain:
        mm.ev.run()
    with _Count() as observed:
        mm.ev.run(observer=_Counter(len(mm.lm.sites)))
    assert observed.syncs - plain.syncs == 2  # one per forward, for 2 layers and 2 forwards
