"""Head-role scores on hand-built patterns with known answers, then on the bundled model."""

from __future__ import annotations

import numpy as np
import pytest

from lib.analysis.head_roles import (
    ROLES,
    HeadRoles,
    duplicate_token_mask,
    induction_mask,
    induction_probe,
    mask_score,
    repeated_random_tokens,
    role_masks,
    score_roles,
    uniform_pattern,
)
from lib.measures import hide_sink

N = 10  # length of each random repeat in the hand-built sequences


def repeated() -> np.ndarray:
    return np.concatenate([np.arange(100, 100 + N), np.arange(100, 100 + N)])


def pattern_to(targets: dict[int, int], T: int) -> np.ndarray:
    """Each query q puts all its weight on targets[q] (default: on key 0)."""
    p = np.zeros((T, T), dtype=np.float32)
    for q in range(T):
        p[q, targets.get(q, 0)] = 1.0
    return p


def scores(pattern: np.ndarray, tokens: np.ndarray, **kw) -> dict[str, float]:
    return dict(zip(ROLES, score_roles(pattern, role_masks(tokens), **kw).tolist(), strict=True))


def test_perfect_previous_token_pattern_scores_one():
    tokens = np.arange(20)
    p = pattern_to({q: q - 1 for q in range(1, 20)}, 20)
    assert scores(p, tokens)["previous_token"] == pytest.approx(1.0)
    assert scores(p, tokens, exclude_first=True)["previous_token"] == pytest.approx(1.0)


def test_uniform_attention_scores_low_and_equals_chance():
    tokens = repeated()
    s = scores(uniform_pattern(len(tokens)), tokens)
    assert s["previous_token"] < 0.25
    assert s["induction"] < 0.1
    assert s["duplicate_token"] < 0.1
    # Uniform attention is the chance baseline by definition.
    expected_prev = np.mean([1 / (q + 1) for q in range(1, len(tokens))])
    assert s["previous_token"] == pytest.approx(expected_prev, rel=1e-5)


def test_perfect_induction_pattern():
    tokens = repeated()
    # Query at N + i (second copy of token i) attends to i + 1, what followed it last time.
    p = pattern_to({N + i: i + 1 for i in range(N)}, 2 * N)
    s = scores(p, tokens)
    assert s["induction"] == pytest.approx(1.0)
    assert s["duplicate_token"] == pytest.approx(0.0)
    assert s["previous_token"] < 0.2


def test_perfect_duplicate_token_pattern():
    tokens = repeated()
    p = pattern_to({N + i: i for i in range(N)}, 2 * N)
    s = scores(p, tokens)
    assert s["duplicate_token"] == pytest.approx(1.0)
    assert s["induction"] == pytest.approx(0.0)


def test_all_on_first_token_is_a_pure_sink():
    tokens = repeated()
    p = pattern_to({}, 2 * N)
    s = scores(p, tokens)
    assert s["sink"] == pytest.approx(1.0)
    assert s["induction"] == pytest.approx(0.0)
    hidden = scores(p, tokens, exclude_first=True)
    assert hidden["sink"] == pytest.approx(1.0)  # always the raw share
    assert hidden["previous_token"] == pytest.approx(0.0)  # nothing left once key 0 is hidden


def test_hiding_the_sink_renormalises_the_rest():
    # Half on the sink, half on the previous token: 0.5 raw, 1.0 once the sink is hidden.
    T = 12
    p = np.zeros((T, T), dtype=np.float32)
    p[0, 0] = 1.0
    for q in range(1, T):
        p[q, 0] += 0.5
        p[q, q - 1] += 0.5
    tokens = np.arange(T)
    assert scores(p, tokens)["previous_token"] == pytest.approx(0.5 + 0.5 / (T - 1))
    assert scores(p, tokens, exclude_first=True)["previous_token"] == pytest.approx(1.0)
    d = hide_sink(p)
    assert np.allclose(d[1:, 0], 0) and np.allclose(d[2:].sum(1), 1)


def test_masks_and_scores_over_heads():
    tokens = np.array([5, 6, 7, 5, 6])
    assert induction_mask(tokens)[3].tolist() == [False, True, False, False, False]
    assert induction_mask(tokens)[4].tolist() == [False, False, True, False, False]
    assert duplicate_token_mask(tokens)[4].tolist() == [False, True, False, False, False]
    heads = np.stack([uniform_pattern(5), pattern_to({3: 1, 4: 2}, 5)])  # (2, T, T)
    s = mask_score(heads, induction_mask(tokens))
    assert s.shape == (2,) and s[1] == pytest.approx(1.0) and s[0] < 0.5


def test_no_target_gives_nan():
    tokens = np.arange(8)  # no token repeats: induction and duplicate are undefined
    s = scores(uniform_pattern(8), tokens)
    assert np.isnan(s["induction"]) and np.isnan(s["duplicate_token"])


def test_repeated_random_tokens():
    t = repeated_random_tokens(1000, 50, seed=3, first_id=20, prefix=(1,))
    assert t.shape == (101,) and t[0] == 1
    assert (t[1:51] == t[51:]).all() and len(set(t[1:51].tolist())) == 50
    assert t[1:].min() >= 20
    assert (t == repeated_random_tokens(1000, 50, seed=3, first_id=20, prefix=(1,))).all()


def test_head_roles_checks_shapes():
    with pytest.raises(ValueError):
        HeadRoles(
            scores=np.zeros((3, 2, 2)),
            chance=np.zeros(4),
            tokens=np.arange(5),
            loss=np.zeros(0),
            exclude_first=False,
        )


@pytest.mark.parametrize("exclude_first", [False, True])
def test_bundled_model_copies_in_context_with_induction_heads(smollm2, exclude_first):
    roles = induction_probe(smollm2, n=50, seed=0, exclude_first=exclude_first)
    assert roles.scores.shape == (4, smollm2.n_layers, smollm2.n_heads)
    first, second = roles.repeat_losses()
    # Random tokens are unpredictable the first time (~14 nats); copied the second (~3).
    assert first > 10 and second < first / 2, (first, second)
    induction = roles.score("induction")
    chance = float(roles.chance[ROLES.index("induction")])
    assert chance < 0.05
    assert np.nanmax(induction) > 0.5 > 10 * chance
    assert (induction > 0.3).sum() >= 3  # several heads, not one fluke
    assert np.nanmax(roles.score("previous_token")) > 0.5
    assert np.nanmax(roles.score("sink")) > 0.9


def test_spread_is_zero_for_one_key_and_one_for_even_attention():
    from lib.analysis.head_roles import spread

    T = 12
    one_key = pattern_to({q: q - 1 for q in range(1, T)}, T)  # each query: one token
    assert float(spread(one_key)) == pytest.approx(0.0, abs=1e-6)
    assert float(spread(uniform_pattern(T))) == pytest.approx(1.0, rel=1e-5)
    # between: query q splits its weight evenly over its 2 latest keys (q >= 1): entropy
    # log 2 of log(q + 1) possible, averaged over q = 1..T-1
    half = np.zeros((T, T), dtype=np.float32)
    half[0, 0] = 1.0
    for q in range(1, T):
        half[q, q - 1 : q + 1] = 0.5
    expected = np.mean([np.log(2) / np.log(q + 1) for q in range(1, T)])
    assert float(spread(half)) == pytest.approx(expected, rel=1e-5)
    # heads stacked in front, each scored alone
    both = np.stack([one_key, uniform_pattern(T)])
    np.testing.assert_allclose(spread(both), [0.0, 1.0], atol=1e-5)
    # the sink hidden: a head that spreads evenly over the rest counts as general
    rest = uniform_pattern(T).copy()
    rest[:, 0] += 5.0
    rest /= rest.sum(axis=1, keepdims=True)
    assert float(spread(rest, exclude_first=True)) == pytest.approx(1.0, rel=1e-5)
    assert float(spread(rest)) < 0.6  # with the sink: most of it on one token


def test_the_bundled_models_spread_matches_its_own_attention(smollm2, smollm2_eager):
    """The spread grid equals an independent computation from the eager model's
    attention (transformers' output_attentions), head by head."""
    import torch

    from lib.analysis.head_roles import head_roles

    ids = smollm2.tokenizer("The cat sat on the mat because the cat was tired.")["input_ids"]
    roles = head_roles(smollm2, np.asarray(ids))
    with torch.no_grad():
        out = smollm2_eager.model(torch.tensor([ids]), output_attentions=True)
    T = len(ids)
    n = np.arange(2, T + 1)  # keys seen by queries 1..T-1
    for layer, att in enumerate(out.attentions):
        p = att[0].double().numpy()[:, 1:, :]  # (H, T-1, T): queries with two or more keys
        ent = -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)).sum(-1)
        np.testing.assert_allclose(roles.spread[layer], (ent / np.log(n)).mean(-1), atol=1e-4)
    assert roles.spread.min() < 0.2 and roles.spread.max() > 0.5  # both kinds of head here


def test_spread_is_undefined_without_a_query_that_sees_two_tokens():
    from lib.analysis.head_roles import spread
    from lib.viz.text import spread_caption

    assert np.isnan(spread(np.ones((2, 1, 1), np.float32))).all()  # one token: one key
    roles = HeadRoles(
        scores=np.zeros((len(ROLES), 1, 2), np.float32),
        chance=np.zeros(len(ROLES), np.float32),
        tokens=np.array([5]),
        loss=np.zeros(0, np.float32),
        exclude_first=False,
        spread=np.full((1, 2), np.nan, np.float32),
    )
    assert "not defined here" in spread_caption(roles, False)
