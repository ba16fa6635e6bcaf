"""Tokens & predictions: how the text splits into tokens, and what the model expected at each."""

import pandas as pd
import streamlit as st

from app import caches
from app.markdown import md_escape
from app.state import bound, state
from app.token_view import show_token_chips
from app.widgets import chrome, controls, figures, model
from lib import labels
from lib.analysis import next_token as nt
from lib.viz import next_token as ch
from lib.viz import sequence as seq
from lib.viz.tables import tokenizer_table

MAX_AXIS = 120  # heatmap columns drawn at once

chrome.page_intro(
    "Tokens & predictions",
    "The model never sees letters, only tokens from a fixed vocabulary. Here is how this "
    "run's text was split, and what the model predicted after every one of its tokens.",
)
run = chrome.need_run()
r = run.result
lm = model.need_model(run, "Splitting and predicting")
split = caches.token_split(run.key, lm, r.token_ids)

st.header("1. The tokens", divider="gray")
m1, m2, m3 = st.columns(3)
m1.metric("Vocabulary size", f"{labels.vocabulary_size(lm.tokenizer):,}")
m2.metric("Prompt tokens", f"{r.prompt_len:,}")
m3.metric("Generated tokens", f"{r.n_steps:,}")
show_token_chips(split, r.prompt_len)
if r.settings.chat_template:
    st.caption("The chat template is on: the prompt you typed was sent to the model as")
    st.code(lm.tokenizer.decode(r.token_ids[: r.prompt_len].tolist()), language=None)
    with st.expander("The chat template (Jinja)"):
        st.code(str(lm.tokenizer.chat_template), language="jinja2")
else:
    bos = ", after a beginning-of-sequence token the tokenizer added" if r.bos_offset else ""
    st.caption(f"The chat template is off: the prompt is split as typed{bos}.")
st.text(" | ".join(split.texts[: r.prompt_len]))
st.dataframe(tokenizer_table(split, r.prompt_len), hide_index=True, width="stretch", height=320)
if note := caches.split_characters(run.key, lm, r.token_ids):
    st.caption(md_escape(note))  # token text: never read as Markdown
st.caption(
    "piece: the vocabulary entry (byte-level BPE writes a leading space as Ġ and a "
    "newline as Ċ). text: what the token writes, with · for a space, ↵ for a newline and "
    "→ for a tab. special: a control token, not text."
)
st.dataframe(pd.DataFrame(labels.special_tokens(lm.tokenizer)), hide_index=True)
chrome.show_source("the token table (lib/labels.py)", labels.split_tokens, labels.display_text)

st.header("2. The prediction after every token", divider="gray")
lens = caches.sequence_lens(run.key, lm, r.token_ids)
T = len(r.token_ids)
st.toggle(
    "Per-position normalisation",
    **bound("nt_norm"),
    help="Divide each column by its top probability, so the shape of every "
    "distribution is visible even where the model is unsure.",
)
lo, hi = controls.window_slider("Positions shown", T, MAX_AXIS, "nt_window")
text = caches.token_texts(lm.spec, lm)
frame = ch.heatmap_frame(lens, split.texts, text, lo, hi, bool(state.nt.norm))
figures.chart(ch.heatmap_chart(frame, bool(state.nt.norm)), width="content")
st.caption(
    "Each column is one position of the run (prompt and generated); its cells are the "
    "model's 10 most likely next tokens there, best on top. A coral dot marks the token "
    "that actually came next (no dot: it was not in the top 10). Hover a cell for the "
    "predicted token and the rank of the actual next token. The actual next token was the "
    f"model's first choice at {int((lens.next_rank == 1).sum())} of {T - 1} positions."
)
chrome.show_source("the predictions at every position", nt.sequence_lens)

st.header("3. Point at a token", divider="gray")
strip = seq.strip_frame(r, lens, text).iloc[lo : min(hi, T - 1)]
chart_key = f"seq_strip_{run.key}"
picked = seq.picked_position(st.session_state.get(chart_key), T - 1)
figures.chart(seq.strip_chart(strip), on_select="rerun", key=chart_key, width="content")
st.caption(
    "Each chip is a token of the run (paler: the prompt), in reading order, coloured by the "
    "probability the model gave the token that came after it. Hover a chip for the model's "
    "top guesses there; click it for all of them."
)
if picked is None:
    st.info("Click a token above to see everything the model expected after it.")
else:
    _, _, source = seq.candidates_at(r, lens, picked)
    rank = int(lens.next_rank[picked])
    st.markdown(
        f"After **{md_escape(r.texts[picked])}** (position {picked}) the model expected "
        f"these, {source}. The token that came next, "
        f"**{md_escape(r.texts[picked + 1])}**, was "
        + ("its first choice" if rank == 1 else f"its choice number {rank:,}")
        + f" (probability {float(lens.next_prob[picked]):.4f})."
    )
    figures.chart(ch.candidates_chart(seq.position_frame(r, lens, picked, text)), width="stretch")
    st.caption("Coral: the token that actually came next; ranks are over the whole vocabulary.")
chrome.page_source(__file__)
