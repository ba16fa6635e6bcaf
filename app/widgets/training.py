"""The training lab's loop: train while the page redraws, stoppable at any moment."""

from __future__ import annotations

import time
from collections.abc import Callable

import streamlit as st


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
