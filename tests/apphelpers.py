"""Helpers for AppTest-based tests."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

FAILURE_TEXT = "Something went wrong while drawing this page"
# Every page of main.py's navigation, the Generate page last (where the tests type).
ALL_PAGES = (
    "pages/home.py",
    "pages/next_token.py",
    "pages/step_by_step.py",
    "pages/attention_graph.py",
    "pages/matrices.py",
    "pages/predictions.py",
    "pages/head_roles.py",
    "pages/ablation.py",
    "pages/lenses.py",
    "pages/atlas.py",
    "pages/analogy.py",
    "pages/generate.py",
)


def assert_ok(at: AppTest) -> None:
    """No exception escaped, and main.py's last-line-of-defence message is not showing."""
    assert not at.exception, at.exception
    failures = [e.value for e in at.error if FAILURE_TEXT in str(e.value)]
    assert not failures, "a page failed; see the log for its traceback"


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)
