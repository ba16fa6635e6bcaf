"""Charts of the training lab: loss curves, the tiny model's attention, the induction lab.

Heatmaps draw a masked cell (a future key, or padding) in grey with a cross, so it is never
mistaken for a cell the model could see and gave zero attention (white).
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from lib.train.induction import InductionHistory
from lib.train.pool import MAX_POINTS, PooledRun, kept_evaluations
from lib.train.training import Prediction

MASKED = "#d9d9d9"
SERIES_COLOURS = {  # the induction lab's time axis
    "loss, first half": "#7f7f7f",
    "loss, second half (copyable)": "#2ca02c",
    "in-context learning score": "#d62728",
    "best induction score (layer 1+)": "#1f77b4",
    "best previous-token score (layer 0)": "#ff7f0e",
    "best duplicate-token score (layer 0)": "#9467bd",
}


def loss_chart(losses: np.ndarray, floor: float | None = None, title: str = "") -> alt.LayerChart:
    """Loss (nats) per epoch; a dashed line at the floor no model can beat, when known."""
    df = pd.DataFrame({"epoch": np.arange(1, len(losses) + 1), "loss": losses.astype(float)})
    line = (
        alt.Chart(df, title=title or alt.Undefined)
        .mark_line()
        .encode(
            x=alt.X("epoch:Q", title="epoch"),
            y=alt.Y("loss:Q", title="loss (nats per word)", scale=alt.Scale(zero=True)),
            tooltip=["epoch:Q", alt.Tooltip("loss:Q", format=".4f")],
        )
    )
    layers = [line]
    if floor is not None:
        rule = (
            alt.Chart(pd.DataFrame({"floor": [floor]}))
            .mark_rule(strokeDash=[5, 4], color="#d62728")
            .encode(y="floor:Q", tooltip=[alt.Tooltip("floor:Q", format=".4f", title="floor")])
        )
        layers.append(rule)
    return alt.layer(*layers).properties(height=220)


def attention_frame(weights: np.ndarray, words: Sequence[str], panel: str) -> pd.DataFrame:
    """One row per (query, key) cell of a (T, T) pattern; `masked` marks future keys."""
    T = len(words)
    q, k = np.meshgrid(np.arange(T), np.arange(T), indexing="ij")
    names = [f"{i}: {w}" for i, w in enumerate(words)]
    return pd.DataFrame(
        {
            "panel": panel,
            "query": np.asarray(names)[q.ravel()],
            "key": np.asarray(names)[k.ravel()],
            "weight": weights[:T, :T].ravel().astype(float),
            "masked": (k > q).ravel(),
        }
    )


def attention_heatmaps(
    heads: np.ndarray, words: Sequence[str], columns: int = 3, cell: int = 26
) -> alt.FacetChart:
    """Every head of one layer (H, T, T) and their average, side by side, one colour scale.

    Rows are queries (the word doing the attending), columns keys (the word attended to).
    """
    frames = [attention_frame(h, words, f"head {i}") for i, h in enumerate(heads)]
    frames.append(attention_frame(heads.mean(axis=0), words, "average of the heads"))
    df = pd.concat(frames, ignore_index=True)
    order = [f"{i}: {w}" for i, w in enumerate(words)]
    panels = [*(f"head {i}" for i in range(len(heads))), "average of the heads"]
    base = alt.Chart().encode(
        x=alt.X(
            "key:O",
            sort=order,
            title="key (attended to)",
            axis=alt.Axis(labelAngle=-45, labelOverlap=False),
        ),
        y=alt.Y(
            "query:O", sort=order, title="query (attending)", axis=alt.Axis(labelOverlap=False)
        ),
    )
    seen = (
        base.transform_filter(~alt.datum.masked)
        .mark_rect()
        .encode(
            color=alt.Color(
                "weight:Q", scale=alt.Scale(range=["#ffffff", "#08306b"], domain=[0, 1])
            ),
            tooltip=["query:N", "key:N", alt.Tooltip("weight:Q", format=".3f")],
        )
    )
    masked = base.transform_filter(alt.datum.masked).mark_rect(color=MASKED)
    cross = base.transform_filter(alt.datum.masked).mark_text(text="×", color="#9a9a9a")
    return (
        alt.layer(seen, masked, cross, data=df)
        .properties(width=alt.Step(cell), height=alt.Step(cell))
        .facet(facet=alt.Facet("panel:N", title=None, sort=panels), columns=columns)
    )


def induction_frame(h: InductionHistory) -> pd.DataFrame:
    """Long table for the lab's time axis: losses, ICL score and the best head scores."""
    E = len(h.steps)
    later = slice(1, None) if h.induction.shape[1] > 1 else slice(None)
    series = {
        "loss, first half": h.loss_first,
        "loss, second half (copyable)": h.loss_second,
        "in-context learning score": h.icl_score,
        "best induction score (layer 1+)": h.induction[:, later].reshape(E, -1).max(axis=1),
        "best previous-token score (layer 0)": h.prev_token[:, 0].max(axis=1),
        "best duplicate-token score (layer 0)": h.role("duplicate_token")[:, 0].max(axis=1),
    }
    return pd.concat(
        [
            pd.DataFrame({"step": h.steps, "series": k, "value": v.astype(float)})
            for k, v in series.items()
        ],
        ignore_index=True,
    )


def induction_chart(h: InductionHistory, phase_step: int | None = None) -> alt.VConcatChart:
    """Losses above, head scores below, on one step axis; a rule marks the phase change."""
    df = induction_frame(h)
    x = alt.X("step:Q", title="training step")
    losses = df[df.series.str.startswith(("loss", "in-context"))]
    scores = df[df.series.str.startswith("best")]

    def panel(data: pd.DataFrame, title: str) -> alt.LayerChart:
        line = (
            alt.Chart(data)
            .mark_line()
            .encode(
                x=x,
                y=alt.Y("value:Q", title=title),
                color=alt.Color(
                    "series:N",
                    title=None,
                    scale=alt.Scale(
                        domain=list(SERIES_COLOURS), range=list(SERIES_COLOURS.values())
                    ),
                    legend=alt.Legend(orient="bottom", columns=2, labelLimit=320),
                ),
                tooltip=["step:Q", "series:N", alt.Tooltip("value:Q", format=".3f")],
            )
        )
        layers = [line]
        if phase_step is not None:
            layers.append(
                alt.Chart(pd.DataFrame({"step": [phase_step]}))
                .mark_rule(strokeDash=[4, 3], color="#7f7f7f")
                .encode(x="step:Q")
            )
        return alt.layer(*layers).properties(width=640, height=200)

    return alt.vconcat(panel(losses, "loss (nats) / score"), panel(scores, "head score (0..1)"))


def head_scores_chart(scores: np.ndarray, title: str) -> alt.Chart:
    """A (L, H) grid of scores in 0..1, as on the Head roles page."""
    L, H = scores.shape
    layer, head = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    df = pd.DataFrame({"layer": layer.ravel(), "head": head.ravel(), "score": scores.ravel()})
    return (
        alt.Chart(df, title=title)
        .mark_rect(stroke="white")
        .encode(
            x=alt.X("head:O"),
            y=alt.Y("layer:O"),
            color=alt.Color("score:Q", scale=alt.Scale(scheme="viridis", domain=[0, 1])),
            tooltip=["layer:O", "head:O", alt.Tooltip("score:Q", format=".3f")],
        )
        .properties(width=alt.Step(34), height=alt.Step(22))
    )


def predictions_table(preds: Sequence[Prediction]) -> pd.DataFrame:
    """One row per prefix: what came next, and the model's top guesses with probabilities."""
    rows = []
    for p in preds:
        row = {"after": " ".join(("<START>", *p.prefix)), "actual next": p.actual}
        for i, (word, prob) in enumerate(zip(p.words, p.probs, strict=True), start=1):
            row[f"guess {i}"] = f"{word} ({prob:.2f})"
        row["p(actual)"] = p.actual_prob
        row["right"] = p.words[0] == p.actual
        rows.append(row)
    return pd.DataFrame(rows)


def history_csv(columns: dict[str, np.ndarray]) -> str:
    """Training curves as CSV, one column each (equal lengths)."""
    return pd.DataFrame({k: np.asarray(v) for k, v in columns.items()}).to_csv(index=False)


# Vega's tableau20, its ten strong colours first: neighbours in the class's list (runs #1
# and #2) are told apart at once; a class past ten runs gets the light ones.
POOL_COLOURS = [
    "#4c78a8", "#f58518", "#54a24b", "#b79a20", "#439894", "#e45756", "#79706e", "#d67195",
    "#b279a2", "#9e765f", "#9ecae9", "#ffbf79", "#88d27a", "#f2cf5b", "#83bcb6", "#ff9d98",
    "#bab0ac", "#fcbfd2", "#d6a5c9", "#d8b5a5",
]  # fmt: skip


MAX_DRAWN = 4000  # the class chart's points: under Altair's 5,000-row guard, light to draw


def points_per_run(n_runs: int) -> int:
    """The evaluations drawn of each run when `n_runs` share the chart: every one a pooled
    run keeps (MAX_POINTS) for a class, fewer (evenly spaced) for hundreds of runs."""
    return max(3, min(MAX_POINTS, MAX_DRAWN // max(1, n_runs)))  # the ends and the phase


def phase_index(run: PooledRun) -> int | None:
    """The evaluation of the run's phase change (None when it never came)."""
    if run.phase_step is None:
        return None
    return min(int(np.searchsorted(run.steps, run.phase_step)), len(run.steps) - 1)


def pool_label(run: PooledRun) -> str:
    """A pooled run's name on the chart: its number first, so two students who chose the
    same name stay apart."""
    return f"#{run.id} {run.name} (seed {run.seed})"


def pool_chart(runs: Sequence[PooledRun]) -> alt.VConcatChart:
    """Every pooled run on one step axis: the copyable half's loss above, the best
    induction score below, one colour per run; a dot on each curve at its phase change."""
    limit = points_per_run(len(runs))
    curves = pd.concat(
        [
            pd.DataFrame(
                {
                    "step": r.steps[k],
                    "run": pool_label(r),
                    "loss": r.loss_second[k],
                    "score": r.best_induction[k],
                }
            )
            for r in runs
            for k in [kept_evaluations(len(r.steps), phase_index(r), limit)]
        ],
        ignore_index=True,
    )
    phases = curves.merge(
        pd.DataFrame(
            {
                "run": [pool_label(r) for r in runs if r.phase_step is not None],
                "step": [r.phase_step for r in runs if r.phase_step is not None],
            }  # fmt: skip
        ),
        on=["run", "step"],
    )
    colour = alt.Color(
        "run:N", title=None, scale=alt.Scale(range=POOL_COLOURS),
        legend=alt.Legend(orient="bottom", columns=3, labelLimit=260),
    )  # fmt: skip
    x = alt.X("step:Q", title="training step")

    def panel(field: str, title: str) -> alt.LayerChart:
        tip = ["run:N", "step:Q", alt.Tooltip(f"{field}:Q", format=".3f")]
        lines = (
            alt.Chart(curves)
            .mark_line(opacity=0.8)
            .encode(x=x, y=alt.Y(f"{field}:Q", title=title), color=colour, tooltip=tip)
        )
        dots = (
            alt.Chart(phases)
            .mark_point(size=70, filled=True, stroke="black")
            .encode(x=x, y=f"{field}:Q", color=colour, tooltip=tip)
        )
        return alt.layer(lines, dots).properties(width=640, height=200)

    return alt.vconcat(
        panel("loss", "second half's loss (nats)"),
        panel("score", "best induction score"),
    )


def pool_table(runs: Sequence[PooledRun]) -> pd.DataFrame:
    """One row per pooled run: who, which seed, when its phase change came, where it ended."""
    return pd.DataFrame(
        {
            "run": [f"#{r.id}" for r in runs],
            "name": [r.name for r in runs],
            "seed": [r.seed for r in runs],
            "steps trained": [int(r.steps[-1]) for r in runs],
            "phase change at step": pd.array([r.phase_step for r in runs], dtype="Int64"),
            "final loss, second half": [float(r.loss_second[-1]) for r in runs],
            "final best induction": [float(r.best_induction[-1]) for r in runs],
        }
    )


def pool_summary(runs: Sequence[PooledRun]) -> str:
    """The class in one sentence: how many runs, how many changed phase, and when."""
    n = len(runs)
    at = sorted(r.phase_step for r in runs if r.phase_step is not None)
    head = f"{n} run{'s' if n != 1 else ''} in the pool"
    if not at:
        return head + "; no phase change yet (no head's induction score has reached 0.5)."
    when = (
        f"at step {at[0]:,}"
        if len(at) == 1
        else f"between steps {at[0]:,} and {at[-1]:,} (median {float(np.median(at)):,.0f})"
    )
    return (
        f"{head}; the phase change came in {len(at)} of them, {when}: the first evaluation "
        "at which a head's induction score reached 0.5 (the dots)."
    )
