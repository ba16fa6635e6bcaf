"""How a token is shown: one rule, every page (`display_text`).

- A token shows the characters it writes, decoded by its own tokenizer, with every space,
  newline and tab made visible as `·`, `↵` and `→` (so "·the" and "the" are told apart).
- Characters that draw nothing or change the direction of the text around them become
  named markers: `⟨ZWJ⟩`, `⟨NBSP⟩`, `⟨RLO⟩`, other controls `⟨U+0007⟩`. A typed right-to-left
  override can then never reverse the page.
- A token that holds only part of a character (byte-level BPE splits "日" or an emoji over
  several tokens) shows the bytes it holds in hex, `⟨E6 97⟩`, with `PARTIAL_NOTE` as its
  tooltip; where a token holds whole characters and a partial one, both show.
- Special tokens keep their tags (`clean_label`: `[EOS]`, `[BOS]`, `[UNK]`); other
  special tokens keep their name (`<|im_start|>`). A generated end-of-sequence is `[EOS]`.

A run stores every token's text once (`GenerationResult.texts`, and `.labels`, the same
texts with a generated EOS as `[EOS]`), so views never re-derive them.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

TokenText = Callable[[int], str]  # token id -> its text under the one rule

# Whitespace made visible.
VISIBLE = {" ": "·", "\n": "↵", "\t": "→", "\r": "␍"}
# Characters that draw nothing, or reorder the text around them, by their short names.
NAMED = {
    "\u00a0": "NBSP",
    "\u00ad": "SHY",
    "\u061c": "ALM",
    "\u200b": "ZWSP",
    "\u200c": "ZWNJ",
    "\u200d": "ZWJ",
    "\u200e": "LRM",
    "\u200f": "RLM",
    "\u2028": "LSEP",
    "\u2029": "PSEP",
    "\u202a": "LRE",
    "\u202b": "RLE",
    "\u202c": "PDF",
    "\u202d": "LRO",
    "\u202e": "RLO",
    "\u2060": "WJ",
    "\u2066": "LRI",
    "\u2067": "RLI",
    "\u2068": "FSI",
    "\u2069": "PDI",
    "\ufeff": "BOM",
}
PARTIAL_NOTE = (
    "⟨..⟩ holds bytes in hex: this token is only part of a character, whose UTF-8 bytes "
    "the tokenizer split over several tokens."
)
_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")

# ---- tags for special tokens --------------------------------------------------------


def clean_label(token) -> str:
    """The graph's cleaning: BPE markers to spaces, special tokens to tags."""
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


# ---- characters ------------------------------------------------------------------------


def mark(c: str) -> str:
    """One character as shown: visible whitespace, a named marker, or itself."""
    if c in VISIBLE:
        return VISIBLE[c]
    if c in NAMED:
        return f"⟨{NAMED[c]}⟩"
    if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
        return f"⟨U+{ord(c):04X}⟩"
    return c


def selector_number(c: str) -> int | None:
    """The number of a variation selector (U+FE00-FE0F: VS1-16, U+E0100-E01EF: VS17-256)."""
    o = ord(c)
    if 0xFE00 <= o <= 0xFE0F:
        return o - 0xFE00 + 1
    if 0xE0100 <= o <= 0xE01EF:
        return o - 0xE0100 + 17
    return None


def visible(text: str) -> str:
    """`text` under the one rule: whitespace visible, invisible characters named. A
    variation selector changes how the character before it is drawn (❤ + VS16 is the red
    heart); with no such character before it (a token of its own, after a space) it draws
    nothing, so it is named, ⟨VS16⟩."""
    out, before = [], None
    for c in text:
        n = selector_number(c)
        lone = before is None or before in VISIBLE or selector_number(before) is not None
        out.append(f"⟨VS{n}⟩" if n is not None and lone else mark(c))
        before = c
    return "".join(out)


BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def bidi_visible(text: str) -> str:
    """Whole text (the output box) with only its direction-changing characters named, so a
    typed right-to-left override shows as ⟨RLO⟩ and cannot reverse what follows; the rest
    (emoji joiners, spaces) stays as written."""
    return "".join(f"⟨{NAMED[c]}⟩" if c in BIDI else c for c in text)


def bytes_text(data: bytes) -> str:
    """Bytes under the one rule: whole UTF-8 characters decoded, stray bytes in hex."""
    out: list[str] = []
    stray: list[int] = []
    i = 0
    while i < len(data):
        for n in (1, 2, 3, 4):
            try:
                ch = data[i : i + n].decode("utf-8")
            except UnicodeDecodeError:
                continue
            if stray:
                out.append("⟨" + " ".join(f"{b:02X}" for b in stray) + "⟩")
                stray = []
            out.append(visible(ch))
            i += n
            break
        else:
            stray.append(data[i])
            i += 1
    if stray:
        out.append("⟨" + " ".join(f"{b:02X}" for b in stray) + "⟩")
    return "".join(out)


@functools.cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet, reversed: stand-in character -> byte."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs, strict=True)}


def piece_bytes(piece: str) -> bytes | None:
    """The bytes behind a vocabulary piece that decodes to broken UTF-8: a SentencePiece
    byte token `<0xE6>`, or a byte-level BPE piece; None when neither."""
    if m := _BYTE_TOKEN.fullmatch(piece):
        return bytes([int(m.group(1), 16)])
    dec = _byte_decoder()
    if piece and all(c in dec for c in piece):
        return bytes(dec[c] for c in piece)
    return None


def is_partial(text: str) -> bool:
    """True when a shown token holds bytes of a split character (its ⟨..⟩ hex)."""
    return re.search(r"⟨[0-9A-F]{2}( [0-9A-F]{2})*⟩", text) is not None


def split_characters(tokenizer, token_ids: Sequence[int]) -> list[tuple[int, int, str]]:
    """Where the tokenizer split characters over tokens: (first, last) positions of each
    run of adjacent tokens that hold only parts of characters, and what their bytes write
    together under the one rule (a character, or hex where the run still does not finish
    one). A token that writes `⟨E7 8C⟩` and the next `⟨AB⟩` together write 猫."""
    runs: list[tuple[int, int, str]] = []
    start, data = None, b""
    ids = [int(t) for t in token_ids]
    for i, t in enumerate([*ids, None]):
        piece = None if t is None else tokenizer.convert_ids_to_tokens(t)
        raw = piece_bytes(str(piece)) if piece is not None else None
        partial = raw is not None and is_partial(display_text(tokenizer, t))
        if partial:
            start = i if start is None else start
            data += raw
        elif start is not None:
            runs.append((start, i - 1, bytes_text(data)))
            start, data = None, b""
    return runs


# ---- tokens ----------------------------------------------------------------------------


def display_text(tokenizer, token_id: int, eos_ids: frozenset[int] = frozenset()) -> str:
    """One token under the one rule (see the module's docstring)."""
    token_id = int(token_id)
    if token_id in eos_ids:
        return "[EOS]"
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if piece is None:
        return "[UNK]"
    if token_id in set(getattr(tokenizer, "all_special_ids", []) or []):
        return clean_label(piece)
    text = tokenizer.decode([token_id], skip_special_tokens=False)
    if "\ufffd" in text and "\ufffd" not in str(piece):
        data = piece_bytes(str(piece))
        if data is not None:
            return bytes_text(data)
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


# One numbering on every page, said once (the Welcome page) and used by every label.
NUMBERING = (
    "Numbering, on every page: steps count the generated tokens from 1 (step 1 writes the "
    "first one); prompt tokens and positions in the text count from 0."
)


def step_label(step: int, text: str) -> str:
    """A generated token named by the step that wrote it (`step` 0-based): "step 3: ·cat"."""
    return f"step {step + 1}: {text}" if text else f"step {step + 1}"
