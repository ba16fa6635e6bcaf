"""Logit lens per step, attention fingerprints per token, and seed 001's weight views."""

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from lib.fingerprint import DIMENSIONS, ZONES, Fingerprints, run_fingerprints
from lib.head_roles import drop_first_key
from lib.logit_lens import LogitLens, logit_lens, readout_names
from lib.models import LoadedModel
from lib.result import GenerationResult
from lib.tokens import token_label
from lib.weights_view import (
    EmbeddingPCA,
    attention_eigenvalues,
    embedding_pca,
    has_ov_weights,
    layer_ov_spectra,
)
from pages.common import (
    bound,
    cached_full,
    current_model,
    describe_aggregation,
    layer_head_choice,
    md_escape,
    need_run,
)

ZONE_COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#d62728", "#b0b0b0"]  # in ZONES order
TOKENS_PER_LINE = 10
FULL_AXIS = alt.Axis(labelOverlap=False, labelLimit=160)  # every token gets its label
MAX_EIGEN = 120  # bars drawn; a long run's matrix has one eigenvalue per token


@st.cache_data(max_entries=8, show_spinner="Reading every layer through the unembedding ...")
def cached_lens(run_key: str, _lm: LoadedModel, _result: GenerationResult) -> LogitLens:
    return logit_lens(_lm, _result)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_fingerprints(
    run_key: str, exclude_first: bool, _result: GenerationResult
) -> Fingerprints:
    return run_fingerprints(_result, exclude_first=exclude_first)


@st.cache_data(max_entries=4, show_spinner=False)
def cached_pca(run_key: str, _lm: LoadedModel, _ids: np.ndarray) -> EmbeddingPCA:
    return embedding_pca(_lm, _ids)


@st.cache_data(max_entries=8, show_spinner=False)
def cached_ov(model_spec: str, layer: int, _lm: LoadedModel) -> np.ndarray:
    return layer_ov_spectra(_lm, layer)


def token_text(lm: LoadedModel, token_id: int) -> str:
    return token_label(lm.tokenizer, token_id)


def lens_section(lm: LoadedModel, r: GenerationResult, run_key: str) -> None:
    lens = cached_lens(run_key, lm, r)
    n = r.n_steps
    ss = st.session_state
    ss.setdefault("hr_lens_step", 1)
    if not isinstance(ss["hr_lens_step"], int) or not 1 <= ss["hr_lens_step"] <= n:
        ss["hr_lens_step"] = 1
    if n > 1:
        st.slider(
            "Generation step",
            1,
            n,
            **bound("hr_lens_step"),
            help="Which generated token's prediction to follow through the layers.",
        )
    s = int(ss["hr_lens_step"]) - 1
    names = readout_names(lens.n_readouts - 1)
    final = token_text(lm, lens.final_ids[s])
    settled = int(lens.settles_at[s])
    st.markdown(
        f"**Step {s + 1}:** the model's top prediction is "
        f"“{md_escape(final)}”, top-1 from **{names[settled]}** on "
        f"(of {len(names) - 1} layers)."
    )
    if int(r.generated_ids[s]) != int(lens.final_ids[s]):
        st.caption(
            f"Sampling chose “{md_escape(r.generated_labels[s])}” instead of the top prediction."
        )
    table = pd.DataFrame(
        {
            "after": names,
            "top prediction": [token_text(lm, i) for i in lens.top_ids[s, :, 0]],
            "its probability": lens.top_probs[s, :, 0].astype(np.float64),
            "P(final token)": lens.final_prob[s].astype(np.float64),
            "rank of final token": lens.final_rank[s] + 1,
            "next 4": ["  ".join(token_text(lm, i) for i in row[1:]) for row in lens.top_ids[s]],
        }
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "its probability": st.column_config.NumberColumn(format="%.3f"),
            "P(final token)": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0),
        },
    )
    st.caption(
        "Logit lens: the hidden state after each layer, read through the model's own final "
        "norm and unembedding, as if the model stopped there. Rank 1 means top prediction. "
        "The last row is exactly the model's output. The lens reads hidden states, not "
        "attention, so the sink switch does not change it."
    )
    # Every step at once: where does each generated token become the top prediction?
    steps = [f"{i + 1}: {lbl}" for i, lbl in enumerate(r.generated_labels)]
    grid = pd.DataFrame(
        {
            "step": np.repeat(steps, lens.n_readouts),
            "readout": np.tile(np.arange(lens.n_readouts), n),
            "after": np.tile(names, n),
            "P(final token)": lens.final_prob.ravel().astype(np.float64),
            "rank": lens.final_rank.ravel() + 1,
        }
    )
    chart = (
        alt.Chart(grid)
        .mark_rect()
        .encode(
            x=alt.X("readout:O", title="readout (0 = embeddings, i = after layer i-1)"),
            y=alt.Y("step:O", sort=steps, title="generated token", axis=FULL_AXIS),
            color=alt.Color("P(final token):Q", scale=alt.Scale(scheme="blues", domain=[0, 1])),
            tooltip=["step:N", "after:N", alt.Tooltip("P(final token):Q", format=".3f"), "rank:Q"],
        )
        .properties(width=alt.Step(16), height=alt.Step(14))
    )
    st.altair_chart(chart, width="content")
    st.caption("Probability of each step's final prediction after every layer: most appear late.")


def fingerprint_section(r: GenerationResult, run_key: str, hide: bool) -> None:
    fp = cached_fingerprints(run_key, hide, r)
    labels = list(r.generated_labels)
    idx = np.arange(len(labels))
    df = pd.DataFrame(
        {
            "i": idx,
            "line": idx // TOKENS_PER_LINE,
            "col": idx % TOKENS_PER_LINE,
            "token": labels,
            "zone": fp.zones,
        }
    )
    for j, name in enumerate(DIMENSIONS[:4]):
        df[name] = fp.vectors[:, j].astype(np.float64)
    colour = alt.Color(
        "zone:N", scale=alt.Scale(domain=list(ZONES), range=ZONE_COLOURS), title="zone"
    )
    tips = ["i:Q", "token:N", "zone:N"] + [
        alt.Tooltip(f"{d}:Q", format=".3f") for d in DIMENSIONS[:4]
    ]
    base = alt.Chart(df).encode(
        x=alt.X("col:O", axis=None), y=alt.Y("line:O", axis=None), tooltip=tips
    )
    strip = base.mark_rect(cornerRadius=4, opacity=0.85).encode(color=colour) + base.mark_text(
        fontSize=13, limit=76
    ).encode(text="token:N")
    st.altair_chart(strip.properties(width=alt.Step(80), height=alt.Step(28)), width="content")
    st.caption(
        "The generated text, read left to right, each token coloured by the zone of the "
        "attention that produced it (mean over all layers and heads). Hover a token for "
        "its numbers. "
        + (
            "The first token is hidden and every row renormalised."
            if hide
            else "The first token (the attention sink) is included: it usually dominates, "
            "so most tokens land in the zone of its distance. Hide it to see the rest."
        )
    )
    long = pd.DataFrame(
        {
            "token": np.repeat([f"{i + 1}: {t}" for i, t in enumerate(labels)], len(DIMENSIONS)),
            "dimension": np.tile(DIMENSIONS, len(labels)),
            "value": fp.vectors.ravel().astype(np.float64),
        }
    )
    heat = (
        alt.Chart(long)
        .mark_rect()
        .encode(
            x=alt.X(
                "dimension:O",
                sort=list(DIMENSIONS),
                axis=alt.Axis(labelAngle=-60, labelOverlap=False),
            ),
            y=alt.Y(
                "token:O",
                sort=list(dict.fromkeys(long["token"])),
                title="generated token",
                axis=FULL_AXIS,
            ),
            color=alt.Color("value:Q", scale=alt.Scale(scheme="greens", domain=[0, 1])),
            tooltip=["token:N", "dimension:N", alt.Tooltip("value:Q", format=".3f")],
        )
        .properties(width=alt.Step(22), height=alt.Step(14))
    )
    st.altair_chart(heat, width="content")
    with st.expander("The 20 numbers and the zone rules"):
        st.dataframe(
            pd.DataFrame(fp.vectors, columns=list(DIMENSIONS)).assign(
                token=labels, zone=list(fp.zones)
            )[["token", "zone", *DIMENSIONS]],
            width="stretch",
        )
        st.markdown(ZONE_RULES)


ZONE_RULES = """
Distances count tokens back from the query (0 = itself). Rules, first match wins:

- **syntax_floor**: local mass (distance 0-9) at least 0.6 and entropy at most 0.6
- **long_range**: long mass (distance 100 or more) at least 0.4
- **semantic_bridge**: mid mass (distance 10-99) at least 0.4
- **structure_ripple**: the 8-bin position histogram has two peaks (bins of at least 0.15,
  larger than their neighbours) with a bin between them
- **diffuse**: anything else

Entropy is each head's entropy divided by log(number of keys), averaged over heads.
"""


def weights_section(lm: LoadedModel, r: GenerationResult, run_key: str, hide: bool) -> None:
    st.subheader("The run's tokens in embedding space")
    pca = cached_pca(run_key, lm, r.token_ids)
    prompt_ids = set(r.token_ids[: r.prompt_len].tolist())
    gen_ids = set(r.generated_ids.tolist())
    where = [
        "both" if t in prompt_ids and t in gen_ids else "prompt" if t in prompt_ids else "generated"
        for t in pca.token_ids.tolist()
    ]
    pts = pd.DataFrame(
        {
            "pc1": pca.coords[:, 0].astype(np.float64),
            "pc2": pca.coords[:, 1].astype(np.float64),
            "token": [token_text(lm, t) for t in pca.token_ids],
            "id": pca.token_ids,
            "in": where,
        }
    )
    enc = alt.Chart(pts).encode(
        x=alt.X("pc1:Q", title=f"PC 1 ({pca.explained[0]:.0%} of variance)"),
        y=alt.Y("pc2:Q", title=f"PC 2 ({pca.explained[1]:.0%} of variance)"),
        tooltip=["token:N", "id:Q", "in:N"],
    )
    scatter = enc.mark_circle(size=60).encode(color=alt.Color("in:N", title="appears in"))
    text = enc.mark_text(align="left", dx=6, fontSize=11, limit=90).encode(text="token:N")
    st.altair_chart((scatter + text).properties(width=640, height=420), width="content")
    st.caption(
        f"The input embeddings of the {len(pts)} distinct tokens of this run, projected on "
        "their two main directions (PCA). Tokens the model treats alike sit close together."
    )

    L = lm.n_layers
    st.subheader("What each head can write: OV-circuit singular values")
    if has_ov_weights(lm):
        st.session_state.setdefault("hr_ov_layer", 0)
        if st.session_state["hr_ov_layer"] not in range(L):
            st.session_state["hr_ov_layer"] = 0
        ov_layer = st.selectbox("OV layer", list(range(L)), **bound("hr_ov_layer"))
        sv = cached_ov(st.session_state["model_spec"], int(ov_layer), lm)
        ov = pd.DataFrame(
            {
                "head": np.repeat(np.arange(sv.shape[0]), sv.shape[1]),
                "index": np.tile(np.arange(sv.shape[1]), sv.shape[0]),
                "singular value": sv.ravel().astype(np.float64),
            }
        )
        st.altair_chart(
            alt.Chart(ov)
            .mark_line(point=True)
            .encode(
                x=alt.X("index:Q", title="singular value index"),
                y=alt.Y("singular value:Q", scale=alt.Scale(type="log")),
                color="head:N",
                tooltip=["head:N", "index:Q", alt.Tooltip("singular value:Q", format=".4f")],
            )
            .properties(width=640, height=300),
            width="content",
        )
        st.caption(
            "Each head moves information with W_O W_V (its layer's input-norm gain folded "
            "in). A steep drop means the head writes a few directions (a specialist); a flat "
            "curve means it can copy many. Weights only: the same for every prompt."
        )
    else:
        st.caption("This model's attention weights are not laid out as v_proj / o_proj.")

    st.subheader("Eigenvalues of an attention matrix")
    layer, head = layer_head_choice(r)
    if layer is None and head is not None:
        head = None
    full = cached_full(run_key, layer, lm, r.token_ids)
    m = full.matrix(head)
    m = drop_first_key(m) if hide else m
    ev = attention_eigenvalues(m)
    ev = ev[:MAX_EIGEN]
    eig = pd.DataFrame({"rank": np.arange(1, len(ev) + 1), "eigenvalue": ev.real})
    st.altair_chart(
        alt.Chart(eig)
        .mark_bar()
        .encode(
            x=alt.X("rank:O", title="eigenvalue rank"),
            y=alt.Y("eigenvalue:Q", scale=alt.Scale(domain=[0, 1])),
            tooltip=["rank:Q", alt.Tooltip("eigenvalue:Q", format=".4f")],
        )
        .properties(width=alt.Step(8), height=240),
        width="content",
    )
    st.caption(
        f"The whole sequence's attention matrix, {describe_aggregation(r, layer, head)}; "
        f"the largest {len(ev)} eigenvalues. "
        "A causal matrix is lower triangular, so its eigenvalues are its diagonal: how much "
        "each token attends to itself. Many large eigenvalues: a head that looks at the "
        "current token; all small: a head that looks elsewhere. "
        + ("The first token is hidden and rows renormalised." if hide else "Raw weights.")
    )


st.title("Logit lens & fingerprints")
run_key, r = need_run()
lm = current_model()
same_model = lm is not None and lm.name == r.model_name
hide = st.toggle(
    "Hide the first-token sink and renormalise",
    **bound("hide_sink"),
    help="Applies to the attention views here (fingerprints, eigenvalues); the logit lens "
    "and the weight views read no attention.",
)
tab_lens, tab_fp, tab_w = st.tabs(["Logit lens", "Attention fingerprints", "Embeddings & weights"])
with tab_fp:
    fingerprint_section(r, run_key, hide)
if not same_model:
    msg = "This view needs the model that made this run. Load it again on the Generate page."
    tab_lens.warning(msg)
    tab_w.warning(msg)
    st.stop()
with tab_lens:
    lens_section(lm, r, run_key)
with tab_w:
    weights_section(lm, r, run_key, hide)
