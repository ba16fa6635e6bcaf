"""Projector mode: every figure's text readable from the back of a room.

A chart is built once, in its normal look; `for_projector` returns a copy with all text at
least `PROJECTOR_TEXT` px (axis labels and titles, legends, facet headers, text marks, the
graph's token labels and hover boxes), lines and point outlines thicker, and the space the
bigger labels need. Colours are the figures' own: they already keep to high-contrast pairs.
Only the look changes; no value, scale or data point does.
"""

from __future__ import annotations

import copy
from typing import Any

PROJECTOR_TEXT = 18  # px, the smallest figure text on a projector
PROJECTOR_TITLE = 22
LINE_SCALE = 1.8  # lines and strokes grow by this much
GRAPH_ROW_SCALE = 1.4  # a Plotly figure's size, for labels this much bigger


def _bigger(size: Any, floor: int = PROJECTOR_TEXT) -> Any:
    return max(float(size) * PROJECTOR_TEXT / 12, floor) if isinstance(size, int | float) else size


def _walk_vega(node: Any) -> None:
    """Scale every font size and stroke width that a chart sets on its own marks."""
    if isinstance(node, dict):
        mark = node.get("mark")
        if isinstance(mark, dict):
            if "fontSize" in mark:
                mark["fontSize"] = _bigger(mark["fontSize"])
            if mark.get("type") == "text" and isinstance(mark.get("limit"), int | float):
                mark["limit"] = mark["limit"] * PROJECTOR_TEXT / 12  # room for the longer text
            if isinstance(mark.get("strokeWidth"), int | float):
                mark["strokeWidth"] = mark["strokeWidth"] * LINE_SCALE
        for key, value in node.items():
            if key in ("width", "height") and isinstance(value, dict) and "step" in value:
                value["step"] = value["step"] * PROJECTOR_TEXT / 12  # rows for the bigger labels
            elif key in ("labelFontSize", "titleFontSize"):
                node[key] = _bigger(value)
            elif key != "datasets":  # the data never changes
                _walk_vega(value)
    elif isinstance(node, list):
        for item in node:
            _walk_vega(item)


def vega_for_projector(spec: dict) -> dict:
    """A Vega-Lite spec (a chart's `to_dict()`) with projector-sized text and lines."""
    spec = {k: v if k == "datasets" else copy.deepcopy(v) for k, v in spec.items()}
    _walk_vega(spec)
    text = {"labelFontSize": PROJECTOR_TEXT, "titleFontSize": PROJECTOR_TEXT}
    config = spec.setdefault("config", {})
    for part in ("axis", "legend", "header"):
        config[part] = {**config.get(part, {}), **text}
    config["legend"]["titleLimit"] = 400  # a longer title at the bigger size, whole
    config["legend"]["symbolSize"] = 200
    config["title"] = {**config.get("title", {}), "fontSize": PROJECTOR_TITLE}
    config["text"] = {**config.get("text", {}), "fontSize": PROJECTOR_TEXT}
    config["line"] = {**config.get("line", {}), "strokeWidth": 2 * LINE_SCALE}
    config["rule"] = {**config.get("rule", {}), "strokeWidth": LINE_SCALE}
    config["point"] = {**config.get("point", {}), "size": 120}
    config["circle"] = {**config.get("circle", {}), "size": 120}
    return spec


def plotly_for_projector(fig):
    """The same Plotly figure with projector-sized text, markers and lines (a copy)."""
    import plotly.graph_objects as go

    fig = go.Figure(fig)
    fig.update_layout(
        font_size=PROJECTOR_TEXT,
        hoverlabel_font_size=PROJECTOR_TEXT,
        legend_font_size=PROJECTOR_TEXT,
        legend_grouptitlefont_size=PROJECTOR_TEXT,
    )
    if fig.layout.height:  # room for the bigger labels; positions are fractions of it
        fig.layout.height = int(fig.layout.height * GRAPH_ROW_SCALE)
    if fig.layout.width:
        fig.layout.width = int(fig.layout.width * GRAPH_ROW_SCALE)
        margin = fig.layout.margin  # the side margins hold labels: they grow with them
        if margin.l is not None:
            margin.l = int(margin.l * GRAPH_ROW_SCALE)
        if margin.r is not None:
            margin.r = int(margin.r * GRAPH_ROW_SCALE)
    for trace in fig.data:
        if getattr(trace, "textfont", None) is not None:
            trace.textfont.size = PROJECTOR_TEXT
        line = getattr(trace, "line", None)
        if line is not None and line.width:
            line.width = line.width * LINE_SCALE
        marker = getattr(trace, "marker", None)
        if marker is not None and isinstance(marker.size, int | float):
            marker.size = marker.size * 1.4
            if marker.line is not None and marker.line.width:
                marker.line.width = marker.line.width * LINE_SCALE
    return fig
