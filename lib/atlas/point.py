"""A map point's own attention: the row that wrote its token, read again from its text.

The store keeps a token's fingerprint, not its attention. To show what the token looked at,
its run's token ids are rebuilt (a read text from its stored window; a generated run from
its prompt, tokenised as the run was, and its stored tokens), checked against every id the
store kept, and the model reads them up to the token once. The query row before the token
(the one that predicted it, as for a generated token), averaged over layers and heads as
its fingerprint was, is the answer; the fingerprint is computed again from it, beside the
stored one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lib.analysis.fingerprint import from_summary
from lib.atlas.ingest import summary
from lib.labels import display_texts
from lib.model.batching import PromptError, prepare
from lib.model.loading import LoadedModel
from lib.model.result import RunSettings


class PointError(ValueError):
    """The point's run cannot be read again as it was (a message for the user)."""


@dataclass(frozen=True, eq=False)
class PointAttention:
    """What the token at `position` of a stored run attended to when it was written.

    labels       K display strings: the keys, positions 0..K-1 of the run (K = position)
    weights      (K,) float32  the query row before the token, mean over layers and heads
                               (raw softmax weights: they sum to 1)
    target       the token's own display string
    fingerprint  (20,) float32 the fingerprint recomputed from this pass
    stored       (20,) float32 the fingerprint the store kept
    """

    labels: tuple[str, ...]
    weights: np.ndarray
    target: str
    fingerprint: np.ndarray
    stored: np.ndarray

    def __post_init__(self) -> None:
        k = len(self.labels)
        if self.weights.shape != (k,) or self.fingerprint.shape != self.stored.shape:
            raise ValueError(f"weights must be ({k},), both fingerprints of one shape")

    @property
    def position(self) -> int:
        return len(self.labels)

    @property
    def agrees(self) -> bool:
        """The pass reproduces the stored fingerprint (the same computation, other batching)."""
        return bool(np.allclose(self.fingerprint, self.stored, atol=1e-3))


def rebuild_ids(lm: LoadedModel, run: dict, stored: dict[int, int]) -> list[int]:
    """The token ids of a stored run (`run`: `Store.run`'s row; `stored`: position -> id of
    the tokens the store kept), checked against every kept id."""
    if run["source"] == "app":
        try:
            prepared = prepare(lm, run["prompt"], RunSettings.from_dict(run["settings"]))
        except (PromptError, ValueError, KeyError) as err:
            raise PointError(f"The run cannot be prepared again: {err}") from err
        ids = list(prepared.ids)
        ids += [stored[p] for p in sorted(stored) if p >= len(ids)]
    else:  # a read text: its window, decoded when stored, is tokenised again
        ids = lm.tokenizer(run["prompt"], add_special_tokens=False)["input_ids"]
    if any(p >= len(ids) or ids[p] != i for p, i in stored.items()):
        raise PointError("The text reads into other tokens now; its attention cannot be shown.")
    return ids


def point_attention(
    lm: LoadedModel, run: dict, stored: dict[int, int], position: int, fingerprint: np.ndarray
) -> PointAttention:
    """The attention of the token at `position` (1 <= position < the run's length)."""
    ids = rebuild_ids(lm, run, stored)
    if not 1 <= position < len(ids):
        raise PointError(f"Position {position} is not in the run ({len(ids)} tokens).")
    mean, entropies = summary(lm, ids[:position])  # keys 0..position-1; the last query
    row = mean[-1].astype(np.float32)
    text = display_texts(lm.tokenizer)
    return PointAttention(
        labels=tuple(text(t) for t in ids[:position]),
        weights=row,
        target=text(ids[position]),
        fingerprint=from_summary(row, entropies[:, -1]).astype(np.float32),
        stored=np.asarray(fingerprint, np.float32),
    )
