"""Measurement round three (issue 23): never a wrong row, GPU-ready passes, small items."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sparsitylaws.measure.evaluate import encode_text  # noqa: E402
from sparsitylaws.measure.loading import (  # noqa: E402
    CheckpointRef,
    activation_name,
    architecture_key,
    load_model,
)
from sparsitylaws.measure.metrics import ModelMeasurer  # noqa: E402
from sparsitylaws.measure.search import OVERSHOOT  # noqa: E402
from sparsitylaws.tables.io import read_table  # noqa: E402

from .conftest import pydoc_text  # noqa: E402
from .test_cli import SMALL, _error_line, run_cli  # noqa: E402

# --- never a wrong row -----------------------------------------------------------------------

def test_nan_weights_are_refused(make_llama, tmp_path: Path, text_file: Path, capsys) -> None:
    path = make_llama(tmp_path / "nan-tokens-1M")
    from safetensors.torch import load_file, save_file

    f = path / "model.safetensors"
    state = load_file(f)
    name = next(k for k in state if "down_proj" in k)
    state[name][0, 0] = float("nan")
    save_file(state, f, metadata={"format": "pt"})
    code, _, err = run_cli([str(path), "--run", "n", "-o", str(tmp_path / "n.parquet"), "--text",
                            str(text_file), *SMALL, "--metric", "ppl-p"], capsys)
    line = _error_line(err)
    assert code == 2 and "non-finite" in line and "down_proj" in line
    assert not (tmp_path / "n.parquet").exists()


def test_corrupt_safetensors_header_is_a_clear_error(make_llama, tmp_path: Path,
                                                     text_file: Path, capsys) -> None:
    path = make_llama(tmp_path / "bad-tokens-1M")
    f = path / "model.safetensors"
    f.write_bytes(b"\xff" * 8 + b"not a header" + f.read_bytes()[20:])
    code, _, err = run_cli([str(path), "--run", "b", "-o", str(tmp_path / "b.parquet"), "--text",
                            str(text_file), *SMALL, "--metric", "zero"], capsys)
    line = _error_line(err)
    assert code == 2 and "safetensors" in line and "internal error" not in err


def test_falcon_activation_and_ffn_width(tmp_path: Path, text_file: Path, capsys) -> None:
    cfg = transformers.FalconConfig(vocab_size=256, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, new_decoder_architecture=False)
    assert activation_name(cfg) == "gelu"
    assert architecture_key(cfg)[3] == cfg.ffn_hidden_size or architecture_key(cfg)[3] == 128
    torch.manual_seed(0)
    path = tmp_path / "falcon-tokens-1M"
    transformers.FalconForCausalLM(cfg).save_pretrained(path)
    out = tmp_path / "f.parquet"
    code, _, err = run_cli([str(path), "--run", "f", "-o", str(out), "--text", str(text_file),
                            *SMALL, "--metric", "zero"], capsys)
    assert code == 0, err
    row = read_table(out).iloc[0]
    assert row["activation"] == "gelu" and row["ffn_width"] == architecture_key(cfg)[3]


class _WordTokenizer:
    """One token per whitespace-separated word (ids 1..255), no special tokens."""

    bos_token_id = None
    pad_token_id = 0

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": [1 + (sum(map(ord, w)) % 255) for w in text.split()]}


def test_whitespace_heavy_text_gives_every_token() -> None:
    text = (" " * 40).join(f"w{i}" for i in range(600))  # 42 characters per token
    data = encode_text(text, _WordTokenizer(), 64, 8, "spaces")
    assert data.n_tokens == 512 and data.short is None
    short = encode_text(" ".join(["w"] * 100), _WordTokenizer(), 64, 8, "short")
    assert short.n_tokens == 100
    assert "gave 100 of the 512 tokens" in short.short


def test_short_text_warns_on_stderr(tiny_llama: Path, tmp_path: Path, capsys) -> None:
    text = tmp_path / "short.txt"
    text.write_text("only a few bytes here")
    code, _, err = run_cli([str(tiny_llama), "--run", "s", "-o", str(tmp_path / "s.parquet"),
                            "--text", str(text), *SMALL, "--metric", "zero"], capsys)
    assert code == 0, err
    assert "warning:" in err and "gave 21 of the 64 tokens" in err


def test_p_1e6_is_capped_with_a_warning(tiny_llama: Path, text_file: Path, tmp_path: Path,
                                        capsys) -> None:
    out = tmp_path / "cap.parquet"
    code, _, err = run_cli([str(tiny_llama), "--run", "c", "-o", str(out), "--text",
                            str(text_file), *SMALL, "--metric", "ppl-p", "--p", "1e6"], capsys)
    assert code == 0, err
    row = read_table(out).iloc[0]
    assert row["cett"] == 1.0 and row["search_warning"].startswith("capped")
    assert "capped" in err


# --- GPU-ready passes ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(trained_llama: Path):
    text = pydoc_text()[-20000:]
    return lambda per_pass=1, zero=False: _tuned(trained_llama, text, per_pass, zero)


def _tuned(path: Path, text: str, per_pass: int, zero: bool) -> ModelMeasurer:
    lm = load_model(CheckpointRef(path, "hf"), device="cpu", dtype="float32")
    data = encode_text(text, None, 128, 8, "t")
    return ModelMeasurer(lm, data, n_candidates=4096, per_pass=per_pass, want_zero=zero)


def test_batching_shared_dense_pass_and_first_probe(trained) -> None:
    """--per-pass 4 makes fewer model calls than --per-pass 1 for the same defined point; the
    dense pass also counts the zero metric and places the first probe; the row at the
    answer reuses the search's pass."""
    one, four = trained(1, zero=True), trained(4)
    a = one.ppl_p(1.0, "fast")
    zero = one.zero()
    assert one.ev.forwards == 1 + a.search.passes  # no extra dense or final pass
    assert zero.ppl_sparse == zero.ppl_dense == a.ppl_dense
    b = four.ppl_p(1.0, "fast")
    assert a.cett == b.cett
    assert four.ev.forwards < one.ev.forwards
    assert len(b.search.evaluations) > b.search.passes  # several values per model call
    c0 = one.predicted_cett(1.0)
    assert c0 is not None and c0 != 0.05
    assert a.cett / 3 <= c0 <= 3 * a.cett  # a rough model, but the right scale
    # the first probe: the grid point just past the prediction's overshoot (search.OVERSHOOT)
    assert a.search.evaluations[0][0] == pytest.approx(
        math.ceil(round(c0 * (1 + OVERSHOOT) / 1e-3, 9)) * 1e-3, abs=1e-9)


def test_park_with_drop_reloads_and_keeps_the_numbers(tiny_llama: Path) -> None:
    def load():
        return load_model(CheckpointRef(tiny_llama, "hf"), device="cpu", dtype="float32")

    lm = load()
    mm = ModelMeasurer(lm, encode_text(pydoc_text()[:400], None, 48, 3, "t"), n_candidates=2048,
                       reload=load)
    before = mm.log_ratios([0.05, 0.2])
    thr = mm.curves().thresholds(0.1)
    mm.park(drop=True)
    assert mm.lm.model is None and all(cv.complete and cv.st is None for cv in mm.curves().curves)
    mm.unpark()
    assert mm.loads == 2
    np.testing.assert_allclose(mm.log_ratios([0.05, 0.2]), before, rtol=1e-6)
    spacing = np.array([cv.grid[1] - cv.grid[0] for cv in mm.curves().curves])
    assert np.all(np.abs(mm.curves().thresholds(0.1) - thr) <= 40 * spacing)


def _run_dir(make_llama, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    for i, tok in enumerate(["1M", "2M", "3M"]):
        make_llama(run / f"ckpt-tokens-{tok}", seed=i)
    return run


def test_each_checkpoint_loaded_once_and_joint_search_resumes(make_llama, tmp_path: Path,
                                                              text_file: Path, capsys,
                                                              monkeypatch) -> None:
    from sparsitylaws.measure import metrics as metrics_mod
    from sparsitylaws.measure import runner as runner_mod

    run = _run_dir(make_llama, tmp_path)
    loads = []
    real_load = runner_mod.load_model
    monkeypatch.setattr(runner_mod, "load_model", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k))
    out = tmp_path / "j.parquet"
    args = ["--run", "j", "-o", str(out), "--text", str(text_file), *SMALL, "--p", "5",
            "--run-dir", str(run), "--metric", "ppl-p", "--metric", "zero"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert len(loads) == 3  # three checkpoints, each loaded once (search and rows)
    full = read_table(out)
    state = json.loads(out.with_suffix(".joint.json").read_text())["j"]
    assert "result" in state and len(state["evals"]) == 3
    # a crash in the middle of the joint search: the rerun repeats no forward
    out2 = tmp_path / "k.parquet"
    calls = []
    real = metrics_mod.ModelMeasurer.log_ratios

    def crashing(self, cs, method="fast"):
        calls.append(1)
        if len(calls) == 2:  # the second model of the first pass
            raise KeyboardInterrupt
        return real(self, cs, method)

    monkeypatch.setattr(metrics_mod.ModelMeasurer, "log_ratios", crashing)
    code, _, _ = run_cli([*args[:3], str(out2), *args[4:]], capsys)  # interrupted
    assert code != 0
    monkeypatch.setattr(metrics_mod.ModelMeasurer, "log_ratios", real)
    done = json.loads(out2.with_suffix(".joint.json").read_text())["j"]
    assert "result" not in done and sum(len(v) for v in done["evals"].values()) >= 1
    counted = []
    monkeypatch.setattr(metrics_mod.ModelMeasurer, "log_ratios",
                        lambda self, cs, method="fast": counted.append(len(cs)) or real(self, cs, method))
    code, _, err = run_cli([*args[:3], str(out2), *args[4:]], capsys)
    assert code == 0, err
    again = read_table(out2)
    assert sorted(again["cett"].dropna()) == sorted(full["cett"].dropna())
    n_evals = sum(len(v) for v in state["evals"].values())
    assert sum(counted) == n_evals - sum(len(v) for v in done["evals"].values())


# --- small items -------------------------------------------------------------------------------

def test_shared_modes_and_output_folder_created(tiny_llama: Path, text_file: Path,
                                                 tmp_path: Path, capsys) -> None:
    out = tmp_path / "shards" / "t.parquet"  # a folder that does not exist yet
    code, _, err = run_cli([str(tiny_llama), "--run", "m", "-o", str(out), "--text",
                            str(text_file), *SMALL, "--metric", "ppl-p"], capsys)
    assert code == 2 and "--mkdir" in _error_line(err)  # the torchrun example adds --mkdir
    code, _, err = run_cli([str(tiny_llama), "--run", "m", "-o", str(out), "--mkdir", "--text",
                            str(text_file), *SMALL, "--metric", "ppl-p"], capsys)
    assert code == 0, err
    umask = os.umask(0)
    os.umask(umask)
    side = out.with_suffix(".thresholds.json")
    assert side.stat().st_mode & 0o777 == 0o666 & ~umask
    from sparsitylaws.measure.loading import _share

    d = tmp_path / "cache"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "f").write_text("x")
    os.chmod(d, 0o700)
    os.chmod(d / "sub" / "f", 0o600)
    _share(d)
    assert d.stat().st_mode & 0o777 == 0o777 & ~umask
    assert (d / "sub" / "f").stat().st_mode & 0o777 == 0o666 & ~umask


def test_quiet_silences_tqdm_bars_and_progress_counts_passes(tiny_llama: Path, text_file: Path,
                                                             tmp_path: Path, capsys,
                                                             monkeypatch) -> None:
    from sparsitylaws.measure.runner import MeasureSettings, Runner

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    Runner(MeasureSettings(run="q", output=tmp_path / "q.parquet", quiet=True))
    assert os.environ["TQDM_DISABLE"] == "1"  # also the GGUF conversion's own tqdm bar
    monkeypatch.delenv("TQDM_DISABLE")
    code, _, err = run_cli([str(tiny_llama), "--run", "v", "-o", str(tmp_path / "v.parquet"),
                            "--text", str(text_file), "--seq-len", "32", "--num-seqs", "2",
                            "--metric", "ppl-p"], capsys)
    assert code == 0, err
    assert "PPL-p% search" in err and "pass" in err


def test_merge_counts_files_and_names_no_sentinel(tmp_path: Path, capsys) -> None:
    import pandas as pd

    from sparsitylaws.cli import main
    from sparsitylaws.tables.io import write_table

    rows = {"run": "r", "checkpoint": "a", "tokens": 1_000_000, "activation": "relu",
            "metric": "zero", "metric_arg": math.nan, "activation_ratio": 0.2}
    folder = tmp_path / "shards"
    folder.mkdir()
    write_table(pd.DataFrame([{**rows, "settings_hash": "x"}]), folder / "a.parquet")
    write_table(pd.DataFrame([{**rows, "checkpoint": "b", "tokens": 2_000_000,
                               "settings_hash": "x"}]), folder / "b.parquet")
    with pytest.raises(SystemExit) as exc:
        main(["merge", str(folder), "-o", str(tmp_path / "m.parquet")])
    assert exc.value.code == 0
    assert "from 2 input file(s)" in capsys.readouterr().out
    write_table(pd.DataFrame([{**rows, "checkpoint": "c", "tokens": 3_000_000,
                               "settings_hash": "y"}]), folder / "c.parquet")
    with pytest.raises(SystemExit) as exc:
        main(["merge", str(folder), "-o", str(tmp_path / "m2.parquet")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "metric_arg=" in err and "1e+300" not in err
