"""Attention matrices as tidy tables and Altair heatmaps (query rows x key columns)."""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd

from lib.measures import hide_sink
from lib.model.result import GenerationResult
from lib.viz.text import describe_aggregation

MAX_AXIS = 120  # most rows or columns drawn at once; larger matrices are shown in windows


@dataclass(frozen=True)
class MatrixView:
    """A (part of an) attention matrix ready to draw.

    values     (Q, K) float32  weights; row = query (the token attending), column = key
    query_pos  (Q,) int64      sequence position of each row's query token
    key_pos    (K,) int64      sequence position of each column's key token
    """

    values: np.ndarray
    query_pos: np.ndarray
    key_pos: np.ndarray
    labels: tuple[str, ...]  # labels of the whole sequence, indexed by position
    renormalised: bool = False

    def __post_init__(self) -> None:
        q, k = self.query_pos.shape[0], self.key_pos.shape[0]
        if self.values.shape != (q, k):
            raise ValueError(f"values must be ({q}, {k}), got {self.values.shape}")

    def axis_names(self, positions: np.ndarray) -> list[str]:
        # Position first: a token that occurs twice must stay two rows, not merge into one.
        return [f"{p}: {self.labels[p]}" for p in positions.tolist()]

    def to_frame(self) -> pd.DataFrame:
        """One row per cell: query/key position and token, the weight, and its exact text."""
        q_idx, k_idx = np.meshgrid(
            np.arange(len(self.query_pos)), np.arange(len(self.key_pos)), indexing="ij"
        )
        qp, kp = self.query_pos[q_idx.ravel()], self.key_pos[k_idx.ravel()]
        v = self.values.ravel()
        return pd.DataFrame(
            {
                "query": np.asarray(self.axis_names(self.query_pos))[q_idx.ravel()],
                "key": np.asarray(self.axis_names(self.key_pos))[k_idx.ravel()],
                "query_token": [self.labels[p] for p in qp.tolist()],
                "key_token": [self.labels[p] for p in kp.tolist()],
                "weight": v.astype(np.float64),
                "exact": [f"{x:.9g}" for x in v.tolist()],
            }
        )

    def to_csv(self) -> str:
        """The matrix as CSV: one row per query, one column per key, labels as headers."""
        df = pd.DataFrame(
            self.values,
            index=self.axis_names(self.query_pos),
            columns=self.axis_names(self.key_pos),
        )
        df.index.name = "query \\ key"
        return df.to_csv()


def view(
    matrix: np.ndarray,
    query_pos: np.ndarray,
    labels: tuple[str, ...],
    hide_first: bool = False,
    key_start: int = 0,
    key_stop: int | None = None,
) -> MatrixView:
    """Cut a window of keys out of `matrix` (rows = queries at `query_pos`, columns = keys 0..).

    With `hide_first`, the sink rule (`lib.measures.hide_sink`) is applied to every row and
    key 0 is left out of the columns.
    """
    m = hide_sink(matrix) if hide_first else np.asarray(matrix, dtype=np.float32)
    first = 1 if hide_first else 0
    key_stop = m.shape[1] if key_stop is None else min(key_stop, m.shape[1])
    key_start = max(key_start, first)
    keys = np.arange(key_start, key_stop)
    return MatrixView(m[:, keys], np.asarray(query_pos), keys, labels, hide_first)


def heatmap(v: MatrixView, title: str = "", cell: int = 20, axes: bool = True) -> alt.Chart:
    """Altair heatmap with named axes and a tooltip giving both tokens and the exact value."""
    df = v.to_frame()
    x_axis = alt.Axis(labelAngle=-60, labelLimit=120, labelOverlap=False) if axes else None
    y_axis = alt.Axis(labelLimit=160, labelOverlap=False) if axes else None
    return (
        alt.Chart(df, title=title or alt.Undefined)
        .mark_rect()
        .encode(
            x=alt.X(
                "key:O",
                sort=v.axis_names(v.key_pos),
                axis=x_axis,
                title="key: the token attended to",
            ),
            y=alt.Y(
                "query:O",
                sort=v.axis_names(v.query_pos),
                axis=y_axis,
                title="query: the token doing the attending",
            ),
            # White is zero (including future positions a query cannot see).
            color=alt.Color(
                "weight:Q",
                scale=alt.Scale(range=["#ffffff", "#08306b"], domainMin=0),
                title="renormalised weight" if v.renormalised else "weight",
            ),
            tooltip=[
                alt.Tooltip("query_token:N", title="query token"),
                alt.Tooltip("key_token:N", title="key token"),
                alt.Tooltip("exact:N", title="weight"),
            ],
        )
        .properties(width=alt.Step(cell), height=alt.Step(cell))
    )


def head_grid(views: list[MatrixView], columns: int = 3) -> alt.ConcatChart:
    """Small heatmaps, one per head, sharing one colour scale."""
    charts = [heatmap(v, title=f"head {h}", cell=6, axes=False) for h, v in enumerate(views)]
    return alt.concat(*charts, columns=columns).resolve_scale(color="shared")


def matrix_caption(r: GenerationResult, layer: int | None, head: int | None, hide: bool) -> str:
    """What the heatmap shows, said under it."""
    return (
        f"Attention weights {describe_aggregation(r.n_layers, r.n_heads, layer, head)}. Each "
        "row is one query (the token doing the attending; in the captured view, the position "
        "whose output produced the next generated token) and each column a key (the token "
        "attended to). Hover a cell for both tokens and the exact value. · is a space, ↵ a "
        "newline. "
        + (
            "The first token is hidden and every row renormalised to sum to 1."
            if hide
            else "Raw softmax weights: each full row sums to 1."
        )
        + (
            " The BOS token the tokenizer added is included here (position 0)."
            if r.bos_offset
            else ""
        )
    )


def matrix_file_name(
    run_key: str, layer: int | None, head: int | None, captured: bool, hide: bool
) -> str:
    """A CSV name that says what the matrix is: attention-<run>-layer3-all-heads-captured."""
    parts = [
        f"layer{layer}" if layer is not None else "all-layers",
        f"head{head}" if head is not None else "all-heads",
        "captured" if captured else "whole",
    ] + (["sink-hidden"] if hide else [])
    return f"attention-{run_key}-{'-'.join(parts)}.csv"
