"""Page 3: raw attention matrices, per layer and head, with downloads."""

import numpy as np
import streamlit as st

from lib.attention import aggregate
from lib.heatmap import MAX_AXIS, head_grid, heatmap, view
from pages.common import (
    MATRIX_CAPTURED as CAPTURED,
)
from pages.common import (
    MATRIX_WHOLE as WHOLE,
)
from pages.common import (
    bound,
    cached_full,
    current_model,
    describe_aggregation,
    download,
    download_run,
    layer_head_choice,
    need_run,
)


def window(label: str, n: int, key: str, default_end: bool) -> tuple[int, int]:
    """A range slider over n positions when n is larger than what can be drawn at once."""
    if n <= MAX_AXIS:
        return 0, n
    start = n - MAX_AXIS if default_end else 0
    lo, hi = st.slider(
        label,
        0,
        n,
        (start, start + MAX_AXIS),
        key=key,
        help=f"At most {MAX_AXIS} positions are drawn at once.",
    )
    return lo, min(max(hi, lo + 1), lo + MAX_AXIS)


st.title("Attention matrices")
run_key, r = need_run()
ss = st.session_state

layer, head = layer_head_choice(r)
source = st.radio(
    "Rows",
    [CAPTURED, WHOLE],
    key="matrix_source",
    horizontal=True,
    help="Captured rows are exactly what each generated token attended to. The "
    "whole sequence adds the prompt's own rows, computed by one more forward pass.",
)
hide = st.toggle(
    "Hide the first-token attention sink and renormalise",
    **bound("hide_sink"),
    help="Most models park a large share of attention on the first token. Hiding "
    "it and renormalising each row makes the rest visible.",
)

T = len(r.labels)
if source == CAPTURED:
    matrix = aggregate(r, layer, head)
    query_pos = r.prompt_len - 1 + np.arange(r.n_steps)
    what = describe_aggregation(r, layer, head)
    heads = None if layer is None else [r.attention[:, layer, h] for h in range(r.n_heads)]
else:
    lm = current_model()
    if lm is None or lm.name != r.model_name:
        st.warning(
            "The whole-sequence matrix needs the model that made this run. Load it "
            "again on the Generate page, or show the captured rows."
        )
        st.stop()
    if layer is None and head is not None:
        st.caption(
            "A head number only means something within one layer: pick a layer too. "
            "Showing the mean over all layers and heads."
        )
        head = None
    full = cached_full(run_key, layer, lm, r.token_ids)
    matrix = full.matrix(head)
    query_pos = np.arange(T)
    what = describe_aggregation(r, layer, head)
    heads = None if full.heads is None else list(full.heads)

q_lo, q_hi = window("Query rows shown", len(query_pos), "matrix_rows", default_end=True)
k_lo, k_hi = window("Key columns shown", matrix.shape[1], "matrix_keys", default_end=True)
v = view(matrix[q_lo:q_hi], query_pos[q_lo:q_hi], r.labels, hide, k_lo, k_hi)

st.altair_chart(heatmap(v), width="content")
st.caption(
    f"Attention weights {what}. Each row is one query (the token doing the attending; in the "
    "captured view, the position whose output produced the next generated token) and each "
    "column a key (the token attended to). Hover a cell for both tokens and the exact value. "
    + (
        "The first token is hidden and every row renormalised to sum to 1."
        if hide
        else "Raw softmax weights: each full row sums to 1."
    )
    + (" The BOS token the tokenizer added is included here (position 0)." if r.bos_offset else "")
)

c1, c2 = st.columns(2)
what_file = "-".join(
    [
        f"layer{layer}" if layer is not None else "all-layers",
        f"head{head}" if head is not None else "all-heads",
        "captured" if source == CAPTURED else "whole",
    ]
    + (["sink-hidden"] if hide else [])
)
download(
    c1,
    "Download this matrix (CSV)",
    v.to_csv,
    file_name=f"attention-{run_key}-{what_file}.csv",
    mime="text/csv",
)
download_run(c2, run_key, r)

if heads is not None and st.toggle(
    f"Show all {r.n_heads} heads of layer {layer}", key="matrix_head_grid"
):
    with st.container():
        views = [
            view(h[q_lo:q_hi], query_pos[q_lo:q_hi], r.labels, hide, k_lo, k_hi) for h in heads
        ]
        st.altair_chart(head_grid(views), width="content")
        st.caption(
            "Same rows and columns as above, one small heatmap per head, shared colour "
            "scale. Hover for tokens and values."
        )
