"""Inside each layer: the residual stream before attention, after attention, after the MLP.

A decoder layer adds what its attention and its MLP write to the stream x it reads:

    resid_mid  = x + attn_out                 (Llama, GPT-2: the MLP then reads resid_mid)
    resid_post = resid_mid + mlp_out          (GPT-NeoX, Phi: the MLP reads x, in parallel)

One forward pass through `lib.model.probes.sublayers` keeps those pieces, in every family
the model interface knows; each layer's sum is checked against its real output, so a
layout that adds anything else (post-norms on a sub-layer's output, as in Gemma 2) is
refused with a message, not misread. Two views use them:

- the sub-layer logit lens: the 2L + 1 residual states (embeddings, then after attention
  and after the MLP of every layer) at each step's query position, read through the
  model's final norm and unembedding, keeping only top-k and the final token's numbers;
- activation norms: the L2 size of what attention and what the MLP add to the residual
  stream, for every layer and every token (L x T numbers, nothing larger is kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lib.analysis.logit_lens import TOP_K
from lib.measures import ranks
from lib.model.anatomy import UnsupportedModel
from lib.model.loading import LoadedModel
from lib.model.probes import Sublayers, as_numpy
from lib.model.result import GenerationResult

KINDS = ("embeddings", "attention", "MLP")


@dataclass(frozen=True, eq=False)
class SublayerLens:
    """The logit lens at 2L + 1 readouts for S generation steps and L layers.

    Readout 0 is the token embeddings (the first layer's input); readout 2i + 1 is after
    layer i's attention (resid_mid), readout 2i + 2 after its MLP (resid_post, the layer's
    output). Names come from `readout_names(L, sublayers=True)`.
    top_ids        (S, 2L + 1, K) int64    the K most likely next tokens at each readout
    top_probs      (S, 2L + 1, K) float32  their probabilities
    final_ids      (S,) int64              the last readout's top-1 token (the model's own)
    final_logprob  (S, 2L + 1) float32     natural log-probability of final_ids[s] there
    final_rank     (S, 2L + 1) int64       its rank there (1 = top prediction, lib.measures)
    """

    top_ids: np.ndarray
    top_probs: np.ndarray
    final_ids: np.ndarray
    final_logprob: np.ndarray
    final_rank: np.ndarray

    def __post_init__(self) -> None:
        if self.top_ids.ndim != 3 or self.top_probs.shape != self.top_ids.shape:
            raise ValueError("top_ids and top_probs must both be (S, 2L + 1, K)")
        S, R = self.top_ids.shape[:2]
        if R < 3 or R % 2 != 1:
            raise ValueError(f"2L + 1 readouts expected (odd, at least 3), got {R}")
        for name in ("final_logprob", "final_rank"):
            if getattr(self, name).shape != (S, R):
                raise ValueError(f"{name} must be ({S}, {R})")
        if self.final_ids.shape != (S,):
            raise ValueError(f"final_ids must be ({S},)")
        _read_only(
            self.top_ids, self.top_probs, self.final_ids, self.final_logprob, self.final_rank
        )

    @property
    def n_layers(self) -> int:
        return (self.top_ids.shape[1] - 1) // 2

    @property
    def final_prob(self) -> np.ndarray:
        """(S, 2L + 1) probability of the final token at each readout."""
        return np.exp(self.final_logprob)


@dataclass(frozen=True, eq=False)
class ActivationNorms:
    """L2 norms of what each sub-layer adds to the residual stream, L layers x T tokens.

    attn   (L, T) float32  ||attention output|| = ||resid_mid - resid_pre||
    mlp    (L, T) float32  ||mlp output||       = ||resid_post - resid_mid||
    resid  (L, T) float32  ||resid_post||, the residual stream itself after each layer
    """

    attn: np.ndarray
    mlp: np.ndarray
    resid: np.ndarray

    def __post_init__(self) -> None:
        if self.attn.ndim != 2:
            raise ValueError("attn must be (L, T)")
        for name in ("mlp", "resid"):
            if getattr(self, name).shape != self.attn.shape:
                raise ValueError(f"{name} must be {self.attn.shape}")
        _read_only(self.attn, self.mlp, self.resid)


SPREAD_QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
SPREAD_PARTS = ("attn", "mlp", "resid")  # what attention writes, the MLP, the stream after
MAX_SPREAD_TOKENS = 512  # values of the last this many tokens (memory: L x 4 x S x d)


@dataclass(frozen=True, eq=False)
class ActivationSpread:
    """How the values of each sub-layer's output are distributed, layer by layer: every
    component of every vector of the last S tokens.

    quantiles  (3, L, Q) float32  for SPREAD_PARTS and SPREAD_QUANTILES
    extremes   (3, L, 2) float32  min and max
    tokens     S, the tokens counted (at most MAX_SPREAD_TOKENS, the run's last)
    """

    quantiles: np.ndarray
    extremes: np.ndarray
    tokens: int

    def __post_init__(self) -> None:
        if self.quantiles.ndim != 3 or self.quantiles.shape[0] != len(SPREAD_PARTS):
            raise ValueError(f"quantiles must be ({len(SPREAD_PARTS)}, L, Q)")
        if self.quantiles.shape[2] != len(SPREAD_QUANTILES):
            raise ValueError(f"quantiles must hold {len(SPREAD_QUANTILES)} per layer")
        if self.extremes.shape != (*self.quantiles.shape[:2], 2):
            raise ValueError("extremes must be (3, L, 2)")
        _read_only(self.quantiles, self.extremes)


def activation_spread(lm: LoadedModel, token_ids: np.ndarray) -> ActivationSpread:
    """One pass; the distribution of attention's output, the MLP's and the residual stream
    after each layer, over every component of the last MAX_SPREAD_TOKENS tokens."""
    T = len(token_ids)
    cap = _capture(lm, token_ids, slice(max(0, T - MAX_SPREAD_TOKENS), T))
    q = torch.tensor(SPREAD_QUANTILES, dtype=torch.float64)
    quantiles, extremes = [], []
    for vectors in (cap.attn, cap.mlp, cap.post):
        per_layer = [v.double().flatten() for v in vectors]
        quantiles.append(torch.stack([torch.quantile(v, q) for v in per_layer]))
        extremes.append(torch.stack([torch.stack([v.min(), v.max()]) for v in per_layer]))
    return ActivationSpread(
        torch.stack(quantiles).float().numpy(),
        torch.stack(extremes).float().numpy(),
        min(T, MAX_SPREAD_TOKENS),
    )


def _read_only(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.flags.writeable = False  # one cached copy serves every session


def readout_kinds(n_layers: int) -> list[str]:
    """The kind of each of the 2L + 1 readouts: what the last step into it was."""
    return [KINDS[0]] + [KINDS[1], KINDS[2]] * n_layers


def sublayer_steps(logprob: np.ndarray) -> np.ndarray:
    """(2L + 1,) log-probabilities along the readouts -> (L, 2) change made by each
    sub-layer: [:, 0] by layer i's attention, [:, 1] by its MLP."""
    return np.diff(np.asarray(logprob, dtype=np.float64)).reshape(-1, 2)


def supports_sublayers(lm: LoadedModel) -> bool:
    """Whether the model interface can read this model's attention and MLP apart, and its
    layers add what they write unchanged."""
    try:
        return lm.parts.plain_sums
    except UnsupportedModel:
        return False


NOT_PLAIN = (
    "{name}'s layers normalise what attention and the MLP write, before adding it (Gemma 2 "
    "and 3's post-norms) or after (a post-norm model such as the lab's), so the stream "
    "between them is not what they write."
)


def _capture(lm: LoadedModel, token_ids: np.ndarray, rows: slice) -> Sublayers:
    try:
        parts = lm.parts
    except UnsupportedModel as err:
        raise ValueError(str(err)) from None
    if not parts.plain_sums:
        raise ValueError(NOT_PLAIN.format(name=lm.name))
    return lm.sublayers(token_ids, rows)


def residual_states(cap: Sublayers) -> torch.Tensor:
    """(2L + 1, S, d): embeddings, then resid_mid and resid_post of every layer.

    Sums are the layer's own (x + attn, then + mlp); each is checked against the layer's
    real output, so a model whose layers add anything else fails loudly.
    """
    states = [cap.pre[0]]
    for i, (x, a, m, out) in enumerate(zip(cap.pre, cap.attn, cap.mlp, cap.post, strict=True)):
        mid = x + a
        post = mid + m
        if not torch.allclose(post.float(), out.float(), atol=1e-4, rtol=1e-3):
            raise ValueError(
                f"Layer {i}'s output is not its input plus what its attention and MLP "
                "write (this model changes them on the way, as Gemma 2's post-norms do), so "
                "the stream between them cannot be read."
            )
        states += [mid, out]
    return torch.stack(states)


@torch.inference_mode()
def read_states(
    lm: LoadedModel, states: torch.Tensor, top_k: int = TOP_K
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(R, S, d) residual states through the final norm and unembedding.

    Returns top_ids (S, R, K), top_probs (S, R, K), final_ids (S,), final_logprob (S, R),
    final_rank (S, R). One readout's (S, V) distribution is alive at a time.
    """
    R = states.shape[0]
    top_ids, top_probs, logprob, rank = [None] * R, [None] * R, [None] * R, [None] * R
    final_ids = None
    # From the last readout down, so the final token is known for the others.
    for r in range(R - 1, -1, -1):
        logp = torch.log_softmax(lm.read_stream(states[r]), dim=-1)  # (S, V)
        top = torch.topk(logp, top_k, dim=-1)
        top_ids[r], top_probs[r] = top.indices.cpu().numpy(), top.values.exp().cpu().numpy()
        lp = logp.cpu().numpy()
        if final_ids is None:
            final_ids = lp.argmax(axis=-1)
        logprob[r] = lp[np.arange(len(final_ids)), final_ids]
        rank[r] = ranks(lp, final_ids)  # log is monotone: the same ranks as probabilities
    return (
        np.stack(top_ids, axis=1).astype(np.int64),
        np.stack(top_probs, axis=1).astype(np.float32),
        final_ids.astype(np.int64),
        np.stack(logprob, axis=1).astype(np.float32),
        np.stack(rank, axis=1).astype(np.int64),
    )


def sublayer_lens(lm: LoadedModel, result: GenerationResult, top_k: int = TOP_K) -> SublayerLens:
    """The logit lens before and after every attention and MLP, at every step's query."""
    P, S = result.prompt_len, result.n_steps
    # Step s's query is position P - 1 + s; the last generated token is never a query.
    cap = _capture(lm, result.token_ids[: P + S - 1], slice(P - 1, P - 1 + S))
    top_ids, top_probs, final_ids, logprob, rank = read_states(lm, residual_states(cap), top_k)
    return SublayerLens(top_ids, top_probs, final_ids, logprob, rank)


def activation_norms(lm: LoadedModel, token_ids: np.ndarray) -> ActivationNorms:
    """Per layer and token, the L2 norm of what attention and the MLP write (one pass)."""
    cap = _capture(lm, token_ids, slice(0, 0))  # no vectors kept, norms only
    return ActivationNorms(as_numpy(cap.attn_norm), as_numpy(cap.mlp_norm), as_numpy(cap.post_norm))
