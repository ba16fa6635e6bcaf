"""Every Streamlit cache of the app, in one place, under one rule.

The rule:
- The model is a resource: one per process, shared by every session (`model`).
- A run's result, and everything derived from it, is immutable (read-only numpy arrays in
  frozen dataclasses), so it is a resource too: one copy shared by every session that asks
  for it, never unpickled afresh on a rerun (what `st.cache_data` would do).
- Keys are strings and numbers only: a run's key (the hash of its request: model, prompt,
  settings), a model spec, and the view's parameters. The model and the result travel as
  `_`-prefixed arguments, which Streamlit does not hash: the key already names them.
- Entries are bounded by count; finished runs live in one `ResultStore` bounded by bytes
  (`TAV_RESULT_CACHE_MB`), written by one batching `Scheduler` per model.

Pages call these functions and nothing heavier; each is computed once per key, even when
sessions ask at the same moment.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from lib.config import BUNDLED_MODEL, LAB_PREFIX, Limits
from lib.model.errors import ModelLoadError

# The library is imported inside each function: the Welcome page, and the first screen of
# every page, are drawn before torch, transformers or plotly are imported (`python -m bench`,
# item 11, lists what each page imports).
if TYPE_CHECKING:
    import plotly.graph_objects as go

    from lib.analysis import ablation as ab
    from lib.analysis import analogy as an
    from lib.analysis import head_roles as hr
    from lib.analysis import next_token as nt
    from lib.analysis import residual as rs
    from lib.analysis.attention import StepAttention
    from lib.analysis.attribution import LogitAttribution, PartCheck
    from lib.analysis.fingerprint import Fingerprints
    from lib.analysis.knockout import KeyKnockout
    from lib.analysis.logit_lens import LogitLens
    from lib.analysis.patching import PatchSweep
    from lib.analysis.weights import EmbeddingPCA, OVCopying
    from lib.atlas.classify import Atlas, Placement
    from lib.atlas.point import PointAttention
    from lib.atlas.store import Store
    from lib.labels import TokenSplit, TokenText
    from lib.model.full_attention import FullAttention
    from lib.model.loading import LoadedModel
    from lib.model.result import GenerationResult
    from lib.model.result_store import ResultStore
    from lib.model.scheduler import Scheduler
    from lib.train.pool import ClassPool

LIMITS = Limits.from_env()
PROBE_LEN, PROBE_SEED = 50, 0

# ---- the model --------------------------------------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=2)
def _model(spec: str) -> LoadedModel:
    from lib.model.loading import load_model

    lm = load_model(spec)
    _loaded[spec] = lm
    return lm


# The models this process holds (weakly: `_model`'s cache decides how long), so that the
# sidebar can name a model without loading it, and a spinner shows only while one loads.
_loaded: weakref.WeakValueDictionary[str, LoadedModel] = weakref.WeakValueDictionary()
_warming: set[str] = set()
_warm_lock = threading.Lock()


def loaded_model(spec: str) -> LoadedModel | None:
    """The model for `spec` if this process holds it already; never loads one."""
    if spec.startswith(LAB_PREFIX):
        return lab_models().get(spec)
    return _loaded.get(spec)


def warm_up() -> bool:
    """Load the bundled model in a background thread, once per process, so that a page
    that needs it finds it ready: the Welcome page is drawn without waiting for torch,
    transformers and the weights (a few seconds), and Generate usually finds them loaded.
    Not on a first start (converting the GGUF shows its progress on the page that waits)
    and not with TAV_WARM_UP=0 (the benchmark's import table): then a page loads it.
    False once a background load has failed: the caller loads it and shows the error."""
    if os.environ.get("TAV_WARM_UP", "1") == "0":
        return True
    with _warm_lock:
        if _warm_failed:
            return False
        if BUNDLED_MODEL in _warming or BUNDLED_MODEL in _loaded:
            return True
        _warming.add(BUNDLED_MODEL)
    threading.Thread(target=_warm, name="tav-warm-up", daemon=True).start()
    return True


_warm_failed: list[str] = []  # why the background load failed, if it did (then no retry)


def _warm() -> None:
    from lib.model.loading import bundled_is_converted

    try:
        if bundled_is_converted():
            _model(BUNDLED_MODEL)  # a page asking meanwhile waits on the same cache entry
    except Exception as err:  # noqa: BLE001 - the page that needs the model reports it
        logging.getLogger("tav").exception("loading the bundled model in the background")
        _warm_failed.append(str(err))
    finally:
        with _warm_lock:
            _warming.discard(BUNDLED_MODEL)


_bundled_checked = False  # the only plain memo: whether this process saw the cache whole


@st.cache_resource(show_spinner=False)
def lab_models() -> dict[str, LoadedModel]:
    """Trained lab models opened in the lessons, by their unguessable spec (a student's
    model is theirs: only their session knows its spec). Tiny; the oldest go first."""
    return {}


MAX_LAB_MODELS = 256  # a few MB each
_lab_lock = threading.Lock()


def open_lab_model(lm: LoadedModel) -> None:
    with _lab_lock:
        held = lab_models()
        held[lm.spec] = lm
        while len(held) > MAX_LAB_MODELS:
            held.pop(next(iter(held)))


def model(spec: str) -> LoadedModel:
    """The loaded model for `spec`; the first start converts the bundled GGUF with progress.

    The file-system check of the converted cache runs once per process, not on every rerun
    (a status element inside a cached function would be replayed on every page).
    """
    from lib.model.loading import bundled_is_converted, converted_bundled_dir

    global _bundled_checked
    if spec.startswith(LAB_PREFIX):
        held = lab_models().get(spec)
        if held is None:
            raise ModelLoadError("That trained model is no longer held here: open it again.")
        return held
    if spec == BUNDLED_MODEL and not _bundled_checked:
        if not bundled_is_converted():
            with st.status("First start: preparing the bundled model (once)", expanded=True) as box:
                bar = st.progress(0.0)
                converted_bundled_dir(progress=lambda f, msg: bar.progress(f, text=msg))
                box.update(label="Bundled model ready", state="complete", expanded=False)
        _bundled_checked = True
    if spec in _loaded:
        return _model(spec)
    with st.spinner("Loading the model ..."):
        return _model(spec)


# ---- runs -------------------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def results() -> ResultStore:
    """Every finished run, one copy shared by all sessions, within TAV_RESULT_CACHE_MB."""
    from lib.model.result_store import ResultStore

    return ResultStore(LIMITS.result_cache_mb * 2**20)


@st.cache_resource(max_entries=2, show_spinner=False)
def scheduler(model_spec: str, _lm: LoadedModel) -> Scheduler:
    """The one worker that writes this model's runs for every session, batched; or, with
    TAV_GENERATION_URL set, a generation service that writes them (`lib.serve.remote`)."""
    import os

    from lib.model.scheduler import Scheduler, SchedulerLimits

    url = os.environ.get("TAV_GENERATION_URL", "").strip()
    if url:
        from lib.serve.remote import RemoteScheduler

        return RemoteScheduler(url, _lm, results(), LIMITS.max_runs)
    return Scheduler(_lm, results(), SchedulerLimits.from_limits(LIMITS))


@st.cache_resource(max_entries=2, show_spinner="Compressing the run ...")
def npz(run_key: str, _result: GenerationResult) -> bytes:
    """The run as a .npz download (compressing a long run is worth doing once)."""
    return _result.to_npz()


# ---- attention --------------------------------------------------------------------------


@st.cache_resource(max_entries=32, show_spinner=False)
def steps(
    run_key: str, layer: int | None, head: int | None, hide: bool, _result: GenerationResult
) -> list[StepAttention]:
    """Aggregated, split and normalised attention for every step (the graph's input)."""
    from lib.analysis.attention import all_steps

    return all_steps(_result, layer, head, hide)


@st.cache_resource(max_entries=8, show_spinner=False)
def graph_frames(
    run_key: str,
    view: tuple,
    window: tuple[int, ...],
    projector: bool,
    _result: GenerationResult,
    _steps: list[StepAttention],
) -> dict[str, dict]:
    """The attention graph at each 1-based step of `window`, as the figure JSON (data and
    layout) the page would draw there, for the step player to switch in the browser.
    `view` is (layer, head, hide, threshold, top_k, show_all, selection, lo, hi): every
    setting but the step (`_steps` follow from the first three)."""
    from lib.viz.graph import step_figures
    from lib.viz.look import plotly_for_projector

    _, _, _, threshold, top_k, show_all, selected, lo, hi = view
    style = plotly_for_projector if projector else None
    return step_figures(
        _result, _steps, window, threshold, top_k, show_all, selected, lo, hi, style
    )


@st.cache_resource(max_entries=4, show_spinner="Computing the full matrix (one forward pass) ...")
def full(run_key: str, layer: int | None, _lm: LoadedModel, _ids: np.ndarray) -> FullAttention:
    """Whole-sequence attention of the run (the mean, and every head of `layer`)."""
    from lib.model.full_attention import full_attention

    return full_attention(_lm, _ids, layer)


# ---- next token -------------------------------------------------------------------------


@st.cache_resource(max_entries=64, show_spinner=False)
def step_distribution(
    run_key: str, step: int, _lm: LoadedModel, _result: GenerationResult
) -> nt.StepDistribution:
    from lib.analysis import next_token as nt

    return nt.step_distribution(_lm, _result, step)


@st.cache_resource(
    max_entries=8, show_spinner="Reading the model's prediction at every position ..."
)
def sequence_lens(run_key: str, _lm: LoadedModel, _ids: np.ndarray) -> nt.SequenceLens:
    from lib.analysis import next_token as nt

    return nt.sequence_lens(_lm, _ids)


@st.cache_resource(max_entries=2, show_spinner=False)
def token_texts(model_spec: str, _lm: LoadedModel) -> TokenText:
    """Display-mode text of any token id of this model, remembered across reruns."""
    from lib.labels import display_texts

    return display_texts(_lm.tokenizer)


@st.cache_resource(max_entries=8, show_spinner=False)
def split_characters(run_key: str, _lm: LoadedModel, _ids: np.ndarray) -> str | None:
    """The caption naming the characters the tokenizer split over tokens, if any."""
    from lib.labels import split_characters as runs
    from lib.viz.text import split_characters_note

    return split_characters_note(runs(_lm.tokenizer, _ids))


@st.cache_resource(max_entries=8, show_spinner=False)
def token_split(run_key: str, _lm: LoadedModel, _ids: np.ndarray) -> TokenSplit:
    from lib.labels import split_tokens

    return split_tokens(_lm.tokenizer, _ids)


# ---- inside the model -------------------------------------------------------------------


@st.cache_resource(max_entries=4, show_spinner="Scoring every head on repeated random tokens ...")
def probe_roles(model_spec: str, hide: bool, _lm: LoadedModel) -> hr.HeadRoles:
    from lib.analysis import head_roles as hr

    return hr.induction_probe(_lm, PROBE_LEN, PROBE_SEED, exclude_first=hide)


@st.cache_resource(max_entries=4, show_spinner="Scoring every head on this run's text ...")
def text_roles(run_key: str, hide: bool, _lm: LoadedModel, _ids: np.ndarray) -> hr.HeadRoles:
    from lib.analysis import head_roles as hr

    return hr.head_roles(_lm, _ids, exclude_first=hide)


@st.cache_resource(max_entries=32, show_spinner="Replaying the step without the heads ...")
def ablation_step(
    run_key: str, step: int, heads: tuple[ab.Head, ...], _lm: LoadedModel, _result: GenerationResult
) -> ab.HeadAblation:
    """Step `step` of the run, plain and with `heads` (sorted (layer, head) pairs) zeroed."""
    from lib.analysis import ablation as ab

    return ab.ablate_step(_lm, _result, step, heads)


@st.cache_resource(max_entries=32, show_spinner="Splitting the logit into its parts ...")
def logit_attribution(
    run_key: str, step: int, _lm: LoadedModel, _result: GenerationResult
) -> LogitAttribution:
    """Step `step`'s direct logit attribution (one forward pass); raises ValueError."""
    from lib.analysis.attribution import logit_attribution as compute

    return compute(_lm, _result, step)


@st.cache_resource(max_entries=32, show_spinner="Removing the largest parts, one pass each ...")
def part_check(run_key: str, step: int, _lm: LoadedModel, _result: GenerationResult) -> PartCheck:
    """The attribution's three largest parts at step `step`, each removed (`check_parts`)."""
    from lib.analysis.attribution import check_parts

    return check_parts(_lm, _result, logit_attribution(run_key, step, _lm, _result))


@st.cache_resource(max_entries=64, show_spinner="Hiding the keys from the query ...")
def key_knockout(
    run_key: str, step: int, keys: tuple[int, ...], candidates: tuple[int, ...],
    _lm: LoadedModel, _result: GenerationResult,
) -> KeyKnockout:  # fmt: skip
    """Step `step`'s written token with `keys` hidden from its query, and random controls
    drawn from `candidates` (`lib.analysis.knockout`)."""
    from lib.analysis.knockout import knock_out_keys

    q = _result.query_position(step)
    ids = _result.token_ids
    return knock_out_keys(_lm, ids[: q + 1], int(ids[q + 1]), keys, candidates)


def class_pool() -> ClassPool | None:
    """The class's pool of induction-lab runs (`lib.train.pool`), or None where the server
    keeps none (TAV_CLASS_POOL=off)."""
    from lib.train.pool import pool_path

    path = pool_path()
    return None if path is None else _class_pool(str(path))


@st.cache_resource(show_spinner=False)
def _class_pool(path: str) -> ClassPool:
    from lib.train.pool import ClassPool

    return ClassPool(Path(path))


PATCH_SWEEPS_KEPT = 8


@st.cache_resource(show_spinner=False)
def _patch_sweeps() -> tuple[threading.Lock, OrderedDict]:
    return threading.Lock(), OrderedDict()


def patch_sweep(
    model_spec: str,
    clean: tuple[int, ...],
    corrupted: tuple[int, ...],
    answer: int,
    wrong: int,
    site: str,
    lm: LoadedModel,
    progress,
) -> PatchSweep:
    """A whole patching sweep (hundreds of patched runs, batched), kept for every session:
    the same prompts and site give the same numbers. Not an `st.cache_*` function: its
    progress bar lives on the page, and a cache would replay the bar's updates."""
    from lib.analysis.patching import patch_sweep as sweep

    lock, done = _patch_sweeps()
    key = (model_spec, clean, corrupted, answer, wrong, site)
    with lock:
        if key in done:
            done.move_to_end(key)
            return done[key]
    result = sweep(lm, list(clean), list(corrupted), answer, wrong, site, progress=progress)
    with lock:
        done[key] = result
        while len(done) > PATCH_SWEEPS_KEPT:
            done.popitem(last=False)
    return result


@st.cache_resource(max_entries=16, show_spinner="Running the probe without the heads ...")
def ablation_probe(
    model_spec: str, heads: tuple[ab.Head, ...], _lm: LoadedModel
) -> ab.ProbeAblation:
    """The induction probe's loss, plain (from `probe_roles`'s pass) and with `heads` zeroed."""
    from lib.analysis import ablation as ab

    plain = probe_roles(model_spec, False, _lm).loss
    return ab.probe_ablation(_lm, heads, PROBE_LEN, PROBE_SEED, before=plain)


@st.cache_resource(max_entries=8, show_spinner="Reading every layer through the unembedding ...")
def logit_lens(run_key: str, _lm: LoadedModel, _result: GenerationResult) -> LogitLens:
    from lib.analysis.logit_lens import logit_lens as compute_logit_lens

    return compute_logit_lens(_lm, _result)


@st.cache_resource(max_entries=8, show_spinner="Reading before and after every sub-layer ...")
def sublayer_lens(run_key: str, _lm: LoadedModel, _result: GenerationResult) -> rs.SublayerLens:
    from lib.analysis import residual as rs

    return rs.sublayer_lens(_lm, _result)


@st.cache_resource(max_entries=8, show_spinner="Reading the values each sub-layer writes ...")
def activation_spread(run_key: str, _lm: LoadedModel, _ids: np.ndarray) -> rs.ActivationSpread:
    from lib.analysis import residual as rs

    return rs.activation_spread(_lm, _ids)


@st.cache_resource(max_entries=8, show_spinner="Measuring what each sub-layer writes ...")
def activation_norms(run_key: str, _lm: LoadedModel, _ids: np.ndarray) -> rs.ActivationNorms:
    from lib.analysis import residual as rs

    return rs.activation_norms(_lm, _ids)


def prompt_probs(run_key: str, lm: LoadedModel, result: GenerationResult) -> np.ndarray:
    """(P,) the probability of each prompt token from the tokens before it (the first:
    NaN), read from the run's cached sequence lens (the Tokens & predictions page's pass)."""
    lens = sequence_lens(run_key, lm, result.token_ids)
    return np.concatenate([[np.nan], lens.next_prob[: result.prompt_len - 1]]).astype(np.float32)


@st.cache_resource(max_entries=16, show_spinner=False)
def fingerprints(run_key: str, hide: bool, _result: GenerationResult) -> Fingerprints:
    from lib.analysis.fingerprint import run_fingerprints

    return run_fingerprints(_result, exclude_first=hide)


@st.cache_resource(max_entries=4, show_spinner=False)
def pca(run_key: str, _lm: LoadedModel, _ids: np.ndarray) -> EmbeddingPCA:
    from lib.analysis.weights import embedding_pca

    return embedding_pca(_lm, _ids)


@st.cache_resource(max_entries=8, show_spinner=False)
def ov_spectra(model_spec: str, layer: int, _lm: LoadedModel) -> np.ndarray:
    from lib.analysis.weights import layer_ov_spectra

    return layer_ov_spectra(_lm, layer)


@st.cache_resource(max_entries=2, show_spinner="Reading every head's OV circuit ...")
def copying(model_spec: str, _lm: LoadedModel) -> OVCopying:
    """Every head's OV-circuit eigenvalues and copying score: weights only, one per model."""
    from lib.analysis.weights import ov_copying

    return ov_copying(_lm)


@st.cache_resource(max_entries=2, show_spinner="Measuring every embedding row ...")
def embedding_index(model_spec: str, _lm: LoadedModel) -> an.EmbeddingIndex:
    """The input embeddings with every row's norm, computed once per model (cosine)."""
    from lib.analysis import analogy as an

    return an.embedding_index(_lm)


@st.cache_resource(max_entries=64, show_spinner=False)
def analogy(
    model_spec: str, equation: str, k: int, specials: bool, variants: bool, _lm: LoadedModel
) -> an.Analogy:
    """The equation's nearest tokens; a bad equation raises AnalogyInputError (not cached)."""
    from lib.analysis import analogy as an

    index = embedding_index(model_spec, _lm)
    return an.analogy(_lm, index, an.parse_equation(equation), k, specials, variants)


# ---- the attention atlas ------------------------------------------------------------------


@st.cache_resource(max_entries=2, show_spinner=False)
def atlas_store(path: str) -> Store:
    """The fingerprint store at `path` (its schema checked once per process)."""
    from lib.atlas.store import Store

    return Store(path)


@st.cache_data(ttl=10, show_spinner=False)
def atlas_folder(output: str) -> str | None:
    """The map to show: the newest finished discovery run in `output`, else the one shipped
    with the app; looked up at most every 10 s."""
    from lib.atlas.shipped import current_map

    folder = current_map(output)
    return None if folder is None else str(folder)


@st.cache_resource(max_entries=2, show_spinner="Loading the atlas ...")
def atlas(folder: str) -> Atlas:
    from lib.atlas.classify import Atlas

    return Atlas(folder)


@st.cache_resource(max_entries=16, show_spinner=False)
def atlas_placement(folder: str, run_key: str, _atlas: Atlas, _vectors: np.ndarray) -> Placement:
    return _atlas.locate(_vectors)


@st.cache_data(ttl=10, show_spinner=False)
def atlas_shown(store_path: str, folder: str) -> np.ndarray:
    """(n_points,) bool: which of the map's points may show their text (their run is
    stored and shared), looked up at most every 10 s: a run deleted since the map was made,
    or recorded before sharing was asked, shows no text; nor does a map made from another
    store. The shipped map shows all: it holds the built-in corpus alone."""

    from lib.atlas.shipped import is_shipped

    made = atlas(folder)
    if is_shipped(folder):  # the built-in corpus alone: nobody's text
        return np.ones(len(made.points), dtype=bool)
    store = atlas_store(store_path)
    if not store.is_named(made.manifest.get("db")):
        return np.zeros(len(made.points), dtype=bool)  # its run ids are another store's
    shown = store.shown_runs(made.points["run_id"].unique())
    return made.points["run_id"].isin(shown).to_numpy()


@st.cache_resource(max_entries=4, show_spinner="Drawing the map ...")
def atlas_figure(
    folder: str,
    colour_by: str,
    filters: tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]],
    run_key: str | None,
    selected: int | None,
    shown_key: str,
    _atlas: Atlas,
    _marks: tuple[np.ndarray, list[str]] | None,
    _texts: np.ndarray,
) -> tuple[go.Figure, int]:
    """The map for these filters, with the run's tokens, the selection and the points'
    texts (`shown_key` names which are hidden): (figure, points)."""
    from lib.viz.atlas import atlas_map, filter_points

    models, zones, clusters = filters
    rows = filter_points(_atlas.points, list(models), list(zones), list(clusters))
    fig = atlas_map(_atlas.points, rows, colour_by, _atlas.names, _marks, selected, _texts)
    return fig, len(rows)


@st.cache_resource(max_entries=32, show_spinner="Reading the token's text again ...")
def point_attention(
    folder: str,
    store_path: str,
    run_id: int,
    position: int,
    model_spec: str,
    _lm: LoadedModel,
    _stored,
) -> PointAttention:
    """A map point's own attention row (`lib.atlas.point`), one forward pass; raises
    PointError (not cached) when its run cannot be read again. The shipped map's run ids
    are its own (`lib.atlas.shipped`), a built map's the store's."""
    from lib.atlas.point import PointError
    from lib.atlas.point import point_attention as compute
    from lib.atlas.shipped import is_shipped, shipped_run

    if is_shipped(folder):
        try:
            run, kept = shipped_run(folder, run_id)
        except (KeyError, OSError, ValueError) as err:  # pyarrow's errors are ValueErrors
            raise PointError(f"The shipped map's files cannot be read: {err}") from err
        return compute(_lm, run, kept, position, _stored)
    store = atlas_store(store_path)
    run = store.run(run_id)
    if run is None:
        raise PointError("That run has been deleted from the store since the map was made.")
    return compute(_lm, run, store.token_ids(run_id), position, _stored)


@st.cache_resource(max_entries=16, show_spinner="Asking the atlas service ...")
def remote_classes(url: str, run_key: str, _vectors: np.ndarray) -> list[dict]:
    """The classify service's answers for a run's tokens (errors are not cached)."""
    from lib.atlas.client import classify_remote

    return classify_remote(url, _vectors)


# ---- take the lesson home ---------------------------------------------------------------


@st.cache_resource(max_entries=4, show_spinner="Writing the offline page ...")
def lesson_html(
    run_key: str,
    layer: int | None,
    head: int | None,
    hide: bool,
    threshold: float,
    top_k: int | None,
    _result: GenerationResult,
) -> bytes:
    """The run as one offline HTML file, drawn with this view's settings."""
    from lib.viz import export  # Plotly and vl-convert: imported when a file is asked for

    every = steps(run_key, layer, head, hide, _result)
    return export.lesson_page(_result, every, layer, head, hide, threshold, top_k).encode()


@st.cache_resource(max_entries=8, show_spinner="Drawing the picture ...")
def chart_image(key: str, fmt: str, _spec: dict) -> bytes:
    """A chart as PNG or SVG; `key` names the chart and its view."""
    from lib.viz import export

    return export.chart_png(_spec) if fmt == "png" else export.chart_svg(_spec).encode("utf-8")


@st.cache_resource
def build_lock() -> threading.Lock:
    """One atlas build at a time per server: two at once would read the same corpus twice."""
    return threading.Lock()
