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
PALETTE = qualitative.Dark24  # the largest families, one distinct colour each
OTHER_COLOUR = "#9fb3c8"  # every smaller family, in one colour (named in the hover)
NOISE_COLOUR = "#d0d0d0"
HIDDEN_TEXT = "(a student's run, not shared: text hidden)"


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
    texts: np.ndarray | None = None,
    marks_name: str = "your run's tokens",
) -> go.Figure:
    """The map of `rows` of `points`, coloured by "cluster" or "zone"; `marks` are extra
    points (the current run's tokens, or fingerprints arriving: (n, 2) positions and their
    labels) drawn as stars named `marks_name`.
    `texts` (one per point; default the points' contexts) is what the hover says. By
    family, the len(PALETTE) largest families have a colour each and the rest share one,
    so no two families look alike."""
    fig = go.Figure()
    clusters = points["cluster"].to_numpy()[rows]
    if colour_by == "cluster":
        sizes = points["cluster"].value_counts()
        ranked = [int(c) for c in sizes.index if c >= 0]  # largest first
        coloured = {c: PALETTE[i] for i, c in enumerate(ranked[: len(PALETTE)])}
        groups = np.array([c if c in coloured or c < 0 else -2 for c in clusters.tolist()])
        keys = [c for c in [*coloured, -2, -1] if (groups == c).any()]
    else:
        groups = points["zone"].to_numpy()[rows]
        keys = [z for z in ZONES if (groups == z).any()]
    texts = points["context"].to_numpy() if texts is None else texts
    hover = (
        texts[rows].astype(str),
        points["zone"].to_numpy()[rows].astype(str),
        clusters,
    )
    for key in keys:
        m = groups == key
        idx = rows[m]
        if colour_by != "cluster":
            colour, name = ZONE_COLOUR[key], key
        elif key == -1:
            colour, name = NOISE_COLOUR, "no family"
        elif key == -2:
            n = len(set(clusters[m].tolist()))
            colour, name = OTHER_COLOUR, f"{n} smaller families"
        else:
            # Short legend entries keep the map wide; the full name is in the hover.
            colour, name = coloured[key], f"Family {key}"
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
                name=marks_name,
                hovertext=[f"{_esc(marks_name)}: {_esc(t)}" for t in labels],
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
                # upright and all shown: a narrow column still names every bar
                axis=alt.Axis(labelAngle=-90, labelFontSize=12, labelOverlap=False),
            ),
            y=alt.Y("value:Q", scale=alt.Scale(domain=[0, 1]), title="value (0-1)"),
            tooltip=["dimension", alt.Tooltip("value:Q", format=".3f")],
        )
        .properties(height=220)
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


def point_attention_frame(labels, weights: np.ndarray, last: int = 24) -> pd.DataFrame:
    """The keys a token attended to (`labels`: K strings, `weights`: (K,)), for a chart:
    the first token (where the attention sink sits) and the `last` tokens before the
    query, a row per key in position order (the caller says what share was left out)."""
    k = len(labels)
    keep = sorted({0, *range(max(0, k - last), k)})
    return pd.DataFrame(
        {
            "position": keep,
            "key": [f"{i}: {labels[i]}" for i in keep],
            "weight": np.asarray(weights, float)[keep],
        }
    )


def point_attention_chart(df: pd.DataFrame) -> alt.Chart:
    """Bars of one token's attention over the keys before it (`point_attention_frame`)."""
    return (
        alt.Chart(df)
        .mark_bar(color="#000080")
        .encode(
            x=alt.X(
                "key:N",
                sort=df["key"].tolist(),
                title="earlier tokens (position: token)",
                axis=alt.Axis(labelAngle=-90, labelFontSize=12, labelLimit=160, labelOverlap=False),
            ),
            y=alt.Y("weight:Q", scale=alt.Scale(domain=[0, 1]), title="attention weight"),
            tooltip=["key", alt.Tooltip("weight:Q", format=".3f")],
        )
        .properties(height=240)
    )
