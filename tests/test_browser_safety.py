"""In a real browser: injected markup stays text, and sessions at once stay apart."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from playwright.sync_api import expect

from lib.model.generation import generate
from tests.browser import VEGA_DRAWN
from tests.inputs import INJECTION

DOWNLOAD_MS = 120_000  # an event wait: it ends when the download starts
TOKENS = 8  # new tokens per run where the test needs no more (a shared link sets them)

DOM_PROBE = """() => ({
  imgs: document.querySelectorAll('img[src="x"], img[onerror]').length,
  scripts: [...document.scripts].filter(s => s.textContent.includes('alert(1)')).length,
  links: document.querySelectorAll('a[href^="javascript"]').length,
  bold: [...document.querySelectorAll('strong, b')].filter(e => e.textContent === 'bold').length,
})"""


def download(pg, label: str) -> bytes:
    """Click a download button and return the file the browser received."""
    with pg.expect_download(timeout=DOWNLOAD_MS) as info:
        pg.get_by_role("button", name=label).click()
    return Path(info.value.path()).read_bytes()


def npz(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(data)) as z:
        return {k: z[k] for k in z.files}


def test_injected_markup_is_shown_as_text_and_never_runs(session, artifacts_dir):
    s, pg = session, session.page
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    s.fill("Prompt", INJECTION)
    s.click("button", "Generate")
    expect(pg.get_by_test_id("stCode").first).to_contain_text(INJECTION)
    pg.screenshot(path=str(artifacts_dir / "5-injection-generate.png"))
    drawn = {  # what each page shows once drawn: probe the DOM only after that
        "Attention graph": ".js-plotly-plot .textpoint",
        "Attention matrices": VEGA_DRAWN,
        "Generate": "[data-testid=stCode]",
    }
    for title, ready in drawn.items():
        s.open_page(title)
        expect(pg.locator(ready).first).to_be_visible()
        probe = pg.evaluate(DOM_PROBE)
        assert probe == {"imgs": 0, "scripts": 0, "links": 0, "bold": 0}, (title, probe)
        if title == "Attention graph":
            labels = pg.locator(".js-plotly-plot .textpoint").evaluate_all(
                "els => els.map(e => e.textContent)"
            )
            assert any("<" in t for t in labels) and any("script" in t for t in labels)
            pg.screenshot(path=str(artifacts_dir / "6-injection-graph.png"))
        if title == "Attention matrices":
            csv = download(pg, "Download this matrix (CSV)").decode("utf-8")
            header = csv.splitlines()[0]
            assert all(f": {piece}," in header for piece in ("<", "img", "script", "error"))
    assert not dialogs, f"a script ran: {dialogs}"


def test_six_sessions_at_once_each_see_their_own_run(open_session, smollm2, artifacts_dir):
    """A class at one server: six tabs press Generate together; the runs are written
    together (prompts of different lengths, left-padded in one batch) and each tab shows
    exactly its own run, as if generated alone."""
    prompts = [
        "The old wizard walked through the forest",
        "My favourite fruit is",
        "The capital of France is",
        "Dear diary, today I",
        "The recipe for pancakes starts with",
        "A cat sat on the",
    ]
    tabs = [open_session(f"tab{i}", 1300, 1000, f"tokens={TOKENS}") for i in range(len(prompts))]
    for tab, prompt in zip(tabs, prompts, strict=True):
        tab.fill("Prompt", prompt)
    generate_button = [tab.page.get_by_role("button", name="Generate") for tab in tabs]
    marks = [tab.start(b.click) for tab, b in zip(tabs, generate_button, strict=True)]
    for tab, mark in zip(tabs, marks, strict=True):  # all were started before any wait
        tab.wait_run(mark)
    for tab, prompt in zip(tabs, prompts, strict=True):
        expected = generate(smollm2, prompt, TOKENS)  # the same run, alone, in this process
        code = tab.page.get_by_test_id("stCode").first
        expect(code).to_contain_text(prompt)
        text = code.inner_text()
        want = prompt + expected.generated_text
        assert text.strip() == want.strip(), f"{tab.name} shows another run"
        z = npz(download(tab.page, "Download the whole run (NPZ)"))
        assert json.loads(str(z["meta"]))["prompt"] == prompt
        np.testing.assert_array_equal(z["token_ids"], expected.token_ids)
        np.testing.assert_allclose(z["attention"], expected.attention, atol=1e-5)
    tabs[0].page.screenshot(path=str(artifacts_dir / "7-concurrent-session.png"))


def test_downloads_arrive_while_other_sessions_rerun(open_session):
    """Streamlit's lazy download lost its file when two other sessions finished a
    rerun between the click and the fetch (a 404, or no download at all). Three tabs keep
    rerunning while a fourth downloads its run three times and a matrix twice."""
    others = [open_session(f"other{i}", 900, 700, f"tokens={TOKENS}") for i in range(3)]
    me = open_session("downloader", 1300, 1000, f"tokens={TOKENS}")
    me.click("button", "Generate")
    first = npz(download(me.page, "Download the whole run (NPZ)"))
    for tab in others:
        tab.click("button", "Generate")  # the same request: served from the result cache
    for round_ in range(3):
        marks = [tab.start(tab.page.get_by_role("button", name="Generate").click) for tab in others]
        again = npz(download(me.page, "Download the whole run (NPZ)"))
        np.testing.assert_array_equal(again["attention"], first["attention"], err_msg=f"{round_}")
        for tab, mark in zip(others, marks, strict=True):
            tab.wait_run(mark)
    me.open_page("Attention matrices")
    for _ in range(2):
        marks = [tab.start(tab.page.get_by_role("button", name="Generate").click) for tab in others]
        csv = download(me.page, "Download this matrix (CSV)").decode("utf-8")
        assert csv.count("\n") >= TOKENS  # one line per generated token, plus the header
        for tab, mark in zip(others, marks, strict=True):
            tab.wait_run(mark)
