"""The class's lab: every pooled induction-lab run on one chart, for the teacher's screen."""

import time

import streamlit as st

from app.widgets import chrome, downloads, figures
from app.widgets import pool as pool_widgets
from lib.viz.export import class_page
from lib.viz.training import points_per_run, pool_chart, pool_summary, pool_table

WINDOWS = {"the last 2 hours": 2.0, "the last 24 hours": 24.0, "all": None}

chrome.page_intro(
    "The class's lab",
    "Each student trains the induction lab with a seed of their own and adds the run to "
    "the class's pool. Here every run is on one chart: the same sudden drop, at a "
    "different step for each seed.",
)
pool = pool_widgets.open_pool()
if pool is None:
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
    runs = pool_widgets.read_runs(pool, hours)
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
    limit = points_per_run(len(runs))
    st.caption(
        "Each run's curves as its lab measured them on 16 held-out sequences, at every "
        f"evaluation (at most {limit} a run on this chart: a longer run is drawn with "
        f"{limit} evenly spaced ones, its phase change among them); nothing is averaged "
        "or smoothed. Names are what students typed; runs are numbered in the order they "
        "arrived."
    )


overlay(WINDOWS[window])

# Outside the fragment: following new runs does not rebuild the file every 5 seconds.
st.header("2. Take it home", divider="gray")
runs = pool_widgets.read_runs(pool, WINDOWS[window], quiet=True)  # the chart said why not
if runs:
    when = f"{len(runs)} runs, saved {time.strftime('%Y-%m-%d %H:%M')}"
    downloads.download(
        st, "Download the class's page (HTML, works offline)",
        lambda: class_page(runs, when), file_name="class-induction-heads.html",
        mime="text/html", prepare=True,
        help="The chart as a picture and the table, in one file that needs no network; "
        "the runs in the pool when this page was last drawn.",
    )  # fmt: skip
chrome.page_source(__file__, pool_chart)
