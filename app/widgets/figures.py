"""Every chart is drawn through here, so projector mode reaches all of them: the figure's
text, lines and markers grow; its data stays as it is."""

from __future__ import annotations

import streamlit as st

from app.state import state
from lib.viz.look import plotly_for_projector, vega_for_projector


def chart(figure, where=None, **kwargs):
    """Draw an Altair chart (in `where`, a column or placeholder; default the page);
    returns what `st.altair_chart` returns (the selection, with on_select)."""
    where = where or st
    if state.classroom.projector:  # the spec itself: rebuilding an Altair object takes ~0.4 s
        return where.vega_lite_chart(vega_for_projector(figure.to_dict()), **kwargs)
    return where.altair_chart(figure, **kwargs)


def plotly(figure, where=None, **kwargs):
    """Draw a Plotly figure, as `chart` does an Altair one."""
    if state.classroom.projector:
        figure = plotly_for_projector(figure)
    return (where or st).plotly_chart(figure, **kwargs)
