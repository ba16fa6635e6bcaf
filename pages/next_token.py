"""Page 4: the next-token lens: candidates, sampling filters, step by step, what if, tokenizer."""

import inspect
from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

from lib import next_token as nt
from lib import next_token_charts as ch
from lib import tokenizer_view as tv
from lib.models import LoadedModel
from lib.result import GenerationResult, SamplingSettings
from pages.common import (
    LIMITS,
    RunRequest,
    bound,
    current_model,
    fetch_run,
    md_escape,
    need_run,
    run_generation,
    set_current_run,
)

MAX_AXIS = 120  # heatmap columns drawn at once
WHAT_IF_CHOICES = 10

# Page-local settings; the filters start at values that visibly cut something.
PAGE_DEFAULTS: dict[str, object] = {
    "nt_step": 1,
    "nt_show": 12,
    "nt_temperature": 0.7,
    "nt_top_k": 5,
    "nt_top_p": 0.9,
    "nt_min_p": 0.1,
    "nt_seed": 0,
    "nt_decoding": "Sample",
    "nt_norm": True,
    "nt_alt": None,
    "nt_cmp_step": 1,
    "nt_window": None,
}


@st.cache_data(max_entries=64, show_spinner=False)
def cached_step(
    run_key: str, step: int, _lm: LoadedModel, _result: GenerationResult
) -> nt.StepDistribution:
    return nt.step_distribution(_lm, _result, step)


@st.cache_data(max_entries=8, show_spinner="Reading the model's prediction at every position ...")
def cached_lens(run_key: str, _lm: LoadedModel, _ids: np.ndarray) -> nt.SequenceLens:
    return nt.sequence_lens(_lm, _ids)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_split(run_key: str, _lm: LoadedModel, _ids: np.ndarray) -> tv.TokenSplit:
    return tv.split_tokens(_lm.tokenizer, _ids)


def page_sampling(do_sample: bool) -> SamplingSettings:
    if not do_sample:
        return SamplingSettings()
    return SamplingSettings(
        do_sample=True,
        temperature=float(ss["nt_temperature"]),
        top_k=int(ss["nt_top_k"]),
        top_p=float(ss["nt_top_p"]),
        min_p=float(ss["nt_min_p"]),
        seed=int(ss["nt_seed"]),
    )


def resample() -> None:
    state = st.session_state  # a callback runs before the script body assigns `ss`
    state["nt_seed"] = (int(state["nt_seed"]) + 1) % 2**31


def show_source(title: str, *functions) -> None:
    with st.expander(f"Source: {title}", expanded=False, icon=":material/code:"):
        for fn in functions:
            st.code(inspect.getsource(fn), language="python")


def tokens(count: int) -> str:
    return f"{count:,} token" + ("" if count == 1 else "s")


def full_text(result: GenerationResult) -> str:
    return result.prompt + lm.tokenizer.decode(result.generated_ids.tolist())


st.title("Next token")
st.caption(
    "At every step the model gives each of its tokens a probability; a decoding rule picks "
    "one. Here you can see those probabilities, filter them the way samplers do, add tokens "
    "one at a time, and ask what would have happened after another choice."
)
run_key, r = need_run()
lm = current_model()
if lm is None or lm.name != r.model_name:
    st.warning(
        "This page recomputes the model's predictions, so it needs the model that made the "
        "current run. Load it again on the Generate page, or generate a new run."
    )
    st.stop()
ss = st.session_state
for name, value in PAGE_DEFAULTS.items():
    ss.setdefault(name, value)
if ss.get("nt_error"):
    st.error(md_escape(ss.pop("nt_error")), icon=":material/error:")

_texts: dict[int, str] = {}


def text(token_id: int) -> str:
    """A token as it writes, whitespace visible (memoised for this rerun)."""
    if token_id not in _texts:
        _texts[token_id] = tv.token_text(lm.tokenizer, token_id)
    return _texts[token_id]


n = r.n_steps
base_request: RunRequest = ss["run"]["request"]
if not isinstance(ss["nt_step"], int) or not 1 <= ss["nt_step"] <= n:
    ss["nt_step"] = n
if n > 1:
    st.slider(
        "Generation step",
        1,
        n,
        **bound("nt_step"),
        help="Which generated token to look at: its candidates, filters and alternatives.",
    )
t = int(ss["nt_step"]) - 1
dist = cached_step(run_key, t, lm, r)
chosen_rank = nt.rank_of(dist.probs, dist.chosen)
st.markdown(
    f"**Step {t + 1} of {n}.** Probability of the token the run wrote: "
    f"{float(dist.probs[dist.chosen]):.3f} (rank {chosen_rank}); entropy of the distribution "
    f"{dist.entropy:.2f} bits ({md_escape(r.settings['sampling']['description'])})."
)
st.text(
    "…"
    + "".join(text(i) for i in r.token_ids[: r.prompt_len + t][-12:])
    + " ⟶ "
    + text(dist.chosen)
)

tab_filters, tab_steps, tab_heat, tab_tok = st.tabs(
    ["Candidates and filters", "Step by step and what if", "Heatmap over positions", "Tokenizer"]
)

# --- candidates, filters, sampling -------------------------------------------------------
with tab_filters:
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
    show = int(ss["nt_show"])
    st.altair_chart(
        ch.candidates_chart(ch.candidates_frame(dist, show, text)),
        width="stretch",
    )
    st.caption(
        "The most likely next tokens at this step (temperature 1, no filter), most likely on "
        "top; coral: the token the run wrote. · is a space, ↵ a newline, → a tab."
    )

    st.subheader("Sampling filters, each alone on this distribution")
    f1, f2, f3, f4 = st.columns(4)
    f1.slider("Temperature", 0.05, 2.0, step=0.05, **bound("nt_temperature"))
    f2.number_input("Top-k (0 = off)", 0, 500, **bound("nt_top_k"))
    f3.slider("Top-p (1 = off)", 0.05, 1.0, step=0.01, **bound("nt_top_p"))
    f4.slider("Min-p (0 = off)", 0.0, 0.5, step=0.01, **bound("nt_min_p"))
    temp, k = float(ss["nt_temperature"]), int(ss["nt_top_k"])
    top_p, min_p = float(ss["nt_top_p"]), float(ss["nt_min_p"])
    ids = dist.top(show)
    V = dist.probs.size
    top_prob = float(dist.probs.max())
    panels = [
        (nt.apply_temperature(dist.logits, temp), f"Temperature {temp:g}", None),
        (nt.apply_top_k(dist.probs, k), f"Top-k {k}" if k else "Top-k off", None),
        (nt.apply_top_p(dist.probs, top_p), f"Top-p {top_p:g}", None),
        (nt.apply_min_p(dist.probs, min_p), f"Min-p {min_p:g}", None),
    ]

    def mass(f: nt.Filtered) -> float:
        return float(dist.probs[f.kept].sum())

    f_t, f_k, f_p, f_m = (p[0] for p in panels)
    shape = "sharper" if temp < 1 else "flatter" if temp > 1 else "unchanged"
    notes = [
        f"Cuts nothing: divides the logits by {temp:g}. Entropy {dist.entropy:.2f} → "
        f"{nt.entropy_bits(f_t.probs):.2f} bits ({shape}).",
        f"Keeps the {f_k.n_kept:,} most likely of {V:,} tokens; their {mass(f_k):.1%} of the "
        "probability is rescaled to 100%.",
        f"Keeps the most likely tokens until they add up to {top_p:g}: {tokens(f_p.n_kept)} "
        f"holding {mass(f_p):.1%}.",
        f"Keeps tokens with at least {min_p:g} × {top_prob:.3f} = {f_m.threshold:.4f} "
        f"(dashed line): {tokens(f_m.n_kept)} holding {mass(f_m):.1%}.",
    ]
    for col, (f, title, _), note in zip(st.columns(4), panels, notes, strict=True):
        threshold = f.threshold if f.name == "min-p" and min_p > 0 else None
        col.altair_chart(
            ch.filter_chart(ch.filter_frame(dist.probs, f, ids, text), title, threshold),
            width="stretch",
        )
        col.caption(md_escape(note))
    st.info(
        f"**Min-p moves with the model's confidence.** It keeps a token when its probability "
        f"is at least min-p times the top token's. Here the top token has "
        f"{top_prob:.3f}, so the bar is {min_p:g} × {top_prob:.3f} = {f_m.threshold:.4f}. "
        f"When the model is sure (top token 0.9) the same min-p cuts everything below "
        f"{min_p * 0.9:.3f}; when it is unsure (top token 0.05) only what is below "
        f"{min_p * 0.05:.4f}. Top-k keeps a fixed count and top-p a fixed total whatever "
        "the confidence; min-p cuts the long tail of unlikely tokens when the choice is "
        "clear and leaves room when many tokens are plausible.",
        icon=":material/lightbulb:",
    )
    st.caption(
        "Grey bar: probability before the filter. Blue bar: after it, renormalised so the "
        "kept tokens add up to 1. ✕ cut: the filter removed the token. Each filter is "
        "applied alone to the model's distribution (temperature 1)."
    )

    st.subheader("Sampling with a seed")
    sampling = page_sampling(True)
    combined = nt.apply_all(dist.logits, sampling)
    s1, s2 = st.columns([3, 2])
    s1.altair_chart(
        ch.filter_chart(
            ch.filter_frame(dist.probs, combined, ids, text),
            "All four together: what sampling draws from",
        ),
        width="stretch",
    )
    with s2:
        st.number_input("Seed", 0, 2**31 - 1, **bound("nt_seed"))
        st.button(
            "Resample",
            on_click=resample,
            icon=":material/casino:",
            help="Draw again with the next seed. Going back to a seed gives its draw again.",
        )
        drawn = nt.draw(dist.logits, sampling)
        st.caption(f"Seed {int(ss['nt_seed'])} draws:")
        st.code(text(drawn), language=None)
        st.caption(
            f"Probability after the filters {float(combined.probs[drawn]):.3f} (before: "
            f"{float(dist.probs[drawn]):.3f}, rank {nt.rank_of(dist.probs, drawn)}). "
            f"{tokens(combined.n_kept)} can be drawn. The same seed always draws the same "
            "token: the random numbers come from a generator started at that seed."
        )
    show_source(
        "the filters and the draw (lib/next_token.py)",
        nt.apply_temperature,
        nt.apply_top_k,
        nt.apply_top_p,
        nt.apply_min_p,
        nt.apply_all,
        nt.draw,
        nt.step_distribution,
    )

# --- step by step and what if ------------------------------------------------------------
with tab_steps:
    st.subheader("Step by step")
    st.radio("Decoding", ["Greedy", "Sample"], **bound("nt_decoding"), horizontal=True)
    step_sampling = page_sampling(ss["nt_decoding"] == "Sample")
    st.caption(
        md_escape(
            f"{step_sampling.describe()} (the filters and seed of the first tab). "
            "Next token replays the run so far and adds one token; the longer run becomes the "
            "current run on every page."
        )
    )
    st.code(full_text(r), language=None, wrap_lines=True)
    can_add = r.stop_reason != "eos" and n < LIMITS.max_new_tokens
    if r.stop_reason == "eos":
        st.caption("The run ended with the end-of-sequence token: nothing follows it.")
    elif not can_add:
        st.caption(f"The run has the most tokens allowed ({LIMITS.max_new_tokens}).")
    else:
        next_dist = cached_step(run_key, n, lm, r)  # the distribution after the last token
        st.caption("With these settings the next token will be:")
        st.code(text(nt.draw(next_dist.logits, step_sampling)), language=None)
    b1, b2 = st.columns(2)
    if b1.button("Next token", type="primary", disabled=not can_add, icon=":material/add:"):
        request = replace(
            base_request,
            max_new_tokens=n + 1,
            sampling=step_sampling,
            forced_tokens=nt.next_token_forced(r),
        )
        error = run_generation(lm, request)
        if error:
            ss["nt_error"] = error
        else:
            ss["nt_step"] = n + 1
        st.rerun()
    if b2.button("Start over from the prompt", icon=":material/restart_alt:"):
        request = replace(base_request, max_new_tokens=1, sampling=step_sampling, forced_tokens=())
        error = run_generation(lm, request)
        if error:
            ss["nt_error"] = error
        ss["nt_step"] = 1
        st.rerun()
    show_source("how a step is added", nt.next_token_forced, nt.branch_forced)

    st.subheader("What if")
    alternatives = [int(i) for i in dist.top(WHAT_IF_CHOICES + 1) if int(i) != dist.chosen]
    alternatives = alternatives[:WHAT_IF_CHOICES]
    if ss["nt_alt"] not in alternatives:
        ss["nt_alt"] = alternatives[0]
    st.selectbox(
        f"At step {t + 1}, write this instead of the run's choice",
        alternatives,
        format_func=lambda i: f"{text(i)}   (p = {float(dist.probs[i]):.3f})",
        **bound("nt_alt"),
        help="The step is the one chosen with the slider at the top of the page.",
    )
    if st.button("Continue from here", icon=":material/call_split:"):
        branch_request = replace(
            base_request,
            max_new_tokens=max(n, t + 1),
            forced_tokens=nt.branch_forced(r, t, int(ss["nt_alt"])),
        )
        result, error = fetch_run(lm, branch_request)
        if error:
            st.error(md_escape(error), icon=":material/error:")
        else:
            ss["nt_branches"] = {
                "step": t,
                "runs": [
                    {"key": run_key, "request": base_request, "result": r},
                    {"key": branch_request.key, "request": branch_request, "result": result},
                ],
            }
    branches = ss.get("nt_branches")
    if branches and run_key in [b["key"] for b in branches["runs"]]:
        bt = branches["step"]
        runs = branches["runs"]
        decoding = runs[0]["result"].settings["sampling"]["description"]
        st.caption(
            md_escape(
                f"Both branches share the first {bt} generated tokens, so their attention "
                f"up to step {bt + 1} is identical. After the branch point both continue "
                f"with the original run's decoding ({decoding})."
            )
        )
        longest = min(b["result"].n_steps for b in runs)
        first, last = bt + 2, longest  # 1-based steps after the branch point
        if last >= first:
            if not isinstance(ss["nt_cmp_step"], int) or not first <= ss["nt_cmp_step"] <= last:
                ss["nt_cmp_step"] = first
            if last > first:
                st.slider(
                    "Compare the attention at step",
                    first,
                    last,
                    **bound("nt_cmp_step"),
                    help="The first step after the branch point is the first whose query "
                    "(the token just written) differs.",
                )
        cols = st.columns(2)
        for i, (col, b) in enumerate(zip(cols, runs, strict=True)):
            res: GenerationResult = b["result"]
            with col:
                name = "A: the run" if i == 0 else "B: what if"
                current = " (current run)" if b["key"] == run_key else ""
                st.markdown(f"**{name}{current}**")
                st.caption(f"step {bt + 1} wrote:")
                st.code(text(int(res.generated_ids[bt])), language=None)
                st.code(full_text(res), language=None, wrap_lines=True)
                if last >= first:
                    s = int(ss["nt_cmp_step"]) - 1
                    row = res.attention[s].mean(axis=(0, 1))
                    labels = [text(int(x)) for x in res.token_ids]
                    frame = ch.attention_frame(row[: res.prompt_len + s], labels, res.bos_offset)
                    st.altair_chart(
                        ch.attention_chart(frame, f"Step {s + 1}: where the new token looks"),
                        width="stretch",
                    )
                st.button(
                    f"Make {name[0]} the current run",
                    key=f"nt_use_{i}",
                    disabled=b["key"] == run_key,
                    on_click=set_current_run,
                    args=(b["request"], res),
                )
        if last < first:
            st.caption("A branch ended at the branch point, so there is no attention to compare.")
        else:
            st.caption(
                "Bars: the 10 earlier tokens with the most attention from the query of that "
                "step (mean over all layers and heads; a hidden BOS is left out)."
            )

# --- heatmap over positions --------------------------------------------------------------
with tab_heat:
    lens = cached_lens(run_key, lm, r.token_ids)
    split = cached_split(run_key, lm, r.token_ids)
    T = len(r.token_ids)
    st.toggle(
        "Per-position normalisation",
        **bound("nt_norm"),
        help="Divide each column by its top probability, so the shape of every "
        "distribution is visible even where the model is unsure.",
    )
    lo, hi = 0, T
    if T > MAX_AXIS:
        w = ss["nt_window"]
        if not (isinstance(w, tuple | list) and len(w) == 2 and 0 <= w[0] < w[1] <= T):
            ss["nt_window"] = (T - MAX_AXIS, T)
        lo, hi = st.slider(
            "Positions shown", 0, T, **bound("nt_window"), help=f"At most {MAX_AXIS} at once."
        )
        hi = min(max(hi, lo + 1), lo + MAX_AXIS)
    frame = ch.heatmap_frame(lens, split.texts, text, lo, hi, bool(ss["nt_norm"]))
    st.altair_chart(ch.heatmap_chart(frame, bool(ss["nt_norm"])), width="content")
    firsts = int((lens.next_rank == 1).sum())
    st.caption(
        "Each column is one position of the run (prompt and generated); its cells are the "
        "model's 10 most likely next tokens there, best on top. A coral dot marks the token "
        "that actually came next (no dot: it was not in the top 10). Hover a cell for the "
        f"predicted token and the rank of the actual next token. The actual next token was "
        f"the model's first choice at {firsts} of {T - 1} positions."
    )
    show_source("the lens over every position", nt.sequence_lens)

# --- tokenizer --------------------------------------------------------------------------
with tab_tok:
    split = cached_split(run_key, lm, r.token_ids)
    m1, m2, m3 = st.columns(3)
    m1.metric("Vocabulary size", f"{tv.vocabulary_size(lm.tokenizer):,}")
    m2.metric("Prompt tokens", f"{r.prompt_len:,}")
    m3.metric("Generated tokens", f"{n:,}")
    if r.settings.get("chat_template"):
        st.caption("The chat template is on: the prompt you typed was sent to the model as")
        st.code(lm.tokenizer.decode(r.token_ids[: r.prompt_len].tolist()), language=None)
        with st.expander("The chat template (Jinja)"):
            st.code(str(lm.tokenizer.chat_template), language="jinja2")
    else:
        st.caption(
            "The chat template is off: the prompt is split as typed"
            + (
                ", after a beginning-of-sequence token the tokenizer added."
                if r.bos_offset
                else "."
            )
        )
    st.text(" | ".join(split.texts[: r.prompt_len]))
    table = pd.DataFrame(split.rows())
    table.insert(1, "part", ["prompt"] * r.prompt_len + ["generated"] * n)
    st.dataframe(table, hide_index=True, width="stretch", height=320)
    st.caption(
        "piece: the vocabulary entry (byte-level BPE writes a leading space as Ġ and a "
        "newline as Ċ). text: what the token writes, with · for a space, ↵ for a newline and "
        "→ for a tab. special: a control token, not text."
    )
    st.dataframe(pd.DataFrame(tv.special_tokens(lm.tokenizer)), hide_index=True)
    show_source("the tokenizer pane (lib/tokenizer_view.py)", tv.split_tokens, tv.token_text)
