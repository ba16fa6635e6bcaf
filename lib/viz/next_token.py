"""Altair charts for the next-token lens: candidates, filter panels, heatmap, attention rows.

Tables come first (plain pandas, tested), charts are thin encodings of them. Token text is
always data (axis labels, tooltips), never markup.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from lib.analysis.next_token import Filtered, SequenceLens, StepDistribution
from lib.labels import TokenText

CHOSEN = "#ff7f50"  # coral, as the token being written on the graph page
KEPT = "#1f77b4"
CUT = "#d62728"
BEFORE = "#c7cdd4"
MARK = "#111111"  # the token just sampled: outline and "◀ sampled"


def candidates_frame(dist: StepDistribution, n: int, text: TokenText) -> pd.DataFrame:
    """The n most likely tokens (plus the chosen one if it ranks lower), most likely first."""
    ids = dist.top(n).tolist()
    if dist.chosen is not None and dist.chosen not in ids:
        ids.append(dist.chosen)
    ranks = [int((dist.probs > dist.probs[i]).sum()) + 1 for i in ids]
    return pd.DataFrame(
        {
            "rank": ranks,
            "id": ids,
            "token": [f"{r}. {text(i)}" for r, i in zip(ranks, ids, strict=True)],
            "probability": [float(dist.probs[i]) for i in ids],
            "chosen": [i == dist.chosen for i in ids],
        }
    )


def sampled_frame(df: pd.DataFrame, highlight: int | None) -> pd.DataFrame:
    """`df` with a `sampled` column: True on the row of token id `highlight` (none if None)."""
    return df.assign(sampled=df["id"] == highlight if highlight is not None else False)


def sampled_marks(base: alt.Chart, x: str, dx: int = 3, text: str = "◀ sampled") -> list:
    """A black outline around the sampled token's bar (0 to `x`) and `text` after its end."""
    row = base.transform_filter(alt.datum.sampled)
    outline = row.mark_bar(fillOpacity=0, stroke=MARK, strokeWidth=2).encode(x=f"{x}:Q")
    label = row.mark_text(text=text, color=MARK, align="left", dx=dx, fontWeight="bold").encode(
        x=f"{x}:Q"
    )
    return [outline, label]


def candidates_chart(df: pd.DataFrame, highlight: int | None = None) -> alt.Chart | alt.LayerChart:
    """Horizontal bars, most likely on top; the token the run chose is coral; the token id
    `highlight` (the one just sampled) is outlined and marked "◀ sampled"."""
    order = df.sort_values("rank")["token"].tolist()
    df = sampled_frame(df, highlight)
    base = alt.Chart(df).encode(
        y=alt.Y(
            "token:N", sort=order, title=None, axis=alt.Axis(labelLimit=180, labelOverlap=False)
        ),
        tooltip=[
            alt.Tooltip("token:N", title="rank. token"),
            alt.Tooltip("id:Q", title="id"),
            alt.Tooltip("probability:Q", format=".5f"),
            alt.Tooltip("chosen:N", title="chosen by the run"),
        ],
    )
    bars = base.mark_bar().encode(
        x=alt.X("probability:Q", title="probability", scale=alt.Scale(domainMin=0)),
        color=alt.condition(alt.datum.chosen, alt.value(CHOSEN), alt.value(KEPT), legend=None),
    )
    if not df["sampled"].any():
        return bars.properties(height=alt.Step(18))
    return alt.layer(bars, *sampled_marks(base, "probability")).properties(height=alt.Step(18))


def filter_frame(
    before: np.ndarray, after: Filtered, ids: Sequence[int], text: TokenText
) -> pd.DataFrame:
    """One row per shown token: probability before and after the filter, kept or cut."""
    ids = [int(i) for i in ids]
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(ids) + 1),
            "id": ids,
            "token": [f"{r}. {text(i)}" for r, i in enumerate(ids, start=1)],
            "before": [float(before[i]) for i in ids],
            "after": [float(after.probs[i]) for i in ids],
            "status": ["kept" if after.kept[i] else "cut" for i in ids],
        }
    )


def common_x_max(frames: Sequence[pd.DataFrame]) -> float:
    """The largest probability any of the filter frames draws (before or after), so charts
    side by side share one x range."""
    return float(max(max(df["before"].max(), df["after"].max()) for df in frames))


def filter_chart(
    df: pd.DataFrame,
    title: str,
    threshold: float | None = None,
    x_max: float | None = None,
    highlight: int | None = None,
) -> alt.LayerChart:
    """Grey bar: probability before; blue bar: renormalised after; red ✕: cut.

    `threshold` draws the probability a token needed to survive (min-p, top-k); `x_max`
    fixes the x range to [0, x_max] (charts to be compared side by side); the token id
    `highlight` (the one just sampled) is outlined and marked "◀".
    """
    df = sampled_frame(df, highlight)
    order = df["token"].tolist()
    y = alt.Y("token:N", sort=order, title=None, axis=alt.Axis(labelLimit=110, labelOverlap=False))
    tooltip = [
        alt.Tooltip("token:N", title="rank. token"),
        alt.Tooltip("before:Q", format=".5f", title="before"),
        alt.Tooltip("after:Q", format=".5f", title="after (renormalised)"),
        alt.Tooltip("status:N"),
    ]
    base = alt.Chart(df).encode(y=y, tooltip=tooltip)
    scale = alt.Scale(domainMin=0) if x_max is None else alt.Scale(domain=[0, x_max], nice=False)
    before = base.mark_bar(color=BEFORE, opacity=0.9).encode(
        x=alt.X("before:Q", title="probability", scale=scale)
    )
    after = base.mark_bar(color=KEPT, height=8).encode(x="after:Q")
    cut = (
        base.transform_filter(alt.datum.status == "cut")
        .mark_text(text="✕ cut", color=CUT, align="left", dx=3, fontWeight="bold")
        .encode(x="before:Q")
    )
    layers = [before, after, cut]
    if df["sampled"].any():  # around both bars; "◀" after "✕ cut" if this filter alone cut it
        ends = base.transform_calculate(end="max(datum.before, datum.after)")
        for status, dx in (("kept", 3), ("cut", 42)):
            row = ends.transform_filter(alt.datum.status == status)
            layers += sampled_marks(row, "end", dx, "◀")  # narrow charts: the short mark
    if threshold is not None:
        rule = (
            alt.Chart(pd.DataFrame({"threshold": [threshold]}))
            .mark_rule(color=CUT, strokeDash=[4, 3])
            .encode(x="threshold:Q", tooltip=[alt.Tooltip("threshold:Q", format=".5f")])
        )
        layers.append(rule)
    return alt.layer(*layers).properties(title=title, height=alt.Step(16))


def heatmap_frame(
    lens: SequenceLens,
    labels: Sequence[str],
    text: TokenText,
    start: int,
    stop: int,
    per_position: bool = True,
) -> pd.DataFrame:
    """One cell per (position, candidate rank) for positions [start, stop).

    `value` is the probability, divided by that position's top probability when
    `per_position` (so every column has a full-colour cell and shapes can be compared).
    """
    T, K = lens.top_ids.shape
    rows = []
    for pos in range(start, min(stop, T)):
        has_next = pos < T - 1
        actual = text_of_next = None
        if has_next:
            actual = lens.next_rank[pos]
            text_of_next = labels[pos + 1]
        top = float(lens.top_probs[pos, 0])
        for k in range(K):
            p = float(lens.top_probs[pos, k])
            rows.append(
                {
                    "position": f"{pos}: {labels[pos]}",
                    "pos": pos,
                    "rank": k + 1,
                    "predicted": text(int(lens.top_ids[pos, k])),
                    "probability": p,
                    "value": p / top if per_position and top > 0 else p,
                    "is_next": bool(has_next and actual == k + 1),
                    "next_token": text_of_next if has_next else "(end of the run)",
                    "next_rank": int(actual) if has_next else 0,
                    "next_prob": float(lens.next_prob[pos]) if has_next else float("nan"),
                    "entropy": float(lens.entropy[pos]),
                }
            )
    return pd.DataFrame(rows)


def heatmap_chart(df: pd.DataFrame, per_position: bool) -> alt.LayerChart:
    """Columns: positions (the token read); rows: the model's top candidates for the next one.

    A dot marks the cell whose candidate is the token that actually came next.
    """
    order = df.drop_duplicates("pos").sort_values("pos")["position"].tolist()
    tooltip = [
        alt.Tooltip("position:N", title="after position"),
        alt.Tooltip("rank:Q", title="candidate rank"),
        alt.Tooltip("predicted:N", title="predicted token"),
        alt.Tooltip("probability:Q", format=".4f"),
        alt.Tooltip("next_token:N", title="actual next token"),
        alt.Tooltip("next_rank:Q", title="its rank (0 = none)"),
        alt.Tooltip("next_prob:Q", format=".4f", title="its probability"),
        alt.Tooltip("entropy:Q", format=".2f", title="entropy (bits)"),
    ]
    base = alt.Chart(df).encode(
        x=alt.X(
            "position:N",
            sort=order,
            title="after this token",
            axis=alt.Axis(labelAngle=-60, labelLimit=110, labelOverlap=False),
        ),
        y=alt.Y("rank:O", title="candidate rank"),
        tooltip=tooltip,
    )
    rect = base.mark_rect().encode(
        color=alt.Color(
            "value:Q",
            scale=alt.Scale(
                range=["#ffffff", "#08306b"], domain=[0, 1] if per_position else alt.Undefined
            ),
            title="p / top p" if per_position else "probability",
        )
    )
    dots = base.transform_filter(alt.datum.is_next).mark_point(
        shape="circle", filled=True, color=CHOSEN, size=60
    )
    return alt.layer(rect, dots).properties(width=alt.Step(22), height=alt.Step(22))


def attention_frame(
    row: np.ndarray, labels: Sequence[str], hidden: int, n: int = 10
) -> pd.DataFrame:
    """The n keys with the most attention in one aggregated row (first `hidden` keys skipped)."""
    weights = np.asarray(row, dtype=np.float32)[hidden:]
    top = np.argsort(-weights, kind="stable")[:n] + hidden
    return pd.DataFrame(
        {
            "key": [f"{p}: {labels[p]}" for p in top.tolist()],
            "weight": [float(row[p]) for p in top.tolist()],
        }
    )


def attention_chart(df: pd.DataFrame, title: str) -> alt.Chart:
    return (
        alt.Chart(df, title=title)
        .mark_bar(color="#ff9f1c")
        .encode(
            x=alt.X("weight:Q", title="attention (mean over layers and heads)"),
            y=alt.Y(
                "key:N",
                sort=df["key"].tolist(),
                title=None,
                axis=alt.Axis(labelLimit=140, labelOverlap=False),
            ),
            tooltip=["key:N", alt.Tooltip("weight:Q", format=".5f")],
        )
        .properties(height=alt.Step(18))
    )
