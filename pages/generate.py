"""Page 1: the prompt, the settings, generation with progress, and the token sequence."""

import pandas as pd
import streamlit as st

from lib.config import BUNDLED_MODEL, SUGGESTED_HUB_MODELS
from pages.common import (
    BUNDLED_LABEL,
    LIMITS,
    bound,
    current_model,
    current_run,
    download_run,
    md_escape,
    run_generation,
    switch_model,
)
from pages.common import (
    OTHER_MODEL as OTHER,
)

st.title("Generate")
st.caption(
    "Type a prompt; the model continues it one token at a time. Every step's attention is "
    "captured exactly as the model computed it, for the other pages to show."
)

with st.expander("Model", icon=":material/memory:"):
    choices = {BUNDLED_LABEL: BUNDLED_MODEL} | {m: m for m in SUGGESTED_HUB_MODELS}
    m1, m2 = st.columns([2, 3])
    choice = m1.selectbox(
        "Choose a model",
        [*choices, OTHER],
        **bound("model_choice"),
        help="Hub models need a network connection the first time.",
    )
    if choice == OTHER:
        spec = m2.text_input(
            "Model id or folder",
            **bound("model_custom"),
            placeholder="e.g. HuggingFaceTB/SmolLM2-360M-Instruct",
        )
    else:
        spec = choices[choice]
    spec = spec.strip()
    if st.button("Load model", disabled=not spec or spec == st.session_state["model_spec"]):
        st.session_state["model_error"] = switch_model(spec)
    if st.session_state["model_error"]:
        st.error(md_escape(st.session_state["model_error"]), icon=":material/error:")
        st.caption("The previous model stays in use.")

lm = current_model()

st.text_area("Prompt", **bound("prompt"), height=110)
c1, c2, c3 = st.columns([2, 2, 1])
c1.slider(
    "Max new tokens",
    1,
    LIMITS.max_new_tokens,
    **bound("max_tokens"),
    help="Generation stops earlier if the model writes its end-of-sequence token.",
)
c2.slider(
    "Attention threshold",
    0.0,
    0.2,
    step=0.001,
    format="%.3f",
    **bound("threshold"),
    help="The graph hides connections whose normalised weight is below this.",
)
c3.toggle(
    "Chat template",
    **bound("chat_template"),
    disabled=lm is None or not lm.has_chat_template,
    help="Wrap the prompt in the model's chat format (instruct models). Off: the text "
    "is continued as typed, and special tokens you type are plain text.",
)

with st.expander("How the next token is chosen", expanded=st.session_state["decoding"] != "Greedy"):
    st.radio(
        "Decoding",
        ["Greedy", "Sample"],
        **bound("decoding"),
        horizontal=True,
        help="Greedy always takes the most likely token; Sample draws from the distribution.",
    )
    sampling = st.session_state["decoding"] == "Sample"
    s1, s2, s3, s4, s5 = st.columns(5)
    s1.slider("Temperature", 0.05, 2.0, step=0.05, **bound("temperature"), disabled=not sampling)
    s2.number_input("Top-k (0 = off)", 0, 500, **bound("top_k"), disabled=not sampling)
    s3.slider("Top-p", 0.05, 1.0, step=0.01, **bound("top_p"), disabled=not sampling)
    s4.slider("Min-p", 0.0, 0.5, step=0.01, **bound("min_p"), disabled=not sampling)
    s5.number_input("Seed", 0, 2**31 - 1, **bound("seed"), disabled=not sampling)

if st.button("Generate", type="primary", disabled=lm is None, icon=":material/play_arrow:"):
    if not str(st.session_state["prompt"]).strip():
        st.warning("The prompt is empty. Type some text for the model to continue.")
    else:
        error = run_generation(lm)
        if error:
            st.error(md_escape(error), icon=":material/error:")

run = current_run()
if run is not None:
    _, r = run
    st.subheader("Output")
    st.caption(
        md_escape(
            f"{r.model_name} · {r.settings['sampling']['description']} · {r.n_steps} tokens, "
            + ("stopped at end-of-sequence" if r.stop_reason == "eos" else "stopped at max tokens")
        )
    )
    st.code(r.prompt + r.generated_text, language=None, wrap_lines=True)
    rows = []
    for i, (tid, label) in enumerate(zip(r.token_ids.tolist(), r.labels, strict=True)):
        if i < r.prompt_len:
            part = "prompt (hidden BOS)" if i < r.bos_offset else "prompt"
            prob = float("nan")  # the model did not choose prompt tokens
        else:
            part, prob = "generated", float(r.chosen_prob[i - r.prompt_len])
        rows.append(
            {
                "position": i,
                "part": part,
                "token": label,
                "id": tid,
                "probability": prob,
            }
        )
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        height=300,
        column_config={
            "probability": st.column_config.NumberColumn(
                "probability", help="The model's probability for the token it chose", format="%.4f"
            )
        },
    )
    download_run(st, *run)
    st.page_link(
        "pages/attention_graph.py", label="See what each token attends to", icon=":material/hub:"
    )
