"""Token Attention Visualizer: `uv run streamlit run main.py`."""

import streamlit as st

from lib.config import BUNDLED_MODEL, SUGGESTED_HUB_MODELS
from pages.common import current_model, init_state, md_escape, switch_model

OTHER = "Other: a Hugging Face id or a local folder"
BUNDLED_LABEL = "SmolLM2-135M-Instruct (bundled, offline)"


def model_sidebar() -> None:
    ss = st.session_state
    with st.sidebar:
        st.subheader("Model")
        labels = {BUNDLED_LABEL: BUNDLED_MODEL} | {m: m for m in SUGGESTED_HUB_MODELS}
        choice = st.selectbox("Choose a model", [*labels, OTHER], key="model_choice")
        if choice == OTHER:
            spec = st.text_input(
                "Model id or folder",
                key="model_custom",
                placeholder="e.g. HuggingFaceTB/SmolLM2-360M-Instruct",
            )
        else:
            spec = labels[choice]
        if st.button("Load model", disabled=not spec.strip() or spec.strip() == ss["model_spec"]):
            ss["model_error"] = switch_model(spec.strip())
        lm = current_model()
        if ss.get("model_error"):
            st.error(md_escape(ss["model_error"]), icon=":material/error:")
        if lm is None:
            st.warning("No model is loaded.")
            return
        st.success(md_escape(lm.name), icon=":material/check_circle:")
        st.caption(
            f"{lm.n_params / 1e6:,.0f} M parameters · {lm.n_layers} layers × {lm.n_heads} heads"
            f" · {lm.device.type} · {str(lm.dtype).removeprefix('torch.')}"
        )


st.set_page_config(page_title="Token Attention Visualizer", page_icon="🔍", layout="wide")
init_state()
nav = st.navigation(
    [
        st.Page("pages/generate.py", title="Generate", icon=":material/edit_note:", default=True),
        st.Page("pages/attention_graph.py", title="Attention graph", icon=":material/hub:"),
        st.Page("pages/matrices.py", title="Attention matrices", icon=":material/grid_on:"),
        st.Page("pages/next_token.py", title="Next token", icon=":material/casino:"),
        st.Page("pages/head_roles.py", title="Head roles", icon=":material/psychology:"),
        st.Page("pages/lenses.py", title="Logit lens & fingerprints", icon=":material/layers:"),
    ]
)
model_sidebar()
nav.run()
