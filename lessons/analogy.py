"""Vector arithmetic: word analogies on the model's input embeddings."""

import streamlit as st

from app import caches
from app.markdown import md_escape
from app.state import bound, state
from app.widgets import chrome, figures, model
from lib.analysis import analogy as an
from lib.viz import analogy as va

PRESETS = (
    "king - man + woman",
    "Paris - France + Italy",
    "walked - walk + swim",
    "bigger - big + small",
    "Tokyo - Japan + Germany",
)

chrome.page_intro(
    "Vector arithmetic",
    "Before any layer runs, every token is one row of numbers: its input embedding. Add and "
    "subtract words' rows, as in king − man + woman, and see which tokens lie closest.",
)
lm = model.current_model()  # no run needed: only the embedding matrix is read
if lm is None:
    st.warning("Vector arithmetic needs a model: load one on the Generate page.")
    st.stop()


def use(equation: str) -> None:
    state.analogy.equation = equation


st.caption("Try one:")
with st.container(horizontal=True):  # the buttons wrap on a narrow screen
    for preset in PRESETS:
        st.button(preset.replace(" - ", " − "), on_click=use, args=(preset,))
st.text_input(
    "Equation",
    **bound("analogy_equation"),
    max_chars=an.MAX_EQUATION_CHARS,
    help=f"Words joined by + and − (or -), at most {an.MAX_TERMS} terms. A term may be "
    "several words (New York); a word cannot contain + or −.",
)
c1, c2, c3 = st.columns(3)
c1.slider("Nearest tokens shown", 5, an.MAX_K, **bound("analogy_k"))
c2.toggle(
    "Hide other spellings",
    **bound("analogy_variants"),
    help="Also exclude the input words without their leading space or in another case "
    "(king, King, KING for king), when such a spelling is one token: near-copies that "
    "otherwise crowd the top of the list.",
)
c3.toggle(
    "Hide special tokens",
    **bound("analogy_specials"),
    help="Control tokens such as `<|im_start|>` are never words.",
)

specials, variants = bool(state.analogy.specials), bool(state.analogy.variants)
try:
    equation = str(state.analogy.equation)
    result = caches.analogy(lm.spec, equation, int(state.analogy.k), specials, variants, lm)
except an.AnalogyInputError as err:
    st.info(md_escape(str(err)), icon=":material/info:")
    st.stop()

text = caches.token_texts(lm.spec, lm)
frame = va.neighbours_frame(result, text)
st.header(md_escape(va.equation_text(result)) + " ≈ ?", divider="gray")
st.markdown(
    f"Nearest token: **“{md_escape(frame['token'][0])}”**, cosine "
    f"{frame['cosine'][0]:.3f} (1 = the same direction, 0 = unrelated)."
)
figures.chart(va.neighbours_chart(frame), width="content")
st.caption(md_escape(va.analogy_caption(result, specials, variants)))

st.subheader("The tokens each word became")
st.dataframe(
    va.terms_frame(result, text),
    hide_index=True,
    width="stretch",
    column_config={"cosine with the sum": st.column_config.NumberColumn(format="%.3f")},
)
st.caption(
    "tokens: what each token writes (· is the leading space every word was given). pieces: "
    "the vocabulary entries (byte-level BPE writes that space as Ġ). A word of several "
    "tokens enters the sum as the mean of their embeddings. The last column is how close "
    "the sum stayed to each input: an answer near one input is often just its neighbour."
)
st.caption(
    f"Honest limits: these are the input embeddings of a {lm.n_params / 1e6:,.0f} M-parameter "
    "language model, trained to feed its layers, not word2vec vectors trained for "
    "analogies, so the arithmetic often fails, or lands on a relative of one input (type a "
    "single word to see its own neighbours). Nothing here runs the model's layers."
)
chrome.show_source("the arithmetic (lib/analysis/analogy.py)", an.solve, an.nearest)
chrome.page_source(__file__)
