"""The logit lens as a table (one step, every layer) and an overview chart (every step)."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from lib.analysis.logit_lens import LogitLens, readout_names
from lib.labels import TokenText

FULL_AXIS = alt.Axis(labelOverlap=False, labelLimit=160)  # every token gets its label


def lens_table(lens: LogitLens, step: int, text: TokenText) -> pd.DataFrame:
    """One row per readout (embeddings, then after each layer) for one step."""
    names = readout_names(lens.n_readouts - 1)
    return pd.DataFrame(
        {
            "after": names,
            "top prediction": [text(i) for i in lens.top_ids[step, :, 0]],
            "its probability": lens.top_probs[step, :, 0].astype(np.float64),
            "P(final token)": lens.final_prob[step].astype(np.float64),
            "rank of final token": lens.final_rank[step],
            "next 4": ["  ".join(text(i) for i in row[1:]) for row in lens.top_ids[step]],
        }
    )


def lens_overview(lens: LogitLens, generated: Sequence[str]) -> alt.Chart:
    """Probability of each step's final prediction after every layer (rows: steps)."""
    n = len(generated)
    names = readout_names(lens.n_readouts - 1)
    steps = [f"{i + 1}: {t}" for i, t in enumerate(generated)]
    grid = pd.DataFrame(
        {
            "step": np.repeat(steps, lens.n_readouts),
            "readout": np.tile(np.arange(lens.n_readouts), n),
            "after": np.tile(names, n),
            "P(final token)": lens.final_prob.ravel().astype(np.float64),
            "rank": lens.final_rank.ravel(),
        }
    )
    return (
        alt.Chart(grid)
        .mark_rect()
        .encode(
            x=alt.X("readout:O", title="readout (0 = embeddings, i = after layer i-1)"),
            y=alt.Y("step:O", sort=steps, title="generated token", axis=FULL_AXIS),
            color=alt.Color("P(final token):Q", scale=alt.Scale(scheme="blues", domain=[0, 1])),
            tooltip=["step:N", "after:N", alt.Tooltip("P(final token):Q", format=".3f"), "rank:Q"],
        )
        .properties(width=alt.Step(16), height=alt.Step(14))
    )
