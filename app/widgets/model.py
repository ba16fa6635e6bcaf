"""The model in use: named in the sidebar of every page, chosen on Generate, and required
(the very model that made the run) by the pages that run it again."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from app import caches
from app.markdown import md_escape
from app.state import BUNDLED_LABEL, bound, state
from lib.config import BUNDLED_MODEL, SUGGESTED_HUB_MODELS, Limits
from lib.model.errors import ModelLoadError

if TYPE_CHECKING:
    from lib.model.loading import LoadedModel
    from lib.model.request import Run

OTHER_MODEL = "Other: a Hugging Face id or a local folder"


def current_model() -> LoadedModel | None:
    """The model in use, or None (with the reason in `state.model_error`)."""
    try:
        return caches.model(state.model_spec)
    except ModelLoadError as err:
        state.model_error = str(err)
        return None


def model_status(slot) -> bool:
    """The sidebar (`slot`, a placeholder in it) names the model in use on every page (the
    picker is on Generate). The bundled model, not loaded yet, loads in the background
    while the page is drawn. Returns whether the model was named as loaded (main.py draws
    the slot again after the page, when a page loaded it meanwhile)."""
    with slot.container():
        st.subheader("Model")
        lm = caches.loaded_model(state.model_spec)
        if lm is None and state.model_spec == BUNDLED_MODEL and caches.warm_up():
            st.info(
                f"{BUNDLED_LABEL}: loading in the background. A page that needs it waits for it.",
                icon=":material/hourglass_top:",
            )
            return False
        lm = lm or current_model()
        if lm is None:
            st.warning("No model is loaded: " + md_escape(state.model_error or ""))
            return True
        from lib.model.anatomy import support_note  # torch is imported by now

        st.success(md_escape(lm.name), icon=":material/check_circle:")
        if lm.source == "lab" and st.button("Back to the bundled model", icon=":material/undo:"):
            state.model_spec, state.model_choice = BUNDLED_MODEL, BUNDLED_LABEL
            st.rerun()
        st.caption(
            (
                f"{lm.n_params / 1e6:,.0f} M parameters"
                if lm.n_params >= 1e6
                else f"{lm.n_params:,} parameters"
            )
            + f" · {lm.n_layers} layers × {lm.n_heads} heads"
            f" · {lm.device.type} · {str(lm.dtype).removeprefix('torch.')}. "
            + support_note(lm.model)
        )
    return True


def model_picker() -> None:
    """Choose the bundled model, a suggested hub model or any id / folder; on failure the
    previous model stays in use."""
    with st.expander("Model", icon=":material/memory:"):
        hub = Limits.from_env().allow_hub  # a shared server may switch the hub off
        choices = {BUNDLED_LABEL: BUNDLED_MODEL} | {m: m for m in SUGGESTED_HUB_MODELS if hub}
        if state.model_choice not in (*choices, OTHER_MODEL):
            state.model_choice = BUNDLED_LABEL
        m1, m2 = st.columns([2, 3])
        choice = m1.selectbox(
            "Choose a model",
            [*choices, OTHER_MODEL],
            **bound("model_choice"),
            help="Hub models need a network connection the first time."
            if hub
            else "This server loads no models from the hub; a model folder on it still works.",
        )
        if choice == OTHER_MODEL:
            spec = m2.text_input(
                "Model id or folder",
                **bound("model_custom"),
                placeholder="e.g. HuggingFaceTB/SmolLM2-360M-Instruct",
            )
        else:
            spec = choices[choice]
        spec = spec.strip()
        if st.button("Load model", disabled=not spec or spec == state.model_spec):
            try:
                caches.model(spec)
                state.model_spec, state.model_error = spec, None
            except ModelLoadError as err:
                state.model_error = str(err)
        if state.model_error:
            st.error(md_escape(state.model_error), icon=":material/error:")
            st.caption("The previous model stays in use.")


def need_model(run: Run, purpose: str) -> LoadedModel:
    """The model that made `run` (compared by its spec), or a warning and the page stops."""
    lm = current_model()
    if lm is None or lm.spec != run.result.model_spec:
        st.warning(
            f"{purpose} needs the model that made the current run. Load it again on the "
            "Generate page, or generate a new run."
        )
        st.stop()
    return lm
