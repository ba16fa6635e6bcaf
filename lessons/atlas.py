"""Attention atlas: every token the model has read or written, mapped by how it attended."""

import hashlib

import numpy as np
import streamlit as st

from app import caches
from app.markdown import md_escape
from app.runs import atlas_store_path
from app.state import bound, state
from app.widgets import chrome, figures
from app.widgets.atlas import (
    arrivals,
    build_map_button,
    clicked_token,
    family_cards,
    job_progress,
    my_shared_runs,
    run_on_map,
)
from lib.analysis.fingerprint import ZONES
from lib.atlas.discovery import default_output
from lib.atlas.shipped import COMMAND as SHIP_COMMAND
from lib.atlas.shipped import is_shipped
from lib.atlas.store import StoreError
from lib.viz.atlas import HIDDEN_TEXT, point_from_event
from lib.viz.fingerprint import zone_rules_text

chrome.page_intro(
    "Attention atlas",
    "Each dot is one token of a text the model read or wrote, placed by its attention fingerprint: "
    "tokens that looked at their context the same way sit together. The families that "
    "appear are kinds of attention behaviour the model uses again and again.",
)
output = str(default_output())
try:
    store = caches.atlas_store(atlas_store_path())
except StoreError as err:
    st.error(md_escape(err), icon=":material/error:")
    st.stop()
folder = caches.atlas_folder(output)
atlas = None
if folder:
    try:
        atlas = caches.atlas(folder)
    except Exception as err:  # noqa: BLE001 - a damaged or old map: say so, keep the page
        st.error(f"The map in {md_escape(folder)} cannot be read: {md_escape(err)}")
if state.atlas.seen != folder:  # a new map: old selections point at other tokens
    state.atlas.seen, state.atlas.point = folder, None
    st.session_state.pop("atlas_families", None)

st.header("1. The map", divider="gray")
job_progress(output)  # a discovery job running for this map: its live progress
if atlas is None:
    runs, tokens = store.count()
    st.info(
        f"No map yet. The store holds {runs:,} text{'' if runs == 1 else 's'} and {tokens:,} "
        f"token fingerprint{'' if tokens == 1 else 's'}. Build the map from the built-in "
        "corpus in section 2 below, or on the command line: "
        "`uv run python -m lib.atlas ingest` then `uv run python -m lib.atlas discover "
        "--hours 0`.",
        icon=":material/map:",
    )
else:
    pts = atlas.points
    c1, c2, c3, c4 = st.columns([1, 2, 2, 2])
    colour = c1.radio(
        "Colour by",
        ["cluster", "zone"],
        format_func={"cluster": "family", "zone": "zone"}.get,
        **bound("atlas_colour"),
    )
    models = c2.multiselect("Models", sorted(pts["model"].unique()), key="atlas_models")
    zones = c3.multiselect(
        "Zones", [z for z in ZONES if (pts["zone"] == z).any()], key="atlas_zones"
    )
    families = c4.multiselect(
        "Families", sorted(atlas.names), key="atlas_families", format_func=atlas.family_name
    )
    run = state.run
    marks = placement = None
    if run is not None and run.result.model_spec in set(pts["model"]):
        fps = caches.fingerprints(run.key, False, run.result)
        placement = caches.atlas_placement(folder, run.key, atlas, fps.vectors)
        marks = (placement.xy, list(run.result.texts[run.result.prompt_len :]))
    # Text only from the corpus and runs their authors shared (and did not delete since).
    visible = caches.atlas_shown(atlas_store_path(), folder)
    texts = np.where(visible, pts["context"].to_numpy(), HIDDEN_TEXT)
    fig, shown = caches.atlas_figure(
        folder,
        colour,
        (tuple(models), tuple(zones), tuple(families)),
        run.key if marks else None,
        state.atlas.point,
        hashlib.sha1(np.packbits(visible).tobytes()).hexdigest(),
        atlas,
        marks,
        texts,
    )
    event = figures.plotly(
        fig,
        on_select="rerun",
        selection_mode="points",
        key="atlas_map",
        config={"displayModeBar": False, "scrollZoom": True},
    )
    clicked = point_from_event(event, len(pts))
    if clicked is not None and clicked != state.atlas.point:
        state.atlas.point = clicked
        st.rerun()
    m = atlas.manifest
    made = (
        f"The map shipped with the app: the built-in corpus alone, read by the bundled model "
        f"(`{SHIP_COMMAND}` makes it again). Runs your class shares join a map built here "
        "(section 6)."
        if is_shipped(folder)
        else f"Discovery run {m['run_id']}."
    )
    st.caption(
        f"{shown:,} of {len(pts):,} tokens shown; {m['n_clusters']} families, "
        f"{m['noise']:,} tokens in no family (grey). Positions: UMAP of the standardised 20 "
        f"numbers, fitted on {m['n_sample']:,} of them; families: HDBSCAN (smallest family "
        f"{m['config']['min_cluster_size']}). {made} Distances between "
        "far-apart groups mean little; closeness within a group does."
        + (
            " Stars: your current run's tokens (seen only by you), each drawn among its 15 "
            "nearest fingerprints on the map that are in the family it joins."
            if marks
            else ""
        )
    )

    st.header("2. The token you clicked", divider="gray")
    clicked_token(atlas, store, state.atlas.point, visible)

    with st.expander("How zones and families were set"):
        st.markdown(
            "**Families** are found by HDBSCAN in the map's 2D layout: groups of tokens "
            "denser than their surroundings; tokens in no dense group are noise. Their names "
            "say what sets the family's average fingerprint apart from the whole map's "
            "(the two largest differences, in standard deviations). **Zones** are seed "
            "004's rules on the fingerprint itself, with thresholds set on the corpus:"
        )
        st.markdown(zone_rules_text())

    st.header("3. The families", divider="gray")
    family_cards(atlas, visible)

    st.header("4. Your run on the map", divider="gray")
    if run is None or placement is None:
        st.caption("Generate a run with the map's model to see where its tokens fall.")
    else:
        run_on_map(atlas, run, placement, fps.vectors)

    st.header("5. Arriving from the generation service", divider="gray")
    arrivals(atlas, store, texts)

# numbered in order: without a map, sections 2 to 5 are not drawn
st.header(f"{2 if atlas is None else 6}. Sharing and building", divider="gray")
my_shared_runs(store)

with st.expander("Build or refresh the map", expanded=atlas is None):
    st.markdown(
        "The map comes from two steps. **Ingest**: the model reads the built-in corpus "
        "(prose, dialogue, code, JSON, tables, lists, numbers: about 3,000 tokens) and every "
        "token's fingerprint is stored. **Discover**: UMAP lays the fingerprints out in 2D "
        "and HDBSCAN finds the families. Runs shared with the class join the next map. On the "
        "command line (for your own texts and larger corpora):"
    )
    st.code(
        "uv run python -m lib.atlas ingest [my_texts/]\n"
        "uv run python -m lib.atlas discover --hours 0\n"
        "uv run python -m lib.atlas serve   # optional: the classify service on :9009",
        language="bash",
    )
    build_map_button(store, output)
chrome.page_source(__file__)
