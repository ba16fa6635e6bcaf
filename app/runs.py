"""Runs: the request a page makes, its result through the cache, the run every page shows."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import streamlit as st

from app import caches
from app.state import Pending, get, state
from lib.config import LAB_PREFIX
from lib.model.errors import PromptError, QueueFull, normalise_prompt
from lib.model.request import Run, RunRequest
from lib.model.result import RunSettings, SamplingSettings

if TYPE_CHECKING:
    from lib.model.loading import LoadedModel


def sampling_from_state(prefix: str, do_sample: bool) -> SamplingSettings:
    """Decoding settings from the state: the Generate page's (prefix "") or the next-token
    lesson's own filters and seed (prefix "nt_")."""
    if not do_sample:
        return SamplingSettings()

    return SamplingSettings(
        do_sample=True,
        temperature=float(get(prefix + "temperature")),
        top_k=int(get(prefix + "top_k")),
        top_p=float(get(prefix + "top_p")),
        min_p=float(get(prefix + "min_p")),
        seed=int(get(prefix + "seed")),
    )


def request_from_state(lm: LoadedModel) -> RunRequest:
    """The run the Generate page's settings describe."""
    return RunRequest(
        model_spec=lm.spec,
        prompt=normalise_prompt(str(state.gen.prompt)),
        settings=RunSettings(
            max_new_tokens=int(state.gen.max_tokens),
            chat_template=bool(state.gen.chat_template) and lm.has_chat_template,
            sampling=sampling_from_state("", state.gen.decoding == "Sample"),
        ),
    )


def fetch_run(
    lm: LoadedModel, request: RunRequest, adding: bool = False
) -> tuple[Run | None, str | None]:
    """The run for `request`, WITHOUT making it the current run: from the shared store,
    or written by the model's scheduler while this shows its place and progress (with
    `adding`, a run one token longer than the one on screen: "adding token n", no Stop).

    Returns (run, None), or (None, a message for the user)."""
    if (result := caches.results().get(request.key)) is not None:
        return Run(request, result), None
    if lm.source == "lab":  # a student's tiny model: written here, at once, for them alone
        try:
            return Run(request, _write_alone(lm, request)), None
        except PromptError as err:
            return None, str(err)
    pending = state.pending
    if pending is not None and pending.request.key != request.key:
        cancel_pending()  # the student asked for something else
        pending = None
    if pending is None:
        from lib.model.batching import prepare

        try:
            prepared = prepare(lm, request.prompt, request.settings, caches.LIMITS)
            scheduler = caches.scheduler(lm.spec, lm)
            ticket = scheduler.submit(request.key, prepared)
        except (PromptError, QueueFull) as err:
            return None, str(err)
        pending = state.pending = Pending(request, ticket, scheduler)
    ticket = pending.ticket
    _wait(pending, adding)
    state.pending = None
    if ticket.status == "done" and ticket.result is not None:
        return Run(request, ticket.result), None
    if ticket.status == "cancelled":
        return None, "The run was stopped before it finished."
    return None, ticket.error or "The run did not finish."


def _write_alone(lm: LoadedModel, request: RunRequest):
    from lib.model.generation import generate

    s = request.settings
    result = generate(
        lm, request.prompt, s.max_new_tokens, s.sampling, s.chat_template, s.forced_tokens,
        limits=caches.LIMITS,
    )  # fmt: skip
    caches.results().put(request.key, result)
    return result


def cancel_pending() -> None:
    """Stop waiting for the pending run (the Stop button's callback); the scheduler stops
    writing it unless another session asked for the same run."""
    pending = state.pending
    if pending is not None:
        pending.scheduler.release(pending.ticket)
        state.pending = None


def _wait(pending: Pending, adding: bool = False) -> None:
    """Show the run's place in the queue, then its tokens as they are written, until it is
    over. A click elsewhere reruns the page and leaves the run pending, not lost."""
    ticket, scheduler = pending.ticket, pending.scheduler
    if ticket.over:
        return
    where = st.empty()
    bar = st.progress(0.0, text="Waiting for the model ...")
    live = st.empty()
    stop = st.empty()
    if not (adding and state.ap.on):  # autoplay has its own Stop
        stop.button("Stop", key="stop_run", on_click=cancel_pending, icon=":material/stop:")
    version = -1
    while not ticket.over:
        if ticket.status == "queued":
            ahead = scheduler.ahead(ticket)
            writing, _ = scheduler.load()
            runs = "run is" if ahead == 1 else "runs are"
            where.caption(
                f"Waiting for a place: {ahead} {runs} ahead of yours; the model is writing "
                f"{writing} runs together (at most {scheduler.max_runs} at once)."
            )
        else:
            others = max(ticket.batch_size - 1, 0)
            where.caption(
                f"Written together with {others} other runs, one pass per token for all."
                if others
                else "Writing your run."
            )
            bar.progress(
                ticket.written / ticket.total,
                text=f"Adding token {ticket.total}"
                if adding
                else f"Generated token {ticket.written} of at most {ticket.total}",
            )
            if not adding:  # the page shows the run it grows
                live.text("".join(ticket.pieces))
        version = ticket.wait(version, 0.5)
    for element in (where, bar, live, stop):  # the run is shown below; its progress is done
        element.empty()


def run_generation(
    lm: LoadedModel, request: RunRequest | None = None, record_it: bool = True, adding=False
) -> str | None:
    """Run `request` (default: the Generate page's settings) and make it the current run
    that every page shows (`adding`: see `fetch_run`). Returns an error message or None."""
    run, error = fetch_run(lm, request or request_from_state(lm), adding)
    if run is not None:
        set_current_run(run, record_it)
    return error


def set_current_run(run: Run, record_it: bool = True) -> None:
    """Make `run` the one every page shows (and clear selections tied to the old one);
    record it in the atlas unless it came from there."""
    state.run = run
    state.view.selected_token = None
    state.view.graph_nonce += 1
    state.view.graph_focus = None
    if record_it:
        record(run)


def atlas_store_path() -> str:
    from lib.atlas.store import default_spec

    return default_spec()


def record(run: Run) -> None:
    """Share the run with the class atlas (its prompt, generated tokens and their
    fingerprints), once, if this session chose to and the deployment allows it. The same
    run made by many sessions is stored once. A failure never costs the run: it is logged
    and shown as a note on the Atlas page."""
    from lib.atlas.ingest import run_rows
    from lib.atlas.store import run_key

    if not sharing() or run.key in state.atlas.recorded:
        return
    if run.result.model_spec.startswith(LAB_PREFIX):  # a student's lab model: its runs stay
        return
    try:
        r = run.result
        fps = caches.fingerprints(run.key, False, r)
        rows = run_rows(r, fps.vectors)
        settings = r.settings.to_dict()
        caches.atlas_store(atlas_store_path()).add_run(
            source="app",
            model=r.model_spec,
            prompt=r.prompt,
            settings=settings,
            tokens=rows,
            owner=state.atlas.owner,
            doc_key=run_key(r.model_spec, r.prompt, settings, [row.token_id for row in rows]),
        )
        state.atlas.recorded.add(run.key)
        state.atlas.problem = None
    except Exception as err:  # noqa: BLE001 - the atlas is optional; the run is not
        logging.getLogger("tav").exception("recording the run in the atlas failed")
        state.atlas.problem = f"The last run could not be recorded in the atlas: {err}"


def sharing() -> bool:
    """Whether this session's runs go to the class atlas: its own choice, which starts as
    the deployment's (TAV_ATLAS_RECORD: off until asked, or on for a class that agreed)."""
    from lib.atlas.store import recording_mode

    mode = recording_mode()
    if mode == "off":
        return False
    if state.atlas.record is None:  # not chosen yet: the deployment's default
        state.atlas.record = mode == "class"
    return bool(state.atlas.record)
