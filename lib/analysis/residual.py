"""Inside each layer: the residual stream before attention, after attention, after the MLP.

A Llama decoder layer (transformers' `LlamaDecoderLayer.forward`) does, for input x:

    resid_mid  = x + self_attn(input_layernorm(x))
    resid_post = resid_mid + mlp(post_attention_layernorm(resid_mid))

Forward hooks on each layer's input, `self_attn` and `mlp` outputs, and the layer's output
capture those pieces in one forward pass. Two views use them:

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

from lib.analysis.logit_lens import TOP_K, final_norm
from lib.measures import ranks
from lib.model.loading import LoadedModel
from lib.model.result import GenerationResult

KINDS = ("embeddings", "attention", "MLP")
# Residual parts a Llama-style layer has; the others change the sums above (Gemma's norms
# on sub-layer outputs, OLMo-2's post-norms), so those models are refused, not misread.
_NEEDED = ("input_layernorm", "post_attention_layernorm", "self_attn", "mlp")
_UNEXPECTED = ("pre_feedforward_layernorm", "post_feedforward_layernorm")


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

    attn   (L, T) float32  ||self_attn output|| = ||resid_mid - resid_pre||
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
    """Whether the model's layers have the Llama residual layout this module reads."""
    layers = getattr(lm.model.base_model, "layers", None)
    if layers is None or len(layers) == 0:
        return False
    return all(hasattr(layers[0], n) for n in _NEEDED) and not any(
        hasattr(layers[0], n) for n in _UNEXPECTED
    )


@dataclass
class _Capture:
    """What the hooks keep: states at the kept rows, and per-token norms over all tokens."""

    pre: list[torch.Tensor]  # L x (S, d): each layer's input at `rows`
    attn: list[torch.Tensor]  # L x (S, d): self_attn output
    mlp: list[torch.Tensor]  # L x (S, d): mlp output
    post: list[torch.Tensor]  # L x (S, d): the layer's output
    attn_norm: list[torch.Tensor]  # L x (T,)
    mlp_norm: list[torch.Tensor]  # L x (T,)
    post_norm: list[torch.Tensor]  # L x (T,)


def _first(x: torch.Tensor | tuple) -> torch.Tensor:
    return x[0] if isinstance(x, tuple) else x  # self_attn returns (output, weights)


def _capture(lm: LoadedModel, token_ids: np.ndarray, rows: slice) -> _Capture:
    """One forward pass over `token_ids` with hooks; only `rows` positions keep vectors."""
    if not supports_sublayers(lm):
        raise ValueError(
            f"{lm.name}'s layers are not laid out like Llama's (input norm, attention, "
            "post-attention norm, MLP), so attention and MLP outputs cannot be read apart."
        )
    cap = _Capture([], [], [], [], [], [], [])

    def keep(x: torch.Tensor, vectors: list, norms: list | None) -> None:
        x = x[0]  # (T, d)
        vectors.append(x[rows].clone())  # the model's dtype: sums below are the layer's own
        if norms is not None:  # in float32, so that half precision does not overflow
            norms.append(torch.linalg.vector_norm(x.float(), dim=-1))

    def on_input(module, args, kwargs) -> None:
        keep(args[0] if args else kwargs["hidden_states"], cap.pre, None)

    def on_output(vectors: list, norms: list):
        return lambda module, args, output: keep(_first(output), vectors, norms)

    handles = []
    try:
        for layer in lm.model.base_model.layers:
            handles += [
                layer.register_forward_pre_hook(on_input, with_kwargs=True),
                layer.self_attn.register_forward_hook(on_output(cap.attn, cap.attn_norm)),
                layer.mlp.register_forward_hook(on_output(cap.mlp, cap.mlp_norm)),
                layer.register_forward_hook(on_output(cap.post, cap.post_norm)),
            ]
        with torch.inference_mode():
            lm.model.base_model(input_ids=lm.batch(token_ids), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return cap


def residual_states(cap: _Capture) -> torch.Tensor:
    """(2L + 1, S, d): embeddings, then resid_mid and resid_post of every layer.

    Sums are the layer's own (x + attn, then + mlp); each is checked against the layer's
    real output, so a model whose layers add anything else fails loudly.
    """
    states = [cap.pre[0]]
    for i, (x, a, m, out) in enumerate(zip(cap.pre, cap.attn, cap.mlp, cap.post, strict=True)):
        mid = x + a
        post = mid + m
        if not torch.allclose(post.float(), out.float(), atol=1e-4, rtol=1e-3):
            raise ValueError(f"layer {i}'s output is not input + attention + MLP")
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
    norm = final_norm(lm.model)
    unembed = lm.model.get_output_embeddings()
    R = states.shape[0]
    top_ids, top_probs, logprob, rank = [None] * R, [None] * R, [None] * R, [None] * R
    final_ids = None
    # From the last readout down, so the final token is known for the others.
    for r in range(R - 1, -1, -1):
        logp = torch.log_softmax(unembed(norm(states[r])).float(), dim=-1)  # (S, V)
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

    def stack(xs: list[torch.Tensor]) -> np.ndarray:
        return torch.stack(xs).cpu().numpy().astype(np.float32)

    return ActivationNorms(stack(cap.attn_norm), stack(cap.mlp_norm), stack(cap.post_norm))
