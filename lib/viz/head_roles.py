"""The head-roles grid (layers x heads, clickable) and the table of the strongest heads; the
weights-only copying score (OV eigenvalues) can stand beside the attention roles."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from lib.analysis.head_roles import ROLE_TITLES, ROLES, HeadRoles
from lib.analysis.weights import OVCopying
from lib.viz.weights import COPYING_SCALE, COPYING_TITLE, copying_caption

PICK = "head_pick"  # the grid's selection parameter: the clicked cell's layer and head
# The weights-only score beside the attention roles: each head's OV-circuit copying score.
COPYING = "ov_copying"
# Beside the roles: how widely each head spreads its attention (specialised or general).
SPREAD = "spread"
SCORE_TITLES: dict[str, str] = {
    **ROLE_TITLES,
    COPYING: COPYING_TITLE,
    SPREAD: "Spread (attention entropy)",
}


def score_options(with_copying: bool) -> list[str]:
    """The grid's score choices: the attention roles, copying beside duplicate token, and
    last the spread of each head's attention."""
    options = list(ROLES)
    if with_copying:
        options.insert(options.index("duplicate_token") + 1, COPYING)
    return [*options, SPREAD]


def grid_frame(roles: HeadRoles, role: str, copying: np.ndarray | None = None) -> pd.DataFrame:
    """One row per head: layer, head, every role's score, the (L, H) copying score when
    given, and `score` for the chosen one."""
    L, H = roles.n_layers, roles.n_heads
    layer, head = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    df = pd.DataFrame({"layer": layer.ravel(), "head": head.ravel()})
    for r in ROLES:
        df[r] = roles.score(r).ravel().astype(np.float64)
    if copying is not None:
        if copying.shape != (L, H):
            raise ValueError(f"copying scores must be ({L}, {H})")
        df[COPYING] = np.asarray(copying).ravel().astype(np.float64)
    if roles.spread is not None:
        df[SPREAD] = roles.spread.ravel().astype(np.float64)
    df["score"] = df[role]
    return df


def grid_chart(df: pd.DataFrame, role: str) -> alt.Chart:
    """Heads coloured by the chosen score (roles 0..1, copying -1..+1 around 0); a click
    selects one head."""
    pick = alt.selection_point(name=PICK, fields=["layer", "head"], on="click")
    scale = COPYING_SCALE if role == COPYING else alt.Scale(scheme="viridis", domain=[0, 1])
    shown = [r for r in (*ROLES, COPYING, SPREAD) if r in df.columns]
    return (
        alt.Chart(df)
        .mark_rect(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("head:O", title="head", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("layer:O", title="layer"),
            color=alt.Color("score:Q", scale=scale, title=SCORE_TITLES[role]),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.5)),
            tooltip=[
                alt.Tooltip("layer:O"),
                alt.Tooltip("head:O"),
                *[alt.Tooltip(f"{r}:Q", title=SCORE_TITLES[r], format=".3f") for r in shown],
            ],
        )
        .add_params(pick)
        .properties(width=alt.Step(34), height=alt.Step(16))
    )


def copying_roles_caption(cp: OVCopying) -> str:
    """The copying grid's caption on the head-roles page: it is not measured on any text."""
    return (
        copying_caption(cp)
        + " Weights only: the same for every text, so neither the text it is measured on "
        "nor the sink switch changes it. Hover a cell for every score, click it to open the head."
    )


def picked_head(event, n_layers: int, n_heads: int) -> tuple[int, int] | None:
    """(layer, head) from the grid's selection event, or None (nothing valid clicked)."""
    try:
        point = event["selection"][PICK][0]
        layer, head = int(point["layer"]), int(point["head"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return (layer, head) if 0 <= layer < n_layers and 0 <= head < n_heads else None


def strongest_heads(
    roles: HeadRoles, per_role: int = 3, copying: np.ndarray | None = None
) -> pd.DataFrame:
    """The best `per_role` heads of every role that has a score, with its chance level;
    with the (L, H) copying scores, theirs too (chance 0: random weights average 0)."""
    scored = [(ROLE_TITLES[r], roles.score(r), float(roles.chance[i])) for i, r in enumerate(ROLES)]
    if copying is not None:
        scored.insert(ROLES.index("duplicate_token") + 1, (COPYING_TITLE, copying, 0.0))
    rows = []
    for title, s, chance in scored:
        if np.isnan(s).all():
            continue
        for flat in np.argsort(-np.nan_to_num(s, nan=-np.inf).ravel(), kind="stable")[:per_role]:
            layer, head = divmod(int(flat), roles.n_heads)
            rows.append(
                {
                    "role": title,
                    "layer": layer,
                    "head": head,
                    "score": float(s[layer, head]),
                    "chance": chance,
                }
            )
    return pd.DataFrame(rows)
