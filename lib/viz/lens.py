"""The logit lens as a table (one step, every layer) and an overview chart (every step), the
sub-layer lens (before and after each attention and MLP) and the activation-norm heatmaps.

Every readout is named by `readout_names`, so the table, the charts and the sentences agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from lib.analysis.logit_lens import LogitLens, readout_names
from lib.analysis.residual import (
    KINDS,
    SPREAD_PARTS,
    ActivationNorms,
    ActivationSpread,
    SublayerLens,
    readout_kinds,
    sublayer_steps,
)
from lib.labels import TokenText, step_label

FULL_AXIS = alt.Axis(labelOverlap=False, labelLimit=160)  # every token gets its label
READOUT_TITLE = "readout: the residual stream after ..."


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
    steps = [step_label(i, t) for i, t in enumerate(generated)]
    grid = pd.DataFrame(
        {
            "step": np.repeat(steps, lens.n_readouts),
            "after": np.tile(names, n),
            "P(final token)": lens.final_prob.ravel().astype(np.float64),
            "rank": lens.final_rank.ravel(),
        }
    )
    return (
        alt.Chart(grid)
        .mark_rect()
        .encode(
            x=alt.X("after:O", sort=names, title=READOUT_TITLE, axis=FULL_AXIS),
            y=alt.Y("step:O", sort=steps, title="generated token", axis=FULL_AXIS),
            color=alt.Color("P(final token):Q", scale=alt.Scale(scheme="blues", domain=[0, 1])),
            tooltip=["step:N", "after:N", alt.Tooltip("P(final token):Q", format=".3f"), "rank:Q"],
        )
        .properties(width=alt.Step(16), height=alt.Step(14))
    )


def embeddings_caption(lens: LogitLens, query_ids: np.ndarray, tied: bool, text: TokenText) -> str:
    """Why the "embeddings" row predicts junk at probability ~1, with this run's counts.

    query_ids (S,): the input token at each step's query position.
    """
    top = lens.top_ids[:, 0, 0]
    own = top == np.asarray(query_ids)
    head = (
        "The embeddings row is not a prediction: it is the input token's own embedding, "
        "before any layer has seen the other tokens, read through the final norm and the "
        "unembedding. "
    )
    if not tied:
        return (
            head + f"Here it names the input token itself at {int(own.sum())} of {len(own)} steps."
        )
    others = top[~own]
    hub = ""
    if len(others):
        ids, counts = np.unique(others, return_counts=True)
        hub = f" (most often “{text(int(ids[counts.argmax()]))}”)"
    return head + (
        "In this model the unembedding is the same matrix as the embedding (tied weights), "
        f"and a vector scores highest with itself: at {int(own.sum())} of {len(own)} steps "
        "it “predicts” its own input token; the others land on a few tokens with unusually "
        f"long embeddings{hub}. The final norm scales the small embedding up, so the scores "
        "lie far apart and the softmax saturates near 1.000."
    )


def sublayer_frame(lens: SublayerLens, step: int, text: TokenText) -> pd.DataFrame:
    """One row per readout (2L + 1) for one step: its name, kind and the final token's fate."""
    L = lens.n_layers
    return pd.DataFrame(
        {
            "readout": np.arange(2 * L + 1),
            "after": readout_names(L, sublayers=True),
            "kind": readout_kinds(L),
            "P(final token)": lens.final_prob[step].astype(np.float64),
            "log P(final token)": lens.final_logprob[step].astype(np.float64),
            "rank": lens.final_rank[step],
            "top prediction": [text(i) for i in lens.top_ids[step, :, 0]],
            "its probability": lens.top_probs[step, :, 0].astype(np.float64),
        }
    )


SUBLAYER_MEASURES = ("probability", "log-probability", "rank")
KIND_SCALE = alt.Scale(domain=list(KINDS), range=["#9e9e9e", "#f58518", "#4c78a8"])


def sublayer_chart(lens: SublayerLens, step: int, text: TokenText, measure: str) -> alt.Chart:
    """The final token's probability, log-probability or rank across the 2L + 1 readouts,
    each point coloured by the sub-layer that led to it (attention or MLP)."""
    df = sublayer_frame(lens, step, text)
    names = df["after"].tolist()
    y = {
        "probability": alt.Y("P(final token):Q", scale=alt.Scale(domain=[0, 1])),
        "log-probability": alt.Y("log P(final token):Q", title="log P(final token) (natural)"),
        "rank": alt.Y("rank:Q", scale=alt.Scale(type="log", reverse=True), title="rank (1 = top)"),
    }[measure]
    x = alt.X("after:O", sort=names, title=READOUT_TITLE, axis=FULL_AXIS)
    base = alt.Chart(df).encode(x=x, y=y)
    points = base.mark_circle(size=60, opacity=1).encode(
        color=alt.Color("kind:N", scale=KIND_SCALE, title="last step"),
        tooltip=[
            "after:N",
            "kind:N",
            alt.Tooltip("P(final token):Q", format=".4f"),
            alt.Tooltip("log P(final token):Q", format=".2f"),
            "rank:Q",
            "top prediction:N",
            alt.Tooltip("its probability:Q", format=".3f"),
        ],
    )
    line = base.mark_line(color="#bbbbbb", strokeWidth=1)
    return (line + points).properties(width=alt.Step(13), height=260)


def _moves(d: np.ndarray, layers: np.ndarray, order: np.ndarray) -> str:
    part = ("attn", "MLP")
    return ", ".join(f"layer {layers[k // 2]} {part[k % 2]} ({d[k]:+.2f})" for k in order)


def sublayer_sentence(lens: SublayerLens, step: int, top: int = 3) -> str:
    """Which sub-layers moved the final token most: changes in its natural log-probability.

    Layer 0 is told apart: from the embeddings readout (which mostly "predicts" the input
    token itself) any first layer makes a huge jump that says little about the answer.
    """
    lp = lens.final_logprob[step].astype(np.float64)
    steps = sublayer_steps(lp)  # (L, 2): attention, MLP
    first = (
        f"Layer 0 takes log P(final token) from {lp[0]:.1f} at the embeddings (no real "
        f"prediction, see above) to {lp[2]:.1f}. "
    )
    if lens.n_layers == 1:
        return first.strip()
    rest = steps[1:].ravel()
    layers = np.arange(1, lens.n_layers)
    up = [k for k in np.argsort(-rest)[:top] if rest[k] > 0]
    down = [k for k in np.argsort(rest)[:1] if rest[k] < 0]
    text = first + "After it, the largest rises are at " + (_moves(rest, layers, up) or "none")
    if down:
        text += "; the largest fall at " + _moves(rest, layers, down)
    attn, mlp = steps[1:, 0].sum(), steps[1:, 1].sum()
    more = "attention" if attn > mlp else "the MLPs"
    p = np.diff(np.exp(lp)).reshape(-1, 2).ravel()  # the same, in probability
    k = int(p.argmax())
    return (
        f"{text}. In total after layer 0, attention sub-layers add {attn:+.2f} and MLPs "
        f"{mlp:+.2f}: {more} moved this answer more. In probability, the largest rise is at "
        f"layer {k // 2} {('attn', 'MLP')[k % 2]} ({p[k]:+.2f})."
    )


ACT_PARTS = {"attention": "attn", "MLP": "mlp"}


def activations_chart(norms: ActivationNorms, tokens: Sequence[str]) -> alt.VConcatChart:
    """Two heatmaps (layers x tokens), attention's and the MLP's output norms, one log colour
    scale shared so that the two panels compare."""
    L, T = norms.attn.shape
    labels = [f"{i}: {t}" for i, t in enumerate(tokens)]
    panels = []
    for part, field in ACT_PARTS.items():
        grid = pd.DataFrame(
            {
                "token": np.tile(labels, L),
                "layer": np.repeat(np.arange(L), T),
                "norm": getattr(norms, field).ravel().astype(np.float64),
                "residual norm": norms.resid.ravel().astype(np.float64),
            }
        )
        panels.append(
            alt.Chart(grid, title=f"What {part} adds: ||{field} output||")
            .mark_rect()
            .encode(
                x=alt.X("token:O", sort=labels, axis=FULL_AXIS, title=None),
                y=alt.Y("layer:O", title="layer"),
                color=alt.Color(
                    "norm:Q", scale=alt.Scale(type="log", scheme="viridis"), title="L2 norm"
                ),
                tooltip=[
                    "token:N",
                    "layer:Q",
                    alt.Tooltip("norm:Q", format=".1f", title=f"{part} output norm"),
                    alt.Tooltip("residual norm:Q", format=".1f", title="residual after layer"),
                ],
            )
            .properties(width=alt.Step(14), height=alt.Step(9))
        )
    return alt.vconcat(*panels).resolve_scale(color="shared")


def activations_caption(norms: ActivationNorms, tokens: Sequence[str]) -> str:
    """What is measured, and how far the largest value stands out, from this run's numbers."""
    attn, mlp = norms.attn, norms.mlp
    part, arr = ("MLP", mlp) if mlp.max() >= attn.max() else ("attention", attn)
    layer, tok = np.unravel_index(int(arr.argmax()), arr.shape)
    text = (
        "Each cell is the L2 norm (length) of the vector a sub-layer adds to the residual "
        "stream at that token, in the model's own units: attention's output "
        "(resid_mid − resid_pre) and the MLP's (resid_post − resid_mid). One forward pass over "
        f"the run's {len(tokens)} tokens; colour on a log scale, shared by both panels. "
        f"Median: attention {np.median(attn):.1f}, MLP {np.median(mlp):.1f}; largest: "
        f"{part} of layer {layer} at token {tok} “{tokens[tok]}” ({arr.max():.0f})."
    )
    if attn.shape[1] > 1 and mlp[:, 0].max() > 10 * mlp[:, 1:].max():
        big = np.flatnonzero(norms.resid[:, 0] > 0.5 * norms.resid[:, 0].max())
        text += (
            f" The first token is special: its MLPs write up to {mlp[:, 0].max():.0f} "
            f"(other tokens at most {mlp[:, 1:].max():.0f}), and its residual stream stays "
            f"near {norms.resid[:, 0].max():.0f} after layers {big[0]}–{big[-1]}: a “massive "
            "activation”, which in many models goes with the first token acting as the "
            "attention sink; it does not mean the first token's content matters most."
        )
    return text


NO_SUBLAYERS = (
    "This model's layers either are laid out unlike the families this app knows (Llama, "
    "Qwen, Gemma, Mistral, GPT-2, GPT-NeoX, Phi) or normalise what attention and the MLP "
    "write before adding it (Gemma 2), so the stream between them cannot be read."
)
SUBLAYER_CAPTION = (
    "Each point is this step's residual stream read through the final norm and the "
    "unembedding: after “layer i attn” is resid_mid (the layer's input plus its attention "
    "output; in models whose MLP reads the layer's input beside attention, as GPT-NeoX and "
    "Phi do, a sum the model never forms itself), after “layer i MLP” is resid_post (plus "
    "the MLP output), the same state as "
    "row “layer i” in the table. The colour says which sub-layer wrote last. Rises and falls "
    "are changes in the natural log-probability of the final prediction."
)


SPREAD_TITLES = {
    "attn": "What attention writes",
    "mlp": "What the MLP writes",
    "resid": "The residual stream after the layer",
}


def spread_frame(spread: ActivationSpread) -> pd.DataFrame:
    """One row per sub-layer part and layer: its quantiles and extremes."""
    rows = []
    for k, part in enumerate(SPREAD_PARTS):
        for layer in range(spread.quantiles.shape[1]):
            q01, q25, q50, q75, q99 = (float(x) for x in spread.quantiles[k, layer])
            lo, hi = (float(x) for x in spread.extremes[k, layer])
            rows.append(
                {"part": SPREAD_TITLES[part], "layer": layer, "q01": q01, "q25": q25,
                 "median": q50, "q75": q75, "q99": q99, "min": lo, "max": hi}
            )  # fmt: skip
    return pd.DataFrame(rows)


def activation_spread_chart(spread: ActivationSpread) -> alt.VConcatChart:
    """Per layer, a box from the 25th to the 75th percentile of the values, whiskers from the
    1st to the 99th, a tick at the median; one panel per part, each its own scale."""
    df = spread_frame(spread)
    tip = [
        alt.Tooltip("layer:O"),
        *[alt.Tooltip(f"{c}:Q", format=".3f") for c in ("min", "q01", "q25", "median", "q75",
                                                        "q99", "max")],
    ]  # fmt: skip
    panels = []
    for title in SPREAD_TITLES.values():
        base = alt.Chart(df[df.part == title], title=title).encode(
            x=alt.X("layer:O", title="layer", axis=alt.Axis(labelAngle=0)), tooltip=tip
        )
        whisker = base.mark_rule().encode(y=alt.Y("q01:Q", title="value"), y2="q99:Q")
        box = base.mark_bar(size=9, color="#4c78a8").encode(y="q25:Q", y2="q75:Q")
        mid = base.mark_tick(color="white", size=9, thickness=2).encode(y="median:Q")
        panels.append((whisker + box + mid).properties(width=alt.Step(16), height=140))
    return alt.vconcat(*panels)


def activation_spread_caption(spread: ActivationSpread) -> str:
    """What the boxes count, and where the widest values are."""
    k = SPREAD_PARTS.index("resid")
    widest = int(np.argmax(spread.extremes[k, :, 1] - spread.extremes[k, :, 0]))
    lo, hi = (float(x) for x in spread.extremes[k, widest])
    return (
        f"Every component of every vector of the last {spread.tokens} tokens, per layer: the "
        "box holds the middle half of the values (25th to 75th percentile), the whiskers "
        "the 1st to the 99th, the white tick the median; hover a layer for its extremes. "
        f"The residual stream's widest layer is {widest}, from {lo:.1f} to {hi:.1f}: a few "
        "components far larger than the rest (the heatmaps above show where)."
    )
