"""The step-by-step attention graph (seed 000's layout) as one Plotly figure.

Prompt tokens sit on the left (x = 0.1), generated tokens on the right (x = 0.9). Blue lines
join a generated token to the prompt tokens it attends to; orange curves to earlier generated
tokens. Edges are grouped into a few traces by line width (not one trace per edge), so a
200 x 50 graph with every edge drawn stays small and quick to build.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from lib.attention import StepAttention
from lib.config import MAX_LINE_WIDTH, MIN_LINE_WIDTH, PLOT_HEIGHT, PLOT_WIDTH

X_IN, X_OUT = 0.1, 0.9
BLUE, ORANGE = (31, 119, 180), (255, 127, 14)
INPUT_COLOUR, FUTURE_COLOUR = "#c6dbef", "#e6e6e6"
CURRENT_COLOUR, PAST_COLOUR, SELECTED_COLOUR = "coral", "pink", "yellow"
WIDTH_BINS = 8
CURVE_POINTS = 12
ROW_PX = 18  # vertical pixels per token row when the graph must grow
KEEP_LOOK = {"marker": {"opacity": 1.0}}  # a click must not fade the rest of the graph

Selection = tuple[str, int] | None  # ("input", prompt index) or ("output", generated index)


@dataclass(frozen=True)
class GraphEdges:
    """The E connections to draw.

    kind    (E,) int8     0 = prompt token -> generated token, 1 = earlier output -> output
    src     (E,) int64    visible prompt index (kind 0) or generated index (kind 1)
    dst     (E,) int64    generated index whose query attends (the step)
    weight  (E,) float32  normalised weight (each kind per step sums to 1 before threshold)
    raw     (E,) float32  the raw softmax weight behind it
    """

    kind: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    raw: np.ndarray

    def __post_init__(self) -> None:
        n = self.kind.shape
        if not all(
            a.shape == n and a.ndim == 1 for a in (self.src, self.dst, self.weight, self.raw)
        ):
            raise ValueError("all edge arrays must be 1-D of the same length")

    def __len__(self) -> int:
        return int(self.kind.shape[0])


def select_edges(
    steps: list[StepAttention],
    current: int,
    threshold: float,
    show_all: bool = False,
    selected: Selection = None,
) -> GraphEdges:
    """Edges above `threshold` for the steps in view.

    By default only the current step's edges; `show_all` draws every step up to `current`.
    A selected prompt token keeps its edges to every step up to `current`; a selected
    generated token keeps only its own incoming edges.
    """
    if selected is not None and selected[0] == "output":
        in_view = [selected[1]] if selected[1] <= current else []
    elif show_all or selected is not None:
        in_view = list(range(current + 1))
    else:
        in_view = [current]
    parts = []
    for s in in_view:
        st = steps[s]
        for kind, w, raw in ((0, st.input_norm, st.input_raw), (1, st.output_norm, st.output_raw)):
            idx = np.flatnonzero(w > threshold)
            if selected is not None and selected[0] == "input":
                idx = idx[idx == selected[1]] if kind == 0 else idx[:0]
            parts.append((np.full(idx.size, kind), idx, np.full(idx.size, s), w[idx], raw[idx]))
    if not parts:
        empty = np.zeros(0)
        return GraphEdges(
            empty.astype(np.int8),
            empty.astype(np.int64),
            empty.astype(np.int64),
            empty.astype(np.float32),
            empty.astype(np.float32),
        )
    kind, src, dst, weight, raw = (np.concatenate(cols) for cols in zip(*parts, strict=True))
    return GraphEdges(
        kind.astype(np.int8),
        src.astype(np.int64),
        dst.astype(np.int64),
        weight.astype(np.float32),
        raw.astype(np.float32),
    )


def _ys(n: int) -> np.ndarray:
    return np.linspace(1.0, 0.0, n) if n > 1 else np.array([0.5])


def _segments(kind: int, src: np.ndarray, dst: np.ndarray, y_in, y_out) -> tuple[list, list]:
    """Polyline coordinates for many edges, separated by None (one trace draws them all)."""
    if kind == 0:
        n = src.size
        xs = np.tile([X_IN, X_OUT, np.nan], n)
        ys = np.column_stack([y_in[src], y_out[dst], np.full(n, np.nan)]).ravel()
    else:
        # Quadratic Bezier curves between two generated tokens, bulging into the middle.
        t = np.linspace(0, 1, CURVE_POINTS)[None, :]
        y0, y1 = y_out[src][:, None], y_out[dst][:, None]
        cx = X_OUT - 0.06 - 0.25 * np.abs(y1 - y0)
        bx = (1 - t) ** 2 * X_OUT + 2 * (1 - t) * t * cx + t**2 * X_OUT
        by = (1 - t) ** 2 * y0 + 2 * (1 - t) * t * (y0 + y1) / 2 + t**2 * y1
        pad = np.full((src.size, 1), np.nan)
        xs, ys = np.hstack([bx, pad]).ravel(), np.hstack([by, pad]).ravel()
    # NaN becomes null in the figure JSON, which Plotly draws as a gap.
    return np.round(xs, 4).tolist(), np.round(ys, 4).tolist()


def _esc(label: str) -> str:
    """Plotly renders a little HTML in text; escape so tokens always show literally."""
    return html.escape(label, quote=False)


def attention_graph(
    prompt_labels: tuple[str, ...] | list[str],
    generated_labels: tuple[str, ...] | list[str],
    edges: GraphEdges,
    current: int,
    selected: Selection = None,
) -> go.Figure:
    """The figure: token markers (clickable, customdata = [side, index]) and weighted edges."""
    n_in, n_out = len(prompt_labels), len(generated_labels)
    y_in, y_out = _ys(n_in), _ys(n_out)
    traces: list[go.Scatter] = []

    if len(edges):
        # Width in [MIN, MAX] proportional to weight relative to the strongest edge shown.
        rel = edges.weight / max(float(edges.weight.max()), 1e-12)
        bins = np.minimum((rel * WIDTH_BINS).astype(int), WIDTH_BINS - 1)
        for kind, rgb in ((0, BLUE), (1, ORANGE)):
            for b in range(WIDTH_BINS):
                m = (edges.kind == kind) & (bins == b)
                if not m.any():
                    continue
                frac = (b + 1) / WIDTH_BINS
                xs, ys = _segments(kind, edges.src[m], edges.dst[m], y_in, y_out)
                traces.append(
                    go.Scatter(
                        x=xs,
                        y=ys,
                        mode="lines",
                        hoverinfo="skip",
                        showlegend=False,
                        unselected=KEEP_LOOK,
                        line={
                            "width": MIN_LINE_WIDTH + (MAX_LINE_WIDTH - MIN_LINE_WIDTH) * frac,
                            "color": f"rgba({rgb[0]},{rgb[1]},{rgb[2]},{0.25 + 0.65 * frac:.2f})",
                        },
                    )
                )
        # Hover targets at each edge's midpoint: the two tokens and both weights.
        src_y = np.where(
            edges.kind == 0,
            y_in[np.minimum(edges.src, n_in - 1)],
            y_out[np.minimum(edges.src, n_out - 1)],
        )
        mid_x = np.where(edges.kind == 0, (X_IN + X_OUT) / 2, X_OUT - 0.05)
        mid_y = (src_y + y_out[edges.dst]) / 2
        text = [
            f"{_esc(prompt_labels[s] if k == 0 else generated_labels[s])} → "
            f"{_esc(generated_labels[d])}<br>normalised {w:.4f} · raw {r:.5f}"
            for k, s, d, w, r in zip(
                edges.kind.tolist(),
                edges.src.tolist(),
                edges.dst.tolist(),
                edges.weight.tolist(),
                edges.raw.tolist(),
                strict=True,
            )
        ]
        traces.append(
            go.Scatter(
                x=np.round(mid_x, 4).tolist(),
                y=np.round(mid_y, 4).tolist(),
                mode="markers",
                marker={"size": 7, "color": "rgba(0,0,0,0)"},
                hovertext=text,
                hoverinfo="text",
                customdata=[["edge", i] for i in range(len(edges))],
                showlegend=False,
                unselected=KEEP_LOOK,
            )
        )

    def colour(side: str, i: int) -> str:
        if selected == (side, i):
            return SELECTED_COLOUR
        if side == "input":
            return INPUT_COLOUR
        return CURRENT_COLOUR if i == current else PAST_COLOUR if i < current else FUTURE_COLOUR

    for side, labels, x, ys, pos in (
        ("input", prompt_labels, X_IN, y_in, "middle left"),
        ("output", generated_labels, X_OUT, y_out, "middle right"),
    ):
        traces.append(
            go.Scatter(
                x=[x] * len(labels),
                y=np.round(ys, 4).tolist(),
                mode="markers+text",
                text=[_esc(lb) for lb in labels],
                textposition=pos,
                marker={
                    "size": 13,
                    "color": [colour(side, i) for i in range(len(labels))],
                    "line": {"width": 1, "color": "#555"},
                },
                customdata=[[side, i] for i in range(len(labels))],
                hovertext=[
                    f"{'prompt' if side == 'input' else 'generated'} token {i}: {_esc(lb)}"
                    f"<br>click to filter"
                    for i, lb in enumerate(labels)
                ],
                hoverinfo="text",
                showlegend=False,
                name=side,
                unselected=KEEP_LOOK,
            )
        )

    fig = go.Figure(traces)
    rows = max(n_in, n_out)
    fig.update_layout(
        width=PLOT_WIDTH,
        height=max(PLOT_HEIGHT, ROW_PX * rows + 80),
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        font={"size": 13, "color": "#1b1f24"},
        xaxis={"visible": False, "range": [-0.25, 1.25], "fixedrange": True},
        yaxis={"visible": False, "range": [-0.03, 1.03], "fixedrange": True},
        plot_bgcolor="white",
        hovermode="closest",
        clickmode="event+select",
        dragmode=False,
        annotations=[
            {
                "x": X_IN,
                "y": 1.0,
                "text": "<b>prompt</b>",
                "showarrow": False,
                "xref": "x",
                "yref": "paper",
                "yanchor": "bottom",
            },
            {
                "x": X_OUT,
                "y": 1.0,
                "text": "<b>generated</b>",
                "showarrow": False,
                "xref": "x",
                "yref": "paper",
                "yanchor": "bottom",
            },
        ],
    )
    return fig
