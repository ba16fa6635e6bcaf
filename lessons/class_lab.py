"""The class's lab: every pooled induction-lab run on one chart, for the teacher's screen."""

import time

import streamlit as st

from app import caches
from app.widgets import chrome, downloads, figures
from lib.viz.export import class_page
from lib.viz.training import pool_chart, pool_summary, pool_table

WINDOWS = {"the last 2 hours": 2.0, "the last 24 hours": 24.0, "all": None}

chrome.page_intro(
    "The class's lab",
    "Each student trains the induction lab with a seed of their own and adds the run to "
    "the class's pool. Here every run is on one chart: the same sudden drop, at a "
    "different step for each seed.",
)
pool = caches.class_pool()
if pool is None:
    st.info("This server keeps no class pool (TAV_CLASS_POOL=off).", icon=":material/info:")
    st.stop()

st.header("1. Every run in the pool", divider="gray")
c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
window = c1.segmented_control("Runs from", list(WINDOWS), default="the last 2 hours",
                              required=True, key="pool_window")  # fmt: skip
follow = c2.toggle(
    "Follow new runs",
    key="pool_follow",
    help="Read the pool again every 5 seconds, as students add their runs.",
)


@st.fragment(run_every=5 if follow else None)
def overlay(hours: float | None) -> None:
    runs = pool.runs(hours)
    if not runs:
        st.info(
            "No run in the pool yet. Each student trains on the Induction heads page, then "
            "presses “Add my run to the class pool” (section 4).",
            icon=":material/groups:",
        )
        st.page_link("lessons/induction.py", label="Induction heads", icon=":material/repeat:")
        return
    figures.chart(pool_chart(runs), width="content")
    st.caption(pool_summary(runs))
    st.dataframe(
        pool_table(runs), hide_index=True, width="stretch",
        column_config={
            "final loss, second half": st.column_config.NumberColumn(format="%.3f"),
            "final best induction": st.column_config.NumberColumn(format="%.3f"),
        },
    )  # fmt: skip
    st.caption(
        "Each run's curves as its lab measured them on 16 held-out sequences, every "
        "evaluation it made; nothing is averaged or smoothed. Names are what students "
        "typed; runs are numbered in the order they arrived."
    )
    st.header("2. Take it home", divider="gray")
    when = f"{len(runs)} runs, saved {time.strftime('%Y-%m-%d %H:%M')}"
    downloads.download(
        st, "Download the class's page (HTML, works offline)",
        lambda: class_page(runs, when), file_name="class-induction-heads.html",
        mime="text/html", prepare=True,
    )  # fmt: skip


overlay(WINDOWS[window])
chrome.page_source(__file__, pool_chart)
