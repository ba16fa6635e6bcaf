"""The classroom in a real browser: a teacher's link opens the same view in a
student's tab, and projector mode draws the graph's text large enough for the back row."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import expect

from tests.browser import AppSession
from tests.inputs import INJECTION

PROMPT = "The teacher shared, with determination, a link to this view"  # a long token


def plotly_text_sizes(page) -> list[float]:
    """The font size, in px, of every token label the graph draws."""
    return page.locator(".js-plotly-plot .textpoint text").evaluate_all(
        "nodes => nodes.map(n => parseFloat(getComputedStyle(n).fontSize))"
    )


def test_a_teachers_link_opens_the_same_view(open_session, browser, artifacts_dir):
    teacher = open_session("teacher", 1400, 1200)
    teacher.fill("Prompt", PROMPT)
    teacher.click("button", "Generate")
    teacher.open_page("Attention graph")
    pg = teacher.page
    pg.get_by_text("Step 1 of 20").wait_for()
    slider = pg.get_by_role("slider", name="Generation step")  # the step player
    slider.focus()
    for _ in range(6):
        teacher.act(lambda: slider.press("ArrowRight"))
    pg.get_by_text("Step 7 of 20").wait_for()
    expect(pg).to_have_url(re.compile(r"attention_graph\?.*step=7"))  # the address follows
    assert teacher.fragment_runs >= 6  # the step moves reran the graph's fragment alone
    # ... and so does the sidebar's "Share this view", which the teacher copies from
    pg.get_by_role("button", name="Share this view").click()
    box = pg.get_by_test_id("stPopoverBody").locator("code")
    expect(box).to_contain_text("step=7")
    link = box.inner_text().strip()
    assert parse_qs(urlsplit(link).query) == parse_qs(urlsplit(pg.url).query)
    assert urlsplit(link).path == urlsplit(pg.url).path
    assert "prompt=The+teacher+shared%2C+with+determination" in link
    pg.keyboard.press("Escape")  # the popover closes; no rerun
    step_line = pg.get_by_text(re.compile(r"^Step 7 of 20: the model writes")).inner_text()

    # A student's first visit: a new browser straight at the link (a page's own URL)
    student = AppSession(browser.new_context(viewport={"width": 1400, "height": 1200}), link)
    sp = student.page
    expect(sp.get_by_text(re.compile(r"^Step 7 of 20: the model writes"))).to_have_text(step_line)
    expect(sp.locator(".js-plotly-plot").first).to_be_visible()
    expect(sp.get_by_text("Parts of this link were not used")).to_have_count(0)

    # Projector mode, switched on by the student, stays in their tab (not in the address
    # bar, which any student may copy); every token label is drawn whole, none clipped.
    labels = plotly_text_sizes(sp)
    assert labels and max(labels) < 16  # the normal look
    assert not clipped_labels(sp)
    student.act(lambda: sp.get_by_text("Projector mode").click())
    expect(sp.locator(".js-plotly-plot .textpoint text").first).to_have_css("font-size", "18px")
    assert "projector" not in sp.url
    big = plotly_text_sizes(sp)
    assert len(big) == len(labels) and min(big) >= 16
    assert not clipped_labels(sp)
    sp.screenshot(path=str(artifacts_dir / "8-projector-graph.png"), full_page=True)
    assert not student.js_errors, student.js_errors
    sp.context.close()


# Token labels of the graph that run past the figure's edge (the SVG clips them there).
CLIPPED = """() => {
  const svg = document.querySelector('.js-plotly-plot .main-svg').getBoundingClientRect();
  return [...document.querySelectorAll('.js-plotly-plot .textpoint text')]
    .filter(t => { const b = t.getBoundingClientRect();
                   return b.left < svg.left - 0.5 || b.right > svg.right + 0.5; })
    .map(t => t.textContent);
}"""


def clipped_labels(page) -> list[str]:
    return page.evaluate(CLIPPED)


def test_the_offline_page_opens_with_the_network_cut(
    open_session, browser, tmp_path, artifacts_dir
):
    """The run as one HTML file: it draws the graph with no network at all, its slider
    covers every step, and the injected markup in the prompt stays text."""
    s = open_session("exporter", 1400, 1200)
    s.fill("Prompt", INJECTION)
    s.click("button", "Generate")
    s.open_page("Attention graph")
    s.click("button", "Prepare: Download this run as an offline page (HTML)")
    with s.page.expect_download(timeout=120_000) as info:
        s.page.get_by_role("button", name="Download this run as an offline page (HTML)").click()
    path = tmp_path / "lesson.html"
    path.write_bytes(Path(info.value.path()).read_bytes())

    context = browser.new_context(offline=True)
    asked: list[str] = []
    context.route(  # any request beyond the file itself is recorded, then refused
        re.compile(r"^(?!file:).*"), lambda route: (asked.append(route.request.url), route.abort())
    )
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    expect(page.locator(".js-plotly-plot .textpoint").first).to_be_attached()
    steps = page.evaluate(
        "document.querySelector('.js-plotly-plot').layout.sliders[0].steps.length"
    )
    assert steps == 20
    expect(page.locator("pre")).to_contain_text(INJECTION)  # the prompt, shown as typed
    assert page.evaluate("document.images.length") == 0  # <img ...> in the prompt made none
    assert page.locator("svg text", has_text="img").count() > 0  # the matrix's labels, as text
    page.screenshot(path=str(artifacts_dir / "10-offline-page.png"), full_page=True)
    assert not dialogs and not errors and not asked, (dialogs, errors, asked)
    context.close()
