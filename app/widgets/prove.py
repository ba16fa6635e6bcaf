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


def prove_lines(run, step) -> None:
    """The graph draws where the query looked: hide its strongest keys from it, in every
    layer and head, and read the written token's probability again, beside controls."""
    r, s = run.result, step.step
    lm = caches.loaded_model(r.model_spec)  # never loads one: the graph needs no model
    if lm is None:
        st.caption("Load the model that made this run (on Generate) to test these lines.")
        return
    c1, c2 = st.columns([2, 3], vertical_alignment="bottom")
    k = c1.select_slider("Lines to test", options=[1, 2, 3, 4, 5], value=3, key="graph_prove_k")
    if not c2.button(f"Prove it: hide the {k} strongest lines' tokens", key="graph_prove",
                     icon=":material/science:"):  # fmt: skip
        st.caption(
            "The lines say where this token's query looked. The button tests whether the "
            "model needed those tokens to write it."
        )
        return
    from lib.analysis.knockout import strongest_keys  # torch: here only, not on import

    keys, candidates = strongest_keys(r, step, k)  # never the attention sink
    if not keys or len(keys) >= r.query_position(s) + 1:
        st.caption("This step has too few tokens before it to hide some and keep others.")
        return
    ko = caches.key_knockout(run.key, s, keys, candidates, lm, r)
    token = md_escape(r.generated_labels[s])
    m1, m2, m3 = st.columns(3)
    m1.metric(f"Probability of “{token}”, nothing hidden", f"{ko.before:.3f}")
    m2.metric(f"Its {len(keys)} strongest lines' tokens hidden", f"{ko.after:.3f}",
              delta=f"{ko.after - ko.before:+.3f}")  # fmt: skip
    if len(ko.controls):
        m3.metric(f"{len(keys)} other tokens hidden (median of {len(ko.controls)} draws)",
                  f"{float(np.median(ko.controls)):.3f}",
                  delta=f"{float(np.median(ko.controls)) - ko.before:+.3f}")  # fmt: skip
    names = ", ".join(f"“{md_escape(r.labels[p])}” ({p})" for p in ko.keys)
    spread = (f" The random draws gave {ko.controls.min():.3f} to {ko.controls.max():.3f}."
              if len(ko.controls) else " Too few other tokens for a random control.")  # fmt: skip
    st.caption(
        f"Hidden: {names}. Measured: the model's probability of this token (temperature 1) "
        "in one forward pass where the query that wrote it may not attend to those "
        "tokens, in any layer or head (the other weights renormalise), beside the same "
        "pass with nothing hidden and with as many randomly chosen other tokens hidden. "
        "Other positions still read the hidden tokens, so this tests the direct lines "
        "only. The first token, the attention sink, is never hidden: most heads park "
        "their weight there, and hiding it disturbs every head at once." + spread
    )


def prove_parts(run, lm, step: int) -> None:
    """The waterfall's tallest bars claim to have written the logit: remove each part's
    output at the query and read the logit again."""
    if not st.button("Prove it: remove the three largest parts", key="causes_prove",
                     icon=":material/science:"):  # fmt: skip
        st.caption(
            "A bar is derived: what a part wrote, read straight through the frozen final "
            "norm. The button removes the three largest parts from the model, one at a "
            "time, and measures the logit."
        )
        return
    pc = caches.part_check(run.key, step, lm, run.result)
    cols = st.columns(len(pc.names))
    for col, name, direct, without in zip(cols, pc.names, pc.direct, pc.without, strict=True):
        col.metric(f"Without {name} (its bar {direct:+.2f})", f"{without:.2f}",
                   delta=f"{without - pc.logit:+.2f}", delta_color="off")  # fmt: skip
    st.caption(
        f"The logit with every part in place: {pc.logit:.2f}. Measured: the logit in one "
        "forward pass per part, with that part's output set to zero at this position. "
        "Unlike the bar, this counts what the later layers did with what the part wrote, "
        "and the final norm's scale is free to change. Where the two disagree (a tall "
        "bar whose removal moves the logit little, or even raises it), later parts or "
        "the norm's new scale made up for the part."
    )
