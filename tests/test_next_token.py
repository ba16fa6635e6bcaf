"""The next-token lens: filters against hand-computed distributions, seeded draws, the real
model's distributions against what the run stored, step by step and "what if" branches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib import labels as tv
from lib.analysis import next_token as nt
from lib.measures import entropy_bits, rank, softmax
from lib.model.generation import draw
from lib.model.result import SamplingSettings
from lib.viz import next_token as ch

# A hand-made distribution with a tie: tokens 1 and 2 both have 0.2.
P = np.array([0.5, 0.2, 0.2, 0.06, 0.04])
LOGITS = np.log(P).astype(np.float32)


def by_hand(p: np.ndarray, keep: list[int]) -> np.ndarray:
    """Independent renormalisation: zero the rest, divide the kept by their sum."""
    out = np.zeros_like(p, dtype=np.float64)
    out[keep] = p[keep] / sum(p[i] for i in keep)
    return out


def kept_ids(f: nt.Filtered) -> list[int]:
    return np.flatnonzero(f.kept).tolist()


# --- each filter against a hand computation ---------------------------------------------


def test_temperature_divides_logits_and_cuts_nothing():
    logits = np.array([2.0, 1.0, 1.0, 0.0, -1.0])
    for temp in (0.5, 1.0, 2.0):
        e = [np.exp(x / temp) for x in logits]
        expected = np.array(e) / sum(e)
        f = nt.apply_temperature(logits, temp)
        np.testing.assert_allclose(f.probs, expected, atol=1e-6)
        assert f.kept.all() and f.n_kept == 5
    sharp, flat = nt.apply_temperature(logits, 0.5), nt.apply_temperature(logits, 2.0)
    assert entropy_bits(sharp.probs) < entropy_bits(flat.probs)
    with pytest.raises(ValueError):
        nt.apply_temperature(logits, 0.0)


@pytest.mark.parametrize(
    ("k", "keep"),
    [
        (1, [0]),
        (2, [0, 1, 2]),  # 1 and 2 tie for second place: both stay (as transformers does)
        (3, [0, 1, 2]),
        (4, [0, 1, 2, 3]),
        (0, [0, 1, 2, 3, 4]),  # off
        (9, [0, 1, 2, 3, 4]),  # more than the vocabulary
    ],
)
def test_top_k_by_hand(k, keep):
    f = nt.apply_top_k(P, k)
    assert kept_ids(f) == keep
    np.testing.assert_allclose(f.probs, by_hand(P, keep), atol=1e-6)
    assert f.probs[~f.kept].sum() == 0


@pytest.mark.parametrize(
    ("p", "keep"),
    [
        (0.3, [0]),  # the top token alone already reaches 0.3
        (0.6, [0, 2]),  # 0.5 < 0.6, so one of the tied 0.2s joins: the higher id (2)
        (0.75, [0, 1, 2]),  # 0.5 + 0.2 = 0.7 < 0.75: the other 0.2 joins
        (0.95, [0, 1, 2, 3]),  # 0.9 < 0.95 lets 0.06 in; 0.96 >= 0.95 keeps 0.04 out
        (1.0, [0, 1, 2, 3, 4]),  # off
    ],
)
def test_top_p_by_hand(p, keep):
    f = nt.apply_top_p(P, p)
    assert kept_ids(f) == keep
    np.testing.assert_allclose(f.probs, by_hand(P, keep), atol=1e-6)


@pytest.mark.parametrize(
    ("min_p", "keep"),
    [
        (0.0, [0, 1, 2, 3, 4]),  # off
        (0.1, [0, 1, 2, 3]),  # bar 0.1 x 0.5 = 0.05: 0.06 stays, 0.04 goes
        (0.3, [0, 1, 2]),  # bar 0.15: the tied 0.2s both stay
        (0.5, [0]),  # bar 0.25
    ],
)
def test_min_p_by_hand(min_p, keep):
    f = nt.apply_min_p(P, min_p)
    assert kept_ids(f) == keep
    assert f.threshold == pytest.approx(min_p * 0.5)
    np.testing.assert_allclose(f.probs, by_hand(P, keep), atol=1e-6)


def test_min_p_follows_confidence_where_top_p_does_not():
    sure = np.array([0.9, 0.05, 0.03, 0.02])
    unsure = np.array([0.25, 0.25, 0.25, 0.25])
    assert kept_ids(nt.apply_min_p(sure, 0.1)) == [0]  # bar 0.09
    assert kept_ids(nt.apply_min_p(unsure, 0.1)) == [0, 1, 2, 3]  # bar 0.025
    # top-p keeps a fixed share of the probability whatever the confidence
    assert nt.apply_top_p(sure, 0.85).n_kept == 1
    assert nt.apply_top_p(unsure, 0.85).n_kept == 4


def test_all_filters_in_generates_order_by_hand():
    s = SamplingSettings(do_sample=True, temperature=2.0, top_k=3, top_p=0.7, min_p=0.9, seed=0)
    # by hand: temperature 2 -> sqrt of P renormalised
    q = np.sqrt(P) / np.sqrt(P).sum()  # [0.3455, 0.2185, 0.2185, 0.1197, 0.0977]
    keep = [0, 1, 2]  # top-3 (no tie at the edge)
    q3 = by_hand(q, keep)  # [0.4415, 0.2792, 0.2792]
    keep = [0, 2]  # top-p 0.7: 0.4415 < 0.7, then 0.7207 >= 0.7; tie -> higher id first
    q = by_hand(q3, keep)  # [0.6126, 0, 0.3874]
    keep = [0]  # min-p 0.9: bar 0.551
    f = nt.apply_all(LOGITS, s)
    assert kept_ids(f) == keep
    np.testing.assert_allclose(f.probs, by_hand(q, keep), atol=1e-6)
    s2 = SamplingSettings(do_sample=True, temperature=2.0, top_k=3, top_p=0.7, min_p=0.5)
    f2 = nt.apply_all(LOGITS, s2)
    assert kept_ids(f2) == [0, 2]  # bar 0.5 x 0.6126 = 0.306 < 0.3874
    np.testing.assert_allclose(f2.probs, by_hand(q3, [0, 2]), atol=1e-6)


def test_filters_agree_with_transformers_warpers():
    """The lens shows what `generate` samples from: same kept tokens, same probabilities."""
    from lib.model.generation import build_warpers

    rng = np.random.default_rng(0)
    cases = [rng.normal(0, 2, 64).astype(np.float32) for _ in range(8)] + [LOGITS]
    settings = [
        dict(temperature=0.7),
        dict(top_k=5),
        dict(top_p=0.6),
        dict(top_p=0.9),
        dict(min_p=0.1),
        dict(min_p=0.3),
        dict(temperature=1.3, top_k=10, top_p=0.8, min_p=0.05),
    ]
    for logits in cases:
        for kw in settings:
            s = SamplingSettings(do_sample=True, **kw)
            warped = build_warpers(s)(None, torch.as_tensor(logits)[None])[0]
            f = nt.apply_all(logits, s)
            np.testing.assert_array_equal(f.kept, torch.isfinite(warped).numpy(), err_msg=str(kw))
            np.testing.assert_allclose(f.probs, torch.softmax(warped, -1).numpy(), atol=1e-6)


def test_filtered_checks_shapes():
    with pytest.raises(ValueError):
        nt.Filtered("x", np.ones(3, np.float32), np.ones(2, bool))
    with pytest.raises(ValueError):
        nt.Filtered("x", np.ones(3, np.float32), np.zeros(3, bool))


def test_entropy_rank_and_top():
    assert entropy_bits(np.array([0.5, 0.5])) == pytest.approx(1.0)
    assert entropy_bits(np.array([1.0, 0.0])) == 0.0
    assert entropy_bits(np.full(8, 1 / 8)) == pytest.approx(3.0)
    assert rank(P, 0) == 1 and rank(P, 1) == 2 and rank(P, 2) == 2
    assert rank(P, 4) == 5
    d = nt.StepDistribution(0, LOGITS, softmax(LOGITS), chosen=3)
    assert d.top(3).tolist()[0] == 0 and set(d.top(3).tolist()[1:]) == {1, 2}
    np.testing.assert_allclose(d.probs, P, atol=1e-6)
    with pytest.raises(ValueError):
        nt.StepDistribution(0, LOGITS, np.ones(2, np.float32), None)


# --- seeded sampling ----------------------------------------------------------------------


def test_same_seed_same_draw_and_seeds_differ():
    logits = np.zeros(20, np.float32)  # uniform: every seed may draw a different token
    s = SamplingSettings(do_sample=True, seed=7)
    assert len({draw(logits, s) for _ in range(5)}) == 1
    draws = {draw(logits, SamplingSettings(do_sample=True, seed=i)) for i in range(30)}
    assert len(draws) > 5


def test_draw_respects_filters_and_greedy():
    assert draw(LOGITS, SamplingSettings()) == 0
    for seed in range(40):
        s = SamplingSettings(do_sample=True, top_k=3, top_p=0.7, temperature=2.0, seed=seed)
        assert nt.apply_all(LOGITS, s).kept[draw(LOGITS, s)]
        assert draw(LOGITS, SamplingSettings(do_sample=True, top_k=1, seed=seed)) == 0


# --- tables for the charts ----------------------------------------------------------------


def test_chart_frames():
    d = nt.StepDistribution(0, LOGITS, softmax(LOGITS), chosen=4)
    text = str
    df = ch.candidates_frame(d, 2, text)
    assert df["id"].tolist()[0] == 0 and df["id"].tolist()[-1] == 4  # chosen appended
    assert df["rank"].tolist()[-1] == 5 and df["chosen"].tolist() == [False, False, True]
    f = nt.apply_top_k(d.probs, 1)
    fdf = ch.filter_frame(d.probs, f, [0, 1, 2], text)
    assert fdf["status"].tolist() == ["kept", "cut", "cut"]
    assert fdf["after"].tolist()[0] == pytest.approx(1.0)
    ch.filter_chart(fdf, "top-k", 0.3).to_dict()
    # Side by side, the filters share one x range: the largest value any of them draws
    # (top-k 1 renormalises the top token to 1.0; top-p 1.0 keeps the raw probabilities).
    plain = ch.filter_frame(d.probs, nt.apply_top_p(d.probs, 1.0), [0, 1, 2], text)
    x_max = ch.common_x_max([fdf, plain])
    assert x_max == pytest.approx(1.0)
    for frame in (fdf, plain):
        spec = ch.filter_chart(frame, "f", None, x_max).to_dict()
        assert spec["layer"][0]["encoding"]["x"]["scale"]["domain"] == [0, x_max]
    lens = nt.SequenceLens(
        top_ids=np.array([[1, 2], [0, 2], [2, 0]]),
        top_probs=np.array([[0.6, 0.3], [0.5, 0.1], [0.9, 0.05]], np.float32),
        entropy=np.zeros(3, np.float32),
        next_prob=np.array([0.6, 0.05], np.float32),
        next_rank=np.array([1, 7]),
    )
    hdf = ch.heatmap_frame(lens, ["a", "b", "c"], text, 0, 3, per_position=True)
    assert len(hdf) == 6 and hdf["is_next"].tolist() == [True, False, False, False, False, False]
    assert hdf["value"].max() == 1.0 and hdf["value"].tolist()[1] == pytest.approx(0.5)
    assert hdf["next_token"].tolist()[-1] == "(end of the run)"
    ch.heatmap_chart(hdf, True).to_dict()
    row = np.array([0.7, 0.1, 0.15, 0.05], np.float32)
    adf = ch.attention_frame(row, ["<s>", "x", "y", "z"], hidden=1, n=2)
    assert adf["key"].tolist() == ["2: y", "1: x"]
    with pytest.raises(ValueError):
        nt.SequenceLens(
            lens.top_ids, lens.top_probs, lens.entropy, lens.next_prob[:1], lens.next_rank
        )


def test_visible_whitespace():
    assert tv.visible("a b\nc\td") == "a·b↵c→d"


# --- the real model -----------------------------------------------------------------------

PROMPT = "The old wizard walked through the forest"


@pytest.fixture(scope="module")
def run(smollm2):
    from lib.model.generation import generate

    return generate(smollm2, PROMPT, 8)


def test_lens_distribution_equals_the_runs_stored_probabilities(smollm2, run):
    for s in range(run.n_steps):
        d = nt.step_distribution(smollm2, run, s)
        assert d.chosen == int(run.generated_ids[s])
        np.testing.assert_allclose(d.probs[run.top_ids[s]], run.top_probs[s], atol=1e-4)
        assert d.probs[d.chosen] == pytest.approx(float(run.chosen_prob[s]), abs=1e-4)
        assert d.entropy == pytest.approx(float(run.entropy[s]), abs=1e-3)
        assert rank(d.probs, d.chosen) == 1  # the run is greedy
    after = nt.step_distribution(smollm2, run, run.n_steps)
    assert after.chosen is None and after.probs.shape == (49152,)
    with pytest.raises(IndexError):
        nt.step_distribution(smollm2, run, run.n_steps + 1)


def test_sequence_lens_matches_the_run(smollm2, run):
    lens = nt.sequence_lens(smollm2, run.token_ids, k=10, chunk=3)  # chunks cross steps
    T, P = len(run.token_ids), run.prompt_len
    assert lens.top_ids.shape == (T, 10) and lens.next_rank.shape == (T - 1,)
    gen = slice(P - 1, T - 1)  # the positions whose next token was generated
    np.testing.assert_array_equal(lens.top_ids[gen], run.top_ids[:, :10])
    np.testing.assert_allclose(lens.top_probs[gen], run.top_probs[:, :10], atol=1e-4)
    np.testing.assert_allclose(lens.next_prob[gen], run.chosen_prob, atol=1e-4)
    np.testing.assert_allclose(lens.entropy[gen], run.entropy, atol=1e-3)
    assert (lens.next_rank[gen] == 1).all()  # greedy: always the first choice
    assert (lens.next_rank[: P - 1] >= 1).all()


def test_next_token_adds_the_previewed_token_and_keeps_the_rest(smollm2, run):
    from lib.model.generation import generate

    after = nt.step_distribution(smollm2, run, run.n_steps)
    for seed in (0, 1, 2):
        s = SamplingSettings(do_sample=True, temperature=1.5, top_k=50, seed=seed)
        longer = generate(
            smollm2, PROMPT, run.n_steps + 1, s, forced_tokens=nt.next_token_forced(run)
        )
        np.testing.assert_array_equal(longer.token_ids[:-1], run.token_ids)
        assert int(longer.token_ids[-1]) == draw(after.logits, s)  # what the page previews
        again = generate(
            smollm2, PROMPT, run.n_steps + 1, s, forced_tokens=nt.next_token_forced(run)
        )
        np.testing.assert_array_equal(again.token_ids, longer.token_ids)  # same seed, same draw


def test_branching_keeps_both_branches_intact(smollm2, run):
    from lib.model.generation import generate

    before = {k: getattr(run, k).copy() for k in ("token_ids", "attention", "top_probs")}
    step = 3
    alt = int(run.top_ids[step, 1])  # the model's second choice
    forced = nt.branch_forced(run, step, alt)
    assert forced == (*run.generated_ids[:step].tolist(), alt)
    branch = generate(smollm2, PROMPT, run.n_steps, forced_tokens=forced)
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(run, k), v)  # the original is untouched
    np.testing.assert_array_equal(branch.generated_ids[:step], run.generated_ids[:step])
    assert int(branch.generated_ids[step]) == alt != int(run.generated_ids[step])
    # Up to and including the branch step both saw the same tokens: same attention.
    np.testing.assert_allclose(branch.attention[: step + 1], run.attention[: step + 1], atol=1e-5)
    np.testing.assert_allclose(branch.top_probs[: step + 1], run.top_probs[: step + 1], atol=1e-5)
    # The first step after it has the new token as its query.
    assert not np.allclose(branch.attention[step + 1], run.attention[step + 1], atol=1e-4)
    with pytest.raises(IndexError):
        nt.branch_forced(run, run.n_steps, alt)


def test_tokenizer_view(smollm2):
    tok = smollm2.tokenizer
    ids = tok("a\tb\n  c<|im_start|>", split_special_tokens=False)["input_ids"]
    split = tv.split_tokens(tok, ids)
    joined = "".join(split.texts)
    assert "→" in joined and "↵" in joined and "·c" in joined
    assert split.special.tolist()[-1] and not split.special[:-1].any()
    assert split.pieces[-1] == "<|im_start|>"
    assert [r["id"] for r in split.rows()] == list(ids)
    assert tv.vocabulary_size(tok) == 49152
    roles = {r["role"]: r["id"] for r in tv.special_tokens(tok)}
    assert roles["eos_token"] == 2
