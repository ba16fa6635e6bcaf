"""What a shared link holds, read and written: a pure parser, no Streamlit.

The query holds the run's request (model, prompt, settings) and the view (step, layer,
head, threshold, sink, lines, selection, projector, quiz), each under a short name and tied
to one session value by its key. Every value is parsed against the range its widget allows;
one that does not parse, or is out of range, is left out and named in a note. A link is
only ever data: no value is run, and a note quotes values as text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lib.config import (
    BUNDLED_MODEL,
    LAB_PREFIX,
    LINES_THRESHOLD,
    LINES_TOP_K,
    MATRIX_CAPTURED,
    MATRIX_WHOLE,
    MAX_NEW_TOKENS_CAP,
    Limits,
)
from lib.model.request import RunRequest

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


def _prompt(max_chars: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not text.strip():
            raise ValueError("empty")
        if len(text) > max_chars:
            raise ValueError(f"over {max_chars:,} characters")
        return text

    return parse


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


def show_selection(value: tuple[str, int]) -> str:
    return ("in" if value[0] == "input" else "out") + f"-{value[1]}"


def _show_float(value: float) -> str:
    return repr(float(value))  # the shortest text that reads back as the same number


@dataclass(frozen=True)
class Field:
    """One value in the link: its name there, its key in the session, and how it reads
    (`parse` raises ValueError with the reason) and writes."""

    name: str
    key: str
    parse: Callable[[str], Any]
    show: Callable[[Any], str] = str


SAMPLE = {"1": "Sample", "0": "Greedy"}
# How the run was made: applied to the Generate page's settings, then the run is written.
SETTINGS_FIELDS = (
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
    Field("projector", "projector", _flag, lambda v: str(int(v))),
    Field("quiz", "quiz", _flag, lambda v: str(int(v))),
)
# How the classroom is run, not what is seen: in a link only when the teacher copies the
# link that holds them.
CLASSROOM_FIELDS = ("projector", "quiz")


def quote(text: str) -> str:
    return repr(text if len(text) <= MAX_NOTE_VALUE else text[:MAX_NOTE_VALUE] + "…")


# ---- the link, read -------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """What a link asks for: session values by key, the run's prompt and model (None
    when the link names no run), forced first tokens and a selection, plus what was wrong."""

    values: dict[str, Any]
    prompt: str | None
    model: str | None
    forced: tuple[int, ...]
    selection: tuple[str, int] | None
    notes: tuple[str, ...]


def read_link(params: Mapping[str, str], limits: Limits) -> Link:
    """Parse a link's query (name -> value, the last of a repeated name) under the
    server's `limits`. Pure: no state."""
    values: dict[str, Any] = {}
    notes: list[str] = []
    fields = (
        Field("tokens", "max_tokens", _int(1, limits.max_new_tokens)),  # the server's cap
        *SETTINGS_FIELDS,
        *VIEW_FIELDS,
    )
    known = {f.name for f in fields} | {"prompt", "model", "forced", "select", "token"}
    if "token" in params and "step" not in params:  # older links named Next token's step so
        params = {**params, "step": params["token"]}

    def parse(name: str, fn: Callable[[str], Any]) -> Any:
        try:
            return fn(params[name])
        except (ValueError, TypeError) as err:
            notes.append(f"{name}={quote(params[name])} ({err or 'not understood'})")
            return None

    for field in fields:
        if field.name in params:
            value = parse(field.name, field.parse)
            if value is not None or (field.parse is _index and params[field.name] == "mean"):
                values[field.key] = value
    prompt = parse("prompt", _prompt(limits.max_prompt_chars)) if "prompt" in params else None
    model = params.get("model") or None
    forced = (parse("forced", _tokens) or ()) if "forced" in params else ()
    selection = parse("select", _selection) if "select" in params else None
    unknown = [name for name in params if name not in known]
    notes += [f"{quote(name)} (not a setting this app knows)" for name in unknown]
    return Link(values, prompt, model, tuple(forced), selection, tuple(notes))


def view_params(
    run_request: RunRequest | None,
    selection: tuple[str, int] | None,
    values: Mapping[str, Any],
    defaults: Mapping[str, Any],
    classroom: bool = False,
) -> dict[str, str]:
    """The query that reproduces a view: the run (when there is one) and every view value
    (`values`, by session key) that differs from its default; projector and quiz mode
    only with `classroom`."""
    params: dict[str, str] = {}
    if run_request is not None:
        s = run_request.settings
        params["prompt"] = run_request.prompt
        if run_request.model_spec != BUNDLED_MODEL and not run_request.model_spec.startswith(
            LAB_PREFIX
        ):  # a student's trained model is theirs: a link never hands it on
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
        if field.name in CLASSROOM_FIELDS and not classroom:
            continue
        value = values[field.key]
        if value != defaults[field.key]:
            params[field.name] = field.show(value)
    if run_request is not None and selection is not None:
        params["select"] = show_selection(selection)
    return params
