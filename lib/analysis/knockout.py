"""Key knockout: does the model need the tokens a view says it looked at?

The attention graph draws the keys a query weighted most. A weight is a pattern, not a
cause: the token may pass nothing the model uses. So the claim is tested on the model: the
strongest keys are hidden from the query that wrote the token, in every layer and head
(their softmax weight is -inf, the rest renormalise), and the written token's probability
is read again. Beside it, controls: the same number of other keys, drawn at random from the
same candidates, hidden the same way. Other queries still see the hidden keys, so what
those tokens passed on through other positions stays: this measures the direct lines only.
All the passes run as one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lib.analysis.attention import StepAttention
from lib.model.loading import LoadedModel
from lib.model.result import GenerationResult

# Never hidden, never a control: the attention sink. Most heads park their weight on the
# first position, so hiding it disturbs every head at once, whatever the lines say.
SINK = 0


@dataclass(frozen=True)
class KeyKnockout:
    """The written token's probability (temperature 1) with keys hidden from its query.

    keys          (k,) int  the positions hidden (the strongest lines)
    before        with nothing hidden
    after         with `keys` hidden
    control_keys  (n, k) int  each control's hidden positions (n may be 0)
    controls      (n,) float  the probability with each control's keys hidden
    """

    keys: np.ndarray
    before: float
    after: float
    control_keys: np.ndarray
    controls: np.ndarray

    def __post_init__(self) -> None:
        k = len(self.keys)
        if self.keys.ndim != 1 or k == 0:
            raise ValueError("keys must be (k,), k >= 1")
        n = len(self.controls)
        if self.controls.shape != (n,) or self.control_keys.shape != (n, k):
            raise ValueError("controls must be (n,) and control_keys (n, k)")


def strongest_keys(
    result: GenerationResult, step: StepAttention, k: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The positions of the step's k strongest lines (raw weight, as the graph's table ranks
    them), and every position a line could go to (the candidates); the sink is neither."""
    positions = np.arange(result.bos_offset, result.prompt_len + step.step)
    raw = np.concatenate([step.input_raw, step.output_raw])
    positions, raw = positions[positions != SINK], raw[positions != SINK]
    order = np.argsort(-raw, kind="stable")[:k]
    return tuple(sorted(int(p) for p in positions[order])), tuple(int(p) for p in positions)


def control_draws(
    candidates: Sequence[int], keys: Sequence[int], n: int, seed: int = 0
) -> np.ndarray:
    """(n', k) sets of len(keys) candidates other than `keys`, at random (seeded); none
    when too few remain."""
    rest = np.array(sorted(set(candidates) - set(keys)), dtype=np.int64)
    k = len(keys)
    if len(rest) < k:
        return np.zeros((0, k), np.int64)
    rng = np.random.default_rng(seed)
    return np.stack([np.sort(rng.choice(rest, k, replace=False)) for _ in range(n)])


@torch.inference_mode()
def knock_out_keys(
    lm: LoadedModel,
    context: Sequence[int],
    token: int,
    keys: Sequence[int],
    candidates: Sequence[int],
    n_controls: int = 8,
    seed: int = 0,
) -> KeyKnockout:
    """The probability of `token` after `context` (T ids), with nothing hidden, with
    `keys` hidden from the last query, and with `n_controls` random sets of as many other
    `candidates` (never position 0) hidden: 2 + n_controls sequences in one forward pass."""
    T = len(context)
    keys = sorted({int(k) for k in keys})
    if not keys or not all(0 <= k < T for k in keys):
        raise ValueError(f"keys must be positions of the context (0..{T - 1})")
    if len(keys) >= T:
        raise ValueError("at least one key must stay visible")
    draws = control_draws([c for c in candidates if c != SINK], keys, n_controls, seed)
    hidden = torch.zeros(2 + len(draws), T, dtype=torch.bool)
    hidden[1, keys] = True
    for i, d in enumerate(draws):
        hidden[2 + i, d] = True
    ids = torch.tensor(np.asarray(context, dtype=np.int64))[None].expand(len(hidden), T)
    probs = torch.softmax(lm.last_logits(ids, hidden), dim=-1)[:, int(token)].cpu().numpy()
    return KeyKnockout(
        keys=np.array(keys, np.int64),
        before=float(probs[0]),
        after=float(probs[1]),
        control_keys=draws,
        controls=probs[2:].astype(np.float64),
    )
