"""Attention graph: the step-by-step graph with click-to-filter."""

import streamlit as st

from app import caches, links, quiz
from app.markdown import md_escape
from app.state import clamp_step, state
from app.widgets import chrome, controls, downloads, figures, prove
from app.widgets import graph as graph_widgets
from app.widgets.step_player import FRAMES, FRAMES_ALL, frame_window, step_player
from lib.analysis.quiz import most_attended
from lib.config import MAX_GRAPH_PROMPT
from lib.model.request import Run
from lib.viz.graph import (
    attention_graph,
    select_edges,
    selection_from_event,
    toolbar_config,
    window_edges,
)
from lib.viz.tables import strongest_connections
from lib.viz.text import graph_caption, graph_scope, sink_share_note

GRAPH_BOX = "tav_graph"  # the chart's container, where the step player redraws it
PLAYER_HELP = (
    "Which generated token's attention to show: the graph follows at once, the rest of the "
    "page when you let go."
)


@st.fragment
def graph(run: Run, layer: int | None, head: int | None, hide: bool, picture: str) -> None:
    """Everything a step move changes, rerun alone when its own controls move."""
    r, n = run.result, run.result.n_steps
    c1, c2 = st.columns([3, 2])
    current = clamp_step("step", n) - 1  # the player is drawn below, with every step's picture
    threshold, top_k = graph_widgets.which_lines(c2)
    b1, b2, b3 = st.columns([2, 2, 3])
    b1.button(
        "Show all connections",
        on_click=graph_widgets.reset_selection,
        args=(True,),
        icon=":material/select_all:",
        help="Draw the connections of every step up to the current one, not just this step.",
    )
    b2.button(
        "Reset selection", on_click=graph_widgets.reset_selection, icon=":material/restart_alt:"
    )
    # Long prompts: a window of prompt tokens keeps every label readable. Weights are still
    # normalised over the whole prompt, so the lines keep their true values.
    n_in = len(r.prompt_labels)
    lo, hi = controls.window_slider(
        "Prompt tokens drawn", n_in, MAX_GRAPH_PROMPT, "graph_prompt_window"
    )
    if (lo, hi) != (0, n_in):
        st.caption(
            f"Drawing prompt tokens {lo} to {hi - 1} of {n_in}; weights are normalised "
            "over the whole prompt."
        )

    chart_key = st.session_state["graph_chart_key"] = (
        f"graph_{run.key}_{state.view.graph_nonce}_{lo}"
    )
    selected = selection_from_event(st.session_state.get(chart_key), n_in, n, lo)
    focus = state.view.graph_focus  # a token opened from another page (the atlas)
    if selected is None and focus is not None and focus[0] == run.key:
        selected = (focus[1], focus[2])
        if selected[0] == "input" and not lo <= selected[1] < hi:
            selected = None  # outside the drawn window of prompt tokens
    state.view.selected_token = selected
    steps = caches.steps(run.key, layer, head, hide, r)
    step = steps[current]
    sink = not (hide or r.bos_offset) and len(r.prompt_labels) > 1  # asked without it
    best = most_attended(step, skip_first=sink)
    if not quiz.ask(
        "attention",
        f"{run.key}:attention:{layer}:{head}:{hide}:{current}",
        f"At step {current + 1}, which prompt token gets the most attention (the thickest "
        "blue line)?"
        + (
            f" The first token, “{r.prompt_labels[0]}”, the attention sink, is left out."
            if sink
            else ""
        ),
        range(1 if sink else 0, len(r.prompt_labels)),
        lambda i: f"{r.prompt_labels[i]} (prompt token {i})",
        lambda i: i == best,
        f"the thickest line goes to {r.prompt_labels[best]} (prompt token {best}), normalised "
        f"weight {float(step.input_norm[best]):.3f}.",
    ):
        with c1:  # no pictures while a question hides the graph (they hold the answer)
            step_player(n, {}, GRAPH_BOX, PLAYER_HELP)
        links.sync_url()
        return
    view = (layer, head, hide, threshold, top_k, bool(state.view.show_all), selected, lo, hi)
    window = tuple(frame_window(n, current + 1, FRAMES_ALL if state.view.show_all else FRAMES))
    frames = caches.graph_frames(run.key, view, window, state.classroom.projector, r, steps)
    with c1:
        step_player(n, frames, GRAPH_BOX, PLAYER_HELP)
    token = md_escape(r.generated_labels[current])
    st.markdown(
        f"**Step {current + 1} of {n}:** the model writes “{token}” "
        f"(probability {float(r.chosen_prob[current]):.3f})."
    )
    first = "[BOS]" if r.bos_offset else r.prompt_labels[0]
    share = step.sink_raw if (r.bos_offset or hide) else float(step.input_raw[0])
    note = sink_share_note(share, md_escape(first), shown=not (r.bos_offset or hide))
    if r.bos_offset or hide:
        st.caption(note)
    else:
        n1, n2 = st.columns([5, 1], vertical_alignment="center")
        n1.info(note, icon=":material/anchor:")
        if n2.button("Hide the sink", help=controls.SINK_HELP):
            state.view.hide_sink = True
            st.rerun(scope="app")  # the switch above the fragment changes every view
    name = ""
    if selected is not None:
        side, idx = selected
        name = md_escape(r.prompt_labels[idx] if side == "input" else r.generated_labels[idx])
    edges = select_edges(steps, current, threshold, bool(state.view.show_all), selected, top_k)
    edges = window_edges(edges, lo, hi)
    b3.caption(graph_scope(selected, name, current, bool(state.view.show_all)))
    if not len(edges):  # never a blank graph without a word
        graph_widgets.why_empty(run.key, steps, current, selected, name, threshold, top_k)
    shown = (selected[0], selected[1] - lo) if selected and selected[0] == "input" else selected
    fig = attention_graph(r.prompt_labels[lo:hi], r.generated_labels, edges, current, shown)
    figures.plotly(
        fig,
        where=st.container(key=GRAPH_BOX),  # where the step player finds the chart
        on_select="rerun",
        selection_mode="points",
        key=chart_key,
        width="content",
        config=toolbar_config(picture, f"attention-graph-{run.key}-step{current + 1}"),
    )
    st.caption(graph_caption(r, layer, head, hide, threshold, len(edges), top_k))
    with st.expander("Strongest connections at this step"):
        st.dataframe(
            strongest_connections(r, step),
            hide_index=True,
            width="stretch",
            column_config={
                "normalised": st.column_config.NumberColumn(format="%.4f"),
                "raw": st.column_config.NumberColumn(format="%.5f"),
            },
        )
    prove.prove_lines(run, step)
    links.sync_url()  # a rerun of this fragment alone: the address bar follows the step


chrome.page_intro(
    "Attention graph",
    "While writing each token the model looks back at the tokens before it; the lines show "
    "where it looked, and how much. Walk through the steps, or click a token to follow it.",
)
run = chrome.need_run()
layer, head = controls.layer_head_picker(run.result.n_layers, run.result.n_heads)
hide = controls.sink_toggle()
picture = st.session_state.get("graph_picture") or "PNG"
graph(run, layer, head, hide, picture)

st.subheader("Take it home")
c1, c2 = st.columns([3, 2])
downloads.download_lesson(c1, run, layer, head, hide)
c2.segmented_control(
    "Graph picture", ["PNG", "SVG"], key="graph_picture", default="PNG", required=True
)
c2.caption("The camera at the graph's top right saves the step shown as this kind of picture.")
chrome.page_source(__file__, attention_graph, select_edges)
