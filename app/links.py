"""Share a view by link: the run on screen and how it is viewed live in the page's URL.

The page is the URL's path (`st.navigation` gives every page one); the query holds the run's
request (model, prompt, settings) and the view (step, layer, head, threshold, sink, lines,
selection, projector). The address bar always shows the current view, and the sidebar's
"Share this view" shows it to copy. A student who opens the link gets the same settings and,
since greedy and seeded runs are deterministic, the same run: identical requests in flight
are written once by the scheduler, so a class opening one link costs one run.

Every value is parsed against the range its widget allows. One that does not parse, or is
out of range, is left at its default and named in a note; a link is only ever data (no
value is run, and the note shows values as text, never as markup).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from app import caches
from app.runs import LIMITS, RunRequest, run_generation, sampling_from_state
from app.state import LINES_THRESHOLD, LINES_TOP_K, MATRIX_CAPTURED, MATRIX_WHOLE, State, state
from app.widgets import current_model, md_escape
from lib.config import BUNDLED_MODEL, MAX_NEW_TOKENS_CAP
from lib.model.loading import LoadedModel, ModelLoadError
from lib.model.result import RunSettings

MAX_NOTE_VALUE = 40  # characters of a bad value quoted back in the note


# ---- parsing one value ------------------------------------------------------------------


def _number(cast: type, what: str, lo: float, hi: float) -> Callable[[str], Any]:
    """A number within [lo, hi], read exactly: a rounded value would be another run."""

    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise ValueError(f"not {what}") from None
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ValueError(f"not between {lo:g} and {hi:g}")
        return value

    return parse


def _int(lo: int, hi: int) -> Callable[[str], int]:
    return _number(int, "a whole number", lo, hi)


def _float(lo: float, hi: float) -> Callable[[str], float]:
    return _number(float, "a number", lo, hi)


def _flag(text: str) -> bool:
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError("not 1 or 0")


def _choice(options: Mapping[str, Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        if text not in options:
            raise ValueError("not one of " + ", ".join(options))
        return options[text]

    return parse


def _index(text: str) -> int | None:
    """A layer or head: "mean" (None) or a number, checked against the model later."""
    return None if text == "mean" else _int(0, 4095)(text)


def _prompt(text: str) -> str:
    if not text.strip():
        raise ValueError("empty")
    if len(text) > LIMITS.max_prompt_chars:
        raise ValueError(f"over {LIMITS.max_prompt_chars:,} characters")
    return text


def _tokens(text: str) -> tuple[int, ...]:
    ids = tuple(_int(0, 10_000_000)(t) for t in text.split(","))
    if len(ids) > MAX_NEW_TOKENS_CAP:
        raise ValueError(f"more than {MAX_NEW_TOKENS_CAP} tokens")
    return ids


def _selection(text: str) -> tuple[str, int]:
    side, _, index = text.partition("-")
    if side not in ("in", "out"):
        raise ValueError("not in-N or out-N")
    return ("input" if side == "in" else "output", _int(0, 1_000_000)(index))


def _show_selection(value: tuple[str, int]) -> str:
    return ("in" if value[0] == "input" else "out") + f"-{value[1]}"


def _show_float(value: float) -> str:
    return repr(float(value))  # the shortest text that reads back as the same number


@dataclass(frozen=True)
class Field:
    """One value in the link: its name there, where it lives in the session, and how it
    reads (`parse` raises ValueError with the reason) and writes."""

    name: str
    attr: str
    parse: Callable[[str], Any]
    show: Callable[[Any], str] = str


SAMPLE = {"1": "Sample", "0": "Greedy"}
# How the run was made: applied to the Generate page's settings, then the run is written.
RUN_FIELDS = (
    Field("tokens", "max_tokens", _int(1, LIMITS.max_new_tokens)),
    Field("chat", "chat_template", _flag, lambda v: str(int(v))),
    Field("sample", "decoding", _choice(SAMPLE), lambda v: "1" if v == "Sample" else "0"),
    Field("temperature", "temperature", _float(0.05, 2.0), _show_float),
    Field("top_k", "top_k", _int(0, 500)),
    Field("top_p", "top_p", _float(0.05, 1.0), _show_float),
    Field("min_p", "min_p", _float(0.0, 0.5), _show_float),
    Field("seed", "seed", _int(0, 2**31 - 1)),
)
SAMPLING_FIELDS = ("temperature", "top_k", "top_p", "min_p", "seed")
# How it is viewed.
VIEW_FIELDS = (
    Field("step", "step", _int(1, MAX_NEW_TOKENS_CAP)),
    Field("layer", "layer", _index, lambda v: "mean" if v is None else str(v)),
    Field("head", "head", _index, lambda v: "mean" if v is None else str(v)),
    Field("threshold", "threshold", _float(0.0, 0.2), _show_float),
    Field("sink", "hide_sink", _flag, lambda v: str(int(v))),
    Field("all", "show_all", _flag, lambda v: str(int(v))),
    Field(
        "lines",
        "graph_lines",
        _choice({"threshold": LINES_THRESHOLD, "top": LINES_TOP_K}),
        lambda v: "top" if v == LINES_TOP_K else "threshold",
    ),
    Field("k", "graph_top_k", _int(1, 50)),
    Field(
        "matrix",
        "matrix_source",
        _choice({"captured": MATRIX_CAPTURED, "whole": MATRIX_WHOLE}),
        lambda v: "whole" if v == MATRIX_WHOLE else "captured",
    ),
    Field("token", "nt_step", _int(1, MAX_NEW_TOKENS_CAP)),
    Field("projector", "projector", _flag, lambda v: str(int(v))),
    Field("quiz", "quiz", _flag, lambda v: str(int(v))),
)


def _default(attr: str) -> Any:
    return State.__dict__[attr].default


def _quote(text: str) -> str:
    return repr(text if len(text) <= MAX_NOTE_VALUE else text[:MAX_NOTE_VALUE] + "…")


# ---- the link, read -------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """What a link asks for: session values by attribute, the run's prompt and model (None
    when the link names no run), forced first tokens and a selection, plus what was wrong."""

    values: dict[str, Any]
    prompt: str | None
    model: str | None
    forced: tuple[int, ...]
    selection: tuple[str, int] | None
    notes: tuple[str, ...]


def read_link(params: Mapping[str, str]) -> Link:
    """Parse a link's query (name -> value, the last of a repeated name). Pure: no state."""
    values: dict[str, Any] = {}
    notes: list[str] = []
    known = {f.name for f in RUN_FIELDS + VIEW_FIELDS} | {"prompt", "model", "forced", "select"}

    def parse(name: str, fn: Callable[[str], Any]) -> Any:
        try:
            return fn(params[name])
        except (ValueError, TypeError) as err:
            notes.append(f"{name}={_quote(params[name])} ({err or 'not understood'})")
            return None

    for field in RUN_FIELDS + VIEW_FIELDS:
        if field.name in params:
            value = parse(field.name, field.parse)
            if value is not None or (field.parse is _index and params[field.name] == "mean"):
                values[field.attr] = value
    prompt = parse("prompt", _prompt) if "prompt" in params else None
    model = params.get("model") or None
    forced = (parse("forced", _tokens) or ()) if "forced" in params else ()
    selection = parse("select", _selection) if "select" in params else None
    unknown = [name for name in params if name not in known]
    notes += [f"{_quote(name)} (not a setting this app knows)" for name in unknown]
    return Link(values, prompt, model, tuple(forced), selection, tuple(notes))


def view_params(
    run_request: RunRequest | None, selection: tuple[str, int] | None
) -> dict[str, str]:
    """The query that reproduces the session's view: the run (when there is one) and every
    view value that differs from its default."""
    params: dict[str, str] = {}
    if run_request is not None:
        s = run_request.settings
        params["prompt"] = run_request.prompt
        if run_request.model_spec != BUNDLED_MODEL:
            params["model"] = run_request.model_spec
        params["tokens"] = str(s.max_new_tokens)
        if s.chat_template:
            params["chat"] = "1"
        if s.sampling.do_sample:
            params["sample"] = "1"
            for name in SAMPLING_FIELDS:
                value = getattr(s.sampling, name)
                params[name] = _show_float(value) if isinstance(value, float) else str(value)
        if s.forced_tokens:
            params["forced"] = ",".join(str(t) for t in s.forced_tokens)
    for field in VIEW_FIELDS:
        value = getattr(state, field.attr)
        if value != _default(field.attr):
            params[field.name] = field.show(value)
    if run_request is not None and selection is not None:
        params["select"] = _show_selection(selection)
    return params


# ---- the link, applied and written ------------------------------------------------------


def apply_link() -> None:
    """On a session's first run: take the link's settings and model, write its run, and
    say what was not understood. Later runs leave the session's own choices alone."""
    if state.link_applied:
        return
    state.link_applied = True
    params = {name: st.query_params[name] for name in st.query_params}
    if not params:
        return
    link = read_link(params)
    notes = list(link.notes)
    for attr, value in link.values.items():
        setattr(state, attr, value)
    if link.prompt is not None and link.model and link.model != state.model_spec:
        _load_model(link.model, notes)
    lm = current_model()
    if lm is not None:
        for attr, n in (("layer", lm.n_layers), ("head", lm.n_heads)):
            value = getattr(state, attr)
            if value is not None and value >= n:
                notes.append(f"{attr}={value} (this model has {n} {attr}s: 0 to {n - 1})")
                setattr(state, attr, None)
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
        notes.append(f"model={_quote(spec)} ({err} The run uses the model loaded here.)")


def _write_run(lm: LoadedModel, link: Link, notes: list[str]) -> None:
    state.prompt = link.prompt
    vocab = int(lm.model.config.vocab_size)
    forced = tuple(t for t in link.forced if t < vocab)
    if len(forced) != len(link.forced):
        notes.append(f"forced (a token id is over this model's {vocab:,} tokens)")
        forced = ()
    settings = RunSettings(
        max_new_tokens=int(state.max_tokens),
        chat_template=bool(state.chat_template) and lm.has_chat_template,
        sampling=sampling_from_state("", state.decoding == "Sample"),
        forced_tokens=forced[: int(state.max_tokens)],
    )
    step = state.step
    error = run_generation(lm, RunRequest(lm.spec, link.prompt, settings))
    if error:
        notes.append(f"prompt ({error})")
        return
    run = state.run
    if step > run.result.n_steps:
        notes.append(f"step={step} (this run has {run.result.n_steps} steps)")
        state.step = 1
    if link.selection is not None:
        side, index = link.selection
        r = run.result
        if index < (len(r.prompt_labels) if side == "input" else r.n_steps):
            state.graph_focus = (run.key, side, index)
        else:
            notes.append(f"select={_show_selection(link.selection)} (no such token in this run)")


def sync_url() -> None:
    """Write the view into the address bar, only when it changed (each write is a message
    to the browser), and into the sidebar's "Share this view". The app calls it after every
    full run; a fragment that changes the view calls it too, so the link follows its step."""
    run = state.run
    params = view_params(run.request if run else None, state.selected_token if run else None)
    if st.query_params.to_dict() != params:
        st.query_params.from_dict(params)
    if state.share_slot is not None:
        slot, page_path = state.share_slot
        try:
            with slot.container():
                share_box(link_to(page_path, params))
        except Exception:  # noqa: BLE001 - a link is a convenience; the view is drawn
            logging.getLogger("tav").exception("sharing the view failed")


def link_to(page_path: str, params: Mapping[str, str]) -> str:
    """The whole link: the app's address (as the browser reaches it), the page, the query."""
    root = (st.context.url or "").rstrip("/")
    if page_path and root.endswith(f"/{page_path}"):  # Streamlit's URL ends with the page's path
        root = root[: -len(page_path) - 1]
    query = urlencode(params)
    return f"{root}/{page_path}" + (f"?{query}" if query else "")


def share_box(link: str) -> None:
    """The sidebar's "Share this view": the link to copy, and what it holds."""
    with st.popover("Share this view", icon=":material/share:", width="stretch"):
        st.code(link, language=None, wrap_lines=True)
        st.caption(
            "Copy it with the button in the box's corner; the address bar always holds the "
            "link to what you see. Whoever opens it sees this page with this run and these "
            "settings: a greedy or seeded run comes out the same every time, and a class "
            "opening it together costs the server one run."
        )
