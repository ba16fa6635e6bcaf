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


def _visible(text: str) -> str:
    """Newlines, tabs and other control characters as escapes, so a label never hides them."""
    out = []
    for c in text:
        if c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c.isprintable() or c == " ":
            out.append(c)
        else:
            out.append(f"\\x{ord(c):02x}")
    return "".join(out)


def token_label(tokenizer, token_id: int, eos_ids: frozenset[int] = frozenset()) -> str:
    """The label the views show for one token: seed 000's clean_label, made readable.

    Byte-level BPE writes UTF-8 bytes as stand-in letters ("Ã©" for "é", "æĹ¥" for "日").
    When a token holds whole characters they are decoded before cleaning; a token holding
    part of a character keeps clean_label of its raw piece. End-of-sequence shows as [EOS].
    """
    token_id = int(token_id)
    if token_id in eos_ids:
        return "[EOS]"
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if piece is None:
        return "[UNK]"
    if token_id in tokenizer.all_special_ids:
        return clean_label(piece)
    text = tokenizer.convert_tokens_to_string([piece])
    if not text or "\ufffd" in text or text == piece:
        return clean_label(piece)
    return clean_label(_visible(text))
