"""Item 5: a full rerun of the attention-graph page when only the step slider moves.

The app runs headless under Streamlit's AppTest (main.py, the real pages, the real bundled
model): one generation, then the graph page, then the step slider moves again and again
(the result is cached, so each rerun only redraws). The baseline is the same slider move
on a trivial one-slider script, measured in turn with it: AppTest's own cost per rerun.
"""

from __future__ import annotations

import itertools

from bench.common import ROOT, interleaved, median

TARGET_S = 0.150
FAILURE_TEXT = "Something went wrong while drawing this page"
TRIVIAL_SCRIPT = """
import streamlit as st

step = st.slider("Generation step", 1, 50, key="s")
st.write(f"step {step}")
"""


def _check(at) -> None:
    if at.exception:
        raise RuntimeError(f"the app raised: {at.exception}")
    failed = [e.value for e in at.error if FAILURE_TEXT in str(e.value)]
    if failed:
        raise RuntimeError("a page failed while benchmarking; see the log")


def run(prompt: str, new_tokens: int, repeats: int, log) -> dict:
    from streamlit.testing.v1 import AppTest

    log(f"rerun: generating {new_tokens} tokens in the app (AppTest), then the graph page")
    at = AppTest.from_file(str(ROOT / "main.py"), default_timeout=900)
    at.run()
    at.switch_page("lessons/generate.py").run()  # the app opens on the Welcome page
    _check(at)
    at.text_area(key="prompt__w").input(prompt)
    at.slider(key="max_tokens__w").set_value(new_tokens)
    next(b for b in at.button if b.label == "Generate").click().run()
    _check(at)
    result = at.session_state["run"].result
    at.switch_page("lessons/attention_graph.py").run()
    _check(at)

    trivial = AppTest.from_string(TRIVIAL_SCRIPT, default_timeout=60)
    trivial.run()
    n = result.n_steps
    steps = itertools.cycle(list(range(2, n + 1)) + [1])
    trivial_steps = itertools.cycle(list(range(2, 51)) + [1])

    def move_graph() -> None:
        # what the graph's step player does once the hand rests: write the shared step
        at.session_state["step"] = next(steps)
        at.run()

    def move_trivial() -> None:
        trivial.slider(key="s").set_value(next(trivial_steps)).run()

    def measure(label: str) -> dict:
        log(f"rerun: step slider, {label}, {repeats} moves each")
        t = interleaved({"graph": move_graph, "trivial": move_trivial}, repeats)
        _check(at)
        graph_s, trivial_s = median(t["wall"]["graph"]), median(t["wall"]["trivial"])
        return {
            "graph_page_s": graph_s,
            "graph_page_cpu_s": median(t["cpu"]["graph"]),
            "trivial_script_s": trivial_s,
            "ratio_vs_trivial": graph_s / trivial_s,
            "times_s": t["wall"],
        }

    default = measure("default settings (threshold 0.05, current step)")
    # The heaviest drawing: every connection of every step so far, at threshold 0.
    at.slider(key="threshold__w").set_value(0.0).run()
    next(b for b in at.button if b.label == "Show all connections").click().run()
    _check(at)
    heavy = measure("threshold 0 and show all")
    return {
        "target": f"graph page rerun <= {TARGET_S * 1000:.0f} ms (default settings)",
        "prompt_tokens": len(result.prompt_labels),
        "generated_tokens": n,
        "default": default,
        "show_all_threshold_0": heavy,
        "graph_page_s": default["graph_page_s"],
        "ok": default["graph_page_s"] <= TARGET_S,
    }
