"""Shapes, row indexing, BOS/EOS and normalisation on a tiny random Llama (fast)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.analysis.attention import aggregate, all_steps, split_step
from lib.measures import normalise
from lib.model.full_attention import full_attention
from lib.model.generation import PromptError, encode_prompt, generate
from tests.tiny import eager_attentions, tiny_lm

PROMPT = "the old wizard walked through the forest"


@pytest.fixture(scope="module")
def lm():
    return tiny_lm(add_bos=True)


def test_shapes_and_labels(lm):
    r = generate(lm, PROMPT, max_new_tokens=5)
    P = 1 + len(PROMPT.split())  # BOS + one token per word
    assert r.prompt_len == P and r.bos_offset == 1
    assert r.n_steps == 5 or r.stop_reason == "eos"
    T = P + r.n_steps
    assert r.attention.shape == (r.n_steps, 3, 4, T - 1)
    assert r.attention.dtype == np.float32
    assert r.prompt_labels == tuple(PROMPT.split())  # BOS hidden from the views
    assert len(r.labels) == T


def test_rows_match_eager_and_are_the_last_prompt_position(lm):
    r = generate(lm, PROMPT, max_new_tokens=6, forced_tokens=[4, 5, 6, 7, 8, 9])
    ref = eager_attentions(lm, r.token_ids).numpy()  # (L, H, T, T)
    for s in range(r.n_steps):
        q = r.prompt_len - 1 + s
        K = r.prompt_len + s
        np.testing.assert_allclose(r.attention[s, :, :, :K], ref[:, :, q, :K], atol=1e-6)
        assert not r.attention[s, :, :, K:].any()  # keys the query could not see
    # Step 0 is the last prompt row, not row 0 (row 0 attends only to itself).
    assert not np.allclose(r.attention[0, :, :, 0], 1.0)
    np.testing.assert_allclose(r.attention.sum(-1), 1.0, atol=1e-5)


def test_full_matrix_matches_eager_for_every_layer(lm):
    ids = lm.tokenizer(PROMPT)["input_ids"]
    ref = eager_attentions(lm, ids).numpy()
    for layer in range(3):
        full = full_attention(lm, ids, layer=layer)
        np.testing.assert_allclose(full.heads, ref[layer], atol=1e-6)
        np.testing.assert_allclose(full.matrix(head=2), ref[layer, 2], atol=1e-6)
    np.testing.assert_allclose(full_attention(lm, ids).mean, ref.mean(axis=(0, 1)), atol=1e-6)


def test_no_bos_when_the_tokenizer_adds_none():
    lm = tiny_lm(add_bos=False)
    ids, offset = encode_prompt(lm, PROMPT)
    assert offset == 0 and ids[0] != 1
    r = generate(lm, PROMPT, max_new_tokens=2)
    assert r.prompt_labels == tuple(PROMPT.split())
    assert all_steps(r)[0].sink_raw == 0.0


def test_eos_on_first_step_stops_and_shows_eos(lm):
    r = generate(lm, PROMPT, max_new_tokens=10, forced_tokens=[2])
    assert r.n_steps == 1 and r.stop_reason == "eos"
    assert r.generated_labels == ("[EOS]",)
    step0 = all_steps(r)[0]
    assert step0.output_raw.shape == (0,)  # the first step has no output-to-output attention


def test_single_token_generation(lm):
    r = generate(lm, PROMPT, max_new_tokens=1)
    assert r.n_steps == 1 and r.attention.shape[-1] == r.prompt_len


def test_empty_prompt_is_refused(lm):
    for text in ["", "   \n\t "]:
        with pytest.raises(PromptError, match="empty"):
            generate(lm, text, max_new_tokens=3)


def test_max_tokens_bounds(lm):
    for n in (0, 51):
        with pytest.raises(PromptError, match="between 1 and 50"):
            generate(lm, PROMPT, max_new_tokens=n)


def test_separate_normalisation_by_hand(lm):
    r = generate(lm, PROMPT, max_new_tokens=4, forced_tokens=[4, 5, 6, 7])
    rows = aggregate(r)
    step = 3
    st = split_step(r, rows, step)
    P = r.prompt_len
    row = r.attention[step].mean(axis=(0, 1))  # mean over layers and heads, by hand
    inp, out = row[1:P], row[P : P + step]  # BOS (index 0) hidden
    np.testing.assert_allclose(st.input_raw, inp, rtol=1e-6)
    np.testing.assert_allclose(st.output_raw, out, rtol=1e-6)
    np.testing.assert_allclose(st.input_norm, inp / (inp.sum() + 1e-8), rtol=1e-6)
    np.testing.assert_allclose(st.output_norm, out / (out.sum() + 1e-8), rtol=1e-6)
    assert st.input_norm.sum() == pytest.approx(1.0, abs=1e-6)
    assert st.sink_raw == pytest.approx(row[0])
    # raw parts plus the sink add up to the whole (softmax) row
    assert st.input_raw.sum() + st.output_raw.sum() + st.sink_raw == pytest.approx(1.0, abs=1e-5)


def test_single_layer_and_head_selection(lm):
    r = generate(lm, PROMPT, max_new_tokens=3)
    np.testing.assert_array_equal(aggregate(r, layer=1, head=2), r.attention[:, 1, 2])
    np.testing.assert_allclose(aggregate(r, layer=2), r.attention[:, 2].mean(axis=1), rtol=1e-6)


def test_normalise_handles_zeros():
    assert normalise(np.zeros(3, np.float32)).tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(normalise(np.array([1.0, 3.0])), [0.25, 0.75], rtol=1e-6)


def test_result_checks_shapes(lm):
    import dataclasses

    r = generate(lm, PROMPT, max_new_tokens=2)
    with pytest.raises(ValueError, match="attention"):
        dataclasses.replace(r, attention=r.attention[:, :, :, :-1])
    with pytest.raises(ValueError, match="labels"):
        dataclasses.replace(r, labels=r.labels[:-1])
    with pytest.raises(ValueError, match="attention"):
        dataclasses.replace(r, attention=r.attention.astype(np.float64))


def test_capture_state_is_per_call(lm):
    """Two interleaved generations with their own recorders do not mix rows."""
    a = generate(lm, "the cat sat on the mat", max_new_tokens=3, forced_tokens=[4, 5, 6])
    b = generate(lm, PROMPT, max_new_tokens=3, forced_tokens=[4, 5, 6])
    a2 = generate(lm, "the cat sat on the mat", max_new_tokens=3, forced_tokens=[4, 5, 6])
    np.testing.assert_array_equal(a.attention, a2.attention)
    assert a.attention.shape != b.attention.shape


def test_gqa_and_plain_multihead_agree_with_eager():
    for kv in (1, 4):
        lm = tiny_lm(add_bos=True, n_kv_heads=kv, seed=kv)
        r = generate(lm, PROMPT, max_new_tokens=2)
        ref = eager_attentions(lm, r.token_ids).numpy()
        q = r.prompt_len - 1
        np.testing.assert_allclose(r.attention[0, :, :, : q + 1], ref[:, :, q, : q + 1], atol=1e-6)


def test_sampling_is_seeded(lm):
    from lib.model.result import SamplingSettings

    s = SamplingSettings(do_sample=True, temperature=1.5, seed=7)
    a = generate(lm, PROMPT, max_new_tokens=8, sampling=s)
    b = generate(lm, PROMPT, max_new_tokens=8, sampling=s)
    np.testing.assert_array_equal(a.token_ids, b.token_ids)
    torch.manual_seed(123)  # the global RNG must not matter
    c = generate(lm, PROMPT, max_new_tokens=8, sampling=s)
    np.testing.assert_array_equal(a.token_ids, c.token_ids)


def test_hiding_the_first_token_keeps_raw_values_and_renormalises_the_rest():
    lm = tiny_lm(add_bos=False)
    r = generate(lm, PROMPT, max_new_tokens=2)
    rows = aggregate(r)
    shown, hidden = split_step(r, rows, 1), split_step(r, rows, 1, hide_first=True)
    np.testing.assert_array_equal(hidden.input_raw, shown.input_raw)  # what the model computed
    assert hidden.input_norm[0] == 0.0 and hidden.sink_raw == pytest.approx(rows[1, 0])
    rest = shown.input_raw[1:]
    np.testing.assert_allclose(hidden.input_norm[1:], rest / (rest.sum() + 1e-8), rtol=1e-6)
