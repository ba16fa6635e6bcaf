"""Vector arithmetic: the nearest tokens as bars, the tokens each word became, the caption."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from lib.analysis.analogy import Analogy
from lib.labels import TokenText


def equation_text(result: Analogy) -> str:
    """The equation as computed: "king − man + woman" (one leading space is implied)."""
    out = []
    for i, t in enumerate(result.terms):
        sign = "−" if t.sign < 0 else "+"
        out.append(f"{sign} {t.word}" if i or t.sign < 0 else t.word)
    return " ".join(out)


def neighbours_frame(result: Analogy, text: TokenText) -> pd.DataFrame:
    """One row per nearest token: rank (1 = nearest), token (display mode), id, cosine."""
    return pd.DataFrame(
        {
            "rank": result.top_rank.astype(np.int64),
            "token": [text(int(i)) for i in result.top_ids],
            "id": result.top_ids.astype(np.int64),
            "cosine": result.top_cos.astype(np.float64),
        }
    )


def neighbours_chart(frame: pd.DataFrame) -> alt.Chart:
    """Horizontal bars, nearest on top, length = cosine similarity with the sum."""
    # Two ids can write the same text (byte pieces), so each bar is labelled with its id too.
    labels = [f"{t}  (id {i})" for t, i in zip(frame["token"], frame["id"], strict=True)]
    data = frame.assign(label=labels)
    order = data.sort_values("rank", kind="stable")["label"].tolist()
    lo = min(0.0, float(frame["cosine"].min()))
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("label:N", sort=order, title=None, axis=alt.Axis(labelLimit=220)),
            x=alt.X("cosine:Q", title="cosine similarity", scale=alt.Scale(domain=[lo, 1])),
            tooltip=["rank:Q", "token:N", "id:Q", alt.Tooltip("cosine:Q", format=".3f")],
        )
        .properties(width=520, height=alt.Step(24))
    )


def terms_frame(result: Analogy, text: TokenText) -> pd.DataFrame:
    """One row per term: its sign, the word, the tokens it became, and its cosine with the sum."""
    return pd.DataFrame(
        {
            "sign": ["−" if t.sign < 0 else "+" for t in result.terms],
            "word": [t.word for t in result.terms],
            "tokens": [" | ".join(text(int(i)) for i in t.ids) for t in result.terms],
            "pieces": [" | ".join(t.pieces) for t in result.terms],
            "ids": [", ".join(str(int(i)) for i in t.ids) for t in result.terms],
            "n tokens": [len(t.ids) for t in result.terms],
            "cosine with the sum": result.term_cos.astype(np.float64),
        }
    )


def analogy_caption(result: Analogy, specials: bool, variants: bool) -> str:
    """What was computed, averaged and excluded, in numbers (plain text, no Markdown)."""
    multi = [t.word for t in result.terms if len(t.ids) > 1]
    parts = [
        f"Each word was tokenized with a leading space, as it appears mid-sentence. "
        f"The sum has length {result.vector_norm:.3f}; bars show the cosine of its angle "
        f"with each token's input embedding, over {result.n_candidates:,} candidate tokens."
    ]
    if multi:
        parts.append(
            f"{len(multi)} word(s) became several tokens ({', '.join(multi)}): each is "
            "represented by the mean of its tokens' embeddings."
        )
    hidden = ["every token of the input words"]
    if variants:
        hidden.append("their other single-token spellings (no space, other case)")
    if specials:
        hidden.append("special tokens")
    parts.append(f"Excluded from the answers: {', '.join(hidden)}: {len(result.excluded)} ids.")
    return " ".join(parts)
