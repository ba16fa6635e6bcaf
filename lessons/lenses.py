"""Logit lens per step, attention fingerprints per token, and the weight views."""

import streamlit as st

from app import caches
from app.markdown import md_escape
from app.state import bound, state
from app.widgets import chrome, controls, figures, model
from lib.analysis.logit_lens import readout_names, tied_embeddings
from lib.analysis.residual import supports_sublayers
from lib.analysis.weights import has_ov_weights
from lib.model.loading import LoadedModel
from lib.model.request import Run
from lib.viz import lens as vl
from lib.viz.fingerprint import dimensions_heatmap, fingerprint_table, zone_rules_text, zone_strip
from lib.viz.lens import lens_overview, lens_table
from lib.viz.text import fingerprint_caption
from lib.viz.weights import (
    OV_CAPTION,
    appears_in,
    copying_caption,
    copying_grid,
    ov_chart,
    pca_caption,
    pca_chart,
    spectrum_caption,
    spectrum_chart,
)


def logit_lens(lm: LoadedModel, run: Run) -> None:
    r = run.result
    lens = caches.logit_lens(run.key, lm, r)
    text = caches.token_texts(lm.spec, lm)
    s = controls.step_slider("step", r.n_steps, "Which token's prediction to follow.")
    settled = readout_names(lens.n_readouts - 1)[int(lens.settles_at[s])]
    st.markdown(
        f"**Step {s + 1}:** the model's top prediction is “{md_escape(text(lens.final_ids[s]))}”"
        f", top-1 from **{settled}** on (of {lens.n_readouts - 1} layers)."
    )
    if int(r.generated_ids[s]) != int(lens.final_ids[s]):
        st.caption(f"The run wrote “{md_escape(r.texts[r.prompt_len + s])}” instead of it.")
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
        "attention weights, so hiding the sink does not apply here."
    )
    queries = r.token_ids[r.prompt_len - 1 : r.prompt_len - 1 + r.n_steps]
    st.caption(
        vl.embeddings_caption(lens, queries, tied_embeddings(lm), lambda i: md_escape(text(i)))
    )
    sublayers(lm, run, s)
    figures.chart(lens_overview(lens, r.texts[r.prompt_len :]), width="content")
    st.caption("Probability of each step's final prediction after every layer: most appear late.")


def sublayers(lm: LoadedModel, run: Run, s: int) -> None:
    st.subheader("Before and after attention")
    if not supports_sublayers(lm):
        st.info(vl.NO_SUBLAYERS)
        return
    sl = caches.sublayer_lens(run.key, lm, run.result)
    text = caches.token_texts(lm.spec, lm)
    measure = st.radio("Show", vl.SUBLAYER_MEASURES, horizontal=True, **bound("lens_measure"))
    figures.chart(vl.sublayer_chart(sl, s, text, measure), width="content")
    st.markdown(vl.sublayer_sentence(sl, s))
    st.caption(vl.SUBLAYER_CAPTION)


def activations(lm: LoadedModel, run: Run) -> None:
    if not supports_sublayers(lm):
        st.info(vl.NO_SUBLAYERS)
        return
    norms = caches.activation_norms(run.key, lm, run.result.token_ids)
    text = caches.token_texts(lm.spec, lm)
    tokens = [text(i) for i in run.result.token_ids]
    figures.chart(vl.activations_chart(norms, tokens), width="content")
    st.caption(vl.activations_caption(norms, [md_escape(t) for t in tokens]))
    st.subheader("How the values are spread")
    spread = caches.activation_spread(run.key, lm, run.result.token_ids)
    figures.chart(vl.activation_spread_chart(spread), width="content")
    st.caption(vl.activation_spread_caption(spread))


def fingerprints(run: Run) -> None:
    # The sink switch sits with the one view on this page it changes.
    hide = controls.sink_toggle(
        help="Drop the first token from every attention row and renormalise "
        "before the fingerprints are computed."
    )
    fp = caches.fingerprints(run.key, hide, run.result)
    tokens = run.result.texts[run.result.prompt_len :]
    figures.chart(zone_strip(fp, tokens), width="content")
    st.caption(fingerprint_caption(hide))
    figures.chart(dimensions_heatmap(fp, tokens), width="content")
    with st.expander("The 20 numbers and the zone rules"):
        st.dataframe(fingerprint_table(fp, tokens), width="stretch")
        st.markdown(zone_rules_text())


def weights(lm: LoadedModel, run: Run) -> None:
    r = run.result
    st.subheader("The run's tokens in embedding space")
    pca = caches.pca(run.key, lm, r.token_ids)
    text = caches.token_texts(lm.spec, lm)
    where = appears_in(
        pca.token_ids, set(r.token_ids[: r.prompt_len].tolist()), set(r.generated_ids.tolist())
    )
    vocab = [text(t) for t in pca.vocab_ids]
    figures.chart(pca_chart(pca, [text(t) for t in pca.token_ids], where, vocab), width="content")
    st.caption(pca_caption(pca, int(lm.embedding_matrix().shape[1])))
    if not has_ov_weights(lm):
        st.info("This model's attention weights are laid out unlike any family this app knows.")
        return
    st.subheader("What each head can write: OV-circuit singular values")
    state.lens.ov_layer = state.lens.ov_layer if state.lens.ov_layer in range(lm.n_layers) else 0
    layer = st.selectbox("OV layer", list(range(lm.n_layers)), **bound("lens_ov_layer"))
    figures.chart(ov_chart(caches.ov_spectra(lm.spec, int(layer), lm)), width="content")
    st.caption(OV_CAPTION)
    copying_heads(lm)


def copying_heads(lm: LoadedModel) -> None:
    st.subheader("Copying heads: OV-circuit eigenvalues")
    cp = caches.copying(lm.spec, lm)
    figures.chart(copying_grid(cp), width="content")
    st.caption(copying_caption(cp))
    lens = state.lens
    if lens.cp_layer not in range(cp.n_layers) or lens.cp_head not in range(cp.n_heads):
        lens.cp_layer, lens.cp_head, _ = cp.strongest(1)[0]  # start on the strongest copier
    c1, c2 = st.columns(2)
    layer = c1.selectbox("Layer", list(range(cp.n_layers)), **bound("lens_cp_layer"))
    head = c2.selectbox("Head", list(range(cp.n_heads)), **bound("lens_cp_head"))
    figures.chart(spectrum_chart(cp.eigenvalues[layer, head]), width="content")
    st.caption(spectrum_caption(cp, int(layer), int(head)))


chrome.page_intro(
    "Logit lens & fingerprints",
    "Read the model's mind layer by layer: what it would predict if it stopped early, where "
    "each token's attention went, and what its weights can do.",
)
run = chrome.need_run()
# Only the open tab is computed: switching tabs reruns the page.
lens_tab, fp_tab, weights_tab, act_tab = st.tabs(
    ["Logit lens", "Attention fingerprints", "Embeddings & weights", "Activations"],
    key="lens_tab",
    on_change="rerun",
)
if fp_tab.open:
    with fp_tab:
        fingerprints(run)
if lens_tab.open:
    with lens_tab:
        logit_lens(model.need_model(run, "The logit lens"), run)
if weights_tab.open:
    with weights_tab:
        weights(model.need_model(run, "The weight views"), run)
if act_tab.open:
    with act_tab:
        activations(model.need_model(run, "The activation norms"), run)
chrome.page_source(__file__)
