"""Head roles: a layers x heads grid scoring what each head does; click a head to open it."""

import numpy as np
import streamlit as st

from app import caches, quiz
from app.state import PROBE, bound, state
from app.widgets import chrome, controls, figures, model
from app.widgets.prove import prove_induction
from lib.analysis.head_roles import mask_score, role_masks
from lib.analysis.quiz import top_heads
from lib.analysis.weights import has_ov_weights
from lib.config import MATRIX_WHOLE
from lib.viz.head_roles import (
    COPYING,
    SCORE_TITLES,
    SPREAD,
    copying_roles_caption,
    grid_chart,
    grid_frame,
    picked_head,
    score_options,
    strongest_heads,
)
from lib.viz.text import roles_caption, spread_caption

TEXT = "This run's text"

chrome.page_intro(
    "Head roles",
    "Each attention head tends to do one job. This grid scores every head (rows: layers, "
    "columns: heads) for four well-known attention jobs, or for copying as read from its "
    "weights; click a head to open its attention pattern.",
)
run = chrome.need_run()
lm = model.need_model(run, "Scoring heads")
c1, c2 = st.columns([3, 2])
probe = c1.radio(
    "Measured on",
    [PROBE, TEXT],
    **bound("hr_probe"),
    horizontal=True,
    help=f"The probe is {caches.PROBE_LEN} random tokens shown twice, as in the induction-head "
    "papers: the second time, a head that looks up what came next last time can predict "
    "every token. Your own text shows what the heads do on it.",
)
options = score_options(with_copying=has_ov_weights(lm))
state.hr.role = state.hr.role if state.hr.role in options else "induction"
role = c2.selectbox("Score", options, format_func=SCORE_TITLES.get, **bound("hr_role"))
hide = controls.sink_toggle(
    help="Drop the first token from every head's attention rows and renormalise before "
    "scoring (TransformerLens's exclude_bos). The sink share itself is always the raw share."
)
if probe == PROBE:
    roles = caches.probe_roles(lm.spec, hide, lm)
else:
    roles = caches.text_roles(run.key, hide, lm, run.result.token_ids)
# Copying is read from the weights (one per model), the other scores from attention.
cp = caches.copying(lm.spec, lm) if COPYING in options else None

if role == "induction":
    best = top_heads(roles.score("induction"))
    named = ", ".join(
        f"layer {a} head {b} ({float(roles.score('induction')[a, b]):.2f})" for a, b in best
    )
    where = "the probe" if probe == PROBE else "your text"
    if not quiz.ask(
        "induction",
        f"{lm.spec}:{run.key if probe == TEXT else 'probe'}:{hide}:induction",
        f"Which head is an induction head, measured on {where}? A guess among the top "
        f"{len(best)} counts.",
        [(a, b) for a in range(roles.n_layers) for b in range(roles.n_heads)],
        lambda h: f"layer {h[0]}, head {h[1]}",
        lambda h: tuple(h) in best,
        f"the strongest induction heads here: {named}.",
    ):
        st.stop()
    prove_induction(lm, roles.score("induction"))  # the grid's top head, tested on the probe

chart_key = st.session_state["hr_grid_key"] = f"hr_grid_{state.hr.grid_nonce}"
picked = picked_head(st.session_state.get(chart_key), roles.n_layers, roles.n_heads)
if picked is not None:  # hand the head to the matrices page, as typed values
    state.view.layer, state.view.head = picked
    state.view.matrix_source = MATRIX_WHOLE
    state.hr.grid_nonce += 1  # coming back shows a fresh grid, not the same click again
    st.switch_page("lessons/matrices.py")
figures.chart(
    grid_chart(grid_frame(roles, role, None if cp is None else cp.score), role),
    on_select="rerun",
    key=chart_key,
    width="content",
)
if role == COPYING and cp is not None:
    st.caption(copying_roles_caption(cp))
elif role == SPREAD:
    st.caption(spread_caption(roles, hide))
elif np.isnan(roles.score(role)).all():
    st.info(
        "No token in this text qualifies for this score (it needs a token that occurred "
        "before). Try the repeated random tokens."
    )
else:
    st.caption(roles_caption(roles, role, hide))

if probe == PROBE and roles.n_random:
    first, second = roles.repeat_losses()
    st.subheader("In-context copying")
    m1, m2, m3 = st.columns(3)
    m1.metric("Loss, first time through", f"{first:.2f} nats")
    # A drop in loss is good news: green, not the red a falling number gets by default.
    m2.metric(
        "Loss, second time",
        f"{second:.2f} nats",
        delta=f"{second - first:.2f} nats",
        delta_color="inverse",
    )
    m3.metric("Best induction head", f"{float(np.nanmax(roles.score('induction'))):.3f}")
    st.caption(
        f"The probe is {caches.PROBE_LEN} random tokens, then the same {caches.PROBE_LEN} again. "
        "The first time the tokens are unpredictable; the second time the model can copy them "
        "from its context, and its loss (the surprise at each next token) drops. Induction "
        "heads do that copying: they attend from a token to the one that followed it before. "
        "To watch one on your own text, generate from a prompt that repeats a phrase, then "
        "click the head."
    )

with st.expander("Strongest heads for each role"):
    st.dataframe(
        strongest_heads(roles, copying=None if cp is None else cp.score),
        hide_index=True,
        width="stretch",
    )
    st.caption(
        "Previous token: attention to the token just before. Induction: attention to the "
        "token right after an earlier occurrence of the current token. Duplicate token: "
        "attention to earlier copies of the current token. Sink: the share of attention "
        "parked on the first token. Each is averaged over the tokens that have such a target. "
        "Copying (OV eigenvalues) is read from the weights, not from attention: whether what "
        "a head writes raises the logit of the token it reads (chance 0: random weights "
        "average 0)."
    )
chrome.page_source(__file__, role_masks, mask_score)
