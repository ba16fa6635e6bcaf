"""What a run is: the request that determines it, named by its hash, and the finished run."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

from lib.model.result import GenerationResult, RunSettings


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
