"""Model families beyond Llama/GPT-2: BOS tokenizers, MoE refusal, OPT, GPT-J, Gemma-3
multimodal, offloaded weights, Trainer output folders.  Tiny models built here."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from sparsitylaws.errors import MeasureError  # noqa: E402
from sparsitylaws.measure.evaluate import encode_text, tokenizer_adds_bos  # noqa: E402
from sparsitylaws.measure.loading import CheckpointRef, find_ffn_sites, load_model  # noqa: E402
from sparsitylaws.measure.metrics import ModelMeasurer  # noqa: E402
from sparsitylaws.tables.io import read_table  # noqa: E402

from .conftest import TEXT  # noqa: E402
from .test_cli import SMALL, _error_line, run_cli  # noqa: E402
from .test_models import _down_inputs, brute_cett  # noqa: E402


def _word_tokenizer(add_bos: bool):
    """A word-level tokenizer over TEXT's words, with <bos> (id 1) and <pad> (id 0)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = sorted(set(TEXT.replace(".", " . ").replace(";", " ; ").replace(",", " , ").split()))
    vocab = {"<pad>": 0, "<bos>": 1, "<unk>": 2} | {w: i + 3 for i, w in enumerate(words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", pad_token="<pad>", unk_token="<unk>",
        add_bos_token=add_bos)


def _gemma(path: Path, add_bos: bool = True) -> Path:
    cfg = transformers.GemmaConfig(vocab_size=256, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=1, head_dim=8, max_position_embeddings=256,
                                   initializer_range=0.2, bos_token_id=1, pad_token_id=0)
    torch.manual_seed(3)
    transformers.GemmaForCausalLM(cfg).save_pretrained(path)
    _word_tokenizer(add_bos).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def gemma_bos(tiny_dir: Path) -> Path:
    return _gemma(tiny_dir / "gemma-bos-tokens-4M")


@pytest.fixture(scope="module")
def llama_nobos(tiny_dir: Path, make_llama) -> Path:
    path = make_llama(tiny_dir / "llama-nobos-tokens-5M", seed=4)
    _word_tokenizer(False).save_pretrained(path)
    return path


# --- BOS --------------------------------------------------------------------------------

def test_bos_follows_the_tokenizer(gemma_bos: Path, llama_nobos: Path) -> None:
    with_bos = load_model(CheckpointRef(gemma_bos, "hf"), "cpu", "float32").tokenizer
    without = load_model(CheckpointRef(llama_nobos, "hf"), "cpu", "float32").tokenizer
    assert tokenizer_adds_bos(with_bos) and not tokenizer_adds_bos(without)
    assert not tokenizer_adds_bos(None)
    text_ids = with_bos(TEXT, add_special_tokens=False)["input_ids"]
    data = encode_text(TEXT, with_bos, 16, 3, "t")
    assert data.bos and data.input_ids.shape == (3, 16)
    assert (data.input_ids[:, 0] == 1).all()  # every window starts with BOS
    # the windows hold consecutive text tokens, 15 per window after BOS
    assert data.input_ids[:, 1:].reshape(-1).tolist() == text_ids[:45]
    assert data.n_tokens == 45 and not data.stat_mask[:, 0].any()
    plain = encode_text(TEXT, without, 16, 3, "t")
    assert not plain.bos and plain.input_ids.reshape(-1).tolist() == text_ids[:48]
    forced = encode_text(TEXT, without, 16, 3, "t", bos=True)
    assert forced.bos and (forced.input_ids[:, 0] == 1).all()
    assert not encode_text(TEXT, with_bos, 16, 3, "t", bos=False).bos
    with pytest.raises(MeasureError, match="no tokenizer"):
        encode_text(TEXT, None, 16, 3, "t", bos=True)


def test_bos_dense_nll_matches_hand_computation(gemma_bos: Path) -> None:
    lm = load_model(CheckpointRef(gemma_bos, "hf"), "cpu", "float32")
    data = encode_text(TEXT, lm.tokenizer, 16, 3, "t")
    mm = ModelMeasurer(lm, data, n_candidates=512)
    ids = lm.tokenizer(TEXT, add_special_tokens=False)["input_ids"][:45]
    total, count = 0.0, 0
    with torch.no_grad():
        for w in range(3):
            seq = torch.tensor([[1] + ids[15 * w:15 * (w + 1)]])
            logp = torch.log_softmax(lm.model(input_ids=seq).logits[0].double(), -1)
            for t in range(15):  # BOS predicts the first text token; nothing predicts BOS
                total -= float(logp[t, seq[0, t + 1]])
                count += 1
    assert mm.nll_dense == pytest.approx(total / count, rel=1e-5)
    # the activation statistics leave BOS out: the zero metric counts 45 tokens per layer
    assert mm.curves().stats[0].n_tokens == 45


def test_bos_recorded_in_rows_and_hash(gemma_bos: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "b.parquet"
    base = [str(gemma_bos), "--run", "g", "-o", str(out), "--text", "pydoc", *SMALL,
            "--metric", "zero"]
    code, _, err = run_cli(base, capsys)
    assert code == 0, err
    code, _, err = run_cli([*base, "--no-bos", "--run", "g-nobos"], capsys)
    assert code == 0, err
    df = read_table(out).set_index("run")
    assert bool(df.loc["g", "bos"]) and not bool(df.loc["g-nobos", "bos"])
    assert df.loc["g", "settings_hash"] != df.loc["g-nobos", "settings_hash"]
    assert df.loc["g", "eval_sha256"] != df.loc["g-nobos", "eval_sha256"]
    assert df.loc["g", "eval_tokens"] == 62 and df.loc["g-nobos", "eval_tokens"] == 64


# --- mixture of experts -------------------------------------------------------------------

def _moe_models():
    T = transformers
    small = dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_attention_heads=4)
    ds = dict(moe_intermediate_size=16, n_routed_experts=4, num_experts_per_tok=2,
              n_shared_experts=1, num_key_value_heads=4, q_lora_rank=None, kv_lora_rank=16,
              qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8, n_group=1, topk_group=1)
    return {
        "deepseek-v3": (lambda: T.DeepseekV3ForCausalLM(T.DeepseekV3Config(
            **small, **ds, num_hidden_layers=4, first_k_dense_replace=2)), "2 of 4"),
        "deepseek-v2": (lambda: T.DeepseekV2ForCausalLM(T.DeepseekV2Config(
            **small, **ds, num_hidden_layers=4, first_k_dense_replace=1)), "1 of 4"),
        "qwen3-moe": (lambda: T.Qwen3MoeForCausalLM(T.Qwen3MoeConfig(
            **small, num_hidden_layers=3, num_key_value_heads=2, head_dim=8, num_experts=4,
            num_experts_per_tok=2, moe_intermediate_size=16, mlp_only_layers=[0])), "1 of 3"),
        "qwen2-moe": (lambda: T.Qwen2MoeForCausalLM(T.Qwen2MoeConfig(
            **small, num_hidden_layers=2, num_key_value_heads=2, num_experts=4,
            num_experts_per_tok=2, moe_intermediate_size=16,
            shared_expert_intermediate_size=16)), None),
        "mixtral": (lambda: T.MixtralForCausalLM(T.MixtralConfig(
            **small, num_hidden_layers=2, num_key_value_heads=2, num_local_experts=4,
            num_experts_per_tok=2)), None),
    }


@pytest.mark.parametrize("family", list(_moe_models()))
def test_moe_models_are_refused_naming_moe(family: str) -> None:
    build, partial = _moe_models()[family]
    with pytest.raises(MeasureError) as info:
        find_ffn_sites(build())
    msg = str(info.value)
    assert "mixture-of-experts" in msg and "experts" in msg
    if partial:  # mixed dense + MoE: the message says how much would have been measured
        assert f"only {partial} decoder layers" in msg
    else:
        assert "no decoder-layer FFN down projection found" in msg


def test_mixed_moe_refused_by_the_cli(tmp_path: Path, text_file: Path, capsys) -> None:
    T = transformers
    path = tmp_path / "qwen3moe-tokens-1M"
    T.Qwen3MoeForCausalLM(T.Qwen3MoeConfig(
        vocab_size=256, hidden_size=32, intermediate_size=64, num_attention_heads=4,
        num_hidden_layers=3, num_key_value_heads=2, head_dim=8, num_experts=4,
        num_experts_per_tok=2, moe_intermediate_size=16, mlp_only_layers=[1])).save_pretrained(path)
    out = tmp_path / "o.parquet"
    code, _, err = run_cli([str(path), "--run", "m", "-o", str(out), "--text", str(text_file),
                            *SMALL, "--metric", "zero"], capsys)
    assert code == 2
    line = _error_line(err)
    assert "only 1 of 3 decoder layers" in line and "mixture-of-experts" in line
    assert not out.exists()


# --- OPT, GPT-J, Gemma-3 multimodal -------------------------------------------------------

def _opt(path: Path) -> Path:
    cfg = transformers.OPTConfig(vocab_size=256, hidden_size=32, ffn_dim=64, num_hidden_layers=2,
                                 num_attention_heads=4, word_embed_proj_dim=32,
                                 max_position_embeddings=256, activation_function="relu",
                                 init_std=0.2, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(5)
    transformers.OPTForCausalLM(cfg).save_pretrained(path)
    return path


def _gptj(path: Path) -> Path:
    cfg = transformers.GPTJConfig(vocab_size=256, n_embd=32, n_layer=2, n_head=4, rotary_dim=4,
                                  n_positions=256, initializer_range=0.2, bos_token_id=1,
                                  eos_token_id=2)
    torch.manual_seed(6)
    transformers.GPTJForCausalLM(cfg).save_pretrained(path)
    return path


@pytest.mark.parametrize("family,build", [("opt", _opt), ("gptj", _gptj)])
def test_opt_and_gptj_thresholds_against_brute_force(family: str, build, tmp_path: Path) -> None:
    path = build(tmp_path / f"{family}-tokens-1M")
    lm = load_model(CheckpointRef(path, "hf"), "cpu", "float32")
    down = {"opt": "fc2", "gptj": "fc_out"}[family]
    assert len(lm.sites) == 2 and all(s.down is getattr(s.mlp, down) for s in lm.sites)
    mm = ModelMeasurer(lm, encode_text(TEXT[:130], None, 48, 3, "t"), n_candidates=1024)
    curves = mm.curves()
    acts = _down_inputs(mm)
    for pos, site in enumerate(lm.sites):
        np.testing.assert_allclose(curves.stats[pos].a.double().numpy(), acts[pos], rtol=1e-5,
                                   atol=1e-6)
        w = site.down.weight.detach().double().numpy()
        grid = curves.stats[pos].grid.double().numpy()
        k = curves.curves[pos].threshold_index(0.1)
        assert brute_cett(acts[pos], w, grid[k]) <= 0.1 + 1e-6 < brute_cett(acts[pos], w, grid[k + 1]) + 2e-6
    if family == "opt":  # ReLU: the zero metric counts exact zeros of relu(fc1 x)
        res = mm.zero()
        expected = [float((a != 0).mean()) for a in acts]
        np.testing.assert_allclose(res.layer_ratios, expected, atol=1e-12)
        assert 0 < res.activation_ratio < 1
    r = mm.ppl_p(5.0)  # the masked forward works on the family (OPT flattens tokens)
    assert r.ppl_sparse / r.ppl_dense <= 1.05 + 1e-9 and 0 < r.activation_ratio <= 1


def test_gemma3_multimodal_measures_the_language_model(tmp_path: Path) -> None:
    T = transformers
    cfg = T.Gemma3Config(
        text_config=dict(vocab_size=256, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                         head_dim=8, sliding_window=16, max_position_embeddings=256),
        vision_config=dict(hidden_size=16, intermediate_size=24, num_hidden_layers=3,
                           num_attention_heads=2, image_size=28, patch_size=14),
        mm_tokens_per_image=4, image_token_index=255, boi_token_index=253, eoi_token_index=254)
    path = tmp_path / "gemma3-mm-tokens-1M"
    torch.manual_seed(7)
    T.Gemma3ForConditionalGeneration(cfg).save_pretrained(path)
    lm = load_model(CheckpointRef(path, "hf"), "cpu", "float32")
    assert [s.layer for s in lm.sites] == [0, 1]
    assert all("language_model" in s.name and "vision" not in s.name for s in lm.sites)
    assert {int(s.w_out().shape[1]) for s in lm.sites} == {64}  # not the tower's 24
    assert lm.activation == "gelu"
    mm = ModelMeasurer(lm, encode_text(TEXT, None, 32, 2, "t"), n_candidates=512)
    r = mm.cett(0.1)
    assert len(r.layer_ratios) == 2 and 0 < r.activation_ratio < 1
    assert math.isfinite(r.ppl_dense)


# --- offloaded weights ---------------------------------------------------------------------

def test_disk_offload_reads_weights_through_the_hooks(tiny_llama: Path, tmp_path: Path) -> None:
    plain = load_model(CheckpointRef(tiny_llama, "hf"), "cpu", "float32")
    dm = {"model.embed_tokens": "cpu", "model.layers.0": "cpu", "model.layers.1": "disk",
          "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "cpu"}
    off = load_model(CheckpointRef(tiny_llama, "hf"), "cpu", "float32", device_map=dm,
                     offload_folder=tmp_path / "offload")
    assert off.sites[1].down.weight.device.type == "meta"  # really offloaded
    for a, b in zip(plain.sites, off.sites, strict=True):
        torch.testing.assert_close(a.w_out(), b.w_out(), rtol=0, atol=0)
    data = encode_text(TEXT, None, 32, 2, "t")
    ra = ModelMeasurer(plain, data, n_candidates=512).cett(0.1)
    rb = ModelMeasurer(off, data, n_candidates=512).cett(0.1)
    assert ra.layer_thresholds == rb.layer_thresholds
    assert ra.activation_ratio == rb.activation_ratio
    assert rb.ppl_sparse == pytest.approx(ra.ppl_sparse, rel=1e-6)


# --- Hugging Face Trainer output folder ------------------------------------------------------

def test_trainer_output_folder_skips_runs(make_llama, tmp_path: Path, text_file: Path,
                                          capsys) -> None:
    import json

    out_dir = tmp_path / "trainer-out"
    for step, seen in ((100, 1_000_000), (200, 2_000_000)):
        ck = make_llama(out_dir / f"checkpoint-{step}", seed=step)
        (ck / "trainer_state.json").write_text(json.dumps({"num_input_tokens_seen": seen,
                                                           "global_step": step}))
    events = out_dir / "runs" / "Nov30_08-00-00_host"
    events.mkdir(parents=True)
    (events / "events.out.tfevents.1.host").write_bytes(b"\0\1")
    (out_dir / "training_args.bin").write_bytes(b"\0")
    out = tmp_path / "t.parquet"
    code, _, err = run_cli(["--run-dir", str(out_dir), "--run", "tr", "-o", str(out),
                            "--text", str(text_file), *SMALL, "--metric", "zero"], capsys)
    assert code == 0, err
    assert "skip runs/" in err
    df = read_table(out).sort_values("tokens")
    assert list(df["checkpoint"]) == ["checkpoint-100", "checkpoint-200"]
    assert list(df["tokens"]) == [1_000_000, 2_000_000]
