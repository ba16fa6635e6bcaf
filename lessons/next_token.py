"""Next token: the model's candidates at one step, the sampling filters, a seeded draw."""

import streamlit as st

from app import caches, quiz
from app.markdown import md_escape
from app.runs import sampling_from_state
from app.state import Sampled, bound, state
from app.widgets import chrome, controls, figures, model
from lib.analysis import next_token as nt
from lib.analysis.quiz import next_token_choices
from lib.measures import rank
from lib.model.generation import draw
from lib.viz import next_token as ch
from lib.viz.text import count, filter_notes, min_p_lesson


def resample() -> None:
    state.nt.seed = (int(state.nt.seed) + 1) % 2**31


chrome.page_intro(
    "Next token",
    "At every step the model gives each token of its vocabulary a probability, and a "
    "decoding rule picks one. See those probabilities, filter them as samplers do, and draw.",
)
run = chrome.need_run()
r = run.result
lm = model.need_model(run, "This page recomputes the model's predictions, so it")
text = caches.token_texts(lm.spec, lm)
t = controls.step_slider("step", r.n_steps, "Which generated token to look at.")
dist = caches.step_distribution(run.key, t, lm, r)
sampling = sampling_from_state("nt_", do_sample=True)
drawn = draw(dist.logits, sampling)  # section 3's seeded draw, marked in every chart here
state.nt.sampled = Sampled(run.key, t, drawn)
chosen_rank = rank(dist.probs, dist.chosen)
context = "".join(r.texts[: r.prompt_len + t][-12:])
if not quiz.ask(
    "next",
    f"{run.key}:next:{t}",
    f"Step {t + 1}: which token did the model write after “…{context}”?",
    next_token_choices(dist.probs, dist.chosen),
    text,
    lambda i: i == dist.chosen,
    f"the model wrote {text(dist.chosen)} (probability {float(dist.probs[dist.chosen]):.3f}, "
    f"rank {chosen_rank} of its candidates).",
):
    st.stop()
st.markdown(
    f"**Step {t + 1} of {r.n_steps}.** Probability of the token the run wrote: "
    f"{float(dist.probs[dist.chosen]):.3f} (rank {chosen_rank}); entropy of the distribution "
    f"{dist.entropy:.2f} bits. The run's decoding: {md_escape(r.settings.sampling.describe())}."
)
st.text("…" + context + " ⟶ " + text(dist.chosen))

st.header("1. The candidates", divider="gray")
c1, c2, c3 = st.columns(3)
c1.metric(
    "Entropy",
    f"{dist.entropy:.2f} bits",
    help="0 bits: the model is certain. 1 bit: like a coin toss between two tokens. "
    "k bits: as unsure as a uniform choice among 2^k tokens.",
)
c2.metric("Chosen token's probability", f"{float(dist.probs[dist.chosen]):.3f}")
c3.metric("Chosen token's rank", f"{chosen_rank}")
st.slider("Candidates shown", 5, 40, **bound("nt_show"))
show = int(state.nt.show)
cands = ch.candidates_frame(dist, show, text)
figures.chart(ch.candidates_chart(cands, highlight=drawn), width="stretch")
st.caption(
    "The most likely next tokens at this step (temperature 1, no filter), most likely on "
    "top; coral: the token the run wrote; outlined, ◀ sampled: the token the seed of "
    "section 3 draws. · is a space, ↵ a newline, → a tab."
)

st.header("2. Sampling filters, each alone on this distribution", divider="gray")
f1, f2, f3, f4 = st.columns(4)
f1.slider("Temperature", 0.05, 2.0, step=0.05, **bound("nt_temperature"))
f2.number_input("Top-k (0 = off)", 0, 500, **bound("nt_top_k"))
f3.slider("Top-p (1 = off)", 0.05, 1.0, step=0.01, **bound("nt_top_p"))
f4.slider("Min-p (0 = off)", 0.0, 0.5, step=0.01, **bound("nt_min_p"))
settings = (
    float(state.nt.temperature),
    int(state.nt.top_k),
    float(state.nt.top_p),
    float(state.nt.min_p),
)
temp, k, top_p, min_p = settings
panels = [
    (nt.apply_temperature(dist.logits, temp), f"Temperature {temp:g}"),
    (nt.apply_top_k(dist.probs, k), f"Top-k {k}" if k else "Top-k off"),
    (nt.apply_top_p(dist.probs, top_p), f"Top-p {top_p:g}"),
    (nt.apply_min_p(dist.probs, min_p), f"Min-p {min_p:g}"),
]
notes = filter_notes(dist.probs, dist.entropy, *(f for f, _ in panels), settings)
ids = dist.top(show)
frames = [ch.filter_frame(dist.probs, f, ids, text) for f, _ in panels]
x_max = ch.common_x_max(frames)  # one x range, so the four charts can be compared
for col, (f, title), note, df in zip(st.columns(4), panels, notes, frames, strict=True):
    line = f.threshold if f.name == "min-p" and min_p > 0 else None
    figures.chart(
        ch.filter_chart(df, title, line, x_max, highlight=drawn), width="stretch", where=col
    )
    col.caption(md_escape(note))
st.info(
    min_p_lesson(float(dist.probs.max()), min_p, panels[3][0].threshold),
    icon=":material/lightbulb:",
)
st.caption(
    "Grey bar: probability before the filter. Blue bar: after it, renormalised so the "
    "kept tokens add up to 1. ✕ cut: the filter removed the token. Outlined, ◀: the seed's "
    "draw of section 3 (after all four filters, so one filter alone may cut it). Each "
    "filter is applied alone to the model's distribution (temperature 1). The four charts "
    "share one probability axis."
)

st.header("3. Sampling with a seed", divider="gray")
combined = nt.apply_all(dist.logits, sampling)
s1, s2 = st.columns([3, 2])
figures.chart(
    ch.filter_chart(
        ch.filter_frame(dist.probs, combined, ids, text),
        "All four together: what sampling draws from",
        highlight=drawn,
    ),
    width="stretch",
    where=s1,
)
with s2:
    st.number_input("Seed", 0, 2**31 - 1, **bound("nt_seed"))
    st.button(
        "Resample",
        on_click=resample,
        icon=":material/casino:",
        help="Draw again with the next seed. Going back to a seed gives its draw again.",
    )
    st.caption(f"Seed {int(state.nt.seed)} draws:")
    st.code(text(drawn), language=None)
    st.caption(
        f"Probability after the filters {float(combined.probs[drawn]):.3f} (before: "
        f"{float(dist.probs[drawn]):.3f}, rank {rank(dist.probs, drawn)}). "
        f"{count(combined.n_kept, 'token')} can be drawn. The same seed always draws the same "
        "token: the random numbers come from a generator started at that seed."
    )
chrome.show_source(
    "the filters and the draw (lib/analysis/next_token.py, lib/model/generation.py)",
    nt.apply_temperature,
    nt.apply_top_k,
    nt.apply_top_p,
    nt.apply_min_p,
    nt.apply_all,
    draw,
    nt.step_distribution,
)
chrome.page_source(__file__)
