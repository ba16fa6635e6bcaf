"""Seed 000's clean_label, one replacement at a time, plus byte tokens and empty labels."""

import pytest

from lib.labels import clean_label


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Ġforest", "forest"),  # GPT-2 space marker becomes a space, then stripped
        ("▁forest", "forest"),  # SentencePiece space marker
        ("fo▁rest", "fo rest"),  # inner markers stay as spaces
        ("aĠb", "a b"),
        ("Ċ", "\\n"),  # newline shown as a visible backslash-n
        ("ĊĊ", "\\n\\n"),
        ("</s>", "[EOS]"),
        ("<unk>", "[UNK]"),
        ("<|begin_of_text|>", "[BOS]"),
        ("<|end_of_text|>", "[EOS]"),
        ("<0x0A>", "[EMPTY]"),  # byte tokens are removed; nothing left
        ("a<0xE2>b", "ab"),
        ("<0xe2><0x82>", "[EMPTY]"),  # lower-case hex too
        ("<0xZZ>", "<0xZZ>"),  # not a byte token
        ("", "[EMPTY]"),
        ("Ġ", "[EMPTY]"),
        ("   ", "[EMPTY]"),
        ("<|im_start|>", "<|im_start|>"),  # other special tokens are left alone
        (42, "42"),  # anything is turned into text first
    ],
)
def test_clean_label(raw, shown):
    assert clean_label(raw) == shown
