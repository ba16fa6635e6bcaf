"""The classroom's controls: projector and quiz mode and "Share this view" in every page's
sidebar, and the choice to share one's runs with the class atlas."""

from __future__ import annotations

import streamlit as st

from app.runs import sharing
from app.state import bound
from lib.viz.look import PROJECTOR_TEXT


def classroom_switches() -> None:
    """The classroom's two switches, kept in the tab (and in the teacher's second link)."""
    st.toggle(
        "Projector mode",
        **bound("projector"),
        help=f"Every chart's text at least {PROJECTOR_TEXT} px, thicker lines and markers. "
        "For the page's own text, use the browser's zoom (Ctrl and +). Kept in this tab; "
        "Share this view offers a link that carries it.",
    )
    st.toggle(
        "Quiz mode",
        **bound("quiz"),
        help="Guess before you see: the attention graph, the next token and the head roles "
        "ask first, then show the answer and your score (kept in this tab only).",
    )


def share_box(link: str, with_modes: str | None = None) -> None:
    """ "Share this view": the link to copy, and what it holds; `with_modes` is the same
    link with this tab's projector and quiz mode (None when both are off)."""
    with st.popover("Share this view", icon=":material/share:", width="stretch"):
        st.code(link, language=None, wrap_lines=True)
        st.caption(
            "Copy it with the button in the box's corner; the address bar always holds the "
            "link to what you see. Whoever opens it sees this page with this run and these "
            "settings: a greedy or seeded run comes out the same every time, and a class "
            "opening it together costs the server one run. Projector and quiz mode stay "
            "in this tab."
        )
        if with_modes is not None:
            st.markdown("**With projector and quiz mode as you have them** (for the class):")
            st.code(with_modes, language=None, wrap_lines=True)


SHARE_HELP = (
    "Off (unless your teacher set this server up for a class that agreed): the prompts and "
    "tokens you generate are seen only in this browser tab. On: each run you generate from "
    "now on (your prompt, the tokens written and their attention fingerprints) is kept in "
    "this server's attention atlas, where everyone using the server can see its text on "
    "the Attention atlas page. You can delete what you shared there."
)


def share_with_class(where=st) -> bool:
    """The switch that shares this session's runs with the class atlas; whether it is on.
    Drawn nowhere when the server records nothing."""
    from lib.atlas.store import recording_mode

    if recording_mode() == "off":
        return False
    sharing()  # not chosen yet: start from the deployment's default
    label = "Share my runs with the class atlas"
    return bool(where.toggle(label, **bound("atlas_record"), help=SHARE_HELP))
