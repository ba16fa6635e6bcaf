"""Tiny random models of each family a user can pick, built in the test from transformers'
own config classes (no hub), wrapped as the app's loader wraps a model."""

from __future__ import annotations

import torch

from tests.tiny import WORDS, tiny_tokenizer

VOCAB = len(WORDS) + 3
COMMON = {"vocab_size": VOCAB, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2}


def _config(family: str):
    import transformers as tf

    size = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4}
    if family == "gpt2":
        return tf.GPT2Config(n_embd=32, n_layer=3, n_head=4, n_positions=256, **COMMON)
    if family == "gpt_neox":
        return tf.GPTNeoXConfig(**size, intermediate_size=64, max_position_embeddings=256, **COMMON)
    if family == "phi":
        return tf.PhiConfig(
            **size, intermediate_size=64, max_position_embeddings=256,
            partial_rotary_factor=0.5, **COMMON,
        )  # fmt: skip
    grouped = {**size, "num_key_value_heads": 2, "intermediate_size": 64}
    if family == "llama":
        return tf.LlamaConfig(**grouped, max_position_embeddings=256, **COMMON)
    if family == "qwen2":
        return tf.Qwen2Config(**grouped, max_position_embeddings=256, **COMMON)
    if family == "gemma":
        return tf.GemmaConfig(**grouped, head_dim=8, max_position_embeddings=256, **COMMON)
    raise ValueError(family)


FAMILIES = ("llama", "qwen2", "gemma", "gpt2", "gpt_neox", "phi")


def family_lm(family: str, seed: int = 0):
    """A LoadedModel around a 3-layer, 4-head random model of `family`."""
    from transformers import AutoModelForCausalLM

    from lib.model.capture import CAPTURE_IMPL, ensure_registered
    from lib.model.loading import LoadedModel

    ensure_registered()
    torch.manual_seed(seed)
    config = _config(family)
    config._attn_implementation = CAPTURE_IMPL
    model = AutoModelForCausalLM.from_config(config).eval()
    n = sum(p.numel() for p in model.parameters())
    return LoadedModel(
        f"tiny-{family}", f"tiny-{family}", "local", model, tiny_tokenizer(True),
        torch.device("cpu"), torch.float32, n,
    )  # fmt: skip
