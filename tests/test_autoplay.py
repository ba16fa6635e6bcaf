"""Step by step's autoplay (one token per tick, stopping by itself) and the sampled-token
highlight that the next-token charts draw."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from tests.apphelpers import assert_ok, button, graph_steps

STEPS = "lessons/step_by_step.py"


# ---- pure: the clock and the highlight ----------------------------------------------------


def test_tick_due_once_per_pace_and_never_queued():
    from app.stepping import tick_due

    assert tick_due(100.0, None, 1.5)  # switching on writes the first token at once
    assert tick_due(101.5, 100.0, 1.5)  # one pace later
    assert tick_due(101.4, 100.0, 1.5)  # a timer a little early still counts
    assert not tick_due(100.3, 100.0, 1.5)  # a rerun in between writes nothing
    assert tick_due(104.0, 100.0, 1.5)  # after a slow tick the next one comes at once


def _layers(spec: dict) -> list[dict]:
    return spec.get("layer", [spec])


def _sampled_ids(spec: dict) -> list[int]:
    """Ids of the rows the chart's data flags as sampled, read from the Vega-Lite spec."""
    rows = [r for data in spec["datasets"].values() for r in data]
    return sorted({int(r["id"]) for r in rows if r.get("sampled")})


def _marker_layers(spec: dict) -> list[dict]:
    return [
        lay
        for lay in _layers(spec)
        if lay["mark"].get("text") in ("◀ sampled", "◀") or lay["mark"].get("stroke") == "#111111"
    ]


def test_highlight_marks_exactly_the_given_id():
    from lib.analysis.next_token import Filtered, StepDistribution
    from lib.viz import next_token as ch

    probs = np.array([0.05, 0.4, 0.25, 0.2, 0.1], dtype=np.float32)  # ranks: 1, 2, 3, 4, 0
    dist = StepDistribution(0, np.log(probs), probs, chosen=1)
    text = {i: f"tok{i}" for i in range(5)}.__getitem__
    df = ch.candidates_frame(dist, 4, text)
    spec = ch.candidates_chart(df, highlight=3).to_dict()
    assert _sampled_ids(spec) == [3]
    assert len(_marker_layers(spec)) == 2  # the outline and the "◀ sampled" text
    assert all(lay["transform"] == [{"filter": "datum.sampled"}] for lay in _marker_layers(spec))
    assert _sampled_ids(ch.candidates_chart(df, highlight=None).to_dict()) == []
    assert _marker_layers(ch.candidates_chart(df, highlight=None).to_dict()) == []
    assert _marker_layers(ch.candidates_chart(df, highlight=0).to_dict()) == []  # not shown

    kept = np.array([False, True, True, False, False])
    after = Filtered("top-k", np.where(kept, probs, 0) / probs[kept].sum(), kept, 0.25)
    frame = ch.filter_frame(probs, after, [1, 2, 3, 4], text)
    assert frame["id"].tolist() == [1, 2, 3, 4]
    spec = ch.filter_chart(frame, "Top-k 2", 0.25, 0.5, highlight=3).to_dict()
    assert _sampled_ids(spec) == [3]
    texts = [lay for lay in _marker_layers(spec) if lay["mark"].get("text")]
    # token 3 is cut here: its marker is the one placed after "✕ cut"
    assert {lay["mark"]["dx"] for lay in texts} == {3, 42}
    assert spec["layer"][0]["encoding"]["x"]["scale"]["domain"] == [0, 0.5]  # x_max kept
    assert _marker_layers(ch.filter_chart(frame, "Top-k 2", 0.25, 0.5).to_dict()) == []


# ---- the page, on the real model ----------------------------------------------------------


def _tick(at, due: bool = True):
    """One rerun as a timer tick would cause it: due (the last tick long ago) or early."""
    at.session_state["ap_last"] = 0.0 if due else time.monotonic() + 1e6
    at.run()
    assert_ok(at)
    return at.session_state["run"]


def _candidates(at) -> pd.DataFrame:
    import pyarrow as pa

    chart = at.get("vega_lite_chart")[0]
    return pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_all().to_pandas()


def test_autoplay_writes_one_token_per_tick_and_stops_at_its_cap(app, smollm2):
    from lib.model.generation import generate

    app.switch_page("lessons/generate.py").run()
    app.toggle(key="atlas_record__w").set_value(True)  # shares its runs with the atlas
    app.slider(key="max_tokens__w").set_value(3)
    button(app, "Generate").click().run()
    app.switch_page(STEPS).run()
    app.radio(key="nt_decoding__w").set_value("Greedy").run()
    app.number_input(key="ap_cap__w").set_value(5).run()
    start = app.session_state["run"]
    assert start.result.n_steps == 3
    recorded = set(app.session_state["atlas_recorded"])

    app.toggle(key="ap_on__w").set_value(True).run()  # the first token comes at once
    assert_ok(app)
    r4 = app.session_state["run"]
    assert r4.result.n_steps == 4 and app.session_state["step"] == 4
    np.testing.assert_array_equal(r4.result.token_ids[:-1], start.result.token_ids)
    last = app.session_state["nt_sampled"]
    assert (last.run_key, last.step, last.token) == (r4.key, 3, int(r4.result.token_ids[-1]))
    cands = _candidates(app)  # the step just written, its token marked as sampled
    assert cands.loc[cands["sampled"], "id"].tolist() == [last.token]

    assert app.session_state["ap_on"] and app.toggle(key="ap_on__w").value
    assert _tick(app, due=False).key == r4.key  # a rerun between ticks writes nothing
    r5 = _tick(app)  # the fifth token reaches the stop: autoplay switches itself off
    assert r5.result.n_steps == 5
    assert not app.session_state["ap_on"] and not app.toggle(key="ap_on__w").value
    assert "autoplay's stop (5)" in app.session_state["ap_note"]
    assert _tick(app).key == r5.key  # off: no more tokens

    # Greedy, one token at a time, writes what one greedy generate of 5 tokens writes.
    plain = generate(smollm2, start.result.prompt, 5)
    np.testing.assert_array_equal(r5.result.token_ids, plain.token_ids)
    # Only the finished run went to the atlas, not every prefix of it.
    assert set(app.session_state["atlas_recorded"]) - recorded == {r5.key}
    # Every page follows: the graph's step slider walks through the 5 steps.
    app.switch_page("lessons/attention_graph.py").run()
    assert not app.exception and graph_steps(app) == (5, 5)  # on the newest token
