"""Bad input and bad model choices in the running app (AppTest): a message, never a traceback."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from app.markdown import md_escape
from lib.model.generation import generate, normalise_prompt
from lib.model.request import Run, RunRequest
from tests.apphelpers import ALL_PAGES, assert_ok, button
from tests.inputs import INJECTION, WEIRD_PROMPTS

OTHER = "Other: a Hugging Face id or a local folder"


def generate_in(at: AppTest, prompt: str, max_tokens: int = 3) -> AppTest:
    at.text_area(key="prompt__w").input(prompt)
    at.slider(key="max_tokens__w").set_value(max_tokens)
    button(at, "Generate").click().run()
    assert_ok(at)
    return at


def visit_all_pages(at: AppTest) -> None:
    for page in ALL_PAGES:
        at.switch_page(page).run()
        assert_ok(at)


def test_each_awkward_prompt_is_generated_and_shown_as_typed(app):
    for prompt in WEIRD_PROMPTS.values():
        generate_in(app, prompt)
        assert app.session_state["run"].result.prompt == normalise_prompt(prompt)
        assert app.code[0].value.startswith(normalise_prompt(prompt))  # shown literally


# Every awkward kind of text at once through every page (each kind alone is generated and
# drawn on the real model in tests/test_robustness.py), and the shortest prompt there is.
ALL_AT_ONCE = " ".join(v for k, v in sorted(WEIRD_PROMPTS.items()) if k != "one_character")


@pytest.mark.parametrize(
    "prompt", [ALL_AT_ONCE, WEIRD_PROMPTS["one_character"]], ids=["all_at_once", "one_character"]
)
def test_awkward_prompt_through_every_page(app, prompt):
    generate_in(app, prompt)
    assert app.session_state["run"].result.prompt == normalise_prompt(prompt)
    visit_all_pages(app)


def test_injection_stays_literal_in_every_element(app):
    generate_in(app, INJECTION)
    result = app.session_state["run"].result
    app.switch_page("lessons/attention_graph.py").run()
    app.slider(key="threshold__w").set_value(0.0).run()
    fig = json.loads(app.get("plotly_chart")[0].proto.spec)
    texts = json.dumps(
        [t.get("text") for t in fig["data"]] + [t.get("hovertext") for t in fig["data"]]
    )
    assert "&lt;" in texts and "<img" not in texts and "<script" not in texts
    for md in app.markdown:  # markdown elements carry escaped text only
        assert "**bold**" not in md.value and "](javascript" not in md.value
    app.switch_page("lessons/matrices.py").run()
    assert_ok(app)
    spec = app.get("vega_lite_chart")[0].proto.spec
    assert "<script>" not in spec  # tokens are split, and carried as data, never markup
    assert any(t in spec for t in result.texts if "<" in t or "*" in t)
    app.switch_page("lessons/generate.py").run()
    table = app.dataframe[0].value
    assert list(table["token"]) == list(result.texts)  # the table holds the texts as data


def test_md_escape_makes_markdown_literal():
    escaped = md_escape("**bold** [x](javascript:alert(1)) $x$ :red[hi] <b>")
    for active in ("**", "](", "$x$", ":red[", "<b>"):
        assert active not in escaped
    typed = "**bold** [x](javascript:alert(1)) $x$ :red[hi] <b>"
    assert escaped.replace("\\", "") == "\u2068" + typed + "\u2069"
    # Isolated: right-to-left text inside cannot reorder the sentence around it.
    assert escaped.startswith("\u2068") and escaped.endswith("\u2069")


def test_empty_and_whitespace_prompts(app):
    for prompt in ("", "   ", "\n\t\n"):
        generate_in(app, prompt)
        assert app.session_state["run"] is None
        assert any("empty" in w.value for w in app.warning)


def test_prompt_past_the_cap_is_refused_and_kept(app):
    long = "word " * 10_000  # 50,000 characters
    generate_in(app, long)
    assert app.session_state["run"] is None
    assert any("characters; the limit is" in e.value for e in app.error)
    assert app.text_area(key="prompt__w").value == long  # nothing typed is lost


def test_previous_run_survives_a_refused_prompt(app):
    generate_in(app, "The old wizard walked through the forest")
    key = app.session_state["run"].key
    generate_in(app, "x" * 30_000)
    assert app.session_state["run"].key == key
    visit_all_pages(app)


def test_long_prompt_draws_a_window_of_prompt_tokens(app):
    words = ["river", "mill", "stone", "bridge", "lantern", "orchard", "harbour", "meadow"]
    generate_in(app, " ".join(words[i % 8] for i in range(400)), max_tokens=2)
    app.switch_page("lessons/attention_graph.py").run()
    assert_ok(app)
    assert any("Drawing prompt tokens" in c.value for c in app.caption)
    fig = json.loads(app.get("plotly_chart")[0].proto.spec)
    inputs = next(t for t in fig["data"] if t.get("name") == "input")
    assert len(inputs["x"]) == 150


def test_max_tokens_at_the_cap_and_at_one(app):
    generate_in(app, "Once upon a time, in a small village by the sea,", max_tokens=50)
    assert app.session_state["run"].result.n_steps in range(1, 51)
    generate_in(app, "Once upon a time", max_tokens=1)
    assert app.session_state["run"].result.n_steps == 1
    visit_all_pages(app)


def test_eos_on_the_first_step_renders_everywhere(app, smollm2):
    eos = next(iter(smollm2.eos_ids))
    result = generate(smollm2, "The end.", 5, forced_tokens=[eos])
    request = RunRequest(result.model_spec, result.prompt, result.settings)
    app.session_state["run"] = Run(request, result)
    app.run()
    visit_all_pages(app)
    eos_name = smollm2.tokenizer.convert_ids_to_tokens(eos)  # a special token keeps its name
    assert list(app.dataframe[0].value["token"])[-1] == eos_name


def load_model_in(at: AppTest, spec: str) -> AppTest:
    at.selectbox(key="model_choice__w").set_value(OTHER).run()
    at.text_input(key="model_custom__w").input(spec).run()
    button(at, "Load model").click().run()
    assert_ok(at)
    return at


def model_errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]  # the model picker sits on the Generate page


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no-such-user/no-such-model", "no network connection"),  # HF_HUB_OFFLINE=1 in tests
        ("/no/such/folder", "does not exist"),
        ("bad id!!", "neither a Hugging Face model id nor a local folder"),
    ],
)
def test_bad_model_choice_keeps_the_previous_model(app, spec, message):
    load_model_in(app, spec)
    assert any(
        message.replace(" ", "\\ ") in e or message in e.replace("\\", "")
        for e in model_errors(app)
    )
    assert app.session_state["model_spec"].startswith("bundled:")
    generate_in(app, "Then the wizard")  # the previous model still works
    assert app.session_state["run"].result.prompt == "Then the wizard"


def test_hub_switched_off_on_a_shared_server(app, monkeypatch):
    from lib.config import SUGGESTED_HUB_MODELS

    monkeypatch.setenv("TAV_ALLOW_HUB", "0")
    app.run()
    options = app.selectbox(key="model_choice__w").options
    assert not set(SUGGESTED_HUB_MODELS) & set(options)  # no hub model is offered
    load_model_in(app, "HuggingFaceTB/SmolLM2-360M-Instruct")
    assert any("TAV_ALLOW_HUB=0" in e.replace("\\", "") for e in model_errors(app))
    assert app.session_state["model_spec"].startswith("bundled:")  # the bundled model stays


def test_folder_that_is_not_a_model_and_a_model_too_big(app, tmp_path):
    from transformers import LlamaConfig

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("not a model")
    load_model_in(app, str(tmp_path / "notes"))
    assert any("not a model folder" in e.replace("\\", "") for e in model_errors(app))
    big = tmp_path / "big"
    LlamaConfig(
        hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32
    ).save_pretrained(big)  # ~6.7 B parameters
    load_model_in(app, str(big))
    assert any("over this app's limit" in e.replace("\\", "") for e in model_errors(app))
    assert app.session_state["model_spec"].startswith("bundled:")


def test_a_full_queue_says_so_and_keeps_the_prompt(app, monkeypatch):
    """When the server's queue is full, Generate says so in words and nothing
    the student typed is lost; once there is room the same click works."""
    import dataclasses

    from app import caches

    caches.scheduler.clear()  # a scheduler made under the full limits below
    monkeypatch.setattr(caches, "LIMITS", dataclasses.replace(caches.LIMITS, max_queue=0))
    prompt = "A prompt no other test has sent to the queue"
    app.text_area(key="prompt__w").input(prompt)
    button(app, "Generate").click().run()
    assert_ok(app)
    errors = [str(e.value) for e in app.error]
    assert any("busy" in e and "again" in e for e in errors), errors
    assert app.session_state["run"] is None or app.session_state["run"].result.prompt != prompt
    assert app.text_area(key="prompt__w").value == prompt
    monkeypatch.undo()
    caches.scheduler.clear()
    button(app, "Generate").click().run()
    assert_ok(app)
    assert app.session_state["run"].result.prompt == prompt
