"""The Attention atlas page under AppTest, on a map built from the real model's fingerprints."""

from __future__ import annotations

import html
import json
import sqlite3

import numpy as np

from lib.atlas.store import Store
from lib.viz.atlas import HIDDEN_TEXT
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
    import lib.atlas.shipped

    monkeypatch.setenv("TAV_ATLAS_DIR", str(tmp_path))
    monkeypatch.setattr(lib.atlas.shipped, "SHIPPED", tmp_path / "no-shipped-map")
    open_atlas(app)
    assert any("No map yet" in i.value for i in app.info)
    # sections numbered in order: the map's parts are not drawn, so building is section 2
    assert [h.value.split(".")[0] for h in app.header] == ["1", "2"]
    # startswith: the page's own source (its last expander) also holds that text
    assert any(c.value.startswith("uv run python -m lib.atlas ingest") for c in app.code)


def test_a_discovery_job_running_shows_its_live_progress(app, tmp_path, monkeypatch):
    """A job started from the command line with --websocket-port, for the page's folder:
    the page follows it (its progress bar, its stage); a finished job's file is gone."""
    from lib.atlas.progress import FILE, ProgressServer

    monkeypatch.setenv("TAV_ATLAS_DIR", str(tmp_path))
    job = ProgressServer(0, tmp_path, "2026-12-06T10-00-00")
    try:
        job.send("projecting 1,000 fingerprints", 0.4)
        open_atlas(app)
        bars = app.get("progress")
        assert len(bars) == 1 and bars[0].proto.value == 40
        assert "projecting 1,000 fingerprints" in bars[0].proto.text
    finally:
        job.close()
    assert not (tmp_path / FILE).exists()
    open_atlas(app)
    assert not app.get("progress")
    failed = ProgressServer(0, tmp_path, "2026-12-06T11-00-00")
    failed.close("failed", error="Only 3 fingerprints to discover from")
    open_atlas(app)  # the job is gone; the page says why it ended
    assert not app.get("progress")
    assert any("Only 3 fingerprints" in w.value for w in app.warning)


def runs_with_prompt(prompt: str) -> list[int]:
    with sqlite3.connect(Store().path) as con:
        return [r for (r,) in con.execute("SELECT id FROM runs WHERE prompt = ?", (prompt,))]


def new_session():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("../main.py", default_timeout=240)
    at.run()
    at.switch_page("lessons/generate.py").run()
    assert_ok(at)
    return at


def test_runs_are_kept_only_when_shared_once_each_and_can_be_deleted(app):
    store = Store()
    prompt = "A short note about sourdough bread"
    generate(app, prompt=prompt, max_tokens=5)
    assert not app.toggle(key="atlas_record__w").value  # asked, off until chosen
    assert runs_with_prompt(prompt) == [] and "atlas_owner" not in app.session_state
    app.toggle(key="atlas_record__w").set_value(True).run()
    generate(app, prompt=prompt, max_tokens=5)  # the same run, now shared
    owner = app.session_state["atlas_owner"]
    assert store.count(owner) == (1, 5)
    (rid,) = runs_with_prompt(prompt)
    fp = store.fingerprints()
    run = app.session_state["run"].result
    from lib.analysis.fingerprint import run_fingerprints

    np.testing.assert_allclose(
        fp.vectors[fp.run_ids == rid], run_fingerprints(run).vectors, atol=1e-6
    )
    # Another student makes the same run and shares it: still one run, with two owners.
    other = new_session()
    other.toggle(key="atlas_record__w").set_value(True).run()
    generate(other, prompt=prompt, max_tokens=5)
    assert runs_with_prompt(prompt) == [rid] and store.run(rid)["owners"] == 2
    # Switched off, a run stays private.
    open_atlas(app)
    app.toggle(key="atlas_record__w").set_value(False).run()
    app.switch_page("lessons/generate.py").run()
    generate(app, prompt="Another note, not shared", max_tokens=3)
    assert store.count(owner) == (1, 5) and runs_with_prompt("Another note, not shared") == []
    open_atlas(app)
    button(app, "Delete what I shared").click().run()
    assert_ok(app)
    assert store.count(owner) == (0, 0) and runs_with_prompt(prompt) == [rid]  # theirs too
    open_atlas(other)
    button(other, "Delete what I shared").click().run()
    assert runs_with_prompt(prompt) == []


def test_a_class_that_agreed_shares_by_default(smollm2, monkeypatch):
    monkeypatch.setenv("TAV_ATLAS_RECORD", "class")
    app = generate(new_session(), prompt="A class that agreed to share", max_tokens=2)
    assert app.toggle(key="atlas_record__w").value
    assert len(runs_with_prompt("A class that agreed to share")) == 1


def test_a_class_on_a_postgresql_store_shares_and_deletes_there(smollm2, postgres, monkeypatch):
    """TAV_ATLAS_DB as a postgresql:// URL: a shared run is kept in that database, the
    Atlas page counts it for its student, and "Delete what I shared" takes it away."""
    url = postgres()
    monkeypatch.setenv("TAV_ATLAS_DB", url)
    monkeypatch.setenv("TAV_ATLAS_RECORD", "class")
    app = generate(new_session(), prompt="Shared through PostgreSQL", max_tokens=2)
    store = Store(url)
    (run,) = set(store.fingerprints(source="app").run_ids.tolist())
    assert store.run(run)["prompt"] == "Shared through PostgreSQL"
    open_atlas(app)
    button(app, "Delete what I shared").click().run()
    assert_ok(app)
    assert store.run(run) is None and store.count() == (0, 0)


def test_map_click_shows_the_tokens_attention_and_hides_private_text(app, atlas_built):
    generate(app, max_tokens=6)
    mine = app.session_state["run"]
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
    # Its own attention, read again: the chart and what it shows; the run stays the student's.
    assert any("it gives the stored fingerprint back" in c.value for c in app.caption)
    assert len(app.get("vega_lite_chart")) == 2  # its fingerprint and its attention
    assert app.session_state["run"].key == mine.key
    assert not any(b.label.startswith("Open its run") for b in app.button)

    # A point of a run that is not shared (recorded before sharing was asked, or deleted)
    # shows no text anywhere: not in the hover, not on a card, not when clicked.
    hidden_run = int(points["run_id"][row])
    with sqlite3.connect(Store().path) as con:
        con.execute("UPDATE runs SET shared = 0 WHERE id = ?", (hidden_run,))
    try:
        from app.caches import atlas_shown

        atlas_shown.clear()
        app.run()
        assert_ok(app)
        assert not any(t.value == points["context"][row] for t in app.text)
        assert any(t.value == HIDDEN_TEXT for t in app.text)
        assert any("its text stays hidden" in c.value for c in app.caption)
        secret = set(points.loc[points["run_id"] == hidden_run, "context"])
        hover = [h for tr in map_figure(app)["data"] for h in tr.get("hovertext") or []]
        assert len(hover) == len(points) + 6  # every point and the run's six stars
        assert not any(h.split("<br>")[0] in {html.escape(s, quote=False) for s in secret}
                       for h in hover)  # fmt: skip
        cards = "\n".join(t.value for t in app.text)
        assert not any(s in cards for s in secret)
    finally:
        with sqlite3.connect(Store().path) as con:
            con.execute("UPDATE runs SET shared = 1 WHERE id = ?", (hidden_run,))
        atlas_shown.clear()


def test_an_unreachable_service_falls_back_to_the_library(app, atlas_built, monkeypatch):
    monkeypatch.setenv("TAV_ATLAS_SERVICE", "http://127.0.0.1:9")  # nothing listens there
    generate(app, max_tokens=3)
    open_atlas(app)
    assert any("cannot be reached" in w.value for w in app.warning)
    assert any("Classified by the library" in c.value for c in app.caption)


def test_build_the_map_from_the_page(app, atlas_built, tmp_path, monkeypatch):
    """The page's Build button, in a folder where nothing was built (the shipped map is
    shown): the corpus is already in the store (read again: nothing to do), then a
    discovery run makes a new map, and the page shows it instead of the shipped one."""
    monkeypatch.setenv("TAV_ATLAS_DIR", str(tmp_path))
    open_atlas(app)
    assert any("shipped with the app" in c.value for c in app.caption)
    before = Store().count()
    button(app, "Build the map here (a few minutes)").click().run()
    assert_ok(app)
    assert Store().count() == before  # resumed: every window was already stored
    assert (tmp_path / "latest").exists()
    assert len(app.get("plotly_chart")) == 1
    run_id = json.loads((tmp_path / "latest" / "manifest.json").read_text())["run_id"]
    assert any(f"Discovery run {run_id}" in c.value for c in app.caption)
    assert not any("shipped with the app" in c.value for c in app.caption)


def test_a_fresh_install_opens_on_the_shipped_map(app, tmp_path, monkeypatch):
    """Nothing built: the page opens on the shipped map, every family and every corpus text
    shown, the student's run placed on it at once; a clicked point's attention is read
    again from its own window in the shipped files, never from the local store's run that
    has the same id (another text, maybe a student's)."""
    from lib.atlas.shipped import SHIPPED, shipped_run

    monkeypatch.setenv("TAV_ATLAS_DIR", str(tmp_path))  # nothing discovered here
    # A store of its own whose run 1 is a student's shared run: another text than the
    # shipped map's window 1, which a lookup in the wrong place would read.
    monkeypatch.setenv("TAV_ATLAS_DB", str(tmp_path / "class.sqlite"))
    theirs = "A student's own words about their weekend"
    first = Store(tmp_path / "class.sqlite").add_run(
        source="app", model="bundled:SmolLM2-135M-Instruct", prompt=theirs,
        settings={"max_new_tokens": 1}, tokens=[], owner="someone", shared=True,
    )  # fmt: skip
    assert first == 1 and theirs != shipped_run(SHIPPED, 1)[0]["prompt"]
    generate(app, max_tokens=6)
    open_atlas(app)
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    fig = map_figure(app)
    drawn = sum(n_values(t["x"]) for t in fig["data"] if t["type"] == "scattergl")
    assert drawn == manifest["n_points"]  # every point
    stars = [t for t in fig["data"] if t.get("name") == "your run's tokens"]
    assert len(stars) == 1 and n_values(stars[0]["x"]) == 6  # the run, placed at once
    assert len(app.multiselect(key="atlas_families").options) == manifest["n_clusters"]
    assert [h.value.split(".")[0] for h in app.header] == ["1", "2", "3", "4", "5", "6"]
    assert any("shipped with the app" in c.value for c in app.caption)
    hover = [h for tr in fig["data"] for h in tr.get("hovertext") or []]
    assert not any(h.startswith(HIDDEN_TEXT) for h in hover)

    import pyarrow.parquet as pq

    points = pq.read_table(SHIPPED / "points.parquet").to_pandas()
    row = int(np.flatnonzero((points["run_id"] == 1).to_numpy())[30])
    app.session_state["atlas_point"] = row
    app.run()
    assert_ok(app)
    assert any(t.value == points["context"][row] for t in app.text)
    assert any("it gives the stored fingerprint back" in c.value for c in app.caption)


def test_fingerprints_arriving_from_the_service_are_drawn_on_the_map(app, tmp_path, monkeypatch):
    """Posted to the sidecar (as the generation service does), they appear in section 5:
    one star each, placed and counted as the map classifies them, with no text."""
    from fastapi.testclient import TestClient

    from lib.atlas.classify import Atlas
    from lib.atlas.service import create_app
    from lib.atlas.shipped import SHIPPED

    monkeypatch.setenv("TAV_ATLAS_DIR", str(tmp_path))  # the shipped map
    db = tmp_path / "class.sqlite"
    monkeypatch.setenv("TAV_ATLAS_DB", str(db))
    open_atlas(app)
    assert any("None in the last hour" in c.value for c in app.caption)
    shipped = Atlas(SHIPPED)
    rows = np.flatnonzero(shipped.labels >= 0)[:7]
    sidecar = TestClient(create_app(db, tmp_path, online=True))
    for step, row in enumerate(rows):
        body = {"request_id": "run-a", "vector": shipped.vectors[row].tolist(), "step": step,
                "model": "bundled:SmolLM2-135M-Instruct"}  # fmt: skip
        assert sidecar.post("/fingerprint", json=body).json()["stored"]
    app.run()
    assert_ok(app)
    charts = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    assert len(charts) == 2  # the map, and the map with the arrivals
    stars = [t for t in charts[1]["data"] if t.get("name") == "arrived"]
    assert len(stars) == 1 and n_values(stars[0]["x"]) == 7
    placed = shipped.locate(shipped.vectors[rows])
    family = shipped.family_name(int(np.bincount(placed.cluster[placed.cluster >= 0]).argmax()))
    caption = next(c.value for c in app.caption if "arrived in the last hour" in c.value)
    assert caption.startswith("7 fingerprints") and family in caption
