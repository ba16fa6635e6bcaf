"""Head roles: which kind of pattern each attention head computes, one score per role.

In the style of TransformerLens's head_detector: each role is a *target mask* over
(query, key) pairs, built by one small pure function from the tokens alone. A head's score
for a role is the mean, over the queries that have at least one target, of the attention
mass the head puts on that query's targets. All weight on the targets scores 1; uniform
attention over the visible keys scores about (targets per query) / (visible keys).

    previous_token   key = query - 1
    duplicate_token  earlier keys that hold the same token as the query
    induction        keys right after an earlier occurrence of the query's token
                     ("A B ... A" -> attend to B, what followed A last time)
    sink             key 0, the first token (always the raw share, never renormalised)

`exclude_first=True` (the app's "hide the first-token sink" switch, TransformerLens's
`exclude_bos`) applies `lib.measures.hide_sink` to every head's rows before scoring the
first three roles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from lib.measures import hide_sink
from lib.model.capture import AttentionRecorder
from lib.model.loading import LoadedModel

Role = Literal["previous_token", "induction", "duplicate_token", "sink"]
ROLES: tuple[Role, ...] = ("previous_token", "induction", "duplicate_token", "sink")
ROLE_TITLES: dict[Role, str] = {
    "previous_token": "Previous token",
    "induction": "Induction",
    "duplicate_token": "Duplicate token (copying)",
    "sink": "First-token sink share",
}


# ---- target masks: (T, T) bool, row = query, column = key, only keys <= query ----


def previous_token_mask(n_tokens: int) -> np.ndarray:
    return np.eye(n_tokens, k=-1, dtype=bool)


def duplicate_token_mask(tokens: np.ndarray) -> np.ndarray:
    t = np.asarray(tokens)
    return np.tril(t[:, None] == t[None, :], k=-1)


def induction_mask(tokens: np.ndarray) -> np.ndarray:
    """Key k is a target of query q when token k-1 equals token q and k-1 < q."""
    dup = duplicate_token_mask(tokens)
    mask = np.zeros_like(dup)
    mask[:, 1:] = dup[:, :-1]  # shift the duplicate's position one to the right
    return mask


def sink_mask(n_tokens: int) -> np.ndarray:
    mask = np.zeros((n_tokens, n_tokens), dtype=bool)
    mask[1:, 0] = True  # query 0 can only see itself: it tells nothing about a sink
    return mask


def role_masks(tokens: np.ndarray) -> dict[Role, np.ndarray]:
    T = len(tokens)
    return {
        "previous_token": previous_token_mask(T),
        "induction": induction_mask(tokens),
        "duplicate_token": duplicate_token_mask(tokens),
        "sink": sink_mask(T),
    }


# ---- scoring ----


def mask_score(pattern: np.ndarray, mask: np.ndarray, *, exclude_first: bool = False) -> np.ndarray:
    """Mean over queries with a target of the mass on the targets: pattern (..., T, T) -> (...).

    NaN when no query has a target (e.g. induction on text without a repeated token).
    """
    if exclude_first:
        pattern = hide_sink(pattern)
        mask = mask.copy()
        mask[:, 0] = False
    rows = mask.any(axis=-1)
    if not rows.any():
        return np.full(pattern.shape[:-2], np.nan, dtype=np.float32)
    # einsum avoids a second (..., T, T) temporary: long texts have T^2 in the millions.
    mass = np.einsum("...qk,qk->...q", pattern, mask.astype(pattern.dtype))  # (..., T)
    return mass[..., rows].mean(axis=-1).astype(np.float32)


def score_roles(
    pattern: np.ndarray,
    masks: dict[Role, np.ndarray],
    *,
    exclude_first: bool = False,
) -> np.ndarray:
    """Every role's score for attention patterns (..., T, T): (len(ROLES), ...) float32."""
    hidden = hide_sink(pattern) if exclude_first else pattern  # renormalised once
    out = []
    for role in ROLES:
        if exclude_first and role != "sink":
            mask = masks[role].copy()
            mask[:, 0] = False
            out.append(mask_score(hidden, mask))
        else:
            out.append(mask_score(pattern, masks[role]))
    return np.stack(out)


def spread(pattern: np.ndarray, exclude_first: bool = False) -> np.ndarray:
    """How widely each head spreads its attention, (..., T, T) -> (...) in [0, 1]: each
    query row's entropy over the keys it can see, divided by the entropy of spreading
    evenly over them (log of their number), averaged over the queries with two or more
    keys. 0: every query looks at one token (a specialised head); 1: at all it can see
    evenly (a general one). With `exclude_first` the first token's share is hidden and
    the rest renormalised, as every view does, and it is not counted among the keys."""
    p = hide_sink(pattern) if exclude_first else np.asarray(pattern, dtype=np.float32)
    T = p.shape[-1]
    keys = np.arange(1, T + 1, dtype=np.float64) - (1 if exclude_first else 0)  # per query
    terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=-1)
    rows = keys >= 2
    if not rows.any():
        return np.full(p.shape[:-2], np.nan, dtype=np.float32)
    return (terms[..., rows] / np.log(keys[rows])).mean(axis=-1).astype(np.float32)


def uniform_pattern(n_tokens: int) -> np.ndarray:
    """Causal attention spread evenly over every visible key: the chance baseline."""
    p = np.tril(np.ones((n_tokens, n_tokens), dtype=np.float32))
    return p / p.sum(axis=1, keepdims=True)


# ---- the repeated random-token probe ----


def repeated_random_tokens(
    vocab_size: int,
    n: int,
    seed: int,
    first_id: int,
    prefix: tuple[int, ...] = (),
    pool: np.ndarray | None = None,
) -> np.ndarray:
    """prefix + r + r for n distinct random ids r drawn from [first_id, vocab_size), or
    from `pool` when given.

    Distinct ids make each token's "earlier occurrence" unique, so the only copies in the
    sequence are the planted ones.
    """
    rng = np.random.default_rng(seed)
    pool = np.arange(first_id, vocab_size) if pool is None else pool
    r = rng.choice(pool, size=n, replace=False)
    return np.concatenate([np.asarray(prefix, dtype=np.int64), r, r]).astype(np.int64)


@dataclass(frozen=True, eq=False)
class HeadRoles:
    """Role scores of every head on one token sequence of length T.

    scores  (len(ROLES), L, H) float32  in ROLES order; NaN where no query has a target
    chance  (len(ROLES),) float32       the same scores for uniform causal attention
    tokens  (T,) int64                  the sequence scored
    loss    (T - 1,) float32            next-token loss in nats (position i predicts token
                                        i + 1); empty (0,) when not computed
    n_random  length of each random repeat (0 when the sequence is not the probe)
    prefix_len  tokens before the first repeat (a BOS, or 0)
    spread  (L, H) float32  each head's normalised attention entropy (`spread`): 0 a
                            specialised head, 1 a general one; None when not measured
    """

    scores: np.ndarray
    chance: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray
    exclude_first: bool
    n_random: int = 0
    prefix_len: int = 0
    spread: np.ndarray | None = None

    def __post_init__(self) -> None:
        R, T = len(ROLES), self.tokens.shape[0]
        if self.spread is not None and self.spread.shape != self.scores.shape[1:]:
            raise ValueError(f"spread must be {self.scores.shape[1:]}")
        if self.scores.ndim != 3 or self.scores.shape[0] != R:
            raise ValueError(f"scores must be ({R}, L, H), got {self.scores.shape}")
        if self.chance.shape != (R,):
            raise ValueError(f"chance must be ({R},)")
        if self.loss.shape not in ((0,), (T - 1,)):
            raise ValueError(f"loss must be (0,) or ({T - 1},)")
        if self.n_random and self.prefix_len + 2 * self.n_random != T:
            raise ValueError("tokens must be prefix + two repeats")

    @property
    def n_layers(self) -> int:
        return self.scores.shape[1]

    @property
    def n_heads(self) -> int:
        return self.scores.shape[2]

    def score(self, role: Role) -> np.ndarray:
        """(L, H) scores for one role."""
        return self.scores[ROLES.index(role)]

    def repeat_losses(self) -> tuple[float, float]:
        """Mean loss predicting r[1:] in the first repeat and in the second one.

        r[0] is left out of both: nothing in the context can predict it either time.
        """
        if not self.n_random or not self.loss.size:
            raise ValueError("no repeated-sequence loss was computed")
        p, n = self.prefix_len, self.n_random
        first = self.loss[p : p + n - 1]  # predicts tokens p+1 .. p+n-1
        second = self.loss[p + n : p + 2 * n - 1]  # predicts tokens p+n+1 .. p+2n-1
        return float(first.mean()), float(second.mean())


class RoleScoringRecorder(AttentionRecorder):
    """Scores each layer's full (H, T, T) attention as it is computed, then drops it.

    Only one layer's matrices are alive at a time, never layers x heads x T^2 numbers.
    """

    def __init__(self, tokens: np.ndarray, exclude_first: bool) -> None:
        super().__init__("full")  # "full": the capture passes every query row
        self.masks = role_masks(tokens)
        self.exclude_first = exclude_first
        self.layer_scores: list[np.ndarray] = []  # one (len(ROLES), H) per layer
        self.layer_spread: list[np.ndarray] = []  # one (H,) per layer

    def record(self, probs: torch.Tensor) -> None:
        pattern = probs[0].to("cpu", torch.float32).numpy()
        self.layer_scores.append(score_roles(pattern, self.masks, exclude_first=self.exclude_first))
        self.layer_spread.append(spread(pattern, self.exclude_first))


@torch.inference_mode()
def head_roles(
    lm: LoadedModel,
    token_ids: np.ndarray,
    *,
    exclude_first: bool = False,
    with_loss: bool = False,
    n_random: int = 0,
    prefix_len: int = 0,
) -> HeadRoles:
    """One forward pass over `token_ids`, scoring every head of every layer."""
    tokens = np.asarray(token_ids, dtype=np.int64)
    recorder = RoleScoringRecorder(tokens, exclude_first)
    out = lm.forward(tokens, last_only=not with_loss, recorder=recorder)
    loss = np.zeros(0, dtype=np.float32)
    if with_loss:
        logp = torch.log_softmax(out.logits[:-1], dim=-1)
        nxt = torch.as_tensor(tokens[1:], device=logp.device)
        loss = (-logp.gather(1, nxt[:, None])[:, 0]).cpu().numpy().astype(np.float32)
    scores = np.stack(recorder.layer_scores, axis=1)  # (R, L, H)
    masks = recorder.masks
    chance = score_roles(uniform_pattern(len(tokens)), masks, exclude_first=exclude_first)
    return HeadRoles(
        scores=scores,
        chance=chance,
        tokens=tokens,
        loss=loss,
        exclude_first=exclude_first,
        n_random=n_random,
        prefix_len=prefix_len,
        spread=np.stack(recorder.layer_spread),
    )


def probe_tokens(lm: LoadedModel, n: int = 50, seed: int = 0) -> tuple[np.ndarray, int]:
    """The induction probe for `lm`: (BOS) + r + r, and the prefix length.

    Random ids come from above the tokenizer's special/added tokens; a BOS, when the
    tokenizer has one, holds the first-token sink as it does in TransformerLens's setup.
    A vocabulary with fewer than `n` such tokens (a student's word-level model) repeats
    all it has: each random half is min(n, tokens available) long.
    """
    tok = lm.tokenizer
    specials = {*(getattr(tok, "added_tokens_decoder", {}) or {}), *tok.all_special_ids}
    first_id = max([*specials, -1]) + 1
    vocab = min(lm.vocab_size, len(tok))  # output rows past the tokenizer are padding
    prefix = (int(tok.bos_token_id),) if tok.bos_token_id is not None else ()
    if lm.context_length is not None:  # a lab model reads a few dozen tokens at most
        n = min(n, (lm.context_length - len(prefix)) // 2)
    pool = None  # above every special token
    if vocab - first_id < n:  # special ids at the end (GPT-2), or a small vocabulary
        pool = np.array([i for i in range(vocab) if i not in specials], dtype=np.int64)
        n = min(n, len(pool))
    return repeated_random_tokens(vocab, n, seed, first_id, prefix, pool), len(prefix)


def induction_probe(
    lm: LoadedModel, n: int = 50, seed: int = 0, *, exclude_first: bool = False
) -> HeadRoles:
    """Role scores and per-position loss on (BOS) + r + r with n random tokens r."""
    tokens, prefix_len = probe_tokens(lm, n, seed)
    return head_roles(
        lm,
        tokens,
        exclude_first=exclude_first,
        with_loss=True,
        n_random=(len(tokens) - prefix_len) // 2,
        prefix_len=prefix_len,
    )
