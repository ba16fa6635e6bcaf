"""The next-token lens: the model's full distribution at a step, and the sampling filters.

Every filter here works on one distribution over the vocabulary and returns which tokens it
keeps and the renormalised probabilities, so a page can show each filter alone. The rules
are those of transformers' warpers that `lib.model.generation` samples with (the tests check that
they agree), written in plain numpy so their source can be shown to students.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lib.measures import entropy_bits, ranks, softmax
from lib.model.loading import LoadedModel
from lib.model.result import GenerationResult, SamplingSettings

# --- the filters, each on its own --------------------------------------------------------


@dataclass(frozen=True)
class Filtered:
    """One filter applied to a distribution over V tokens.

    probs      (V,) float32  renormalised probabilities; exactly 0 for cut tokens
    kept       (V,) bool     True where the token survives the filter
    threshold  the probability a token needed to survive (top-k: the k-th probability,
               min-p: min_p x the top probability); None when the rule is not a threshold
    """

    name: str
    probs: np.ndarray
    kept: np.ndarray
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.probs.ndim != 1 or self.kept.shape != self.probs.shape:
            raise ValueError("probs and kept must both be (V,)")
        if self.kept.dtype != np.bool_ or not self.kept.any():
            raise ValueError("kept must be a bool mask that keeps at least one token")

    @property
    def n_kept(self) -> int:
        return int(self.kept.sum())


def _renormalise(probs: np.ndarray, kept: np.ndarray) -> np.ndarray:
    out = np.where(kept, probs, 0.0).astype(np.float64)
    return (out / out.sum()).astype(np.float32)


def apply_temperature(logits: np.ndarray, temperature: float) -> Filtered:
    """Divide the logits by T before the softmax: T < 1 sharpens, T > 1 flattens. Cuts nothing."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    probs = softmax(np.asarray(logits, dtype=np.float64) / temperature)
    return Filtered("temperature", probs, np.ones(probs.shape, dtype=bool))


def apply_top_k(probs: np.ndarray, k: int) -> Filtered:
    """Keep the k most likely tokens. Tokens tied with the k-th are all kept (as transformers)."""
    probs = np.asarray(probs, dtype=np.float32)
    if k <= 0 or k >= probs.size:
        return Filtered("top-k", probs, np.ones(probs.shape, dtype=bool))
    kth = np.partition(probs, probs.size - k)[probs.size - k]  # the k-th largest value
    kept = probs >= kth
    return Filtered("top-k", _renormalise(probs, kept), kept, float(kth))


def apply_top_p(probs: np.ndarray, p: float) -> Filtered:
    """Keep the most likely tokens until their total reaches p (the "nucleus").

    A token is kept when the tokens ranked above it hold less than p, so the one that
    crosses p is kept too. Among tied tokens the higher id ranks first, as in transformers.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if p >= 1.0:
        return Filtered("top-p", probs, np.ones(probs.shape, dtype=bool))
    order = np.argsort(probs, kind="stable")[::-1]  # most likely first
    mass_before = np.cumsum(probs[order], dtype=np.float64) - probs[order]
    kept = np.zeros(probs.shape, dtype=bool)
    kept[order[mass_before < p]] = True
    return Filtered("top-p", _renormalise(probs, kept), kept)


def apply_min_p(probs: np.ndarray, min_p: float) -> Filtered:
    """Keep tokens at least min_p times as likely as the most likely token.

    The bar moves with the model's confidence: a sure model (top token 0.9) cuts almost
    everything, an unsure one (top token 0.05) keeps many candidates.
    """
    probs = np.asarray(probs, dtype=np.float32)
    threshold = float(min_p) * float(probs.max())
    kept = probs >= threshold
    return Filtered("min-p", _renormalise(probs, kept), kept, threshold)


def apply_all(logits: np.ndarray, sampling: SamplingSettings) -> Filtered:
    """What sampling draws from: temperature, then top-k, top-p and min-p, in generate's order."""
    f = apply_temperature(logits, sampling.temperature)
    kept = f.kept
    for step in (
        lambda q: apply_top_k(q, sampling.top_k),
        lambda q: apply_top_p(q, sampling.top_p),
        lambda q: apply_min_p(q, sampling.min_p),
    ):
        f = step(f.probs)
        kept = kept & f.kept
    return Filtered("all filters", _renormalise(f.probs, kept), kept)


# --- the model's distributions -----------------------------------------------------------


@dataclass(frozen=True)
class StepDistribution:
    """The full next-token distribution at generation step `step` of a run.

    logits  (V,) float32  the model's scores for every vocabulary token
    probs   (V,) float32  softmax(logits): temperature 1, no filter
    chosen  the token the run wrote at this step (None past the end of the run)
    """

    step: int
    logits: np.ndarray
    probs: np.ndarray
    chosen: int | None

    def __post_init__(self) -> None:
        if self.logits.ndim != 1 or self.probs.shape != self.logits.shape:
            raise ValueError("logits and probs must both be (V,)")

    @property
    def entropy(self) -> float:
        return entropy_bits(self.probs)

    def top(self, n: int) -> np.ndarray:
        """Ids of the n most likely tokens, most likely first."""
        n = min(n, self.probs.size)
        idx = np.argpartition(-self.probs, n - 1)[:n]
        return idx[np.argsort(-self.probs[idx], kind="stable")]


@torch.inference_mode()
def step_distribution(lm: LoadedModel, result: GenerationResult, step: int) -> StepDistribution:
    """The model's scores for generated token `step`, read from the run's tokens before it
    (one pass over those a kept cache of the run does not hold: usually one token).

    `step` may equal n_steps: the distribution of the token that would come next.
    """
    if not 0 <= step <= result.n_steps:
        raise IndexError(f"step {step} out of range 0..{result.n_steps}")
    end = result.prompt_len + step
    logits = lm.next_logits(result.token_ids[:end]).cpu().numpy()
    chosen = int(result.token_ids[end]) if step < result.n_steps else None
    return StepDistribution(step, logits, softmax(logits), chosen)


@dataclass(frozen=True)
class SequenceLens:
    """What the model predicts after every position of a sequence of T tokens.

    top_ids    (T, K) int64    the K most likely next tokens after each position
    top_probs  (T, K) float32  their probabilities
    entropy    (T,) float32    entropy of each position's distribution, in bits
    next_prob  (T - 1,) float32  probability of the token that actually comes next
    next_rank  (T - 1,) int64    its 1-based rank (1 = the model's first choice)
    """

    top_ids: np.ndarray
    top_probs: np.ndarray
    entropy: np.ndarray
    next_prob: np.ndarray
    next_rank: np.ndarray

    def __post_init__(self) -> None:
        T = self.top_ids.shape[0]
        if self.top_ids.ndim != 2 or self.top_probs.shape != self.top_ids.shape:
            raise ValueError("top_ids and top_probs must both be (T, K)")
        if self.entropy.shape != (T,):
            raise ValueError(f"entropy must be ({T},)")
        if self.next_prob.shape != (T - 1,) or self.next_rank.shape != (T - 1,):
            raise ValueError(f"next_prob and next_rank must be ({T - 1},)")


@torch.inference_mode()
def sequence_lens(
    lm: LoadedModel, token_ids: Sequence[int], k: int = 10, chunk: int = 256
) -> SequenceLens:
    """One forward pass; the LM head runs over `chunk` positions at a time, so memory
    stays at chunk x vocabulary floats instead of T x vocabulary."""
    hidden = lm.final_hidden(token_ids)
    T = hidden.shape[0]
    k = min(k, lm.vocab_size)
    top_ids, top_probs, ent, nxt_p, nxt_r = [], [], [], [], []
    token_ids = np.asarray(token_ids, dtype=np.int64)
    for start in range(0, T, chunk):
        probs_t = torch.softmax(lm.logits(hidden[start : start + chunk]), dim=-1)
        top = torch.topk(probs_t, k, dim=-1)
        top_ids.append(top.indices.cpu().numpy())
        top_probs.append(top.values.cpu().numpy())
        probs = probs_t.cpu().numpy()
        ent.append(entropy_bits(probs, axis=-1))
        # The actual next token of position i is token i + 1 (none after the last one).
        n = min(start + chunk, T - 1) - start
        if n > 0:
            nxt = token_ids[start + 1 : start + 1 + n]
            nxt_p.append(probs[np.arange(n), nxt])
            nxt_r.append(ranks(probs[:n], nxt))
    return SequenceLens(
        top_ids=np.concatenate(top_ids).astype(np.int64),
        top_probs=np.concatenate(top_probs).astype(np.float32),
        entropy=np.concatenate(ent).astype(np.float32),
        next_prob=np.concatenate(nxt_p or [np.zeros(0)]).astype(np.float32),
        next_rank=np.concatenate(nxt_r or [np.zeros(0)]).astype(np.int64),
    )


# --- step-by-step and "what if" ----------------------------------------------------------


def next_token_forced(result: GenerationResult) -> tuple[int, ...]:
    """Forced tokens that replay the run so far; one more step then adds a new token."""
    return tuple(int(t) for t in result.generated_ids)


def branch_forced(result: GenerationResult, step: int, token: int) -> tuple[int, ...]:
    """Forced tokens for a branch: the run up to `step`, then `token` instead of its choice."""
    if not 0 <= step < result.n_steps:
        raise IndexError(f"step {step} out of range 0..{result.n_steps - 1}")
    return (*next_token_forced(result)[:step], int(token))
