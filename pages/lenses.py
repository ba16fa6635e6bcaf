"""Logit lens per step, attention fingerprints per token, and seed 001's weight views."""

import streamlit as st

from app import caches
from app import widgets as w
from app.runs import Run
from app.state import bound, state
from lib.analysis.logit_lens import readout_names
from lib.analysis.weights import attention_eigenvalues, has_ov_weights
from lib.measures import hide_sink
from lib.model.loading import LoadedModel
from lib.viz.fingerprint import dimensions_heatmap, fingerprint_table, zone_rules_text, zone_strip
from lib.viz.lens import lens_overview, lens_table
from lib.viz.text import describe_aggregation, fingerprint_caption
from lib.viz.weights import appears_in, eigen_chart, ov_chart, pca_chart

MAX_EIGEN = 120  # bars drawn; a long run's matrix has one eigenvalue per token


def logit_lens(lm: LoadedModel, run: Run) -> None:
    r = run.result
    lens = caches.logit_lens(run.key, lm, r)
    text = caches.token_texts(lm.spec, lm)
    s = w.step_slider("hr_lens_step", r.n_steps, "Which token's prediction to follow.")
    settled = readout_names(lens.n_readouts - 1)[int(lens.settles_at[s])]
    st.markdown(
        f"**Step {s + 1}:** the model's top prediction is “{w.md_escape(text(lens.final_ids[s]))}”"
        f", top-1 from **{settled}** on (of {lens.n_readouts - 1} layers)."
    )
    if int(r.generated_ids[s]) != int(lens.final_ids[s]):
        st.caption(f"The run wrote “{w.md_escape(r.texts[r.prompt_len + s])}” instead of it.")
    st.dataframe(
        lens_table(lens, s, text),
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
    st.altair_chart(lens_overview(lens, r.texts[r.prompt_len :]), width="content")
    st.caption("Probability of each step's final prediction after every layer: most appear late.")


def fingerprints(run: Run, hide: bool) -> None:
    fp = caches.fingerprints(run.key, hide, run.result)
    tokens = run.result.texts[run.result.prompt_len :]
    st.altair_chart(zone_strip(fp, tokens), width="content")
    st.caption(fingerprint_caption(hide))
    st.altair_chart(dimensions_heatmap(fp, tokens), width="content")
    with st.expander("The 20 numbers and the zone rules"):
        st.dataframe(fingerprint_table(fp, tokens), width="stretch")
        st.markdown(zone_rules_text())


def weights(lm: LoadedModel, run: Run, hide: bool) -> None:
    r = run.result
    st.subheader("The run's tokens in embedding space")
    pca = caches.pca(run.key, lm, r.token_ids)
    text = caches.token_texts(lm.spec, lm)
    where = appears_in(
        pca.token_ids, set(r.token_ids[: r.prompt_len].tolist()), set(r.generated_ids.tolist())
    )
    st.altair_chart(pca_chart(pca, [text(t) for t in pca.token_ids], where), width="content")
    st.caption(
        f"The input embeddings of the {len(where)} distinct tokens of this run, projected on "
        "their two main directions (PCA). Tokens the model treats alike sit close together."
    )
    st.subheader("What each head can write: OV-circuit singular values")
    if has_ov_weights(lm):
        state.hr_ov_layer = state.hr_ov_layer if state.hr_ov_layer in range(lm.n_layers) else 0
        layer = st.selectbox("OV layer", list(range(lm.n_layers)), **bound("hr_ov_layer"))
        st.altair_chart(ov_chart(caches.ov_spectra(lm.spec, int(layer), lm)), width="content")
        st.caption(
            "Each head moves information with W_O W_V (its layer's input-norm gain folded "
            "in). A steep drop means the head writes a few directions (a specialist); a flat "
            "curve means it can copy many. Weights only: the same for every prompt."
        )
    else:
        st.caption("This model's attention weights are not laid out as v_proj / o_proj.")
    st.subheader("Eigenvalues of an attention matrix")
    layer, head = w.layer_head_picker(r.n_layers, r.n_heads)
    head = None if layer is None else head
    m = caches.full(run.key, layer, lm, r.token_ids).matrix(head)
    ev = attention_eigenvalues(hide_sink(m) if hide else m)[:MAX_EIGEN]
    st.altair_chart(eigen_chart(ev), width="content")
    what = describe_aggregation(r.n_layers, r.n_heads, layer, head)
    st.caption(
        f"The whole sequence's attention matrix, {what}; the largest {len(ev)} eigenvalues. "
        "A causal matrix is lower triangular, so its "
        "eigenvalues are its diagonal: how much each token attends to itself. "
        + ("The first token is hidden and rows renormalised." if hide else "Raw weights.")
    )


w.page_intro(
    "Logit lens & fingerprints",
    "Read the model's mind layer by layer: what it would predict if it stopped early, where "
    "each token's attention went, and what its weights can do.",
)
run = w.need_run()
hide = w.sink_toggle(
    help="Applies to the attention views here (fingerprints, eigenvalues); the logit lens "
    "and the weight views read no attention."
)
# Only the open tab is computed: switching tabs reruns the page.
lens_tab, fp_tab, weights_tab = st.tabs(
    ["Logit lens", "Attention fingerprints", "Embeddings & weights"],
    key="lens_tab",
    on_change="rerun",
)
if fp_tab.open:
    with fp_tab:
        fingerprints(run, hide)
if lens_tab.open:
    with lens_tab:
        logit_lens(w.need_model(run, "The logit lens"), run)
if weights_tab.open:
    with weights_tab:
        weights(w.need_model(run, "The weight views"), run, hide)
