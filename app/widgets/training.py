"""The training lab's loop (train while the page redraws, stoppable at any moment), and
the button that opens the trained model in the lessons."""

from __future__ import annotations

import time
from collections.abc import Callable

import streamlit as st

from app import caches
from app.markdown import md_escape
from app.runs import run_generation
from app.state import state
from lib.model.request import RunRequest
from lib.model.result import RunSettings
from lib.train.io import LabModel


def train_live(trainer, total: int, unit: str, keep: Callable[[], None], draw: Callable[[], None]):
    """Train until `trainer.done`, redrawing a few times a second; stoppable.

    `keep` stores what is trained so far in the session before every redraw, so the Stop
    button (any click reruns the page, which ends this loop at its next redraw) loses
    nothing: the page then shows the run as far as it got.
    """
    stop = st.empty()
    stop.button("Stop", icon=":material/stop_circle:", help="Keep what is trained so far.")
    bar = st.progress(0.0, text=f"Training: 0 of {total:,} {unit}s")
    last = 0.0
    while not trainer.done:
        trainer.step()
        now = time.monotonic()
        if now - last > 0.3 or trainer.done:
            last = now
            keep()
            draw()
            bar.progress(
                trainer.progress / total,
                text=f"Training: {trainer.progress:,} of {total:,} {unit}s",
            )
    bar.empty()
    stop.empty()


def open_in_lessons(lab: LabModel) -> None:
    """One click: the trained model becomes the model every lesson reads, with a run of its
    own, and the attention graph opens on it."""
    from lib.train.as_lm import lab_lm, sample_request

    if not st.button(
        "Open it in the lessons",
        icon=":material/open_in_new:",
        help="The attention graph, the matrices, head roles, the logit lens and ablation then "
        "show this model and a run it writes. The sidebar takes you back to the bundled model.",
    ):
        return
    lm = lab_lm(lab)
    caches.open_lab_model(lm)
    prompt, tokens = sample_request(lab)
    error = run_generation(lm, RunRequest(lm.spec, prompt, RunSettings(max_new_tokens=tokens)))
    if error:  # the model in use stays the one before
        st.error(md_escape(error), icon=":material/error:")
        return
    state.model_spec = lm.spec
    st.switch_page("lessons/attention_graph.py")
