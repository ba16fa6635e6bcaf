"""Train it, then look inside it: the induction lab's model, opened in the lessons with one
click, shows the induction head it grew on Head roles, and switching that head off on
Ablate brings the repeated half's loss back."""

from __future__ import annotations

import numpy as np

from lib.analysis.ablation import probe_ablation
from lib.analysis.head_roles import induction_probe
from lib.analysis.quiz import top_heads
from lib.config import BUNDLED_MODEL
from tests.apphelpers import assert_ok, button


def test_the_trained_induction_model_in_the_lessons(app):
    app.switch_page("lessons/induction.py").run()
    button(app, "Train").click().run()  # the defaults: the phase change comes
    assert_ok(app)
    lab = app.session_state["ind_lab"]
    assert lab.history.phase_change() is not None
    grown = np.unravel_index(np.argmax(lab.history.induction[-1]), lab.history.induction[-1].shape)

    button(app, "Open it in the lessons").click().run()
    assert_ok(app)
    spec = app.session_state["model_spec"]
    run = app.session_state["run"]
    assert spec.startswith("lab:") and run.result.model_spec == spec
    assert app.title[0].value == "Attention graph" and app.get("plotly_chart")

    from app.caches import lab_models

    lm = lab_models()[spec]
    roles = induction_probe(lm)  # Head roles' probe, scored by the code SmolLM2's are
    assert top_heads(roles.score("induction"), 1)[0] == tuple(int(i) for i in grown)
    off = probe_ablation(lm, {top_heads(roles.score("induction"), 1)[0]})
    (_, second_before), (_, second_after) = off.losses(False), off.losses(True)
    assert second_after > second_before + 0.5  # the repeated half's loss comes back

    for page in ("lessons/head_roles.py", "lessons/ablation.py", "lessons/lenses.py",
                 "lessons/matrices.py"):  # fmt: skip
        app.switch_page(page).run()
        assert_ok(app)
    assert any("Every lesson works with it." in c.value for c in app.sidebar.caption)
    button(app, "Back to the bundled model").click().run()
    assert_ok(app)
    assert app.session_state["model_spec"] == BUNDLED_MODEL


def test_the_trained_sentence_model_in_the_lessons(app):
    """The sentence lab's model reads a few words at most (its longest sentence): its first
    run fits that, and the graph opens on it."""
    app.switch_page("lessons/train.py").run()
    button(app, "Train").click().run()
    assert_ok(app)
    before = app.session_state["model_spec"]
    button(app, "Open it in the lessons").click().run()
    assert_ok(app)
    run = app.session_state["run"].result
    assert app.session_state["model_spec"].startswith("lab:") != (before.startswith("lab:"))
    assert run.model_spec == app.session_state["model_spec"] and run.n_steps >= 1
    assert run.prompt_len + run.n_steps <= app.session_state["train_lab"].model.cfg.max_len
    assert app.title[0].value == "Attention graph"
