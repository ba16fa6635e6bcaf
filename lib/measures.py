"""The measures every view shares, each defined once, so no two pages can disagree.

- `softmax`: probabilities from logits.
- `entropy_bits`: Shannon entropy in bits (0 = certain; k bits = as unsure as a uniform
  choice among 2^k tokens).
- `rank`: 1 is the most likely token; a token's rank is 1 + how many tokens are strictly
  more likely (tied tokens share a rank).
- `normalise`: x / (sum(x) + 1e-8), for the graph's separately normalised parts.
- `hide_sink`: the first-token sink rule. Most models park much of their attention on the
  first token; hiding it sets key 0 to exactly zero and renormalises every row over the
  other keys (a row with nothing left stays zero). Every view applies it to the rows it
  shows: the mean row when it shows a mean, each head's row when it shows heads.
"""

from __future__ import annotations

import numpy as np

NORM_EPS = 1e-8  # keeps an all-zero row at zero


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Probabilities from logits; subtracting the max keeps exp() from overflowing."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def entropy_bits(probs: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Shannon entropy in bits over `axis`; zero-probability tokens add nothing.

    A 1-D input gives a float, a batch of distributions an array.
    """
    p = np.asarray(probs, dtype=np.float64)
    terms = np.where(p > 0, -p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    out = terms.sum(axis=axis)
    return float(out) if np.ndim(out) == 0 else out.astype(np.float32)


def rank(probs: np.ndarray, token: int) -> int:
    """Rank of `token` in one distribution (V,): 1 = the most likely."""
    p = np.asarray(probs)
    return int((p > p[int(token)]).sum()) + 1


def ranks(probs: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """Rank of tokens[i] in probs[i] for a batch: probs (N, V), tokens (N,) -> (N,) int64."""
    p = np.asarray(probs)
    t = np.asarray(tokens, dtype=np.int64)
    chosen = p[np.arange(p.shape[0]), t]
    return ((p > chosen[:, None]).sum(axis=-1) + 1).astype(np.int64)


def normalise(x: np.ndarray) -> np.ndarray:
    """x / (sum(x) + 1e-8): the graph's normalisation, safe for an all-zero vector."""
    x = np.asarray(x, dtype=np.float32)
    return (x / (x.sum() + NORM_EPS)).astype(np.float32)


def hide_sink(rows: np.ndarray) -> np.ndarray:
    """Attention rows (..., K) with key 0 zeroed and each row renormalised over keys 1..K-1.

    Returns a new float32 array: hidden keys are exactly zero, every row with any weight
    left sums to one, and a row with none left (it could only see key 0) stays all zero.
    """
    p = np.array(rows, dtype=np.float32, copy=True)
    p[..., 0] = 0.0
    total = p.sum(axis=-1, keepdims=True)
    return np.divide(p, total, out=np.zeros_like(p), where=total > 0)
