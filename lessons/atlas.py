"""Attention atlas: every token the model has read or written, mapped by how it attended."""

import streamlit as st

from app import caches
from app.markdown import md_escape
from app.runs import atlas_store_path
from app.state import bound, state
from app.widgets import chrome, figures
from app.widgets.atlas import build_map_button, clicked_token, run_on_map
from lib.analysis.fingerprint import ZONES
from lib.atlas.discovery import default_output
from lib.atlas.store import StoreError, recording_allowed
from lib.viz.atlas import point_from_event
from lib.viz.fingerprint import zone_rules_text
from lib.viz.text import family_story

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
if atlas is None:
    runs, tokens = store.count()
    st.info(
        f"No map yet. The store holds {runs:,} texts and {tokens:,} token fingerprints. "
        "Build the map from the built-in corpus in section 5, or on the command line: "
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
        "Families", sorted(atlas.names), key="atlas_families", format_func=atlas.cluster_label
    )
    run = state.run
    marks = placement = None
    if run is not None and run.result.model_spec in set(pts["model"]):
        fps = caches.fingerprints(run.key, False, run.result)
        placement = caches.atlas_placement(folder, run.key, atlas, fps.vectors)
        marks = (placement.xy, list(run.result.texts[run.result.prompt_len :]))
    fig, shown = caches.atlas_figure(
        folder,
        colour,
        (tuple(models), tuple(zones), tuple(families)),
        run.key if marks else None,
        state.atlas.point,
        atlas,
        marks,
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
    st.caption(
        f"{shown:,} of {len(pts):,} tokens shown; {m['n_clusters']} families, "
        f"{m['noise']:,} tokens in no family (grey). Positions: UMAP of the standardised 20 "
        f"numbers, fitted on {m['n_sample']:,} of them; families: HDBSCAN (smallest family "
        f"{m['config']['min_cluster_size']}). Discovery run {m['run_id']}. Distances between "
        "far-apart groups mean little; closeness within a group does."
        + (
            " Stars: your current run's tokens, each drawn at the mean position of its 15 "
            "nearest fingerprints on the map."
            if marks
            else ""
        )
    )

    st.header("2. The token you clicked", divider="gray")
    clicked_token(atlas, store, state.atlas.point)

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
    total = len(pts)
    cols = st.columns(3)
    for i, c in enumerate(atlas.clusters.sort_values("size", ascending=False).itertuples()):
        with cols[i % 3].container(border=True):
            st.markdown(f"**{atlas.cluster_label(c.cluster)}**")
            st.markdown(family_story(c.size, total, c.centroid, c.dominant_zone, c.zone_share))
            st.caption("Typical tokens, in context:")
            st.text("\n".join(c.typical[:4]))

    st.header("4. Your run on the map", divider="gray")
    if run is None or placement is None:
        st.caption("Generate a run with the map's model to see where its tokens fall.")
    else:
        run_on_map(atlas, run, placement, fps.vectors)

st.header("5. Recording and building", divider="gray")
if not recording_allowed():
    st.caption("Recording is switched off on this server (TAV_ATLAS_RECORD=0).")
else:
    st.toggle(
        "Add my runs to the atlas",
        **bound("atlas_record"),
        help="Each run you generate adds its prompt, its tokens and their fingerprints "
        "to this server's atlas store.",
    )
    mine = store.count(state.atlas.owner)
    st.caption(
        f"This browser session recorded {mine[0]} runs ({mine[1]} tokens). Recording keeps "
        "the prompt and the generated tokens; nothing else about you."
    )
    if mine[0] and st.button("Delete what I recorded", icon=":material/delete:"):
        n = store.delete_owner(state.atlas.owner)
        state.atlas.recorded = set()
        st.success(
            f"Deleted {n} runs from the store. The map above still shows their tokens until "
            "it is rebuilt; opening one says it is gone."
        )
if state.atlas.problem:
    st.warning(md_escape(state.atlas.problem))

with st.expander("Build or refresh the map", expanded=atlas is None):
    st.markdown(
        "The map comes from two steps. **Ingest**: the model reads the built-in corpus "
        "(prose, dialogue, code, JSON, tables, lists, numbers: about 3,000 tokens) and every "
        "token's fingerprint is stored. **Discover**: UMAP lays the fingerprints out in 2D "
        "and HDBSCAN finds the families. Your recorded runs join the next map. On the "
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
