"""Token Attention Visualizer: `uv run streamlit run main.py`."""

import logging
from pathlib import Path

import streamlit as st

from app import lessons, links
from app.caches import LIMITS
from app.state import state
from app.widgets.classroom import classroom_switches
from app.widgets.model import model_status

st.set_page_config(page_title="Token Attention Visualizer", page_icon="🔍")
st.logo(str(Path(__file__).parent / "assets" / "logo.svg"), size="large")
# A deployment may lower the cap below a value this session chose earlier.
state.gen.max_tokens = min(max(int(state.gen.max_tokens), 1), LIMITS.max_new_tokens)
nav = st.navigation(
    {
        part: [
            st.Page(x.path, title=x.title, icon=x.icon, default=x is lessons.HOME) for x in members
        ]
        for part, members in lessons.parts().items()
    },
    expanded=True,  # every lesson listed: a folded "View 4 more" hid the atlas and the lab
)
# Pages to read keep a narrow column, the others are as wide as their figures. Streamlit
# takes st.set_page_config again after st.navigation (each call overrides only what it is
# given), so the page about to run gets its layout here and nowhere else.
st.set_page_config(layout="centered" if lessons.by_title(nav.title).narrow else "wide")
share = model_named = None
try:
    model_slot = st.sidebar.empty()  # the model, first in the sidebar
    links.apply_link()  # a shared link: its view and run, on the session's first run only
    model_named = model_status(model_slot)
    with st.sidebar:
        classroom_switches()  # after the link: its switches take the link's values
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
    if model_named is False:  # "loading in the background": the page may have loaded it
        model_status(model_slot)
    # also after st.stop() (a page with nothing to show yet): the link matches the view
    if share is not None:
        try:
            links.sync_url()
        except Exception:  # noqa: BLE001 - a link is a convenience; the page is drawn
            logging.getLogger("tav").exception("sharing the view failed")
