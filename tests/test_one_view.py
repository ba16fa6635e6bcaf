"""What a class sees stays consistent: one step on every page, one numbering, a graph that
always says what it draws (and why it draws nothing), and links that carry only the view."""

from __future__ import annotations

import numpy as np

from app.link_query import VIEW_FIELDS, view_params
from app.markdown import md_escape
from app.state import FIELDS
from tests.apphelpers import assert_ok, button, graph_step, set_graph_step
from tests.test_app import edge_count, figure, generate

GRAPH = "lessons/attention_graph.py"


def select(at, side: str, index: int) -> None:
    """A click on a token of the graph, as Streamlit reports it."""
    at.session_state[at.session_state["graph_chart_key"]] = {
        "selection": {"points": [{"customdata": [side, index]}]}
    }
    at.run()
    assert_ok(at)


def scope(at) -> str:
    return next(c.value for c in at.caption if c.value.startswith(("Showing", "Selected")))


def test_the_step_chosen_on_one_page_is_the_step_on_the_next(app):
    generate(app, max_tokens=6)
    app.switch_page(GRAPH).run()
    set_graph_step(app, 5)
    for page in ("lessons/next_token.py", "lessons/lenses.py", "lessons/ablation.py"):
        app.switch_page(page).run()
        assert_ok(app)
        assert app.slider(key="step__w").value == 5, page
    app.switch_page(GRAPH).run()
    assert graph_step(app) == 5
    app.switch_page("lessons/next_token.py").run()
    assert any(m.value.startswith("**Step 5 of 6.**") for m in app.markdown)


def test_the_graph_says_what_it_draws_and_why_it_draws_nothing(app):
    generate(app, max_tokens=6)
    r = app.session_state["run"].result
    app.switch_page(GRAPH).run()
    set_graph_step(app, 2)
    assert scope(app) == "Showing step 2's lines only."
    button(app, "Show all connections").click().run()
    assert scope(app) == "Showing the lines of steps 1 to 2."

    # A generated token written later than the step shown: said, with the way there.
    select(app, "output", 5)
    assert edge_count(figure(app)) == 0
    label = md_escape(r.generated_labels[5])  # as every token on a page is shown
    assert scope(app) == f"Selected “{label}”, which is written at step 6, after this one."
    assert any("is written at step 6" in i.value for i in app.info)
    button(app, "Go to step 6").click().run()
    assert app.session_state["step"] == 6 and edge_count(figure(app)) > 0
    assert scope(app).startswith(f"Selected “{label}” (written at step 6)")

    # A prompt token with no line above the threshold: its strongest weight, computed here
    # from the captured rows (mean of every layer and head, over the prompt, normalised).
    set_graph_step(app, 2)
    app.slider(key="threshold__w").set_value(0.2).run()
    rows = [r.attention[s].mean(axis=(0, 1))[: r.prompt_len] for s in range(2)]
    norm = np.array([row / (row.sum() + 1e-8) for row in rows])  # (steps, prompt tokens)
    weak = int(np.argmin(norm.max(axis=0)))
    select(app, "input", weak)
    assert edge_count(figure(app)) == 0
    note = next(i.value for i in app.info if "gets no line above the threshold 0.200" in i.value)
    assert f"its strongest weight is {norm[:, weak].max():.4f}" in note
    assert scope(app).startswith(f"Selected prompt token {weak} ")
    assert scope(app).endswith("showing its lines to the tokens of steps 1 to 2.")


def test_a_link_carries_projector_and_quiz_only_when_asked():
    values = {f.key: FIELDS[f.key].default for f in VIEW_FIELDS}
    defaults = dict(values)
    values |= {"projector": True, "quiz": True, "step": 3}
    assert view_params(None, None, values, defaults) == {"step": "3"}
    assert view_params(None, None, values, defaults, classroom=True) == {
        "step": "3",
        "projector": "1",
        "quiz": "1",
    }


def test_the_address_bar_keeps_the_view_but_not_the_classroom_modes(app):
    generate(app, max_tokens=3)
    app.switch_page(GRAPH).run()
    app.toggle(key="projector__w").set_value(True).run()
    app.toggle(key="quiz__w").set_value(True).run()
    assert_ok(app)
    assert "projector" not in app.query_params and "quiz" not in app.query_params
    assert app.query_params["prompt"]
    shown = [c.value for c in app.code]
    assert any("projector=1" in c and "quiz=1" in c for c in shown)  # the teacher's copy
    assert any("projector" not in c and "prompt=" in c for c in shown)  # the plain one


def test_an_older_links_next_token_step_is_the_step():
    from app.link_query import read_link
    from lib.config import Limits

    link = read_link({"token": "3"}, Limits())
    assert link.values == {"step": 3} and not link.notes
    assert read_link({"token": "3", "step": "2"}, Limits()).values == {"step": 2}


def test_a_link_never_hands_on_a_students_trained_model():
    from lib.model.request import RunRequest
    from lib.model.result import RunSettings

    values = {f.key: FIELDS[f.key].default for f in VIEW_FIELDS}
    run = RunRequest("lab:0123abcd", "a cat", RunSettings(max_new_tokens=3))
    assert "model" not in view_params(run, None, values, dict(values))
    other = RunRequest("gpt2", "a cat", RunSettings(max_new_tokens=3))
    assert view_params(other, None, values, dict(values))["model"] == "gpt2"
