"""Welcome: the app's contents, like a book's, with a line on what each page teaches."""

import streamlit as st

from app import lessons
from app.state import state
from app.widgets import chrome
from lib.labels import NUMBERING

chrome.page_intro(
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
st.caption(NUMBERING)
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

for part, members in lessons.parts().items():
    listed = [lesson for lesson in members if lesson is not lessons.HOME]  # not this page
    if not listed:
        continue
    st.subheader(part, divider="gray")
    for lesson in listed:
        st.page_link(lesson.path, icon=":material/arrow_forward:")  # titled by the navigation
        st.caption(lesson.blurb)
chrome.page_source(__file__)
