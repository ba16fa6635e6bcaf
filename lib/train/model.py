"""NanoTransformer: a tiny transformer, readable in one sitting.

Token embedding + sinusoidal positions, then `n_layers` blocks, then a linear head that
scores every word of the vocabulary. A block is post-norm (, as in the original
Transformer): self-attention + residual + LayerNorm, then a feed-forward network + residual +
LayerNorm. `attention_only=True` drops the feed-forward half (and the norms), the
attention-only model in which Olsson et al. (2022) watch induction heads form.

Every attention module keeps the weights of its last forward pass in
`last_attention_weights` (batch, heads, query, key), for the views.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    max_len: int = 64
    attention_only: bool = False

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError("the width must be a multiple of the number of heads")

    def to_dict(self) -> dict:
        return asdict(self)


def causal_mask(n: int, device: torch.device | None = None) -> torch.Tensor:
    """(n, n) bool, True where a query may NOT look: every key after it."""
    return torch.ones(n, n, dtype=torch.bool, device=device).triu(1)


class PositionalEncoding(nn.Module):
    """Sinusoidal positions (Vaswani et al., 2017): sin on even dimensions, cos on odd."""

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        pos = torch.arange(max_len)[:, None]
        freq = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(pos * freq)
        pe[:, 1::2] = torch.cos(pos * freq)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[: x.shape[1]]


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.last_attention_weights: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_heads, self.d_head).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)  # (B, H, T, T)
        blocked = causal_mask(T, x.device)
        if pad is not None:  # padding keys are never attended to either
            blocked = blocked | pad[:, None, None, :]
        scores = scores.masked_fill(blocked, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        self.last_attention_weights = weights.detach()
        y = (weights @ v).transpose(1, 2).reshape(B, T, C)
        return self.out(y)


class TransformerBlock(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(cfg.d_model, cfg.n_heads)
        self.attention_only = cfg.attention_only
        if not cfg.attention_only:
            self.norm1 = nn.LayerNorm(cfg.d_model)
            self.feed_forward = nn.Sequential(
                nn.Linear(cfg.d_model, 4 * cfg.d_model),
                nn.GELU(),
                nn.Linear(4 * cfg.d_model, cfg.d_model),
            )
            self.norm2 = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        if self.attention_only:
            return x + self.attention(x, pad)
        x = self.norm1(x + self.attention(x, pad))
        return self.norm2(x + self.feed_forward(x))


class NanoTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.positions = PositionalEncoding(cfg.d_model, cfg.max_len)
        self.blocks = nn.ModuleList(TransformerBlock(cfg) for _ in range(cfg.n_layers))
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        """nanoGPT's initialisation: small normal weights, zero biases. Token embeddings
        start small beside the sinusoidal positions, so position is easy to read early."""
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, T) -> logits (B, T, vocab); `pad` (B, T) True marks padding."""
        if tokens.shape[1] > self.cfg.max_len:
            raise ValueError(f"at most {self.cfg.max_len} tokens fit this model")
        x = self.positions(self.embedding(tokens))
        for block in self.blocks:
            x = block(x, pad)
        return self.head(x)

    def attention_weights(self) -> torch.Tensor:
        """The last forward pass's attention: (layers, batch, heads, query, key)."""
        return torch.stack([b.attention.last_attention_weights for b in self.blocks])


def loss_fn(logits: torch.Tensor, targets: torch.Tensor, pad_id: int | None) -> torch.Tensor:
    """Mean cross-entropy over the positions whose target is not padding."""
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=-100 if pad_id is None else pad_id,
    )
