"""Full attention matrices, computed on demand for the one matrix a view shows.

A run stores only one query row per generated token; a heatmap of the whole sequence needs
every row, so it is computed here with one extra forward pass, for one layer's heads (and the
mean over all layers and heads) at a time: heads x T^2 numbers, never layers x heads x T^2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lib.model.capture import RECORDER_KWARG, AttentionRecorder
from lib.model.loading import LoadedModel


@dataclass(frozen=True)
class FullAttention:
    """Attention over a whole sequence of T tokens.

    mean   (T, T) float32  mean over all layers and heads; row = query, column = key
    heads  (H, T, T) float32  every head of `layer` (None when no layer was asked for)
    """

    mean: np.ndarray
    layer: int | None
    heads: np.ndarray | None

    def __post_init__(self) -> None:
        T = self.mean.shape[0]
        if self.mean.shape != (T, T):
            raise ValueError("mean must be (T, T)")
        if (self.heads is None) != (self.layer is None):
            raise ValueError("heads is given exactly when layer is")
        if self.heads is not None and (self.heads.ndim != 3 or self.heads.shape[1:] != (T, T)):
            raise ValueError("heads must be (H, T, T)")

    def matrix(self, head: int | None = None) -> np.ndarray:
        """(T, T): the mean over heads of `layer`, or one head; all layers if no layer."""
        if self.heads is None:
            return self.mean
        return self.heads.mean(axis=0) if head is None else self.heads[head]


@torch.inference_mode()
def full_attention(lm: LoadedModel, token_ids, layer: int | None = None) -> FullAttention:
    """One forward pass over `token_ids`, keeping full matrices for the mean and `layer`."""
    if layer is not None and not 0 <= layer < lm.n_layers:
        raise IndexError(f"layer {layer} out of range 0..{lm.n_layers - 1}")
    recorder = AttentionRecorder("full", layers=() if layer is None else (layer,))
    ids = lm.batch(token_ids)
    lm.model(input_ids=ids, use_cache=False, logits_to_keep=1, **{RECORDER_KWARG: recorder})
    heads = recorder.per_layer.get(layer) if layer is not None else None
    return FullAttention(mean=recorder.mean_matrix(), layer=layer, heads=heads)
