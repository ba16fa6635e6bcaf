"""Induction heads: watch a 2-layer attention-only transformer learn to copy, suddenly."""

import numpy as np
import streamlit as st

from app.markdown import md_escape
from app.state import bound, state
from app.widgets import chrome, downloads, figures, pool, training
from lib.train import io
from lib.train.induction import InductionConfig, InductionTrainer, random_repeats
from lib.train.training import ConfigError
from lib.viz.text import induction_story
from lib.viz.training import head_scores_chart, history_csv, induction_chart

B = InductionConfig.BOUNDS

chrome.page_intro(
    "Induction heads",
    "Language models copy from their context: after “A B … A” they expect “B”. Train a "
    "tiny attention-only transformer on repeated random tokens and watch the two heads "
    "that do it appear, all at once.",
)

st.header("1. The task", divider="gray")
example = random_repeats(np.random.default_rng(7), 1, 8, 50)[0]
st.code(" ".join(map(str, example[:8])) + "  |  " + " ".join(map(str, example[8:])), language=None)
st.caption(
    "Every training sequence is random tokens (numbers here) and then the same tokens "
    "again. The first half cannot be predicted. The second half can, by looking back: find "
    "the earlier copy of the current token and read the one after it. One head cannot do "
    "that alone: a head in layer 0 prepares the ground (a previous-token head, or a "
    "duplicate-token head) and an induction head in layer 1 does the copying."
)

st.header("2. Train", divider="gray")
c1, c2 = st.columns(2)
c1.number_input("Training steps", *B["steps"], step=100, **bound("ind_steps"))
c2.number_input("Seed", *B["seed"], **bound("ind_seed"))
with st.expander("More settings"):
    m = st.columns(6)
    m[0].number_input("Vocabulary", *B["vocab_size"], **bound("ind_vocab"))
    m[1].number_input("Tokens per half", *B["half"], **bound("ind_half"))
    m[2].number_input("Heads", *B["n_heads"], **bound("ind_heads"))
    m[3].number_input("Width", *B["d_model"], step=8, **bound("ind_width"))
    m[4].number_input("Learning rate", *B["learning_rate"], format="%.4f", **bound("ind_lr"))
    m[5].number_input("Batch", *B["batch"], **bound("ind_batch"))
cfg = InductionConfig(
    vocab_size=int(state.ind.vocab),
    half=int(state.ind.half),
    d_model=int(state.ind.width),
    n_heads=int(state.ind.heads),
    batch=int(state.ind.batch),
    steps=int(state.ind.steps),
    learning_rate=float(state.ind.lr),
    seed=int(state.ind.seed),
)
chart = st.empty()
if st.button("Train", type="primary", icon=":material/model_training:"):
    try:
        trainer = InductionTrainer(cfg)
    except ConfigError as err:
        st.error(md_escape(err), icon=":material/error:")
        st.stop()

    def keep() -> None:
        state.ind.lab = io.LabModel("induction", trainer.model, cfg, trainer.history())

    def draw() -> None:
        figures.chart(induction_chart(trainer.history()), width="content", where=chart)

    training.train_live(trainer, cfg.steps, "step", keep, draw)

lab = state.ind.lab
if lab is None:
    st.info(
        "Press Train: with the default settings the heads form about 5 seconds in, and "
        "training ends after about 15."
    )
    st.stop()
h = lab.history
phase = h.phase_change()
figures.chart(
    induction_chart(h, None if phase is None else int(h.steps[phase])), width="content", where=chart
)
if h.stopped_early:
    st.caption(f"Stopped at step {int(h.steps[-1]):,} of {lab.config.steps:,}.")
st.caption(induction_story(h))

st.header("3. The heads, at any step", divider="gray")
e = st.select_slider(
    "After step",
    options=list(range(len(h.steps))),
    value=len(h.steps) - 1,
    format_func=lambda i: f"{h.steps[i]:,}",
    key="ind_eval",
)
for col, role, title in zip(
    st.columns(3),
    ("previous_token", "duplicate_token", "induction"),
    ("Previous-token score", "Duplicate-token score", "Induction score"),
    strict=True,
):
    figures.chart(head_scores_chart(h.role(role)[e], title), width="content", where=col)
st.caption(
    "The same scores the Head roles page gives the real model's 270 heads (lib/analysis/"
    "head_roles.py), measured on 16 held-out repeated sequences."
)
st.page_link(
    "lessons/head_roles.py",
    label="Compare: the induction heads of SmolLM2",
    icon=":material/psychology:",
)
training.open_in_lessons(lab)  # its own induction head on Head roles, switched off on Ablate
d1, d2 = st.columns(2)
downloads.download(
    d1,
    "Download the model (safetensors)",
    lambda: io.to_bytes(lab),
    file_name="induction-lab.safetensors",
    mime="application/octet-stream",
)
curves = {
    "step": h.steps,
    "loss_first_half": h.loss_first,
    "loss_second_half": h.loss_second,
    "icl_score": h.icl_score,
    "best_induction": h.induction.reshape(len(h.steps), -1).max(axis=1),
}
downloads.download(
    d2,
    "Download the curves (CSV)",
    lambda: history_csv(curves),
    file_name="induction-history.csv",
    mime="text/csv",
)

st.header("4. Add your run to the class", divider="gray")
st.caption(
    "On a class's server, everyone's runs go on one chart (The class's lab): pick a seed "
    "of your own above, train, and add the run."
)
pool.add_to_pool(lab)
chrome.page_source(__file__, random_repeats, InductionTrainer.step)
