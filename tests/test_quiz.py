"""Quiz mode: guess before you see, then the answer and the score."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from lib.analysis.attention import StepAttention
from lib.analysis.quiz import most_attended, next_token_choices, top_heads
from tests.apphelpers import assert_ok, button, set_graph_step


def step_with(input_norm) -> StepAttention:
    w = np.asarray(input_norm, dtype=np.float32)
    return StepAttention(0, w, np.zeros(0, np.float32), w, np.zeros(0, np.float32), 0.0)


def test_most_attended_is_the_thickest_line_first_on_ties():
    assert most_attended(step_with([0.1, 0.6, 0.3])) == 1
    assert most_attended(step_with([0.4, 0.2, 0.4])) == 0
    assert most_attended(step_with([0.7, 0.1, 0.2]), skip_first=True) == 2  # not the sink
    with pytest.raises(ValueError):
        most_attended(step_with([]))
    with pytest.raises(ValueError):
        most_attended(step_with([0.9]), skip_first=True)


def test_next_token_choices_always_hold_the_written_token():
    probs = np.array([0.05, 0.4, 0.01, 0.3, 0.2, 0.04], dtype=np.float32)
    assert next_token_choices(probs, 1, k=3) == [1, 3, 4]  # the three likeliest, id order
    assert next_token_choices(probs, 2, k=3) == [1, 2, 3]  # an unlikely draw replaces the 3rd


def test_top_heads_best_first_and_never_nan():
    scores = np.array([[0.1, np.nan], [0.9, 0.5]], dtype=np.float32)
    assert top_heads(scores, k=2) == [(1, 0), (1, 1)]
    assert (0, 1) not in top_heads(scores, k=4)[:3]


def form_button(at: AppTest):
    return button(at, "Check my guess")


def test_quiz_asks_first_then_shows_the_answer_and_the_score(smollm2):
    prompt = "In quiz mode the class guesses first"
    at = AppTest.from_file("../main.py", default_timeout=240)
    for name, value in {
        "prompt": prompt,
        "tokens": "5",
        "quiz": "1",
        "step": "2",
    }.items():
        at.query_params[name] = value
    at.run()
    at.switch_page("lessons/attention_graph.py").run()
    assert_ok(at)
    assert not at.get("plotly_chart")  # nothing revealed before the guess
    r = at.session_state["run"].result
    # The answer, computed here from the captured rows: step 2's row, mean of every layer
    # and head, over the prompt tokens (no BOS for this tokenizer), the first token (the
    # attention sink, which would be the answer at most steps) left out of the question.
    row = r.attention[1].mean(axis=(0, 1))[: r.prompt_len]
    right = 1 + int(np.argmax(row[1:]))
    guess = next(s for s in at.selectbox if s.label == "Your guess")
    assert len(guess.options) == r.prompt_len - 1  # every prompt token but the first
    assert all("(prompt token 0)" not in o for o in guess.options)
    guess.select_index(right - 1)  # choices are the prompt tokens in order, from the second
    form_button(at).click().run()
    assert_ok(at)
    assert at.get("plotly_chart")  # revealed
    shown = " ".join(str(s.value) for s in at.success).replace("\\", "")
    assert "Right!" in shown and "Your score: 1 of 1" in shown
    # Moving on keeps the view; a new question comes when the student asks for one.
    set_graph_step(at, 3)
    assert at.get("plotly_chart") and not any(f for f in at.get("form"))
    button(at, "Ask me a new question about this view").click().run()
    assert not at.get("plotly_chart")  # hidden again, behind step 3's question
    assert "step 3" in " ".join(m.value for m in at.markdown).lower()
    set_graph_step(at, 2)  # back where it was answered: revealed
    assert at.get("plotly_chart")

    at.switch_page("lessons/next_token.py").run()
    assert_ok(at)
    assert not at.get("vega_lite_chart")  # the candidates stay hidden
    guess = next(s for s in at.selectbox if s.label == "Your guess")
    assert len(guess.options) == 6
    written = r.texts[r.prompt_len + 1]  # step 2's token, from the run itself
    assert written in guess.options
    guess.select_index(next(i for i, o in enumerate(guess.options) if o != written))
    form_button(at).click().run()
    assert_ok(at)
    assert at.get("vega_lite_chart")
    shown = " ".join(str(s.value) for s in at.info).replace("\\", "")
    assert "Not this time" in shown and "Your score: 1 of 2" in shown
