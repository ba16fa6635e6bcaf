"""Head ablation: head labels, the before/after table and chart, and the captions.

Token text is data (axis labels, tooltips), never markup.
"""

from __future__ import annotations

import re

import altair as alt
import pandas as pd

from lib.analysis.ablation import Head, HeadAblation, ProbeAblation
from lib.labels import TokenText

BEFORE, AFTER = "all heads on", "heads switched off"
COLOURS = {BEFORE: "#1f77b4", AFTER: "#ff7f50"}
RUN_MARK = "  ◀ the run's token"
_LABEL = re.compile(r"^L(\d+) H(\d+)$")


def head_label(head: Head) -> str:
    """(18, 6) -> "L18 H6"."""
    return f"L{head[0]} H{head[1]}"


def parse_head(label: str) -> Head | None:
    """ "L18 H6" -> (18, 6); None for anything else."""
    m = _LABEL.match(label.strip())
    return (int(m[1]), int(m[2])) if m else None


def heads_text(heads: tuple[Head, ...]) -> str:
    """ "L18 H6", "L18 H6 and L19 H2", "L3 H1, L18 H6 and L19 H2"."""
    labels = [head_label(h) for h in heads]
    return labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]


def ablation_frame(ab: HeadAblation, text: TokenText) -> pd.DataFrame:
    """Two rows per shown token (before, after): its probability and whether the run wrote it.

    `token` is the display text, made unique with the id when two tokens look the same, and
    marked with RUN_MARK when it is the run's token.
    """
    texts = [text(int(i)) for i in ab.shown_ids]
    ids = [int(i) for i in ab.shown_ids]
    labels = [t if texts.count(t) == 1 else f"{t} (#{i})" for t, i in zip(texts, ids, strict=True)]
    labels = [f"{t}{RUN_MARK}" if i == ab.target else t for t, i in zip(labels, ids, strict=True)]
    rows = []
    for order, (label, i) in enumerate(zip(labels, ab.shown_ids, strict=True)):
        for when, probs in ((BEFORE, ab.shown_before), (AFTER, ab.shown_after)):
            rows.append(
                {
                    "order": order,
                    "token": label,
                    "id": int(i),
                    "model": when,
                    "probability": float(probs[order]),
                    "written by the run": int(i) == ab.target,
                }
            )
    return pd.DataFrame(rows)


def ablation_chart(df: pd.DataFrame) -> alt.Chart:
    """Grouped horizontal bars: each token's probability with all heads, then without some."""
    order = df.drop_duplicates("token").sort_values("order")["token"].tolist()
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y(
                "token:N", sort=order, title=None, axis=alt.Axis(labelLimit=180, labelOverlap=False)
            ),
            yOffset=alt.YOffset("model:N", sort=[BEFORE, AFTER]),
            x=alt.X("probability:Q", title="probability", scale=alt.Scale(domainMin=0)),
            color=alt.Color(
                "model:N",
                scale=alt.Scale(domain=list(COLOURS), range=list(COLOURS.values())),
                title=None,
                legend=alt.Legend(orient="top"),
            ),
            tooltip=[
                alt.Tooltip("token:N"),
                alt.Tooltip("id:Q", title="id"),
                alt.Tooltip("model:N"),
                alt.Tooltip("probability:Q", format=".5f"),
                alt.Tooltip("written by the run:N"),
            ],
        )
        .properties(height=alt.Step(11))
    )


def step_caption(ab: HeadAblation, step: int) -> str:
    """What the chart shows and how much switching the heads off changed."""
    what = (
        f"Step {step + 1}: the tokens the model ranked highest with all heads on, then any that "
        f"entered the top {ab.before_ids.size} with {heads_text(ab.heads)} switched off. "
        f"Probabilities at temperature 1, unfiltered; ◀ marks the token the run wrote. "
    )
    if ab.target is not None:
        what += (
            f"The run's token: {ab.target_before:.3f} (rank {ab.target_rank_before}) before, "
            f"{ab.target_after:.3f} (rank {ab.target_rank_after}) after. "
        )
    top = "changes" if ab.top_changed else "stays the same"
    return what + f"The most likely token {top}; KL divergence {ab.kl_bits:.3f} bits."


def probe_caption(pa: ProbeAblation) -> str:
    (f1, s1), (f2, s2) = pa.losses(False), pa.losses(True)
    n = pa.n_random
    return (
        f"The probe: {n} random tokens, then the same {n} again. Mean loss (nats) on predicting "
        f"tokens 2 to {n} of each repeat; the first token of each repeat is left out, as nothing "
        f"predicts it. First repeat {f1:.2f} → {f2:.2f}, second repeat {s1:.2f} → {s2:.2f} "
        f"with {heads_text(pa.heads)} switched off. If those heads do the copying, the second "
        "repeat's loss rises toward the first's; the first repeat shows what the heads do "
        "where there is nothing to copy."
    )
