"""Tables the pages show, as pandas DataFrames (tokens in display mode, as data)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lib.analysis.attention import StepAttention
from lib.labels import TokenSplit
from lib.model.result import GenerationResult


def token_table(r: GenerationResult, prompt_probs: np.ndarray | None = None) -> pd.DataFrame:
    """One row per token of the run: position, part, text, id, and the probability the
    model gave the token: for a generated token when it chose it, for a prompt token
    `prompt_probs` (P,) from the tokens before it (caches.prompt_probs; the first: empty)."""
    T = len(r.token_ids)
    part = np.array(["prompt"] * r.prompt_len + ["generated"] * r.n_steps, dtype=object)
    part[: r.bos_offset] = "prompt (hidden BOS)"
    prob = np.full(T, np.nan)
    if prompt_probs is not None:
        if prompt_probs.shape != (r.prompt_len,):
            raise ValueError(f"prompt_probs must be ({r.prompt_len},)")
        prob[: r.prompt_len] = prompt_probs
    prob[r.prompt_len :] = r.chosen_prob
    return pd.DataFrame(
        {
            "position": np.arange(T),
            "part": part,
            "token": list(r.texts),
            "id": r.token_ids,
            "probability": prob,
        }
    )


def strongest_connections(r: GenerationResult, step: StepAttention, n: int = 12) -> pd.DataFrame:
    """The n tokens the step's query attends to most (by raw weight), graph labels."""
    rows = pd.DataFrame(
        {
            "to token": [*r.prompt_labels, *r.generated_labels[: step.step]],
            "part": ["prompt"] * len(step.input_raw) + ["generated"] * step.step,
            "normalised": np.concatenate([step.input_norm, step.output_norm]).astype(float),
            "raw": np.concatenate([step.input_raw, step.output_raw]).astype(float),
        }
    )
    return rows.sort_values("raw", ascending=False, kind="stable").head(n)


def tokenizer_table(split: TokenSplit, prompt_len: int) -> pd.DataFrame:
    """One row per token: position, part, id, vocabulary piece, display text, special."""
    table = pd.DataFrame(split.rows())
    n = len(table)
    table.insert(1, "part", ["prompt"] * prompt_len + ["generated"] * (n - prompt_len))
    return table
