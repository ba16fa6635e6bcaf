"""Helpers for AppTest-based tests."""

from __future__ import annotations

import numpy as np
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


def set_graph_step(at: AppTest, step: int) -> AppTest:
    """Move the attention graph's step player to `step` (1-based). In a browser it reports
    the resting step as a trigger whose callback writes the shared value "step"; AppTest
    cannot drive the component, so the test writes that value and reruns."""
    at.session_state["step"] = step
    return at.run()


def graph_steps(at: AppTest) -> tuple[int, int]:
    """(the step the graph page shows, its number of steps), read from its caption
    ("Step k of n: ...")."""
    import re

    for m in at.markdown:
        if found := re.match(r"\*\*Step (\d+) of (\d+):\*\*", str(m.value)):
            return int(found.group(1)), int(found.group(2))
    raise AssertionError("the graph page shows no step caption")


def graph_step(at: AppTest) -> int:
    """The step the graph page shows."""
    return graph_steps(at)[0]


def plotly_array(value) -> np.ndarray:
    """A Plotly array as numpy: plain lists, or the binary form Plotly 6 writes
    ({"dtype": "f8", "bdata": base64, "shape": "30, 14"})."""
    import base64

    if isinstance(value, dict) and "bdata" in value:
        out = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return out.reshape([int(x) for x in str(shape).split(",")]) if shape else out
    return np.asarray(value, dtype=float)
