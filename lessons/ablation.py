"""Ablate a head: switch attention heads off, replay a step and the induction probe."""

import numpy as np
import streamlit as st

from app import caches
from app.markdown import md_escape
from app.state import bound, state
from app.widgets import chrome, controls, figures, model
from lib.analysis import ablation as ab
from lib.viz import ablation as ch

chrome.page_intro(
    "Ablate a head",
    "A role given to a head is a claim; switching the head off tests it. Zero one or more "
    "heads, replay a step of your run and the repeated random tokens, and see what changes.",
)
run = chrome.need_run()
r = run.result
lm = model.need_model(run, "Ablating heads")
text = caches.token_texts(lm.spec, lm)
roles = caches.probe_roles(lm.spec, False, lm)  # the Head roles page's probe: default, scores
induction = roles.score("induction")

options = [(layer, head) for layer in range(lm.n_layers) for head in range(lm.n_heads)]
view = state.view
handed = (view.layer, view.head)  # typed values, e.g. from a click on the Head roles grid
if handed != state.ab.seen:  # first visit, or another head picked elsewhere since
    if handed in options:
        state.ab.heads = [handed]
    elif state.ab.seen is None and not state.ab.heads:  # start at the top induction head
        best = np.unravel_index(int(np.nanargmax(induction)), induction.shape)
        state.ab.heads = [(int(best[0]), int(best[1]))]
    state.ab.seen = handed
state.ab.heads = [h for h in state.ab.heads if h in options]  # another model may be smaller
picked = st.multiselect(
    "Heads to switch off",
    options,
    format_func=ch.head_label,
    **bound("ab_heads"),
    placeholder="Type a head, e.g. L18 H6",
    help="Layer and head, 0-based, as on the Head roles grid. Start with the head that "
    "page handed over (or the strongest induction head), then add or remove heads.",
)
t = controls.step_slider("step", r.n_steps, "Which generated token to replay.")
if not picked:
    st.info("Pick at least one head to switch off.")
    st.stop()
heads = tuple(sorted((int(a), int(b)) for a, b in picked))
scores = ", ".join(f"{ch.head_label(h)} {float(induction[h]):.2f}" for h in heads[:12])
more = f" (and {len(heads) - 12} more)" if len(heads) > 12 else ""
st.caption(
    f"Induction score on the probe (Head roles, raw attention; 1 = all attention on the "
    f"token that followed last time): {scores}{more}."
)

st.header("1. This step's next token", divider="gray")
ablated = caches.ablation_step(run.key, t, heads, lm, r)
st.text("…" + "".join(r.texts[: r.prompt_len + t][-12:]) + " ⟶ " + text(r.generated_ids[t]))
m1, m2, m3 = st.columns(3)
m1.metric(
    "The run's token, all heads on",
    f"{ablated.target_before:.3f}",
    help=f"Rank {ablated.target_rank_before}.",
)
m2.metric(
    "With the heads switched off",
    f"{ablated.target_after:.3f}",
    delta=f"{ablated.target_after - ablated.target_before:+.3f}",
    help=f"Rank {ablated.target_rank_after}.",
)
m3.metric(
    "KL divergence",
    f"{ablated.kl_bits:.3f} bits",
    help="How far the whole next-token distribution moved: 0 = not at all. KL(before || "
    "after), over every token of the vocabulary.",
)
figures.chart(ch.ablation_chart(ch.ablation_frame(ablated, text)), width="stretch")
st.caption(md_escape(ch.step_caption(ablated, t)))

st.header("2. The induction probe", divider="gray")
probe = caches.ablation_probe(lm.spec, heads, lm)
(f1, s1), (f2, s2) = probe.losses(False), probe.losses(True)
p1, p2, p3 = st.columns(3)
worse = {"delta_color": "inverse"}  # a higher loss is worse
p1.metric("Second repeat, all heads on", f"{s1:.2f} nats")
p2.metric("Second repeat, heads switched off", f"{s2:.2f} nats", delta=f"{s2 - s1:+.2f}", **worse)
p3.metric("First repeat, heads switched off", f"{f2:.2f} nats", delta=f"{f2 - f1:+.2f}", **worse)
st.caption(md_escape(ch.probe_caption(probe)))

st.caption(
    "Zero ablation: each chosen head's output (its slice of the input to the layer's output "
    "projection) is set to zero, which removes exactly what that head adds to the residual "
    "stream; every other head and layer runs as usual. Section 1 is one forward pass over the "
    "run's tokens up to this step, with the heads off, beside the same pass with all heads on "
    "(the run's own numbers came from generation with a key-value cache and may differ in the "
    "last digits). The switch acts only on this page's own forward passes: the model is not "
    "changed for any other page or user."
)
chrome.show_source(
    "the ablation (lib/analysis/ablation.py)", ab.zero_heads, ab.ablate, ab.probe_ablation
)
chrome.page_source(__file__)
