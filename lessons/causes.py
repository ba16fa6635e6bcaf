"""Cause and effect: direct logit attribution, and activation patching between two prompts."""

import streamlit as st

from app import caches
from app.markdown import md_escape
from app.state import bound
from app.widgets import chrome, controls, figures, model, prove
from lib.analysis.patching import PRESETS, PatchError, answer_id, encode_pair
from lib.model.probes import PATCH_SITES
from lib.viz import causes as cv

chrome.page_intro(
    "Cause and effect",
    "Attention shows where a token looked; these two tools test what caused it. Split the "
    "chosen token's logit into what each part of the model wrote, then copy activations "
    "from one prompt into another and see which ones carry the answer.",
)

st.header("1. What wrote this token", divider="gray")
run = chrome.need_run()
r = run.result
lm = model.need_model(run, "Attributing a logit")
text = caches.token_texts(lm.spec, lm)
t = controls.step_slider("step", r.n_steps, "Which generated token's logit to split.")
token = text(r.generated_ids[t])
try:
    a = caches.logit_attribution(run.key, t, lm, r)
except ValueError as err:  # a model whose layers do not add plain sums
    st.info(md_escape(err), icon=":material/info:")
else:
    figures.plotly(cv.attribution_waterfall(a, token), config={"displayModeBar": False})
    st.caption(md_escape(cv.attribution_caption(a, token)))
    with st.expander("Each head's part (layer x head)"):
        figures.plotly(cv.head_grid(a), config={"displayModeBar": False})
        st.caption(
            "Each head's result through W_O, then through the frozen final norm and the "
            "unembedding of this token: blue raised its logit, red lowered it. A layer's "
            "heads and W_O's bias add up to its attention bar above."
        )
    prove.prove_parts(run, lm, t)

st.header("2. Patch one run into another", divider="gray")
st.markdown(
    "Two prompts of the same length that want different answers. Run the **corrupted** "
    "one, but copy one activation from the **clean** one; if the clean answer comes back, "
    "that activation carried it."
)
preset = st.selectbox("Example", list(PRESETS), **bound("patch_preset"))
clean_text, corrupt_text, good, bad = PRESETS[preset]
c1, c2 = st.columns(2)
clean_text = c1.text_input("Clean prompt", clean_text, key=f"patch_clean_{preset}")
corrupt_text = c2.text_input("Corrupted prompt", corrupt_text, key=f"patch_corrupt_{preset}")
good = c1.text_input("Its answer (one token)", good, key=f"patch_good_{preset}")
bad = c2.text_input("The corrupted answer (one token)", bad, key=f"patch_bad_{preset}")
site = st.radio(
    "What to patch",
    PATCH_SITES,
    horizontal=True,
    format_func={
        "resid_pre": "the residual stream",
        "attn": "attention's output",
        "mlp": "the MLP's output",
        "head": "each head",
    }.get,  # fmt: skip
    **bound("patch_site"),
)
try:
    clean, corrupt = encode_pair(lm, clean_text, corrupt_text)
    answer, wrong = answer_id(lm, good), answer_id(lm, bad)
    if answer == wrong:
        raise PatchError("The two answers are the same token: their difference is always 0.")
except PatchError as err:
    st.warning(md_escape(err), icon=":material/warning:")
    st.stop()
width = lm.n_heads if site == "head" else len(clean)
st.caption(
    md_escape(
        f"{lm.n_layers} layers x {width} {'heads' if site == 'head' else 'positions'}: "
        f"{lm.n_layers * width:,} patched runs, 32 to a forward pass. Metric: the logit of "
        f"{good!r} minus that of {bad!r} at the last position."
    )
)
if st.button("Run the patching", icon=":material/science:", key="patch_go"):
    bar = st.progress(0.0, text="Patching ...")
    try:
        sweep = caches.patch_sweep(
            lm.spec, tuple(clean), tuple(corrupt), answer, wrong, site, lm,
            lambda done, total: bar.progress(done / total, text=f"{done:,} of {total:,} runs"),
        )  # fmt: skip
    except PatchError as err:  # a model whose layers the interface cannot read apart
        st.warning(md_escape(err), icon=":material/warning:")
        st.stop()
    bar.empty()
    columns = (
        [f"H{h}" for h in range(lm.n_heads)]
        if site == "head"
        else [f"{i} {text(x)}" for i, x in enumerate(clean)]
    )
    figures.plotly(cv.patch_heatmap(sweep, columns), config={"displayModeBar": False})
    st.caption(md_escape(cv.patch_caption(sweep, columns)))
chrome.page_source(__file__)
