"""Bad and awkward input on the real model: a clear message or a correct result, never a crash."""

from __future__ import annotations

import numpy as np
import pytest

from lib.analysis.attention import all_steps
from lib.model.generation import PromptError, encode_prompt, generate, normalise_prompt
from lib.viz.graph import attention_graph, select_edges
from tests.inputs import WEIRD_PROMPTS


@pytest.mark.parametrize("name", sorted(WEIRD_PROMPTS))
def test_awkward_prompts_generate_and_draw(smollm2, name):
    prompt = WEIRD_PROMPTS[name]
    r = generate(smollm2, prompt, 3)
    assert r.prompt == normalise_prompt(prompt)
    assert 1 <= r.n_steps <= 3 and all(isinstance(lb, str) and lb for lb in r.labels)
    np.testing.assert_allclose(r.attention.sum(-1), 1.0, atol=1e-5)
    steps = all_steps(r)
    fig = attention_graph(
        r.prompt_labels,
        r.generated_labels,
        select_edges(steps, r.n_steps - 1, 0.0, True),
        r.n_steps - 1,
    )
    assert fig.to_json()  # the figure serialises


def test_typed_special_tokens_never_become_control_tokens(smollm2):
    tok = smollm2.tokenizer
    ids, _ = encode_prompt(smollm2, WEIRD_PROMPTS["special_tokens"])
    specials = set(tok.all_special_ids)
    assert not specials & set(ids)
    # With the chat template switched on, the template's own markers are control tokens.
    ids, _ = encode_prompt(smollm2, "hi", chat_template=True)
    assert specials & set(ids)


def test_injection_text_is_escaped_in_plotly_labels(smollm2):
    r = generate(smollm2, WEIRD_PROMPTS["injection"], 2)
    fig = attention_graph(
        r.prompt_labels, r.generated_labels, select_edges(all_steps(r), 1, 0.0, True), 1
    )
    texts = [t for trace in fig.data for t in list(trace.text or []) + list(trace.hovertext or [])]
    joined = "".join(texts)
    assert "<img" not in joined and "<script" not in joined and "&lt;" in joined


def test_prompt_of_2000_tokens_works(smollm2):
    words = [
        "river",
        "mill",
        "stone",
        "bridge",
        "lantern",
        "orchard",
        "harbour",
        "meadow",
        "violin",
        "compass",
        "thunder",
        "basket",
        "mirror",
        "garden",
        "pepper",
        "saddle",
    ]
    prompt = " ".join(words[(i * 7) % len(words)] for i in range(2000))
    ids, _ = encode_prompt(smollm2, prompt)
    assert 1900 <= len(ids) <= 2048
    r = generate(smollm2, prompt, 2)
    assert r.prompt_len == len(ids) and r.attention.shape[-1] == len(ids) + 1
    np.testing.assert_allclose(r.attention.sum(-1), 1.0, atol=1e-4)


def test_prompt_past_the_character_cap_gets_a_clear_message(smollm2):
    with pytest.raises(PromptError, match="50,000 characters; the limit is 20,000"):
        generate(smollm2, "x" * 50_000, 3)


def test_prompt_past_the_token_cap_gets_a_clear_message(smollm2):
    prompt = " ".join(str(i) for i in range(3000))  # under the character cap, over 2,048 tokens
    with pytest.raises(PromptError, match="tokens long; the limit is 2,048"):
        generate(smollm2, prompt, 3)


@pytest.mark.parametrize("n", [1, 50])
def test_max_tokens_at_one_and_at_the_cap(smollm2, n):
    r = generate(smollm2, "Once upon a time, in a small village by the sea,", n)
    assert r.n_steps == n or r.stop_reason == "eos"
    assert r.attention.shape[0] == r.n_steps


def test_generation_that_ends_at_eos_on_its_first_step(smollm2):
    eos = next(iter(smollm2.eos_ids))
    r = generate(smollm2, "The end.", 10, forced_tokens=[eos])
    assert r.n_steps == 1 and r.stop_reason == "eos" and r.generated_labels == ("[EOS]",)
    st = all_steps(r)[0]
    assert st.output_raw.size == 0 and st.input_norm.sum() == pytest.approx(1.0, abs=1e-5)
