"""Exact attention capture without storing layers x heads x T^2 numbers.

The model runs with an attention function registered under `CAPTURE_IMPL`: it computes the
layer's output with PyTorch's fused SDPA (fast, no weights) and, beside it, the softmax
weights of just the rows a view needs, the same way transformers' eager attention does
(scores in the model dtype, softmax in float32). The rows go to an `AttentionRecorder` passed
as a forward keyword argument, so concurrent sessions never share capture state.
"""

from __future__ import annotations

import numpy as np
import torch

CAPTURE_IMPL = "tav_capture"
RECORDER_KWARG = "tav_recorder"
HIDDEN_KEYS_KWARG = "tav_hidden_keys"  # (B, K) bool: keys the last query may not see


class AttentionRecorder:
    """Collects attention probabilities during forward passes, one call per layer.

    mode "last_row": keep the last query row of every layer for every sequence of the
    batch, as (batch, heads, keys).
    mode "full": keep full (queries, keys) matrices: the mean over all layers and heads,
    plus every head of each layer listed in `layers`.
    mode "summary": keep the mean matrix over all layers and heads and, per layer, each
    query's head entropy divided by log(its number of keys), averaged over heads: what a
    fingerprint needs of a whole text (`lib.analysis.fingerprint.from_summary`).
    """

    def __init__(self, mode: str = "last_row", layers: tuple[int, ...] = ()) -> None:
        if mode not in ("last_row", "full", "summary"):
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.layers = set(layers)
        self.rows: list[torch.Tensor] = []  # last_row: one (B, H, K) per layer call
        self.per_layer: dict[int, np.ndarray] = {}  # full: layer -> (H, Q, K)
        self._sum: torch.Tensor | None = None  # full: running sum over layers of (Q, K)
        self.entropies: list[torch.Tensor] = []  # summary: one (Q,) per layer
        self._calls = 0

    def record(self, probs: torch.Tensor) -> None:
        """probs: (B, H, Q, K) float32 softmax weights of one layer, in call order (B is 1
        except in "last_row" mode)."""
        layer = self._calls
        self._calls += 1
        if self.mode == "last_row":
            self.rows.append(probs[:, :, -1, :].to("cpu", torch.float32))
            return
        heads_mean = probs[0].mean(dim=0)
        self._sum = heads_mean if self._sum is None else self._sum + heads_mean
        if layer in self.layers:
            self.per_layer[layer] = probs[0].to("cpu", torch.float32).numpy()
        if self.mode == "summary":
            n_keys = torch.arange(1, probs.shape[-1] + 1, device=probs.device)[-probs.shape[2] :]
            scale = torch.where(n_keys > 1, torch.log(n_keys.clamp(min=2).float()), 1.0)
            per_head = torch.special.entr(probs[0]).sum(dim=-1) / scale  # (H, Q); 0 for 1 key
            self.entropies.append(per_head.mean(dim=0).to("cpu", torch.float32))

    def layer_entropies(self) -> np.ndarray:
        """summary: (layers, queries) mean normalised head entropy of each query."""
        return torch.stack(self.entropies).numpy()

    def take_rows(self) -> np.ndarray:
        """The last-row weights of the forward pass just run: (batch, layers, heads, keys)
        float32."""
        out = torch.stack(self.rows, dim=1).numpy()
        self.rows = []
        self._calls = 0
        return out

    def mean_matrix(self) -> np.ndarray:
        """Mean over layers and heads of the full matrices: (queries, keys) float32."""
        if self._sum is None:
            raise RuntimeError("no forward pass recorded")
        return (self._sum / self._calls).to("cpu", torch.float32).numpy()


def attention_probs(
    query: torch.Tensor,
    key: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None,
) -> torch.Tensor:
    """softmax(q k^T * scaling + mask) as transformers' eager attention computes it.

    query (B, H, Q, D), key (B, KV, K, D) with H a multiple of KV (grouped-query attention).
    The mask is additive (float) or boolean (True = may attend), or None for plain causal.
    Returns (B, H, Q, K) float32.
    """
    B, H, Q, D = query.shape
    kv_heads, k_len = key.shape[1], key.shape[2]
    if scaling is None:
        scaling = D**-0.5
    # Query heads h = g * n_rep + r share key head g: group them instead of repeating the
    # keys (a copy of the whole key cache, per layer and step).
    grouped = query.reshape(B, kv_heads, (H // kv_heads) * Q, D)
    scores = torch.matmul(grouped, key.transpose(2, 3)).reshape(B, H, Q, k_len) * scaling
    q_len = Q
    if attention_mask is None:
        if q_len > 1:  # the queries are the last q_len of k_len positions
            future = torch.ones(q_len, k_len, dtype=torch.bool, device=scores.device)
            scores = scores.masked_fill(future.triu(k_len - q_len + 1), float("-inf"))
    else:
        mask = attention_mask[..., -q_len:, -k_len:]
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    return torch.softmax(scores, dim=-1, dtype=torch.float32)


def hide_from_last_query(
    mask: torch.Tensor | None, hidden: torch.Tensor, q_len: int
) -> torch.Tensor:
    """The attention mask with the keys `hidden` (B, K) bool taken from the last query of
    each sequence (a key knockout): boolean (B, 1, Q, K), True = may attend, from a boolean
    or plain causal (None) mask; an additive mask gets -inf there instead."""
    B, k_len = hidden.shape
    if mask is None:  # plain causal: the queries are the last q_len of k_len positions
        causal = torch.ones(q_len, k_len, dtype=torch.bool, device=hidden.device)
        mask = causal.tril(k_len - q_len)[None, None]
    mask = mask[..., -q_len:, -k_len:]
    mask = mask.expand(B, mask.shape[1], q_len, k_len).clone()
    if mask.dtype == torch.bool:
        mask[:, :, -1, :] &= ~hidden[:, None, :]
    else:
        mask[:, :, -1, :] = mask[:, :, -1, :].masked_fill(hidden[:, None, :], float("-inf"))
    return mask


def capture_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs,
):
    """SDPA for the output; exact softmax weights for the recorder's rows on the side."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    recorder: AttentionRecorder | None = kwargs.pop(RECORDER_KWARG, None)
    hidden = kwargs.pop(HIDDEN_KEYS_KWARG, None)
    if hidden is not None:
        attention_mask = hide_from_last_query(attention_mask, hidden, query.shape[2])
    if recorder is not None:
        q = query[:, :, -1:, :] if recorder.mode == "last_row" else query
        recorder.record(attention_probs(q, key, attention_mask, scaling))
    return sdpa_attention_forward(
        module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
    )


def ensure_registered() -> None:
    """Register the capture attention (and SDPA's mask builder for it) with transformers."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(CAPTURE_IMPL, capture_attention_forward)
    AttentionMaskInterface.register(CAPTURE_IMPL, sdpa_mask)
