"""Weight views for a real model: embedding PCA with clusters, OV-circuit spectra,
and each head's OV-circuit eigenvalues (copying heads, Elhage et al. 2021)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lib.model.anatomy import UnsupportedModel
from lib.model.loading import LoadedModel


@dataclass(frozen=True, eq=False)
class EmbeddingPCA:
    """The embedding space on its first two principal axes (fitted on a sample of the
    vocabulary), with the run's distinct tokens placed in it.

    token_ids  (N,) int64     the run's distinct ids, in order of first appearance
    coords     (N, 2) float32 their coordinates on principal components 1 and 2
    explained  (2,) float32   share of the sample's variance each axis explains
    clusters   (N,) int64     k-means cluster of each run token, on the full embeddings
                              (0..k-1, numbered in order of first appearance)
    vocab_ids  (M,) int64     the vocabulary sample the axes were fitted on
    vocab_coords (M, 2) float32  the sample on the same axes
    """

    token_ids: np.ndarray
    coords: np.ndarray
    explained: np.ndarray
    clusters: np.ndarray
    vocab_ids: np.ndarray
    vocab_coords: np.ndarray

    def __post_init__(self) -> None:
        N = self.token_ids.shape[0]
        if self.coords.shape != (N, 2) or self.explained.shape != (2,):
            raise ValueError(f"coords must be ({N}, 2) and explained (2,)")
        if self.clusters.shape != (N,):
            raise ValueError(f"clusters must be ({N},)")
        if self.vocab_coords.shape != (self.vocab_ids.shape[0], 2):
            raise ValueError("vocab_coords must be (M, 2)")

    @property
    def n_clusters(self) -> int:
        return int(self.clusters.max()) + 1 if len(self.clusters) else 0


def pca_2d(x: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows of x (N, d) on their first two principal axes, each axis's variance share,
    then the rows of each of `others` projected on the same axes (centred by x's mean)."""
    mean = x.mean(axis=0)
    centred = x - mean
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(2, len(s))
    coords = np.zeros((x.shape[0], 2), dtype=np.float32)
    coords[:, :k] = u[:, :k] * s[:k]
    var = s**2
    explained = np.zeros(2, dtype=np.float32)
    if var.sum() > 0:
        explained[:k] = var[:k] / var.sum()
    placed = []
    for y in others:
        p = np.zeros((y.shape[0], 2), dtype=np.float32)
        p[:, :k] = (y - mean) @ vt[:k].T
        placed.append(p)
    return (coords, explained, *placed)


VOCAB_SAMPLE = 3000  # the embedding space's backdrop: the commonest pieces (see below)


def vocabulary_sample(tokenizer, vocab_size: int, n: int = VOCAB_SAMPLE) -> np.ndarray:
    """The first `n` ordinary tokens of the vocabulary (special tokens left out). Byte-level
    BPE numbers its tokens in the order it learned them, commonest merges first, so these
    are its most common pieces (bytes, frequent words and word starts)."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids = [i for i in range(vocab_size) if i not in special][:n]
    return np.asarray(ids, dtype=np.int64)


MAX_CLUSTERS = 5  # few enough colours to tell apart
CLUSTER_SEED = 0


def kmeans_clusters(x: np.ndarray, k: int, seed: int = CLUSTER_SEED) -> np.ndarray:
    """k-means labels of the rows of x (N, d): (N,) int64, renumbered in order of first
    appearance so that the same tokens keep the same colours from run to run."""
    n = x.shape[0]
    k = min(k, n)
    if k <= 1:
        return np.zeros(n, dtype=np.int64)
    from sklearn.cluster import KMeans  # imported on use: scikit-learn is slow to import

    raw = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x.astype(np.float64))
    first = {c: i for i, c in enumerate(dict.fromkeys(raw.tolist()))}
    return np.array([first[c] for c in raw.tolist()], dtype=np.int64)


@torch.inference_mode()
def embedding_pca(lm: LoadedModel, token_ids: np.ndarray) -> EmbeddingPCA:
    """The embedding space's two main axes, fitted on a vocabulary sample
    (`vocabulary_sample`), with the distinct tokens of `token_ids` placed on them, and
    their k-means clusters (k = min(MAX_CLUSTERS, N)) in the full embedding space."""
    ids = np.array(list(dict.fromkeys(np.asarray(token_ids).tolist())), dtype=np.int64)
    table = lm.embedding_matrix()
    vocab = vocabulary_sample(lm.tokenizer, int(table.shape[0]))

    def rows(which: np.ndarray) -> np.ndarray:
        return table[torch.as_tensor(which, device=table.device)].float().cpu().numpy()

    x = rows(ids)
    vocab_coords, explained, coords = pca_2d(rows(vocab), x)
    clusters = kmeans_clusters(x, MAX_CLUSTERS)
    return EmbeddingPCA(ids, coords, explained, clusters, vocab, vocab_coords)


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
    """(H, head_dim) OV singular values of every head of one layer.

    The layer's input norm gain is folded into W_V: it scales what each head reads.
    """
    parts = lm.parts
    return ov_singular_values(
        parts.w_v(layer), parts.w_o(layer), parts.n_heads, parts.ln1_gain(layer)
    )


def has_ov_weights(lm: LoadedModel) -> bool:
    """Whether the model interface knows where this model keeps W_V and W_O."""
    try:
        return lm.parts is not None
    except UnsupportedModel:
        return False


# ---- copying heads: eigenvalues of each head's full OV circuit (Elhage et al. 2021) ----


@dataclass(frozen=True, eq=False)
class OVCopying:
    """Each head's token-to-token OV circuit, summarised by its eigenvalues.

    The circuit (V x V) maps a one-hot source token to the logits the head adds for it:
    U diag(g_final) W_O,h W_V,g diag(g_in) E^T. Its non-zero eigenvalues are those of the
    d_head x d_head product W_V,g diag(g_in) E^T U diag(g_final) W_O,h.

    eigenvalues (L, H, d_head) complex64  per head, largest magnitude first
    score       (L, H) float32            sum(eigenvalues) / sum(|eigenvalues|), in [-1, 1]:
                                          +1 a positive (copying) map, -1 an anti-copying one
    """

    eigenvalues: np.ndarray
    score: np.ndarray

    def __post_init__(self) -> None:
        if self.eigenvalues.ndim != 3 or self.eigenvalues.dtype != np.complex64:
            raise ValueError("eigenvalues must be (L, H, d_head) complex64")
        if self.score.shape != self.eigenvalues.shape[:2] or self.score.dtype != np.float32:
            raise ValueError(f"score must be {self.eigenvalues.shape[:2]} float32")

    @property
    def n_layers(self) -> int:
        return int(self.score.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.score.shape[1])

    def strongest(self, n: int = 5) -> list[tuple[int, int, float]]:
        """The n heads with the highest copying score: (layer, head, score)."""
        flat = np.argsort(-self.score.ravel(), kind="stable")[:n]
        return [(*divmod(int(i), self.n_heads), float(self.score.ravel()[i])) for i in flat]


def embedding_product(
    embed: np.ndarray, unembed: np.ndarray, final_gain: np.ndarray | None = None, chunk: int = 8192
) -> np.ndarray:
    """E^T U diag(g_final): (d_model, d_model) float64, from E and U (V, d_model).

    Summed over the vocabulary in chunks (each in the weights' own precision, the running
    sum in float64), so no V x V matrix and no float64 copy of E is ever held; for a tied
    model pass the same array twice.
    """
    if embed.shape != unembed.shape:
        raise ValueError("embedding and unembedding must both be (V, d_model)")
    d = embed.shape[1]
    out = np.zeros((d, d), dtype=np.float64)
    for i in range(0, embed.shape[0], chunk):
        out += embed[i : i + chunk].T @ unembed[i : i + chunk]
    return out if final_gain is None else out * np.asarray(final_gain, dtype=np.float64)


def head_ov_eigenvalues(
    w_v: np.ndarray,
    w_o: np.ndarray,
    n_heads: int,
    eu: np.ndarray,
    norm_gain: np.ndarray | None = None,
) -> np.ndarray:
    """Eigenvalues of every head's token-space OV circuit in one layer: (H, d) complex128.

    w_v (KV * d, d_model) and w_o (d_model, H * d) in PyTorch Linear layout (out, in); query
    head h reads key/value group h // (H / KV). `eu` is embedding_product(...). Computed as
    eig(W_V,g diag(gain) eu W_O,h): eig(A B) and eig(B A) share their non-zero values, so
    the d x d product stands in for the V x V circuit. Largest magnitude first.
    """
    d = w_o.shape[1] // n_heads
    n_kv = w_v.shape[0] // d
    if w_v.shape[0] != n_kv * d or n_heads % n_kv or eu.shape != (w_v.shape[1],) * 2:
        raise ValueError("W_V, W_O and E^T U do not fit together as grouped-query heads")
    gain = np.ones(w_v.shape[1]) if norm_gain is None else np.asarray(norm_gain, np.float64)
    # Every (group, head) block in one product: a few large BLAS calls beat many tiny ones.
    blocks = ((w_v.astype(np.float64) * gain) @ eu) @ w_o.astype(np.float64)  # (KV*d, H*d)
    groups = np.arange(n_heads) // (n_heads // n_kv)
    small = np.stack(
        [blocks[g * d : (g + 1) * d, h * d : (h + 1) * d] for h, g in enumerate(groups)]
    )
    ev = np.linalg.eigvals(small)  # (H, d)
    return np.take_along_axis(ev, np.argsort(-np.abs(ev), axis=1, kind="stable"), axis=1)


def copying_score(eigenvalues: np.ndarray) -> np.ndarray:
    """sum(lambda) / sum(|lambda|) over the last axis (real part; 0 for an all-zero map).

    A real matrix's eigenvalues come in conjugate pairs, so the sum is real: the trace.
    """
    ev = np.asarray(eigenvalues)
    total = np.abs(ev).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, ev.real.sum(axis=-1) / total, 0.0)


def _arr(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


@torch.inference_mode()
def ov_copying(lm: LoadedModel) -> OVCopying:
    """Every head's OV-circuit eigenvalues and copying score, from the weights alone.

    Direct path only: embedding -> one head -> unembedding, with the layer's input RMSNorm
    gain and the final norm's gain folded in; the norms' data-dependent 1/rms scale (a
    positive number per token) is left out, as are the MLPs and every other layer.
    """
    parts = lm.parts
    embed, unembed = _arr(lm.embedding_matrix()), _arr(lm.unembedding_matrix())
    eu = embedding_product(embed, unembed, parts.final_gain())
    layers = [
        head_ov_eigenvalues(parts.w_v(i), parts.w_o(i), parts.n_heads, eu, parts.ln1_gain(i))
        for i in range(parts.n_layers)
    ]
    ev = np.stack(layers)
    return OVCopying(ev.astype(np.complex64), copying_score(ev).astype(np.float32))
