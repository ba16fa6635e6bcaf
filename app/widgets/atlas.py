"""The atlas page's parts: the token clicked on the map, the family cards, the current run
placed on it, fingerprints arriving from the generation service, and "Build the map
here"."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from app import caches
from app.markdown import md_escape
from app.runs import atlas_store_path
from app.state import state
from app.widgets.classroom import share_with_class
from app.widgets.figures import chart, plotly
from app.widgets.model import current_model
from lib.atlas.client import ServiceError, service_url
from lib.atlas.point import PointError
from lib.model.request import Run
from lib.viz.atlas import (
    HIDDEN_TEXT,
    fingerprint_bars,
    placement_table,
    point_attention_chart,
    point_attention_frame,
)
from lib.viz.text import family_story

if TYPE_CHECKING:
    from lib.atlas.classify import Atlas, Placement
    from lib.atlas.store import Store


def delete_mine() -> None:
    """ "Delete what I shared", before the page is drawn: the map above shows the change."""
    store = caches.atlas_store(atlas_store_path())
    state.atlas.deleted = store.delete_owner(state.atlas.owner)
    state.atlas.recorded = set()
    caches.atlas_shown.clear()


def my_shared_runs(store: Store) -> None:
    """The switch that shares this session's runs, what it has shared, and its delete."""
    from lib.atlas.store import recording_mode

    if recording_mode() == "off":
        st.caption("This server keeps no runs in the atlas (TAV_ATLAS_RECORD=off).")
    else:
        share_with_class()
        mine = store.count(state.atlas.owner)
        st.caption(
            f"This browser session shared {mine[0]} runs ({mine[1]} tokens). Sharing keeps the "
            "prompt, the generated tokens and their fingerprints, for everyone using this "
            "server to see on this page; nothing else about you. A run others made too is kept "
            "once."
        )
        if mine[0]:
            st.button("Delete what I shared", icon=":material/delete:", on_click=delete_mine)
        if state.atlas.deleted is not None:
            st.success(
                f"Deleted your {state.atlas.deleted} runs from the store (a run another session "
                "made too stays for them). Their text is gone from the map; their dots go when "
                "the map is rebuilt."
            )
            state.atlas.deleted = None
    if state.atlas.problem:
        st.warning(md_escape(state.atlas.problem))


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


def clicked_token(atlas: Atlas, store: Store, point: int | None, shown: np.ndarray) -> None:
    """The token clicked on the map: its context (if its run is shared), zone, family and
    20 numbers, and what it attended to when it was written. The student's own run stays
    the one the other pages show."""
    if point is None or point >= len(atlas.points):
        st.caption("Click a dot on the map to see its token, its fingerprint and its attention.")
        return
    p = atlas.points.iloc[point]
    st.text(f"{p['context']}" if shown[point] else HIDDEN_TEXT)
    st.caption(
        f"Zone {p['zone'].replace('_', ' ')} · {atlas.family_name(p['cluster'])} "
        f"(strength {p['strength']:.2f}) · model {md_escape(p['model'])} · "
        + ("a generated token" if p["step"] >= 0 else "a token of a text the model read")
    )
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Its fingerprint**: the 20 numbers that placed it")
        chart(fingerprint_bars(atlas.vectors[point]), width="stretch")  # the column's width
    with c2:
        st.markdown("**What it looked at** when it was written")
        if not shown[point]:
            st.caption("Its run is not shared (or was deleted): its text stays hidden.")
            return
        lm = current_model()
        if lm is None or lm.spec != p["model"]:
            st.caption(
                f"Recorded with {md_escape(p['model'])}: load that model on the Generate "
                "page to read its attention again."
            )
            return
        try:
            pa = caches.point_attention(
                str(atlas.folder), store.spec, int(p["run_id"]), int(p["position"]),
                lm.spec, lm, atlas.vectors[point],
            )  # fmt: skip
        except PointError as err:
            st.caption(md_escape(err))
            return
        df = point_attention_frame(pa.labels, pa.weights)
        chart(point_attention_chart(df), width="stretch")
        left = 1.0 - float(df["weight"].sum())
        st.caption(
            f"The row of the query before “{md_escape(pa.target)}” (position "
            f"{pa.position}): the attention that chose it, averaged over all "
            f"{lm.n_layers} layers and {lm.n_heads} heads as its fingerprint is. Shown: the "
            f"first token and the last {len(df) - 1} before it"
            + (f"; the {pa.position - len(df)} others hold {left:.3f}." if left > 5e-4 else ".")
            + (
                " Read again now, it gives the stored fingerprint back."
                if pa.agrees
                else " Read again now, it gives another fingerprint than the stored one: "
                "the model or its files changed since the map was made."
            )
        )


CARDS = 6  # family cards shown open; the rest fold into one expander


def family_cards(atlas: Atlas, shown: np.ndarray) -> None:
    """One card per family, largest first: its name, what it does, and its typical tokens
    in context, from the corpus and shared runs only (`shown`: (n_points,) bool)."""
    ranked = list(atlas.clusters.sort_values("size", ascending=False).itertuples())
    from lib.atlas.shipped import is_shipped

    source = "" if is_shipped(atlas.folder) else " and from runs their authors shared"
    st.caption(
        f"{len(ranked)} families, largest first. Their typical tokens come from the "
        f"built-in corpus{source}."
    )

    def cards(families) -> None:
        cols = st.columns(3)
        for i, c in enumerate(families):
            with cols[i % 3].container(border=True):
                st.markdown(f"**{md_escape(atlas.family_name(c.cluster))}**")
                st.markdown(
                    family_story(
                        c.size, len(atlas.points), c.centroid, c.dominant_zone, c.zone_share
                    )
                )
                st.caption("Typical tokens, in context:")
                rows = atlas.typical(c.cluster, shown)
                typical = [str(atlas.points["context"].iloc[r]) for r in rows]
                st.text("\n".join(typical) or "(no shared text in this family)")

    cards(ranked[:CARDS])
    if len(ranked) > CARDS:
        with st.expander(f"The other {len(ranked) - CARDS} families"):
            cards(ranked[CARDS:])


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
        names = {
            a["manifold"]["cluster_id"]: a["manifold"].get("cluster_description")
            or a["manifold"]["cluster_label"]  # a service without descriptions: its label
            for a in answers
        }
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


def job_progress(output: str) -> None:
    """A discovery job writing a map into this page's folder (started with
    `--websocket-port`, from the command line or anywhere): its live progress, read from
    its WebSocket every second; when it ends, the page redraws with the new map."""
    from pathlib import Path

    from lib.atlas.progress import FILE, latest_event

    path = Path(output) / FILE
    if not path.exists():
        return
    event = latest_event(output)
    if event is None:
        return  # a job that died and left its file: nothing to follow
    if event["done"]:  # a failed job's last word (a finished one takes its file away)
        if event["error"]:
            name = md_escape(f"Discovery {event['run_id']}: {event['stage']}")
            st.warning(f"{name} ({md_escape(event['error'])})", icon=":material/warning:")
        return

    @st.fragment(run_every=1.0)
    def follow() -> None:
        now = latest_event(output)
        if now is None or now["done"]:  # it ended since: the page again, with the new map
            caches.atlas_folder.clear()
            st.rerun()
        name = md_escape(f"Discovery {now['run_id']}: {now['stage']}")
        st.progress(float(now["fraction"]), text=f"{name} ({now['fraction']:.0%})")

    follow()


ARRIVALS_S = 3600.0  # arrivals of the last hour are drawn
ARRIVALS_DRAWN = 1000  # at most this many, the newest


def arrivals(atlas: Atlas, store: Store, texts: np.ndarray) -> None:
    """Fingerprints posted to the sidecar since the map was made (the generation service
    sends every run's: `python -m lib.serve --sidecar URL`), the last hour's newest of the
    map's models placed on it as the classify service places a fingerprint; followed every
    3 s when asked. Numbers only: they come with no text. `texts`: the map points' hover
    texts (hidden ones hidden)."""
    import time
    from datetime import datetime

    from lib.viz.atlas import atlas_map

    made = datetime.fromisoformat(atlas.manifest["created"]).timestamp()
    follow = st.toggle("Follow them as they arrive (every 3 seconds)", key="atlas_follow")

    @st.fragment(run_every=3.0 if follow else None)
    def show() -> None:
        since = max(made, time.time() - ARRIVALS_S)
        fps = store.fingerprints(source="api", since=since, limit=ARRIVALS_DRAWN, newest=True)
        if not len(fps):
            st.caption(
                "None in the last hour. Start the sidecar with `--online` and the generation "
                "service with `--sidecar`, and every run it writes arrives here: "
                "`uv run python -m lib.atlas serve --online` and `uv run python -m "
                "lib.serve --sidecar http://127.0.0.1:9009`."
            )
            return
        mapped = set(atlas.points["model"])  # another model's fingerprints mean other things
        ours = np.array([m in mapped for m in fps.models], dtype=bool)
        if not ours.any():
            st.caption(f"{len(fps):,} arrived in the last hour, all from models this map "
                       "does not hold.")  # fmt: skip
            return
        placed = atlas.locate(fps.vectors[ours])
        labels = [f"{m} · step {s}" for m, s, k in zip(fps.models, fps.steps, ours, strict=True)
                  if k]  # fmt: skip
        rows = np.arange(len(atlas.points))
        fig = atlas_map(atlas.points, rows, "cluster", atlas.names, (placed.xy, labels),
                        texts=texts, marks_name="arrived")  # fmt: skip
        plotly(fig, key="atlas_arrivals", config={"displayModeBar": False, "scrollZoom": True})
        families, counts = np.unique(placed.cluster, return_counts=True)
        top = sorted(zip(counts.tolist(), families.tolist(), strict=True), reverse=True)[:3]
        others = int((~ours).sum())
        st.caption(
            f"{len(labels):,} fingerprints arrived in the last hour (the newest "
            f"{ARRIVALS_DRAWN:,} at most"
            + (f"; {others:,} more from models this map does not hold" if others else "")
            + "): the stars, each among the 15 nearest mapped fingerprints of the family it "
            "joins on this map, as the classify service places a fingerprint. "
            "Most joined: "
            + "; ".join(f"{atlas.family_name(c)} ({n:,})" for n, c in top)
            + ". They carry no text: only their 20 numbers, step and model."
        )

    show()
