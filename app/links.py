"""Share a view by link: the run on screen and how it is viewed live in the page's URL.

The page is the URL's path (`st.navigation` gives every page one); the query holds the run's
request and the view (`app.link_query` reads and writes it). The address bar always shows
the current view, and the sidebar's "Share this view" shows it to copy. A student who opens
the link gets the same settings and, since greedy and seeded runs are deterministic, the
same run: identical requests in flight are written once by the scheduler, so a class
opening one link costs one run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import streamlit as st

from app import caches
from app.link_query import VIEW_FIELDS, Link, quote, read_link, show_selection, view_params
from app.markdown import md_escape
from app.runs import run_generation, sampling_from_state
from app.state import default, get, put, state
from app.widgets.classroom import share_box
from app.widgets.model import current_model
from lib.model.errors import ModelLoadError
from lib.model.request import RunRequest
from lib.model.result import RunSettings

if TYPE_CHECKING:
    from lib.model.loading import LoadedModel


def apply_link() -> None:
    """On a session's first run: take the link's settings and model, write its run, and
    say what was not understood. Later runs leave the session's own choices alone."""
    if state.link_applied:
        return
    state.link_applied = True
    params = {name: st.query_params[name] for name in st.query_params}
    if not params:
        return
    link = read_link(params, caches.LIMITS)
    notes = list(link.notes)
    for key, value in link.values.items():
        put(key, value)
    if link.prompt is not None and link.model and link.model != state.model_spec:
        _load_model(link.model, notes)
    lm = current_model()
    if lm is not None:
        for key, n in (("layer", lm.n_layers), ("head", lm.n_heads)):
            value = get(key)
            if value is not None and value >= n:
                notes.append(f"{key}={value} (this model has {n} {key}s: 0 to {n - 1})")
                put(key, None)
        if link.prompt is not None:
            _write_run(lm, link, notes)
    if notes:
        st.warning(
            "Parts of this link were not used and kept their defaults: "
            + md_escape("; ".join(notes)),
            icon=":material/link_off:",
        )


def _load_model(spec: str, notes: list[str]) -> None:
    """The link's model, where this server allows it (TAV_ALLOW_HUB, the size limit)."""
    try:
        caches.model(spec)
        state.model_spec, state.model_error = spec, None
    except ModelLoadError as err:
        notes.append(f"model={quote(spec)} ({err} The run uses the model loaded here.)")


def _write_run(lm: LoadedModel, link: Link, notes: list[str]) -> None:
    state.gen.prompt = link.prompt
    vocab = lm.vocab_size
    forced = tuple(t for t in link.forced if t < vocab)
    if len(forced) != len(link.forced):
        notes.append(f"forced (a token id is over this model's {vocab:,} tokens)")
        forced = ()
    settings = RunSettings(
        max_new_tokens=int(state.gen.max_tokens),
        chat_template=bool(state.gen.chat_template) and lm.has_chat_template,
        sampling=sampling_from_state("", state.gen.decoding == "Sample"),
        forced_tokens=forced[: int(state.gen.max_tokens)],
    )
    step = state.view.step
    error = run_generation(lm, RunRequest(lm.spec, link.prompt, settings))
    if error:
        notes.append(f"prompt ({error})")
        return
    run = state.run
    if step > run.result.n_steps:
        notes.append(f"step={step} (this run has {run.result.n_steps} steps)")
        state.view.step = 1
    if link.selection is not None:
        side, index = link.selection
        r = run.result
        if index < (len(r.prompt_labels) if side == "input" else r.n_steps):
            state.view.graph_focus = (run.key, side, index)
        else:
            notes.append(f"select={show_selection(link.selection)} (no such token in this run)")


def sync_url() -> None:
    """Write the view into the address bar, only when it changed (each write is a message
    to the browser), and into the sidebar's "Share this view". The app calls it after every
    full run; a fragment that changes the view calls it too, so the link follows its step."""
    run = state.run
    keys = [field.key for field in VIEW_FIELDS]

    def params(classroom: bool) -> dict[str, str]:
        return view_params(
            run.request if run else None,
            state.view.selected_token if run else None,
            {key: get(key) for key in keys},
            {key: default(key) for key in keys},
            classroom,
        )

    plain = params(False)  # projector and quiz mode stay with whoever switched them on
    if st.query_params.to_dict() != plain:
        st.query_params.from_dict(plain)
    if state.share_slot is not None:
        slot, page_path = state.share_slot
        with_modes = params(True)
        try:
            with slot.container():
                share_box(
                    link_to(page_path, plain),
                    link_to(page_path, with_modes) if with_modes != plain else None,
                )
        except Exception:  # noqa: BLE001 - a link is a convenience; the view is drawn
            logging.getLogger("tav").exception("sharing the view failed")


def link_to(page_path: str, params: Mapping[str, str]) -> str:
    """The whole link: the app's address (as the browser reaches it), the page, the query."""
    root = (st.context.url or "").rstrip("/")
    if page_path and root.endswith(f"/{page_path}"):  # Streamlit's URL ends with the page's path
        root = root[: -len(page_path) - 1]
    query = urlencode(params)
    return f"{root}/{page_path}" + (f"?{query}" if query else "")
