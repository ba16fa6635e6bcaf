"""Attention processing for the graph: aggregate over layers/heads, split, normalise.

Each generated token's query row is split into input attention (over the visible prompt
tokens) and output attention (over earlier generated tokens); each part is divided by its
own sum + 1e-8 ("separate normalisation"). Raw values are kept beside the normalised ones.
Hiding the first-token sink is `lib.measures.hide_sink`, applied to the aggregated row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lib.measures import hide_sink, normalise
from lib.model.result import GenerationResult


def aggregate(
    result: GenerationResult, layer: int | None = None, head: int | None = None
) -> np.ndarray:
    """Per-step rows reduced over layers and heads: (n_steps, T - 1) float32.

    layer/head None means the mean over all of them; an int selects one.
    """
    a = result.attention
    a = a[:, layer : layer + 1] if layer is not None else a
    a = a[:, :, head : head + 1] if head is not None else a
    return a.mean(axis=(1, 2), dtype=np.float32)


@dataclass(frozen=True)
class StepAttention:
    """What generated token `step` attends to.

    input_raw   (P_vis,) raw weight on each visible prompt token (BOS hidden if added)
    output_raw  (step,)  raw weight on generated tokens 0 .. step-1 (empty at step 0)
    input_norm, output_norm: the same, each divided by its own sum + 1e-8
    sink_raw    raw weight on position 0 when it is hidden (BOS, or `hide_first`), else 0.0
    """

    step: int
    input_raw: np.ndarray
    output_raw: np.ndarray
    input_norm: np.ndarray
    output_norm: np.ndarray
    sink_raw: float

    def __post_init__(self) -> None:
        if self.output_raw.shape != (self.step,):
            raise ValueError(f"output_raw must have shape ({self.step},)")
        if self.input_norm.shape != self.input_raw.shape:
            raise ValueError("input_norm must match input_raw")
        if self.output_norm.shape != self.output_raw.shape:
            raise ValueError("output_norm must match output_raw")


def split_step(
    result: GenerationResult, rows: np.ndarray, step: int, hide_first: bool = False
) -> StepAttention:
    """Split one aggregated row (from `aggregate`) into prompt and output attention.

    Position 0 (a BOS the tokenizer added, else the first prompt token) is where most
    models park attention (the "sink"). A hidden BOS is never drawn; `hide_first` applies
    the sink rule to the row first, so key 0 gets no line and the normalised weights spread
    over the other tokens. The raw weights stay what the model computed.
    """
    if not 0 <= step < result.n_steps:
        raise IndexError(f"step {step} out of range 0..{result.n_steps - 1}")
    P, b = result.prompt_len, result.bos_offset
    row = rows[step]
    shown = hide_sink(row) if hide_first else row
    # The query of step s sits at position P-1+s and sees generated tokens 0..s-1 at P..P+s-1.
    return StepAttention(
        step=step,
        input_raw=row[b:P].astype(np.float32),
        output_raw=row[P : P + step].astype(np.float32),
        input_norm=normalise(shown[b:P]),
        output_norm=normalise(shown[P : P + step]),
        sink_raw=float(row[0]) if b or hide_first else 0.0,
    )


def all_steps(
    result: GenerationResult,
    layer: int | None = None,
    head: int | None = None,
    hide_first: bool = False,
) -> list[StepAttention]:
    rows = aggregate(result, layer, head)
    return [split_step(result, rows, s, hide_first) for s in range(result.n_steps)]
