"""Token labels for display, cleaned exactly as the original visualizer did."""

from __future__ import annotations

import re


def clean_label(token) -> str:
    """Seed 000's cleaning, verbatim: BPE markers to spaces, special tokens to tags."""
    label = str(token)
    label = label.replace("Ġ", " ")
    label = label.replace("▁", " ")
    label = label.replace("Ċ", "\\n")
    label = label.replace("</s>", "[EOS]")
    label = label.replace("<unk>", "[UNK]")
    label = label.replace("<|begin_of_text|>", "[BOS]")
    label = label.replace("<|end_of_text|>", "[EOS]")
    label = re.sub(r"<0x[0-9A-Fa-f]{2}>", "", label)
    return label.strip() if label.strip() else "[EMPTY]"


def token_labels(tokenizer, token_ids: list[int], eos_ids: set[int]) -> list[str]:
    """Cleaned labels for ids; any end-of-sequence id shows as [EOS] whatever its text."""
    pieces = tokenizer.convert_ids_to_tokens(list(token_ids))
    return ["[EOS]" if i in eos_ids else clean_label(p) for i, p in zip(token_ids, pieces, strict=True)]
