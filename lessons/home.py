"""Welcome: the app's contents, like a book's, with a line on what each page teaches."""

import streamlit as st

from app import widgets as w
from app.state import state

# Every page, in the order of the navigation, with what it teaches. The links take their
# titles and icons from main.py's st.navigation, so a renamed page is renamed here too.
CONTENTS = {
    "Write": (
        (
            "lessons/generate.py",
            "Type a prompt and watch the model continue it, one token at a time. "
            "The other pages all look inside this one run.",
        ),
        (
            "lessons/next_token.py",
            "At each step the model scores every token it knows. See those chances, and how "
            "greedy choice, temperature and top-k / top-p / min-p pick one.",
        ),
        (
            "lessons/step_by_step.py",
            "Add the next token yourself, or change one choice and see where the text goes.",
        ),
    ),
    "Attention": (
        (
            "lessons/attention_graph.py",
            "Lines from each new token back to the tokens it looked at, and how strongly.",
        ),
        (
            "lessons/matrices.py",
            "The same attention as heatmaps: every layer, every head, the exact numbers.",
        ),
    ),
    "Inside the model": (
        (
            "lessons/predictions.py",
            "How your text becomes tokens with ids, and what the model expected after each.",
        ),
        (
            "lessons/head_roles.py",
            "Heads take on jobs: looking at the previous token, the first one, or copying.",
        ),
        (
            "lessons/ablation.py",
            "Switch a head off and see what changes: a test of the job it was given.",
        ),
        (
            "lessons/lenses.py",
            "The model's guess after every layer, each token's attention fingerprint, and "
            "what its weights can do.",
        ),
        (
            "lessons/analogy.py",
            "Words as rows of numbers: king − man + woman, and which tokens lie closest.",
        ),
        (
            "lessons/atlas.py",
            "A map of many tokens, placed by the way they paid attention.",
        ),
    ),
    "Train your own": (
        (
            "lessons/train.py",
            "Train a tiny transformer on a few sentences and watch its loss fall.",
        ),
        (
            "lessons/train_use.py",
            "Ask the model you trained for its guesses, let it write, and save it.",
        ),
        (
            "lessons/induction.py",
            "A two-layer model learns to copy, and its induction heads appear all at once.",
        ),
    ),
}

w.page_intro(
    "Token Attention Visualizer",
    "This app opens up a small, real language model while it writes, and shows you what "
    "happens inside at every step. Read it like a book: each page teaches one idea and "
    "builds on the pages before it.",
)
st.markdown(
    "1. **Write a prompt** on Generate. The model continues it, and every page keeps that "
    "same run until you make a new one.\n"
    "2. **Go through the pages in order**, or jump to any of them from the menu on the left.\n"
    "3. **Look underneath**: hover the small question mark beside a control for help, and open "
    "*Source* at the end of a page to read the code that drew it."
)
if state.run is None:
    st.info("Nothing generated yet: the first lesson starts with your own prompt.")
    st.page_link("lessons/generate.py", label="Start: write a prompt", icon=":material/edit:")
else:
    r = state.run.result
    st.success(
        f"You have a run: {r.prompt_len:,} prompt tokens and {r.n_steps:,} generated. "
        "Every page below shows it.",
        icon=":material/check_circle:",
    )

for part, pages in CONTENTS.items():
    st.subheader(part, divider="gray")
    for page, lesson in pages:
        st.page_link(page, icon=":material/arrow_forward:")  # the title comes from main.py
        st.caption(lesson)
w.page_source(__file__)
