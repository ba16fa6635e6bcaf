"""Zone thresholds set on a corpus instead of by hand.

The zone rules describe each zone in words ("high local mass, low entropy"); here "high" means
in the corpus's top quarter and "low" in its bottom quarter, measured over the tokens where
the number can be large at all: long mass needs keys 100 or more tokens back from the query
that predicted the token (position > 100), mid mass keys 10 or more back (position > 10);
earlier tokens would pull every quantile to 0. The peak mass is the top
quarter of the histogram's inner bins. `python -m lib.atlas calibrate` writes the result to
`lib/analysis/zone_rules.json`, which the app reads.
"""

from __future__ import annotations

import numpy as np

from lib.analysis.fingerprint import DIMENSIONS, LOCAL, MID, ZoneRules

HIGH, LOW = 0.75, 0.25  # "high" = the top quarter, "low" = the bottom quarter


def calibrate(vectors: np.ndarray, positions: np.ndarray, what: str) -> ZoneRules:
    """Rules from fingerprints (N, 20) of tokens at `positions` (N,) of their texts."""
    v = np.asarray(vectors, dtype=np.float64)
    pos = np.asarray(positions)
    col = {name: v[:, i] for i, name in enumerate(DIMENSIONS)}
    # The token at position p was predicted by query p - 1, whose furthest key is p - 1 back.
    far, mid = pos > MID, pos > LOCAL
    if far.sum() < 20 or mid.sum() < 20:
        raise ValueError("Too few tokens 100+ positions into their texts to calibrate on.")
    inner = v[:, DIMENSIONS.index("hist_1") : DIMENSIONS.index("hist_7")]
    return ZoneRules(
        syntax_local=round(float(np.quantile(col["local_mass"], HIGH)), 4),
        syntax_entropy=round(float(np.quantile(col["entropy"], LOW)), 4),
        long_mass=round(float(np.quantile(col["long_mass"][far], HIGH)), 4),
        mid_mass=round(float(np.quantile(col["mid_mass"][mid], HIGH)), 4),
        peak_mass=round(float(np.quantile(inner, HIGH)), 4),
        source=f"calibrated on {what}: 'high' = the top quarter, 'low' = the bottom quarter",
    )
