"""Generate: the prompt, the settings, generation with progress, and the token sequence."""

import streamlit as st

from app import caches
from app.caches import LIMITS
from app.markdown import md_escape
from app.runs import run_generation
from app.state import bound, state
from app.widgets.chrome import page_intro, page_source
from app.widgets.classroom import share_with_class
from app.widgets.controls import threshold_slider
from app.widgets.downloads import download_run
from app.widgets.model import current_model, model_picker
from app.widgets.prompt import big_editor_button
from lib.labels import bidi_visible
from lib.viz.tables import token_table

page_intro(
    "Generate",
    "Type a prompt; the model continues it one token at a time. Every step's attention is "
    "captured exactly as the model computed it, for the other pages to show.",
)
model_picker()

st.text_area("Prompt", **bound("prompt"), height=110)  # drawn while the model still loads
big_editor_button(st)
c1, c2, c3 = st.columns([2, 2, 1])
c1.slider(
    "Max new tokens",
    1,
    LIMITS.max_new_tokens,
    **bound("max_tokens"),
    help="Generation stops earlier if the model writes its end-of-sequence token.",
)
threshold_slider(c2)
lm = current_model()
c3.toggle(
    "Chat template",
    **bound("chat_template"),
    disabled=lm is None or not lm.has_chat_template,
    help="Wrap the prompt in the model's chat format (instruct models). Off: the text "
    "is continued as typed, and special tokens you type are plain text.",
)

with st.expander("How the next token is chosen", expanded=state.gen.decoding != "Greedy"):
    st.radio(
        "Decoding",
        ["Greedy", "Sample"],
        **bound("decoding"),
        horizontal=True,
        help="Greedy always takes the most likely token; Sample draws from the distribution.",
    )
    off = state.gen.decoding != "Sample"
    s1, s2, s3, s4, s5 = st.columns(5)
    s1.slider("Temperature", 0.05, 2.0, step=0.05, **bound("temperature"), disabled=off)
    s2.number_input("Top-k (0 = off)", 0, 500, **bound("top_k"), disabled=off)
    s3.slider("Top-p", 0.05, 1.0, step=0.01, **bound("top_p"), disabled=off)
    s4.slider("Min-p", 0.0, 0.5, step=0.01, **bound("min_p"), disabled=off)
    s5.number_input("Seed", 0, 2**31 - 1, **bound("seed"), disabled=off)

b1, b2 = st.columns([1, 3], vertical_alignment="center")
clicked = b1.button("Generate", type="primary", disabled=lm is None, icon=":material/play_arrow:")
share_with_class(b2)
if clicked:
    if not str(state.gen.prompt).strip():
        st.warning("The prompt is empty. Type some text for the model to continue.")
    elif error := run_generation(lm):
        st.error(md_escape(error), icon=":material/error:")
elif (
    (pending := state.pending) is not None  # a click while it was written: go on waiting
    and lm is not None
    and pending.request.model_spec == lm.spec
    and (error := run_generation(lm, pending.request))
):
    st.error(md_escape(error), icon=":material/error:")

if state.run is not None:
    run = state.run
    r = run.result
    st.subheader("Output")
    ending = "stopped at end-of-sequence" if r.stop_reason == "eos" else "stopped at max tokens"
    st.caption(
        md_escape(f"{r.model_name} · {r.settings.sampling.describe()} · {r.n_steps} tokens, ")
        + ending
    )
    same_model = lm is not None and lm.spec == r.model_spec
    st.code(bidi_visible(r.prompt + r.generated_text), language=None, wrap_lines=True)
    st.dataframe(
        token_table(r, caches.prompt_probs(run.key, lm, r) if same_model else None),
        hide_index=True,
        width="stretch",
        height=300,
        column_config={
            "token": st.column_config.TextColumn(
                help="What the token writes: · is a space, ↵ a newline, → a tab"
            ),
            "probability": st.column_config.NumberColumn(
                help="Generated: the probability the model gave the token it chose. Prompt: "
                "the probability it gave that token from the tokens before it (low = "
                "surprising; the first token has nothing before it).",
                format="%.4f",
            ),
        },
    )
    if same_model and (note := caches.split_characters(run.key, lm, r.token_ids)):
        st.caption(md_escape(note))  # token text: never read as Markdown
    download_run(st, run)
    st.page_link(
        "lessons/attention_graph.py", label="See what each token attends to", icon=":material/hub:"
    )
page_source(__file__, "lib.model.generation:generate", "lib.model.batching:choose_token")
