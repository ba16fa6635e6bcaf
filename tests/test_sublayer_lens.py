"""The logit lens before and after attention, and the activation norms.

The expectations come from a hand-written walk through the layers (attention computed from
the weights, residual sums done here), not from the hooks under test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from lib.analysis.logit_lens import LogitLens, logit_lens, readout_names, tied_embeddings
from lib.analysis.residual import (
    ActivationNorms,
    SublayerLens,
    activation_norms,
    readout_kinds,
    sublayer_lens,
    sublayer_steps,
    supports_sublayers,
)
from lib.model.generation import generate
from lib.viz import lens as vl
from tests.apphelpers import assert_ok
from tests.tiny import tiny_lm

# ---- a manual forward pass ----------------------------------------------------------------


def manual_attention(layer, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """Causal GQA attention of one Llama layer from its weights: x (T, d) -> (T, d)."""
    a, cfg = layer.self_attn, layer.self_attn.config
    T, H, KV, hd = x.shape[0], cfg.num_attention_heads, cfg.num_key_value_heads, a.head_dim
    q = a.q_proj(x).view(1, T, H, hd).transpose(1, 2)
    k = a.k_proj(x).view(1, T, KV, hd).transpose(1, 2)
    v = a.v_proj(x).view(1, T, KV, hd).transpose(1, 2)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)
    scores = (q @ k.transpose(-1, -2)) / hd**0.5
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v  # (1, H, T, hd)
    return a.o_proj(out.transpose(1, 2).reshape(T, H * hd))


@torch.no_grad()
def manual_walk(model, ids) -> tuple[list, list, list]:
    """Residual states walked by hand: pre (L+1) x (T, d), mid L x (T, d), post L x (T, d)."""
    inner = model.model
    x = inner.embed_tokens(torch.tensor([list(ids)]))
    cos, sin = inner.rotary_emb(x, torch.arange(len(ids))[None])
    x = x[0]
    pre, mid, post = [x], [], []
    for layer in inner.layers:
        h = x + manual_attention(layer, layer.input_layernorm(x), cos, sin)
        x = h + layer.mlp(layer.post_attention_layernorm(h))
        mid.append(h)
        post.append(x)
        pre.append(x)
    return pre, mid, post


@pytest.fixture(scope="module")
def tiny():
    lm = tiny_lm()
    r = generate(lm, "the old wizard walked through the", 4)
    return lm, r


def test_sublayer_lens_equals_a_manual_forward_pass(tiny):
    lm, r = tiny
    P, S = r.prompt_len, r.n_steps
    sl = sublayer_lens(lm, r, top_k=3)
    L = lm.n_layers
    assert sl.top_ids.shape == (S, 2 * L + 1, 3) and sl.n_layers == L
    pre, mid, post = manual_walk(lm.model, r.token_ids[: P + S - 1])
    states = [pre[0]] + [s for pair in zip(mid, post, strict=True) for s in pair]
    with torch.no_grad():
        logp = torch.stack(
            [torch.log_softmax(lm.model.lm_head(lm.model.model.norm(s)), -1) for s in states]
        )[:, P - 1 : P - 1 + S]  # (2L + 1, S, V)
    want = logp.transpose(0, 1).numpy()  # (S, 2L + 1, V)
    final = want[:, -1].argmax(-1)
    assert (sl.final_ids == final).all()
    got = want[np.arange(S), :, final]  # (S, 2L + 1)
    np.testing.assert_allclose(sl.final_logprob, got, atol=1e-5)
    np.testing.assert_allclose(
        sl.top_probs, np.sort(np.exp(want), -1)[..., ::-1][..., :3], atol=1e-5
    )
    want_rank = (want > got[..., None]).sum(-1) + 1
    assert (sl.final_rank == want_rank).all()


def test_last_readout_is_the_models_own_output(tiny):
    lm, r = tiny
    P, S = r.prompt_len, r.n_steps
    sl = sublayer_lens(lm, r, top_k=3)
    with torch.no_grad():
        logits = lm.model(input_ids=lm.batch(r.token_ids[: P + S - 1])).logits[0, P - 1 :]
    probs = torch.softmax(logits, -1).numpy()
    assert (sl.final_ids == probs.argmax(-1)).all()
    np.testing.assert_allclose(sl.final_prob[:, -1], probs.max(-1), atol=1e-5)
    np.testing.assert_allclose(sl.top_probs[:, -1, 0], probs.max(-1), atol=1e-5)
    assert (sl.final_rank[:, -1] == 1).all()


def test_activation_norms_equal_the_manual_residual_differences(tiny):
    lm, r = tiny
    norms = activation_norms(lm, r.token_ids)
    L, T = lm.n_layers, len(r.token_ids)
    assert norms.attn.shape == norms.mlp.shape == norms.resid.shape == (L, T)
    pre, mid, post = manual_walk(lm.model, r.token_ids)
    for i in range(L):
        np.testing.assert_allclose(norms.attn[i], (mid[i] - pre[i]).norm(dim=-1), rtol=1e-4)
        np.testing.assert_allclose(norms.mlp[i], (post[i] - mid[i]).norm(dim=-1), rtol=1e-4)
        np.testing.assert_allclose(norms.resid[i], post[i].norm(dim=-1), rtol=1e-4)


def test_activation_spread_equals_the_manual_walks_values(tiny):
    """The distribution of every component of what each sub-layer writes, per layer, as
    numpy reads it from the hand-walked residual states."""
    from lib.analysis.residual import SPREAD_QUANTILES, activation_spread

    lm, r = tiny
    spread = activation_spread(lm, r.token_ids)
    L = lm.n_layers
    assert spread.quantiles.shape == (3, L, len(SPREAD_QUANTILES))
    assert spread.tokens == len(r.token_ids)
    pre, mid, post = manual_walk(lm.model, r.token_ids)
    for i in range(L):
        for k, values in enumerate((mid[i] - pre[i], post[i] - mid[i], post[i])):
            v = values.double().flatten().numpy()
            np.testing.assert_allclose(
                spread.quantiles[k, i], np.quantile(v, SPREAD_QUANTILES), atol=1e-4
            )
            np.testing.assert_allclose(spread.extremes[k, i], [v.min(), v.max()], atol=1e-4)
    assert (np.diff(spread.quantiles, axis=-1) >= 0).all()  # ordered, as quantiles are
    assert f"the last {spread.tokens} tokens" in vl.activation_spread_caption(spread)


def test_shapes_are_checked_on_construction():
    S, L, K = 2, 3, 4
    ok = dict(
        top_ids=np.zeros((S, 2 * L + 1, K), np.int64),
        top_probs=np.zeros((S, 2 * L + 1, K), np.float32),
        final_ids=np.zeros(S, np.int64),
        final_logprob=np.zeros((S, 2 * L + 1), np.float32),
        final_rank=np.ones((S, 2 * L + 1), np.int64),
    )
    assert SublayerLens(**ok).n_layers == L
    bad = [
        {"top_ids": np.zeros((S, 2 * L, K), np.int64), "top_probs": np.zeros((S, 2 * L, K))},
        {"top_probs": np.zeros((S, 2 * L + 1, K + 1))},
        {"final_logprob": np.zeros((S, 2 * L))},
        {"final_rank": np.ones((S + 1, 2 * L + 1))},
        {"final_ids": np.zeros(S + 1)},
    ]
    for change in bad:
        with pytest.raises(ValueError):
            SublayerLens(**(ok | change))
    with pytest.raises(ValueError):
        ActivationNorms(np.zeros((3, 5)), np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError):
        ActivationNorms(np.zeros(5), np.zeros(5), np.zeros(5))


def test_names_kinds_and_steps_line_up():
    assert readout_names(2, sublayers=True) == [
        "embeddings",
        "layer 0 attn",
        "layer 0 MLP",
        "layer 1 attn",
        "layer 1 MLP",
    ]
    assert readout_kinds(2) == ["embeddings", "attention", "MLP", "attention", "MLP"]
    # Every other sub-layer readout is a whole-layer readout, under the same layer number.
    assert readout_names(2, sublayers=True)[::2] == ["embeddings", "layer 0 MLP", "layer 1 MLP"]
    assert readout_names(2) == ["embeddings", "layer 0", "layer 1"]
    steps = sublayer_steps(np.array([-50.0, -10, -9, -9.5, -2]))
    assert steps.tolist() == [[40.0, 1.0], [-0.5, 7.5]]


def planted_lens() -> SublayerLens:
    """Three layers; after layer 0 the answer rises most at layer 2's MLP, falls at layer 1
    attn."""
    lp = np.array([[-60.0, -20, -8, -9, -6, -5.5, -0.1]], np.float32)
    R = lp.shape[1]
    return SublayerLens(
        top_ids=np.full((1, R, 2), 4, np.int64),
        top_probs=np.full((1, R, 2), 0.5, np.float32),
        final_ids=np.array([4]),
        final_logprob=lp,
        final_rank=np.array([[900, 40, 7, 9, 3, 2, 1]]),
    )


def test_sentence_names_the_sub_layer_that_moved_the_answer():
    sl = planted_lens()
    text = vl.sublayer_sentence(sl, 0)
    assert "from -60.0 at the embeddings (no real prediction, see above) to -8.0" in text
    assert (
        "largest rises are at layer 2 MLP (+5.40), layer 1 MLP (+3.00), layer 2 attn (+0.50)"
        in (text)
    )
    assert "largest fall at layer 1 attn (-1.00)" in text
    assert "attention sub-layers add -0.50 and MLPs +8.40: the MLPs moved" in text
    assert "In probability, the largest rise is at layer 2 MLP (+0.90)." in text
    chart = vl.sublayer_chart(sl, 0, str, "rank").to_dict()
    rows = next(iter(chart["datasets"].values()))
    assert [row["kind"] for row in rows][:3] == ["embeddings", "attention", "MLP"]
    assert [row["after"] for row in rows][-1] == "layer 2 MLP"


def test_embeddings_caption_counts_the_steps_that_predict_their_own_input():
    ids = np.array([[[7, 1]], [[3, 1]], [[9, 1]]])  # top-1 at the embeddings: 7, 3, 9
    lens = LogitLens(
        top_ids=ids,
        top_probs=np.ones((3, 1, 2), np.float32),
        final_ids=np.array([1, 1, 1]),
        final_prob=np.ones((3, 1), np.float32),
        final_rank=np.ones((3, 1), np.int64),
        settles_at=np.zeros(3, np.int64),
    )
    text = vl.embeddings_caption(lens, np.array([7, 5, 9]), True, lambda i: f"tok{i}")
    assert "at 2 of 3 steps" in text and "“tok3”" in text


def test_activations_caption_notes_a_huge_first_token():
    attn = np.full((2, 4), 3.0, np.float32)
    mlp = np.full((2, 4), 5.0, np.float32)
    mlp[1, 0] = 900.0
    norms = ActivationNorms(attn, mlp, np.full((2, 4), 1000.0, np.float32))
    text = vl.activations_caption(norms, ["a", "b", "c", "d"])
    assert "MLP of layer 1 at token 0 “a” (900)" in text
    assert "first token is special" in text
    plain = ActivationNorms(attn, np.full((2, 4), 5.0, np.float32), norms.resid)
    assert "first token" not in vl.activations_caption(plain, ["a", "b", "c", "d"])
    with pytest.raises(ValueError):  # read-only: one cached copy serves every session
        norms.mlp[0, 0] = 1.0


def test_a_layout_that_changes_the_sums_or_is_unknown_is_refused():
    """Gemma 2 normalises what attention and the MLP write before adding it (its output
    is not input + attention + MLP), so the stream between them is refused in words; a
    layout no family here has (BLOOM's) is refused before any pass."""
    from transformers import BloomConfig, BloomForCausalLM, Gemma2Config, Gemma2ForCausalLM

    from lib.model.loading import LoadedModel

    def wrap(model):
        return LoadedModel(
            "t", "t", "local", model.eval(), None, torch.device("cpu"), torch.float32, 0
        )

    torch.manual_seed(0)
    gemma2 = wrap(Gemma2ForCausalLM(Gemma2Config(
        vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8,
    )))  # fmt: skip
    assert not supports_sublayers(gemma2)
    from lib.model.anatomy import support_note

    assert "except before and after attention" in support_note(gemma2.model)
    with pytest.raises(ValueError, match="post-norms"):
        activation_norms(gemma2, np.array([1, 2, 3]))
    bloom = wrap(BloomForCausalLM(BloomConfig(vocab_size=16, hidden_size=8, n_layer=1, n_head=2)))
    assert not supports_sublayers(bloom)
    assert "laid out unlike any family" in support_note(bloom.model)
    with pytest.raises(ValueError, match="laid out unlike Llama's"):
        activation_norms(bloom, np.array([1, 2, 3]))


# ---- the real model -----------------------------------------------------------------------


def test_smollm2_sub_layer_lens_agrees_with_the_whole_layer_lens(smollm2):
    r = generate(smollm2, "The old wizard walked through the forest", 4)
    sl, lens = sublayer_lens(smollm2, r), logit_lens(smollm2, r)
    assert sl.n_layers == smollm2.n_layers == 30
    # Two independent paths (hooks vs output_hidden_states) give the same whole-layer states.
    assert (sl.top_ids[:, ::2] == lens.top_ids).all()
    np.testing.assert_allclose(sl.final_prob[:, ::2], lens.final_prob, atol=1e-5)
    assert (sl.final_ids == r.generated_ids).all()  # greedy
    assert tied_embeddings(smollm2)
    norms = activation_norms(smollm2, r.token_ids)
    assert norms.mlp.shape == (30, len(r.token_ids))
    # SmolLM2's first token gets a massive MLP write (layer 11), far above every other token.
    assert norms.mlp[:, 0].max() > 20 * norms.mlp[:, 1:].max()


def test_lens_and_activation_tabs_render(app):
    at = app
    at.slider(key="max_tokens__w").set_value(5)
    next(b for b in at.button if b.label == "Generate").click().run()
    at.switch_page("lessons/lenses.py").run()
    assert_ok(at)
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    assert any('"kind:N"' in json.dumps(s) or "kind" in json.dumps(s) for s in specs)  # sub-layers
    assert any("Layer 0 takes log P(final token)" in m.value for m in at.markdown)
    assert at.dataframe[0].value["after"].iloc[1] == "layer 0"
    at.radio(key="lens_measure__w").set_value("rank").run()
    assert_ok(at)
    at.session_state["lens_tab"] = "Activations"
    at.run()
    assert_ok(at)
    specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
    assert len(specs) == 2 and all("vconcat" in s for s in specs)  # norms, then the spread
    assert len(specs[1]["vconcat"]) == 3  # attention, MLP, the stream
    assert any("L2 norm" in c.value for c in at.caption)
    assert any("the box holds the middle half of the values" in c.value for c in at.caption)


def test_an_unknown_layout_still_reads_its_predictions():
    """The views that need only the final norm and the head (the next-token chances, the
    logit lens's last readout) work on a layout the interface does not know."""
    from transformers import BloomConfig, BloomForCausalLM

    from lib.analysis.next_token import sequence_lens
    from lib.model.loading import LoadedModel

    torch.manual_seed(0)
    model = BloomForCausalLM(BloomConfig(vocab_size=16, hidden_size=8, n_layer=1, n_head=2))
    lm = LoadedModel("t", "t", "local", model.eval(), None, torch.device("cpu"), torch.float32, 0)
    ids = [1, 5, 3, 7]
    lens = sequence_lens(lm, ids, k=3)
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([ids])).logits[0], -1).numpy()
    np.testing.assert_allclose(lens.top_probs[:, 0], probs.max(-1), atol=1e-6)
