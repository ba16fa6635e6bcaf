"""'Prove it': where a page makes a causal-sounding claim, a button that tests it by
intervening on the model, and says what it measured."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app import caches
from app.markdown import md_escape


def prove_induction(lm, scores: np.ndarray) -> None:
    """The top induction head claims to copy: switch it off on the probe (repeated random
    tokens) and show whether the second repeat's loss comes back up."""
    from lib.viz.ablation import probe_caption

    if not np.isfinite(scores).any():  # a text that repeats nothing scores no head
        st.caption("No head has an induction score on this text (it repeats nothing), so "
                   "there is no claim to test here: the probe has one.")  # fmt: skip
        return
    a, b = (int(x) for x in np.unravel_index(int(np.nanargmax(scores)), scores.shape))
    if not st.button(f"Prove it: switch layer {a} head {b} off", key="hr_prove",
                     icon=":material/science:"):  # fmt: skip
        st.caption(
            f"The grid calls layer {a} head {b} the strongest induction head. A score is a "
            "pattern in its attention; the button tests whether the model needs the head."
        )
        return
    pa = caches.ablation_probe(lm.spec, ((a, b),), lm)
    (_, before), (_, after) = pa.losses(False), pa.losses(True)
    c1, c2 = st.columns(2)
    c1.metric("Second repeat's loss, all heads on", f"{before:.2f} nats")
    c2.metric(
        f"With layer {a} head {b} off", f"{after:.2f} nats", delta=f"{after - before:+.2f}",
        delta_color="inverse",
    )  # fmt: skip
    st.caption(
        md_escape(probe_caption(pa))
        + " Measured: the probe's loss in one forward pass with the head's output zeroed, "
        "beside the same pass with every head on; nothing else is derived."
    )
