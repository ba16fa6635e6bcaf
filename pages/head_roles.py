"""Head roles: a layers x heads grid scoring what each head does; click a head to open it."""

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from lib.head_roles import ROLE_TITLES, ROLES, HeadRoles, head_roles, induction_probe
from lib.models import LoadedModel
from pages.common import MATRIX_WHOLE, bound, current_model, md_escape, need_run

PROBE = "Repeated random tokens (induction probe)"
TEXT = "This run's text"
PROBE_LEN = 50
PROBE_SEED = 0
SELECTION = "head_pick"
# The matrices page's "Rows" choice that shows a head's pattern over the whole sequence.


@st.cache_data(max_entries=4, show_spinner="Scoring every head on repeated random tokens ...")
def cached_probe(model_spec: str, exclude_first: bool, _lm: LoadedModel) -> HeadRoles:
    return induction_probe(_lm, PROBE_LEN, PROBE_SEED, exclude_first=exclude_first)


@st.cache_data(max_entries=4, show_spinner="Scoring every head on this run's text ...")
def cached_text_roles(
    run_key: str, exclude_first: bool, _lm: LoadedModel, _ids: np.ndarray
) -> HeadRoles:
    return head_roles(_lm, _ids, exclude_first=exclude_first)


def parse_pick(state) -> tuple[int, int] | None:
    """(layer, head) from an altair_chart selection state, or None."""
    try:
        points = state["selection"][SELECTION]
        return int(points[0]["layer"]), int(points[0]["head"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


def grid_frame(roles: HeadRoles, role: str) -> pd.DataFrame:
    L, H = roles.n_layers, roles.n_heads
    layer, head = np.meshgrid(np.arange(L), np.arange(H), indexing="ij")
    df = pd.DataFrame({"layer": layer.ravel(), "head": head.ravel()})
    for r in ROLES:
        df[r] = roles.score(r).ravel().astype(np.float64)
    df["score"] = df[role]
    return df


def grid_chart(df: pd.DataFrame, role: str) -> alt.Chart:
    pick = alt.selection_point(name=SELECTION, fields=["layer", "head"], on="click")
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


st.title("Head roles")
st.caption(
    "Each of the model's attention heads tends to do one job. This grid scores every head "
    "(rows: layers, columns: heads) for four well-known jobs. Click a head to open its "
    "attention pattern on the Attention matrices page."
)
run_key, r = need_run()
ss = st.session_state
lm = current_model()
if lm is None or lm.name != r.model_name:
    st.warning(
        "Scoring heads needs the model that made this run. Load it again on the Generate page."
    )
    st.stop()

ss.setdefault("hr_probe", PROBE)
ss.setdefault("hr_role", "induction")
ss.setdefault("hr_grid_nonce", 0)
c1, c2 = st.columns([3, 2])
probe = c1.radio(
    "Measured on",
    [PROBE, TEXT],
    **bound("hr_probe"),
    horizontal=True,
    help=f"The probe is {PROBE_LEN} random tokens shown twice, as in the induction-head "
    "papers: the second time, a head that looks up what came next last time can predict "
    "every token. Your own text shows what the heads do on it.",
)
role = c2.selectbox("Score", ROLES, format_func=ROLE_TITLES.get, **bound("hr_role"))
hide = st.toggle(
    "Hide the first-token sink and renormalise",
    **bound("hide_sink"),
    help="Drop the first token from every attention row and renormalise before scoring "
    "(TransformerLens's exclude_bos). The sink share itself is always the raw share.",
)

if probe == PROBE:
    roles = cached_probe(ss["model_spec"], hide, lm)
else:
    roles = cached_text_roles(run_key, hide, lm, r.token_ids)

chart_key = ss["hr_grid_key"] = f"hr_grid_{ss['hr_grid_nonce']}"
picked = parse_pick(ss.get(chart_key))
if picked is not None and 0 <= picked[0] < roles.n_layers and 0 <= picked[1] < roles.n_heads:
    ss["layer"], ss["head"] = f"Layer {picked[0]}", f"Head {picked[1]}"
    ss["matrix_source"] = MATRIX_WHOLE
    ss["hr_grid_nonce"] += 1  # coming back shows a fresh grid, not the same click again
    st.switch_page("pages/matrices.py")

df = grid_frame(roles, role)
st.altair_chart(grid_chart(df, role), on_select="rerun", key=chart_key, width="content")

chance = float(roles.chance[ROLES.index(role)])
scores = roles.score(role)
if np.isnan(scores).all():
    st.info(
        "No token in this text qualifies for this score (it needs a token that occurred "
        "before). Try the repeated random tokens."
    )
else:
    best = np.unravel_index(np.nanargmax(scores), scores.shape)
    st.caption(
        f"{ROLE_TITLES[role]}: the best head is layer {best[0]} head {best[1]} "
        f"({float(scores[best]):.3f}); spreading attention evenly would score {chance:.3f} "
        f"(chance). 1 means all of a head's attention goes where the role says. "
        + ("The first token is hidden and rows renormalised. " if hide and role != "sink" else "")
        + ("The sink share is the raw share, the part the switch hides. " if role == "sink" else "")
        + "Hover a cell for all four scores."
    )

if probe == PROBE and roles.n_random:
    first, second = roles.repeat_losses()
    st.subheader("In-context copying")
    m1, m2, m3 = st.columns(3)
    m1.metric("Loss, first time through", f"{first:.2f} nats")
    m2.metric("Loss, second time", f"{second:.2f} nats", delta=f"{second - first:.2f}")
    m3.metric("Best induction head", f"{float(np.nanmax(roles.score('induction'))):.3f}")
    st.caption(
        f"The probe is {PROBE_LEN} random tokens, then the same {PROBE_LEN} again. The first "
        "time the tokens are unpredictable; the second time the model can copy them from "
        "its context, and its loss (the surprise at each next token) drops. Induction "
        "heads do that copying: they attend from a token to the one that followed it before. "
        "To watch one on your own text, generate from a prompt that repeats a phrase, then "
        "click the head."
    )

with st.expander("Strongest heads for each role"):
    rows = []
    for rl in ROLES:
        s = roles.score(rl)
        if np.isnan(s).all():
            continue
        for flat in np.argsort(-np.nan_to_num(s, nan=-1).ravel())[:3]:
            layer, head = divmod(int(flat), roles.n_heads)
            rows.append(
                {
                    "role": ROLE_TITLES[rl],
                    "layer": layer,
                    "head": head,
                    "score": float(s[layer, head]),
                    "chance": float(roles.chance[ROLES.index(rl)]),
                }
            )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(
        md_escape(
            "Previous token: attention to the token just before. Induction: attention to the "
            "token right after an earlier occurrence of the current token. Duplicate token: "
            "attention to earlier copies of the current token. Sink: the share of attention "
            "parked on the first token. Each is averaged over the tokens that have such a "
            "target."
        )
    )
