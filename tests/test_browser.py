"""The app in a real browser: Debian's Chromium driven by Playwright against `streamlit run`."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser import VEGA_DRAWN

PROMPT = "The little robot opened the door"


def test_generate_graph_click_and_matrices(session, artifacts_dir):
    s, pg = session, session.page
    s.fill("Prompt", PROMPT)
    s.click("button", "Generate")
    code = pg.get_by_test_id("stCode").first
    expect(code).to_contain_text(PROMPT)
    assert code.inner_text().startswith(PROMPT)
    assert len(code.inner_text()) > len(PROMPT) + 10  # the model wrote something
    pg.screenshot(path=str(artifacts_dir / "1-generate.png"))

    s.open_page("Attention graph")
    pickers = pg.get_by_test_id("stSelectbox").get_by_role("combobox")
    expect(pickers.nth(0)).to_have_value("All layers (mean)")  # not an empty placeholder
    expect(pickers.nth(1)).to_have_value("All heads (mean)")
    plot = pg.locator(".js-plotly-plot").first
    plot.wait_for()
    pg.get_by_text("Step 1 of 20").wait_for()
    slider = pg.get_by_role("slider", name="Generation step")  # the step player
    slider.focus()
    s.act(lambda: slider.press("End"))
    pg.get_by_text("Step 20 of 20").wait_for()
    pg.screenshot(path=str(artifacts_dir / "2-graph.png"))

    # Click the third prompt token ("robot"): the second-to-last trace holds the prompt markers.
    inputs = plot.locator(".scatterlayer .trace").nth(-2).locator(".point")
    expect(inputs.nth(4)).to_be_attached()  # Plotly draws after the run: wait for it
    s.act(lambda: inputs.nth(2).click(force=True))
    caption = pg.get_by_text("Selected prompt token 2")
    caption.wait_for()
    assert "robot" in caption.inner_text()
    robot = plot.locator(".scatterlayer .trace").nth(-2).locator(".point").nth(2)
    expect(robot).to_have_css("fill", "rgb(255, 255, 0)")  # the selected token turns yellow
    shown = int(pg.get_by_text("shown)").inner_text().split("(")[-1].split()[0])
    assert 0 < shown <= 20  # only robot's lines, at most one to each generated token
    pg.screenshot(path=str(artifacts_dir / "3-graph-filtered.png"))

    s.click("button", "Reset selection")
    expect(pg.get_by_text("Selected prompt token")).to_have_count(0)

    s.open_page("Attention matrices")
    expect(pg.locator(VEGA_DRAWN).first).to_be_visible()
    pg.screenshot(path=str(artifacts_dir / "4-matrices.png"))

    s.open_page("Generate")
    expect(pg.get_by_label("Prompt")).to_have_value(PROMPT)  # nothing lost between pages


def test_quick_step_moves_switch_the_picture_and_rerun_the_server_once(session, artifacts_dir):
    """The graph's step player: ten quick key presses switch the picture in the browser at
    each press (no server round trip), then the server hears of the resting step once and
    the caption, the graph's scope line and the address all show it."""
    s, pg = session, session.page
    s.fill("Prompt", PROMPT)
    s.click("button", "Generate")
    s.open_page("Attention graph")
    pg.get_by_text("Step 1 of 20").wait_for()
    # the chart drawn and its pictures received: the player can switch them (an event,
    # not a pause: on busy cores the chart may come after the caption)
    pg.wait_for_function(
        "window.Plotly && document.querySelector('.st-key-tav_graph .js-plotly-plot')"
        " && document.querySelector('.st-key-tav_graph .js-plotly-plot').data"
    )
    player = pg.get_by_role("slider", name="Generation step")
    player.focus()
    runs = s.finished
    for _ in range(10):
        pg.keyboard.press("ArrowRight")
    pg.wait_for_function("window.__tavShown && window.__tavShown.step === 11")
    s.wait_run(runs)  # the one rerun, after the hand rests
    expect(pg.get_by_text(re.compile(r"^Step 11 of 20: the model writes"))).to_be_visible()
    expect(pg.get_by_text("Showing step 11's lines only.")).to_be_visible()
    expect(pg).to_have_url(re.compile(r"attention_graph\?.*step=11"))
    pg.wait_for_timeout(800)  # longer than the rest the player waits for: no late rerun
    assert s.finished - runs == 1
    # the picture the server drew for step 11 is the one the browser switched to
    plot = pg.locator(".js-plotly-plot").first
    current = plot.locator(".scatterlayer .trace").nth(-1).locator(".point").nth(10)
    expect(current).to_have_css("fill", "rgb(255, 127, 80)")  # coral: the step's token
    pg.screenshot(path=str(artifacts_dir / "graph-step-player.png"), full_page=True)
    assert not s.js_errors, s.js_errors


def test_the_large_editor_edits_the_prompt(session):
    """Seed 003's edit modal: a large window on the prompt; its text becomes the prompt
    only when kept."""
    s, pg = session, session.page
    s.open_page("Generate")
    s.fill("Prompt", "A short start")
    s.click("button", "Large editor")
    dialog = pg.get_by_role("dialog")
    big = dialog.get_by_role("textbox")
    expect(big).to_have_value("A short start")
    big.fill("A much longer prompt, written in the large window,\nover two lines")
    s.act(lambda: big.press("Tab"))  # committed: the window reruns alone, still open
    expect(pg.get_by_label("Prompt").first).to_have_value("A short start")  # not kept yet
    s.act(lambda: dialog.get_by_role("button", name="Use this prompt").click())
    expect(pg.get_by_role("dialog")).to_have_count(0)
    expect(pg.get_by_label("Prompt").first).to_have_value(
        "A much longer prompt, written in the large window,\nover two lines"
    )
    assert not s.js_errors, s.js_errors
