"""The attention graph's own controls: which lines, the selection's buttons, and what to
do when nothing is drawn."""

from __future__ import annotations

import streamlit as st

from app.state import bound, state
from app.widgets import controls
from lib.analysis.attention import StepAttention
from lib.config import LINES_THRESHOLD, LINES_TOP_K
from lib.viz.text import empty_graph_note


def reset_selection(show_all: bool = False) -> None:
    """The graph's two buttons: both clear the click selection (a new chart key starts with
    none); "Show all connections" then draws every step so far, "Reset selection" this one."""
    state.view.graph_nonce += 1
    state.view.graph_focus = None
    state.view.show_all = show_all


def top_k_instead() -> None:
    state.view.graph_lines = LINES_TOP_K


def go_to_step(run_key: str, step: int) -> None:
    """Show step `step` (0-based) with its token still selected."""
    state.view.step = step + 1
    state.view.graph_focus = (run_key, "output", step)


def which_lines(where) -> tuple[float, int | None]:
    """The threshold, or the k strongest lines per step instead (None: use the threshold)."""
    mode = where.radio("Lines drawn", [LINES_THRESHOLD, LINES_TOP_K], **bound("graph_lines"))
    if mode == LINES_TOP_K:
        where.number_input(
            "k",
            1,
            50,
            **bound("graph_top_k"),
            help="Lines to prompt tokens and lines to earlier generated tokens, each, per step.",
        )
        return float(state.view.threshold), int(state.view.graph_top_k)
    return controls.threshold_slider(where), None


def why_empty(
    run_key: str,
    steps: list[StepAttention],
    current: int,
    selected: tuple[str, int] | None,
    name: str,
    threshold: float,
    top_k: int | None,
) -> None:
    """Say why the graph draws no line, with the button that draws some."""
    st.info(
        empty_graph_note(steps, current, selected, name, threshold, top_k),
        icon=":material/visibility_off:",
    )
    if selected is not None and selected[0] == "output" and selected[1] > current:
        st.button(f"Go to step {selected[1] + 1}", on_click=go_to_step, args=(run_key, selected[1]))
    elif top_k is None:
        st.button("Draw the strongest 5 lines per step instead", on_click=top_k_instead)
