"""Typed session state: every value that outlives a page, with its type and default.

Pages read and write `state.<name>`; nothing else touches `st.session_state` by name, except
widgets that only one page draws (their key is their state). Streamlit drops a widget's
state when a run does not draw it (on another page), so a shared value lives under its own
name and its widget under `widget_key(name)`: `bound(name)` copies the value into the
widget before it is drawn and back when the user changes it.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import streamlit as st

from lib.config import (
    BUNDLED_MODEL,
    DEFAULT_MAX_TOKENS,
    DEFAULT_PROMPT,
    DEFAULT_THRESHOLD,
    MAX_NEW_TOKENS_CAP,
)
from lib.train.data import SENTENCES
from lib.train.induction import InductionConfig

if TYPE_CHECKING:
    from app.runs import Pending, Run
    from lib.train.io import LabModel

T = TypeVar("T")

BUNDLED_LABEL = "SmolLM2-135M-Instruct (bundled, offline)"
MATRIX_CAPTURED = "Generated tokens (captured while generating)"
MATRIX_WHOLE = "Whole sequence (one extra forward pass)"
PROBE = "Repeated random tokens (induction probe)"
LINES_THRESHOLD, LINES_TOP_K = "Above the threshold", "The strongest k per step"


class Shared(Generic[T]):
    """One session value, stored under its attribute's name, created from its default."""

    def __init__(self, default: T | None = None, factory: Callable[[], T] | None = None):
        self.default, self.factory = default, factory

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, objtype: type | None = None) -> T:
        if obj is None:
            return self  # type: ignore[return-value] - the class attribute itself
        ss = st.session_state
        if self.name not in ss:
            ss[self.name] = self.factory() if self.factory else copy.copy(self.default)
        return ss[self.name]

    def __set__(self, obj: object, value: T) -> None:
        st.session_state[self.name] = value


@dataclass(frozen=True)
class Branches:
    """Two runs that share their first `step` generated tokens ("what if")."""

    step: int
    runs: tuple[Run, Run]


@dataclass(frozen=True)
class Sampled:
    """The token just written or drawn, and where: the run and its 0-based generation step
    (charts of that step mark it; a token id alone could be any step's)."""

    run_key: str
    step: int
    token: int


class State:
    """The session's shared values. Steps are 1-based, as their sliders show them."""

    # the model and the run every page shows
    model_choice: Shared[str] = Shared(BUNDLED_LABEL)
    model_custom: Shared[str] = Shared("")
    model_spec: Shared[str] = Shared(BUNDLED_MODEL)
    model_error: Shared[str | None] = Shared(None)
    run: Shared[Run | None] = Shared(None)
    pending: Shared[Pending | None] = Shared(None)  # a run being written for this session
    prepared_downloads: Shared[set[str]] = Shared(factory=set)
    link_applied: Shared[bool] = Shared(False)  # the URL's view was taken on the first run
    # the sidebar's "Share this view" placeholder and the page's path, from the last full run:
    # a fragment's rerun redraws the link there (a fragment may write to an outside container)
    share_slot: Shared[tuple[Any, str] | None] = Shared(None)
    projector: Shared[bool] = Shared(False)  # figures and labels sized for a projector
    quiz: Shared[bool] = Shared(False)  # guess before a view is revealed
    quiz_answers: Shared[dict[str, tuple[object, bool]]] = Shared(
        factory=dict
    )  # key: (guess, right)
    # Generate
    prompt: Shared[str] = Shared(DEFAULT_PROMPT)
    max_tokens: Shared[int] = Shared(DEFAULT_MAX_TOKENS)
    chat_template: Shared[bool] = Shared(False)
    decoding: Shared[str] = Shared("Greedy")
    temperature: Shared[float] = Shared(1.0)
    top_k: Shared[int] = Shared(0)
    top_p: Shared[float] = Shared(1.0)
    min_p: Shared[float] = Shared(0.0)
    seed: Shared[int] = Shared(0)
    # the attention views
    threshold: Shared[float] = Shared(DEFAULT_THRESHOLD)
    layer: Shared[int | None] = Shared(None)  # None: the mean over all layers
    head: Shared[int | None] = Shared(None)  # None: the mean over all heads
    hide_sink: Shared[bool] = Shared(False)
    show_all: Shared[bool] = Shared(False)  # every step up to the current one, not just it
    graph_lines: Shared[str] = Shared(LINES_THRESHOLD)  # which lines: above a threshold, or top k
    graph_top_k: Shared[int] = Shared(5)
    step: Shared[int] = Shared(1)
    selected_token: Shared[tuple[str, int] | None] = Shared(None)
    graph_nonce: Shared[int] = Shared(0)  # a new graph key clears the click selection
    matrix_source: Shared[str] = Shared(MATRIX_CAPTURED)
    # Next token, Step by step, Tokens & predictions
    nt_step: Shared[int] = Shared(1)
    nt_show: Shared[int] = Shared(12)
    nt_temperature: Shared[float] = Shared(0.7)  # the filters start where they cut something
    nt_top_k: Shared[int] = Shared(5)
    nt_top_p: Shared[float] = Shared(0.9)
    nt_min_p: Shared[float] = Shared(0.1)
    nt_seed: Shared[int] = Shared(0)
    nt_decoding: Shared[str] = Shared("Sample")
    nt_norm: Shared[bool] = Shared(True)
    nt_alt: Shared[int | None] = Shared(None)
    nt_cmp_step: Shared[int] = Shared(1)
    nt_error: Shared[str | None] = Shared(None)
    nt_branches: Shared[Branches | None] = Shared(None)
    sampled_token: Shared[Sampled | None] = Shared(None)  # highlighted in every chart of its step
    # Step by step's autoplay: one token per tick of `ap_pace` seconds until `ap_cap` tokens
    ap_on: Shared[bool] = Shared(False)
    ap_pace: Shared[float] = Shared(1.5)
    ap_cap: Shared[int] = Shared(MAX_NEW_TOKENS_CAP)
    ap_last: Shared[float | None] = Shared(None)  # time.monotonic() the last tick started
    ap_took: Shared[float | None] = Shared(None)  # seconds the last tick took to write a token
    ap_real: Shared[float | None] = Shared(None)  # seconds between the last two tokens' starts
    ap_note: Shared[str | None] = Shared(None)  # why autoplay last stopped
    # Head roles, Logit lens & fingerprints
    hr_probe: Shared[str] = Shared(PROBE)
    hr_role: Shared[str] = Shared("induction")
    hr_grid_nonce: Shared[int] = Shared(0)
    hr_lens_step: Shared[int] = Shared(1)
    hr_ov_layer: Shared[int] = Shared(0)
    sl_measure: Shared[str] = Shared("probability")  # the sub-layer lens chart's y axis
    cp_layer: Shared[int | None] = Shared(None)  # the copying spectrum's head; None: strongest
    cp_head: Shared[int | None] = Shared(None)
    # Ablate a head
    ab_step: Shared[int] = Shared(1)
    ab_heads: Shared[list[tuple[int, int]]] = Shared(factory=list)  # (layer, head) pairs
    # (state.layer, state.head) when the selection last followed them; None: never opened
    ab_seen: Shared[tuple[int | None, int | None] | None] = Shared(None)
    # Train a transformer (seed 002) and the induction lab
    train_text: Shared[str] = Shared(factory=lambda: "\n".join(SENTENCES))
    train_epochs: Shared[int] = Shared(200)
    train_lr: Shared[float] = Shared(1e-3)
    train_layers: Shared[int] = Shared(2)
    train_heads: Shared[int] = Shared(4)
    train_width: Shared[int] = Shared(64)
    train_seed: Shared[int] = Shared(0)
    train_lab: Shared[LabModel | None] = Shared(None)
    train_sentence: Shared[int] = Shared(0)
    train_layer: Shared[int] = Shared(0)
    gen_start: Shared[str] = Shared("the")
    gen_temperature: Shared[float] = Shared(0.0)
    gen_seed: Shared[int] = Shared(0)
    ind_steps: Shared[int] = Shared(InductionConfig.steps)
    ind_seed: Shared[int] = Shared(InductionConfig.seed)
    ind_vocab: Shared[int] = Shared(InductionConfig.vocab_size)
    ind_half: Shared[int] = Shared(InductionConfig.half)
    ind_heads: Shared[int] = Shared(InductionConfig.n_heads)
    ind_width: Shared[int] = Shared(InductionConfig.d_model)
    ind_lr: Shared[float] = Shared(InductionConfig.learning_rate)
    ind_batch: Shared[int] = Shared(InductionConfig.batch)
    ind_lab: Shared[LabModel | None] = Shared(None)
    # Vector arithmetic
    analogy_equation: Shared[str] = Shared("king - man + woman")
    analogy_k: Shared[int] = Shared(10)
    analogy_specials: Shared[bool] = Shared(True)  # special tokens are never answers
    analogy_variants: Shared[bool] = Shared(True)  # nor the inputs' other spellings
    # Attention atlas
    atlas_record: Shared[bool] = Shared(True)  # add this session's runs to the atlas
    atlas_owner: Shared[str] = Shared(factory=lambda: uuid.uuid4().hex)  # whose runs to delete
    atlas_recorded: Shared[set[str]] = Shared(factory=set)  # run keys already recorded
    atlas_problem: Shared[str | None] = Shared(None)  # why the last recording failed
    atlas_colour: Shared[str] = Shared("cluster")
    atlas_point: Shared[int | None] = Shared(None)  # the map row clicked
    atlas_seen: Shared[str | None] = Shared(None)  # the map those selections belong to
    graph_focus: Shared[tuple[str, str, int] | None] = Shared(None)  # (run key, side, index)


state = State()


def widget_key(name: str) -> str:
    return f"{name}__w"


def _store(name: str) -> None:
    setattr(state, name, st.session_state[widget_key(name)])


def bound(name: str) -> dict[str, Any]:
    """Keyword arguments that tie a widget to the shared value `name`."""
    if not isinstance(State.__dict__.get(name), Shared):
        raise KeyError(f"{name} is not a shared value (declare it on State)")
    st.session_state[widget_key(name)] = getattr(state, name)
    return {"key": widget_key(name), "on_change": _store, "args": (name,)}


def clamp_step(name: str, n: int, default: int = 1) -> int:
    """The 1-based step stored under `name`, put back in 1..n (a new run may be shorter)."""
    value = getattr(state, name)
    if not isinstance(value, int) or not 1 <= value <= n:
        value = min(max(default, 1), n)
        setattr(state, name, value)
    return value
