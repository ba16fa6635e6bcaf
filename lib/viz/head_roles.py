"""The head-roles grid (layers x heads, clickable) and the table of the strongest heads."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from lib.analysis.head_roles import ROLE_TITLES, ROLES, HeadRoles

PICK = "head_pick"  # the grid's selection parameter: the clicked cell's layer and head


def grid_frame(roles: HeadRoles, role: str) -> pd.DataFrame:
    """One row per head: layer, head, every role's score, and `score` for the chosen role."""
    L, H = roles.n_layers, roles.n_heads
    layer, head = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    df = pd.DataFrame({"layer": layer.ravel(), "head": head.ravel()})
    for r in ROLES:
        df[r] = roles.score(r).ravel().astype(np.float64)
    df["score"] = df[role]
    return df


def grid_chart(df: pd.DataFrame, role: str) -> alt.Chart:
    """Heads coloured by the chosen role's score (0..1); a click selects one head."""
    pick = alt.selection_point(name=PICK, fields=["layer", "head"], on="click")
    return (
        alt.Chart(df)
        .mark_rect(stroke="white", strokeWidth=0.5)
        .encode(
            x=alt.X("head:O", title="head", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("layer:O", title="layer"),
            color=alt.Color(
                "score:Q",
                scale=alt.Scale(scheme="viridis", domain=[0, 1]),
                title=ROLE_TITLES[role],
            ),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.5)),
            tooltip=[
                alt.Tooltip("layer:O"),
                alt.Tooltip("head:O"),
                *[alt.Tooltip(f"{r}:Q", title=ROLE_TITLES[r], format=".3f") for r in ROLES],
            ],
        )
        .add_params(pick)
        .properties(width=alt.Step(34), height=alt.Step(16))
    )


def picked_head(event, n_layers: int, n_heads: int) -> tuple[int, int] | None:
    """(layer, head) from the grid's selection event, or None (nothing valid clicked)."""
    try:
        point = event["selection"][PICK][0]
        layer, head = int(point["layer"]), int(point["head"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return (layer, head) if 0 <= layer < n_layers and 0 <= head < n_heads else None


def strongest_heads(roles: HeadRoles, per_role: int = 3) -> pd.DataFrame:
    """The best `per_role` heads of every role that has a score, with its chance level."""
    rows = []
    for i, role in enumerate(ROLES):
        s = roles.score(role)
        if np.isnan(s).all():
            continue
        for flat in np.argsort(-np.nan_to_num(s, nan=-1).ravel(), kind="stable")[:per_role]:
            layer, head = divmod(int(flat), roles.n_heads)
            rows.append(
                {
                    "role": ROLE_TITLES[role],
                    "layer": layer,
                    "head": head,
                    "score": float(s[layer, head]),
                    "chance": float(roles.chance[i]),
                }
            )
    return pd.DataFrame(rows)
