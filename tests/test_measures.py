"""The shared measures (lib/measures.py), each against a computation by hand."""

from __future__ import annotations

import numpy as np
import pytest

from lib.measures import entropy_bits, hide_sink, normalise, rank, ranks, softmax


def test_hide_sink_zeroes_key_zero_and_renormalises_each_row():
    rows = np.array([[0.5, 0.25, 0.25, 0.0], [0.9, 0.05, 0.03, 0.02], [1.0, 0.0, 0.0, 0.0]])
    out = hide_sink(rows)
    assert out.dtype == np.float32 and out.shape == rows.shape
    assert (out[:, 0] == 0.0).all()  # hidden keys are exactly zero
    np.testing.assert_allclose(out[0], [0, 0.5, 0.5, 0], atol=1e-7)  # 0.25 / 0.5 by hand
    np.testing.assert_allclose(out[1], [0, 0.5, 0.3, 0.2], atol=1e-6)  # each / 0.1
    assert (out[2] == 0.0).all()  # nothing left to show: the row stays zero, no NaN
    np.testing.assert_allclose(out[:2].sum(axis=1), 1.0, atol=1e-6)  # sums to one when shown
    assert rows[0, 0] == 0.5  # the input is not changed


def test_hide_sink_works_on_any_leading_shape():
    rng = np.random.default_rng(0)
    heads = rng.dirichlet(np.ones(7), size=(3, 4, 5)).astype(np.float32)  # (L, H, Q, K)
    out = hide_sink(heads)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
    by_hand = heads[..., 1:] / heads[..., 1:].sum(-1, keepdims=True)
    np.testing.assert_allclose(out[..., 1:], by_hand, rtol=1e-5)


def test_entropy_in_bits():
    assert entropy_bits(np.array([0.5, 0.5])) == pytest.approx(1.0)
    assert entropy_bits(np.array([1.0, 0.0])) == 0.0
    assert entropy_bits(np.full(8, 1 / 8)) == pytest.approx(3.0)
    batch = entropy_bits(np.array([[0.5, 0.5, 0.0, 0.0], [0.25] * 4]), axis=-1)
    np.testing.assert_allclose(batch, [1.0, 2.0])


def test_rank_one_is_the_most_likely_and_ties_share_a_rank():
    p = np.array([0.5, 0.2, 0.2, 0.06, 0.04])
    assert [rank(p, i) for i in range(5)] == [1, 2, 2, 4, 5]
    probs = np.stack([p, p[::-1]])
    assert ranks(probs, np.array([0, 0])).tolist() == [1, 5]


def test_softmax_and_seed_normalisation():
    np.testing.assert_allclose(softmax(np.log([0.2, 0.3, 0.5])), [0.2, 0.3, 0.5], rtol=1e-6)
    assert softmax(np.array([1000.0, 1000.0])).tolist() == [0.5, 0.5]  # no overflow
    np.testing.assert_allclose(normalise(np.array([1.0, 3.0])), [0.25, 0.75], rtol=1e-6)
    assert normalise(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]
