"""The Next token page, driven headless with AppTest on the real bundled model: every control."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from tests.apphelpers import assert_ok, button, graph_steps

PAGE = "lessons/next_token.py"
STEPS = "lessons/step_by_step.py"
PREDICTIONS = "lessons/predictions.py"


def open_page(
    at: AppTest, max_tokens: int = 5, prompt: str | None = None, page: str = PAGE
) -> AppTest:
    """Generate on the Generate page, then show `page` (the Next token page)."""
    if not any(w.key == "max_tokens__w" for w in at.slider):
        at.switch_page("lessons/generate.py").run()
    if prompt is not None:
        at.text_area(key="prompt__w").input(prompt)
    at.slider(key="max_tokens__w").set_value(max_tokens)
    button(at, "Generate").click().run()
    at.switch_page(page).run()
    assert_ok(at)
    return at


def result(at: AppTest):
    return at.session_state["run"].result


def specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]


def frame(at: AppTest, index: int):
    """The data of the index-th chart (first dataset), as pandas."""
    data = at.get("vega_lite_chart")[index].proto.datasets[0].data.data
    return pa.ipc.open_stream(data).read_all().to_pandas()


def titles(at: AppTest) -> list[str]:
    return [s.get("title", "") for s in specs(at)]


def y_sort(spec: dict) -> list[str]:
    enc = spec.get("encoding") or spec["layer"][0]["encoding"]
    return enc["y"]["sort"]


def test_page_without_run_points_to_generate(app):
    app.switch_page(PAGE).run()
    assert_ok(app)
    assert any("Nothing generated yet" in i.value for i in app.info)


def test_step_slider_candidates_and_source(app):
    open_page(app, 5)
    r = result(app)
    assert app.session_state["step"] == 1
    assert [h.value for h in app.header] == [
        "1. The candidates",
        "2. Sampling filters, each alone on this distribution",
        "3. Sampling with a seed",
    ]
    assert all(not e.proto.expanded for e in app.expander if e.label.startswith("Source"))
    app.slider(key="step__w").set_value(3).run()
    assert any("Step 3 of 5" in m.value for m in app.markdown)
    cands = frame(app, 0)
    assert len(cands) == 12
    # The lens's top candidates are the ones the run stored for that step.
    assert cands["id"].tolist() == r.top_ids[2, :12].tolist()
    np.testing.assert_allclose(cands["probability"], r.top_probs[2, :12], atol=1e-4)
    assert cands["chosen"].tolist() == [True] + [False] * 11  # greedy: the first choice
    app.slider(key="nt_show__w").set_value(5).run()
    assert len(y_sort(specs(app)[0])) == 5


def test_filter_controls_mark_cut_tokens(app):
    open_page(app, 3)
    r = result(app)
    app.slider(key="nt_temperature__w").set_value(1.5).run()
    app.number_input(key="nt_top_k__w").set_value(3).run()
    app.slider(key="nt_top_p__w").set_value(0.5).run()
    app.slider(key="nt_min_p__w").set_value(0.2).run()
    assert_ok(app)
    assert titles(app)[1:5] == ["Temperature 1.5", "Top-k 3", "Top-p 0.5", "Min-p 0.2"]
    temp, topk, topp, minp = (frame(app, i) for i in range(1, 5))
    assert (temp["status"] == "kept").all()
    assert temp["after"].iloc[0] < temp["before"].iloc[0]  # T > 1 flattens
    assert topk["status"].tolist() == ["kept"] * 3 + ["cut"] * 9
    assert topk["after"].sum() == pytest.approx(1.0, abs=1e-5)
    p = r.top_probs[app.session_state["step"] - 1]  # the run's stored distribution there
    cum_before = np.cumsum(p) - p
    n_top_p = int((cum_before[:12] < 0.5).sum())
    assert topp["status"].tolist() == ["kept"] * n_top_p + ["cut"] * (12 - n_top_p)
    assert minp["status"].tolist() == ["kept" if x >= 0.2 * p[0] else "cut" for x in p[:12]]
    threshold = specs(app)[4]["layer"][-1]
    assert threshold["mark"]["type"] == "rule"
    assert any("Min-p moves with the model" in i.value for i in app.info)
    assert any("Keeps the 3 most likely" in c.value for c in app.caption)


def drawn(at: AppTest) -> str:
    return at.code[0].value  # the first code block: the seed's draw


def test_seed_and_resample(app):
    open_page(app, 2)
    app.slider(key="nt_temperature__w").set_value(2.0).run()
    app.number_input(key="nt_top_k__w").set_value(0).run()
    app.slider(key="nt_top_p__w").set_value(1.0).run()
    app.slider(key="nt_min_p__w").set_value(0.0).run()
    app.number_input(key="nt_seed__w").set_value(5).run()
    first = drawn(app)
    app.run()
    assert drawn(app) == first  # the same seed, the same draw
    seen = {first}
    for expected_seed in range(6, 16):
        button(app, "Resample").click().run()
        assert app.session_state["nt_seed"] == expected_seed
        seen.add(drawn(app))
    assert len(seen) > 1  # other seeds draw other tokens from a flat distribution
    app.number_input(key="nt_seed__w").set_value(5).run()
    assert drawn(app) == first


def preview(at: AppTest) -> str:
    """The token the step-by-step pane says comes next (the code block after the text)."""
    codes = [c.value for c in at.code]
    i = next(i for i, v in enumerate(codes) if v.startswith(result(at).prompt))
    return codes[i + 1]


def test_step_by_step_next_token_and_start_over(app, smollm2):
    from lib.labels import display_text

    open_page(app, 3, page=STEPS)
    before = result(app)
    app.radio(key="nt_decoding__w").set_value("Greedy").run()
    button(app, "Next token").click().run()
    assert_ok(app)
    r = result(app)
    assert r.n_steps == 4 and app.session_state["step"] == 4
    np.testing.assert_array_equal(r.token_ids[:-1], before.token_ids)
    assert r.chosen_prob[-1] == pytest.approx(r.top_probs[-1, 0])  # greedy: the top token
    app.radio(key="nt_decoding__w").set_value("Sample").run()
    app.switch_page(PAGE).run()  # the lesson's filters live on the Next token page
    app.slider(key="nt_temperature__w").set_value(1.5).run()
    app.number_input(key="nt_top_k__w").set_value(50).run()
    app.slider(key="nt_min_p__w").set_value(0.0).run()
    app.switch_page(STEPS).run()
    promised = preview(app)
    button(app, "Next token").click().run()
    r5 = result(app)
    assert r5.n_steps == 5
    np.testing.assert_array_equal(r5.token_ids[:-1], r.token_ids)
    assert display_text(smollm2.tokenizer, int(r5.token_ids[-1])) == promised
    assert r5.settings.sampling.do_sample
    assert r5.settings.forced_tokens == tuple(r.generated_ids.tolist())
    # Every page follows: the graph walks through the 5 steps of the longer run.
    app.switch_page("lessons/attention_graph.py").run()
    assert not app.exception and graph_steps(app) == (5, 5)  # on the newest token
    app.switch_page(STEPS).run()
    button(app, "Start over from the prompt").click().run()
    assert result(app).n_steps == 1 and app.session_state["step"] == 1


def test_what_if_branches_side_by_side(app, smollm2):
    open_page(app, 6, page=STEPS)
    a = result(app)
    a_key = app.session_state["run"].key
    a_ids = a.token_ids.copy()
    # What if opens in the middle of the run, where a branch has steps after it to compare.
    assert app.slider(key="nt_branch_at__w").value == 3
    app.slider(key="nt_branch_at__w").set_value(6).run()
    assert any("At the last step a branch writes one other token" in c.value for c in app.caption)
    app.slider(key="nt_branch_at__w").set_value(2).run()
    assert not any("At the last step" in c.value for c in app.caption)
    options = app.selectbox(key="nt_alt__w").options
    assert len(options) == 10
    alt = int(a.top_ids[1, 2])  # the model's third choice at step 2
    app.selectbox(key="nt_alt__w").set_value(alt).run()
    button(app, "Continue from here").click().run()
    assert_ok(app)
    branches = app.session_state["nt_branches"]
    assert branches.step == 1
    base, b = (x.result for x in branches.runs)
    assert base is a and app.session_state["run"].key == a_key  # the run is unchanged
    np.testing.assert_array_equal(a.token_ids, a_ids)
    assert b.generated_ids[0] == a.generated_ids[0] and b.generated_ids[1] == alt
    assert b.n_steps == 6
    shown = [c.value for c in app.code]
    for res in (a, b):  # both texts, side by side
        decoded = smollm2.tokenizer.decode(res.generated_ids.tolist(), skip_special_tokens=True)
        assert res.prompt + decoded in shown
    assert titles(app).count("Step 3: where the new token looks") == 2
    app.slider(key="nt_cmp_step__w").set_value(5).run()
    assert titles(app).count("Step 5: where the new token looks") == 2
    button(app, "Make B the current run").click().run()
    assert app.session_state["run"].key == branches.runs[1].key
    assert "nt_branches" in app.session_state  # both branches are still there
    np.testing.assert_array_equal(a.token_ids, a_ids)
    assert titles(app).count("Step 5: where the new token looks") == 2
    button(app, "Make A the current run").click().run()
    assert app.session_state["run"].key == a_key
    assert result(app) is a


def test_heatmap_normalisation_and_window(app):
    open_page(app, 3, page=PREDICTIONS)
    heat = next(s for s in specs(app) if "candidate rank" in json.dumps(s))
    assert "p / top p" in json.dumps(heat)
    app.toggle(key="nt_norm__w").set_value(False).run()
    heat = next(s for s in specs(app) if "candidate rank" in json.dumps(s))
    assert '"probability"' in json.dumps(heat) and "p / top p" not in json.dumps(heat)
    long_prompt = " ".join(["The old wizard walked through the forest."] * 20)
    open_page(app, 1, prompt=long_prompt, page=PREDICTIONS)
    T = len(result(app).token_ids)
    assert T > 120
    assert app.slider(key="nt_window").value == (T - 120, T)
    app.slider(key="nt_window").set_range(10, 60).run()
    assert_ok(app)
    heat = next(s for s in specs(app) if "candidate rank" in json.dumps(s))
    columns = heat["layer"][0]["encoding"]["x"]["sort"]
    assert len(columns) == 50 and columns[0].startswith("10: ")


def test_tokenizer_pane_with_chat_template(app):
    app.toggle(key="chat_template__w").set_value(True).run()
    open_page(app, 2, page=PREDICTIONS)
    r = result(app)
    table = next(d.value for d in app.dataframe if "piece" in d.value.columns)
    assert table["id"].tolist() == r.token_ids.tolist()
    assert table["special"].tolist()[0]  # <|im_start|> opens the template
    assert (table["part"] == "generated").sum() == 2
    assert any("·" in t for t in table["text"]) and any("↵" in t for t in table["text"])
    assert any(c.value.startswith("<|im_start|>system") for c in app.code)
    assert any(e.label == "The chat template (Jinja)" for e in app.expander)
    assert any(m.value == "49,152" for m in app.metric)
    specials = next(d.value for d in app.dataframe if "role" in d.value.columns)
    assert "<|im_end|>" in specials["token"].tolist()
