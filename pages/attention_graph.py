"""Page 2: the step-by-step attention graph with click-to-filter."""

import numpy as np
import pandas as pd
import streamlit as st

from lib.attention import StepAttention, all_steps
from lib.graph import GraphEdges, attention_graph, select_edges
from lib.result import GenerationResult
from pages.common import bound, describe_aggregation, layer_head_choice, md_escape, need_run

MAX_GRAPH_PROMPT = 150  # prompt tokens drawn at once; more would overlap their labels


@st.cache_data(max_entries=32, show_spinner=False)
def cached_steps(
    run_key: str, layer: int | None, head: int | None, hide_first: bool, _result: GenerationResult
) -> list[StepAttention]:
    """Aggregated, split and normalised attention for every step (keyed by the run's hash)."""
    return all_steps(_result, layer, head, hide_first)


def parse_selection(state) -> tuple[str, int] | None:
    """The clicked token from a plotly_chart selection state, or None."""
    try:
        points = state["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for point in points or []:
        data = point.get("customdata") if hasattr(point, "get") else None
        if data and len(data) == 2 and data[0] in ("input", "output"):
            return str(data[0]), int(data[1])
    return None


def reset_selection() -> None:
    st.session_state["graph_nonce"] += 1  # a new chart key starts with no selection


st.title("Attention graph")
run_key, r = need_run()
ss = st.session_state

layer, head = layer_head_choice(r)
steps = cached_steps(run_key, layer, head, bool(ss["hide_sink"]), r)

n = r.n_steps
if not isinstance(ss.get("step"), int) or not 1 <= ss["step"] <= n:
    ss["step"] = 1
c1, c2 = st.columns([3, 2])
if n > 1:
    c1.slider(
        "Generation step",
        1,
        n,
        **bound("step"),
        help="Which generated token's attention to show (its query row).",
    )
else:
    c1.caption("One token was generated: step 1 of 1.")
c2.slider(
    "Attention threshold",
    0.0,
    0.2,
    step=0.001,
    format="%.3f",
    **bound("threshold"),
    help="Connections whose normalised weight is below this are hidden.",
)
b1, b2, b3 = st.columns([3, 4, 2])
b1.toggle(
    "Show all connections",
    **bound("show_all"),
    help="Draw the connections of every step up to the current one, not just this step.",
)
b2.toggle(
    "Hide the first-token sink and renormalise",
    **bound("hide_sink"),
    help="Most models park much of their attention on the first token. Hiding it spreads "
    "the normalised weights over the other prompt tokens.",
)
b3.button("Reset selection", on_click=reset_selection, icon=":material/restart_alt:")

# Long prompts: draw a window of prompt tokens so every label stays readable. Weights are
# still normalised over the whole prompt, so the lines keep their true values.
n_in = len(r.prompt_labels)
lo, hi = 0, n_in
if n_in > MAX_GRAPH_PROMPT:
    lo, hi = st.slider(
        "Prompt tokens drawn",
        0,
        n_in,
        (n_in - MAX_GRAPH_PROMPT, n_in),
        key=f"prompt_window_{run_key}",
        help=f"At most {MAX_GRAPH_PROMPT} prompt tokens are drawn at once.",
    )
    lo, hi = max(0, min(lo, hi - 1)), max(hi, lo + 1)
    hi = min(hi, lo + MAX_GRAPH_PROMPT)
    st.caption(
        f"Drawing prompt tokens {lo} to {hi - 1} of {n_in}; weights are normalised over "
        "the whole prompt."
    )

current = int(ss["step"]) - 1
chart_key = ss["graph_chart_key"] = f"graph_{run_key}_{ss['graph_nonce']}_{lo}_{hi}"
selected = parse_selection(ss.get(chart_key))
if selected is not None:
    side, idx = selected
    idx = idx + lo if side == "input" else idx  # the chart numbers prompt tokens in its window
    limit = n_in if side == "input" else n
    selected = (side, idx) if 0 <= idx < limit else None
ss["selected_token"] = selected

step = steps[current]
token = r.generated_labels[current]
st.markdown(
    f"**Step {current + 1} of {n}:** the model writes “{md_escape(token)}” "
    f"(probability {float(r.chosen_prob[current]):.3f}). "
    + (
        f"The hidden first token (attention sink) took {step.sink_raw:.1%} of the raw attention."
        if step.sink_raw
        else ""
    )
)
if selected is not None:
    side, idx = selected
    name = r.prompt_labels[idx] if side == "input" else r.generated_labels[idx]
    what = "its connections to the generated tokens" if side == "input" else "what it attends to"
    st.caption(
        f"Filtered on {'prompt' if side == 'input' else 'generated'} token "
        f"{idx} “{md_escape(name)}”: showing {what}. Reset selection to see all."
    )

edges = select_edges(steps, current, float(ss["threshold"]), bool(ss["show_all"]), selected)
if (lo, hi) != (0, n_in):
    keep = (edges.kind == 1) | ((edges.src >= lo) & (edges.src < hi))
    src = np.where(edges.kind == 0, edges.src - lo, edges.src)
    edges = GraphEdges(
        edges.kind[keep], src[keep], edges.dst[keep], edges.weight[keep], edges.raw[keep]
    )
shown_selection = (
    (selected[0], selected[1] - lo) if selected and selected[0] == "input" else selected
)
fig = attention_graph(r.prompt_labels[lo:hi], r.generated_labels, edges, current, shown_selection)
st.plotly_chart(
    fig,
    on_select="rerun",
    selection_mode="points",
    key=chart_key,
    width="content",
    config={"displayModeBar": False},
)
st.caption(
    "Each step shows the attention computed while producing the coral token: its query is "
    "the token just before it (the last prompt token at step 1). "
    f"Weights are {describe_aggregation(r, layer, head)}. Blue lines: attention to prompt "
    "tokens; orange curves: attention to earlier generated tokens. Each colour is normalised "
    "separately (divided by its own sum) so both are visible; hover a line for the "
    f"normalised and raw weight. Lines below the threshold ({float(ss['threshold']):.3f}) "
    f"are hidden ({len(edges)} shown). Coral: the token being generated; pink: earlier "
    "generated tokens; grey: not generated yet; yellow: your selection."
    + (" The BOS token the tokenizer added is hidden." if r.bos_offset else "")
    + (
        " The first prompt token is hidden (sink) and gets no lines."
        if ss["hide_sink"] and not r.bos_offset
        else ""
    )
)

with st.expander("Strongest connections at this step"):
    rows = [
        {
            "to token": r.prompt_labels[i],
            "part": "prompt",
            "normalised": float(w),
            "raw": float(step.input_raw[i]),
        }
        for i, w in enumerate(step.input_norm)
    ]
    rows += [
        {
            "to token": r.generated_labels[j],
            "part": "generated",
            "normalised": float(w),
            "raw": float(step.output_raw[j]),
        }
        for j, w in enumerate(step.output_norm)
    ]
    table = pd.DataFrame(rows).sort_values("raw", ascending=False).head(12)
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "normalised": st.column_config.NumberColumn(format="%.4f"),
            "raw": st.column_config.NumberColumn(format="%.5f"),
        },
    )
