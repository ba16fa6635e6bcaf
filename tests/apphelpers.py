"""Helpers for AppTest-based tests."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from app.lessons import LAB, LESSONS

FAILURE_TEXT = "Something went wrong while drawing this page"
# Every page that shows the current run (the training lab's pages train their own model),
# Generate last: the tests type there.
ALL_PAGES = tuple(
    sorted(
        (x.path for x in LESSONS if x.part != LAB), key=lambda path: path == "lessons/generate.py"
    )
)


def assert_ok(at: AppTest) -> None:
    """No exception escaped, and main.py's last-line-of-defence message is not showing."""
    assert not at.exception, at.exception
    failures = [e.value for e in at.error if FAILURE_TEXT in str(e.value)]
    assert not failures, "a page failed; see the log for its traceback"


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)
