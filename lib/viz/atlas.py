"""The atlas map and its tables: a WebGL scatter of every fingerprint, and family cards.

Points travel as one WebGL trace per colour group (clusters or zones), so 100,000 points
draw in the browser's GPU; each point's customdata is its row in the points table, which is
how a click is read back.
"""

from __future__ import annotations

import html

import altair as alt
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from lib.analysis.fingerprint import DIMENSIONS, ZONES
from lib.viz.fingerprint import ZONE_COLOURS

ZONE_COLOUR = dict(zip(ZONES, ZONE_COLOURS, strict=True))  # the fingerprint page's colours
PALETTE = qualitative.Dark24 + qualitative.Light24  # 48 distinct colours for families
NOISE_COLOUR = "#d0d0d0"


def _esc(text: str) -> str:
    """Plotly renders a little HTML in hover text: escape so tokens always show literally."""
    return html.escape(str(text), quote=False)


def filter_points(
    points: pd.DataFrame,
    models: list[str] | None = None,
    zones: list[str] | None = None,
    clusters: list[int] | None = None,
) -> np.ndarray:
    """Row indices of the points that pass the filters (None or empty: no filter)."""
    keep = np.ones(len(points), dtype=bool)
    if models:
        keep &= points["model"].isin(models).to_numpy()
    if zones:
        keep &= points["zone"].isin(zones).to_numpy()
    if clusters:
        keep &= points["cluster"].isin(clusters).to_numpy()
    return np.flatnonzero(keep)


def atlas_map(
    points: pd.DataFrame,
    rows: np.ndarray,
    colour_by: str,
    names: dict[int, str],
    marks: tuple[np.ndarray, list[str]] | None = None,
    selected: int | None = None,
) -> go.Figure:
    """The map of `rows` of `points`, coloured by "cluster" or "zone"; `marks` are extra
    points (the current run's tokens: (n, 2) positions and their labels) drawn as stars."""
    fig = go.Figure()
    groups = points["cluster"].to_numpy()[rows] if colour_by == "cluster" else None
    if colour_by == "cluster":
        keys = sorted(set(groups.tolist()), key=lambda c: (c < 0, c))
    else:
        zones = points["zone"].to_numpy()[rows]
        keys = [z for z in ZONES if (zones == z).any()]
    hover = (
        points["context"].to_numpy()[rows].astype(str),
        points["zone"].to_numpy()[rows].astype(str),
        points["cluster"].to_numpy()[rows],
    )
    for i, key in enumerate(keys):
        m = (groups == key) if colour_by == "cluster" else (zones == key)
        idx = rows[m]
        if colour_by == "cluster":
            colour = NOISE_COLOUR if key < 0 else PALETTE[i % len(PALETTE)]
            # Short legend entries keep the map wide; the full name is in the hover.
            name = "no family" if key < 0 else f"Family {key}"
        else:
            colour, name = ZONE_COLOUR[key], key
        text = [
            f"{_esc(c)}<br>zone {z} · "
            + ("no family" if k < 0 else _esc(names.get(int(k), f"Family {k}")))
            for c, z, k in zip(hover[0][m], hover[1][m], hover[2][m], strict=True)
        ]
        fig.add_trace(
            go.Scattergl(
                x=points["x"].to_numpy(np.float32)[idx],
                y=points["y"].to_numpy(np.float32)[idx],
                mode="markers",
                marker={"size": 4, "color": colour, "opacity": 0.7},
                name=name,
                customdata=idx,
                hovertext=text,
                hoverinfo="text",
            )
        )
    if marks is not None and len(marks[0]):
        xy, labels = marks
        fig.add_trace(
            go.Scatter(
                x=xy[:, 0],
                y=xy[:, 1],
                mode="markers",
                marker={
                    "symbol": "star",
                    "size": 13,
                    "color": "#111111",
                    "line": {"width": 1, "color": "white"},
                },
                name="your run's tokens",
                hovertext=[f"your run: {_esc(t)}" for t in labels],
                hoverinfo="text",
            )
        )
    if selected is not None:
        fig.add_trace(
            go.Scatter(
                x=[points["x"].iloc[selected]],
                y=[points["y"].iloc[selected]],
                mode="markers",
                marker={
                    "symbol": "circle-open",
                    "size": 18,
                    "color": "#ffbf00",
                    "line": {"width": 3},
                },
                name="selected",
                hoverinfo="skip",
            )
        )
    fig.update_layout(
        height=620,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        dragmode="pan",
        xaxis={"visible": False},
        yaxis={"visible": False, "scaleanchor": "x"},
        # Below the map, so the map keeps the page's width however many families there are.
        legend={
            "font": {"size": 13},
            "itemsizing": "constant",
            "orientation": "h",
            "yanchor": "top",
            "y": -0.02,
            "xanchor": "left",
            "x": 0,
        },
        hoverlabel={"font": {"size": 14}},
        plot_bgcolor="white",
    )
    return fig


def point_from_event(event, n_points: int) -> int | None:
    """The clicked map point's row from a plotly_chart selection event, or None."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for p in points or []:
        data = p.get("customdata") if hasattr(p, "get") else None
        if isinstance(data, list):
            data = data[0] if data else None
        if isinstance(data, int | float) and 0 <= int(data) < n_points:
            return int(data)
    return None


def fingerprint_bars(vector: np.ndarray) -> alt.Chart:
    """The 20 numbers of one fingerprint as bars, named."""
    df = pd.DataFrame({"dimension": list(DIMENSIONS), "value": np.asarray(vector, float)})
    return (
        alt.Chart(df)
        .mark_bar(color="#000080")
        .encode(
            x=alt.X(
                "dimension:N",
                sort=list(DIMENSIONS),
                title=None,
                axis=alt.Axis(labelAngle=-45, labelFontSize=12),
            ),
            y=alt.Y("value:Q", scale=alt.Scale(domain=[0, 1]), title="value (0-1)"),
            tooltip=["dimension", alt.Tooltip("value:Q", format=".3f")],
        )
        .properties(height=220, width=620)
    )


def placement_table(labels: list[str], zones, clusters, confidence, names) -> pd.DataFrame:
    """The current run's tokens with their zone, family and confidence."""
    return pd.DataFrame(
        {
            "token": labels,
            "zone": list(zones),
            "family": [names.get(int(c), "none (noise)") for c in clusters],
            "confidence": np.asarray(confidence, dtype=float),
        }
    )
