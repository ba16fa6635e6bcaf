"""Token Attention Visualizer: `uv run streamlit run main.py`."""

import logging

import streamlit as st

from pages.common import current_model, init_state, md_escape


def model_status() -> None:
    """The sidebar names the model in use on every page (the picker is on Generate)."""
    with st.sidebar:
        st.subheader("Model")
        lm = current_model()
        if lm is None:
            st.warning("No model is loaded: " + md_escape(st.session_state["model_error"] or ""))
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
try:
    model_status()
    nav.run()
except Exception:  # noqa: BLE001 - the last line of defence; st.stop/rerun are BaseException
    # Nothing typed into the app may end in a traceback on screen: log it for the developer,
    # tell the user, keep their prompt and run (both live in session state).
    logging.getLogger("tav").exception("page failed")
    st.error(
        "Something went wrong while drawing this page. Your prompt and your last run are "
        "kept; try other settings, or report the problem with the server log.",
        icon=":material/error:",
    )
