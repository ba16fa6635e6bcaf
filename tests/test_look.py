"""Projector mode's look: bigger text and lines, the same data."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from lib.viz.graph import attention_graph, select_edges
from lib.viz.look import PROJECTOR_TEXT, plotly_for_projector, vega_for_projector


def test_vega_text_grows_and_the_data_stays():
    df = pd.DataFrame({"x": [1, 2], "y": [3, 4], "t": ["<b>a</b>", "b"]})
    base = alt.Chart(df).encode(x="x:Q", y="y:Q")
    chart = base.mark_line(strokeWidth=1) + base.mark_text(fontSize=11).encode(text="t:N")
    spec = chart.to_dict()
    big = vega_for_projector(spec)
    assert big["datasets"] == spec["datasets"]  # not one value changed
    assert big["config"]["axis"]["labelFontSize"] == PROJECTOR_TEXT
    assert big["config"]["legend"]["titleFontSize"] == PROJECTOR_TEXT
    marks = [layer["mark"] for layer in big["layer"]]
    assert marks[0]["strokeWidth"] > 1 and marks[1]["fontSize"] >= PROJECTOR_TEXT
    assert spec["layer"][1]["mark"]["fontSize"] == 11  # the original is left alone
    cells = vega_for_projector(base.mark_rect().properties(height=alt.Step(20)).to_dict())
    assert cells["height"]["step"] > 20  # a heatmap's rows grow with their labels


def test_plotly_graph_text_and_markers_grow():
    from lib.analysis.attention import StepAttention

    w = np.array([0.2, 0.8], dtype=np.float32)
    steps = [StepAttention(0, w, np.zeros(0, np.float32), w, np.zeros(0, np.float32), 0.0)]
    fig = attention_graph(["a", "b"], ["c"], select_edges(steps, 0, 0.1), 0)
    big = plotly_for_projector(fig)
    assert big.layout.font.size == PROJECTOR_TEXT and fig.layout.font.size == 13
    texts = [t for t in big.data if t.mode == "markers+text"]
    assert texts and all(t.textfont.size == PROJECTOR_TEXT for t in texts)
    lines = [
        (a.line.width, b.line.width)
        for a, b in zip(fig.data, big.data, strict=True)
        if a.mode == "lines"
    ]
    assert lines and all(after > before for before, after in lines)
    assert big.layout.height > fig.layout.height
    assert [t.x for t in big.data if t.mode == "markers+text"][0] == texts[0].x  # same places
