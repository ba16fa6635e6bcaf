"""Moving the graph's step in a real browser.

The graph page holds every step's picture (up to 40, a window around the current one) and
its step player switches between them in the browser; the server hears of the step when
the hand rests (`SETTLE_MS`) and reruns the graph's `st.fragment` for the captions, the
table and the link. Measured in Debian's Chromium against a real `streamlit run` (the
browser-test harness): from the key press to the new picture on screen (in the page: from
the slider's input event to the frame after Plotly redrew), to the end of the rerun that
follows (Streamlit's `script_finished` on the tab's websocket), and to the new step's
caption. Baseline, in turn with it: the same key press on a trivial one-slider app, whose
rerun is what every move waited for before. Also the JSON the pictures take.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

TRIVIAL_APP = """
import streamlit as st

step = st.slider("Generation step", 1, 50, key="s")
st.markdown(f"**Step {step} of 50**")
"""


def _frames_bytes(result, threshold: float, show_all: bool) -> int:
    """Bytes of JSON the graph page sends for its step player (every step, up to 40)."""
    import json

    from app.widgets.step_player import FRAMES
    from lib.analysis.attention import all_steps
    from lib.viz.graph import step_figures

    n = result.n_steps
    window = range(1, min(n, FRAMES) + 1)
    frames = step_figures(result, all_steps(result), window, threshold, None, show_all, None,
                          0, len(result.prompt_labels))  # fmt: skip
    return len(json.dumps(frames))


def _moves(session, n_steps: int, player: bool) -> tuple[list[float], ...]:
    """Move the step slider from 1 to 2 and back (two key presses): seconds from each press
    to the end of the rerun it starts, and to the new step's caption on screen; with the
    graph's step player, also to the new picture on screen (measured in the page, from the
    slider's input event to the frame after Plotly redrew)."""
    page = session.page
    slider = page.get_by_role("slider", name="Generation step")
    slider.focus()
    ends, shown, pictures = [], [], []
    for key, step in (("ArrowRight", 2), ("ArrowLeft", 1)):
        t0 = time.perf_counter()
        mark = session.start(lambda k=key: slider.press(k))
        if player:
            page.wait_for_function(f"window.__tavShown && window.__tavShown.step === {step}")
            pictures.append(page.evaluate("window.__tavShown.ms") / 1000)
        session.wait_run(mark)
        ends.append(time.perf_counter() - t0)
        page.get_by_text(f"Step {step} of {n_steps}").first.wait_for()
        shown.append(time.perf_counter() - t0)
    return ends, shown, pictures


def run(prompt: str, repeats: int, log, new_tokens: int | None = None) -> dict:
    """Measured on a run of `new_tokens` (default: what Generate writes by default)."""
    from playwright.sync_api import sync_playwright

    from lib.config import DEFAULT_MAX_TOKENS
    from lib.model.generation import generate
    from lib.model.loading import load_model
    from tests.browser import CHROMIUM_ARGS, AppSession, chromium_path, streamlit_server

    log("step move: generating the run the browser will step through")
    new_tokens = new_tokens or DEFAULT_MAX_TOKENS
    result = generate(load_model(), prompt, new_tokens)  # what the link below writes
    n = result.n_steps
    out: dict = {"prompt_tokens": len(result.prompt_labels), "generated_tokens": n}
    with tempfile.TemporaryDirectory() as tmp:
        trivial_path = Path(tmp) / "trivial.py"
        trivial_path.write_text(TRIVIAL_APP)
        logs = Path(tmp)
        with (
            streamlit_server(logs / "app.log") as app_url,
            streamlit_server(logs / "trivial.log", script=str(trivial_path)) as trivial_url,
            sync_playwright() as p,
        ):
            browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            # the graph page at a shared link: the run is written as Generate writes it,
            # then the page opens on its first step
            query = urlencode({"prompt": prompt, "tokens": new_tokens})
            link = f"{app_url}/attention_graph?{query}"
            app = AppSession(ctx, link, "app")
            app.page.get_by_text(f"Step 1 of {n}").wait_for()
            trivial = AppSession(browser.new_context(), trivial_url, "trivial")
            log(f"step move: {2 * repeats} moves each, graph page and trivial app in turn")
            graph_end, graph_shown, base_end, base_shown, pictures = [], [], [], [], []
            fragments_before = app.fragment_runs
            for _ in range(repeats):
                e, s, p = _moves(app, n, player=True)
                graph_end += e
                graph_shown += s
                pictures += p
                e, s, _ = _moves(trivial, 50, player=False)
                base_end += e
                base_shown += s
            out["fragment_reruns"] = app.fragment_runs - fragments_before
            log("step move: the pictures the page holds")
            out["frames_json_bytes"] = _frames_bytes(result, 0.05, False)
            out["frames_json_bytes_all_threshold_0"] = _frames_bytes(result, 0.0, True)
            browser.close()
    med = statistics.median
    from app.widgets.step_player import SETTLE_MS

    out |= {
        "picture_s": med(pictures),
        "settle_s": SETTLE_MS / 1000,
        "rerun_after_settle_s": med(graph_end) - SETTLE_MS / 1000,
        "step_move_s": med(graph_end),
        "step_shown_s": med(graph_shown),
        "trivial_move_s": med(base_end),
        "trivial_shown_s": med(base_shown),
        "ratio_vs_trivial": med(graph_end) / med(base_end),
        "times_s": {"graph": graph_end, "trivial": base_end, "picture": pictures},
    }
    return out


if __name__ == "__main__":  # a quick look by hand: python -m bench.step_move
    from bench.texts import prompt_text
    from lib.model.loading import load_model

    print(json.dumps(run(prompt_text(load_model().tokenizer, 25), 3, print), indent=1))
