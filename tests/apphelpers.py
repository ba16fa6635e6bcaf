"""Helpers for AppTest-based tests."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

FAILURE_TEXT = "Something went wrong while drawing this page"
# Every page of main.py's navigation, the Generate page last (where the tests type).
ALL_PAGES = (
    "lessons/home.py",
    "lessons/next_token.py",
    "lessons/step_by_step.py",
    "lessons/attention_graph.py",
    "lessons/matrices.py",
    "lessons/predictions.py",
    "lessons/head_roles.py",
    "lessons/ablation.py",
    "lessons/lenses.py",
    "lessons/atlas.py",
    "lessons/analogy.py",
    "lessons/generate.py",
)


def assert_ok(at: AppTest) -> None:
    """No exception escaped, and main.py's last-line-of-defence message is not showing."""
    assert not at.exception, at.exception
    failures = [e.value for e in at.error if FAILURE_TEXT in str(e.value)]
    assert not failures, "a page failed; see the log for its traceback"


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)
