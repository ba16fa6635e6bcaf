"""Widgets more than one page draws, each written once: the same control everywhere."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from pathlib import Path

import streamlit as st

from app import caches
from app.runs import Run
from app.state import BUNDLED_LABEL, LINES_TOP_K, bound, clamp_step, state, widget_key
from lib.config import BUNDLED_MODEL, SUGGESTED_HUB_MODELS, Limits
from lib.model.loading import LoadedModel, ModelLoadError
from lib.viz.look import PROJECTOR_TEXT, plotly_for_projector, vega_for_projector

OTHER_MODEL = "Other: a Hugging Face id or a local folder"
SINK_HELP = (
    "Most models park a large share of their attention on the first token. Hiding it and "
    "renormalising each row over the other tokens makes the rest visible."
)
_MD_SPECIAL = set("\\`*_{}[]()#+-.!|<>$~:=&")


def md_escape(text: str) -> str:
    """Text made literal for st.markdown-style elements (captions, errors, labels).

    Every Markdown-active ASCII punctuation is backslash-escaped, so `**x**`, `[a](b)`,
    `$x$` and `:red[x]` show as typed; raw HTML is never enabled anywhere in the app. The
    text is isolated (U+2068 ... U+2069, first strong isolate), so right-to-left or
    direction-changing characters in it can never reorder the sentence around it.
    """
    escaped = "".join("\\" + c if c in _MD_SPECIAL else c for c in str(text))
    return "\u2068" + escaped + "\u2069"


def page_intro(title: str, lesson: str) -> None:
    """The page title and the two sentences on what it teaches."""
    st.title(title)
    st.caption(lesson)


# ---- the model and the current run ------------------------------------------------------


def current_model() -> LoadedModel | None:
    """The model in use, or None (with the reason in `state.model_error`)."""
    try:
        return caches.model(state.model_spec)
    except ModelLoadError as err:
        state.model_error = str(err)
        return None


def model_status() -> None:
    """The sidebar names the model in use on every page (the picker is on Generate)."""
    with st.sidebar:
        st.subheader("Model")
        lm = current_model()
        if lm is None:
            st.warning("No model is loaded: " + md_escape(state.model_error or ""))
            return
        st.success(md_escape(lm.name), icon=":material/check_circle:")
        st.caption(
            f"{lm.n_params / 1e6:,.0f} M parameters · {lm.n_layers} layers × {lm.n_heads} heads"
            f" · {lm.device.type} · {str(lm.dtype).removeprefix('torch.')}"
        )


def model_picker() -> None:
    """Choose the bundled model, a suggested hub model or any id / folder; on failure the
    previous model stays in use."""
    with st.expander("Model", icon=":material/memory:"):
        hub = Limits.from_env().allow_hub  # a shared server may switch the hub off
        choices = {BUNDLED_LABEL: BUNDLED_MODEL} | {m: m for m in SUGGESTED_HUB_MODELS if hub}
        if state.model_choice not in (*choices, OTHER_MODEL):
            state.model_choice = BUNDLED_LABEL
        m1, m2 = st.columns([2, 3])
        choice = m1.selectbox(
            "Choose a model",
            [*choices, OTHER_MODEL],
            **bound("model_choice"),
            help="Hub models need a network connection the first time."
            if hub
            else "This server loads no models from the hub; a model folder on it still works.",
        )
        if choice == OTHER_MODEL:
            spec = m2.text_input(
                "Model id or folder",
                **bound("model_custom"),
                placeholder="e.g. HuggingFaceTB/SmolLM2-360M-Instruct",
            )
        else:
            spec = choices[choice]
        spec = spec.strip()
        if st.button("Load model", disabled=not spec or spec == state.model_spec):
            try:
                caches.model(spec)
                state.model_spec, state.model_error = spec, None
            except ModelLoadError as err:
                state.model_error = str(err)
        if state.model_error:
            st.error(md_escape(state.model_error), icon=":material/error:")
            st.caption("The previous model stays in use.")


def need_run() -> Run:
    """The current run; without one, a note pointing to Generate, then the page stops."""
    if state.run is None:
        st.info("Nothing generated yet. Write a prompt on the Generate page first.")
        st.page_link("lessons/generate.py", label="Go to Generate", icon=":material/edit:")
        st.stop()
    return state.run


def need_model(run: Run, purpose: str) -> LoadedModel:
    """The model that made `run` (compared by its spec), or a warning and the page stops."""
    lm = current_model()
    if lm is None or lm.spec != run.result.model_spec:
        st.warning(
            f"{purpose} needs the model that made the current run. Load it again on the "
            "Generate page, or generate a new run."
        )
        st.stop()
    return lm


# ---- figures: every chart goes through here, so projector mode reaches all of them -------


def chart(figure, where=None, **kwargs):
    """Draw an Altair chart (in `where`, a column or placeholder; default the page);
    returns what `st.altair_chart` returns (the selection, with on_select)."""
    where = where or st
    if state.projector:  # the spec itself: rebuilding an Altair object from it takes ~0.4 s
        return where.vega_lite_chart(vega_for_projector(figure.to_dict()), **kwargs)
    return where.altair_chart(figure, **kwargs)


def plotly(figure, where=None, **kwargs):
    """Draw a Plotly figure, as `chart` does an Altair one."""
    if state.projector:
        figure = plotly_for_projector(figure)
    return (where or st).plotly_chart(figure, **kwargs)


def classroom_switches() -> None:
    """The classroom's two switches, in the sidebar of every page; both kept in the link."""
    st.toggle(
        "Projector mode",
        **bound("projector"),
        help=f"Every chart's text at least {PROJECTOR_TEXT} px, thicker lines and markers. "
        "For the page's own text, use the browser's zoom (Ctrl and +). Kept in the link.",
    )
    st.toggle(
        "Quiz mode",
        **bound("quiz"),
        help="Guess before you see: the attention graph, the next token and the head roles "
        "ask first, then show the answer and your score (kept in this tab only).",
    )


# ---- controls shared by the views -------------------------------------------------------


def step_slider(name: str, n: int, help: str, default_last: bool = False) -> int:
    """The generation-step slider (1-based on screen); returns the 0-based step."""
    clamp_step(name, n, default=n if default_last else 1)
    if n > 1:
        st.slider("Generation step", 1, n, **bound(name), help=help)
    else:
        st.caption("One token was generated: step 1 of 1.")
    return int(getattr(state, name)) - 1


_ALL = -1  # the pickers' "all of them (mean)" option: a selectbox shows None as unset


def _index_picker(where, name: str, label: str, n: int) -> None:
    """A selectbox over "all" and 0..n-1, tied to the shared value `name` (None = all)."""
    key = widget_key(name)
    value = getattr(state, name)
    if value not in range(n):
        value = None
        setattr(state, name, None)
    st.session_state[key] = _ALL if value is None else value

    def store() -> None:
        picked = st.session_state[key]
        setattr(state, name, None if picked == _ALL else int(picked))

    where.selectbox(
        label,
        [_ALL, *range(n)],
        format_func=lambda i: f"All {label.lower()}s (mean)" if i == _ALL else f"{label} {i}",
        key=key,
        on_change=store,
    )


def layer_head_picker(n_layers: int, n_heads: int) -> tuple[int | None, int | None]:
    """Layer and head pickers (None = the mean over all of them), side by side."""
    c1, c2 = st.columns(2)
    _index_picker(c1, "layer", "Layer", n_layers)
    _index_picker(c2, "head", "Head", n_heads)
    return state.layer, state.head


def threshold_slider(where=st) -> float:
    """The graph's attention threshold (also set on Generate, next to the token count)."""
    where.slider(
        "Attention threshold",
        0.0,
        0.2,
        step=0.001,
        format="%.3f",
        **bound("threshold"),
        help="The graph hides connections whose normalised weight is below this.",
    )
    return float(state.threshold)


def sink_toggle(where=st, help: str = SINK_HELP) -> bool:
    """The one "hide the first-token sink" switch; every attention view follows it."""
    return bool(
        where.toggle("Hide the first-token sink and renormalise", **bound("hide_sink"), help=help)
    )


def window_slider(label: str, n: int, size: int, key: str) -> tuple[int, int]:
    """A range of at most `size` of n positions (the last ones at first); (0, n) if n fits."""
    if n <= size:
        return 0, n
    held = st.session_state.get(key)
    if not (isinstance(held, tuple | list) and len(held) == 2 and 0 <= held[0] < held[1] <= n):
        st.session_state[key] = (n - size, n)  # a new run may be shorter than the last
    lo, hi = st.slider(label, 0, n, key=key, help=f"At most {size} are drawn at once.")
    lo = min(lo, n - 1)
    return lo, min(max(hi, lo + 1), lo + size)


def show_source(title: str, *functions: Callable) -> None:
    """The library code behind a section, as seed 003 shows it."""
    with st.expander(f"Source: {title}", expanded=False, icon=":material/code:"):
        for fn in functions:
            st.code(inspect.getsource(fn), language="python")


def page_source(page_file: str, *functions: Callable) -> None:
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
        for fn in functions:
            where = f"# {fn.__module__}.{fn.__qualname__}\n"
            st.code(where + inspect.getsource(fn), language="python")


# ---- the training lab -------------------------------------------------------------------


def train_live(trainer, total: int, unit: str, keep: Callable[[], None], draw: Callable[[], None]):
    """Train until `trainer.done`, redrawing a few times a second; stoppable.

    `keep` stores what is trained so far in the session before every redraw, so the Stop
    button (any click reruns the page, which ends this loop at its next redraw) loses
    nothing: the page then shows the run as far as it got.
    """
    stop = st.empty()
    stop.button("Stop", icon=":material/stop_circle:", help="Keep what is trained so far.")
    bar = st.progress(0.0, text=f"Training: 0 of {total:,} {unit}s")
    last = 0.0
    while not trainer.done:
        trainer.step()
        now = time.monotonic()
        if now - last > 0.3 or trainer.done:
            last = now
            keep()
            draw()
            bar.progress(
                trainer.progress / total,
                text=f"Training: {trainer.progress:,} of {total:,} {unit}s",
            )
    bar.empty()
    stop.empty()


# ---- downloads --------------------------------------------------------------------------

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
    prepare: bool = False,
) -> None:
    """A download button that keeps working while other sessions rerun.

    Streamlit's lazy download (`data=` a callable) stores the built file with no session
    referring to it, and the end of any two reruns, of any session, deletes such a file: in
    a busy class the browser's fetch then gets a 404, or no download starts at all (issue
    11). Here the bytes are given to `st.download_button`, so the file belongs to this
    session's page while it shows, and `on_click="ignore"` keeps the click from rerunning
    the page (a rerun would let go of the file for a moment). Files over
    EAGER_DOWNLOAD_BYTES, or slow to build (`prepare`), are built only after a "Prepare"
    click, then kept for the session.
    """
    prepared = state.prepared_downloads
    slot = where.empty()
    if (prepare or size_hint > EAGER_DOWNLOAD_BYTES) and file_name not in prepared:
        if not slot.button(
            f"Prepare: {label}",
            key=f"prepare:{file_name}",
            icon=":material/package_2:",
            help=f"About {size_hint / 1e6:,.0f} MB: built when you ask."
            if size_hint
            else "Built when you ask (it takes a moment).",
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


def download_run(where, run: Run) -> None:
    """The whole run as a NumPy archive (the same button on every page that offers it)."""
    download(
        where,
        "Download the whole run (NPZ)",
        lambda: caches.npz(run.key, run.result),
        file_name=f"run-{run.key}.npz",
        mime="application/octet-stream",
        size_hint=run.result.nbytes(),
        help="Token ids, labels, every captured attention row (step x layer x head x key), "
        "and the next-token probabilities, as a NumPy archive.",
    )


def download_lesson(where, run: Run, layer: int | None, head: int | None, hide: bool) -> None:
    """The run as one offline HTML page, drawn with the graph's current settings."""
    top_k = int(state.graph_top_k) if state.graph_lines == LINES_TOP_K else None
    threshold = float(state.threshold)
    download(
        where,
        "Download this run as an offline page (HTML)",
        lambda: caches.lesson_html(run.key, layer, head, hide, threshold, top_k, run.result),
        file_name=f"lesson-{run.key}-{layer}-{head}-{int(hide)}-{threshold:g}-{top_k}.html",
        mime="text/html",
        prepare=True,
        help="One file: the text, this graph with a slider over every step (this layer, head, "
        "sink and lines setting), and the attention matrix. It opens in any browser with no "
        "network: the plotting library is inside it.",
    )


# ---- the atlas --------------------------------------------------------------------------


def build_map_button(store, output: str) -> None:
    """ "Build the map here": ingest the built-in corpus (resumable: a stop loses nothing),
    then discover; one session at a time, the others are told to wait for it."""
    if not st.button("Build the map here (a few minutes)", icon=":material/map:"):
        return
    lock = caches.build_lock()
    if not lock.acquire(blocking=False):
        st.info("Another session is building the map right now; it appears here when done.")
        return
    try:
        from lib.atlas.discovery import DiscoveryConfig, DiscoveryError, run_discovery
        from lib.atlas.ingest import corpus_documents, ingest

        lm = current_model()
        if lm is None:
            st.warning("No model is loaded.")
            return
        st.button("Stop", icon=":material/stop_circle:", help="What is ingested so far is kept.")
        bar = st.progress(0.0, text="Reading the corpus ...")
        ingest(
            store,
            lm,
            corpus_documents(),
            progress=lambda p: bar.progress(
                p.done / p.total,
                text=f"Reading the corpus: {p.done} of {p.total} windows ({p.document})",
            ),
        )
        try:
            run_discovery(
                DiscoveryConfig(db=str(store.path), output=output, hours=0),
                lambda s: bar.progress(s.fraction, text=f"Discovering families: {s.stage}"),
            )
        except DiscoveryError as err:
            st.warning(md_escape(err))
            return
        caches.atlas_folder.clear()
        st.rerun()
    finally:
        lock.release()
