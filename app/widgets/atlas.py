"""The atlas page's parts: the token clicked on the map, the current run placed on it, and
"Build the map here"."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from app import caches
from app.markdown import md_escape
from app.runs import open_atlas_token
from app.widgets.figures import chart
from app.widgets.model import current_model
from lib.atlas.client import ServiceError, service_url
from lib.model.request import Run
from lib.viz.atlas import fingerprint_bars, placement_table

if TYPE_CHECKING:
    from lib.atlas.classify import Atlas, Placement
    from lib.atlas.store import Store


def build_map_button(store, output: str) -> None:
    """Ingest the built-in corpus (resumable: a stop loses nothing), then discover; one
    session at a time, the others are told to wait for it."""
    if not st.button("Build the map here (a few minutes)", icon=":material/map:"):
        return
    lock = caches.build_lock()
    if not lock.acquire(blocking=False):
        st.info("Another session is building the map right now; it appears here when done.")
        return
    try:
        from lib.atlas.build import build_map
        from lib.atlas.discovery import DiscoveryError

        lm = current_model()
        if lm is None:
            st.warning("No model is loaded.")
            return
        st.button("Stop", icon=":material/stop_circle:", help="What is ingested so far is kept.")
        bar = st.progress(0.0, text="Reading the corpus ...")
        try:
            build_map(store, lm, output, lambda fraction, text: bar.progress(fraction, text=text))
        except DiscoveryError as err:
            st.warning(md_escape(err))
            return
        caches.atlas_folder.clear()
        st.rerun()
    finally:
        lock.release()


def clicked_token(atlas: Atlas, store: Store, point: int | None) -> None:
    """The token clicked on the map: its context, zone, family and 20 numbers, and buttons
    that open its run on the graph or the matrices page."""
    if point is None or point >= len(atlas.points):
        st.caption("Click a dot on the map to see its token, its fingerprint and its run.")
        return
    p = atlas.points.iloc[point]
    st.text(f"{p['context']}")
    st.caption(
        f"Zone {p['zone'].replace('_', ' ')} · {atlas.cluster_label(p['cluster'])} "
        f"(strength {p['strength']:.2f}) · model {md_escape(p['model'])} · "
        + ("a generated token" if p["step"] >= 0 else "a token of a text the model read")
    )
    chart(fingerprint_bars(atlas.vectors[point]), width="content")
    b1, b2, _ = st.columns([1, 1, 2])
    target = None
    if b1.button("Open its run in the graph", icon=":material/hub:"):
        target = "lessons/attention_graph.py"
    if b2.button("Open its run in the matrices", icon=":material/grid_on:"):
        target = "lessons/matrices.py"
    if not target:
        return
    stored = store.run(int(p["run_id"]))
    lm = current_model()
    if stored is None:
        st.warning("That run has been deleted from the store since the map was made.")
    elif lm is not None:
        error = open_atlas_token(lm, stored, int(p["step"]), int(p["position"]), int(p["token_id"]))
        if error:
            st.warning(md_escape(error))
        else:
            st.switch_page(target)


def run_on_map(atlas: Atlas, run: Run, placement: Placement, vectors: np.ndarray) -> None:
    """The current run's tokens with their zone, family and confidence: from the classify
    service when the server names one (`TAV_ATLAS_SERVICE`), else from the library."""
    url = service_url()
    labels = list(run.result.texts[run.result.prompt_len :])
    answers = None
    if url:
        try:
            answers = caches.remote_classes(url, run.key, vectors)
        except ServiceError as err:
            st.warning(md_escape(err) + " Using the library directly instead.")
    names = atlas.names
    if answers:
        zs = [a["manifold"]["zone"] for a in answers]
        cl = [a["manifold"]["cluster_id"] for a in answers]
        conf = [a["manifold"]["confidence"] for a in answers]
        names = {a["manifold"]["cluster_id"]: a["manifold"]["cluster_label"] for a in answers}
        if answers[0].get("run_id") != atlas.run_id:
            st.caption(
                f"The service uses map {md_escape(answers[0].get('run_id'))}, this page "
                f"map {atlas.run_id}: its family numbers are its own."
            )
    else:
        zs, cl, conf = placement.zones, placement.cluster, placement.confidence
    st.dataframe(
        placement_table(labels, zs, cl, conf, names),
        hide_index=True,
        column_config={
            "confidence": st.column_config.ProgressColumn(
                min_value=0.0, max_value=1.0, format="%.2f"
            )
        },
    )
    st.caption(
        (
            "Classified by the atlas service at " + md_escape(url)
            if answers
            else "Classified by the library in this app"
        )
        + ". Family: the one most of the token's 15 nearest mapped fingerprints belong "
        "to (in the standardised 20-number space). Confidence: the share of those 15 in "
        "that family, times their own membership strength, times how near they are "
        "(1 = deep inside one family; near 0 = far from every mapped token)."
    )
