"""The atlas in a real browser: the WebGL map draws, a click on a dot opens its run."""

from __future__ import annotations

from playwright.sync_api import expect

# Screen position of one WebGL point, from Plotly's own axes (WebGL points are no DOM nodes).
POINT_XY = """(i) => {
  const gd = document.querySelector('.js-plotly-plot');
  const t = gd._fullData.find(d => d.type === 'scattergl' && d.x.length > i);
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  const r = gd.getBoundingClientRect();
  return {x: r.left + xa._offset + xa.d2p(t.x[i]), y: r.top + ya._offset + ya.d2p(t.y[i])};
}"""


def test_map_draws_and_a_click_opens_the_run(open_session, atlas_built, artifacts_dir):
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
    opener = pg.get_by_role("button", name="Open its run in the graph")
    expect(opener).to_be_visible()
    expect(pg.get_by_text("Zone ").first).to_be_visible()
    pg.screenshot(path=str(artifacts_dir / "9-atlas.png"), full_page=True)
    s.act(lambda: opener.click())
    expect(pg.get_by_text("Filtered on")).to_be_visible()  # the token is selected
    expect(pg.get_by_role("heading", name="Attention graph")).to_be_visible()
