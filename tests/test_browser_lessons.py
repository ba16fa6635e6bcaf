"""The views added for seeds 000 and 001, in a real browser: each draws, none fails, and a
screenshot of each is kept in test-artifacts/ to be looked at."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.apphelpers import FAILURE_TEXT
from tests.browser import VEGA_DRAWN


def test_new_views_draw_in_chromium(session, artifacts_dir):
    s, pg = session, session.page
    s.fill("Prompt", "The cat sat on the mat. The cat sat on the")
    s.click("button", "Generate")
    expect(pg.get_by_test_id("stCode").first).to_contain_text("The cat sat")

    s.open_page("Attention graph")
    expect(pg.get_by_text("attention sink").first).to_be_visible()
    legend = pg.locator(".js-plotly-plot .legendtext", has_text="weight 0.1: 0.75 px")
    expect(legend).to_have_count(1)  # the fixed width scale is drawn, with its widths
    pg.screenshot(path=str(artifacts_dir / "lessons-graph.png"), full_page=True)

    s.open_page("Logit lens & fingerprints")
    expect(pg.locator(VEGA_DRAWN).nth(1)).to_be_visible()  # sub-layer chart + overview
    pg.screenshot(path=str(artifacts_dir / "lessons-sublayer-lens.png"), full_page=True)
    s.act(lambda: pg.get_by_role("tab", name="Activations").click())
    expect(pg.locator(VEGA_DRAWN).first).to_be_visible()
    pg.screenshot(path=str(artifacts_dir / "lessons-activations.png"), full_page=True)
    s.act(lambda: pg.get_by_role("tab", name="Embeddings & weights").click())
    expect(pg.get_by_text("Copying heads").first).to_be_visible()
    pg.screenshot(path=str(artifacts_dir / "lessons-copying.png"), full_page=True)

    s.open_page("Ablate a head")
    expect(pg.locator(VEGA_DRAWN).first).to_be_visible()
    pg.screenshot(path=str(artifacts_dir / "lessons-ablation.png"), full_page=True)

    s.open_page("Tokens & predictions")
    expect(pg.locator(VEGA_DRAWN).nth(1)).to_be_visible()  # the heatmap and the token strip
    pg.screenshot(path=str(artifacts_dir / "lessons-predictions.png"), full_page=True)

    s.open_page("Welcome")
    expect(pg.get_by_role("heading", name="Token Attention Visualizer")).to_be_visible()
    pg.screenshot(path=str(artifacts_dir / "lessons-welcome.png"), full_page=True)

    s.open_page("Vector arithmetic")
    expect(pg.get_by_text("queen").first).to_be_visible()
    pg.screenshot(path=str(artifacts_dir / "lessons-analogy.png"), full_page=True)

    expect(pg.get_by_text(FAILURE_TEXT)).to_have_count(0)
    expect(pg.get_by_test_id("stException")).to_have_count(0)
    assert not s.js_errors, s.js_errors


def test_autoplay_adds_tokens_with_one_stop(open_session, artifacts_dir):
    """Each autoplay tick adds one token (never "Generated token n of m", which reads like
    a new run), keeps the text as it is, and shows one Stop button, its own."""
    s = open_session("autoplay")
    pg = s.page
    s.fill("Prompt", "Autoplay writes one token at a time, and the")
    s.click("button", "Generate")
    s.open_page("Step by step")
    s.act(lambda: pg.get_by_text("Autoplay", exact=True).click())
    added = pg.get_by_text(re.compile(r"^Step 2[2-9]: the model's candidates"))
    expect(added).to_be_visible(timeout=120_000)  # two ticks at least
    page_stops = pg.get_by_test_id("stMain").get_by_role("button", name="Stop")
    assert page_stops.count() == 1  # (Streamlit's own "Stop" in the header is not the page's)
    expect(pg.get_by_text("Generated token")).to_have_count(0)
    pg.screenshot(path=str(artifacts_dir / "lessons-autoplay.png"), full_page=True)
    s.act(lambda: page_stops.click())
    expect(pg.get_by_text("Autoplay stopped.")).to_be_visible()


HEATMAP_Z = """() => {
  const traces = Array.from(document.querySelectorAll('.js-plotly-plot'))
    .flatMap(el => el._fullData || []).filter(t => t.type === 'heatmap');
  if (!traces.length) return null;
  return Array.from(traces[traces.length - 1].z, row => Array.from(row));
}"""  # plotly.js's decoded traces (`data` may still hold the packed arrays)


def test_patching_a_preset_and_reading_its_strongest_cell(session, smollm2, artifacts_dir):
    """Cause and effect in Chromium: patch John and Mary's residual stream, read the
    heatmap's numbers from the drawn chart, and find the caption's strongest cell there;
    entering layer 0, the one name that differs carries all of the difference (1.000)."""
    import numpy as np

    from lib.analysis.patching import PRESETS, encode_pair

    s, pg = session, session.page
    s.fill("Prompt", "The cat sat on the")
    s.click("button", "Generate")
    s.open_page("Cause and effect")
    s.click("button", "Run the patching")
    caption = pg.get_by_text(re.compile(r"Strongest: layer \d+, position \d+"))
    expect(caption).to_be_visible()
    z = np.array(pg.evaluate(HEATMAP_Z), dtype=float)
    clean, corrupt = encode_pair(smollm2, *PRESETS["John and Mary"][:2])
    assert z.shape == (smollm2.n_layers, len(clean))
    said = re.search(r"Strongest: layer (\d+), position (\d+) .*recovers (-?[\d.]+)",
                     caption.inner_text())  # fmt: skip
    layer, position = int(said[1]), int(said[2])
    assert z[layer, position] == np.nanmax(z)  # the drawn numbers' largest cell
    assert float(said[3]) == round(float(z[layer, position]), 3)
    (differs,) = np.flatnonzero(np.array(clean) != np.array(corrupt))
    assert z[0, differs] == pytest.approx(1.0, abs=1e-3)
    pg.screenshot(path=str(artifacts_dir / "lessons-patching.png"), full_page=True)
    expect(pg.get_by_test_id("stException")).to_have_count(0)
