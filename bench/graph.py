"""Item 3: building the attention-graph figure with every edge drawn.

Ours: `lib.viz.graph.select_edges` + `lib.viz.graph.attention_graph` (edges grouped into a
few traces by width). Baseline: one Plotly trace per edge, as the seed's original
implementation drew it, written here only for the comparison. Both draw the same edges at
the same coordinates.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from bench.common import interleaved, median
from lib.analysis.attention import StepAttention, all_steps
from lib.config import MAX_LINE_WIDTH, MIN_LINE_WIDTH
from lib.model.result import GenerationResult
from lib.viz.graph import (
    CURVE_BULGE,
    CURVE_DEPTH,
    X_IN,
    X_OUT,
    GraphEdges,
    _esc,
    _ys,
    attention_graph,
    select_edges,
)

CURVE_POINTS = 12  # the seed sampled each curve as a 12-point Bezier polyline
TIME_TARGET_S = 0.100
SPEEDUP_TARGET = 10.0
JSON_TARGET_BYTES = 1_000_000


def one_trace_per_edge(
    prompt_labels: tuple[str, ...], generated_labels: tuple[str, ...], edges: GraphEdges
) -> go.Figure:
    """The seed's way: a go.Scatter for every edge, then the two token columns."""
    y_in, y_out = _ys(len(prompt_labels)), _ys(len(generated_labels))
    top = max(float(edges.weight.max()), 1e-12) if len(edges) else 1.0
    traces = []
    t = np.linspace(0, 1, CURVE_POINTS)
    for k, s, d, w, r in zip(
        edges.kind.tolist(),
        edges.src.tolist(),
        edges.dst.tolist(),
        edges.weight.tolist(),
        edges.raw.tolist(),
        strict=True,
    ):
        rel = w / top
        if k == 0:
            xs, ys = [X_IN, X_OUT], [float(y_in[s]), float(y_out[d])]
            colour, src = f"rgba(31,119,180,{0.25 + 0.65 * rel:.2f})", prompt_labels[s]
        else:
            y0, y1 = float(y_out[s]), float(y_out[d])
            cx = X_OUT - CURVE_DEPTH - CURVE_BULGE * abs(y1 - y0)
            xs = ((1 - t) ** 2 * X_OUT + 2 * (1 - t) * t * cx + t**2 * X_OUT).tolist()
            ys = ((1 - t) ** 2 * y0 + 2 * (1 - t) * t * (y0 + y1) / 2 + t**2 * y1).tolist()
            colour, src = f"rgba(255,127,14,{0.25 + 0.65 * rel:.2f})", generated_labels[s]
        traces.append(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={
                    "width": MIN_LINE_WIDTH + (MAX_LINE_WIDTH - MIN_LINE_WIDTH) * rel,
                    "color": colour,
                },
                hoverinfo="text",
                text=f"{_esc(src)} → {_esc(generated_labels[d])}<br>"
                f"normalised {w:.4f} · raw {r:.5f}",
                showlegend=False,
            )
        )
    for labels, x, ys in ((prompt_labels, X_IN, y_in), (generated_labels, X_OUT, y_out)):
        traces.append(
            go.Scatter(
                x=[x] * len(labels),
                y=ys.tolist(),
                mode="markers+text",
                text=[_esc(lb) for lb in labels],
                marker={"size": 13},
                showlegend=False,
            )
        )
    return go.Figure(traces)


def measure(result: GenerationResult, repeats: int, baseline_repeats: int) -> dict:
    steps: list[StepAttention] = all_steps(result)
    current = result.n_steps - 1
    prompt, generated = result.prompt_labels, result.generated_labels

    def ours() -> go.Figure:
        edges = select_edges(steps, current, 0.0, show_all=True)
        return attention_graph(prompt, generated, edges, current)

    def seed() -> go.Figure:
        edges = select_edges(steps, current, 0.0, show_all=True)
        return one_trace_per_edge(prompt, generated, edges)

    fig = ours()
    edges = select_edges(steps, current, 0.0, show_all=True)
    json_bytes = len(pio.to_json(fig, validate=False).encode())
    seed_fig = seed()
    seed_json_bytes = len(pio.to_json(seed_fig, validate=False).encode())
    to_json = interleaved({"ours": lambda: pio.to_json(fig, validate=False)}, repeats)

    fast = interleaved({"ours": ours}, repeats)
    # The baseline takes seconds a build: fewer rounds, still taking turns with ours.
    slow = interleaved({"ours": ours, "seed": seed}, baseline_repeats, warmup=False)
    ours_s = median(fast["wall"]["ours"])
    ours_paired = median(slow["wall"]["ours"])
    seed_s = median(slow["wall"]["seed"])
    return {
        "prompt_tokens": len(prompt),
        "generated_tokens": len(generated),
        "edges": len(edges),
        "traces_ours": len(fig.data),
        "traces_seed": len(seed_fig.data),
        "build_s": ours_s,
        "build_cpu_s": median(fast["cpu"]["ours"]),
        "to_json_s": median(to_json["wall"]["ours"]),
        "seed_build_s": seed_s,
        "speedup_vs_seed": seed_s / ours_paired,
        "json_bytes": json_bytes,
        "seed_json_bytes": seed_json_bytes,
        "times_s": {"ours": fast["wall"]["ours"], "paired": slow["wall"]},
    }


def run(result: GenerationResult, repeats: int, baseline_repeats: int, log) -> dict:
    log(
        f"graph: {len(result.prompt_labels)} prompt x {result.n_steps} generated tokens, "
        "threshold 0, show all"
    )
    m = measure(result, repeats, baseline_repeats)
    return m | {
        "target": "build <= 100 ms, >= 10x faster than one trace per edge, JSON < 1 MB",
        "ok": m["build_s"] <= TIME_TARGET_S
        and m["speedup_vs_seed"] >= SPEEDUP_TARGET
        and m["json_bytes"] < JSON_TARGET_BYTES,
    }
