"""The prompt's big editor: a dialog with a tall text box, for a long prompt or a teacher
at a projector (the small box on Generate stays the quick way)."""

from __future__ import annotations

import streamlit as st

from app.state import state

BIG_KEY = "prompt_big"


@st.dialog("Edit the prompt", width="large")
def _editor() -> None:
    if BIG_KEY not in st.session_state:
        st.session_state[BIG_KEY] = str(state.gen.prompt)
    st.text_area("Prompt", key=BIG_KEY, height=420, label_visibility="collapsed")
    st.caption("Keep changes with Use this prompt; close the window to leave the prompt as it was.")
    if st.button("Use this prompt", type="primary", icon=":material/check:"):
        state.gen.prompt = st.session_state.pop(BIG_KEY)
        st.rerun()


def big_editor_button(where) -> None:
    """The button that opens the big editor, on the prompt's latest text."""
    if where.button("Large editor", icon=":material/open_in_full:", help="Edit the prompt in a "
                    "large window (a long text, or a projector)."):  # fmt: skip
        st.session_state.pop(BIG_KEY, None)  # open on the prompt as it is now
        _editor()
