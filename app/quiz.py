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
    key: str,
    question: str,
    choices: Sequence,
    label: Callable[[object], str],
    is_right: Callable[[object], bool],
    answer: str,
) -> bool:
    """In quiz mode, the question before the view: True once the view may be revealed.

    `key` names the question (one per run, step and setting: answered once, kept), `label`
    shows a choice as plain text, `answer` says what was right, as plain text.
    """
    if not state.classroom.quiz:
        return True
    if key not in state.classroom.quiz_answers:
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
        state.classroom.quiz_answers[key] = (guess, bool(is_right(guess)))
    guess, ok = state.classroom.quiz_answers[key]
    verdict = "Right!" if ok else "Not this time."
    text = f"{verdict} You guessed {label(guess)}; {answer} {score_line()}"
    (st.success if ok else st.info)(md_escape(text), icon=":material/quiz:")
    return True
