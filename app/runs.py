"""Runs: the request a page makes, its result through the cache, the run every page shows."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

from app import caches
from app.state import state
from lib.config import Limits
from lib.model.generation import PromptError, normalise_prompt
from lib.model.loading import LoadedModel
from lib.model.result import GenerationResult, RunSettings, SamplingSettings

LIMITS = Limits.from_env()


@dataclass(frozen=True)
class RunRequest:
    """The inputs that determine a run; its hash (`key`) names the run in every cache."""

    model_spec: str
    prompt: str
    settings: RunSettings

    @property
    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def with_settings(self, **changes) -> RunRequest:
        return replace(self, settings=replace(self.settings, **changes))


@dataclass(frozen=True)
class Run:
    """A finished run: its request, its cache key and its result."""

    request: RunRequest
    result: GenerationResult

    @property
    def key(self) -> str:
        return self.request.key


def sampling_from_state(prefix: str, do_sample: bool) -> SamplingSettings:
    """Decoding settings from the state: the Generate page's (prefix "") or the next-token
    lesson's own filters and seed (prefix "nt_")."""
    if not do_sample:
        return SamplingSettings()

    def get(name: str):
        return getattr(state, prefix + name)

    return SamplingSettings(
        do_sample=True,
        temperature=float(get("temperature")),
        top_k=int(get("top_k")),
        top_p=float(get("top_p")),
        min_p=float(get("min_p")),
        seed=int(get("seed")),
    )


def request_from_state(lm: LoadedModel) -> RunRequest:
    """The run the Generate page's settings describe."""
    return RunRequest(
        model_spec=lm.spec,
        prompt=normalise_prompt(str(state.prompt)),
        settings=RunSettings(
            max_new_tokens=int(state.max_tokens),
            chat_template=bool(state.chat_template) and lm.has_chat_template,
            sampling=sampling_from_state("", state.decoding == "Sample"),
        ),
    )


def fetch_run(lm: LoadedModel, request: RunRequest) -> tuple[Run | None, str | None]:
    """The run for `request` through the cache, WITHOUT making it the current run.

    Returns (run, None), or (None, a message for the user)."""
    try:
        return Run(request, caches.run(request.key, request, lm)), None
    except PromptError as err:
        return None, str(err)


def run_generation(lm: LoadedModel, request: RunRequest | None = None) -> str | None:
    """Run `request` (default: the Generate page's settings) and make it the current run
    that every page shows. Returns an error message or None."""
    run, error = fetch_run(lm, request or request_from_state(lm))
    if run is not None:
        set_current_run(run)
    return error


def set_current_run(run: Run) -> None:
    """Make `run` the one every page shows (and clear selections tied to the old one)."""
    state.run = run
    state.selected_token = None
    state.graph_nonce += 1
