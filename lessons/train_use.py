"""Use the trained model: its guesses after every prefix, its own writing, save and load."""

import numpy as np
import streamlit as st

from app.markdown import md_escape
from app.state import bound, state
from app.widgets import chrome, downloads, training
from lib.train import io
from lib.train.data import DataError, make_dataset
from lib.train.training import generate_words, predictions
from lib.viz.training import history_csv, predictions_table

chrome.page_intro(
    "Use the trained model",
    "Ask the model you trained what it expects after every beginning of every sentence, "
    "let it write on its own, and save it to look at again later.",
)

st.header("1. Load a saved model", divider="gray")
upload = st.file_uploader(
    "A model saved from this lab (.safetensors)",
    type=["safetensors"],
    key="train_upload",
    help="Saved with the download button below, or by `python -m lib.train --save`.",
)
if upload is not None and st.session_state.get("train_loaded") != upload.file_id:
    try:
        loaded = io.from_bytes(upload.getvalue())
    except io.LabFileError as err:
        st.error(md_escape(err), icon=":material/error:")
    else:
        st.session_state["train_loaded"] = upload.file_id
        if loaded.lab == "induction":
            state.ind.lab = loaded
            st.success("An induction-lab model: it is on the Induction heads page now.")
        else:
            state.train.lab = loaded
            st.success("Loaded: the model, its settings and its whole training history.")

lab = state.train.lab
if lab is None:
    st.info("Train a model on the Train a transformer page first, or load one above.")
    st.page_link("lessons/train.py", label="Train a transformer", icon=":material/model_training:")
    st.stop()
dataset_words = {w_ for s in lab.sentences for w_ in s}
training.open_in_lessons(lab)

st.header("2. What comes next?", divider="gray")
table = predictions_table(predictions(lab.model, make_dataset(lab.sentences, lab.vocab)))
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    height=320,
    column_config={"p(actual)": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0)},
)
right = int(table["right"].sum())
st.caption(
    f"After every beginning of every sentence: the model's three best guesses with their "
    f"probabilities. Its first guess is the actual next word at {right} of {len(table)} "
    "places; where the sentences themselves go on in different ways, no model can always "
    "be right, and a good one splits its probability between the possible words."
)

st.header("3. Let it write", divider="gray")
c1, c2, c3 = st.columns([3, 2, 1])
c1.text_input("Start with", **bound("use_start"), help="Words the model knows: see below.")
c2.slider(
    "Temperature (0 = always the most likely word)", 0.0, 2.0, step=0.1, **bound("use_temperature")
)
c3.number_input("Seed", 0, 2**31 - 1, **bound("use_seed"))
try:
    out = generate_words(
        lab.model, lab.vocab, state.use.start, 20, float(state.use.temperature), int(state.use.seed)
    )
except DataError as err:
    st.warning(md_escape(err) + " Known words: " + md_escape(", ".join(sorted(dataset_words))))
else:
    st.code(" ".join(out.words), language=None, wrap_lines=True)
    st.caption(
        md_escape(
            "Probability of each word it wrote: "
            + ", ".join(
                f"{x} {p:.2f}" for x, p in zip(out.words[-len(out.probs) :], out.probs, strict=True)
            )
        )
        if out.probs
        else "It ended the sentence at once."
    )

st.header("4. Take it home", divider="gray")
d1, d2 = st.columns(2)
downloads.download(
    d1,
    "Download the model (safetensors)",
    lambda: io.to_bytes(lab),
    file_name="trained-transformer.safetensors",
    mime="application/octet-stream",
    help="Weights, settings, vocabulary and the whole training history in one file.",
)
downloads.download(
    d2,
    "Download the loss curve (CSV)",
    lambda: history_csv(
        {"epoch": np.arange(1, len(lab.history.losses) + 1), "loss": lab.history.losses}
    ),
    file_name="loss-history.csv",
    mime="text/csv",
)
chrome.page_source(__file__, predictions, generate_words)
