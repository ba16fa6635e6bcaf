"""Quiz mode's answers, read from the model's own numbers (small pure functions).

Before a view is revealed, a student guesses: the prompt token a step attends to most, the
token the model wrote next, the strongest induction head. These functions say what the
right answer is and which choices to offer; the app asks and keeps the score.
"""

from __future__ import annotations

import numpy as np

from lib.analysis.attention import StepAttention

NEXT_TOKEN_CHOICES = 6  # the written token among the model's other likeliest candidates
TOP_HEADS = 3  # a guess among a model's hundreds of heads counts within its top three


def most_attended(step: StepAttention, skip_first: bool = False) -> int:
    """The visible prompt token with the largest normalised weight at this step (the first
    on a tie): the graph's thickest blue line. With `skip_first`, the first token (the
    attention sink, which wins most steps and so teaches nothing) is not a candidate."""
    start = 1 if skip_first else 0
    if step.input_norm.size <= start:
        raise ValueError("the step sees no prompt token to ask about")
    return start + int(np.argmax(step.input_norm[start:]))


def next_token_choices(probs: np.ndarray, chosen: int, k: int = NEXT_TOKEN_CHOICES) -> list[int]:
    """The k likeliest next tokens (probs (V,)), with the written one always among them
    (in place of the k-th when sampling picked an unlikely token); in id order, so the
    order gives nothing away."""
    top = [int(i) for i in np.argsort(-probs, kind="stable")[:k]]
    if chosen not in top:
        top[-1] = int(chosen)
    return sorted(top)


def top_heads(scores: np.ndarray, k: int = TOP_HEADS) -> list[tuple[int, int]]:
    """The k heads with the highest score (scores (L, H); NaN never wins), best first."""
    if scores.ndim != 2:
        raise ValueError("scores must be (L, H)")
    flat = np.where(np.isnan(scores), -np.inf, scores).ravel()
    order = np.argsort(-flat, kind="stable")[:k]
    return [(int(i) // scores.shape[1], int(i) % scores.shape[1]) for i in order]
