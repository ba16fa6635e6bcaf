"""The head-roles and lenses pages, driven headless with AppTest on the bundled model."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.apphelpers import assert_ok


@pytest.fixture
def app(app: AppTest) -> AppTest:  # the shared fixture, after one 6-token generation
    at = app
    at.slider(key="max_tokens__w").set_value(6)
    next(b for b in at.button if b.label == "Generate").click().run()
    assert_ok(at)
    return at


def chart_specs(at: AppTest) -> list[str]:
    return [c.proto.spec for c in at.get("vega_lite_chart")]


def datasets(at: AppTest) -> list[bytes]:
    """The data of every Altair chart (specs carry only names; the rows travel apart)."""
    out = []
    for c in at.get("vega_lite_chart"):
        out.append(c.proto.data.data)
        out.extend(d.data.data for d in c.proto.datasets)
    return out


def test_head_roles_page_renders_and_click_opens_the_head(app):
    app.switch_page("lessons/head_roles.py").run()
    assert_ok(app)
    assert app.title[0].value == "Head roles"
    assert any("head_pick" in s for s in chart_specs(app))
    assert any(m.label == "Loss, second time" for m in app.metric)
    chart_key = app.session_state["hr_grid_key"]
    app.session_state[chart_key] = {"selection": {"head_pick": [{"layer": 18, "head": 6}]}}
    app.run()
    assert_ok(app)
    assert app.title[0].value == "Attention matrices"
    assert app.session_state["layer"] == 18  # handed over as typed values
    assert app.session_state["head"] == 6
    assert app.selectbox(key="layer__w").value == 18
    assert app.selectbox(key="head__w").value == 6
    assert app.radio(key="matrix_source__w").value.startswith("Whole sequence")
    # Coming back shows the grid again instead of bouncing on the old click.
    app.switch_page("lessons/head_roles.py").run()
    assert_ok(app)
    assert app.title[0].value == "Head roles"


def test_prove_it_switches_the_top_induction_head_off(app):
    """The claim "the strongest induction head copies", tested: with it off, the probe's
    second repeat is predicted worse (the bundled model's L18 H6: 3.00 -> 4.80 nats)."""
    app.switch_page("lessons/head_roles.py").run()
    assert_ok(app)
    prove = next(b for b in app.button if b.label.startswith("Prove it: switch layer"))
    prove.click().run()
    assert_ok(app)
    before = next(m for m in app.metric if m.label == "Second repeat's loss, all heads on")
    after = next(m for m in app.metric if m.label.startswith("With layer"))
    assert float(after.value.split()[0]) > float(before.value.split()[0]) + 0.5
    assert any("Measured: the probe's loss" in c.value.replace("\\", "") for c in app.caption)


def test_head_roles_on_the_run_text_and_the_sink_switch(app):
    app.switch_page("lessons/head_roles.py").run()
    before = datasets(app)
    app.toggle(key="hide_sink__w").set_value(True).run()
    assert_ok(app)
    assert datasets(app) != before
    app.radio(key="hr_probe__w").set_value("This run's text").run()
    assert_ok(app)  # a text that repeats nothing: no induction head, nothing to prove
    assert any("no claim to test" in c.value for c in app.caption) or any(
        b.label.startswith("Prove it") for b in app.button
    )
    app.selectbox(key="hr_role__w").set_value("previous_token").run()
    assert_ok(app)
    assert len(app.get("vega_lite_chart")) == 1
    app.selectbox(key="hr_role__w").set_value("spread").run()  # specialised or general
    assert_ok(app)
    said = " ".join(c.value for c in app.caption)
    assert "Spread: each head's attention entropy" in said and "Most specialised here" in said


def open_tab(at: AppTest, label: str) -> AppTest:
    at.session_state["lens_tab"] = label  # what a click on the tab does
    at.run()
    assert_ok(at)
    return at


def test_lenses_page_renders_every_view_and_only_the_open_one(app):
    app.switch_page("lessons/lenses.py").run()
    assert_ok(app)
    assert app.title[0].value == "Logit lens & fingerprints"
    result = app.session_state["run"].result
    lens_table = app.dataframe[0].value
    assert len(lens_table) == result.n_layers + 1
    assert lens_table["after"].iloc[-1] == f"layer {result.n_layers - 1}"
    assert len(app.get("vega_lite_chart")) == 2  # sub-layer chart + overview; no other tab
    app.slider(key="step__w").set_value(3).run()
    assert_ok(app)
    open_tab(app, "Attention fingerprints")
    assert len(app.get("vega_lite_chart")) == 2  # the zone strip and the 20 numbers
    assert not any(m.key == "step__w" for m in app.slider)  # the lens is not drawn
    open_tab(app, "Embeddings & weights")
    assert len(app.get("vega_lite_chart")) == 4  # PCA, OV spectra, copying grid, spectrum
    app.selectbox(key="lens_ov_layer__w").set_value(5).run()
    assert_ok(app)


def test_sink_switch_changes_the_lens_page_attention_views(app):
    app.switch_page("lessons/lenses.py").run()
    open_tab(app, "Attention fingerprints")
    before = datasets(app)
    app.toggle(key="hide_sink__w").set_value(True).run()
    assert_ok(app)
    after = datasets(app)
    assert after != before
    assert app.session_state["hide_sink"] is True
    # The shared switch is the same one the matrices page reads.
    app.switch_page("lessons/matrices.py").run()
    assert app.toggle(key="hide_sink__w").value is True
