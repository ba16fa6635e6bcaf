"""A written token's attention, as the service sends it with the token.

The rows are the ones the app captures for the token: the query before it, every layer
and head, over the keys it could see. What is sent is their mean over layers and heads
(the row the attention graph's "all heads" view and the fingerprint read), cut to its `k`
largest weights, with the token's fingerprint and zone: the same numbers the app's
pages and the atlas compute from the same run.
"""

from __future__ import annotations

import numpy as np

from lib.analysis.fingerprint import fingerprint, zone


def attention_token(rows: np.ndarray, k: int) -> dict:
    """rows (L, H, K): one token's attention rows over its K keys -> the top-k key
    positions (largest weight first; ties by position), their weights, the fingerprint
    (20 numbers) and its zone."""
    if rows.ndim != 3 or rows.shape[2] < 1:
        raise ValueError(f"rows must be (L, H, K) with K >= 1, got {rows.shape}")
    mean = rows.mean(axis=(0, 1))
    top = np.argsort(-mean, kind="stable")[:k]
    fp = fingerprint(rows)
    return {
        "positions": top.tolist(),
        "weights": mean[top].astype(float).tolist(),
        "fingerprint": fp.astype(float).tolist(),
        "zone": zone(fp),
    }
