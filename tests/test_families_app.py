"""Every lesson on every family, in the app: a tiny random model of each family a user can
pick, saved as a model folder and opened through the app's own loader, writes a run that
every page shows without an error or a refusal."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.apphelpers import ALL_PAGES, assert_ok, button
from tests.families import FAMILIES, family_lm

REFUSALS = ("Llama-style", "not laid out", "laid out unlike", "cannot be read")


@pytest.mark.parametrize("family", FAMILIES)
def test_every_page_shows_a_run_of_a_tiny_model_of_each_family(family, tmp_path):
    lm = family_lm(family)
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    at = AppTest.from_file("../main.py", default_timeout=120)
    at.session_state["model_spec"] = str(tmp_path)  # as "Other: a local folder" sets it
    at.run()
    at.switch_page("lessons/generate.py").run()
    at.text_area(key="prompt__w").input("the old wizard walked through the forest")
    at.slider(key="max_tokens__w").set_value(4)
    button(at, "Generate").click().run()
    assert_ok(at)
    assert at.session_state["run"].result.model_spec == str(tmp_path)
    assert any("Every lesson works with it." in c.value for c in at.sidebar.caption)
    for page in ALL_PAGES:
        at.switch_page(page).run()
        assert_ok(at)
        shown = [e.value for kind in ("info", "warning", "error") for e in at.get(kind)]
        assert not [s for s in shown if any(r in str(s) for r in REFUSALS)], (page, shown)
