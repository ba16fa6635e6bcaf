"""Defaults and limits, overridable through environment variables (TAV_*)."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_PROMPT = "The old wizard walked through the forest"
DEFAULT_MAX_TOKENS = 20
MAX_NEW_TOKENS_CAP = 50
DEFAULT_THRESHOLD = 0.05
MIN_LINE_WIDTH = 0.5
MAX_LINE_WIDTH = 3.0
PLOT_WIDTH = 1000
PLOT_HEIGHT = 600
MAX_GRAPH_PROMPT = 150  # prompt tokens the graph draws at once; more would overlap labels

# The attention views' options, as their controls show them (the session keeps the text)
LINES_THRESHOLD, LINES_TOP_K = "Above the threshold", "The strongest k per step"
MATRIX_CAPTURED = "Generated tokens (captured while generating)"
MATRIX_WHOLE = "Whole sequence (one extra forward pass)"

BUNDLED_MODEL = "bundled:SmolLM2-135M-Instruct"
LAB_PREFIX = "lab:"  # a model trained in the training lab, held by the app (lib/train/as_lm.py)
SUGGESTED_HUB_MODELS = (
    "unsloth/Llama-3.2-1B-Instruct",
    "Qwen/Qwen3-0.6B",
    "HuggingFaceTB/SmolLM2-360M-Instruct",
    "gpt2",
)


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def _env_flag(name: str, default: bool) -> bool:
    """An on/off switch: 0, false, no or off (any case) is off; anything else is on."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


@dataclass(frozen=True)
class Limits:
    """Bounds that keep the worst case inside a small deployment's memory."""

    max_prompt_tokens: int = 2048
    max_prompt_chars: int = 20_000
    max_new_tokens: int = MAX_NEW_TOKENS_CAP
    max_model_params: int = 2_000_000_000
    result_cache_mb: int = 600  # finished runs kept for every session, by their arrays' size
    max_runs: int = 32  # runs written together in one batch
    max_queue: int = 64  # runs waiting for a place; more are refused with a message
    max_inflight_mb: int = 800  # attention rows and key/value cache of the runs being written
    prefix_cache_mb: int = 200  # finished runs' key/value caches, so the next token costs one pass
    allow_hub: bool = True  # TAV_ALLOW_HUB=0: a shared server loads only local models
    return_memory: bool = True  # freed blocks go back to the system (glibc): less RSS, ~12% slower

    @classmethod
    def from_env(cls) -> Limits:
        d = cls()
        return cls(
            max_prompt_tokens=_env_int("TAV_MAX_PROMPT_TOKENS", d.max_prompt_tokens),
            max_prompt_chars=_env_int("TAV_MAX_PROMPT_CHARS", d.max_prompt_chars),
            max_new_tokens=min(
                _env_int("TAV_MAX_NEW_TOKENS", d.max_new_tokens), MAX_NEW_TOKENS_CAP
            ),
            max_model_params=_env_int("TAV_MAX_MODEL_PARAMS", d.max_model_params),
            result_cache_mb=_env_int("TAV_RESULT_CACHE_MB", d.result_cache_mb),
            max_runs=max(1, _env_int("TAV_MAX_RUNS", d.max_runs)),
            max_queue=max(0, _env_int("TAV_MAX_QUEUE", d.max_queue)),
            max_inflight_mb=_env_int("TAV_MAX_INFLIGHT_MB", d.max_inflight_mb),
            prefix_cache_mb=_env_int("TAV_PREFIX_CACHE_MB", d.prefix_cache_mb),
            allow_hub=_env_flag("TAV_ALLOW_HUB", d.allow_hub),
            return_memory=_env_flag("TAV_RETURN_MEMORY", d.return_memory),
        )
