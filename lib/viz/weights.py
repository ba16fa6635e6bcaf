"""Seed 001's weight views: the run's tokens in embedding space, OV spectra, eigenvalues."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from lib.analysis.weights import EmbeddingPCA


def pca_chart(pca: EmbeddingPCA, texts: Sequence[str], where: Sequence[str]) -> alt.LayerChart:
    """The distinct tokens on their two principal axes, coloured by where they appear."""
    pts = pd.DataFrame(
        {
            "pc1": pca.coords[:, 0].astype(np.float64),
            "pc2": pca.coords[:, 1].astype(np.float64),
            "token": list(texts),
            "id": pca.token_ids,
            "in": list(where),
        }
    )
    enc = alt.Chart(pts).encode(
        x=alt.X("pc1:Q", title=f"PC 1 ({pca.explained[0]:.0%} of variance)"),
        y=alt.Y("pc2:Q", title=f"PC 2 ({pca.explained[1]:.0%} of variance)"),
        tooltip=["token:N", "id:Q", "in:N"],
    )
    dots = enc.mark_circle(size=60).encode(color=alt.Color("in:N", title="appears in"))
    words = enc.mark_text(align="left", dx=6, fontSize=11, limit=90).encode(text="token:N")
    return (dots + words).properties(width=640, height=420)


def ov_chart(sv: np.ndarray) -> alt.Chart:
    """Each head's OV singular values, largest first, on a log scale: (H, d) -> lines."""
    df = pd.DataFrame(
        {
            "head": np.repeat(np.arange(sv.shape[0]), sv.shape[1]),
            "index": np.tile(np.arange(sv.shape[1]), sv.shape[0]),
            "singular value": sv.ravel().astype(np.float64),
        }
    )
    return (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X("index:Q", title="singular value index"),
            y=alt.Y("singular value:Q", scale=alt.Scale(type="log")),
            color="head:N",
            tooltip=["head:N", "index:Q", alt.Tooltip("singular value:Q", format=".4f")],
        )
        .properties(width=640, height=300)
    )


def eigen_chart(ev: np.ndarray) -> alt.Chart:
    """Eigenvalues (real parts), largest magnitude first, as bars."""
    df = pd.DataFrame({"rank": np.arange(1, len(ev) + 1), "eigenvalue": np.real(ev)})
    return (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("rank:O", title="eigenvalue rank"),
            y=alt.Y("eigenvalue:Q", scale=alt.Scale(domain=[0, 1])),
            tooltip=["rank:Q", alt.Tooltip("eigenvalue:Q", format=".4f")],
        )
        .properties(width=alt.Step(8), height=240)
    )


def appears_in(token_ids: np.ndarray, prompt_ids: set[int], generated_ids: set[int]) -> list[str]:
    """For each id: "prompt", "generated" or "both"."""
    return [
        "both"
        if t in prompt_ids and t in generated_ids
        else "prompt"
        if t in prompt_ids
        else "generated"
        for t in np.asarray(token_ids).tolist()
    ]
