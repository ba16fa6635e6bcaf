"""Logit lens, attention fingerprints and weight views: hand-built cases and the real model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.analysis.fingerprint import (
    DIMENSIONS,
    ZONES,
    ZoneRules,
    fingerprint,
    histogram_peaks,
    layer_groups,
    run_fingerprints,
    zone,
)
from lib.analysis.logit_lens import logit_lens, settles_at
from lib.analysis.weights import (
    embedding_pca,
    layer_ov_spectra,
    ov_singular_values,
    pca_2d,
)
from lib.model.generation import generate
from tests.tiny import tiny_lm

# ---- fingerprints ----

HAND = ZoneRules()  # the hand-set thresholds: these tests are about the rules' logic


def rows_on(K: int, keys: dict[int, float], L: int = 8, H: int = 2) -> np.ndarray:
    """(L, H, K) rows that all put the given weights on the given keys."""
    r = np.zeros((L, H, K), dtype=np.float32)
    for k, w in keys.items():
        r[..., k] = w
    return r


def test_fingerprint_layout():
    assert len(DIMENSIONS) == 20
    assert DIMENSIONS[:4] == ("local_mass", "mid_mass", "long_mass", "entropy")


def test_attending_to_itself_is_local_and_focused():
    fp = fingerprint(rows_on(20, {19: 1.0}))
    assert fp.shape == (20,)
    assert fp[:4].tolist() == pytest.approx([1, 0, 0, 0])
    assert fp[4:12].tolist() == pytest.approx([0] * 7 + [1])  # the last bin holds the query
    assert fp[12:].tolist() == pytest.approx([0] * 8)
    assert zone(fp, HAND) == "syntax_floor"


def test_uniform_attention_spreads_over_every_band():
    K = 200
    fp = fingerprint(np.full((8, 2, K), 1 / K, dtype=np.float32))
    assert fp[:3].tolist() == pytest.approx([10 / K, 90 / K, 100 / K])
    assert fp[3] == pytest.approx(1.0)
    assert fp[4:12].tolist() == pytest.approx([1 / 8] * 8)
    assert fp[12:].tolist() == pytest.approx([1.0] * 8)
    assert zone(fp, HAND) == "long_range"


def test_distance_bands_and_first_token_hiding():
    K = 50
    fp = fingerprint(rows_on(K, {0: 0.5, K - 1: 0.5}))  # sink 49 tokens back, and itself
    assert fp[:3].tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert fp[4] == pytest.approx(0.5) and fp[11] == pytest.approx(0.5)
    hidden = fingerprint(rows_on(K, {0: 0.5, K - 1: 0.5}), exclude_first=True)
    assert hidden[:4].tolist() == pytest.approx([1, 0, 0, 0])  # renormalised onto itself
    assert hidden[4] == pytest.approx(0.0)


def test_layer_entropy_follows_the_layer_groups():
    K = 32
    rows = np.full((8, 2, K), 1 / K, dtype=np.float32)
    rows[:4] = 0.0
    rows[:4, :, K - 1] = 1.0  # first four layers focused, last four uniform
    fp = fingerprint(rows)
    assert fp[12:].tolist() == pytest.approx([0, 0, 0, 0, 1, 1, 1, 1], abs=1e-6)
    assert fp[3] == pytest.approx(0.5, abs=1e-6)


def test_layer_groups():
    groups = layer_groups(30)
    assert len(groups) == 8
    assert np.concatenate(groups).tolist() == list(range(30))
    assert {len(g) for g in groups} <= {3, 4}
    assert [g.tolist() for g in layer_groups(3)] == [[0], [0], [0], [1], [1], [1], [2], [2]]


def fp_with(local=0.0, mid=0.0, long=0.0, entropy=0.5, hist=(0.125,) * 8) -> np.ndarray:
    return np.array([local, mid, long, entropy, *hist, *([0.5] * 8)], dtype=np.float32)


def test_zone_rules():
    assert zone(fp_with(local=0.7, mid=0.3, entropy=0.4), HAND) == "syntax_floor"
    assert zone(fp_with(local=0.7, mid=0.3, entropy=0.9), HAND) == "diffuse"  # local but spread
    assert zone(fp_with(local=0.3, long=0.5), HAND) == "long_range"
    assert zone(fp_with(local=0.5, mid=0.5), HAND) == "semantic_bridge"
    ripple = (0.3, 0.05, 0.05, 0.25, 0.05, 0.05, 0.25, 0.0)
    assert histogram_peaks(np.array(ripple)) == [0, 3, 6]
    assert zone(fp_with(local=0.3, mid=0.3, long=0.3, hist=ripple), HAND) == "structure_ripple"
    adjacent = (0.0, 0.0, 0.3, 0.1, 0.35, 0.1, 0.1, 0.05)  # peaks at 2 and 4: separated
    assert zone(fp_with(local=0.3, mid=0.3, hist=adjacent), HAND) == "structure_ripple"
    one_peak = (0.0, 0.0, 0.1, 0.2, 0.4, 0.2, 0.1, 0.0)
    assert zone(fp_with(local=0.3, mid=0.3, hist=one_peak), HAND) == "diffuse"


def test_run_fingerprints_on_a_tiny_model():
    lm = tiny_lm()
    r = generate(lm, "the old wizard walked", 5)
    for hide in (False, True):
        fps = run_fingerprints(r, exclude_first=hide)
        assert fps.vectors.shape == (r.n_steps, 20)
        assert set(fps.zones) <= set(ZONES)
        assert np.allclose(fps.vectors[:, :3].sum(1), 1, atol=1e-5)  # the bands cover all
        assert np.allclose(fps.vectors[:, 4:12].sum(1), 1, atol=1e-5)


# ---- logit lens ----


def test_settles_at():
    rank = np.array([[4, 1, 3, 1, 1], [1, 1, 1, 1, 1], [6, 5, 4, 2, 1]])  # 1 = top
    assert settles_at(rank).tolist() == [3, 0, 4]


def test_logit_lens_final_readout_is_the_model_output(smollm2):
    r = generate(smollm2, "The old wizard walked through the forest", 8)
    lens = logit_lens(smollm2, r)
    L = smollm2.n_layers
    assert lens.top_ids.shape == (r.n_steps, L + 1, 5)
    assert (lens.top_ids[:, -1, 0] == r.top_ids[:, 0]).all()
    assert (lens.final_ids == r.generated_ids).all()  # greedy: the top-1 was generated
    assert np.allclose(lens.top_probs[:, -1, 0], r.top_probs[:, 0], atol=1e-4)
    assert (lens.final_rank[:, -1] == 1).all()  # the last readout is the model's output
    assert (lens.settles_at <= L).all()
    # Embeddings alone rarely predict the next token: most steps settle late.
    assert np.median(lens.settles_at) > L // 2


def test_logit_lens_on_a_tiny_model_matches_its_logits():
    lm = tiny_lm()
    r = generate(lm, "the old wizard walked", 4)
    lens = logit_lens(lm, r, top_k=3)
    assert (lens.top_ids[:, -1, 0] == r.top_ids[:, 0]).all()
    # An intermediate readout equals norm + unembedding applied by hand.
    ids = lm.batch(r.token_ids[: r.prompt_len])
    with torch.no_grad():
        h = lm.model(input_ids=ids, output_hidden_states=True).hidden_states[1][0, -1]
        logits = lm.model.lm_head(lm.model.model.norm(h))
    assert int(lens.top_ids[0, 1, 0]) == int(logits.argmax())


# ---- weight views ----


def test_pca_2d_finds_the_main_direction():
    t = np.linspace(-1, 1, 20)[:, None]
    x = np.hstack([3 * t, -3 * t, 0.01 * np.cos(7 * t)])
    coords, explained = pca_2d(x)
    assert coords.shape == (20, 2)
    assert explained[0] > 0.99
    assert np.corrcoef(coords[:, 0], t[:, 0])[0, 1] ** 2 > 0.999


def test_ov_singular_values_match_the_full_product():
    rng = np.random.default_rng(0)
    H, KV, d, hidden = 4, 2, 3, 8
    w_v, w_o = rng.normal(size=(KV * d, hidden)), rng.normal(size=(hidden, H * d))
    gain = rng.uniform(0.5, 2.0, size=hidden)
    sv = ov_singular_values(w_v, w_o, H, gain)
    for h in range(H):
        g = h // (H // KV)
        ov = w_o[:, h * d : (h + 1) * d] @ w_v[g * d : (g + 1) * d] @ np.diag(gain)
        assert sv[h] == pytest.approx(np.linalg.svd(ov, compute_uv=False)[:d], rel=1e-5)


def test_weight_views_on_a_tiny_model():
    lm = tiny_lm()
    sv = layer_ov_spectra(lm, 1)
    assert sv.shape == (4, 8) and (np.diff(sv, axis=1) <= 1e-6).all()
    pca = embedding_pca(lm, np.array([3, 4, 5, 3, 6, 7]))
    assert pca.token_ids.tolist() == [3, 4, 5, 6, 7] and pca.coords.shape == (5, 2)
    # the axes are the vocabulary sample's (special tokens left out), and a run token
    # sits exactly where the same token sits in the sample
    special = set(lm.tokenizer.all_special_ids)
    assert not special & set(pca.vocab_ids.tolist()) and len(pca.vocab_ids) > 5
    table = lm.embedding_matrix().float().numpy()
    sample = table[pca.vocab_ids]
    var = np.linalg.svd(sample - sample.mean(0), compute_uv=False) ** 2
    np.testing.assert_allclose(pca.explained, var[:2] / var.sum(), rtol=1e-4)
    where = {int(t): i for i, t in enumerate(pca.vocab_ids)}
    for i, t in enumerate(pca.token_ids.tolist()):
        np.testing.assert_allclose(pca.coords[i], pca.vocab_coords[where[t]], atol=1e-5)
