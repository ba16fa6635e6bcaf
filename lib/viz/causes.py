"""Cause and effect: the direct logit attribution waterfall and head grid, the patching
heatmap, and the captions that say what was measured. Token text is data (axis labels,
hover text), never markup."""

from __future__ import annotations

from html import escape

import numpy as np
import plotly.graph_objects as go

from lib.analysis.attribution import LogitAttribution
from lib.analysis.patching import SMALL_SPAN, PatchSweep

UP, DOWN, TOTAL = "#2a9d8f", "#e76f51", "#264653"


def attribution_parts(a: LogitAttribution) -> tuple[list[str], np.ndarray]:
    """The waterfall's bars in the stream's order: the embedding, then each layer's
    attention and MLP, then the biases (names, values)."""
    parts = a.parts()
    return [p[0] for p in parts], np.array([p[1] for p in parts], dtype=np.float64)


def attribution_waterfall(a: LogitAttribution, token: str) -> go.Figure:
    names, values = attribution_parts(a)
    fig = go.Figure(
        go.Waterfall(
            x=[*names, "logit"],
            y=[*values.tolist(), 0.0],
            measure=["relative"] * len(values) + ["total"],
            increasing={"marker": {"color": UP}},
            decreasing={"marker": {"color": DOWN}},
            totals={"marker": {"color": TOTAL}},
            hovertemplate="%{x}: %{y:+.3f}<extra></extra>",
            connector={"visible": False},
        )
    )
    fig.update_layout(
        height=380,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        title={"text": escape(f"What wrote the logit of {token!r}"), "font": {"size": 14}},
        xaxis={"tickangle": -60, "tickfont": {"size": 9}},
        yaxis={"title": "logit"},
        showlegend=False,
    )
    return fig


def head_grid(a: LogitAttribution) -> go.Figure:
    """(L, H) each head's direct contribution, blue up and red down around 0."""
    limit = float(np.abs(a.heads).max()) or 1.0
    fig = go.Figure(
        go.Heatmap(
            z=a.heads, zmin=-limit, zmax=limit, colorscale="RdBu_r",
            hovertemplate="layer %{y} head %{x}: %{z:+.3f}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(
        height=360, margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis={"title": "head", "dtick": 1}, yaxis={"title": "layer", "autorange": "reversed"},
    )  # fmt: skip
    return fig


def attribution_caption(a: LogitAttribution, token: str) -> str:
    names, values = attribution_parts(a)
    top = np.argsort(-np.abs(values))[:3]
    biggest = "; ".join(f"{names[i]} {values[i]:+.2f}" for i in top)
    head = np.unravel_index(int(np.argmax(np.abs(a.heads))), a.heads.shape)
    return (
        f"The logit of {token!r} at step {a.step + 1} is {a.logit:.3f}; the parts add up "
        f"to {a.total:.3f}. Largest: {biggest}. Strongest head: L{head[0]} H{head[1]} "
        f"({a.heads[head]:+.3f}). Measured directly: each part's vector through the final "
        f"norm and the unembedding, with the norm's scale frozen at its value in this run "
        f"(x {a.scale:.4f}); not what a part caused through the layers after it."
    )


def patch_heatmap(sweep: PatchSweep, columns: list[str]) -> go.Figure:
    """Layers down, positions (or heads) across: the recovered fraction of each patch."""
    columns = [escape(c) for c in columns]  # Plotly draws some HTML in labels and hovers
    fig = go.Figure(
        go.Heatmap(
            z=sweep.recovered, x=list(range(len(columns))), y=list(sweep.layer_ids),
            zmid=0.0, colorscale="RdBu_r", customdata=np.tile(columns, (len(sweep.layer_ids), 1)),
            hovertemplate="layer %{y}, %{customdata}: %{z:.3f}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(
        height=120 + 14 * len(sweep.layer_ids), margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis={"tickmode": "array", "tickvals": list(range(len(columns))),
               "ticktext": columns, "tickangle": -45},
        yaxis={"title": "layer", "autorange": "reversed"},
    )  # fmt: skip
    return fig


def strongest(sweep: PatchSweep) -> tuple[int, int, float]:
    """(layer, column, recovered) of the patch that brings back the most."""
    i, j = np.unravel_index(int(np.argmax(sweep.recovered)), sweep.recovered.shape)
    return int(sweep.layer_ids[i]), int(j), float(sweep.recovered[i, j])


def patch_caption(sweep: PatchSweep, columns: list[str]) -> str:
    span = abs(sweep.clean - sweep.corrupted)
    if span < SMALL_SPAN:
        return (
            f"The two prompts' logit differences are {sweep.clean:+.3f} and "
            f"{sweep.corrupted:+.3f}, {span:.3f} apart: too close for the fractions to mean "
            "much (each is divided by that gap). Pick answers the two prompts disagree on."
        )
    layer, j, value = strongest(sweep)
    where = f"head {j}" if sweep.site == "head" else f"position {j} ({columns[j]})"
    return (
        f"Strongest: layer {layer}, {where}, recovers {value:.3f} of the difference. "
        f"Logit difference clean {sweep.clean:+.3f}, corrupted {sweep.corrupted:+.3f}; "
        "each cell is one patched run: recovered = (patched - corrupted) / (clean - "
        "corrupted), 1 = that activation alone brings the clean answer back."
    )
