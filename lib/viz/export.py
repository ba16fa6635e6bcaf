"""Take the lesson home: figures as PNG and SVG, and a run as one offline HTML file.

Vega-Lite charts become images with vl-convert (Vega's own renderer, no browser); the
attention graph downloads itself from Plotly's toolbar in the app and in the file. The
HTML file holds the text, the graph with a slider over every step, and the attention
matrix, with plotly.js inlined: it opens in any browser with no network.

Escaping holds exactly as in the app: token text reaches Plotly only through the graph's
own escaping (`attention_graph`), the page's text through `html.escape`, and the matrix as
an SVG that Vega writes with its text escaped. Nothing a user typed becomes markup.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from lib.analysis.attention import StepAttention, aggregate
from lib.config import MAX_GRAPH_PROMPT
from lib.labels import bidi_visible
from lib.model.result import GenerationResult
from lib.train.pool import PooledRun
from lib.viz.graph import attention_graph, select_edges, window_edges
from lib.viz.matrices import MAX_AXIS, heatmap, matrix_caption, view
from lib.viz.text import graph_caption

IMAGE_SCALE = 2  # PNG pixels per CSS pixel: sharp on slides and projectors


def chart_svg(spec: dict) -> str:
    """A Vega-Lite chart (`chart.to_dict()`) as SVG."""
    import vl_convert

    return vl_convert.vegalite_to_svg(spec)


def chart_png(spec: dict) -> bytes:
    """A Vega-Lite chart as PNG at IMAGE_SCALE."""
    import vl_convert

    return vl_convert.vegalite_to_png(spec, scale=IMAGE_SCALE)


def graph_every_step(
    r: GenerationResult, steps: Sequence[StepAttention], threshold: float, top_k: int | None
) -> tuple[go.Figure, int]:
    """The attention graph with a slider over every step (each step's traces, only the
    chosen step's visible: the app draws one step per figure; a file cannot rerun), and
    the number of lines drawn over all steps.

    A long prompt is drawn as its last MAX_GRAPH_PROMPT tokens, as the app first shows it.
    """
    labels = r.prompt_labels
    lo = max(0, len(labels) - MAX_GRAPH_PROMPT)
    figures, n_edges = [], 0
    for s in range(r.n_steps):
        edges = window_edges(select_edges(list(steps), s, threshold, top_k=top_k), lo, len(labels))
        n_edges += len(edges)
        figures.append(attention_graph(labels[lo:], r.generated_labels, edges, s))
    counts = [len(f.data) for f in figures]
    fig = go.Figure(layout=figures[0].layout)
    for s, f in enumerate(figures):
        for trace in f.data:
            trace.visible = s == 0
            fig.add_trace(trace)
    starts = np.cumsum([0, *counts])
    slider_steps = []
    for s in range(r.n_steps):
        visible = [False] * int(starts[-1])
        visible[starts[s] : starts[s + 1]] = [True] * counts[s]
        slider_steps.append(
            {"label": str(s + 1), "method": "restyle", "args": [{"visible": visible}]}
        )
    fig.update_layout(
        sliders=[
            {
                "active": 0,
                "currentvalue": {"prefix": "Generation step "},
                "steps": slider_steps,
                "y": 0,
                "yanchor": "top",
                "pad": {"t": 130},  # below the line-width legend
            }
        ],
        clickmode="none",  # no app to filter by a click here
        height=fig.layout.height + 150,
    )
    return fig, n_edges


def lesson_page(
    r: GenerationResult,
    steps: Sequence[StepAttention],
    layer: int | None,
    head: int | None,
    hide: bool,
    threshold: float,
    top_k: int | None,
) -> str:
    """The run's offline page, drawn with a view's settings (`steps` are that view's)."""
    graph, n_edges = graph_every_step(r, steps, threshold, top_k)
    note = graph_caption(r, layer, head, hide, threshold, n_edges, top_k)
    note = note.replace("shown)", "shown over all steps)")
    keys = len(r.token_ids) - 1
    rows = r.prompt_len - 1 + np.arange(r.n_steps)
    v = view(aggregate(r, layer, head), rows, r.texts, hide, max(0, keys - MAX_AXIS))
    caption = matrix_caption(r, layer, head, hide)
    if keys > MAX_AXIS:
        caption += f" The last {MAX_AXIS} of {keys} key columns are drawn."
    return run_html(r, graph, note, chart_svg(heatmap(v).to_dict()), caption)


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px;
  color: #1b1f24; padding: 0 1rem; }}
pre {{ white-space: pre-wrap; background: #f6f8fa; padding: 1rem; border-radius: 6px;
  font-size: 1rem; }}
.note {{ color: #555; font-size: 0.9rem; }}
.matrix {{ overflow-x: auto; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="note">{meta}</p>
<h2>1. The text</h2>
<p class="note">The prompt, then what the model wrote.</p>
<pre>{text}</pre>
<h2>2. What each generated token attended to</h2>
<p class="note">{graph_note}</p>
{graph}
<h2>3. The attention matrix</h2>
<p class="note">{matrix_note}</p>
<div class="matrix">{matrix}</div>
<p class="note">Made with the Token Attention Visualizer. This file needs no network: the
plotting library is inside it.</p>
</body>
</html>
"""


def run_html(
    r: GenerationResult,
    graph: go.Figure,
    graph_note: str,
    matrix_svg: str,
    matrix_note: str,
) -> str:
    """One self-contained page for the run (see the module docstring for the escaping)."""
    title = f"What {r.model_name} attended to"
    meta = (
        f"{r.model_name} · {r.settings.sampling.describe()} · {r.n_steps} tokens generated · "
        f"{len(r.prompt_labels)} prompt tokens"
    )
    plot = pio.to_html(
        graph,
        include_plotlyjs=True,  # inlined: opens offline
        full_html=False,
        config={"displaylogo": False, "toImageButtonOptions": {"scale": IMAGE_SCALE}},
    )
    return PAGE.format(
        title=html.escape(title),
        meta=html.escape(meta),
        text=html.escape(bidi_visible(r.prompt + r.generated_text)),
        graph_note=html.escape(graph_note),
        graph=plot,
        matrix_note=html.escape(matrix_note),
        matrix=matrix_svg,
    )


CLASS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>The class's induction heads</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px;
  color: #1b1f24; padding: 0 1rem; }}
.note {{ color: #555; font-size: 0.9rem; }}
table {{ border-collapse: collapse; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 0.3rem 0.8rem; text-align: left; }}
</style>
</head>
<body>
<h1>The class's induction heads</h1>
<p class="note">{meta}</p>
<p>{summary}</p>
<div>{chart}</div>
<p class="note">Each line is one student's run of the induction lab: a two-layer
attention-only transformer trained on repeated random tokens. Above, its loss on the
second, copyable half of each sequence; below, the best induction score of any of its
heads. A dot marks the run's phase change.</p>
{table}
<p class="note">Made with the Token Attention Visualizer. This file needs no network.</p>
</body>
</html>
"""


def class_page(runs: Sequence[PooledRun], when: str) -> str:
    """The class pool as one offline page: the overlay as SVG (Vega escapes its text), the
    table through `html.escape`."""
    from lib.viz.training import pool_chart, pool_summary, pool_table

    table = pool_table(runs)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in table.itertuples(index=False)
    )
    return CLASS_PAGE.format(
        meta=html.escape(when),
        summary=html.escape(pool_summary(runs)),
        chart=chart_svg(pool_chart(runs).to_dict()),
        table=f"<table><tr>{head}</tr>{rows}</table>",
    )


def _cell(v) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)
