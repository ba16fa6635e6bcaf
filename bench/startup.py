"""Item 11: from `uv run streamlit run main.py` to a page a student can use, and what each
page imports.

Start: the README's command in a fresh process (the model already converted, the disk
warm), and Debian's Chromium opening the app as soon as the server answers its health
check. Measured from the command's start: the health check; the Welcome page drawn (its
first script run finished, its table of contents on screen); then, clicking Generate at
once, the Generate page with the model loaded (its run finished, the Generate button on
screen). Baseline, in turn with it: a one-line app served the same way.

Imports: each page opened in a fresh process under AppTest after main.py's first run,
with the background model load switched off (TAV_WARM_UP=0), and the heavy libraries that
opening it brought in, with the time it took (the page's first screen: no run yet).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, child_env, median

WAIT_MS = 120_000  # a busy machine (the smoke run measures everything at once) is slow
TRIVIAL_APP = 'import streamlit as st\n\nst.title("Hello")\n'
HEAVY = (
    "torch",
    "transformers",
    "plotly",
    "pandas",
    "altair",
    "scipy",
    "sklearn",
    "umap",
    "numba",
    "hdbscan",
    "pyarrow",
    "fastapi",
    "vl_convert",
    "matplotlib",
)


def _serve(script: str, port: int, env: dict[str, str], log) -> subprocess.Popen:
    cmd = ["uv", "run", "--no-sync", "streamlit", "run", script, "--server.headless", "true",
           "--server.port", str(port), "--server.address", "127.0.0.1",
           "--browser.gatherUsageStats", "false"]  # fmt: skip
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _one_start(browser, script: str, app: bool, env: dict[str, str]) -> dict:
    """One fresh server: seconds from the command's start to each milestone."""
    from playwright.sync_api import expect

    from tests.browser import AppSession, free_port, wait_healthy

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile("w+") as log:
        t0 = time.monotonic()
        proc = _serve(script, port, env, log)
        try:
            if not wait_healthy(url, proc, t0 + 120, poll=0.02):
                raise RuntimeError("streamlit did not start")
            out = {"health_s": time.monotonic() - t0}
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            s = AppSession(context, url, "startup")  # returns when the first run finished
            if app:
                expect(s.page.get_by_text("Start: write a prompt")).to_be_visible(timeout=WAIT_MS)
            else:
                expect(s.page.get_by_text("Hello")).to_be_visible(timeout=WAIT_MS)
            out["page_s"] = time.monotonic() - t0
            if app:
                mark = s.start(lambda: s.page.get_by_test_id("stSidebarNav").get_by_text(
                    "Generate", exact=True).click())  # fmt: skip
                expect(s.page.get_by_label("Prompt")).to_be_visible(timeout=WAIT_MS)
                out["prompt_s"] = time.monotonic() - t0  # a student can type
                s.wait_run(mark)
                expect(s.page.get_by_role("button", name="Generate")).to_be_enabled(timeout=WAIT_MS)
                out["generate_s"] = time.monotonic() - t0  # and generate: the model is loaded
            context.close()
            return out
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def startup(repeats: int, log, warm_round: bool = True) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.browser import chromium_path

    env = child_env(int(os.environ.get("TAV_BENCH_THREADS", "1")))
    with tempfile.TemporaryDirectory() as tmp:
        trivial = Path(tmp) / "hello.py"
        trivial.write_text(TRIVIAL_APP)
        runs: dict[str, list[dict]] = {"app": [], "trivial": []}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path())
            try:
                first = 0 if warm_round else 1  # round 0 warms the disk: not kept
                for r in range(first, repeats + 1):
                    order = ["app", "trivial"] if r % 2 == 0 else ["trivial", "app"]
                    for name in order:
                        script = "main.py" if name == "app" else str(trivial)
                        one = _one_start(browser, script, name == "app", env)
                        log(f"startup: {name} {one}")
                        if r:
                            runs[name].append(one)
            finally:
                browser.close()
    app, trivial_runs = runs["app"], runs["trivial"]
    return {
        "health_s": median([x["health_s"] for x in app]),
        "welcome_s": median([x["page_s"] for x in app]),
        "prompt_s": median([x["prompt_s"] for x in app]),
        "generate_s": median([x["generate_s"] for x in app]),
        "trivial_s": median([x["page_s"] for x in trivial_runs]),
        "runs": runs,
    }


# ---- what each page imports -------------------------------------------------------------


def child(page: str) -> dict:
    """In a fresh process: main.py's first run, then `page`; the heavy modules it added."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "main.py"), default_timeout=300)
    at.run()
    before = {m for m in HEAVY if m in sys.modules}
    t0 = time.perf_counter()
    at.switch_page(page).run()
    took = time.perf_counter() - t0
    if at.exception:
        raise RuntimeError(f"{page} raised: {at.exception}")
    return {
        "page": page,
        "main": sorted(before),
        "added": [m for m in HEAVY if m in sys.modules and m not in before],
        "open_s": took,
    }


def imports(pages: list[str], log) -> list[dict]:
    env = child_env(int(os.environ.get("TAV_BENCH_THREADS", "1")), TAV_WARM_UP="0")
    rows = []
    for page in pages:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.startup", page],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"{page}: {proc.stderr[-2000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        log(f"imports: {rows[-1]}")
    return rows


def run(quick: bool, repeats: int, log) -> dict:
    from app.lessons import LESSONS

    pages = [x.path for x in LESSONS]
    if quick:  # the smoke run: one start of each, no warming round, two pages' imports
        pages = pages[:2]
    start = startup(1 if quick else repeats, log, warm_round=not quick)
    return {"start": start, "imports": imports(pages, log)}


if __name__ == "__main__":
    print(json.dumps(child(sys.argv[1])))
