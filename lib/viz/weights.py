"""The weight views: the run's tokens in embedding space (with k-means clusters), OV
spectra, and copying heads from each head's OV-circuit eigenvalues."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from lib.analysis.weights import EmbeddingPCA, OVCopying


def pca_chart(
    pca: EmbeddingPCA,
    texts: Sequence[str],
    where: Sequence[str],
    vocab_texts: Sequence[str] = (),
) -> alt.LayerChart:
    """The embedding space on its two principal axes: the vocabulary sample in grey (hover
    for each token), the run's distinct tokens over it, colour = k-means cluster, shape =
    where in the run they appear (prompt, generated, both)."""
    pts = pd.DataFrame(
        {
            "pc1": pca.coords[:, 0].astype(np.float64),
            "pc2": pca.coords[:, 1].astype(np.float64),
            "token": list(texts),
            "id": pca.token_ids,
            "cluster": [f"cluster {c + 1}" for c in pca.clusters.tolist()],
            "in": list(where),
        }
    )
    enc = alt.Chart(pts).encode(
        x=alt.X("pc1:Q", title=f"PC 1 ({pca.explained[0]:.0%} of variance)"),
        y=alt.Y("pc2:Q", title=f"PC 2 ({pca.explained[1]:.0%} of variance)"),
        tooltip=["token:N", "id:Q", "cluster:N", "in:N"],
    )
    colour = alt.Color("cluster:N", title="k-means cluster", scale=alt.Scale(scheme="category10"))
    dots = enc.mark_point(size=70, filled=True).encode(
        color=colour,
        shape=alt.Shape(
            "in:N",
            title="appears in",
            scale=alt.Scale(
                domain=["prompt", "generated", "both"], range=["circle", "triangle-up", "diamond"]
            ),
        ),
    )
    words = enc.mark_text(align="left", dx=6, fontSize=11, limit=90).encode(
        text="token:N", color=colour
    )
    vocab = pd.DataFrame(
        {
            "pc1": pca.vocab_coords[:, 0].astype(np.float64),
            "pc2": pca.vocab_coords[:, 1].astype(np.float64),
            "token": list(vocab_texts) or [""] * len(pca.vocab_ids),
            "id": pca.vocab_ids,
        }
    )
    backdrop = (
        alt.Chart(vocab)
        .mark_circle(size=12, color="#bbbbbb", opacity=0.5)
        .encode(x="pc1:Q", y="pc2:Q", tooltip=["token:N", "id:Q"])
    )
    return (backdrop + dots + words).properties(width=640, height=420)


def pca_caption(pca: EmbeddingPCA, hidden_size: int) -> str:
    """What the PCA chart shows, and what was clustered."""
    n, m = len(pca.token_ids), len(pca.vocab_ids)
    return (
        f"The embedding space on its two main directions: a PCA of {m:,} of the vocabulary's "
        "tokens (grey; the first ordinary tokens of the vocabulary, which byte-level BPE "
        "numbers in the order it learned them, so the commonest pieces), with the "
        f"{n} distinct tokens of this run placed on the same axes. Tokens the model treats "
        "alike sit close together: hover the grey dots to find their neighbours. Colours: "
        f"k-means with k = {pca.n_clusters} (fixed seed) on the full "
        f"{hidden_size}-dimensional embeddings, not on the 2-D picture, so a cluster can look "
        "split or mixed here. Shapes: prompt, generated, or both."
    )


OV_CAPTION = (
    "Each head moves information with W_O W_V (its layer's input-norm gain folded in). A steep "
    "drop means the head writes a few directions (a specialist); a flat curve means it can copy "
    "many. Weights only: the same for every prompt."
)


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


COPYING_TITLE = "Copying (OV eigenvalues)"
# Diverging, centred at 0: blue heads copy (+1), red heads suppress what they read (-1).
COPYING_SCALE = alt.Scale(scheme="redblue", domain=[-1, 1], domainMid=0)


def copying_frame(cp: OVCopying) -> pd.DataFrame:
    """One row per head: layer, head, copying score."""
    layer, head = np.meshgrid(np.arange(cp.n_layers), np.arange(cp.n_heads), indexing="ij")
    return pd.DataFrame(
        {
            "layer": layer.ravel(),
            "head": head.ravel(),
            "copying": cp.score.ravel().astype(np.float64),
        }
    )


def copying_grid(cp: OVCopying) -> alt.Chart:
    """Layers x heads, each cell coloured by its copying score on a -1..+1 diverging scale."""
    return (
        alt.Chart(copying_frame(cp))
        .mark_rect(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("head:O", title="head", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("layer:O", title="layer"),
            color=alt.Color("copying:Q", scale=COPYING_SCALE, title="copying score"),
            tooltip=["layer:O", "head:O", alt.Tooltip("copying:Q", format=".3f")],
        )
        .properties(width=alt.Step(34), height=alt.Step(16))
    )


def spectrum_frame(ev: np.ndarray) -> pd.DataFrame:
    """One head's eigenvalues, divided by the largest magnitude (so the biggest sits at 1)."""
    ev = np.asarray(ev, dtype=np.complex128)
    top = float(np.abs(ev).max()) if len(ev) else 0.0
    scaled = ev / top if top > 0 else ev
    return pd.DataFrame(
        {
            "rank": np.arange(1, len(ev) + 1),
            "real": scaled.real,
            "imaginary": scaled.imag,
            "magnitude": np.abs(ev),
            "sign": np.where(ev.real >= 0, "positive real part", "negative real part"),
        }
    )


def spectrum_chart(ev: np.ndarray) -> alt.LayerChart:
    """One head's OV-circuit eigenvalues in the complex plane, with the zero lines."""
    df = spectrum_frame(ev)
    span = max(1.0, float(np.abs(df[["real", "imaginary"]].to_numpy()).max(initial=0.0)))
    axis = alt.Scale(domain=[-span, span])
    zero = pd.DataFrame({"zero": [0.0]})
    v = alt.Chart(zero).mark_rule(color="gray").encode(x="zero:Q")
    h = alt.Chart(zero).mark_rule(color="gray").encode(y="zero:Q")
    dots = (
        alt.Chart(df)
        .mark_circle(size=70, opacity=0.8)
        .encode(
            x=alt.X("real:Q", title="real part (/ largest |eigenvalue|)", scale=axis),
            y=alt.Y("imaginary:Q", title="imaginary part (/ largest |eigenvalue|)", scale=axis),
            color=alt.Color(
                "sign:N",
                title=None,
                scale=alt.Scale(
                    domain=["positive real part", "negative real part"],
                    range=["#2166ac", "#b2182b"],
                ),
            ),
            tooltip=[
                "rank:Q",
                alt.Tooltip("real:Q", format=".4f"),
                alt.Tooltip("imaginary:Q", format=".4f"),
                alt.Tooltip("magnitude:Q", format=".4g", title="|eigenvalue| (unscaled)"),
            ],
        )
    )
    return (v + h + dots).properties(width=420, height=420)


def copying_caption(cp: OVCopying) -> str:
    """What the copying grid shows, its strongest head, and what the numbers leave out."""
    (layer, head, best), *_ = cp.strongest(1)
    return (
        "Each head's OV circuit, read from the weights alone: which logits it adds for the "
        "token it attends to (embedding -> the head's value and output maps -> unembedding). "
        "Copying score = sum of its eigenvalues / sum of their magnitudes: +1 (blue) when "
        "every eigenvalue is positive, so the head copies the token it attends to into the "
        "prediction; -1 (red) when it pushes that token down; random weights score 0 on average. "
        f"Strongest copier: layer {layer} head {head} ({best:.3f}). Approximate: the layer's "
        "input-norm and the final-norm gains are folded in, but the norms' per-token scale, "
        "the MLPs and the other layers are left out (the direct path only)."
    )


def spectrum_caption(cp: OVCopying, layer: int, head: int) -> str:
    """The picked head's score and how many of its eigenvalues are positive."""
    ev = cp.eigenvalues[layer, head]
    positive = int((ev.real > 0).sum())
    return (
        f"Layer {layer} head {head}: copying score {float(cp.score[layer, head]):.3f}; "
        f"{positive} of its {len(ev)} eigenvalues have a positive real part. Each dot is one "
        "eigenvalue of the d_head x d_head product W_V E^T U W_O, which has the same non-zero "
        "eigenvalues as the token-to-token circuit; the axes are divided by the largest "
        "magnitude (the absolute size depends on the norm scale that is left out)."
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
