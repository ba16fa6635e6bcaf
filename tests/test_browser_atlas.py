"""The atlas in a real browser: the WebGL map draws, a click on a dot shows its attention,
and one student's text reaches another only when shared."""

from __future__ import annotations

import sqlite3
import time

from playwright.sync_api import expect

from app.lessons import LESSONS
from tests.apphelpers import ALL_PAGES
from tests.browser import VEGA_DRAWN


# Screen position of one WebGL point, from Plotly's own axes (WebGL points are no DOM nodes).
def point_xy(page, i: int) -> tuple[float, float]:
    pos = page.evaluate(POINT_XY, i)
    return pos["x"], pos["y"]


POINT_XY = """(i) => {
  const gd = document.querySelector('.js-plotly-plot');
  const t = gd._fullData.find(d => d.type === 'scattergl' && d.x.length > i);
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  const r = gd.getBoundingClientRect();
  return {x: r.left + xa._offset + xa.d2p(t.x[i]), y: r.top + ya._offset + ya.d2p(t.y[i])};
}"""


def test_map_draws_and_a_click_shows_the_tokens_attention(open_session, atlas_built, artifacts_dir):
    s = open_session("atlas", 1400, 1300)
    pg = s.page
    s.open_page("Attention atlas")
    plot = pg.locator(".js-plotly-plot").first
    expect(plot.locator("canvas").first).to_be_attached()  # WebGL
    expect(pg.get_by_text("Click a dot on the map")).to_be_visible()
    plot.scroll_into_view_if_needed()
    expect(plot.locator(".legendtext").first).to_be_visible()  # drawn, not just attached
    pos = pg.evaluate(POINT_XY, 3)
    s.act(lambda: pg.mouse.click(pos["x"], pos["y"]))
    expect(pg.get_by_text("What it looked at").first).to_be_visible()
    expect(pg.get_by_text("Zone ").first).to_be_visible()
    expect(pg.locator(VEGA_DRAWN).nth(1)).to_be_visible()  # its fingerprint and its attention
    pg.screenshot(path=str(artifacts_dir / "9-atlas.png"), full_page=True)
    pg.get_by_text("What it looked at").first.scroll_into_view_if_needed()
    pg.screenshot(path=str(artifacts_dir / "9-atlas-token.png"))
    pg.get_by_role("heading", name="3. The families").scroll_into_view_if_needed()
    pg.screenshot(path=str(artifacts_dir / "9-atlas-families.png"))


MARKER = "Quokkadrome"  # a word no corpus text and no other test holds


def test_a_students_text_reaches_no_other_tab_until_shared(
    open_session, atlas_built, run_discovery
):
    """Two students on one server. Alice's prompt and what the model wrote for her reach
    Bob's browser on no page (every frame the server sends Bob's tab is searched), until
    she shares her runs and the map is made again: then the atlas shows them to Bob."""
    from lib.atlas.discovery import DiscoveryConfig, default_output, latest_run, point_latest
    from lib.atlas.store import Store

    def map_again(tab) -> None:
        """The map made again from the store, as `discover` makes it, and shown on `tab`."""
        made = run_discovery(
            DiscoveryConfig(db=str(Store().path), output=str(default_output()), hours=0,
                            min_cluster_size=15)
        )  # fmt: skip
        deadline = time.monotonic() + 60
        tab.open_page("Attention atlas")
        while f"Discovery run {made['run_id']}" not in tab.page.inner_text("body"):
            assert time.monotonic() < deadline, "the new map never reached the page"
            tab.act(lambda: tab.page.reload())  # the server looks for a new map every 10 s

    alice, bob = open_session("alice"), open_session("bob")
    prompt = f"The races begin at dawn in {MARKER}"  # in the context of every token written
    alice.fill("Prompt", prompt)
    alice.click("button", "Generate")
    written = alice.page.get_by_test_id("stCode").first.inner_text()
    assert written.startswith(prompt) and len(written) > len(prompt) + 10
    secrets = [MARKER.encode(), written[len(prompt) :].strip()[:40].encode()]
    before = latest_run(default_output())
    try:
        map_again(bob)  # made after Alice's run: it would be on it, if it were kept
        bob.open_page("Generate")
        bob.click("button", "Generate")  # his own run, for the pages to show
        for page in ALL_PAGES:
            bob.open_page(next(x.title for x in LESSONS if x.path == page))
        bob.open_page("Attention atlas")
        bob.page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
        bob.act(lambda: bob.page.mouse.click(*point_xy(bob.page, 5)))  # a clicked point too
        assert not any(s in bob.received for s in secrets)

        # Alice shares; the map is made again with her run on it.
        share = alice.page.get_by_text("Share my runs with the class atlas")
        alice.act(lambda: share.click())
        alice.click("button", "Generate")  # the same run, now shared
        with sqlite3.connect(Store().path) as con:
            shared = con.execute("SELECT shared FROM runs WHERE prompt = ?", (prompt,))
            assert shared.fetchall() == [(1,)]
        map_again(bob)
        assert MARKER.encode() in bob.received  # in the map's hover text: shared, as chosen
    finally:
        point_latest(default_output(), before.name)  # the other tests' map again
