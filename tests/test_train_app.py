"""The training lab's pages under AppTest: train, scrub, ask, write, save and load."""

from __future__ import annotations

import numpy as np
from streamlit.testing.v1 import AppTest

from lib.train import io
from tests.apphelpers import assert_ok, button

TRAIN, USE, INDUCTION = "lessons/train.py", "lessons/train_use.py", "lessons/induction.py"


def open_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(page).run()
    assert_ok(at)
    return at


def test_train_then_scrub_through_the_snapshots(app):
    open_page(app, TRAIN)
    assert any("Press Train" in i.value for i in app.info)
    app.number_input(key="train_epochs__w").set_value(60).run()
    button(app, "Train").click().run()
    assert_ok(app)
    lab = app.session_state["train_lab"]
    assert len(lab.history.losses) == 60 and not lab.history.stopped_early
    assert lab.history.losses[-1] < lab.history.losses[0]
    # Loss chart plus one heatmap panel per head and the average (a faceted chart).
    assert len(app.get("vega_lite_chart")) == 2
    snapshot = app.select_slider(key="train_snapshot")
    assert snapshot.value == len(lab.history.snapshot_epochs) - 1
    before = app.get("vega_lite_chart")[1].proto.datasets[0].data.data
    snapshot.set_value(0).run()
    assert_ok(app)
    assert app.get("vega_lite_chart")[1].proto.datasets[0].data.data != before  # epoch 0
    app.selectbox(key="train_sentence__w").set_value(3).run()
    app.selectbox(key="train_layer__w").set_value(1).run()
    assert_ok(app)


def test_bad_sentences_and_settings_keep_the_page_alive(app):
    open_page(app, TRAIN)
    app.text_area(key="train_text__w").input("hello").run()
    assert_ok(app)
    assert any("at least two words" in e.value for e in app.error)
    app.text_area(key="train_text__w").input("the cat sat\nthe dog ran").run()
    app.number_input(key="train_heads__w").set_value(3).run()  # 64 is not a multiple of 3
    button(app, "Train").click().run()
    assert_ok(app)
    assert any("multiple of the number of heads" in e.value for e in app.error)
    assert app.text_area(key="train_text__w").value == "the cat sat\nthe dog ran"  # kept


def test_use_the_model_save_and_load(app, tmp_path):
    open_page(app, TRAIN)
    button(app, "Train").click().run()
    lab = app.session_state["train_lab"]
    open_page(app, USE)
    table = app.dataframe[0].value
    assert len(table) == sum(len(s) + 1 for s in lab.sentences)
    app.text_input(key="use_start__w").input("the bird").run()
    assert app.code[0].value.startswith("the bird ")
    app.text_input(key="use_start__w").input("the unicorn").run()
    assert_ok(app)
    assert any("unicorn" in wn.value for wn in app.warning)
    assert [d.label for d in app.get("download_button")] == [
        "Download the model (safetensors)",
        "Download the loss curve (CSV)",
    ]
    blob = io.to_bytes(lab)
    restored = io.from_bytes(blob)
    np.testing.assert_array_equal(restored.history.losses, lab.history.losses)


def test_induction_page_trains_a_short_run(app):
    open_page(app, INDUCTION)
    app.number_input(key="ind_steps__w").set_value(50).run()
    button(app, "Train").click().run()
    assert_ok(app)
    h = app.session_state["ind_lab"].history
    assert h.steps[-1] == 50 and len(h.steps) == 3  # at 0, 25 and 50
    assert len(app.get("vega_lite_chart")) == 4  # the time axis and three head grids
    app.select_slider(key="ind_eval").set_value(0).run()
    assert_ok(app)
