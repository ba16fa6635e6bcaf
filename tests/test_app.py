"""The Streamlit app, driven headless with AppTest on the real bundled model."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from tests.apphelpers import ALL_PAGES, assert_ok, button, set_graph_step


def generate(at: AppTest, prompt: str | None = None, max_tokens: int | None = None) -> AppTest:
    if prompt is not None:
        at.text_area(key="prompt__w").input(prompt)
    if max_tokens is not None:
        at.slider(key="max_tokens__w").set_value(max_tokens)
    button(at, "Generate").click().run()
    assert_ok(at)
    return at


def figure(at: AppTest) -> dict:
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)


def edge_count(fig: dict) -> int:
    for trace in fig["data"]:
        data = trace.get("customdata") or []
        if data and data[0][0] == "edge":
            return len(data)
    return 0


def marker_colours(fig: dict, side: str) -> list[str]:
    trace = next(t for t in fig["data"] if t.get("name") == side)
    return trace["marker"]["color"]


def test_generate_page_shows_text_and_tokens(app):
    generate(app, max_tokens=8)
    run = app.session_state["run"]
    result = run.result
    assert result.n_steps == 8
    text = app.code[0].value
    assert text.startswith("The old wizard walked through the forest, his eyes")
    table = app.dataframe[0].value
    assert list(table["token"]) == list(result.texts)  # display mode: · for a space
    assert table["token"].iloc[1] == "·old"
    assert list(table["id"]) == result.token_ids.tolist()


def test_every_page_renders_and_switching_keeps_the_run(app):
    generate(app, max_tokens=6)
    key = app.session_state["run"].key
    for page in ("lessons/attention_graph.py", "lessons/matrices.py", "lessons/generate.py"):
        app.switch_page(page).run()
        assert_ok(app)
        assert app.session_state["run"].key == key  # same run, nothing recomputed
    assert app.code[0].value.startswith("The old wizard")  # still shown after the round trip
    app.switch_page("lessons/matrices.py").run()
    assert len(app.get("vega_lite_chart")) >= 1


def test_pages_without_a_run_point_to_generate(app):
    for page in ALL_PAGES[:-1]:  # every page but Generate itself
        if page in ("lessons/atlas.py", "lessons/analogy.py"):
            continue  # the map is of stored texts, the arithmetic of the model's weights
        app.switch_page(page).run()
        assert_ok(app)
        assert any("Nothing generated yet" in i.value for i in app.info), page


def test_step_and_threshold_change_the_graph(app):
    generate(app, max_tokens=6)
    result = app.session_state["run"].result
    visible_prompt = len(result.prompt_labels)
    app.switch_page("lessons/attention_graph.py").run()
    app.slider(key="threshold__w").set_value(0.0).run()
    # Softmax weights are all positive, so at threshold 0 step 1 draws one line per prompt token.
    assert edge_count(figure(app)) == visible_prompt
    set_graph_step(app, 5)
    assert edge_count(figure(app)) == visible_prompt + 4  # plus the 4 earlier outputs
    assert marker_colours(figure(app), "output")[4] == "coral"
    assert marker_colours(figure(app), "output")[:4] == ["pink"] * 4
    app.slider(key="threshold__w").set_value(0.2).run()
    fewer = edge_count(figure(app))
    assert fewer < visible_prompt + 4
    button(app, "Show all connections").click().run()
    assert edge_count(figure(app)) >= fewer


def test_layer_and_head_choice_changes_the_graph(app):
    generate(app, max_tokens=4)
    app.switch_page("lessons/attention_graph.py").run()
    app.slider(key="threshold__w").set_value(0.1).run()
    before = figure(app)["data"]
    app.selectbox(key="layer__w").set_value(3).run()
    app.selectbox(key="head__w").set_value(2).run()
    assert_ok(app)
    assert figure(app)["data"] != before


def test_click_filters_and_reset_clears(app):
    generate(app, max_tokens=6)
    app.switch_page("lessons/attention_graph.py").run()
    app.slider(key="threshold__w").set_value(0.0).run()
    button(app, "Show all connections").click().run()
    set_graph_step(app, 6)
    all_edges = edge_count(figure(app))
    chart_key = app.session_state["graph_chart_key"]
    selection = {
        "points": [{"customdata": ["input", 2]}],
        "point_indices": [2],
        "box": [],
        "lasso": [],
    }
    app.session_state[chart_key] = {"selection": selection}
    app.run()
    assert app.session_state["selected_token"] == ("input", 2)
    fig = figure(app)
    assert edge_count(fig) == 6  # prompt token 2 -> each of the 6 generated tokens
    assert marker_colours(fig, "input")[2] == "yellow"
    assert edge_count(fig) < all_edges

    button(app, "Reset selection").click().run()
    assert app.session_state["selected_token"] is None
    assert "yellow" not in marker_colours(figure(app), "input")
    # Reset goes back to the plain view: this step's lines only (threshold 0:
    # one to each prompt token and each of the 5 earlier generated tokens).
    assert edge_count(figure(app)) == len(app.session_state["run"].result.prompt_labels) + 5
    button(app, "Show all connections").click().run()
    assert edge_count(figure(app)) == all_edges


def test_click_on_generated_token_shows_its_incoming_edges(app):
    generate(app, max_tokens=6)
    result = app.session_state["run"].result
    app.switch_page("lessons/attention_graph.py").run()
    app.slider(key="threshold__w").set_value(0.0).run()
    set_graph_step(app, 6)
    chart_key = app.session_state["graph_chart_key"]
    app.session_state[chart_key] = {"selection": {"points": [{"customdata": ["output", 3]}]}}
    app.run()
    assert edge_count(figure(app)) == len(result.prompt_labels) + 3
    assert marker_colours(figure(app), "output")[3] == "yellow"


def test_sink_is_explained_with_its_share_and_hidden_in_one_click(app):
    generate(app, max_tokens=3)
    result = app.session_state["run"].result
    app.switch_page("lessons/attention_graph.py").run()
    # The share on screen is the model's own: the first prompt key's weight, averaged over
    # every layer and head, read straight from the stored attention of step 1.
    share = float(result.attention[0, :, :, 0].mean())
    note = next(i.value for i in app.info if "attention sink" in i.value)
    assert f"{share:.1%}" in note
    button(app, "Hide the sink").click().run()
    assert_ok(app)
    assert app.session_state["hide_sink"] is True
    assert app.toggle(key="hide_sink__w").value is True
    assert not [i for i in app.info if "attention sink" in i.value]
    assert any(f"took {share:.1%}" in c.value for c in app.caption)


def test_a_long_prompt_says_why_no_line_shows_and_offers_the_strongest(app):
    generate(app, prompt="the cat sat on the mat and " * 105, max_tokens=2)
    result = app.session_state["run"].result
    assert len(result.prompt_labels) > 700
    app.switch_page("lessons/attention_graph.py").run()
    app.slider(key="threshold__w").set_value(0.2).run()
    assert edge_count(figure(app)) == 0
    assert any("No line of this step is above the threshold" in i.value for i in app.info)
    button(app, "Draw the strongest 5 lines per step instead").click().run()
    assert_ok(app)
    assert edge_count(figure(app)) >= 1  # the strongest prompt lines inside the drawn window
    app.number_input(key="graph_top_k__w").set_value(3).run()
    assert_ok(app)
    assert any("Only the 3 strongest lines" in c.value for c in app.caption)


def test_empty_prompt_shows_a_message_and_runs_nothing(app):
    generate(app, prompt="   \n  ")
    assert app.session_state["run"] is None
    assert any("empty" in w.value for w in app.warning)


def test_matrices_page_views(app):
    generate(app, max_tokens=5)
    app.switch_page("lessons/matrices.py").run()
    specs = [c.proto.spec for c in app.get("vega_lite_chart")]
    assert specs and "query: the token doing the attending" in specs[0]
    # The sink's share, from the stored weights: key 0 over every layer, head and step.
    share = float(app.session_state["run"].result.attention[..., 0].mean())
    assert any(f"{share:.1%}" in c.value and "attention sink" in c.value for c in app.caption)
    app.toggle(key="hide_sink__w").set_value(True).run()
    assert_ok(app)
    app.radio(key="matrix_source__w").set_value("Whole sequence (one extra forward pass)").run()
    assert_ok(app)
    app.selectbox(key="layer__w").set_value(2).run()
    assert_ok(app)
    assert len(app.get("vega_lite_chart")) == 1  # the grid of heads waits for its switch
    app.toggle(key="matrix_head_grid").set_value(True).run()
    assert_ok(app)
    assert len(app.get("vega_lite_chart")) == 2  # the matrix and the grid of heads
    assert [d.label for d in app.get("download_button")] == [
        "Download this matrix (CSV)",
        "Download the whole run (NPZ)",
    ]


def test_a_large_run_is_prepared_for_download_on_request(app):
    from app.widgets.downloads import EAGER_DOWNLOAD_BYTES

    generate(app, prompt="The quick brown fox jumps over the lazy dog. " * 12, max_tokens=50)
    assert app.session_state["run"].result.nbytes() > EAGER_DOWNLOAD_BYTES
    assert not app.get("download_button")  # not built with the page: it waits for a click
    button(app, "Prepare: Download the whole run (NPZ)").click().run()
    assert_ok(app)
    assert [d.label for d in app.get("download_button")] == ["Download the whole run (NPZ)"]
    app.switch_page("lessons/matrices.py").run()  # prepared once, for every page of the session
    assert [d.label for d in app.get("download_button")] == [
        "Download this matrix (CSV)",
        "Download the whole run (NPZ)",
    ]


def test_a_character_split_over_tokens_is_named_beside_the_tables(app):
    generate(app, "**猫** が好き", max_tokens=2)
    notes = [c.value for c in app.caption if "Characters split over tokens" in c.value]
    assert len(notes) == 1 and "猫" in notes[0]
    app.switch_page("lessons/predictions.py").run()
    assert_ok(app)
    assert any("猫" in c.value and "split over tokens" in c.value for c in app.caption)
