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
