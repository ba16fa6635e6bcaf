"""Seed 001's weight views for a real model: embedding PCA, OV-circuit spectra, eigenvalues."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lib.model.loading import LoadedModel


@dataclass(frozen=True, eq=False)
class EmbeddingPCA:
    """The run's distinct tokens' input embeddings projected on their first two principal axes.

    token_ids  (N,) int64     distinct ids, in order of first appearance
    coords     (N, 2) float32 coordinates on principal components 1 and 2
    explained  (2,) float32   share of the variance (of these N embeddings) each explains
    """

    token_ids: np.ndarray
    coords: np.ndarray
    explained: np.ndarray

    def __post_init__(self) -> None:
        N = self.token_ids.shape[0]
        if self.coords.shape != (N, 2) or self.explained.shape != (2,):
            raise ValueError(f"coords must be ({N}, 2) and explained (2,)")


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of x (N, d) on their first two principal axes, and each axis's variance share."""
    centred = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    k = min(2, len(s))
    coords = np.zeros((x.shape[0], 2), dtype=np.float32)
    coords[:, :k] = u[:, :k] * s[:k]
    var = s**2
    explained = np.zeros(2, dtype=np.float32)
    if var.sum() > 0:
        explained[:k] = var[:k] / var.sum()
    return coords, explained


@torch.inference_mode()
def embedding_pca(lm: LoadedModel, token_ids: np.ndarray) -> EmbeddingPCA:
    """PCA of the input-embedding rows of the distinct tokens in `token_ids`."""
    ids = np.array(list(dict.fromkeys(np.asarray(token_ids).tolist())), dtype=np.int64)
    table = lm.model.get_input_embeddings().weight
    x = table[torch.as_tensor(ids, device=table.device)].float().cpu().numpy()
    coords, explained = pca_2d(x)
    return EmbeddingPCA(ids, coords, explained)


def ov_singular_values(
    w_v: np.ndarray, w_o: np.ndarray, n_heads: int, norm_gain: np.ndarray | None = None
) -> np.ndarray:
    """Singular values of each head's OV circuit W_O,h W_V,g(h) diag(gain): (H, head_dim).

    w_v (KV * d, hidden) and w_o (hidden, H * d) in PyTorch Linear layout (out, in); query
    head h reads key/value group h // (H / KV) (grouped-query attention). The product has
    rank <= d, so with W_O,h = Q_o R_o and (W_V diag(gain))^T = Q_v R_v its singular values
    are those of the small d x d matrix R_o R_v^T.
    """
    d = w_o.shape[1] // n_heads
    n_kv = w_v.shape[0] // d
    if w_v.shape[0] != n_kv * d or n_heads % n_kv:
        raise ValueError("W_V rows must be a whole number of heads that divides the query heads")
    gain = np.ones(w_v.shape[1]) if norm_gain is None else np.asarray(norm_gain)
    out = np.zeros((n_heads, d), dtype=np.float32)
    for h in range(n_heads):
        g = h // (n_heads // n_kv)
        v = w_v[g * d : (g + 1) * d].astype(np.float64) * gain  # (d, hidden)
        o = w_o[:, h * d : (h + 1) * d].astype(np.float64)  # (hidden, d)
        r_o = np.linalg.qr(o, mode="r")
        r_v = np.linalg.qr(v.T, mode="r")
        out[h] = np.linalg.svd(r_o @ r_v.T, compute_uv=False)
    return out


def layer_ov_spectra(lm: LoadedModel, layer: int) -> np.ndarray:
    """(H, head_dim) OV singular values of every head of one Llama-style layer.

    The layer's input RMSNorm gain is folded into W_V: it scales what each head reads.
    """
    block = lm.model.base_model.layers[layer]
    attn = block.self_attn

    def arr(t: torch.Tensor) -> np.ndarray:
        return t.detach().float().cpu().numpy()

    gain = getattr(getattr(block, "input_layernorm", None), "weight", None)
    return ov_singular_values(
        arr(attn.v_proj.weight),
        arr(attn.o_proj.weight),
        lm.n_heads,
        None if gain is None else arr(gain),
    )


def has_ov_weights(lm: LoadedModel) -> bool:
    """True for Llama-style models (separate v_proj / o_proj per layer)."""
    layers = getattr(lm.model.base_model, "layers", None)
    attn = getattr(layers[0], "self_attn", None) if layers is not None else None
    return attn is not None and hasattr(attn, "v_proj") and hasattr(attn, "o_proj")


def attention_eigenvalues(matrix: np.ndarray) -> np.ndarray:
    """Eigenvalues of a square attention matrix, largest magnitude first: (T,) complex.

    A causal matrix is lower triangular, so its eigenvalues are exactly its diagonal entries
    (how much each token attends to itself); they are read off directly then, which is also
    exact and O(T) instead of an O(T^3) solve.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError("a square matrix is required")
    ev = np.diag(m).astype(complex) if not np.triu(m, 1).any() else np.linalg.eigvals(m)
    return ev[np.argsort(-np.abs(ev), kind="stable")]
