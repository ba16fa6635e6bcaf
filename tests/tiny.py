"""A tiny randomly initialised Llama with a word-level tokenizer, built in-process.

For fast unit tests of shapes and indexing only; the real-model tests use SmolLM2.
"""

from __future__ import annotations

import torch

WORDS = ["the", "old", "wizard", "walked", "through", "forest", "a", "cat", "sat", "on", "mat"]


def tiny_tokenizer(add_bos: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {w: i + 3 for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", 1)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def tiny_lm(add_bos: bool = True, n_kv_heads: int = 2, seed: int = 0):
    """A LoadedModel around a 3-layer, 4-head (GQA) random Llama."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from lib.model.capture import CAPTURE_IMPL, ensure_registered
    from lib.model.loading import LoadedModel

    ensure_registered()
    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer(add_bos)
    config = LlamaConfig(
        vocab_size=len(WORDS) + 3,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=n_kv_heads,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    config._attn_implementation = CAPTURE_IMPL
    model = LlamaForCausalLM(config).eval()
    n = sum(p.numel() for p in model.parameters())
    return LoadedModel(
        "tiny-llama", "tiny-llama", "local", model, tokenizer, torch.device("cpu"), torch.float32, n
    )


def eager_attentions(lm, token_ids) -> torch.Tensor:
    """(L, H, T, T) attention from transformers' eager implementation on the same weights."""
    model = lm.model
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model(torch.tensor([list(token_ids)]), output_attentions=True)
    finally:
        from lib.model.capture import CAPTURE_IMPL

        model.set_attn_implementation(CAPTURE_IMPL)
    return torch.stack(out.attentions)[:, 0]
