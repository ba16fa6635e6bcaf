"""The interactive token sequence: the run's tokens as a clickable strip; hovering
a token shows what the model expected next there, clicking it opens the full candidates.

Candidates at a position come from what the app already holds: at the query positions of
generated steps, the top-20 stored while generating; elsewhere (the prompt), the top-10 of
the sequence lens. The actual next token's probability and rank are the lens's, over the
whole vocabulary (1 = the model's first choice).
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from lib.analysis.next_token import SequenceLens
from lib.labels import TokenText
from lib.model.result import GenerationResult

PICK = "token_pick"  # the strip's selection name, read back by `picked_position`
PER_ROW = 12  # tokens per line of the strip
HOVER_TOP = 3  # candidates in a token's tooltip


def candidates_at(
    r: GenerationResult, lens: SequenceLens, position: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """(ids (K,), probabilities (K,), where they come from) after `position`."""
    s = position - (r.prompt_len - 1)
    if 0 <= s < r.n_steps:
        return r.top_ids[s], r.top_probs[s], f"the top {r.top_ids.shape[1]} stored while generating"
    return lens.top_ids[position], lens.top_probs[position], f"the top {lens.top_ids.shape[1]}"


def position_frame(
    r: GenerationResult, lens: SequenceLens, position: int, text: TokenText
) -> pd.DataFrame:
    """The candidates after `position`, most likely first, in `candidates_chart`'s columns
    (rank, id, token, probability, chosen = the token that actually came next, appended
    with its true rank when it is not among them)."""
    ids, probs, _ = candidates_at(r, lens, position)
    ids, probs = ids.tolist(), [float(p) for p in probs]
    ranks = list(range(1, len(ids) + 1))
    actual = int(r.token_ids[position + 1]) if position + 1 < len(r.token_ids) else None
    if actual is not None and actual not in ids:
        ids.append(actual)
        probs.append(float(lens.next_prob[position]))
        ranks.append(int(lens.next_rank[position]))
    return pd.DataFrame(
        {
            "rank": ranks,
            "id": ids,
            "token": [f"{k}. {text(i)}" for k, i in zip(ranks, ids, strict=True)],
            "probability": probs,
            "chosen": [i == actual for i in ids],
        }
    )


def strip_frame(r: GenerationResult, lens: SequenceLens, text: TokenText) -> pd.DataFrame:
    """One row per token (the last has no next token to predict): where it sits in the
    strip, its text and part, and the tooltip: the model's top guesses after it and how
    the actual next token ranked."""
    rows = []
    T = len(r.token_ids)
    for i in range(T - 1):
        ids, probs, _ = candidates_at(r, lens, i)
        guesses = ", ".join(
            f"{text(t)} {p:.2f}" for t, p in zip(ids[:HOVER_TOP], probs, strict=False)
        )
        rank = int(lens.next_rank[i])
        rows.append(
            {
                "position": i,
                "token": r.texts[i],
                "part": "prompt" if i < r.prompt_len else "generated",
                "col": i % PER_ROW,
                "row": i // PER_ROW,
                "model expected next": guesses,
                "actually next": r.texts[i + 1],
                "its rank": rank,
                "its probability": float(lens.next_prob[i]),
                "guessed": "yes, first choice" if rank == 1 else f"rank {rank}",
            }
        )
    return pd.DataFrame(rows)


def strip_chart(df: pd.DataFrame) -> alt.LayerChart:
    """Token chips in reading order; colour = how well the model guessed the next token."""
    pick = alt.selection_point(fields=["position"], name=PICK, on="click", empty=False)
    x = alt.X("col:O", axis=None)
    y = alt.Y("row:O", axis=None)
    tooltip = [
        alt.Tooltip("position:Q"),
        alt.Tooltip("token:N"),
        alt.Tooltip("model expected next:N"),
        alt.Tooltip("actually next:N"),
        alt.Tooltip("its probability:Q", format=".4f"),
        alt.Tooltip("guessed:N", title="was it guessed"),
    ]
    base = alt.Chart(df).encode(x=x, y=y, tooltip=tooltip)
    chips = (
        base.mark_rect(cornerRadius=4, stroke="#1b1f24")
        .encode(
            color=alt.Color(
                "its probability:Q",
                scale=alt.Scale(scheme="blues", domain=[0, 1]),
                title="P(actual next)",
                legend=alt.Legend(titleLimit=300),  # whole, in projector mode too
            ),
            strokeWidth=alt.condition(pick, alt.value(2.5), alt.value(0)),
            opacity=alt.condition(alt.datum.part == "prompt", alt.value(0.55), alt.value(1.0)),
        )
        .add_params(pick)
    )
    words = base.mark_text(fontSize=12, limit=70).encode(
        text="token:N",
        color=alt.condition(
            alt.datum["its probability"] > 0.5, alt.value("white"), alt.value("#1b1f24")
        ),
    )
    rows = int(df["row"].max()) + 1 if len(df) else 1
    return alt.layer(chips, words).properties(
        width=alt.Step(78), height=alt.Step(30) if rows else 30
    )


def picked_position(event, n: int) -> int | None:
    """The clicked token's position from the strip's selection event, or None."""
    try:
        position = int(event["selection"][PICK][0]["position"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return position if 0 <= position < n else None
