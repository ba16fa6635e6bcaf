"""Key knockout (the attention graph's "Prove it") against transformers' eager attention
given an attention mask written here, on six tiny families and on the bundled model; and
the attribution's "Prove it" (its largest parts removed) against plain forward hooks."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from lib.analysis.attribution import check_parts, largest_parts, logit_attribution
from lib.analysis.knockout import control_draws, knock_out_keys
from lib.model.generation import generate
from tests.families import FAMILIES, family_lm

MIN = torch.finfo(torch.float32).min


def eager_probs(model, ids, token, hidden_sets) -> np.ndarray:
    """The token's probability with each set of keys masked from the last query: eager
    attention, and a causal (T, T) additive mask of this test's own."""
    T, out = len(ids), []
    for keys in hidden_sets:
        mask = torch.zeros(T, T).masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), MIN)
        mask[-1, list(keys)] = MIN
        with torch.no_grad():
            logits = model(torch.tensor([list(ids)]), attention_mask=mask[None, None]).logits
        out.append(float(torch.softmax(logits[0, -1].double(), -1)[token]))
    return np.array(out)


def eager_copy(model):
    other = copy.deepcopy(model)
    other.set_attn_implementation("eager")
    return other.eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_knockout_equals_eager_attention_with_a_mask_written_here(family):
    lm = family_lm(family)
    ids = np.random.default_rng(1).integers(3, 14, 9)
    ko = knock_out_keys(lm, ids, token=5, keys=[2, 6], candidates=range(1, 9), n_controls=4)
    sets = [[], [2, 6], *ko.control_keys.tolist()]
    want = eager_probs(eager_copy(lm.model), ids, 5, sets)
    got = np.array([ko.before, ko.after, *ko.controls])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert abs(ko.after - ko.before) > 1e-6  # hiding changed it (random weights: a little)
    assert all(not {2, 6} & set(c) and 0 not in c for c in ko.control_keys.tolist())


def test_the_mask_hides_keys_from_the_last_query_only_in_every_form():
    """`hide_from_last_query` on the mask forms transformers passes: none (plain causal),
    boolean for one sequence or a batch, additive float, and fewer queries than keys."""
    from lib.model.capture import hide_from_last_query

    hidden = torch.tensor([[False, True, False, False], [True, False, False, True]])
    causal = torch.ones(4, 4, dtype=torch.bool).tril()
    want = causal.expand(2, 1, 4, 4).clone()
    want[0, 0, 3, 1] = want[1, 0, 3, 0] = want[1, 0, 3, 3] = False
    assert torch.equal(hide_from_last_query(None, hidden, 4), want)
    assert torch.equal(hide_from_last_query(causal[None, None], hidden, 4), want)  # broadcast
    window = causal & ~torch.ones(4, 4, dtype=torch.bool).tril(-2)  # a 2-token window
    got = hide_from_last_query(window.expand(2, 1, 4, 4), hidden, 4)
    assert torch.equal(got, want & window)
    additive = torch.zeros(4, 4).masked_fill(~causal, MIN)[None, None]
    got = hide_from_last_query(additive, hidden, 4)
    assert got.shape == (2, 1, 4, 4) and torch.equal(
        got[:, :, :3], additive.expand(2, 1, 4, 4)[:, :, :3]
    )
    assert torch.isinf(got[0, 0, 3, 1]) and got[0, 0, 3, 0] == 0 and torch.isinf(got[1, 0, 3, 3])
    one_query = hide_from_last_query(None, hidden, 1)  # decoding: the last query alone
    assert torch.equal(one_query, want[:, :, 3:])


def test_knockout_within_a_sliding_window_equals_eager_attention():
    """Mistral with a 4-token window: the capture's mask is boolean and windowed; hiding
    keys inside the window equals eager attention with the test's windowed mask."""
    from transformers import MistralConfig, MistralForCausalLM

    from lib.model.capture import CAPTURE_IMPL, ensure_registered
    from lib.model.loading import LoadedModel
    from tests.tiny import tiny_tokenizer

    ensure_registered()
    torch.manual_seed(0)
    config = MistralConfig(
        vocab_size=14, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64,
        sliding_window=4,
    )  # fmt: skip
    config._attn_implementation = CAPTURE_IMPL
    model = MistralForCausalLM(config).eval()
    lm = LoadedModel("tiny-mistral", "tiny-mistral", "local", model, tiny_tokenizer(True),
                     torch.device("cpu"), torch.float32, 0)  # fmt: skip
    ids = np.random.default_rng(2).integers(3, 14, 9)
    ko = knock_out_keys(lm, ids, token=4, keys=[6, 7], candidates=range(1, 9), n_controls=3)
    T = len(ids)
    i, j = np.meshgrid(np.arange(T), np.arange(T), indexing="ij")
    allowed = torch.tensor((j <= i) & (i - j < 4))
    eager = eager_copy(model)
    got = []
    for keys in [[], [6, 7], *ko.control_keys.tolist()]:
        m = torch.zeros(T, T).masked_fill(~allowed, MIN)
        m[-1, list(keys)] = MIN
        with torch.no_grad():
            logits = eager(torch.tensor([list(ids)]), attention_mask=m[None, None]).logits
        got.append(float(torch.softmax(logits[0, -1].double(), -1)[4]))
    np.testing.assert_allclose([ko.before, ko.after, *ko.controls], got, atol=1e-5)
    assert abs(ko.after - ko.before) > 1e-6


def test_control_draws_avoid_the_keys_and_stop_when_too_few_remain():
    d = control_draws(range(10), [3, 4], 6, seed=2)
    assert d.shape == (6, 2) and not np.isin(d, [3, 4]).any()
    assert all(len(set(row)) == 2 for row in d.tolist())
    assert control_draws([1, 2, 3], [1, 2], 5).shape == (0, 2)  # one left, two needed


def test_knockout_refuses_keys_outside_the_context_or_all_of_it():
    lm = family_lm("llama")
    with pytest.raises(ValueError, match="positions"):
        knock_out_keys(lm, [3, 4, 5], 6, [3], range(3))
    with pytest.raises(ValueError, match="visible"):
        knock_out_keys(lm, [3, 4, 5], 6, [0, 1, 2], range(3))


def test_bundled_model_needs_the_country_to_name_its_capital(smollm2, smollm2_eager):
    """The bundled model writes " Paris" after "The capital of France is"; hidden from
    the last query, " France" takes most of that probability away, more than hiding any
    other word; and every number equals eager attention with the test's mask."""
    lm = smollm2
    r = generate(lm, "The capital of France is", 1)
    assert lm.tokenizer.decode(r.generated_ids[:1]) == " Paris"
    q = r.query_position(0)
    ids, token = r.token_ids[: q + 1], int(r.token_ids[q + 1])
    france = next(i for i in range(q + 1) if lm.tokenizer.decode(ids[i : i + 1]) == " France")
    ko = knock_out_keys(lm, ids, token, [france], range(r.bos_offset, q + 1))
    assert ko.before == pytest.approx(float(r.chosen_prob[0]), abs=1e-4)  # the run's own
    assert ko.after < 0.5 * ko.before
    assert ko.after < ko.controls.min() and len(ko.controls) == 8
    assert set(ko.control_keys.ravel().tolist()) == {1, 2, 4}  # never the sink, never France
    want = eager_probs(smollm2_eager, ids, token, [[], [france], *ko.control_keys.tolist()])
    np.testing.assert_allclose([ko.before, ko.after, *ko.controls], want, atol=1e-5)


def zeroed_logit(lm, ids, token, site, layer, q) -> float:
    """The token's logit with one part's output zeroed at position q: a hook written here."""
    parts = lm.parts
    if site == "resid_pre":

        def hook(m, args, kwargs):
            x = (args[0] if args else kwargs["hidden_states"]).clone()
            x[0, q] = 0
            return ((x, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": x})

        handle = parts.blocks[layer].register_forward_pre_hook(hook, with_kwargs=True)
    else:

        def hook(m, args, out):
            x = (out[0] if isinstance(out, tuple) else out).clone()
            x[0, q] = 0
            return (x, *out[1:]) if isinstance(out, tuple) else x

        module = parts.attn[layer] if site == "attn" else parts.mlp[layer]
        handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            return float(lm.model(torch.tensor([list(ids)])).logits[0, -1, token])
    finally:
        handle.remove()


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_removing_the_largest_parts_equals_hooks_written_here(family):
    lm = family_lm(family)
    r = generate(lm, "the old wizard walked through the", 2)
    a = logit_attribution(lm, r, 1)
    pc = check_parts(lm, r, a, n=4)
    chosen = largest_parts(a, 4)
    bars = {name: value for name, value, _, _ in a.parts()}
    sizes = sorted((abs(v) for n, v, s, _ in a.parts() if s is not None), reverse=True)
    assert [abs(v) for v in pc.direct] == pytest.approx(sizes[:4])  # the largest, in order
    assert all(bars[n] == d for n, d in zip(pc.names, pc.direct, strict=True))
    assert pc.logit == pytest.approx(a.logit, abs=1e-4)
    ids, token = r.token_ids[: a.position + 1], a.token_id
    want = [zeroed_logit(lm, ids, token, site, layer, a.position) for _, _, site, layer in chosen]
    np.testing.assert_allclose(pc.without, want, atol=1e-5)
    assert np.abs(pc.without - pc.logit).max() > 1e-3  # removing them moved the logit
