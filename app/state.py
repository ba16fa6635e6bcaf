"""Typed session state: every value that outlives a page, with its type and default.

Values are grouped by the lesson that owns them (`state.gen.prompt`, `state.view.step`,
`state.ap.pace`); the run and the model every page shows sit on `state` itself. Each value
lives in `st.session_state` under its key: its group's prefix and its name ("nt_alt").
Pages read and write `state.<group>.<name>`; nothing else touches `st.session_state` by
name, except widgets that only one page draws (their key is their state).

Streamlit drops a widget's state when a run does not draw it (on another page), so a
shared value lives under its own key and its widget under `widget_key(key)`: `bound(key)`
copies the value into the widget before it is drawn and back when the user changes it.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import streamlit as st

from lib.config import (
    BUNDLED_MODEL,
    DEFAULT_MAX_TOKENS,
    DEFAULT_PROMPT,
    DEFAULT_THRESHOLD,
    LINES_THRESHOLD,
    MATRIX_CAPTURED,
    MAX_NEW_TOKENS_CAP,
)
from lib.model.request import Run, RunRequest
from lib.train.data import SENTENCES
from lib.train.settings import InductionConfig

if TYPE_CHECKING:
    from lib.model.scheduler import Scheduler, Ticket
    from lib.train.io import LabModel

T = TypeVar("T")

BUNDLED_LABEL = "SmolLM2-135M-Instruct (bundled, offline)"
PROBE = "Repeated random tokens (induction probe)"

FIELDS: dict[str, Shared] = {}  # every shared value, by its session key


class Shared(Generic[T]):
    """One session value, stored under its key (its group's prefix and its name) and
    created from its default on first use."""

    def __init__(self, default: T | None = None, factory: Callable[[], T] | None = None):
        self.default, self.factory = default, factory

    def __set_name__(self, owner: type, name: str) -> None:
        self.key = getattr(owner, "prefix", "") + name
        if self.key in FIELDS:
            raise TypeError(f"two session values share the key {self.key!r}")
        FIELDS[self.key] = self

    def __get__(self, obj: object, objtype: type | None = None) -> T:
        if obj is None:
            return self  # type: ignore[return-value] - the class attribute itself
        ss = st.session_state
        if self.key not in ss:
            ss[self.key] = self.factory() if self.factory else copy.copy(self.default)
        return ss[self.key]

    def __set__(self, obj: object, value: T) -> None:
        st.session_state[self.key] = value


# ---- values of the session's own types --------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """The run this session is waiting for, kept across reruns: clicking anything while it
    is written does not lose it (the Generate page picks it up again)."""

    request: RunRequest
    ticket: Ticket
    scheduler: Scheduler


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


# ---- the groups, one per lesson ---------------------------------------------------------


class Group:
    prefix: ClassVar[str] = ""


class Classroom(Group):
    """The sidebar's switches, on every page."""

    projector: Shared[bool] = Shared(False)  # figures and labels sized for a projector
    quiz: Shared[bool] = Shared(False)  # guess before a view is revealed
    quiz_answers: Shared[dict[str, tuple[object, bool]]] = Shared(factory=dict)  # (guess, right)
    quiz_asked: Shared[dict[str, str]] = Shared(factory=dict)  # topic -> the question posed


class Generate(Group):
    """Generate: the prompt and how the run is written."""

    prompt: Shared[str] = Shared(DEFAULT_PROMPT)
    max_tokens: Shared[int] = Shared(DEFAULT_MAX_TOKENS)
    chat_template: Shared[bool] = Shared(False)
    decoding: Shared[str] = Shared("Greedy")
    temperature: Shared[float] = Shared(1.0)
    top_k: Shared[int] = Shared(0)
    top_p: Shared[float] = Shared(1.0)
    min_p: Shared[float] = Shared(0.0)
    seed: Shared[int] = Shared(0)


class AttentionView(Group):
    """How a run is viewed: the graph, the matrices, the lenses, Next token and Ablate share
    it, so the step chosen on one page is the step on the next. Steps are 1-based, as
    their sliders show them."""

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
    graph_focus: Shared[tuple[str, str, int] | None] = Shared(None)  # (run key, side, index)
    matrix_source: Shared[str] = Shared(MATRIX_CAPTURED)


class NextToken(Group):
    """Next token, Step by step and Tokens & predictions: one step's candidates."""

    prefix = "nt_"
    branch_at: Shared[int | None] = Shared(None)  # What if's step (1-based); None: the middle
    show: Shared[int] = Shared(12)
    temperature: Shared[float] = Shared(0.7)  # the filters start where they cut something
    top_k: Shared[int] = Shared(5)
    top_p: Shared[float] = Shared(0.9)
    min_p: Shared[float] = Shared(0.1)
    seed: Shared[int] = Shared(0)
    decoding: Shared[str] = Shared("Sample")
    norm: Shared[bool] = Shared(True)
    alt: Shared[int | None] = Shared(None)
    cmp_step: Shared[int] = Shared(1)
    error: Shared[str | None] = Shared(None)
    branches: Shared[Branches | None] = Shared(None)
    sampled: Shared[Sampled | None] = Shared(None)  # highlighted in every chart of its step


class Autoplay(Group):
    """Step by step's autoplay: one token per tick of `pace` seconds until `cap` tokens."""

    prefix = "ap_"
    on: Shared[bool] = Shared(False)
    pace: Shared[float] = Shared(1.5)
    cap: Shared[int] = Shared(MAX_NEW_TOKENS_CAP)
    last: Shared[float | None] = Shared(None)  # time.monotonic() the last tick started
    took: Shared[float | None] = Shared(None)  # seconds the last tick took to write a token
    real: Shared[float | None] = Shared(None)  # seconds between the last two tokens' starts
    note: Shared[str | None] = Shared(None)  # why autoplay last stopped


class HeadRoles(Group):
    """Head roles."""

    prefix = "hr_"
    probe: Shared[str] = Shared(PROBE)
    role: Shared[str] = Shared("induction")
    grid_nonce: Shared[int] = Shared(0)


class Lenses(Group):
    """Logit lens & fingerprints."""

    prefix = "lens_"
    ov_layer: Shared[int] = Shared(0)
    measure: Shared[str] = Shared("probability")  # the sub-layer lens chart's y axis
    cp_layer: Shared[int | None] = Shared(None)  # the copying spectrum's head; None: strongest
    cp_head: Shared[int | None] = Shared(None)


class Ablation(Group):
    """Ablate a head."""

    prefix = "ab_"
    heads: Shared[list[tuple[int, int]]] = Shared(factory=list)  # (layer, head) pairs
    # (view.layer, view.head) when the selection last followed them; None: never opened
    seen: Shared[tuple[int | None, int | None] | None] = Shared(None)


class Patching(Group):
    """Cause and effect: the patching example and the site patched."""

    prefix = "patch_"
    preset: Shared[str] = Shared("John and Mary")
    site: Shared[str] = Shared("resid_pre")


class Analogy(Group):
    """Vector arithmetic."""

    prefix = "analogy_"
    equation: Shared[str] = Shared("king - man + woman")
    k: Shared[int] = Shared(10)
    specials: Shared[bool] = Shared(True)  # special tokens are never answers
    variants: Shared[bool] = Shared(True)  # nor the inputs' other spellings


class Atlas(Group):
    """Attention atlas, and the recording of runs into it."""

    prefix = "atlas_"
    record: Shared[bool | None] = Shared(None)  # share this session's runs (None: not asked)
    owner: Shared[str] = Shared(factory=lambda: uuid.uuid4().hex)  # whose runs to delete
    recorded: Shared[set[str]] = Shared(factory=set)  # run keys already recorded
    problem: Shared[str | None] = Shared(None)  # why the last recording failed
    deleted: Shared[int | None] = Shared(None)  # runs "Delete what I shared" just took back
    colour: Shared[str] = Shared("cluster")
    point: Shared[int | None] = Shared(None)  # the map row clicked
    seen: Shared[str | None] = Shared(None)  # the map those selections belong to


class Train(Group):
    """Train a transformer: the tiny model's data, settings and the trained lab."""

    prefix = "train_"
    text: Shared[str] = Shared(factory=lambda: "\n".join(SENTENCES))
    epochs: Shared[int] = Shared(200)
    lr: Shared[float] = Shared(1e-3)
    layers: Shared[int] = Shared(2)
    heads: Shared[int] = Shared(4)
    width: Shared[int] = Shared(64)
    seed: Shared[int] = Shared(0)
    lab: Shared[LabModel | None] = Shared(None)
    sentence: Shared[int] = Shared(0)
    layer: Shared[int] = Shared(0)


class UseTrained(Group):
    """Use the trained model: writing from a start word."""

    prefix = "use_"
    start: Shared[str] = Shared("the")
    temperature: Shared[float] = Shared(0.0)
    seed: Shared[int] = Shared(0)


class Induction(Group):
    """Induction heads: the lab's settings and its trained model."""

    prefix = "ind_"
    steps: Shared[int] = Shared(InductionConfig.steps)
    seed: Shared[int] = Shared(InductionConfig.seed)
    vocab: Shared[int] = Shared(InductionConfig.vocab_size)
    half: Shared[int] = Shared(InductionConfig.half)
    heads: Shared[int] = Shared(InductionConfig.n_heads)
    width: Shared[int] = Shared(InductionConfig.d_model)
    lr: Shared[float] = Shared(InductionConfig.learning_rate)
    batch: Shared[int] = Shared(InductionConfig.batch)
    lab: Shared[LabModel | None] = Shared(None)
    pool_name: Shared[str] = Shared("")  # the name shown with this student's pooled runs
    pooled: Shared[tuple[LabModel, int] | None] = Shared(None)  # the lab last pooled, its id


class State:
    """The session: the model and the run every page shows, and each lesson's values."""

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

    classroom = Classroom()
    gen = Generate()
    view = AttentionView()
    nt = NextToken()
    ap = Autoplay()
    hr = HeadRoles()
    lens = Lenses()
    ab = Ablation()
    patch = Patching()
    analogy = Analogy()
    atlas = Atlas()
    train = Train()
    use = UseTrained()
    ind = Induction()


state = State()


# ---- values by key: for widgets and links --------------------------------------------


def get(key: str) -> Any:
    return FIELDS[key].__get__(state)


def put(key: str, value: Any) -> None:
    FIELDS[key].__set__(state, value)


def default(key: str) -> Any:
    return FIELDS[key].default


def widget_key(key: str) -> str:
    return f"{key}__w"


def _store(key: str) -> None:
    put(key, st.session_state[widget_key(key)])


def bound(key: str) -> dict[str, Any]:
    """Keyword arguments that tie a widget to the shared value under `key`."""
    if key not in FIELDS:
        raise KeyError(f"{key} is not a shared value (declare it in app/state.py)")
    st.session_state[widget_key(key)] = get(key)
    return {"key": widget_key(key), "on_change": _store, "args": (key,)}


def clamp_step(key: str, n: int, default: int = 1) -> int:
    """The 1-based step stored under `key`, put back in 1..n (a new run may be shorter)."""
    value = get(key)
    if not isinstance(value, int) or not 1 <= value <= n:
        value = min(max(default, 1), n)
        put(key, value)
    return value
