"""The class's pool of induction-lab runs: a student adds their run (and may take it
back); the class's page reads the pool."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING

import streamlit as st

from app import caches
from app.markdown import md_escape
from app.state import bound, state

if TYPE_CHECKING:
    from lib.train.pool import ClassPool, PooledRun

NAME_HELP = (
    "Shown beside your curves to everyone on this server who opens The class's lab. "
    "Leave it blank to be shown as a run number. Only your settings and your run's curves "
    "go in the pool: no text of yours."
)


PROBLEMS = (sqlite3.Error, OSError, ValueError)  # a locked, damaged or unwritable pool file


def open_pool() -> ClassPool | None:
    """The server's class pool, or a message and None (none kept, or it cannot be opened)."""
    try:
        pool = caches.class_pool()
    except PROBLEMS as err:
        st.warning(md_escape(f"The class pool cannot be opened: {err}"), icon=":material/warning:")
        return None
    if pool is None:
        st.caption("This server keeps no class pool (TAV_CLASS_POOL=off).")
    return pool


def read_runs(pool: ClassPool, hours: float | None, quiet: bool = False) -> list[PooledRun]:
    """The pool's runs of the last `hours`; a message (unless `quiet`: said already) and
    none when it cannot be read."""
    try:
        return pool.runs(hours)
    except PROBLEMS as err:
        if not quiet:
            st.warning(md_escape(f"The class pool cannot be read: {err}"),
                       icon=":material/warning:")  # fmt: skip
        return []


def add_to_pool(lab) -> None:
    """Add this session's trained induction model's curves to the class pool."""
    pool = open_pool()
    if pool is None:
        return
    try:
        _pool_controls(pool, lab)
    except PROBLEMS as err:
        st.warning(md_escape(f"The class pool cannot be used: {err}"), icon=":material/warning:")


def _pool_controls(pool: ClassPool, lab) -> None:
    owner = state.atlas.owner  # the session's identity: whose runs to take back
    done = state.ind.pooled
    mine_now = done[1] if done is not None and done[0] is lab else None
    others = [(i, c) for i, c in pool.settings(24) if i != mine_now]
    # Training is seeded: the same seed and settings give the same run, curve for curve.
    twins = [i for i, c in others if c == lab.config]
    if twins:
        whose = "Your" if twins[0] in pool.mine(owner) else "The"
        st.info(
            f"{whose} run #{twins[0]} in the pool has this seed and these settings, so its "
            "curves are these too. Pick another seed (section 2) and train again to give "
            "the class a run of its own.",
            icon=":material/content_copy:",
        )
    elif others:
        seeds = sorted({c.seed for _, c in others})
        shown = ", ".join(map(str, seeds[:20])) + (" ..." if len(seeds) > 20 else "")
        st.caption(f"Seeds in the pool (last 24 hours): {shown}.")
    c1, c2 = st.columns([3, 2], vertical_alignment="bottom")
    c1.text_input("Your name in the pool (optional)", max_chars=40, help=NAME_HELP,
                  **bound("ind_pool_name"))  # fmt: skip
    if done is not None and done[0] is lab and done[1] in pool.mine(owner):
        c2.button(f"In the pool as run #{done[1]}", disabled=True, icon=":material/check:")
    elif c2.button("Add my run to the class pool", icon=":material/group_add:",
                   key="ind_pool_add"):  # fmt: skip
        rid = pool.add(owner, state.ind.pool_name, lab.config, lab.history)
        state.ind.pooled = (lab, rid)
        st.rerun()  # the button above shows it is in
    mine = pool.mine(owner)
    if mine:
        st.caption(
            f"Your runs in the pool: {', '.join(f'#{i}' for i in mine)}. Everyone on this "
            "server sees them (with your name, if you gave one) on The class's lab."
        )
        taken = st.selectbox("Take one back", mine, index=None, format_func=lambda i: f"#{i}",
                             placeholder="Choose a run", key="ind_pool_take")  # fmt: skip
        if taken is not None and st.button("Take it back", icon=":material/delete:"):
            pool.remove(owner, int(taken))
            st.rerun()
    st.page_link("lessons/class_lab.py", label="See the class's runs together",
                 icon=":material/groups:")  # fmt: skip
