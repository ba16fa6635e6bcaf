"""The step-by-step attention graph as one Plotly figure.

Prompt tokens sit at x = 0.1 of the plot's width, generated tokens at x = 0.9, y by
`linspace` (the x axis counts tenths, 0..10, so those positions
travel as the whole numbers 1 and 9, one byte each). Blue lines join a generated token to
the prompt tokens it attends to; orange curves to earlier generated tokens. Line width is
MIN_LINE_WIDTH + (MAX_LINE_WIDTH - MIN_LINE_WIDTH) x the normalised weight, on that one
fixed scale for every step (`line_width`), with the weight rounded to the nearest 1 /
WIDTH_STEPS so that edges are grouped into a few traces (not one trace per edge): weight 0
draws exactly MIN_LINE_WIDTH, weight 1 exactly MAX_LINE_WIDTH, and every width is within
(MAX - MIN) / (2 x WIDTH_STEPS) of the exact one.
Coordinates are numpy arrays (sent as binary, never validated value by value), so a
200 x 50 graph with every edge drawn builds in well under 100 ms and its JSON stays under
1 MB.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from lib.analysis.attention import StepAttention
from lib.config import MAX_LINE_WIDTH, MIN_LINE_WIDTH, PLOT_HEIGHT, PLOT_WIDTH
from lib.labels import PARTIAL_NOTE, is_partial, step_label

X_IN, X_OUT, X_RANGE = 1, 9, (0, 10)  # tenths of the width: x = 0.1 and 0.9
BLUE, ORANGE = (31, 119, 180), (255, 127, 14)
INPUT_COLOUR, FUTURE_COLOUR = "#c6dbef", "#e6e6e6"
CURRENT_COLOUR, PAST_COLOUR, SELECTED_COLOUR = "coral", "pink", "yellow"
WIDTH_STEPS = 10  # weights to the nearest 0.1: widths 0.5, 0.75, ... 3.0 px, both ends drawn
LEGEND_WEIGHTS = (0.1, 0.3, 0.6, 1.0)
CURVE_DEPTH, CURVE_BULGE = 0.4, 1.7  # the curve control point: X_OUT - depth - bulge*|dy|
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
    top_k: int | None = None,
) -> GraphEdges:
    """Edges above `threshold` for the steps in view, or, with `top_k`, the k strongest
    lines to prompt tokens and the k strongest to earlier generated tokens of each step
    (whatever their weight: a long prompt spreads attention below any fixed threshold).

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
            idx = np.flatnonzero(w > threshold) if top_k is None else strongest(w, top_k)
            if selected is not None and selected[0] == "input":
                idx = idx[idx == selected[1]] if kind == 0 else idx[:0]
            parts.append((np.full(idx.size, kind), idx, np.full(idx.size, s), w[idx], raw[idx]))
    empty = np.zeros(0, dtype=np.int64)
    parts = parts or [(empty, empty, empty, empty, empty)]
    kind, src, dst, weight, raw = (np.concatenate(cols) for cols in zip(*parts, strict=True))
    return GraphEdges(
        kind.astype(np.int8),
        src.astype(np.int64),
        dst.astype(np.int64),
        weight.astype(np.float32),
        raw.astype(np.float32),
    )


def strongest(weights: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest weights, in index order (ties: the earlier token)."""
    k = max(0, min(int(k), weights.size))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    return np.sort(np.argsort(-weights, kind="stable")[:k])


def width_bin(weight: np.ndarray) -> np.ndarray:
    """Each normalised weight to the nearest of 0, 1/WIDTH_STEPS, ..., 1, as its index."""
    return np.clip(np.rint(np.asarray(weight) * WIDTH_STEPS).astype(int), 0, WIDTH_STEPS)


def line_width(weight: np.ndarray | float) -> np.ndarray:
    """One scale: MIN_LINE_WIDTH at weight 0 to MAX_LINE_WIDTH at weight 1, the same
    for every step, at the weight rounded to the nearest 1 / WIDTH_STEPS."""
    frac = width_bin(weight) / WIDTH_STEPS
    return MIN_LINE_WIDTH + (MAX_LINE_WIDTH - MIN_LINE_WIDTH) * frac


def _rgba(rgb: tuple[int, int, int], weight: float) -> str:
    frac = float(width_bin(weight)) / WIDTH_STEPS
    return f"rgba({rgb[0]},{rgb[1]},{rgb[2]},{0.3 + 0.65 * frac:.2f})"


def window_edges(edges: GraphEdges, lo: int, hi: int) -> GraphEdges:
    """Only the edges from prompt tokens lo..hi-1 (and every output edge), with prompt
    indices renumbered from 0 as the figure draws the window."""
    keep = (edges.kind == 1) | ((edges.src >= lo) & (edges.src < hi))
    src = np.where(edges.kind == 0, edges.src - lo, edges.src)
    return GraphEdges(
        edges.kind[keep], src[keep], edges.dst[keep], edges.weight[keep], edges.raw[keep]
    )


def selection_from_event(event, n_prompt: int, n_generated: int, lo: int = 0) -> Selection:
    """The clicked token from a plotly_chart selection event, in run numbering, or None.

    The figure numbers prompt tokens within its window starting at `lo`; anything that is
    not a token marker, or out of range, is no selection.
    """
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    for point in points or []:
        data = point.get("customdata") if hasattr(point, "get") else None
        if not (data and len(data) == 2 and data[0] in ("input", "output")):
            continue
        side, idx = str(data[0]), int(data[1])
        idx = idx + lo if side == "input" else idx
        if 0 <= idx < (n_prompt if side == "input" else n_generated):
            return side, idx
    return None


def _ys(n: int) -> np.ndarray:
    return np.linspace(1.0, 0.0, n) if n > 1 else np.array([0.5])


def _segments(
    kind: int, src: np.ndarray, dst: np.ndarray, y_in: np.ndarray, y_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Polyline coordinates for many edges, separated by NaN (one trace draws them all).

    numpy arrays: Plotly sends them as binary typed arrays (float32: 4 bytes a value) without
    validating each value, and draws a NaN as a gap.
    """
    if kind == 0:
        n = src.size
        # The NaN in y makes the gap, so x can be int8.
        xs = np.tile(np.array([X_IN, X_OUT, X_OUT], dtype=np.int8), n)
        ys = np.column_stack([y_in[src], y_out[dst], np.full(n, np.nan)]).ravel()
        return xs, ys.astype(np.float32)
    # Curves between two generated tokens, bulging into the middle: Plotly's spline through
    # the ends and the apex of a quadratic Bezier (3 points a curve instead of 12 sampled).
    y0, y1 = y_out[src], y_out[dst]
    apex_x = X_OUT - 0.5 * (CURVE_DEPTH + CURVE_BULGE * np.abs(y1 - y0))
    edge = np.full(src.size, float(X_OUT))
    xs = np.column_stack([edge, apex_x, edge, edge])
    ys = np.column_stack([y0, (y0 + y1) / 2, y1, np.full(src.size, np.nan)])
    return xs.ravel().astype(np.float32), ys.ravel().astype(np.float32)


def _esc(label: str) -> str:
    """Plotly renders a little HTML in text; escape so tokens always show literally."""
    return html.escape(label, quote=False)


LABEL_FONT = 13  # px, the graph's text
CHAR_EM = 0.62  # a generous average width of one character, in em


def label_margin(labels) -> int:
    """The side margin (px) that shows the longest label whole beside its marker, at least
    10: the label needs its width and the marker's radius, less the tenth of the plot's
    width between the marker and the edge."""
    longest = max((len(str(lb)) for lb in labels), default=0)
    room = 0.1 * (PLOT_WIDTH - 20)
    return max(10, int(CHAR_EM * LABEL_FONT * longest + 14 - room) + 10)


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
        bins = width_bin(edges.weight)
        for kind, rgb in ((0, BLUE), (1, ORANGE)):
            for b in range(WIDTH_STEPS + 1):
                m = (edges.kind == kind) & (bins == b)
                if not m.any():
                    continue
                w = b / WIDTH_STEPS
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
                            "shape": "spline" if kind else "linear",
                            "width": float(line_width(w)),
                            "color": _rgba(rgb, w),
                        },
                    )
                )
        # Hover targets at each edge's midpoint: the two tokens and both weights.
        src_y = np.where(
            edges.kind == 0,
            y_in[np.minimum(edges.src, n_in - 1)],
            y_out[np.minimum(edges.src, n_out - 1)],
        )
        dy = np.abs(y_out[edges.dst] - src_y)
        apex = X_OUT - 0.5 * (CURVE_DEPTH + CURVE_BULGE * dy)  # on the curve, as _segments
        mid_x = np.where(edges.kind == 0, (X_IN + X_OUT) / 2, apex)
        mid_y = (src_y + y_out[edges.dst]) / 2
        # Per edge only what differs, in one object array: Plotly keeps it as it is, where
        # lists of 11,000 strings get validated and copied value by value (~40 ms). The hover
        # template holds the rest once. The browser gets [["edge", i, w, raw, from, to], ...].
        names = np.array([_esc(lb) for lb in (*prompt_labels, *generated_labels)], dtype=object)
        custom = np.empty((len(edges), 6), dtype=object)
        custom[:, 0] = "edge"
        custom[:, 1] = list(range(len(edges)))
        custom[:, 2] = np.round(edges.weight.astype(np.float64), 4)
        custom[:, 3] = np.round(edges.raw.astype(np.float64), 5)
        custom[:, 4] = names[np.where(edges.kind == 0, edges.src, n_in + edges.src)]
        custom[:, 5] = names[n_in + edges.dst]
        traces.append(
            go.Scatter(
                x=mid_x.astype(np.float32),
                y=mid_y.astype(np.float32),
                mode="markers",
                marker={"size": 7, "color": "rgba(0,0,0,0)"},
                hovertemplate="%{customdata[4]} → %{customdata[5]}<br>normalised "
                "%{customdata[2]:.4f} · raw %{customdata[3]:.5f}<extra></extra>",
                customdata=custom,
                showlegend=False,
                unselected=KEEP_LOOK,
            )
        )

    # The width scale, drawn once: the same widths mean the same weights on every step.
    # Before the token markers, which stay the figure's last two traces.
    for w in LEGEND_WEIGHTS:
        traces.append(
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines",
                name=f"weight {w:g}: {float(line_width(w)):g} px",  # the width drawn
                legendgroup="scale",
                legendgrouptitle={"text": "line width = normalised weight:"},
                line={"width": float(line_width(w)), "color": _rgba(BLUE, w)},
                hoverinfo="skip",
                showlegend=True,
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
                cliponaxis=False,  # a long label runs into the margin made for it
                marker={
                    "size": 13,
                    "color": [colour(side, i) for i in range(len(labels))],
                    "line": {"width": 1, "color": "#555"},
                },
                customdata=[[side, i] for i in range(len(labels))],
                hovertext=[
                    (f"prompt token {i}" if side == "input" else step_label(i, ""))
                    + f" “{_esc(lb)}”"
                    + (f"<br>{PARTIAL_NOTE}" if is_partial(lb) else "")
                    + "<br>click to filter"
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
    # Token labels sit beside their markers, a tenth of the plot's width from its edge; a
    # longer label gets a margin wide enough to show it whole.
    left, right = label_margin(prompt_labels), label_margin(generated_labels)
    fig.update_layout(
        width=PLOT_WIDTH + left + right - 20,
        height=max(PLOT_HEIGHT, ROW_PX * rows + 80),
        margin={"l": left, "r": right, "t": 40, "b": 40},
        legend={
            "orientation": "h",
            "x": 0.5,
            "xanchor": "center",
            "y": 0,
            "yanchor": "top",
            "itemclick": False,
            "itemdoubleclick": False,
        },
        font={"size": LABEL_FONT, "color": "#1b1f24"},
        xaxis={"visible": False, "range": list(X_RANGE), "fixedrange": True},
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


def toolbar_config(picture: str, file_stem: str) -> dict:
    """Plotly's toolbar for the graph: only its camera, which saves the step shown as a
    `picture` ("PNG" or "SVG") at twice the screen's pixels."""
    return {
        "displaylogo": False,
        "modeBarButtonsToRemove": [
            "zoom",
            "pan",
            "select",
            "lasso2d",
            "zoomIn",
            "zoomOut",
            "autoScale",
            "resetScale",
        ],
        "toImageButtonOptions": {"format": picture.lower(), "filename": file_stem, "scale": 2},
    }


def step_figures(
    result,
    steps: list[StepAttention],
    window,
    threshold: float,
    top_k: int | None,
    show_all: bool,
    selected: Selection,
    lo: int,
    hi: int,
    style=None,
) -> dict[str, dict]:
    """The graph at each 1-based step of `window` as figure JSON (data and layout, numpy
    arrays as Plotly's binary arrays), drawn exactly as the page draws that step (`style`:
    a last touch, such as projector mode): what the browser switches between."""
    import json

    import plotly.io as pio

    shown = (selected[0], selected[1] - lo) if selected and selected[0] == "input" else selected
    frames = {}
    for k in window:
        edges = window_edges(
            select_edges(steps, k - 1, threshold, show_all, selected, top_k), lo, hi
        )
        fig = attention_graph(
            result.prompt_labels[lo:hi], result.generated_labels, edges, k - 1, shown
        )
        frames[str(k)] = json.loads(pio.to_json(style(fig) if style else fig, validate=False))
    return frames
