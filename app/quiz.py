"""Quiz mode: guess before you see. A page asks one question before it reveals a view; the
answer and the running score follow. Per session, no accounts: the score lives in the
session state and ends with it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st

from app.markdown import md_escape
from app.state import state


def score_line() -> str:
    answers = state.classroom.quiz_answers.values()
    right = sum(1 for _, ok in answers if ok)
    return f"Your score: {right} of {len(answers)}."


def ask(
    topic: str,
    key: str,
    question: str,
    choices: Sequence,
    label: Callable[[object], str],
    is_right: Callable[[object], bool],
    answer: str,
) -> bool:
    """In quiz mode, the question before the view: True once the view may be revealed.

    One question at a time per `topic` (the graph, the next token, the heads): `key` names
    the view it would ask about (run, step, setting). An unanswered question follows the
    view; once it is answered the view stays revealed as the student moves on, and a new
    question comes when they ask for one. `label` shows a choice as plain text, `answer`
    says what was right, as plain text.
    """
    if not state.classroom.quiz:
        return True
    asked = state.classroom.quiz_asked
    answers = state.classroom.quiz_answers
    if asked.get(topic) not in answers:
        asked[topic] = key  # nothing answered yet: ask about what is on screen
    if asked[topic] not in answers:
        with st.form(f"quiz:{key}", border=True):
            st.markdown("**Guess first.** " + md_escape(question))
            guess = st.selectbox("Your guess", list(choices), index=None, format_func=label)
            if not st.form_submit_button("Check my guess", icon=":material/quiz:"):
                st.caption(
                    "Quiz mode is on: the view appears once you have guessed. " + score_line()
                )
                return False
            if guess is None:
                st.warning("Pick a guess first.")
                return False
        answers[key] = (guess, bool(is_right(guess)))
    if asked[topic] == key:
        guess, ok = answers[key]
        verdict = "Right!" if ok else "Not this time."
        text = f"{verdict} You guessed {label(guess)}; {answer} {score_line()}"
        (st.success if ok else st.info)(md_escape(text), icon=":material/quiz:")
    else:
        st.caption("You answered this page's last question. " + score_line())
    st.button(
        "Ask me a new question about this view",
        key=f"quiz_new:{topic}",
        on_click=asked.pop,
        args=(topic, None),
        disabled=key in answers,
        help="Already answered here? Move to another step or setting first.",
        icon=":material/quiz:",
    )
    return True
