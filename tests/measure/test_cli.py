"""`sparsitylaws measure` end to end on tiny models: rows, resume, run folders, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sparsitylaws.cli import main  # noqa: E402
from sparsitylaws.measure.loading import CheckpointRef  # noqa: E402
from sparsitylaws.measure.runner import parse_shard, tokens_from_name, tokens_trained  # noqa: E402
from sparsitylaws.tables.io import read_table  # noqa: E402

SMALL = ["--seq-len", "32", "--num-seqs", "2", "-q"]


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["measure", *args])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def _error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("sparsitylaws: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_rows_sidecar_and_resume(tiny_llama: Path, text_file: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "t.parquet"
    args = [str(tiny_llama), "--run", "tiny", "-o", str(out), "--text", str(text_file), *SMALL,
            "--metric", "ppl-p", "--metric", "zero", "--metric", "cett:0.1", "--metric",
            "topk:0.5", "--metric", "fat:0.01"]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    df = read_table(out)
    assert sorted(df["metric"]) == ["cett", "fat", "ppl-p", "topk", "zero"]
    assert (df["tokens"] == 1_000_000).all()  # from the folder name "llama-tokens-1M"
    assert (df["source"] == "measured").all() and (df["activation"] == "silu").all()
    ppl = df[df["metric"] == "ppl-p"].iloc[0]
    assert ppl["metric_arg"] == 1.0 and 0 <= ppl["cett"] <= 1
    assert ppl["ppl_sparse"] / ppl["ppl_dense"] <= 1.01 + 1e-9
    assert len(ppl["layer_ratios"]) == 2 and len(ppl["layer_thresholds"]) == 2
    assert ppl["eval_tokens"] == 64 and len(ppl["eval_sha256"]) == 64
    assert ppl["width"] == 32 and ppl["depth"] == 2 and ppl["ffn_width"] == 64
    assert math.isnan(df[df["metric"] == "zero"].iloc[0]["metric_arg"])
    side = json.loads(out.with_suffix(".thresholds.json").read_text())
    entry = next(v for k, v in side.items() if "|ppl-p|" in k)
    assert entry["line"].startswith("thresholds=")
    assert [float(x) for x in entry["line"][11:].split(",")] == pytest.approx(entry["thresholds"])
    assert "thresholds=" in stdout
    # rerun: same settings -> skipped, nothing rewritten
    stamp = out.stat().st_mtime_ns
    code, _, err = run_cli(args, capsys)
    assert code == 0 and "skip" in err and out.stat().st_mtime_ns == stamp
    # other settings -> measured again, rows replaced (key de-duplication)
    code, _, err = run_cli([*args, "--p", "5"], capsys)
    assert code == 0, err
    df2 = read_table(out)
    assert set(df2.loc[df2["metric"] == "ppl-p", "metric_arg"]) == {1.0, 5.0}


def test_run_dir_stabilizing_and_shards(make_llama, text_file: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    for i, tok in enumerate(["1M", "2M", "3M"]):
        make_llama(run / f"ckpt-tokens-{tok}", seed=i)
    out = tmp_path / "r.parquet"
    base = ["--run", "r", "-o", str(out), "--text", str(text_file), *SMALL, "--p", "5",
            "--run-dir", str(run), "--warmup-checkpoints", "1"]
    shards = []
    for i in range(2):
        code, _, err = run_cli([*base, "--shard", f"{i}/2"], capsys)
        assert code == 0, err
        shards.append(set(read_table(out)["checkpoint"]))
    df = read_table(out)
    assert len(df) == 3  # every checkpoint once across the two shards
    assert df["cett"].nunique() == 1  # one CETT for the whole run (stabilizing)
    df = df.sort_values("tokens")
    assert list(df["warmup"]) == [True, False, False]
    assert list(df["tokens"]) == [1_000_000, 2_000_000, 3_000_000]


@pytest.mark.parametrize("spec,ok", [("0/1", True), ("1/3", True), ("3/3", False), ("x", False)])
def test_parse_shard(spec: str, ok: bool) -> None:
    from sparsitylaws.errors import MeasureError

    if ok:
        assert parse_shard(spec)[1] >= 1
    else:
        with pytest.raises(MeasureError, match="--shard"):
            parse_shard(spec)


@pytest.mark.parametrize("name,tokens", [
    ("ckpt-tokens-2.5B", 2_500_000_000), ("step100_12Btok", 12_000_000_000),
    ("run_tok=1200000", 1_200_000), ("model-300M_tokens", 300_000_000), ("checkpoint-100", None)])
def test_tokens_from_name(name: str, tokens: int | None) -> None:
    assert tokens_from_name(name) == tokens


def test_tokens_from_trainer_state(tmp_path: Path) -> None:
    from sparsitylaws.errors import MeasureError

    ck = tmp_path / "checkpoint-100"
    ck.mkdir()
    ref = CheckpointRef(ck, "hf")
    with pytest.raises(MeasureError, match="tokens trained unknown"):
        tokens_trained(ref)
    assert tokens_trained(ref, tokens_per_step=1000) == 100_000
    (ck / "trainer_state.json").write_text(json.dumps({"num_input_tokens_seen": 777}))
    assert tokens_trained(ref) == 777


# --- bad input: one line, exit status 2 ---------------------------------------------------

def test_folder_without_weights(tmp_path: Path, text_file: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    code, _, err = run_cli([str(empty), "--run", "x", "-o", str(tmp_path / "o.parquet")], capsys)
    assert code == 2
    assert "no weights found" in _error_line(err) and str(empty) in err


def test_pickle_needs_allow_pickle(tiny_llama: Path, tmp_path: Path, text_file: Path,
                                   capsys) -> None:
    from safetensors.torch import load_file

    pk = tmp_path / "pickled-tokens-5M"
    pk.mkdir()
    (pk / "config.json").write_text((tiny_llama / "config.json").read_text())
    torch.save(load_file(tiny_llama / "model.safetensors"), pk / "pytorch_model.bin")
    out = tmp_path / "o.parquet"
    args = [str(pk), "--run", "x", "-o", str(out), "--text", str(text_file), *SMALL,
            "--metric", "zero"]
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert "--allow-pickle" in _error_line(err) and str(pk) in err
    code, _, err = run_cli([*args, "--allow-pickle"], capsys)
    assert code == 0, err
    assert read_table(out)["activation_ratio"].iloc[0] == pytest.approx(1.0)  # SiLU: no zeros


def test_model_without_down_projection(tmp_path: Path, text_file: Path, capsys) -> None:
    cfg = transformers.BertConfig(vocab_size=256, hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64, is_decoder=True)
    path = tmp_path / "bert-tokens-1M"
    transformers.BertLMHeadModel(cfg).save_pretrained(path)
    code, _, err = run_cli([str(path), "--run", "x", "-o", str(tmp_path / "o.parquet"),
                            "--text", str(text_file), *SMALL], capsys)
    assert code == 2
    line = _error_line(err)
    assert "no decoder-layer FFN down projection" in line and "down_proj" in line


def test_empty_text(tiny_llama: Path, tmp_path: Path, capsys) -> None:
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n\n ")
    code, _, err = run_cli([str(tiny_llama), "--run", "x", "-o", str(tmp_path / "o.parquet"),
                            "--text", str(blank)], capsys)
    assert code == 2
    assert "empty" in _error_line(err) and "blank.txt" in err


@pytest.mark.parametrize("p", ["0", "-1"])
def test_p_must_be_positive(tiny_llama: Path, tmp_path: Path, p: str, capsys) -> None:
    code, _, err = run_cli([str(tiny_llama), "--run", "x", "-o", str(tmp_path / "o.parquet"),
                            "--p", p], capsys)
    assert code == 2
    assert "--p" in _error_line(err)


def test_mixed_architectures(tiny_llama: Path, tiny_gpt2: Path, tmp_path: Path, text_file: Path,
                             capsys) -> None:
    out = tmp_path / "o.parquet"
    code, _, err = run_cli([str(tiny_llama), str(tiny_gpt2), "--run", "mixed", "-o", str(out),
                            "--text", str(text_file), *SMALL], capsys)
    assert code == 2
    line = _error_line(err)
    assert "mixes architectures" in line and "gpt2" in line and "llama" in line
    assert not out.exists()


def test_help_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = ("import sys; from sparsitylaws.cli import cli; "
            "from click.testing import CliRunner; r = CliRunner().invoke(cli, ['measure', '--help']); "
            "assert r.exit_code == 0, r.output; assert '--run-dir' in r.output; "
            "print('torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"


def test_interrupted_run_keeps_finished_rows(tiny_llama: Path, tiny_relu_llama: Path,
                                             tmp_path: Path, text_file: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from sparsitylaws.measure import runner as runner_mod

    out = tmp_path / "k.parquet"
    settings = runner_mod.MeasureSettings(run="k", output=out, text=str(text_file), seq_len=32,
                                          num_seqs=2, metrics=["zero"], quiet=True)
    calls = []
    original = runner_mod.Runner._metrics

    def crash_on_second(self, mm, joint):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # stands in for a kill during the second checkpoint
        return original(self, mm, joint)

    monkeypatch.setattr(runner_mod.Runner, "_metrics", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        runner_mod.Runner(settings).run([str(tiny_llama), str(tiny_relu_llama)])
    first = read_table(out)
    assert list(first["checkpoint"]) == [tiny_llama.name]  # the finished checkpoint is kept
    assert not list(tmp_path.glob(".*"))  # no temp files left behind
    monkeypatch.setattr(runner_mod.Runner, "_metrics", original)
    assert runner_mod.Runner(settings).run([str(tiny_llama), str(tiny_relu_llama)]) == 1
    assert len(read_table(out)) == 2
