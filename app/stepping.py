"""Writing one token at a time: the one way to extend the current run (Step by step's
"Next token" button and its autoplay both call `add_token`), autoplay's clock, and the
token just written or drawn that every chart of its step highlights.
"""

from __future__ import annotations

import time

from app.caches import LIMITS
from app.runs import cancel_pending, record, run_generation
from app.state import Sampled, state
from lib.analysis import next_token as nt
from lib.model.loading import LoadedModel
from lib.model.request import Run, RunRequest
from lib.model.result import GenerationResult, SamplingSettings

SLACK = 0.15  # a tick may arrive this fraction of the pace early (the browser's timer jitters)


def sampled_at(run_key: str, step: int) -> int | None:
    """The token to highlight in charts of `step` (0-based) of the run `run_key`, if any."""
    s = state.nt.sampled
    return s.token if s is not None and (s.run_key, s.step) == (run_key, step) else None


def next_request(run: Run, sampling: SamplingSettings) -> RunRequest:
    """The run so far as forced tokens, plus one token chosen with `sampling`. The
    scheduler continues the run from its kept key/value cache (`lib.model.prefixes`), so
    this costs one pass over the last token, not a pass over the whole run."""
    return run.request.with_settings(
        max_new_tokens=run.result.n_steps + 1,
        sampling=sampling,
        forced_tokens=nt.next_token_forced(run.result),
    )


def why_not_extend(r: GenerationResult, cap: int, autoplay: bool = False) -> str | None:
    """Why no token can follow the run (end of sequence, or `cap` tokens), or None."""
    if r.stop_reason == "eos":
        return "The run ended with the end-of-sequence token: nothing follows it."
    if r.n_steps >= cap:
        if autoplay:
            return f"The run has {r.n_steps} tokens, autoplay's stop ({cap})."
        return f"The run has the most tokens allowed ({cap})."
    return None


def add_token(
    lm: LoadedModel, run: Run, sampling: SamplingSettings, record_it: bool = True
) -> str | None:
    """Add one token to `run` and make the longer run the current run on every page; the
    new token becomes the sampled token of its step. Returns an error message or None."""
    error = run_generation(lm, next_request(run, sampling), record_it, adding=True)
    if error is None:
        state.ap.note = None  # a stop note is about a shorter run
        new = state.run
        step = new.result.n_steps - 1
        state.view.step = step + 1  # every page follows the newest token
        state.nt.sampled = Sampled(new.key, step, int(new.result.generated_ids[step]))
    return error


def start_over(lm: LoadedModel, run: Run, sampling: SamplingSettings) -> str | None:
    """Replace the current run by its prompt and one token chosen with `sampling`."""
    request = run.request.with_settings(max_new_tokens=1, sampling=sampling, forced_tokens=())
    error = run_generation(lm, request)
    if error is None:
        state.view.step, state.ap.note = 1, None
        state.nt.sampled = Sampled(state.run.key, 0, int(state.run.result.generated_ids[0]))
    return error


def cap() -> int:
    return min(int(state.ap.cap), LIMITS.max_new_tokens)


def tick_due(now: float, last: float | None, pace: float) -> bool:
    """Whether a tick at `now` writes a token: the first one at once, then one per pace.

    Measured from the start of the last tick, so a slow tick is followed at once by the
    next (the real pace is then the time a token takes), never by a queue of them."""
    return last is None or now - last >= pace * (1 - SLACK)


def stop_autoplay(note: str | None = "Autoplay stopped.") -> None:
    """Switch autoplay off; a run it wrote is recorded in the atlas once, now (not every
    prefix of it)."""
    wrote = state.ap.last is not None
    state.ap.on, state.ap.last, state.ap.note = False, None, note
    cancel_pending()  # a token still being added is not waited for
    if wrote and state.run is not None:
        record(state.run)


def autoplay_tick(lm: LoadedModel, sampling: SamplingSettings, now: float | None = None) -> bool:
    """One tick of autoplay: add a token when one is due. True when autoplay stopped on
    this tick (the page then redraws whole, without the timer)."""
    run = state.run
    if not state.ap.on or run is None:
        if state.ap.last is not None:  # the toggle was switched off since the last tick
            stop_autoplay("Autoplay switched off.")
        return False
    if reason := why_not_extend(run.result, cap(), autoplay=True):
        stop_autoplay(f"Autoplay stopped. {reason}")
        return True
    now = time.monotonic() if now is None else now
    if not tick_due(now, state.ap.last, float(state.ap.pace)):
        return False
    previous, state.ap.last = state.ap.last, now
    error = add_token(lm, run, sampling, record_it=False)
    state.ap.took = time.monotonic() - now
    # the real pace: from the start of the last token to the start of this one
    state.ap.real = state.ap.took if previous is None else now - previous
    if error:
        state.nt.error = error
        stop_autoplay(None)
        return True
    if reason := why_not_extend(state.run.result, cap(), autoplay=True):
        stop_autoplay(f"Autoplay stopped. {reason}")
        return True
    return False


def pace_note() -> str | None:
    """The real pace, while autoplay runs slower than its pace asks for."""
    real, took, pace = state.ap.real, state.ap.took, float(state.ap.pace)
    if not state.ap.on or real is None or took is None or real <= pace * (1 + SLACK):
        return None
    return (
        f"The real pace is one token every {real:.1f} s, slower than the {pace:g} s asked "
        f"for: writing one token takes {took:.1f} s here (with other runs in the model's "
        "queue, or a long text), then the page is drawn again."
    )
