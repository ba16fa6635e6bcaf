"""The classroom's controls in the sidebar of every page: projector and quiz mode, and
"Share this view"."""

from __future__ import annotations

import streamlit as st

from app.state import bound
from lib.viz.look import PROJECTOR_TEXT


def classroom_switches() -> None:
    """The classroom's two switches; both are kept in the link."""
    st.toggle(
        "Projector mode",
        **bound("projector"),
        help=f"Every chart's text at least {PROJECTOR_TEXT} px, thicker lines and markers. "
        "For the page's own text, use the browser's zoom (Ctrl and +). Kept in the link.",
    )
    st.toggle(
        "Quiz mode",
        **bound("quiz"),
        help="Guess before you see: the attention graph, the next token and the head roles "
        "ask first, then show the answer and your score (kept in this tab only).",
    )


def share_box(link: str) -> None:
    """ "Share this view": the link to copy, and what it holds."""
    with st.popover("Share this view", icon=":material/share:", width="stretch"):
        st.code(link, language=None, wrap_lines=True)
        st.caption(
            "Copy it with the button in the box's corner; the address bar always holds the "
            "link to what you see. Whoever opens it sees this page with this run and these "
            "settings: a greedy or seeded run comes out the same every time, and a class "
            "opening it together costs the server one run."
        )
