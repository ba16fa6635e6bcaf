"""The graph's step slider, played in the browser: a move redraws the graph at once from
pictures of every step the page already holds, and the server hears of the step only when
the hand rests (a pause of `SETTLE_MS`), then updates the captions, the table, the click
filter and the link. Ten quick moves are one rerun, not ten.

A small `st.components.v2` component (Streamlit's own bidirectional components: no iframe,
no build step). It draws a native range input, redraws the Plotly chart in the container
named `box` with the Plotly library Streamlit's chart already loaded, and reports the
resting step as a trigger (an event each time, even back to a step reported before).
Steps whose picture was not sent (a long run: only a window around the current step
travels) wait for the server, as every move did before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from app.state import clamp_step, put

SETTLE_MS = 350  # no move for this long: the step is sent to the server
FRAMES = 40  # steps whose pictures the page holds (a window around the current one)
FRAMES_ALL = 10  # with every step's lines drawn at once, each picture holds all before it
KEY = "graph_step_player"

_JS = """
export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  const s = parentElement.__tav || (parentElement.__tav = {});
  if (s.data !== data) share(data.frames);
  s.data = data;
  s.send = setTriggerValue;
  if (!s.input) {
    const label = document.createElement("label");
    label.className = "tav-label";
    label.textContent = "Generation step";
    const row = document.createElement("div");
    row.className = "tav-row";
    const input = document.createElement("input");
    input.type = "range";
    input.min = "1";
    input.setAttribute("aria-label", "Generation step");
    const out = document.createElement("span");
    out.className = "tav-out";
    out.setAttribute("data-testid", "tav-step-shown");
    row.append(input, out);
    label.htmlFor = input.id = "tav-step-" + Math.random().toString(36).slice(2);
    parentElement.append(label, row);
    s.input = input;
    s.out = out;
    input.addEventListener("input", () => {
      const k = Number(input.value);
      const t0 = performance.now();
      show(k, t0);
      clearTimeout(s.timer);
      s.moving = true;
      s.timer = setTimeout(() => {
        s.moving = false;
        if (input.isConnected) s.send("step", k);  // not from a player the page left
      }, s.data.settle_ms);
    });
  }
  // Steps share most of their figure (the token markers' places and labels, the layout):
  // one object for equal parts lets Plotly redraw only what changed between steps.
  function share(frames) {
    const seen = new Map();
    const one = (v) => {
      const key = JSON.stringify(v);
      if (!seen.has(key)) seen.set(key, v);
      return seen.get(key);
    };
    for (const f of Object.values(frames)) {
      f.layout = one(f.layout);
      for (const tr of f.data) {
        for (const a of ["x", "y", "text", "customdata", "hovertext", "textposition"]) {
          if (tr[a] !== undefined) tr[a] = one(tr[a]);
        }
      }
    }
  }
  function show(k, t0) {
    const d = s.data;
    s.out.textContent = `${k} of ${d.n}`;
    const frame = d.frames[String(k)];
    const gd = document.querySelector(`.st-key-${d.box} .js-plotly-plot`);
    if (!frame || !gd || !window.Plotly) return;
    // the theme Streamlit gave the chart on screen (the server's JSON carries placeholders)
    frame.layout.template = gd.layout.template;
    window.Plotly.react(gd, frame.data, frame.layout).then(() => {
      requestAnimationFrame(() => {
        window.__tavShown = { step: k, ms: performance.now() - t0 };
      });
    });
  }
  s.input.max = String(data.n);
  if (!s.moving) {  // the server's step, unless the hand is still moving
    s.input.value = String(data.step);
    s.out.textContent = `${data.step} of ${data.n}`;
  }
}
"""

_CSS = """
.tav-label { font-size: 14px; display: block; margin-bottom: 0.5rem; }
.tav-row { display: flex; align-items: center; gap: 0.75rem; padding: 0.25rem 0; }
.tav-row input[type="range"] {
  flex: 1; appearance: none; -webkit-appearance: none; height: 4px; border-radius: 2px;
  background: rgba(151, 166, 195, 0.45); outline: none; margin: 0;
}
.tav-row input[type="range"]::-webkit-slider-thumb {
  -webkit-appearance: none; width: 14px; height: 14px; border-radius: 50%;
  background: var(--st-primary-color, #ff4b4b); cursor: pointer;
}
.tav-row input[type="range"]::-moz-range-thumb {
  width: 14px; height: 14px; border: 0; border-radius: 50%;
  background: var(--st-primary-color, #ff4b4b); cursor: pointer;
}
.tav-row input[type="range"]:focus-visible::-webkit-slider-thumb {
  box-shadow: 0 0 0 4px rgba(255, 75, 75, 0.3);
}
.tav-out { font-variant-numeric: tabular-nums; min-width: 5.5em; font-size: 14px; }
"""


@st.cache_resource
def _component():
    """Registered once per process, when the graph page first needs it."""
    return st.components.v2.component("tav_step_player", html="", css=_CSS, js=_JS)


def _moved() -> None:
    step = st.session_state[KEY]["step"]
    if isinstance(step, int | float):
        put("step", int(step))


def step_player(n: int, frames: dict[str, Any], box: str, help_text: str) -> int:
    """The step slider over the shared value "step" (1-based on screen); returns the
    0-based step. `frames` holds, by 1-based step, the Plotly figure (data and layout) the
    chart in the container keyed `box` shows at that step."""
    current = clamp_step("step", n)
    if n <= 1:
        st.caption("One token was generated: step 1 of 1.")
        return 0
    _component()(
        key=KEY,
        data={"n": n, "step": current, "frames": frames, "box": box, "settle_ms": SETTLE_MS},
        on_step_change=_moved,
        height="content",
    )
    st.caption(help_text)
    return current - 1


def frame_window(n: int, current: int, size: int) -> Sequence[int]:
    """The 1-based steps whose pictures travel: all of them up to `size`, else `size`
    steps around the current one (the payload stays bounded however long the run). The
    window moves in blocks of half its size, so it (and its cache entry) changes once
    every size/2 steps, and the current step keeps at least size/4 steps on either side."""
    if n <= size:
        return range(1, n + 1)
    half, quarter = size // 2, size // 4
    start = (current - 1) // half * half - quarter + 1
    start = min(max(start, 1), n - size + 1)
    return range(start, start + size)
