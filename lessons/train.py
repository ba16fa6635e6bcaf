"""Train a transformer: a tiny model learns eight sentences while you watch."""

import streamlit as st

from app.markdown import md_escape
from app.state import bound, state
from app.widgets import chrome, figures, training
from lib.train import data as td
from lib.train.io import LabModel
from lib.train.training import ConfigError, TrainConfig, Trainer
from lib.viz.training import attention_heatmaps, loss_chart

chrome.page_intro(
    "Train a transformer",
    "A transformer small enough to train in a second learns a handful of sentences, "
    "predicting each next word. Watch its loss fall and its attention heads find their jobs.",
)

st.header("1. The sentences", divider="gray")
st.text_area("One sentence a line", **bound("train_text"), height=200)
try:
    dataset = td.build_dataset(state.train.text)
except td.DataError as err:
    st.error(md_escape(err), icon=":material/error:")
    st.stop()
floor = td.ambiguity_floor(dataset.sentences)
st.caption(
    f"{len(dataset.sentences)} sentences, {len(dataset.vocab) - 3} different words (plus "
    "<PAD>, <START>, <END>): "
    + md_escape(" · ".join(dataset.vocab.itos[3:60]))
    + f". Even a perfect model cannot go below {floor:.3f} nats per word here: where "
    "the same words go on in different ways, it must spread its bet (dashed line below)."
)

st.header("2. Train", divider="gray")
c = st.columns(6)
c[0].number_input("Epochs", *TrainConfig.BOUNDS["epochs"], **bound("train_epochs"))
c[1].number_input(
    "Learning rate", *TrainConfig.BOUNDS["learning_rate"], format="%.4f", **bound("train_lr")
)
c[2].number_input("Layers", *TrainConfig.BOUNDS["n_layers"], **bound("train_layers"))
c[3].number_input("Heads", *TrainConfig.BOUNDS["n_heads"], **bound("train_heads"))
c[4].number_input("Width", *TrainConfig.BOUNDS["d_model"], step=8, **bound("train_width"))
c[5].number_input("Seed", *TrainConfig.BOUNDS["seed"], **bound("train_seed"))
cfg = TrainConfig(
    int(state.train.epochs),
    float(state.train.lr),
    int(state.train.width),
    int(state.train.heads),
    int(state.train.layers),
    int(state.train.seed),
)
chart = st.empty()
if st.button("Train", type="primary", icon=":material/model_training:"):
    try:
        trainer = Trainer(dataset, cfg)
    except ConfigError as err:
        st.error(md_escape(err), icon=":material/error:")
        st.stop()

    def keep() -> None:
        state.train.lab = LabModel(
            "sentences", trainer.model, cfg, trainer.history(), dataset.vocab, dataset.sentences
        )

    def draw() -> None:
        figures.chart(loss_chart(trainer.history().losses, floor), width="stretch", where=chart)

    training.train_live(trainer, cfg.epochs, "epoch", keep, draw)

lab = state.train.lab
if lab is None or lab.lab != "sentences":
    st.info("Press Train, or load a trained model on the next page.")
    st.stop()
h = lab.history
lab_floor = td.ambiguity_floor(lab.sentences)
figures.chart(loss_chart(h.losses, lab_floor), width="stretch", where=chart)
st.caption(
    f"Trained {len(h.losses)} epochs"
    + (" (stopped early)" if h.stopped_early else "")
    + f": the loss went from {h.losses[0]:.3f} to {h.losses[-1]:.3f} nats per word "
    f"(the dashed line: {lab_floor:.3f}, the floor for these sentences)."
)

st.header("3. Watch attention form", divider="gray")
a, b, c3 = st.columns([3, 3, 2])
k = a.select_slider(
    "After epoch",
    options=list(range(len(h.snapshot_epochs))),
    value=len(h.snapshot_epochs) - 1,
    format_func=lambda i: str(h.snapshot_epochs[i]),
    key="train_snapshot",
)
shown = lab.sentences[: h.attention.shape[2]]
state.train.sentence = min(state.train.sentence, len(shown) - 1)
b.selectbox(
    "Sentence",
    range(len(shown)),
    format_func=lambda i: " ".join(shown[i]),
    **bound("train_sentence"),
)
state.train.layer = min(state.train.layer, h.attention.shape[1] - 1)
c3.selectbox("Layer", range(h.attention.shape[1]), **bound("train_layer"))
s = int(state.train.sentence)
words = [td.START, *shown[s]]
heads = h.attention[k, int(state.train.layer), s]
figures.chart(attention_heatmaps(heads, words), width="content")
st.caption(
    "Each square is one head of the chosen layer (and the last, the average of the heads): "
    "row = the word reading, column = the word it looks at, darker = more attention; each "
    "row sums to 1. Grey × cells are the future, hidden by the causal mask. Slide the epoch "
    "to watch the patterns form."
)
st.page_link(
    "lessons/train_use.py",
    label="Ask the trained model: predictions, writing, saving",
    icon=":material/arrow_forward:",
)
training.open_in_lessons(lab)
chrome.page_source(__file__, Trainer.step)
