"""Logit lens for every generation step: what the model would say after each layer.

One forward pass over the run's tokens with `output_hidden_states=True` gives the residual
stream at every position after every layer. Reading it through the model's own final norm
and unembedding (nostalgebraist's logit lens) turns each into a next-token distribution.
Step s reads the query position that produced generated token s (prompt_len - 1 + s).

transformers returns L + 1 hidden states: the embeddings, the outputs of layers 0 .. L-2,
and the last layer's output *after* the final norm. So the final norm is applied to all but
the last entry, and the last entry reproduces the model's own logits exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lib.measures import ranks
from lib.model.loading import LoadedModel
from lib.model.result import GenerationResult

TOP_K = 5


@dataclass(frozen=True, eq=False)
class LogitLens:
    """Layer-by-layer predictions for S generation steps and L layers (L + 1 readouts).

    Readout 0 is the token embeddings; readout i (1..L) is the output of layer i - 1.
    top_ids     (S, L + 1, K) int64    the K most likely next tokens at each readout
    top_probs   (S, L + 1, K) float32  their probabilities
    final_ids   (S,) int64             the final readout's top-1 token (the model's own)
    final_prob  (S, L + 1) float32     probability of final_ids[s] at each readout
    final_rank  (S, L + 1) int64       its rank there (1 = top prediction, lib.measures)
    settles_at  (S,) int64             first readout from which final_ids[s] stays top-1
    """

    top_ids: np.ndarray
    top_probs: np.ndarray
    final_ids: np.ndarray
    final_prob: np.ndarray
    final_rank: np.ndarray
    settles_at: np.ndarray

    def __post_init__(self) -> None:
        if self.top_ids.ndim != 3 or self.top_probs.shape != self.top_ids.shape:
            raise ValueError("top_ids and top_probs must both be (S, L + 1, K)")
        S, R = self.top_ids.shape[:2]
        for name in ("final_prob", "final_rank"):
            if getattr(self, name).shape != (S, R):
                raise ValueError(f"{name} must be ({S}, {R})")
        for name in ("final_ids", "settles_at"):
            if getattr(self, name).shape != (S,):
                raise ValueError(f"{name} must be ({S},)")

    @property
    def n_readouts(self) -> int:
        return self.top_ids.shape[1]


def readout_names(n_layers: int, sublayers: bool = False) -> list[str]:
    """The one naming of readouts, for every table, chart and sentence.

    Whole layers: "embeddings", "layer 0", ... (after layer i). Sub-layers (2L + 1):
    "embeddings", "layer 0 attn", "layer 0 MLP", ...; "layer i MLP" is the same state as
    "layer i" (a layer ends with its MLP).
    """
    if sublayers:
        parts = [f"layer {i} {p}" for i in range(n_layers) for p in ("attn", "MLP")]
        return ["embeddings"] + parts
    return ["embeddings"] + [f"layer {i}" for i in range(n_layers)]


def settles_at(rank: np.ndarray) -> np.ndarray:
    """(S, R) ranks -> (S,) first readout index from which every later rank is 1 (top)."""
    not_top = rank != 1
    # Index of the last readout that is not top-1, plus one (0 when top-1 everywhere).
    last_bad = np.where(not_top.any(axis=1), rank.shape[1] - 1 - np.argmax(not_top[:, ::-1], 1), -1)
    return (last_bad + 1).astype(np.int64)


@torch.inference_mode()
def logit_lens(lm: LoadedModel, result: GenerationResult, top_k: int = TOP_K) -> LogitLens:
    """The logit lens at every step's query position, from one forward pass."""
    P, S = result.prompt_len, result.n_steps
    # The last generated token is never a query for a step, so it is not fed.
    hidden = lm.forward(result.token_ids[: P + S - 1], last_only=True, hidden_states=True).hidden
    top_ids, top_probs, final_prob, final_rank = [], [], [], []
    final_ids = None
    # Walk from the last readout down, so the final token is known for the others.
    for i in range(len(hidden) - 1, -1, -1):
        h = hidden[i][P - 1 :]  # (S, d): the query positions of the steps
        # The last hidden state has been through the final norm already.
        logits = lm.read_stream(h) if i < len(hidden) - 1 else lm.logits(h)
        probs_t = torch.softmax(logits, dim=-1)  # (S, V)
        top = torch.topk(probs_t, top_k, dim=-1)
        top_ids.append(top.indices.cpu().numpy())
        top_probs.append(top.values.cpu().numpy())
        probs = probs_t.cpu().numpy()
        if final_ids is None:
            final_ids = probs.argmax(axis=-1)
        final_prob.append(probs[np.arange(len(final_ids)), final_ids])
        final_rank.append(ranks(probs, final_ids))

    def stack(xs: list[np.ndarray]) -> np.ndarray:
        return np.stack(xs[::-1], axis=1)  # back to readout order

    rank = stack(final_rank).astype(np.int64)
    return LogitLens(
        top_ids=stack(top_ids).astype(np.int64),
        top_probs=stack(top_probs).astype(np.float32),
        final_ids=final_ids.astype(np.int64),
        final_prob=stack(final_prob).astype(np.float32),
        final_rank=rank,
        settles_at=settles_at(rank),
    )


def tied_embeddings(lm: LoadedModel) -> bool:
    """Whether the unembedding is the embedding matrix itself (tied weights)."""
    return lm.unembedding_matrix().data_ptr() == lm.embedding_matrix().data_ptr()
