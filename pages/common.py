"""Streamlit glue shared by the pages: session state, the cached model, cached runs.

Everything heavy lives in lib/; this module decides what is cached and where state lives.
The model is an `st.cache_resource` (one per process); a run's result is an `st.cache_data`
entry keyed by a hash of its inputs, and the current run sits in `st.session_state["run"]`
so every page shows the same one and switching pages never recomputes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import streamlit as st

from lib.config import (
    BUNDLED_MODEL,
    DEFAULT_MAX_TOKENS,
    DEFAULT_PROMPT,
    DEFAULT_THRESHOLD,
    Limits,
)
from lib.generation import PromptError, generate, normalise_prompt
from lib.matrices import FullAttention, full_attention
from lib.models import LoadedModel, ModelLoadError, bundled_is_converted, converted_bundled_dir
from lib.result import GenerationResult, SamplingSettings

LIMITS = Limits.from_env()
MATRIX_CAPTURED = "Generated tokens (captured while generating)"
MATRIX_WHOLE = "Whole sequence (one extra forward pass)"
BUNDLED_LABEL = "SmolLM2-135M-Instruct (bundled, offline)"
OTHER_MODEL = "Other: a Hugging Face id or a local folder"

# Values that outlive the page whose widget set them. Streamlit drops a widget's state when
# a run does not render it (another page), so each lives under its own name and its widget
# under `widget_key(name)`, copied in before the widget is drawn and back on change.
DEFAULTS: dict[str, object] = {
    "prompt": DEFAULT_PROMPT,
    "max_tokens": DEFAULT_MAX_TOKENS,
    "threshold": DEFAULT_THRESHOLD,
    "decoding": "Greedy",
    "temperature": 1.0,
    "top_k": 0,
    "top_p": 1.0,
    "min_p": 0.0,
    "seed": 0,
    "chat_template": False,
    "layer": "All layers (mean)",
    "head": "All heads (mean)",
    "show_all": False,
    "hide_sink": False,
    "model_choice": BUNDLED_LABEL,
    "model_custom": "",
}


def init_state() -> None:
    """Give every shared key its default."""
    ss = st.session_state
    for key, value in DEFAULTS.items():
        ss.setdefault(key, value)
    # A deployment may lower the cap below a value this session chose earlier.
    ss["max_tokens"] = min(max(int(ss["max_tokens"]), 1), LIMITS.max_new_tokens)
    ss.setdefault("model_spec", BUNDLED_MODEL)
    ss.setdefault("model_error", None)
    ss.setdefault("run", None)
    ss.setdefault("selected_token", None)
    ss.setdefault("graph_nonce", 0)


def widget_key(name: str) -> str:
    return f"{name}__w"


def _store(name: str) -> None:
    st.session_state[name] = st.session_state[widget_key(name)]


def bound(name: str) -> dict:
    """Keyword arguments that tie a widget to the shared value `name` (see DEFAULTS)."""
    st.session_state[widget_key(name)] = st.session_state[name]
    return {"key": widget_key(name), "on_change": _store, "args": (name,)}


@st.cache_resource(show_spinner="Loading the model ...", max_entries=2)
def _cached_model(spec: str) -> LoadedModel:
    from lib.models import load_model

    return load_model(spec)


def get_model(spec: str) -> LoadedModel:
    """The loaded model for `spec`; the first start converts the bundled GGUF with progress."""
    if spec == BUNDLED_MODEL and not bundled_is_converted():
        with st.status("First start: preparing the bundled model (once)", expanded=True) as box:
            bar = st.progress(0.0)
            converted_bundled_dir(progress=lambda f, msg: bar.progress(f, text=msg))
            box.update(label="Bundled model ready", state="complete", expanded=False)
    return _cached_model(spec)


def current_model() -> LoadedModel | None:
    """The model in use, or None (with the reason in session state) when it cannot load."""
    ss = st.session_state
    try:
        lm = get_model(ss["model_spec"])
    except ModelLoadError as err:
        ss["model_error"] = str(err)
        return None
    return lm


def switch_model(spec: str) -> str | None:
    """Try to load `spec`; on success it becomes the model in use. Returns an error or None.

    On failure the previous model stays in use, and the current run is kept.
    """
    try:
        get_model(spec)
    except ModelLoadError as err:
        return str(err)
    st.session_state["model_spec"] = spec
    st.session_state["model_error"] = None
    return None


def sampling_from_state() -> SamplingSettings:
    ss = st.session_state
    if ss["decoding"] == "Greedy":
        return SamplingSettings()
    return SamplingSettings(
        do_sample=True,
        temperature=float(ss["temperature"]),
        top_k=int(ss["top_k"]),
        top_p=float(ss["top_p"]),
        min_p=float(ss["min_p"]),
        seed=int(ss["seed"]),
    )


@dataclass(frozen=True)
class RunRequest:
    """The inputs that determine a run; its hash keys the result cache."""

    model_spec: str
    prompt: str
    max_new_tokens: int
    sampling: SamplingSettings
    chat_template: bool
    forced_tokens: tuple[int, ...] = ()  # first choices fixed ("next token", "what if")

    @property
    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


@st.cache_data(max_entries=LIMITS.result_cache_entries, show_spinner=False)
def _cached_run(key: str, _request: RunRequest, _lm: LoadedModel) -> GenerationResult:
    request = _request  # hashed through `key`, which covers every field
    # Elements made here are replayed on a cache hit: a finished progress bar, which is true.
    bar = st.progress(0.0, text="Generating ...")
    live = st.empty()
    pieces: list[str] = []

    def on_token(step: int, total: int, label: str) -> None:
        pieces.append(label)
        bar.progress((step + 1) / total, text=f"Generated token {step + 1} of at most {total}")
        live.text(" ".join(pieces))

    result = generate(
        _lm,
        request.prompt,
        request.max_new_tokens,
        sampling=request.sampling,
        chat_template=request.chat_template,
        forced_tokens=request.forced_tokens,
        on_token=on_token,
        limits=LIMITS,
    )
    live.empty()
    return result


def request_from_state(lm: LoadedModel) -> RunRequest:
    """The run the Generate page's settings describe."""
    ss = st.session_state
    return RunRequest(
        model_spec=ss["model_spec"],
        prompt=normalise_prompt(str(ss["prompt"])),
        max_new_tokens=int(ss["max_tokens"]),
        sampling=sampling_from_state(),
        chat_template=bool(ss["chat_template"]) and lm.has_chat_template,
    )


def run_generation(lm: LoadedModel, request: RunRequest | None = None) -> str | None:
    """Run `request` (default: the Generate page's settings) through the result cache and
    make it the current run that every page shows. Returns an error message or None."""
    request = request or request_from_state(lm)
    try:
        result = _cached_run(request.key, request, lm)
    except PromptError as err:
        return str(err)
    set_current_run(request, result)
    return None


def fetch_run(lm: LoadedModel, request: RunRequest) -> tuple[GenerationResult | None, str | None]:
    """Run `request` through the result cache WITHOUT making it the current run
    (a "what if" branch shown beside the current one). Returns (result, None) or (None, error)."""
    try:
        return _cached_run(request.key, request, lm), None
    except PromptError as err:
        return None, str(err)


def set_current_run(request: RunRequest, result: GenerationResult) -> None:
    """Make `result` the run every page shows (and clear selections tied to the old one)."""
    ss = st.session_state
    ss["run"] = {"key": request.key, "request": request, "result": result}
    ss["selected_token"] = None
    ss["graph_nonce"] += 1


def current_run() -> tuple[str, GenerationResult] | None:
    run = st.session_state.get("run")
    return (run["key"], run["result"]) if run else None


def need_run() -> tuple[str, GenerationResult]:
    """The current run's key and result; without one, a note pointing to Generate, then stop."""
    run = current_run()
    if run is None:
        st.info("Nothing generated yet. Write a prompt on the Generate page first.")
        st.page_link("pages/generate.py", label="Go to Generate", icon=":material/edit:")
        st.stop()
    return run


# A resource, not data: read-only arrays of up to heads x T^2 floats are shared, not copied
# (st.cache_data would unpickle a fresh copy on every rerun of the page showing them).
@st.cache_resource(max_entries=4, show_spinner="Computing the full matrix (one forward pass) ...")
def cached_full(
    run_key: str, layer: int | None, _lm: LoadedModel, _ids: np.ndarray
) -> FullAttention:
    """Whole-sequence attention of the run `run_key` (mean, and every head of `layer`)."""
    return full_attention(_lm, _ids, layer)


# A resource, not data: immutable bytes shared, not unpickled afresh on every rerun.
@st.cache_resource(max_entries=2, show_spinner="Compressing the run ...")
def cached_npz(run_key: str, _result: GenerationResult) -> bytes:
    """The run as a .npz download (compressing a long run is worth doing once)."""
    return _result.to_npz()


# Up to this many bytes a download is built with the page, so one click downloads it;
# a larger one (a long prompt's run) waits for a "Prepare" click.
EAGER_DOWNLOAD_BYTES = 8_000_000


def download(
    where,
    label: str,
    build: Callable[[], bytes | str],
    *,
    file_name: str,
    mime: str,
    size_hint: int = 0,
    help: str | None = None,
) -> None:
    """A download button that keeps working while other sessions rerun.

    Streamlit's lazy download (`data=` a callable) stores the built file with no session
    referring to it, and the end of any two reruns, of any session, deletes such a file: in
    a busy class the browser's fetch then gets a 404, or no download starts at all (issue
    11). Here the bytes are given to `st.download_button`, so the file belongs to this
    session's page while it shows, and `on_click="ignore"` keeps the click from rerunning
    the page (a rerun would let go of the file for a moment). Files over
    EAGER_DOWNLOAD_BYTES are built only after a "Prepare" click, then kept for the session.
    """
    prepared: set[str] = st.session_state.setdefault("prepared_downloads", set())
    slot = where.empty()
    if size_hint > EAGER_DOWNLOAD_BYTES and file_name not in prepared:
        if not slot.button(
            f"Prepare: {label}",
            key=f"prepare:{file_name}",
            icon=":material/package_2:",
            help=f"About {size_hint / 1e6:,.0f} MB before compression: built when you ask.",
        ):
            return
        prepared.add(file_name)
    slot.download_button(
        label,
        build(),
        file_name=file_name,
        mime=mime,
        on_click="ignore",
        icon=":material/download:",
        help=help,
        key=f"download:{file_name}",
    )


def download_run(where, run_key: str, result: GenerationResult) -> None:
    """The whole run as a NumPy archive (the same button on every page that offers it)."""
    download(
        where,
        "Download the whole run (NPZ)",
        lambda: cached_npz(run_key, result),
        file_name=f"run-{run_key}.npz",
        mime="application/octet-stream",
        size_hint=result.nbytes(),
        help="Token ids, labels, every captured attention row (step x layer x head x key), "
        "and the next-token probabilities, as a NumPy archive.",
    )


def layer_head_choice(result: GenerationResult) -> tuple[int | None, int | None]:
    """Sidebar-free layer/head pickers shared by the attention pages (None = mean)."""
    layer_opts = ["All layers (mean)"] + [f"Layer {i}" for i in range(result.n_layers)]
    head_opts = ["All heads (mean)"] + [f"Head {i}" for i in range(result.n_heads)]
    ss = st.session_state
    if ss["layer"] not in layer_opts:
        ss["layer"] = layer_opts[0]
    if ss["head"] not in head_opts:
        ss["head"] = head_opts[0]
    c1, c2 = st.columns(2)
    layer = c1.selectbox("Layer", layer_opts, **bound("layer"))
    head = c2.selectbox("Head", head_opts, **bound("head"))
    li = None if layer == layer_opts[0] else layer_opts.index(layer) - 1
    hi = None if head == head_opts[0] else head_opts.index(head) - 1
    return li, hi


_MD_SPECIAL = set("\\`*_{}[]()#+-.!|<>$~:=&")


def md_escape(text: str) -> str:
    """Text made literal for st.markdown-style elements (captions, errors, labels).

    Every Markdown-active ASCII punctuation is backslash-escaped, so `**x**`, `[a](b)`,
    `$x$` and `:red[x]` show as typed; raw HTML is never enabled anywhere in the app.
    """
    return "".join("\\" + c if c in _MD_SPECIAL else c for c in str(text))


def describe_aggregation(result: GenerationResult, layer: int | None, head: int | None) -> str:
    what_layer = f"all {result.n_layers} layers" if layer is None else f"layer {layer}"
    what_head = f"all {result.n_heads} heads" if head is None else f"head {head}"
    verb = "averaged over" if layer is None or head is None else "from"
    return f"{verb} {what_head} of {what_layer}"
