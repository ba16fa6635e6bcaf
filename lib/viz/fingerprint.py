"""The attention fingerprints of a run: the text coloured by zone, and the 20 numbers."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from lib.analysis.fingerprint import DIMENSIONS, ZONES, Fingerprints, ZoneRules, default_rules
from lib.labels import step_label
from lib.viz.lens import FULL_AXIS

ZONE_COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#d62728", "#b0b0b0"]  # in ZONES order
TOKENS_PER_LINE = 10


def zone_rules_text(rules: ZoneRules | None = None) -> str:
    """The zone rules with the thresholds in use, and how they were set (Markdown)."""
    r = rules or default_rules()
    return f"""
Distances count tokens back from the query (0 = itself). Rules, first match wins:

- **syntax_floor**: local mass (distance 0-9) at least {r.syntax_local:.3g} and entropy at
  most {r.syntax_entropy:.3g}
- **long_range**: long mass (distance 100 or more) at least {r.long_mass:.3g}
- **semantic_bridge**: mid mass (distance 10-99) at least {r.mid_mass:.3g}
- **structure_ripple**: two peaks (bins of at least {r.peak_mass:.3g}, larger than their
  neighbours) with a bin between them, among the inner bins 1-6 of the 8-bin position
  histogram (the first bin holds the sink and the last the latest tokens for nearly every
  token, so they are left out)
- **diffuse**: anything else

Entropy is each head's entropy divided by log(number of keys), averaged over heads.
Thresholds {r.source}.
"""


def zone_strip(fp: Fingerprints, tokens: Sequence[str]) -> alt.LayerChart:
    """The generated text left to right, ten tokens a line, each coloured by its zone."""
    idx = np.arange(len(tokens))
    df = pd.DataFrame(
        {
            "i": idx,
            "line": idx // TOKENS_PER_LINE,
            "col": idx % TOKENS_PER_LINE,
            "token": list(tokens),
            "zone": fp.zones,
        }
    )
    for j, name in enumerate(DIMENSIONS[:4]):
        df[name] = fp.vectors[:, j].astype(np.float64)
    colour = alt.Color(
        "zone:N", scale=alt.Scale(domain=list(ZONES), range=ZONE_COLOURS), title="zone"
    )
    tips = ["i:Q", "token:N", "zone:N"] + [
        alt.Tooltip(f"{d}:Q", format=".3f") for d in DIMENSIONS[:4]
    ]
    base = alt.Chart(df).encode(
        x=alt.X("col:O", axis=None), y=alt.Y("line:O", axis=None), tooltip=tips
    )
    boxes = base.mark_rect(cornerRadius=4, opacity=0.85).encode(color=colour)
    words = base.mark_text(fontSize=13, limit=76).encode(text="token:N")
    return (boxes + words).properties(width=alt.Step(80), height=alt.Step(28))


def dimensions_heatmap(fp: Fingerprints, tokens: Sequence[str]) -> alt.Chart:
    """All 20 numbers of every token (rows: tokens, columns: dimensions)."""
    names = [step_label(i, t) for i, t in enumerate(tokens)]
    long = pd.DataFrame(
        {
            "token": np.repeat(names, len(DIMENSIONS)),
            "dimension": np.tile(DIMENSIONS, len(names)),
            "value": fp.vectors.ravel().astype(np.float64),
        }
    )
    return (
        alt.Chart(long)
        .mark_rect()
        .encode(
            x=alt.X(
                "dimension:O",
                sort=list(DIMENSIONS),
                axis=alt.Axis(labelAngle=-60, labelOverlap=False),
            ),
            y=alt.Y("token:O", sort=names, title="generated token", axis=FULL_AXIS),
            color=alt.Color("value:Q", scale=alt.Scale(scheme="greens", domain=[0, 1])),
            tooltip=["token:N", "dimension:N", alt.Tooltip("value:Q", format=".3f")],
        )
        .properties(width=alt.Step(22), height=alt.Step(14))
    )


def fingerprint_table(fp: Fingerprints, tokens: Sequence[str]) -> pd.DataFrame:
    """Token, zone and the 20 numbers, one row per generated token."""
    df = pd.DataFrame(fp.vectors, columns=list(DIMENSIONS))
    df.insert(0, "zone", list(fp.zones))
    df.insert(0, "token", list(tokens))
    return df
