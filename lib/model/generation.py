"""Token-by-token generation of one run with exact attention capture, greedy or sampled.

`generate` is a batch of one (`lib.model.batching`): a run alone and a run decoded beside
others go through the same steps. The scheduler (`lib.model.scheduler`) batches runs that
sessions ask for at the same time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from lib.config import Limits
from lib.labels import display_text
from lib.model.batching import (
    TOP_CANDIDATES,
    Batch,
    Decoding,
    PromptError,
    build_warpers,
    choose_token,
    encode_prompt,
    normalise_prompt,
    prepare,
)
from lib.model.loading import LoadedModel
from lib.model.result import GenerationResult, RunSettings, SamplingSettings

__all__ = [
    "TOP_CANDIDATES",
    "PromptError",
    "choose_token",
    "draw",
    "encode_prompt",
    "generate",
    "normalise_prompt",
]

OnToken = Callable[[int, int, str], None]  # (step, total, label)


def draw(logits: np.ndarray, sampling: SamplingSettings) -> int:
    """The token `generate` would pick from these logits as its first free choice (the
    same seed always gives the same token)."""
    scores = torch.as_tensor(np.asarray(logits, dtype=np.float32))
    rng = torch.Generator().manual_seed(sampling.seed)
    return choose_token(scores, sampling, build_warpers(sampling), rng)


def generate(
    lm: LoadedModel,
    prompt: str,
    max_new_tokens: int = 20,
    sampling: SamplingSettings | None = None,
    chat_template: bool = False,
    forced_tokens: Sequence[int] = (),
    on_token: OnToken | None = None,
    limits: Limits | None = None,
) -> GenerationResult:
    """Generate up to `max_new_tokens` tokens, stopping at EOS, capturing attention rows.

    `forced_tokens` replaces the first choices (used to continue a "what if" branch).
    Raises PromptError for prompts the model cannot take.
    """
    settings = RunSettings(
        max_new_tokens=max_new_tokens,
        chat_template=chat_template,
        sampling=sampling or SamplingSettings(),
        forced_tokens=tuple(int(t) for t in forced_tokens),
    )
    seq = Decoding(lm, prepare(lm, prompt, settings, limits))
    batch = Batch(lm)
    batch.add([seq])
    while True:
        if on_token is not None:
            label = display_text(lm.tokenizer, seq.chosen[-1])
            on_token(len(seq.chosen) - 1, max_new_tokens, label)
        if seq.done:
            return seq.result(lm)
        batch.step()
