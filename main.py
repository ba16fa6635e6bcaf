"""Token Attention Visualizer: `uv run streamlit run main.py`."""

import logging
from pathlib import Path

import streamlit as st

from app import links
from app.runs import LIMITS
from app.state import state
from app.widgets import classroom_switches, model_status

st.set_page_config(page_title="Token Attention Visualizer", page_icon="🔍")
st.logo(str(Path(__file__).parent / "assets" / "logo.svg"), size="large")
# Pages to read keep a narrow column; the others are as wide as their figures need (Next
# token's four filter charts side by side, the predictions heatmap and grid). Streamlit 1.67
# takes st.set_page_config again after st.navigation (each call overrides only what it is
# given), so the page about to run gets its layout below, here and nowhere else.
NARROW_PAGES = frozenset({"Welcome", "Step by step", "Ablate a head", "Vector arithmetic"})
# A deployment may lower the cap below a value this session chose earlier.
state.max_tokens = min(max(int(state.max_tokens), 1), LIMITS.max_new_tokens)
nav = st.navigation(
    {
        "Start here": [
            st.Page("lessons/home.py", title="Welcome", icon=":material/home:", default=True),
        ],
        "Write": [
            st.Page("lessons/generate.py", title="Generate", icon=":material/edit_note:"),
            st.Page("lessons/next_token.py", title="Next token", icon=":material/casino:"),
            st.Page("lessons/step_by_step.py", title="Step by step", icon=":material/call_split:"),
        ],
        "Attention": [
            st.Page("lessons/attention_graph.py", title="Attention graph", icon=":material/hub:"),
            st.Page("lessons/matrices.py", title="Attention matrices", icon=":material/grid_on:"),
        ],
        "Inside the model": [
            st.Page(
                "lessons/predictions.py", title="Tokens & predictions", icon=":material/token:"
            ),
            st.Page("lessons/head_roles.py", title="Head roles", icon=":material/psychology:"),
            st.Page("lessons/ablation.py", title="Ablate a head", icon=":material/content_cut:"),
            st.Page(
                "lessons/lenses.py", title="Logit lens & fingerprints", icon=":material/layers:"
            ),
            st.Page("lessons/analogy.py", title="Vector arithmetic", icon=":material/calculate:"),
            st.Page("lessons/atlas.py", title="Attention atlas", icon=":material/scatter_plot:"),
        ],
        "Train your own": [
            st.Page(
                "lessons/train.py", title="Train a transformer", icon=":material/model_training:"
            ),
            st.Page("lessons/train_use.py", title="Use the trained model", icon=":material/chat:"),
            st.Page("lessons/induction.py", title="Induction heads", icon=":material/repeat:"),
        ],
    },
    expanded=True,  # every lesson listed: a folded "View 4 more" hid the atlas and the lab
)
st.set_page_config(layout="centered" if nav.title in NARROW_PAGES else "wide")
share = None
try:
    links.apply_link()  # a shared link: its view and run, on the session's first run only
    model_status()
    with st.sidebar:
        classroom_switches()
        share = st.empty()
    state.share_slot = (share, nav.url_path)
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
finally:
    # also after st.stop() (a page with nothing to show yet): the link matches the view
    if share is not None:
        try:
            links.sync_url()
        except Exception:  # noqa: BLE001 - a link is a convenience; the page is drawn
            logging.getLogger("tav").exception("sharing the view failed")
