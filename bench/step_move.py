"""Moving the graph's step slider in a real browser, and the road not taken.

Lazy updates: stepping through a generation should not rebuild what
did not change. The graph page puts everything a step move changes in one `st.fragment`,
so a move reruns only that fragment. Measured here in Debian's Chromium against a real
`streamlit run` (the browser-test harness): the time from the key press on the step slider
to the end of the rerun it starts (Streamlit's `script_finished` message on the tab's
websocket) and to the new step's caption on screen. Baseline, in turn with it: the same key
press on a trivial one-slider app served the same way.

The alternative, steps as client-side Plotly animation frames (no server round trip), is
measured too: the JSON of one figure holding every step, and a frame switch in the browser
with plotly.js alone. It is not what the page does; the README says why.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import plotly.graph_objects as go
import plotly.io as pio

TRIVIAL_APP = """
import streamlit as st

step = st.slider("Generation step", 1, 50, key="s")
st.markdown(f"**Step {step} of 50**")
"""


def _frames_figure(result, threshold: float, show_all: bool) -> go.Figure:
    """Every step of the graph as animation frames of one figure (the alternative)."""
    from lib.analysis.attention import all_steps
    from lib.viz.graph import attention_graph, select_edges

    steps = all_steps(result)
    frames = []
    for k in range(result.n_steps):
        edges = select_edges(steps, k, threshold, show_all)
        fig = attention_graph(result.prompt_labels, result.generated_labels, edges, k)
        frames.append(go.Frame(data=fig.data, name=str(k)))
    first = attention_graph(
        result.prompt_labels, result.generated_labels, select_edges(steps, 0, threshold), 0
    )
    first.frames = frames
    return first


FRAME_SWITCH_JS = """async (n) => {
  const gd = document.getElementById('g');
  const times = [];
  for (let i = 1; i < n; i++) {
    const t0 = performance.now();
    await Plotly.animate(gd, [String(i)], {mode: 'immediate', frame: {duration: 0,
      redraw: true}, transition: {duration: 0}});
    times.push(performance.now() - t0);
  }
  return times;
}"""


def _frame_switch_ms(browser, fig: go.Figure) -> list[float]:
    """Switching frames in a page holding only plotly.js and the figure."""
    from plotly.offline import get_plotlyjs

    html = (
        "<html><body><div id='g'></div><script>" + get_plotlyjs() + "</script><script>"
        f"Plotly.newPlot('g', {pio.to_json(fig)});</script></body></html>"
    )
    page = browser.new_page()
    with tempfile.NamedTemporaryFile("w", suffix=".html", delete=False) as f:
        f.write(html)
    page.goto(Path(f.name).as_uri())
    page.wait_for_function("document.getElementById('g').data !== undefined")
    times = page.evaluate(FRAME_SWITCH_JS, len(fig.frames))
    page.close()
    return times


def _moves(session, n_steps: int) -> tuple[list[float], list[float]]:
    """Move the step slider from 1 to 2 and back (two key presses): seconds from each press
    to the end of the rerun it starts, and to the new step's caption on screen."""
    page = session.page
    slider = page.get_by_role("slider").first
    slider.focus()
    ends, shown = [], []
    for key, step in (("ArrowRight", 2), ("ArrowLeft", 1)):
        t0 = time.perf_counter()
        session.wait_run(session.start(lambda k=key: slider.press(k)))
        ends.append(time.perf_counter() - t0)
        page.get_by_text(f"Step {step} of {n_steps}").first.wait_for()
        shown.append(time.perf_counter() - t0)
    return ends, shown


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
            graph_end, graph_shown, base_end, base_shown = [], [], [], []
            fragments_before = app.fragment_runs
            for _ in range(repeats):
                e, s = _moves(app, n)
                graph_end += e
                graph_shown += s
                e, s = _moves(trivial, 50)
                base_end += e
                base_shown += s
            out["fragment_reruns"] = app.fragment_runs - fragments_before
            log("step move: the alternative, every step as client-side animation frames")
            fig = _frames_figure(result, 0.05, False)
            t0 = time.perf_counter()
            fig = _frames_figure(result, 0.05, False)
            out["frames_build_s"] = time.perf_counter() - t0
            out["frames_json_bytes"] = len(pio.to_json(fig))
            out["frames_switch_ms"] = statistics.median(_frame_switch_ms(browser, fig))
            heavy = _frames_figure(result, 0.0, True)
            out["frames_json_bytes_all_threshold_0"] = len(pio.to_json(heavy))
            browser.close()
    med = statistics.median
    out |= {
        "step_move_s": med(graph_end),
        "step_shown_s": med(graph_shown),
        "trivial_move_s": med(base_end),
        "trivial_shown_s": med(base_shown),
        "ratio_vs_trivial": med(graph_end) / med(base_end),
        "times_s": {"graph": graph_end, "trivial": base_end},
    }
    return out


if __name__ == "__main__":  # a quick look by hand: python -m bench.step_move
    from bench.texts import prompt_text
    from lib.model.loading import load_model

    print(json.dumps(run(prompt_text(load_model().tokenizer, 25), 3, print), indent=1))
