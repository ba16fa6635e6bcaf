"""The induction-head lab: a 2-layer attention-only transformer learns to copy in context.

Every training sequence is n random tokens, then the same n tokens again (Olsson et al.,
2022, "In-context Learning and Induction Heads"). The first half cannot be predicted; the
second half can, by a two-head circuit: a previous-token head in layer 0 writes "the token
before me was A" into each position, and an induction head in layer 1 finds the earlier A
and copies what followed it. The circuit forms suddenly: the second-half loss sits on a
plateau, then drops, at the moment the induction score jumps.

Scores come from `lib.analysis.head_roles`, the code the Head roles page uses on the real
model, so the lab's heads and SmolLM2's are measured alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lib.analysis.head_roles import ROLES, role_masks, score_roles
from lib.train.model import NanoTransformer, loss_fn
from lib.train.settings import InductionConfig


def random_repeats(
    rng: np.random.Generator, batch: int, half: int, vocab: int, vary: bool = False
) -> np.ndarray:
    """(batch, 2 * half) int64: `half` distinct random tokens, then the same again.

    With `vary`, each sequence repeats a segment of its own length n (half/2 .. half) after
    2 * (half - n) other random tokens, so the distance back to the earlier copy changes from
    sequence to sequence: a head cannot just look a fixed number of positions back, it has
    to find the earlier copy by its token (an induction head).
    """
    perm = np.argsort(rng.random((batch, vocab)), axis=1)  # distinct tokens in every row
    out = np.empty((batch, 2 * half), dtype=np.int64)
    for b in range(batch):
        n = int(rng.integers(max(2, half // 2), half + 1)) if vary else half
        prefix = 2 * (half - n)
        r = perm[b, prefix : prefix + n]
        out[b] = np.concatenate([perm[b, :prefix], r, r])
    return out


@dataclass(frozen=True, eq=False)
class InductionHistory:
    """E evaluations of a run, each after `steps[e]` training steps.

    steps          (E,) int64     training steps done at each evaluation (0 = at start)
    loss_first     (E,) float32   mean loss predicting the first half (tokens 2..n)
    loss_second    (E,) float32   mean loss predicting the second half (tokens n+2..2n)
    scores         (E, R, L, H) float32  every head's score for each role of
                                  lib.analysis.head_roles.ROLES
    """

    steps: np.ndarray
    loss_first: np.ndarray
    loss_second: np.ndarray
    scores: np.ndarray
    stopped_early: bool = False

    def __post_init__(self) -> None:
        E = self.steps.shape[0]
        for name in ("loss_first", "loss_second"):
            if getattr(self, name).shape != (E,):
                raise ValueError(f"{name} must be ({E},)")
        if self.scores.ndim != 4 or self.scores.shape[:2] != (E, len(ROLES)):
            raise ValueError(f"scores must be ({E}, {len(ROLES)}, L, H)")

    def role(self, name: str) -> np.ndarray:
        """(E, L, H) scores for one role."""
        return self.scores[:, ROLES.index(name)]

    @property
    def induction(self) -> np.ndarray:
        return self.role("induction")

    @property
    def prev_token(self) -> np.ndarray:
        return self.role("previous_token")

    @property
    def icl_score(self) -> np.ndarray:
        """In-context learning score: second-half loss minus first-half loss (negative:
        the model predicts better late in the sequence, from its context)."""
        return self.loss_second - self.loss_first

    def phase_change(self, threshold: float = 0.5) -> int | None:
        """The first evaluation at which the best induction head passes `threshold`."""
        best = self.induction.reshape(len(self.steps), -1).max(axis=1)
        hits = np.flatnonzero(best >= threshold)
        return int(hits[0]) if hits.size else None


class InductionTrainer:
    """The attention-only model, trained one step (one fresh batch) at a time."""

    def __init__(self, cfg: InductionConfig) -> None:
        cfg.check()
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.model = NanoTransformer(cfg.model_config())
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=cfg.learning_rate)
        self.rng = np.random.default_rng(cfg.seed)
        # A fixed evaluation set, drawn apart from the training stream.
        self.eval_tokens = torch.as_tensor(
            random_repeats(np.random.default_rng(cfg.seed + 1), 16, cfg.half, cfg.vocab_size)
        )
        self.masks = [role_masks(t) for t in self.eval_tokens.numpy()]
        self.step_count = 0
        self.rows: list[tuple] = []
        self.evaluate()

    @property
    def done(self) -> bool:
        return self.step_count >= self.cfg.steps

    @property
    def progress(self) -> int:
        return self.step_count

    def step(self) -> float:
        cfg = self.cfg
        tokens = torch.as_tensor(
            random_repeats(self.rng, cfg.batch, cfg.half, cfg.vocab_size, vary=True)
        )
        self.model.train()
        logits = self.model(tokens[:, :-1])
        loss = loss_fn(logits, tokens[:, 1:], None)
        self.optimiser.zero_grad()
        loss.backward()
        self.optimiser.step()
        self.step_count += 1
        if self.step_count % cfg.eval_every == 0 or self.done:
            self.evaluate()
        return float(loss.detach())

    @torch.no_grad()
    def evaluate(self) -> None:
        n = self.cfg.half
        tokens = self.eval_tokens
        self.model.eval()
        logits = self.model(tokens[:, :-1])
        per_token = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), tokens[:, 1:], reduction="none"
        )  # (B, 2n - 1): position i predicts token i + 1
        # Token 0 of each half has nothing to copy from: both halves start at their token 1.
        first = per_token[:, : n - 1].mean()
        second = per_token[:, n:].mean()
        # The head-role scores need each head's full pattern over the whole sequence.
        self.model(tokens)
        att = self.model.attention_weights().numpy()  # (L, B, H, T, T)
        scores = np.mean(
            [score_roles(att[:, b], self.masks[b]) for b in range(att.shape[1])], axis=0
        )  # (R, L, H)
        self.rows.append((self.step_count, float(first), float(second), scores))

    def history(self) -> InductionHistory:
        steps, first, second, scores = zip(*self.rows, strict=True)
        return InductionHistory(
            steps=np.asarray(steps, dtype=np.int64),
            loss_first=np.asarray(first, dtype=np.float32),
            loss_second=np.asarray(second, dtype=np.float32),
            scores=np.stack(scores).astype(np.float32),
            stopped_early=not self.done,
        )
