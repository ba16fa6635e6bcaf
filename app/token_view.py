"""The run's tokens as chips with their ids (the annotated-text view), drawn with st.html."""

from __future__ import annotations

import streamlit as st

from lib.labels import TokenSplit
from lib.viz.token_chips import chips_caption, token_chips


def show_token_chips(split: TokenSplit, prompt_len: int) -> None:
    """Prompt and generated tokens as coloured chips, each id beneath its text.

    st.html, not st.markdown: the builder escapes every token text, and st.html never reads
    Markdown, so neither HTML nor Markdown in a token can take effect (lib/viz/token_chips).
    """
    view = token_chips(split.texts, split.ids, split.special, prompt_len)
    st.html(view.html)
    st.caption(chips_caption(view))
