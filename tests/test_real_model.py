"""Integration tests on the real bundled SmolLM2-135M-Instruct (offline)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from lib.analysis.attention import all_steps
from lib.model.full_attention import full_attention
from lib.model.generation import PromptError, encode_prompt, generate
from lib.model.loading import _folder_is_complete, converted_bundled_dir
from lib.model.result import SamplingSettings

WIZARD = "The old wizard walked through the forest"


def eager_rows(eager_model, result) -> np.ndarray:
    """(L, H, T, T) attention of an independent eager forward over the final sequence."""
    with torch.no_grad():
        out = eager_model(torch.tensor(result.token_ids[None]), output_attentions=True)
    return torch.stack(out.attentions)[:, 0].numpy()


def assert_matches_eager(result, eager_model, atol=1e-5):
    ref = eager_rows(eager_model, result)
    assert ref.shape[:2] == result.attention.shape[1:3]  # all layers, all query heads
    for s in range(result.n_steps):
        q, K = result.query_position(s), result.prompt_len + s
        diff = np.abs(result.attention[s, :, :, :K] - ref[:, :, q, :K]).max()
        assert diff <= atol, f"step {s}: max abs diff {diff}"


def test_bundled_model_is_the_real_smollm2(smollm2):
    cfg = smollm2.model.config
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (30, 9, 3)
    assert cfg.vocab_size == 49152 and 130e6 < smollm2.n_params < 140e6
    assert smollm2.has_chat_template


def test_known_prompts_give_fluent_text(smollm2):
    # Facts a real language model knows, not values read off this code.
    text = smollm2.tokenizer.decode(generate(smollm2, "The capital of France is", 4).generated_ids)
    assert "Paris" in text
    text = smollm2.tokenizer.decode(generate(smollm2, "One, two, three, four,", 6).generated_ids)
    assert "five" in text and "six" in text


def test_wizard_prompt_greedy(smollm2):
    r = generate(smollm2, WIZARD, 20)
    assert r.n_steps == 20 and r.stop_reason == "max_tokens"
    text = smollm2.tokenizer.decode(r.generated_ids)
    # Recorded independently in shared/notes/environment.md on these machines.
    assert text.startswith(", his eyes gleaming with a fierce determination.")
    assert r.prompt_labels[:3] == ("The", "·old", "·w")  # one rule: the space is shown


def test_capture_equals_eager_forward_all_layers_and_heads(smollm2, smollm2_eager):
    r = generate(smollm2, WIZARD, 12)
    assert_matches_eager(r, smollm2_eager)
    np.testing.assert_allclose(r.attention.sum(-1), 1.0, atol=1e-5)  # raw rows are softmaxes


def test_sampled_run_equals_eager_too(smollm2, smollm2_eager):
    s = SamplingSettings(do_sample=True, temperature=0.9, top_p=0.95, min_p=0.02, top_k=50, seed=3)
    r = generate(smollm2, "Once upon a time", 10, sampling=s)
    assert_matches_eager(r, smollm2_eager)


def test_long_prompt_over_100_tokens(smollm2, smollm2_eager):
    prompt = " ".join(["The river runs past the mill and the old stone bridge."] * 12)
    ids, _ = encode_prompt(smollm2, prompt)
    assert len(ids) > 100
    r = generate(smollm2, prompt, 5)
    assert r.prompt_len == len(ids)
    assert_matches_eager(r, smollm2_eager)


def test_same_seed_same_sample(smollm2):
    s = SamplingSettings(do_sample=True, temperature=1.0, seed=11)
    a = generate(smollm2, "Once upon a time", 12, sampling=s)
    b = generate(smollm2, "Once upon a time", 12, sampling=s)
    np.testing.assert_array_equal(a.token_ids, b.token_ids)
    np.testing.assert_array_equal(a.attention, b.attention)
    others = {
        tuple(
            generate(
                smollm2,
                "Once upon a time",
                12,
                sampling=SamplingSettings(do_sample=True, temperature=1.0, seed=k),
            ).generated_ids
        )
        for k in (12, 13, 14)
    }
    assert len(others | {tuple(a.generated_ids)}) > 1  # seeds do change the draw


def test_empty_prompt_gives_clear_error(smollm2):
    with pytest.raises(PromptError, match="empty"):
        generate(smollm2, "  ", 5)


def test_single_token_generation(smollm2):
    r = generate(smollm2, WIZARD, 1)
    assert r.n_steps == 1
    st = all_steps(r)[0]
    assert st.output_raw.size == 0 and st.input_norm.sum() == pytest.approx(1.0, abs=1e-5)


def test_typed_special_tokens_are_plain_text(smollm2):
    tok = smollm2.tokenizer
    specials = {
        tok.convert_tokens_to_ids(t) for t in ("<|im_start|>", "<|im_end|>", "<|endoftext|>")
    }
    ids, offset = encode_prompt(smollm2, "<|im_start|>user hi<|im_end|><|endoftext|>")
    assert not specials & set(ids) and offset == 0
    ids, offset = encode_prompt(smollm2, "hi", chat_template=True)
    assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>") and offset == 1


def test_chat_template_run_hides_its_bos(smollm2):
    r = generate(smollm2, "What is 2+2?", 12, chat_template=True)
    assert r.bos_offset == 1 and r.prompt_labels[0] != "<|im_start|>"
    assert "4" in smollm2.tokenizer.decode(r.generated_ids)


def test_full_matrix_rows_equal_stored_rows_and_eager(smollm2, smollm2_eager):
    r = generate(smollm2, WIZARD, 6)
    ref = eager_rows(smollm2_eager, r)
    full = full_attention(smollm2, r.token_ids, layer=7)
    np.testing.assert_allclose(full.heads, ref[7], atol=1e-5)
    np.testing.assert_allclose(full.mean, ref.mean(axis=(0, 1)), atol=1e-5)
    for s in range(r.n_steps):
        q, K = r.query_position(s), r.prompt_len + s
        np.testing.assert_allclose(full.heads[:, q, :K], r.attention[s, 7, :, :K], atol=1e-5)


def test_npz_round_trip(smollm2, tmp_path):
    r = generate(smollm2, WIZARD, 3)
    path = tmp_path / "run.npz"
    path.write_bytes(r.to_npz())
    with np.load(path) as z:
        np.testing.assert_array_equal(z["attention"], r.attention)
        meta = json.loads(str(z["meta"]))
    assert meta["labels"] == list(r.labels) and meta["prompt_len"] == r.prompt_len


def test_conversion_cache_is_complete_and_detects_damage(smollm2, tmp_path):
    folder = converted_bundled_dir()
    assert _folder_is_complete(folder)
    assert not list(folder.parent.glob(".converting-*"))  # no temporary folder left behind
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    assert _folder_is_complete(copy)
    with open(copy / "model.safetensors", "r+b") as f:
        f.truncate(1000)  # a half-written weights file
    assert not _folder_is_complete(copy)
    (copy / "tav-complete.json").unlink()
    assert not _folder_is_complete(copy)


def test_prompt_token_probabilities_match_the_generation_step(smollm2):
    from lib.analysis.next_token import sequence_lens

    r = generate(smollm2, "The old wizard walked through the forest", max_new_tokens=2)
    P = r.prompt_len
    # The Generate table's prompt probabilities come from one pass over the run; at the
    # last prompt position it must give the first generated token the probability that
    # generation (a different code path: the KV cache) gave it.
    lens = sequence_lens(smollm2, r.token_ids)
    assert lens.next_prob[P - 1] == pytest.approx(float(r.chosen_prob[0]), abs=1e-4)
    assert lens.next_prob[P] == pytest.approx(float(r.chosen_prob[1]), abs=1e-4)
    small = sequence_lens(smollm2, r.token_ids, chunk=3)  # chunk edges mid-prompt
    assert np.allclose(small.next_prob, lens.next_prob, atol=1e-5)
