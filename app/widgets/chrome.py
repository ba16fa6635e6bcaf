"""A page's frame: its title and lesson at the top, its own source at the end, and the
note that stops a page which needs a run before there is one."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from app.state import state
from lib.model.request import Run


def page_intro(title: str, lesson: str) -> None:
    """The page title and the two sentences on what it teaches."""
    st.title(title)
    st.caption(lesson)


def need_run() -> Run:
    """The current run; without one, a note pointing to Generate, then the page stops."""
    if state.run is None:
        st.info("Nothing generated yet. Write a prompt on the Generate page first.")
        st.page_link("lessons/generate.py", label="Go to Generate", icon=":material/edit:")
        st.stop()
    return state.run


def show_source(title: str, *functions: Callable) -> None:
    """The library code behind a section, in an expander at its end."""
    with st.expander(f"Source: {title}", expanded=False, icon=":material/code:"):
        for fn in functions:
            st.code(inspect.getsource(fn), language="python")


def _function(fn: Callable | str) -> Callable:
    """A function, or one named "module:qualname" and imported only now (a page that
    shows torch code need not import torch before its first screen)."""
    if not isinstance(fn, str):
        return fn
    module, _, name = fn.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def page_source(page_file: str, *functions: Callable | str) -> None:
    """The last thing on every page: its own script (`__file__`), then the library functions
    it leans on, each headed by where it lives. The file is read when shown, so the code
    shown is the code that just ran.

    A switch, not an expander: an expander's content is always sent and sits in the page
    (every rerun would carry the whole script, and a search of the page finds its own
    strings twice); the code is sent only while the switch is on.
    """
    path = Path(page_file)
    label = f"Source: this page ({path.parent.name}/{path.name})"
    if st.toggle(label, key=f"page_source_{path.stem}"):
        st.code(path.read_text(encoding="utf-8"), language="python", line_numbers=True)
        for fn in map(_function, functions):
            where = f"# {fn.__module__}.{fn.__qualname__}\n"
            st.code(where + inspect.getsource(fn), language="python")
