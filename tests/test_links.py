"""Share a view by link: the URL reproduces the run and the view; a bad
or hostile value keeps its default and is named in a note, never run or rendered."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.link_query import read_link
from lib.config import LINES_TOP_K, MATRIX_WHOLE, Limits
from lib.model.generation import generate
from lib.model.result import SamplingSettings
from tests.apphelpers import assert_ok, button, set_graph_step

HOSTILE = "**bold** <script>alert(1)</script> [x](javascript:alert(1)) $x$ \u202eevil"


def test_read_link_takes_what_parses():
    link = read_link(
        {
            "prompt": "The cat",
            "tokens": "7",
            "sample": "1",
            "temperature": "0.7",
            "seed": "42",
            "step": "3",
            "layer": "mean",
            "head": "4",
            "threshold": "0.05",
            "sink": "1",
            "lines": "top",
            "k": "3",
            "matrix": "whole",
            "projector": "true",
            "select": "out-2",
            "forced": "1,2,3",
        },
        Limits.from_env(),
    )
    assert link.notes == ()
    assert link.prompt == "The cat" and link.forced == (1, 2, 3)
    assert link.selection == ("output", 2)
    v = link.values
    assert v["max_tokens"] == 7 and v["decoding"] == "Sample" and v["temperature"] == 0.7
    assert v["seed"] == 42 and v["step"] == 3 and v["layer"] is None and v["head"] == 4
    assert v["threshold"] == 0.05 and v["hide_sink"] is True and v["graph_lines"] == LINES_TOP_K
    assert v["graph_top_k"] == 3 and v["matrix_source"] == MATRIX_WHOLE and v["projector"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("tokens", "0"),
        ("tokens", "51"),
        ("tokens", "1e9"),
        ("temperature", "nan"),
        ("temperature", "inf"),
        ("temperature", "0"),
        ("top_p", "-1"),
        ("seed", "-5"),
        ("step", "abc"),
        ("layer", "-1"),
        ("head", "1.5"),
        ("threshold", "0.9"),
        ("sink", "maybe"),
        ("lines", "<b>"),
        ("matrix", "__class__"),
        ("select", "in-"),
        ("select", "sideways-3"),
        ("forced", "1,,2"),
        ("prompt", "   "),
        ("prompt", "x" * 30_000),
    ],
)
def test_a_bad_value_keeps_its_default_and_is_named(name, value):
    link = read_link({name: value}, Limits.from_env())
    assert link.values == {} and link.selection is None and link.forced == ()
    if name == "prompt":
        assert link.prompt is None
    assert len(link.notes) == 1 and link.notes[0].startswith(name)
    assert len(link.notes[0]) < 200  # a long value is quoted in part, not whole


def test_hostile_prompt_is_kept_as_typed_and_unknown_names_are_noted():
    link = read_link({"prompt": HOSTILE, "<img src=x>": "1"}, Limits.from_env())
    assert link.prompt == HOSTILE  # the prompt is text; the views escape it as every prompt
    assert len(link.notes) == 1 and "not a setting" in link.notes[0]


def open_link(params: dict[str, str], page: str | None = None) -> AppTest:
    """The app opened from a link (the notes show on that first run: `at.link_notes`)."""
    at = AppTest.from_file("../main.py", default_timeout=240)
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    assert_ok(at)
    at.link_notes = warnings(at)
    at.link_raw = [str(w.value) for w in at.warning]
    if page:
        at.switch_page(page).run()
        assert_ok(at)
    return at


def warnings(at: AppTest) -> list[str]:
    return [str(w.value).replace("\\", "") for w in at.warning]


def test_a_link_writes_its_run_and_sets_the_view(smollm2):
    prompt = "Sharing a view: the old wizard"
    at = open_link(
        {"prompt": prompt, "tokens": "6", "step": "4", "layer": "3", "head": "2", "sink": "1"},
        "lessons/attention_graph.py",
    )
    assert not at.link_notes
    run = at.session_state["run"]
    alone = generate(smollm2, prompt, 6)  # independently: the same request, generated here
    np.testing.assert_array_equal(run.result.token_ids, alone.token_ids)
    np.testing.assert_allclose(run.result.attention, alone.attention, atol=1e-5)
    ss = at.session_state
    assert (ss["step"], ss["layer"], ss["head"], ss["hide_sink"]) == (4, 3, 2, True)
    assert any("Step 4 of 6" in str(m.value) for m in at.markdown)
    assert at.selectbox(key="layer__w").value == 3 and at.selectbox(key="head__w").value == 2
    assert at.query_params["step"] == "4" and at.query_params["prompt"] == prompt


def test_a_teachers_view_reproduced_from_its_link(smollm2):
    """The teacher samples with a seed, moves to step 5 of layer 1 with the top-3 lines;
    the link in their address bar gives a student the same run and the same view."""
    teacher = AppTest.from_file("../main.py", default_timeout=240)
    teacher.run()
    teacher.switch_page("lessons/generate.py").run()
    teacher.text_area(key="prompt__w").input("A seeded lesson about rivers")
    teacher.slider(key="max_tokens__w").set_value(8)
    teacher.radio(key="decoding__w").set_value("Sample").run()  # the seed box opens
    teacher.number_input(key="seed__w").set_value(123)
    button(teacher, "Generate").click().run()
    assert_ok(teacher)
    teacher.switch_page("lessons/attention_graph.py").run()
    set_graph_step(teacher, 5)
    teacher.selectbox(key="layer__w").set_value(1).run()
    teacher.radio(key="graph_lines__w").set_value(LINES_TOP_K).run()
    teacher.number_input(key="graph_top_k__w").set_value(3).run()
    assert_ok(teacher)
    link = {name: teacher.query_params[name] for name in teacher.query_params}
    assert link["sample"] == "1" and link["seed"] == "123" and link["step"] == "5"

    student = open_link(link, "lessons/attention_graph.py")
    assert not student.link_notes
    t, s = teacher.session_state, student.session_state
    assert s["run"].key == t["run"].key  # the same request: the same run, shared
    np.testing.assert_array_equal(s["run"].result.token_ids, t["run"].result.token_ids)
    assert s["run"].result.settings.sampling == SamplingSettings(True, 1.0, 0, 1.0, 0.0, 123)
    for name in ("step", "layer", "head", "graph_lines", "graph_top_k", "threshold"):
        assert s[name] == t[name], name
    assert student.get("plotly_chart")[0].proto.spec == teacher.get("plotly_chart")[0].proto.spec


def test_a_hostile_link_gets_defaults_and_a_note(smollm2):
    at = open_link(
        {
            "prompt": HOSTILE,
            "tokens": "2",
            "step": "40",
            "layer": "99",
            "select": "in-5000",
            "model": "no-such-user/no-such-model",
            "<script>": "x",
        },
        "lessons/generate.py",
    )
    notes = " ".join(at.link_notes)
    for part in ("step=40", "layer=99", "select=in-5000", "no-such-user/no-such-model", "<script>"):
        assert part in notes, part
    assert at.session_state["run"].result.prompt == HOSTILE.strip()  # written, as text
    assert at.session_state["step"] == 1 and at.session_state["layer"] is None
    assert at.session_state["model_spec"].startswith("bundled:")
    assert at.link_raw and all(
        "<script>" not in r for r in at.link_raw
    )  # escaped: \<script\> shows as typed


def _font_sizes(node, found: list[float]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("fontSize", "labelFontSize", "titleFontSize") and isinstance(
                value, int | float
            ):
                found.append(float(value))
            elif key != "datasets":
                _font_sizes(value, found)
    elif isinstance(node, list):
        for item in node:
            _font_sizes(item, found)


def test_projector_mode_sizes_every_chart_and_stays_in_the_tab(smollm2):
    """With the projector switch on, every chart on every page that draws one has
    no text under 16 px (axes, legends, titles, text marks, the graph's labels)."""
    import json

    from lib.viz.look import PROJECTOR_TEXT
    from tests.apphelpers import ALL_PAGES

    at = open_link({"prompt": "Projector mode for the back row", "tokens": "4", "projector": "1"})
    assert at.toggle(key="projector__w").value is True
    charts = 0
    for page in ALL_PAGES:
        at.switch_page(page).run()
        assert_ok(at)
        assert "projector" not in at.query_params, page  # a teacher's mode, not the view
        for element in at.get("vega_lite_chart"):
            spec = json.loads(element.proto.spec)
            config = spec.get("config", {})
            assert config["axis"]["labelFontSize"] >= PROJECTOR_TEXT, page
            assert config["text"]["fontSize"] >= PROJECTOR_TEXT, page
            sizes: list[float] = []
            _font_sizes(spec, sizes)
            assert min(sizes) >= 16, (page, sizes)
            charts += 1
        for element in at.get("plotly_chart"):
            fig = json.loads(element.proto.spec)
            assert fig["layout"]["font"]["size"] >= 16, page
            for trace in fig["data"]:
                size = trace.get("textfont", {}).get("size")
                assert size is None or size >= 16, page
            charts += 1
    assert charts >= 10  # the pages above draw at least this many with a run of 4 tokens
