"""How a token is shown: one module, two documented modes.

- **Graph mode** (`graph_label`, seed 000's `clean_label`): the attention graph's compact
  labels. BPE markers become spaces and are trimmed, a newline is written `\\n`, special
  tokens become tags such as [EOS]. Used by the graph page only.
- **Display mode** (`display_text`, seed 001's convention): what the token writes, with
  every space, newline and tab made visible as `·`, `↵` and `→`, so "·the" and "the" are
  told apart. Used by every table, heatmap and chart outside the graph.

A run stores both (`GenerationResult.labels` and `.texts`), so views never re-derive them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

TokenText = Callable[[int], str]  # token id -> its display-mode text

# Whitespace made visible in display mode.
VISIBLE = {" ": "·", "\n": "↵", "\t": "→", "\r": "␍"}

# ---- graph mode ------------------------------------------------------------------------


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


def _escape_controls(text: str) -> str:
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


def graph_label(tokenizer, token_id: int, eos_ids: frozenset[int] = frozenset()) -> str:
    """Graph mode for one token: seed 000's clean_label, made readable.

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
    return clean_label(_escape_controls(text))


# ---- display mode ----------------------------------------------------------------------


def visible(text: str) -> str:
    """`text` with spaces, newlines and tabs replaced by visible marks (· ↵ →)."""
    return "".join(VISIBLE.get(c, c) for c in text)


def display_text(tokenizer, token_id: int) -> str:
    """Display mode for one token: what it writes, whitespace visible; special tokens keep
    their name.

    A byte token that is only part of a multi-byte character decodes to "�" on its own.
    """
    text = tokenizer.decode([int(token_id)], skip_special_tokens=False)
    return visible(text) if text else "[EMPTY]"


def display_texts(tokenizer, remember: int = 8192) -> TokenText:
    """`display_text` for one tokenizer, remembering the last `remember` token ids (a
    chart of candidates asks for the same ids again and again)."""

    @functools.lru_cache(maxsize=remember)
    def text(token_id: int) -> str:
        return display_text(tokenizer, int(token_id))

    return text


@dataclass(frozen=True)
class TokenSplit:
    """A sequence of N tokens as the tokenizer sees it.

    ids      (N,) int64  token ids
    pieces   N strings   the vocabulary entries (byte-level BPE writes a space as "Ġ")
    texts    N strings   what each token writes, whitespace made visible
    special  (N,) bool   True for special (control) tokens such as <|im_start|>
    """

    ids: np.ndarray
    pieces: tuple[str, ...]
    texts: tuple[str, ...]
    special: np.ndarray

    def __post_init__(self) -> None:
        n = self.ids.shape[0]
        if self.ids.ndim != 1 or len(self.pieces) != n or len(self.texts) != n:
            raise ValueError(f"ids must be (N,) with N={n} pieces and texts")
        if self.special.shape != (n,) or self.special.dtype != np.bool_:
            raise ValueError(f"special must be ({n},) bool")

    def rows(self) -> list[dict]:
        """One dict per token for a table."""
        return [
            {"position": i, "id": int(t), "piece": p, "text": x, "special": bool(s)}
            for i, (t, p, x, s) in enumerate(
                zip(self.ids.tolist(), self.pieces, self.texts, self.special.tolist(), strict=True)
            )
        ]


def split_tokens(tokenizer, token_ids: Sequence[int]) -> TokenSplit:
    ids = [int(t) for t in token_ids]
    special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    pieces = tokenizer.convert_ids_to_tokens(ids)
    return TokenSplit(
        ids=np.asarray(ids, dtype=np.int64),
        pieces=tuple(str(p) for p in pieces),
        texts=tuple(display_text(tokenizer, t) for t in ids),
        special=np.asarray([t in special_ids for t in ids], dtype=bool),
    )


def special_tokens(tokenizer) -> list[dict]:
    """The tokenizer's named special tokens (BOS, EOS, ...) with their ids."""
    rows = []
    for name, tok in (getattr(tokenizer, "special_tokens_map", {}) or {}).items():
        for t in tok if isinstance(tok, list) else [tok]:
            rows.append({"role": name, "token": str(t), "id": tokenizer.convert_tokens_to_ids(t)})
    return rows


def vocabulary_size(tokenizer) -> int:
    """Every token the tokenizer can produce, added special tokens included."""
    return len(tokenizer)


def in_context(texts: Sequence[str], i: int, before: int = 8) -> str:
    """Display-mode token `i` with up to `before` tokens ahead of it: "…the·cat·⟦·sat⟧".
    The atlas stores and shows tokens this way, so a point says where it came from."""
    start = max(0, i - before)
    return ("…" if start > 0 else "") + "".join(texts[start:i]) + f"⟦{texts[i]}⟧"
