"""Model specs -> Hugging Face models, and the byte-level tokenizer.

Gated FFNs (``act(W_gate x) * (W_in x)``, the paper's) use ``LlamaForCausalLM`` with
``hidden_act`` set; non-gated FFNs (``act(W_in x)``) use ``GPTNeoXForCausalLM`` with
sequential residuals and full rotary embeddings, the closest Hugging Face decoder with a
plain two-matrix MLP.  Both tie input and output embeddings; as many KV heads as query
heads (as in the paper).  ``measure`` finds both FFNs without extra flags.
"""

from __future__ import annotations

from typing import Any

from sparsitylaws.lab.plan import ModelSpec


def byte_tokenizer() -> Any:
    """ByT5's byte-level tokenizer without sentinel tokens (vocabulary 259)."""
    from transformers import ByT5Tokenizer

    return ByT5Tokenizer(extra_ids=0)


def build_config(spec: ModelSpec, vocab_size: int, max_positions: int, init_std: float = 0.02) -> Any:
    """The transformers config of a model spec."""
    heads = spec.width // spec.head_dim
    common = dict(vocab_size=vocab_size, hidden_size=spec.width, num_hidden_layers=spec.depth,
                  num_attention_heads=heads, intermediate_size=spec.d_ffn, hidden_act=spec.activation,
                  max_position_embeddings=max_positions, tie_word_embeddings=True,
                  initializer_range=init_std, pad_token_id=0, eos_token_id=1, bos_token_id=None)
    if spec.gated:
        from transformers import LlamaConfig

        return LlamaConfig(num_key_value_heads=heads, rms_norm_eps=1e-5, attention_bias=False,
                           mlp_bias=False, **common)
    from transformers import GPTNeoXConfig

    return GPTNeoXConfig(rotary_pct=1.0, use_parallel_residual=False, layer_norm_eps=1e-5,
                         attention_dropout=0.0, hidden_dropout=0.0, **common)


def build_model(spec: ModelSpec, vocab_size: int, max_positions: int, init_std: float = 0.02) -> Any:
    """A freshly initialised causal LM (seed the RNG first for determinism)."""
    from transformers import AutoModelForCausalLM

    cfg = build_config(spec, vocab_size, max_positions, init_std)
    return AutoModelForCausalLM.from_config(cfg)


def non_embedding_params(model: Any) -> int:
    """Non-embedding parameters, counted as ``measure`` counts them."""
    from sparsitylaws.measure.loading import param_counts

    return param_counts(model)[0]
