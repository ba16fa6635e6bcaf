"""The Cause and effect page under AppTest on the bundled model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.apphelpers import assert_ok, button, plotly_array
from tests.test_app import generate

PAGE = "lessons/causes.py"


def charts(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_the_waterfall_adds_up_to_the_logit_and_a_preset_patches(app, smollm2):
    from lib.analysis.patching import PRESETS, encode_pair

    generate(app, max_tokens=3)
    run = app.session_state["run"].result
    app.switch_page(PAGE).run()
    assert_ok(app)
    water = next(t for c in charts(app) for t in c["data"] if t["type"] == "waterfall")
    parts = plotly_array(water["y"])[:-1]
    # the model's own logit of the token at step 1, from a plain forward pass
    logits = smollm2.forward(run.token_ids[: run.prompt_len]).logits[-1]
    logit = float(logits[int(run.token_ids[run.prompt_len])])
    assert parts.sum() == pytest.approx(logit, abs=1e-3)
    assert len(parts) == 2 + 2 * smollm2.n_layers  # embedding, 30 x (attention, MLP), biases
    assert any("frozen" in c.value for c in app.caption)
    # Prove it: the three tallest bars (by size, not the biases) are the ones removed.
    button(app, "Prove it: remove the three largest parts").click().run()
    assert_ok(app)
    names = [*water["x"][:-1]]  # the bars' names, the logit's own bar left out
    tallest = sorted(range(len(parts) - 1), key=lambda i: -abs(parts[i]))[:3]
    said = [m.label for m in app.metric if m.label.startswith("Without ")]
    assert said == [f"Without {names[i]} (its bar {parts[i]:+.2f})" for i in tallest]
    assert any(f"every part in place: {logit:.2f}." in c.value for c in app.caption)

    # John and Mary, the stream: entering the first block, the one token that differs
    # carries all of the difference (1.000) and is the strongest cell or near it.
    app.radio(key="patch_site__w").set_value("resid_pre").run()
    button(app, "Run the patching").click().run()
    assert_ok(app)
    heat = [t for c in charts(app) for t in c["data"] if t["type"] == "heatmap"][-1]
    z = plotly_array(heat["z"])
    clean, corrupt = encode_pair(smollm2, *PRESETS["John and Mary"][:2])
    (differs,) = np.flatnonzero(np.array(clean) != np.array(corrupt))
    assert z.shape == (smollm2.n_layers, len(clean))
    assert z[0, differs] == pytest.approx(1.0, abs=1e-3)
    best = float(z.max())
    shown = [c.value.replace("\\", "") for c in app.caption]  # as rendered: no escapes
    assert any(f"recovers {best:.3f}" in c for c in shown)
    # Again, as the next student does: the same sweep, kept, drawn at once.
    button(app, "Run the patching").click().run()
    assert_ok(app)
    again = [t for c in charts(app) for t in c["data"] if t["type"] == "heatmap"][-1]
    np.testing.assert_array_equal(plotly_array(again["z"]), z)


def test_prompts_of_two_lengths_get_a_message(app):
    generate(app, max_tokens=2)
    app.switch_page(PAGE).run()
    app.text_input(key="patch_clean_John and Mary").input("A short one").run()
    assert_ok(app)
    assert any("same length" in w.value for w in app.warning)


def test_prove_it_on_the_graph_hides_the_strongest_lines_tokens(app):
    """The graph's "Prove it" hides the tokens of the strongest lines its table lists,
    and its unhidden probability is the one the run recorded."""
    import re

    generate(app, max_tokens=3)
    app.switch_page("lessons/attention_graph.py").run()
    assert_ok(app)
    table = app.dataframe[0].value
    button(app, "Prove it: hide the 3 strongest lines' tokens").click().run()
    assert_ok(app)
    page = " ".join(m.value for m in app.markdown)
    recorded = re.search(r"\(probability (0\.\d{3})\)", page).group(1)
    before = next(m for m in app.metric if m.label.endswith("nothing hidden"))
    assert before.value == recorded
    after = next(m for m in app.metric if "strongest lines' tokens hidden" in m.label)
    assert float(after.value) != float(before.value)
    caption = next(c.value for c in app.caption if c.value.startswith("Hidden: "))
    shown = caption.replace("\\", "").replace("\u2068", "").replace("\u2069", "")
    hidden = re.findall(r"“(.*?)” \((\d+)\)", shown)  # as rendered: no escapes, isolates
    # the table's rows are the keys in position order from the first shown (its index)
    b = app.session_state["run"].result.bos_offset
    ranked = table.sort_values("raw", ascending=False, kind="stable")
    top = [(label, i + b) for i, label in ranked["to token"].items() if i + b != 0][:3]
    assert sorted(hidden) == sorted((label, str(p)) for label, p in top)  # never the sink
