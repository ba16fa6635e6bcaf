"""In a real browser: injected markup stays text, and eight sessions at once stay apart."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from lib.generation import generate
from tests.browser import wait_idle
from tests.inputs import INJECTION

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def open_page(pg, title: str) -> None:
    pg.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    wait_idle(pg)


def type_and_generate(pg, prompt: str, wait: bool = True) -> None:
    box = pg.get_by_label("Prompt")
    box.fill(prompt)
    box.press("Tab")
    wait_idle(pg)
    pg.get_by_role("button", name="Generate").click()
    if wait:
        wait_idle(pg)


DOM_PROBE = """() => ({
  imgs: document.querySelectorAll('img[src="x"], img[onerror]').length,
  scripts: [...document.scripts].filter(s => s.textContent.includes('alert(1)')).length,
  links: document.querySelectorAll('a[href^="javascript"]').length,
  bold: [...document.querySelectorAll('strong, b')].filter(e => e.textContent === 'bold').length,
})"""


def test_injected_markup_is_shown_as_text_and_never_runs(page, artifacts_dir):
    pg = page
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    type_and_generate(pg, INJECTION)
    assert INJECTION in pg.get_by_test_id("stCode").first.inner_text()
    pg.screenshot(path=str(artifacts_dir / "5-injection-generate.png"))
    for title in ("Attention graph", "Attention matrices", "Generate"):
        open_page(pg, title)
        probe = pg.evaluate(DOM_PROBE)
        assert probe == {"imgs": 0, "scripts": 0, "links": 0, "bold": 0}, (title, probe)
        if title == "Attention graph":
            labels = pg.locator(".js-plotly-plot .textpoint").evaluate_all(
                "els => els.map(e => e.textContent)"
            )
            assert any("<" in t for t in labels) and any("script" in t for t in labels)
            pg.screenshot(path=str(artifacts_dir / "6-injection-graph.png"))
        if title == "Attention matrices":
            with pg.expect_download() as info:
                pg.get_by_role("button", name="Download this matrix (CSV)").click()
            header = Path(info.value.path()).read_text(encoding="utf-8").splitlines()[0]
            assert all(f": {piece}," in header for piece in ("<", "img", "script", "error"))
    assert not dialogs, f"a script ran: {dialogs}"


def test_eight_sessions_at_once_each_see_their_own_run(server, browser, smollm2, artifacts_dir):
    prompts = [
        "The old wizard walked through the forest",
        "My favourite fruit is",
        "The capital of France is",
        "In the beginning of the universe",
        "Dear diary, today I",
        "The recipe for pancakes starts with",
        "Once upon a time, a dragon",
        "The football match ended with",
    ]
    contexts, pages = [], []
    for _ in prompts:
        ctx = browser.new_context(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
        pg = ctx.new_page()
        pg.goto(server)
        contexts.append(ctx)
        pages.append(pg)
    try:
        for pg, prompt in zip(pages, prompts, strict=True):
            wait_idle(pg)
            box = pg.get_by_label("Prompt")
            box.fill(prompt)
            box.press("Tab")
            wait_idle(pg)
            pg.get_by_label("Max new tokens")  # present
        for pg in pages:  # start all eight generations before waiting for any
            pg.get_by_role("button", name="Generate").click()
        for pg in pages:
            wait_idle(pg)
        for i, (pg, prompt) in enumerate(zip(pages, prompts, strict=True)):
            expected = generate(smollm2, prompt, 20)  # the same run, alone, in this process
            text = pg.get_by_test_id("stCode").first.inner_text()
            want = prompt + expected.generated_text
            assert text.strip() == want.strip(), f"session {i} shows another run"
            with pg.expect_download() as info:
                pg.get_by_role("button", name="Download the whole run (NPZ)").click()
            with np.load(io.BytesIO(Path(info.value.path()).read_bytes())) as z:
                assert json.loads(str(z["meta"]))["prompt"] == prompt
                np.testing.assert_array_equal(z["token_ids"], expected.token_ids)
                np.testing.assert_allclose(z["attention"], expected.attention, atol=1e-5)
        pages[0].screenshot(path=str(artifacts_dir / "7-concurrent-session.png"))
    finally:
        for ctx in contexts:
            ctx.close()
