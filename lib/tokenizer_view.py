"""How a prompt splits into tokens: ids, pieces with visible whitespace, special tokens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Whitespace made visible, so "·the" and "the" are told apart on screen.
VISIBLE = {" ": "·", "\n": "↵", "\t": "→", "\r": "␍"}


def visible(text: str) -> str:
    """`text` with spaces, newlines and tabs replaced by visible marks (· ↵ →)."""
    return "".join(VISIBLE.get(c, c) for c in text)


def token_text(tokenizer, token_id: int) -> str:
    """What one token writes, with visible whitespace; special tokens keep their name.

    A byte token that is only part of a multi-byte character decodes to "�" on its own.
    """
    text = tokenizer.decode([int(token_id)], skip_special_tokens=False)
    return visible(text) if text else "[EMPTY]"


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
        texts=tuple(token_text(tokenizer, t) for t in ids),
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
