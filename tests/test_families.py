"""The model interface on every family a user can pick: tiny random GPT-2, GPT-NeoX, Llama,
Qwen2, Gemma and Phi models, each lesson's library call checked against an independent
computation (transformers' eager forward pass with hidden states and attentions, or the
attention module's own output on one token)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.analysis import ablation as ab
from lib.analysis.logit_lens import logit_lens
from lib.analysis.residual import activation_norms, sublayer_lens
from lib.analysis.weights import has_ov_weights, layer_ov_spectra, ov_copying
from lib.model.generation import generate
from tests.families import FAMILIES, family_lm

PROMPT = "the old wizard walked through the forest"


@pytest.fixture(scope="module", params=FAMILIES)
def lm(request):
    return family_lm(request.param)


def eager(lm, token_ids):
    """transformers' eager forward pass on the same weights: hidden states and attentions."""
    from lib.model.capture import CAPTURE_IMPL

    lm.model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            return lm.model(
                torch.tensor([list(token_ids)]), output_hidden_states=True, output_attentions=True
            )
    finally:
        lm.model.set_attn_implementation(CAPTURE_IMPL)


def test_generation_captures_eager_attention(lm):
    r = generate(lm, PROMPT, 4)
    out = eager(lm, r.token_ids.tolist())
    att = torch.stack(out.attentions)[:, 0].numpy()  # (L, H, T, T)
    for s in range(r.n_steps):
        q = r.prompt_len - 1 + s
        np.testing.assert_allclose(r.attention[s][..., : q + 1], att[:, :, q, : q + 1], atol=1e-5)


def test_the_logit_lens_ends_at_the_models_own_prediction(lm):
    r = generate(lm, PROMPT, 4)
    lens = logit_lens(lm, r)
    out = eager(lm, r.token_ids[: r.prompt_len + r.n_steps - 1].tolist())
    probs = torch.softmax(out.logits[0, r.prompt_len - 1 :].float(), -1).numpy()
    np.testing.assert_allclose(lens.final_prob[:, -1], probs.max(axis=-1), atol=1e-5)
    assert (lens.final_ids == probs.argmax(axis=-1)).all()
    assert lens.top_ids.shape[1] == lm.n_layers + 1


def test_the_stream_between_attention_and_mlp_adds_up_to_the_layers(lm):
    """The sub-layer lens reads 2L + 1 states; every layer's output equals transformers'
    own hidden state after that layer (the last one before the final norm), and the last
    readout is the model's prediction."""
    r = generate(lm, PROMPT, 3)
    sub = sublayer_lens(lm, r)
    ids = r.token_ids[: r.prompt_len + r.n_steps - 1].tolist()
    out = eager(lm, ids)
    probs = torch.softmax(out.logits[0, r.prompt_len - 1 :].float(), -1).numpy()
    np.testing.assert_allclose(np.exp(sub.final_logprob[:, -1]), probs.max(-1), atol=1e-5)
    norms = activation_norms(lm, np.array(ids))
    for i in range(lm.n_layers - 1):  # transformers' last hidden state is after the norm
        expected = torch.linalg.vector_norm(out.hidden_states[i + 1][0], dim=-1).numpy()
        np.testing.assert_allclose(norms.resid[i], expected, rtol=1e-5, atol=1e-5)


def one_token_attention(lm, layer: int, x: torch.Tensor) -> torch.Tensor:
    """Layer `layer`'s attention output for one position, read from the module itself."""
    parts = lm.parts
    seen = {}

    def grab(module, args, kwargs, output):
        seen["in"] = (args[0] if args else kwargs["hidden_states"])[0, -1]
        seen["out"] = (output[0] if isinstance(output, tuple) else output)[0, -1]

    handle = parts.attn[layer].register_forward_hook(grab, with_kwargs=True)
    try:
        with torch.no_grad():
            lm.model(x)
    finally:
        handle.remove()
    return seen["in"], seen["out"]


def test_w_v_and_w_o_are_what_one_token_attention_applies(lm):
    """On a one-token text attention has one key (weight 1), so each head writes
    W_O,h W_V,g(h) x: the sum over heads, with the projections' biases zeroed, is the
    attention's output. Switching a head off removes exactly its term."""
    import copy

    lm = copy.copy(lm)
    lm.model = copy.deepcopy(lm.model)
    with torch.no_grad():
        for name, p in lm.model.named_parameters():
            if name.endswith("bias") and ".ln" not in name and "norm" not in name:
                p.zero_()
    lm.__dict__.pop("parts", None)
    parts, x = lm.parts, torch.tensor([[4]])
    d, group = parts.head_dim, parts.n_heads // parts.n_kv_heads
    for layer in range(lm.n_layers):
        inp, out = one_token_attention(lm, layer, x)
        v, o = parts.w_v(layer), parts.w_o(layer)
        terms = [
            o[:, h * d : (h + 1) * d] @ (v[(h // group) * d : (h // group + 1) * d] @ inp.numpy())
            for h in range(parts.n_heads)
        ]
        np.testing.assert_allclose(out.numpy(), np.sum(terms, axis=0), atol=1e-5)
        with ab.zero_heads(lm, {(layer, 1)}):
            _, without = one_token_attention(lm, layer, x)
        np.testing.assert_allclose(without.numpy(), out.numpy() - terms[1], atol=1e-5)


def test_weight_views_and_ablation_run_on_every_family(lm):
    assert has_ov_weights(lm)
    spectra = layer_ov_spectra(lm, 0)
    assert spectra.shape == (lm.n_heads, lm.parts.head_dim) and (spectra >= 0).all()
    cp = ov_copying(lm)
    assert cp.score.shape == (lm.n_layers, lm.n_heads)
    r = generate(lm, PROMPT, 3)
    out = ab.ablate(lm, r.token_ids[: r.prompt_len + 1], {(0, 0), (2, 3)}, position=r.prompt_len)
    assert out.heads == ((0, 0), (2, 3)) and out.kl_bits >= 0


def test_the_norm_gain_folded_into_w_v_is_what_the_norm_multiplies_by(lm):
    """ln1's gain, as the OV views fold it in, equals the norm's own scaling of a vector of
    mean 0 and RMS 1 (Gemma's RMSNorm scales by 1 + weight, the others by weight)."""
    import copy

    lm = copy.copy(lm)
    lm.model = copy.deepcopy(lm.model)
    lm.__dict__.pop("parts", None)
    norm = lm.parts.ln1[0]
    with torch.no_grad():
        norm.weight.uniform_(-0.5, 0.5)  # a gain that differs from 1 and from the weight + 1
        x = torch.tensor([1.0, -1.0] * (norm.weight.shape[0] // 2))
        bias = getattr(norm, "bias", None)
        out = norm(x[None])[0] - (0 if bias is None else bias)
    np.testing.assert_allclose(lm.parts.ln1_gain(0), (out / x).numpy(), rtol=1e-3, atol=1e-4)
