"""The Attention atlas page under AppTest, on a map built from the real model's fingerprints."""

from __future__ import annotations

import json

import numpy as np

from lib.atlas.store import Store
from tests.apphelpers import assert_ok, button
from tests.test_app import generate

ATLAS = "lessons/atlas.py"


def open_atlas(at):
    at.switch_page(ATLAS).run()
    assert_ok(at)
    return at


def map_figure(at) -> dict:
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)


def n_values(array) -> int:
    """Length of a Plotly array, plain or binary ({"dtype": "f4", "bdata": base64})."""
    if isinstance(array, dict):
        import base64

        return len(base64.b64decode(array["bdata"])) // np.dtype(array["dtype"]).itemsize
    return len(array)


def test_without_a_map_the_page_says_how_to_make_one(app, tmp_path, monkeypatch):
    monkeypatch.setenv("TAV_ATLAS_DIR", str(tmp_path))
    open_atlas(app)
    assert any("No map yet" in i.value for i in app.info)
    # startswith: the page's own source (its last expander) also holds that text
    assert any(c.value.startswith("uv run python -m lib.atlas ingest") for c in app.code)


def test_runs_are_recorded_and_can_be_deleted_or_not_recorded(app):
    store = Store()
    generate(app, prompt="A short note about bread", max_tokens=5)
    owner = app.session_state["atlas_owner"]
    assert store.count(owner) == (1, 5)
    assert any("added to this server's attention atlas" in c.value for c in app.caption)
    fp = store.fingerprints()
    rid = max(r for r in set(fp.run_ids.tolist()) if store.run(r)["owner"] == owner)
    mine = fp.run_ids == rid
    run = app.session_state["run"].result
    from lib.analysis.fingerprint import run_fingerprints

    np.testing.assert_allclose(fp.vectors[mine], run_fingerprints(run).vectors, atol=1e-6)
    open_atlas(app)
    app.toggle(key="atlas_record__w").set_value(False).run()
    app.switch_page("lessons/generate.py").run()
    generate(app, prompt="Another note, not recorded", max_tokens=3)
    assert store.count(owner) == (1, 5)
    open_atlas(app)
    button(app, "Delete what I recorded").click().run()
    assert_ok(app)
    assert store.count(owner) == (0, 0)


def test_map_click_shows_the_token_and_opens_its_run(app, atlas_built):
    generate(app, max_tokens=6)
    open_atlas(app)
    fig = map_figure(app)
    traces = [t for t in fig["data"] if t["type"] == "scattergl"]
    atlas_points = sum(n_values(t["x"]) for t in traces)
    manifest = json.loads((atlas_built / "manifest.json").read_text())
    assert atlas_points == manifest["n_points"]  # every point drawn, WebGL
    stars = [t for t in fig["data"] if t.get("name") == "your run's tokens"]
    assert len(stars) == 1 and n_values(stars[0]["x"]) == 6
    assert len(app.dataframe) >= 1  # the run's tokens with family and confidence
    assert any("Typical tokens" in c.value for c in app.caption)

    # A click (the chart's selection) on a corpus token: its context and fingerprint.
    import pyarrow.parquet as pq

    points = pq.read_table(atlas_built / "points.parquet").to_pandas()
    row = int(np.flatnonzero((points["step"] < 0).to_numpy())[40])
    app.session_state["atlas_point"] = row
    app.run()
    assert_ok(app)
    assert any(t.value == points["context"][row] for t in app.text)
    recorded = Store().count(app.session_state["atlas_owner"])
    button(app, "Open its run in the graph").click().run()
    assert_ok(app)
    run = app.session_state["run"]
    stored = Store().run(int(points["run_id"][row]))
    assert run.result.prompt == stored["prompt"].strip()
    assert app.session_state["matrix_source"].startswith("Whole sequence")
    key, side, idx = app.session_state["graph_focus"]
    assert (key, side) == (run.key, "input")
    r = run.result  # the focused token is the clicked one: same vocabulary id, same text
    assert r.token_ids[r.bos_offset + idx] == points["token_id"][row]
    assert r.texts[r.bos_offset + idx] == points["label"][row]
    assert Store().count(app.session_state["atlas_owner"]) == recorded  # not recorded again
    # The graph page draws that token selected (yellow).
    assert any("Filtered on prompt token" in c.value for c in app.caption)


def test_an_unreachable_service_falls_back_to_the_library(app, atlas_built, monkeypatch):
    monkeypatch.setenv("TAV_ATLAS_SERVICE", "http://127.0.0.1:9")  # nothing listens there
    generate(app, max_tokens=3)
    open_atlas(app)
    assert any("cannot be reached" in w.value for w in app.warning)
    assert any("Classified by the library" in c.value for c in app.caption)


def test_build_the_map_from_the_page(app, atlas_built, tmp_path, monkeypatch):
    """The page's Build button: the corpus is already in the store (read again: nothing to
    do), then a discovery run makes a new map in an empty folder, and the page shows it."""
    monkeypatch.setenv("TAV_ATLAS_DIR", str(tmp_path))
    open_atlas(app)
    assert any("No map yet" in i.value for i in app.info)
    before = Store().count()
    button(app, "Build the map here (a few minutes)").click().run()
    assert_ok(app)
    assert Store().count() == before  # resumed: every window was already stored
    assert (tmp_path / "latest").exists()
    assert len(app.get("plotly_chart")) == 1
