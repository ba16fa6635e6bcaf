"""Take the lesson home: the offline HTML file and chart pictures, on the
real bundled model. Values in the file are checked against the run's own attention rows,
and hostile token text must stay text."""

from __future__ import annotations

import html
import json

import numpy as np
import pytest

from lib.analysis.attention import aggregate, all_steps
from lib.labels import bidi_visible
from lib.model.generation import generate
from lib.viz import export
from lib.viz.matrices import heatmap, view
from tests.inputs import INJECTION

THRESHOLD = 0.05


@pytest.fixture(scope="module")
def hostile_run(smollm2):
    return generate(smollm2, INJECTION, 6)


def lesson(r) -> str:
    return export.lesson_page(r, all_steps(r), None, None, False, THRESHOLD, None)


def figure_json(page: str) -> dict:
    """The figure Plotly.newPlot draws in the file: its data and layout arguments."""
    call = page[page.index("Plotly.newPlot(") :]
    start = call.index("[")
    data, end = json.JSONDecoder().raw_decode(call, start)
    layout, _ = json.JSONDecoder().raw_decode(call, call.index("{", end))
    return {"data": data, "layout": layout}


def test_the_file_holds_every_step_with_the_models_weights(hostile_run):
    r = hostile_run
    fig = figure_json(lesson(r))
    slider = fig["layout"]["sliders"][0]["steps"]
    assert len(slider) == r.n_steps
    mean = r.attention.mean(axis=(1, 2))  # independently: (steps, keys), every layer and head
    for s, step in enumerate(slider):
        shown = [t for t, on in zip(fig["data"], step["args"][0]["visible"], strict=True) if on]
        edges = [row for t in shown for row in (t.get("customdata") or []) if row[0] == "edge"]
        # prompt tokens the query of step s can see (no BOS for this tokenizer), normalised
        row = mean[s, : r.prompt_len]
        want = row / (row.sum() + 1e-8)
        drawn = sorted(float(e[2]) for e in edges if e[4] in {html.escape(x) for x in r.texts})
        expected = sorted(
            round(float(x), 4) for x in want[want > THRESHOLD]
        )  # the blue lines: prompt keys above the threshold
        for value in expected:
            assert any(abs(value - d) < 1e-4 for d in drawn), (s, value, drawn)


def test_token_text_stays_text_in_the_file(hostile_run):
    page = lesson(hostile_run)
    for raw in ("<img src=x onerror=alert(1)>", "<script>alert(1)</script>", "<img src=x"):
        assert raw not in page, raw  # as markup nowhere: not in the text, labels or matrix
    assert html.escape(bidi_visible(hostile_run.prompt)) in page  # the text, escaped, as shown
    start = page.index('<div class="matrix">')
    svg = page[start : page.index("</svg>", start)]
    assert "<script" not in svg and "&lt;" in svg  # the matrix's axis labels, escaped


def test_chart_pictures(hostile_run):
    v = view(aggregate(hostile_run), np.arange(hostile_run.n_steps), hostile_run.texts)
    spec = heatmap(v).to_dict()
    png = export.chart_png(spec)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    svg = export.chart_svg(spec)
    assert svg.lstrip().startswith("<svg") and "&lt;" in svg  # "<" of the prompt, as text
    assert "<script" not in svg
