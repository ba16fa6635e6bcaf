"""Attention atlas: every token the model has read or written, mapped by how it attended."""

import streamlit as st

from app import caches
from app import widgets as w
from app.runs import atlas_store_path, open_atlas_token
from app.state import bound, state
from lib.analysis.fingerprint import ZONES
from lib.atlas.client import ServiceError, service_url
from lib.atlas.discovery import default_output
from lib.atlas.store import StoreError, recording_allowed
from lib.viz.atlas import fingerprint_bars, placement_table, point_from_event
from lib.viz.fingerprint import zone_rules_text
from lib.viz.text import family_story

w.page_intro(
    "Attention atlas",
    "Each dot is one token of a text the model read or wrote, placed by its attention fingerprint: "
    "tokens that looked at their context the same way sit together. The families that "
    "appear are kinds of attention behaviour the model uses again and again.",
)
output = str(default_output())
try:
    store = caches.atlas_store(atlas_store_path())
except StoreError as err:
    st.error(w.md_escape(err), icon=":material/error:")
    st.stop()
folder = caches.atlas_folder(output)
atlas = None
if folder:
    try:
        atlas = caches.atlas(folder)
    except Exception as err:  # noqa: BLE001 - a damaged or old map: say so, keep the page
        st.error(f"The map in {w.md_escape(folder)} cannot be read: {w.md_escape(err)}")
if state.atlas_seen != folder:  # a new map: old selections point at other tokens
    state.atlas_seen, state.atlas_point = folder, None
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
        state.atlas_point,
        atlas,
        marks,
    )
    event = w.plotly(
        fig,
        on_select="rerun",
        selection_mode="points",
        key="atlas_map",
        config={"displayModeBar": False, "scrollZoom": True},
    )
    clicked = point_from_event(event, len(pts))
    if clicked is not None and clicked != state.atlas_point:
        state.atlas_point = clicked
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
    if state.atlas_point is None or state.atlas_point >= len(pts):
        st.caption("Click a dot on the map to see its token, its fingerprint and its run.")
    else:
        p = pts.iloc[state.atlas_point]
        st.text(f"{p['context']}")
        st.caption(
            f"Zone {p['zone'].replace('_', ' ')} · {atlas.cluster_label(p['cluster'])} "
            f"(strength {p['strength']:.2f}) · model {w.md_escape(p['model'])} · "
            + ("a generated token" if p["step"] >= 0 else "a token of a text the model read")
        )
        w.chart(fingerprint_bars(atlas.vectors[state.atlas_point]), width="content")
        b1, b2, _ = st.columns([1, 1, 2])
        target = None
        if b1.button("Open its run in the graph", icon=":material/hub:"):
            target = "lessons/attention_graph.py"
        if b2.button("Open its run in the matrices", icon=":material/grid_on:"):
            target = "lessons/matrices.py"
        if target:
            stored = store.run(int(p["run_id"]))
            lm = w.current_model()
            if stored is None:
                st.warning("That run has been deleted from the store since the map was made.")
            elif lm is not None:
                error = open_atlas_token(
                    lm, stored, int(p["step"]), int(p["position"]), int(p["token_id"])
                )
                if error:
                    st.warning(w.md_escape(error))
                else:
                    st.switch_page(target)

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
        url = service_url()
        labels = list(run.result.texts[run.result.prompt_len :])
        answers = None
        if url:
            try:
                answers = caches.remote_classes(url, run.key, fps.vectors)
            except ServiceError as err:
                st.warning(w.md_escape(err) + " Using the library directly instead.")
        names = atlas.names
        if answers:
            zs = [a["manifold"]["zone"] for a in answers]
            cl = [a["manifold"]["cluster_id"] for a in answers]
            conf = [a["manifold"]["confidence"] for a in answers]
            names = {a["manifold"]["cluster_id"]: a["manifold"]["cluster_label"] for a in answers}
            if answers[0].get("run_id") != atlas.run_id:
                st.caption(
                    f"The service uses map {w.md_escape(answers[0].get('run_id'))}, this page "
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
                "Classified by the atlas service at " + w.md_escape(url)
                if answers
                else "Classified by the library in this app"
            )
            + ". Family: the one most of the token's 15 nearest mapped fingerprints belong "
            "to (in the standardised 20-number space). Confidence: the share of those 15 in "
            "that family, times their own membership strength, times how near they are "
            "(1 = deep inside one family; near 0 = far from every mapped token)."
        )

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
    mine = store.count(state.atlas_owner)
    st.caption(
        f"This browser session recorded {mine[0]} runs ({mine[1]} tokens). Recording keeps "
        "the prompt and the generated tokens; nothing else about you."
    )
    if mine[0] and st.button("Delete what I recorded", icon=":material/delete:"):
        n = store.delete_owner(state.atlas_owner)
        state.atlas_recorded = set()
        st.success(
            f"Deleted {n} runs from the store. The map above still shows their tokens until "
            "it is rebuilt; opening one says it is gone."
        )
if state.atlas_problem:
    st.warning(w.md_escape(state.atlas_problem))

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
    w.build_map_button(store, output)
w.page_source(__file__)
