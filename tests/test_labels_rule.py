"""The one token-text rule (lib/labels.py) on the real tokenizer, against typed text whose
characters we know: each expectation is written from the characters, not from the code."""

from __future__ import annotations

from lib.labels import PARTIAL_NOTE, bidi_visible, bytes_text, display_text, is_partial, visible


def shown(lm, text: str) -> list[str]:
    tok = lm.tokenizer
    return [display_text(tok, t) for t in tok(text, add_special_tokens=False)["input_ids"]]


def test_typed_bpe_marker_letters_show_as_typed(smollm2):
    # The user typed the three letters Ġ ▁ Ċ (which byte-level BPE uses as stand-ins for
    # bytes). Each token shows either whole characters or, when the tokenizer split a
    # character, the bytes it holds; together they hold exactly the typed UTF-8 bytes, and
    # no token shows the tokenizer's stand-in letters ("Ä", "ł") instead.
    parts = shown(smollm2, "Ġ▁Ċ")
    held = b""
    for p in parts:
        held += bytes.fromhex(p.strip("⟨⟩")) if is_partial(p) else p.encode()
    assert held == "Ġ▁Ċ".encode()
    assert not any(c in "".join(parts) for c in "Äłâĸģ")


def test_direction_override_is_named_and_cannot_reverse_the_text(smollm2):
    # SmolLM2 splits U+202E (E2 80 AE) over two tokens: each shows its bytes; a token
    # holding the whole character would show its name. Either way no raw override.
    parts = shown(smollm2, "abc\u202edef")
    joined = "".join(parts)
    assert "\u202e" not in joined and joined.startswith("abc") and joined.endswith("def")
    assert "⟨E2 80⟩⟨AE⟩" in joined or "⟨RLO⟩" in joined
    assert visible("\u202e") == "⟨RLO⟩"
    assert bidi_visible("abc\u202edef") == "abc⟨RLO⟩def"
    assert bidi_visible("👩\u200d💻") == "👩\u200d💻"  # emoji joiners stay in whole text


def test_whitespace_and_invisible_characters_are_visible(smollm2):
    assert "".join(shown(smollm2, "a b\tc\nd")) == "a·b→c↵d"
    assert "⟨NBSP⟩" in "".join(shown(smollm2, "one\xa0two"))
    assert visible("x\u200by\u200dz") == "x⟨ZWSP⟩y⟨ZWJ⟩z"  # SmolLM2 splits these in bytes
    (space,) = smollm2.tokenizer(" ", add_special_tokens=False)["input_ids"]
    assert display_text(smollm2.tokenizer, space) == "·"  # not [EMPTY]


def test_a_split_character_shows_its_bytes_in_hex(smollm2):
    # "𝔸" (U+1D538) is F0 9D 94 B8 in UTF-8; if the tokenizer splits it, each part shows
    # the bytes it holds, and the parts together hold all four.
    parts = shown(smollm2, "𝔸")
    if len(parts) == 1:
        assert parts == ["𝔸"]
    else:
        assert all(is_partial(p) for p in parts)
        hexes = " ".join(p.strip("⟨⟩") for p in parts)
        assert hexes == "F0 9D 94 B8"
    assert "hex" in PARTIAL_NOTE
    assert bytes_text("é日".encode()[:4]) == "é⟨E6 97⟩"  # whole characters, then a part
    assert visible("\x07") == "⟨U+0007⟩"


def test_common_words_read_as_written(smollm2):
    assert "".join(shown(smollm2, "The old wizard")) == "The·old·wizard"
    assert "".join(shown(smollm2, " café")) == "·café"  # é decoded, not "Ã©"


def test_generated_end_of_sequence_is_a_tag(smollm2):
    eos = next(iter(smollm2.eos_ids))
    assert display_text(smollm2.tokenizer, eos, smollm2.eos_ids) == "[EOS]"


def test_a_lone_variation_selector_is_named():
    """U+FE0F after a heart makes it the red emoji (kept as typed); alone, or after a
    space, it draws nothing, so it is named like the other invisible characters."""
    assert visible("\u2764\ufe0f") == "\u2764\ufe0f"
    assert visible("\ufe0f") == "⟨VS16⟩"
    assert visible(" \ufe0f") == "·⟨VS16⟩"
    assert visible("\ufe0e\ufe0f") == "⟨VS15⟩⟨VS16⟩"
    assert visible("\U000e0100") == "⟨VS17⟩"


def test_characters_split_over_tokens_are_named_whole(smollm2):
    """Byte tokens show their share of a character in hex; together they write it, and
    the pages say which character (a caption beside the token tables)."""
    from lib.labels import split_characters
    from lib.viz.text import split_characters_note

    tok = smollm2.tokenizer
    ids = tok("猫が好き", add_special_tokens=False)["input_ids"]
    assert all(is_partial(display_text(tok, t)) for t in ids)  # every token a share
    assert split_characters(tok, ids) == [(0, len(ids) - 1, "猫が好き")]
    ids = tok("I love 🦙 llamas", add_special_tokens=False)["input_ids"]
    runs = split_characters(tok, ids)
    assert [text for *_, text in runs] == ["·🦙"]
    a, b, _ = runs[0]
    assert b > a and all(is_partial(display_text(tok, ids[i])) for i in range(a, b + 1))
    assert "tokens 2-4 write “·🦙”" in split_characters_note(runs)
    assert split_characters(tok, tok("plain text")["input_ids"]) == []
