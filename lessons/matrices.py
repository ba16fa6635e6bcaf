"""Attention matrices: the raw weights per layer and head, as heatmaps, with downloads."""

import numpy as np
import streamlit as st

from app import caches
from app.markdown import md_escape
from app.state import bound, state
from app.widgets import chrome, controls, downloads, figures, model
from lib.analysis.attention import aggregate
from lib.config import MATRIX_CAPTURED, MATRIX_WHOLE
from lib.viz.look import vega_for_projector
from lib.viz.matrices import MAX_AXIS, head_grid, heatmap, matrix_caption, matrix_file_name, view
from lib.viz.text import matrix_sink_note

chrome.page_intro(
    "Attention matrices",
    "Each row is one token looking back, each column a token it can see; the colour is how "
    "much attention it paid. These are the exact softmax weights, per layer and head.",
)
run = chrome.need_run()
r = run.result
layer, head = controls.layer_head_picker(r.n_layers, r.n_heads)
source = st.radio(
    "Rows",
    [MATRIX_CAPTURED, MATRIX_WHOLE],
    **bound("matrix_source"),
    horizontal=True,
    help="Captured rows are exactly what each generated token attended to. The "
    "whole sequence adds the prompt's own rows, computed by one more forward pass.",
)
hide = controls.sink_toggle()

if source == MATRIX_CAPTURED:
    matrix = aggregate(r, layer, head)
    query_pos = r.prompt_len - 1 + np.arange(r.n_steps)
    heads = None if layer is None else [r.attention[:, layer, h] for h in range(r.n_heads)]
else:
    lm = model.need_model(run, "The whole-sequence matrix")
    if layer is None and head is not None:
        st.caption(
            "A head number only means something within one layer: pick a layer too. "
            "Showing the mean over all layers and heads."
        )
        head = None
    full = caches.full(run.key, layer, lm, r.token_ids)
    matrix = full.matrix(head)
    query_pos = np.arange(len(r.token_ids))
    heads = None if full.heads is None else list(full.heads)

q_lo, q_hi = controls.window_slider("Query rows shown", len(query_pos), MAX_AXIS, "matrix_rows")
k_lo, k_hi = controls.window_slider("Key columns shown", matrix.shape[1], MAX_AXIS, "matrix_keys")
v = view(matrix[q_lo:q_hi], query_pos[q_lo:q_hi], r.texts, hide, k_lo, k_hi)
chart = heatmap(v)
figures.chart(chart, width="content")
if not hide:  # the dark first column every student sees first
    st.caption(matrix_sink_note(float(np.mean(matrix[q_lo:q_hi, 0])), md_escape(r.texts[0])))
st.caption(matrix_caption(r, layer, head, hide))

c1, c2 = st.columns(2)
csv_name = matrix_file_name(run.key, layer, head, source == MATRIX_CAPTURED, hide)
downloads.download(c1, "Download this matrix (CSV)", v.to_csv, file_name=csv_name, mime="text/csv")
downloads.download_run(c2, run)
# The heatmap as drawn (this window; projector-sized when projector mode is on), for slides.
stem = f"{csv_name.removesuffix('.csv')}-{q_lo}-{q_hi}-{k_lo}-{k_hi}" + (
    "-projector" if state.classroom.projector else ""
)
spec = chart.to_dict()
spec = vega_for_projector(spec) if state.classroom.projector else spec
p1, p2 = st.columns(2)
for where, fmt, mime in ((p1, "png", "image/png"), (p2, "svg", "image/svg+xml")):
    downloads.download(
        where,
        f"Download this heatmap ({fmt.upper()})",
        lambda fmt=fmt: caches.chart_image(stem, fmt, spec),
        file_name=f"{stem}.{fmt}",
        mime=mime,
        prepare=True,
    )

if heads is not None and st.toggle(
    f"Show all {r.n_heads} heads of layer {layer}", key="matrix_head_grid"
):
    views = [view(h[q_lo:q_hi], query_pos[q_lo:q_hi], r.texts, hide, k_lo, k_hi) for h in heads]
    figures.chart(head_grid(views), width="content")
    st.caption(
        "Same rows and columns as above, one small heatmap per head, shared colour "
        "scale. Hover for tokens and values."
    )
chrome.page_source(__file__, aggregate)
