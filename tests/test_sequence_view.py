"""Seed 001's interactive token sequence (lib/viz/sequence.py, Tokens & predictions §3)."""

from __future__ import annotations

import numpy as np
import pytest

from lib.analysis.next_token import SequenceLens
from lib.viz import sequence as seq
from tests.apphelpers import assert_ok, button
from tests.test_viz import hand_result


def hand_lens() -> SequenceLens:
    """What a lens over the hand run's 5 tokens (ids 10..14) would say, written by hand."""
    return SequenceLens(
        top_ids=np.array([[11, 30], [31, 32], [13, 33], [14, 34], [35, 36]]),
        top_probs=np.array([[0.5, 0.2], [0.4, 0.3], [0.7, 0.2], [0.4, 0.3], [0.6, 0.1]], "f4"),
        entropy=np.zeros(5, np.float32),
        next_prob=np.array([0.5, 0.01, 0.7, 0.4], np.float32),
        next_rank=np.array([1, 40, 1, 1]),
    )


def test_candidates_come_from_the_stored_top_at_generated_steps_and_the_lens_elsewhere():
    r, lens = hand_result(), hand_lens()
    ids, _, where = seq.candidates_at(r, lens, 2)  # position P - 1 = 2 is step 0's query
    assert ids.tolist() == r.top_ids[0].tolist() and "stored while generating" in where
    ids, _, where = seq.candidates_at(r, lens, 0)
    assert ids.tolist() == [11, 30] and "stored" not in where


def test_the_actual_next_token_is_appended_with_its_true_rank():
    r, lens = hand_result(), hand_lens()
    df = seq.position_frame(r, lens, 1, str)  # after "b" came token 12, not in [31, 32]
    assert df["id"].tolist() == [31, 32, 12]
    assert df["rank"].tolist() == [1, 2, 40]
    assert df["chosen"].tolist() == [False, False, True]
    assert df["probability"].iloc[-1] == pytest.approx(0.01)


def test_strip_rows_and_picked_position():
    r, lens = hand_result(), hand_lens()
    df = seq.strip_frame(r, lens, str)
    assert df["position"].tolist() == [0, 1, 2, 3]  # the last token predicts nothing shown
    assert df["guessed"].tolist() == ["yes, first choice", "rank 40", "yes, first choice"] + [
        "yes, first choice"
    ]
    assert seq.picked_position({"selection": {seq.PICK: [{"position": 3}]}}, 4) == 3
    assert seq.picked_position({"selection": {seq.PICK: [{"position": 9}]}}, 4) is None
    assert seq.picked_position(None, 4) is None
    seq.strip_chart(df).to_dict()  # builds a valid spec


def test_clicking_a_token_shows_what_the_model_expected_after_it(app):
    app.slider(key="max_tokens__w").set_value(3)
    button(app, "Generate").click().run()
    r = app.session_state["run"].result
    app.switch_page("lessons/predictions.py").run()
    assert_ok(app)
    key = f"seq_strip_{app.session_state['run'].key}"
    P = r.prompt_len
    app.session_state[key] = {"selection": {seq.PICK: [{"position": P - 1}]}}
    app.run()
    assert_ok(app)
    text = next(m.value for m in app.markdown if f"(position {P - 1})" in m.value)
    # Independent: generation itself recorded the probability of the token it wrote.
    assert f"{float(r.chosen_prob[0]):.4f}" in text
    assert "stored while generating" in text
