"""Step by step: add tokens one at a time, by hand or autoplay, or change one choice."""

import streamlit as st

from app import caches, stepping
from app.caches import LIMITS
from app.markdown import md_escape
from app.runs import fetch_run, sampling_from_state, set_current_run
from app.state import Branches, bound, state
from app.widgets import chrome, controls, figures, model
from lib.analysis import next_token as nt
from lib.model.generation import draw
from lib.viz import next_token as ch

WHAT_IF_CHOICES = 10


chrome.page_intro(
    "Step by step",
    "A language model writes one token at a time, each time reading everything before it. "
    "Add tokens yourself, or change one choice and compare where the two texts go.",
)
run = chrome.need_run()
lm = model.need_model(run, "Writing step by step")
text = caches.token_texts(lm.spec, lm)
if state.nt.error:
    st.error(md_escape(state.nt.error), icon=":material/error:")
    state.nt.error = None

st.header("1. One token at a time", divider="gray")
st.radio("Decoding", ["Greedy", "Sample"], **bound("nt_decoding"), horizontal=True)
sampling = sampling_from_state("nt_", state.nt.decoding == "Sample")
st.caption(
    md_escape(
        f"{sampling.describe()} (the filters and seed of the Next token page). Next token adds "
        "one token to the run (the model reads only the token before it: the rest is kept "
        "from the run so far); the longer run becomes the current run on every page. "
        "Autoplay adds one per tick, until its stop, the end-of-sequence token or Stop."
    )
)
a1, a2, a3, a4 = st.columns([2, 4, 3, 2], vertical_alignment="bottom")
a1.toggle("Autoplay", **bound("ap_on"), help="Write one token per tick, at the pace set.")
a2.slider("Pace (seconds per token)", 0.5, 5.0, step=0.25, **bound("ap_pace"))
state.ap.cap = stepping.cap()  # within this deployment's limit
a3.number_input("Stop at (tokens)", 1, LIMITS.max_new_tokens, **bound("ap_cap"))
a4.button("Stop", icon=":material/stop:", disabled=not state.ap.on, on_click=stepping.stop_autoplay)


@st.fragment(run_every=float(state.ap.pace) if state.ap.on else None)
def writing() -> None:
    """The run as it grows: each autoplay tick reruns this part of the page alone."""
    shown = st.empty()  # drawn first, so a tick never greys the text while it adds a token
    shown.code(
        state.run.result.prompt + state.run.result.generated_text, language=None, wrap_lines=True
    )
    with (slot := st.empty()).container():  # "adding token n", while it runs
        ended = stepping.autoplay_tick(lm, sampling)
    slot.empty()
    if ended:
        st.rerun()  # the whole page: the toggle, the timer and "What if" follow the run
    run = state.run
    r, n = run.result, run.result.n_steps
    shown.code(r.prompt + r.generated_text, language=None, wrap_lines=True)
    for note in filter(None, (state.ap.note, stepping.pace_note())):
        st.caption(note)
    if reason := stepping.why_not_extend(r, LIMITS.max_new_tokens):
        st.caption(reason)
    else:
        after = caches.step_distribution(run.key, n, lm, r)  # the distribution after the last token
        st.caption("With these settings the next token will be:")
        st.code(text(draw(after.logits, sampling)), language=None)
    busy = bool(reason) or state.ap.on  # while on, autoplay writes the tokens
    b1, b2 = st.columns(2)
    if b1.button("Next token", type="primary", disabled=busy, icon=":material/add:"):
        state.nt.error = stepping.add_token(lm, run, sampling)
        st.rerun()
    if b2.button("Start over from the prompt", icon=":material/restart_alt:"):
        state.nt.error = stepping.start_over(lm, run, sampling)
        st.rerun()
    mark = stepping.sampled_at(run.key, n - 1)  # the token just written, at its step
    frame = ch.candidates_frame(caches.step_distribution(run.key, n - 1, lm, r), 10, text)
    figures.chart(ch.candidates_chart(frame, highlight=mark), width="stretch")
    st.caption(
        f"Step {n}: the model's candidates for the last token written (temperature 1, no "
        "filter). Coral: the token the run wrote; outlined, ◀ sampled: the token last "
        "sampled at this step, here or with the Next token page's seed (if it was)."
    )


writing()
run = state.run  # a tick above may have made a longer run current
r, n = run.result, run.result.n_steps
chrome.show_source(
    "how a step is added", stepping.next_request, nt.next_token_forced, nt.branch_forced
)

st.header("2. What if", divider="gray")
t = controls.step_slider(
    "nt_branch_at", n, "Where to change the run's choice.", (n + 1) // 2, "Branch at step"
)
if n > 1 and t == n - 1:
    st.caption(
        "At the last step a branch writes one other token and ends there, so there is no "
        "later step whose attention could differ. Pick an earlier step to watch the two "
        "texts go apart."
    )
dist = caches.step_distribution(run.key, t, lm, r)
alternatives = [int(i) for i in dist.top(WHAT_IF_CHOICES + 1) if int(i) != dist.chosen]
alternatives = alternatives[:WHAT_IF_CHOICES]
if state.nt.alt not in alternatives:
    state.nt.alt = alternatives[0]
st.selectbox(
    f"At step {t + 1}, write this instead of “{text(dist.chosen)}”",
    alternatives,
    format_func=lambda i: f"{text(i)}   (p = {float(dist.probs[i]):.3f})",
    **bound("nt_alt"),
)
if st.button("Continue from here", icon=":material/call_split:"):
    branch = run.request.with_settings(
        max_new_tokens=max(n, t + 1), forced_tokens=nt.branch_forced(r, t, int(state.nt.alt))
    )
    other, error = fetch_run(lm, branch)
    if error:
        st.error(md_escape(error), icon=":material/error:")
    else:
        state.nt.branches = Branches(t, (run, other))
branches = state.nt.branches
if branches is not None and run.key in [b.key for b in branches.runs]:
    bt = branches.step
    st.caption(
        md_escape(
            f"Both branches share the first {bt} generated tokens, so their attention up to step "
            f"{bt + 1} is identical. After the branch point both continue with the original run's "
            f"decoding ({branches.runs[0].result.settings.sampling.describe()})."
        )
    )
    first, last = bt + 2, min(b.result.n_steps for b in branches.runs)  # steps after the branch
    if last >= first:
        if not first <= state.nt.cmp_step <= last:
            state.nt.cmp_step = first
        if last > first:
            st.slider(
                "Compare the attention at step",
                first,
                last,
                **bound("nt_cmp_step"),
                help="The first step after the branch point is the first whose query "
                "(the token just written) differs.",
            )
    for i, (col, b) in enumerate(zip(st.columns(2), branches.runs, strict=True)):
        res, name = b.result, "A: the run" if i == 0 else "B: what if"
        col.markdown(f"**{name}{' (current run)' if b.key == run.key else ''}**")
        col.caption(f"step {bt + 1} wrote:")
        col.code(text(int(res.generated_ids[bt])), language=None)
        col.code(res.prompt + res.generated_text, language=None, wrap_lines=True)
        if last >= first:
            s = int(state.nt.cmp_step) - 1
            row = res.attention[s].mean(axis=(0, 1))
            frame = ch.attention_frame(row[: res.prompt_len + s], res.texts, res.bos_offset)
            figures.chart(
                ch.attention_chart(frame, f"Step {s + 1}: where the new token looks"),
                width="stretch",
                where=col,
            )
        col.button(
            f"Make {name[0]} the current run",
            key=f"nt_use_{i}",
            disabled=b.key == run.key,
            on_click=set_current_run,
            args=(b,),
        )
    st.caption(
        "A branch ended at the branch point, so there is no attention to compare."
        if last < first
        else "Bars: the 10 earlier tokens with the most attention from the query of that step "
        "(mean over all layers and heads; a hidden BOS is left out)."
    )
chrome.page_source(__file__)
