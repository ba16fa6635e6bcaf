"""Head ablation: switch attention heads off and see what changes in the model's output.

Zero ablation of query head h of a layer removes exactly that head's contribution to the
residual stream: its slice of the input to the attention's output projection W_O is set
to zero (`lib.model.probes.heads_off`, where the reasons and the thread safety are set
out). With grouped-query attention (SmolLM2: 9 query heads share 3 key/value heads) each
query head still has its own slice, so one query head can be switched off alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from lib.analysis import head_roles as hr
from lib.analysis.weights import has_ov_weights
from lib.measures import rank
from lib.model.loading import LoadedModel
from lib.model.probes import heads_off
from lib.model.result import GenerationResult

Head = tuple[int, int]  # (layer, query head), both 0-based
TOP_K = 10
LN2 = float(np.log(2.0))


def check_heads(lm: LoadedModel, heads: Iterable[Head]) -> tuple[Head, ...]:
    """`heads` as a sorted tuple without repeats; a clear ValueError for anything invalid."""
    if not has_ov_weights(lm):
        raise ValueError(
            f"Head ablation needs to know where {lm.name} keeps each attention's output "
            "projection, and its layout is not one the model interface knows."
        )
    L, H = lm.n_layers, lm.n_heads
    out = set()
    for pair in heads:
        try:
            layer, head = pair
        except (TypeError, ValueError):
            raise ValueError(f"a head is a (layer, head) pair, got {pair!r}") from None
        if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in pair):
            raise ValueError(f"layer and head must be whole numbers, got {pair!r}")
        if not 0 <= layer < L:
            raise ValueError(f"layer {layer} does not exist: this model has layers 0 to {L - 1}")
        if not 0 <= head < H:
            raise ValueError(f"head {head} does not exist: each layer has heads 0 to {H - 1}")
        out.add((int(layer), int(head)))
    return tuple(sorted(out))


@contextmanager
def zero_heads(lm: LoadedModel, heads: Iterable[Head]) -> Iterator[tuple[Head, ...]]:
    """Inside the block, forward passes of *this thread* run with `heads` switched off.

    Yields the checked, sorted heads. Other threads' forward passes are never affected, and
    the hooks are gone after the block, whatever happens inside it.
    """
    checked = check_heads(lm, heads)
    by_layer: dict[int, list[int]] = {}
    for layer, head in checked:
        by_layer.setdefault(layer, []).append(head)
    with heads_off(lm.parts, by_layer):
        yield checked


# ---- the next-token distribution at one position ----------------------------------------


@dataclass(frozen=True, eq=False)
class HeadAblation:
    """The next-token distribution at one position, without and with some heads.

    K = top_k; M shown tokens: the before top-K, then the after top-K not already in it.
    heads         the (layer, head) pairs switched off, sorted
    position      the sequence position read (it predicts token position + 1)
    before_ids    (K,) int64    the plain model's K most likely next tokens, most likely first
    before_probs  (K,) float32  their probabilities
    after_ids     (K,) int64    the same with the heads switched off
    after_probs   (K,) float32
    shown_ids     (M,) int64    K <= M <= 2K
    shown_before  (M,) float32  each shown token's probability without the ablation
    shown_after   (M,) float32  and with it
    target        the token followed (the run's token at a step), or None
    target_before, target_after  its probability (NaN without a target)
    target_rank_before, target_rank_after  its 1-based rank (0 without a target)
    kl_bits       KL(before || after) over the whole vocabulary, in bits
    """

    heads: tuple[Head, ...]
    position: int
    before_ids: np.ndarray
    before_probs: np.ndarray
    after_ids: np.ndarray
    after_probs: np.ndarray
    shown_ids: np.ndarray
    shown_before: np.ndarray
    shown_after: np.ndarray
    target: int | None
    target_before: float
    target_after: float
    target_rank_before: int
    target_rank_after: int
    kl_bits: float

    def __post_init__(self) -> None:
        K = self.before_ids.shape[0]
        for name in ("before_ids", "before_probs", "after_ids", "after_probs"):
            if getattr(self, name).shape != (K,):
                raise ValueError(f"{name} must be ({K},)")
        M = self.shown_ids.shape[0]
        if self.shown_ids.ndim != 1 or not K <= M <= 2 * K:
            raise ValueError(f"shown_ids must be (M,) with {K} <= M <= {2 * K}")
        for name in ("shown_before", "shown_after"):
            if getattr(self, name).shape != (M,):
                raise ValueError(f"{name} must be ({M},)")
        if not self.kl_bits >= -1e-9:
            raise ValueError("KL divergence cannot be negative")

    @property
    def top_changed(self) -> bool:
        return int(self.before_ids[0]) != int(self.after_ids[0])


@torch.inference_mode()
def _last_log_probs(lm: LoadedModel, token_ids: np.ndarray) -> np.ndarray:
    """(V,) float64 log-probabilities of the token after the last one of `token_ids`."""
    logits = lm.forward(token_ids, last_only=True).logits[-1]
    return torch.log_softmax(logits.double(), dim=-1).cpu().numpy()


def _top(probs: np.ndarray, k: int) -> np.ndarray:
    idx = np.argpartition(-probs, k - 1)[:k]
    return idx[np.argsort(-probs[idx], kind="stable")].astype(np.int64)


def kl_bits(logp: np.ndarray, logq: np.ndarray) -> float:
    """KL(p || q) in bits from two log-probability vectors (0 * log 0 counts as 0)."""
    p = np.exp(logp)
    terms = np.where(p > 0, p * (logp - logq), 0.0)
    return max(float(terms.sum()) / LN2, 0.0)  # rounding can give -1e-17


def ablate(
    lm: LoadedModel,
    token_ids: np.ndarray,
    heads: Iterable[Head],
    position: int,
    target: int | None = None,
    top_k: int = TOP_K,
) -> HeadAblation:
    """Next-token distribution at `position` of `token_ids`, plain and with `heads` zeroed.

    Two forward passes over token_ids[: position + 1] (causal: later tokens cannot matter).
    """
    tokens = np.asarray(token_ids, dtype=np.int64)
    if tokens.ndim != 1 or not 0 <= position < tokens.shape[0]:
        raise ValueError(f"position {position} is outside the {tokens.shape[0]} tokens")
    context = tokens[: position + 1]
    checked = check_heads(lm, heads)
    before = _last_log_probs(lm, context)
    with zero_heads(lm, checked):
        after = _last_log_probs(lm, context)
    pb, pa = np.exp(before), np.exp(after)
    k = min(top_k, pb.size)
    b_ids, a_ids = _top(pb, k), _top(pa, k)
    shown = np.concatenate([b_ids, a_ids[~np.isin(a_ids, b_ids)]])
    if target is not None and not 0 <= target < pb.size:
        raise ValueError(f"target token {target} is outside the vocabulary")
    has_t = target is not None
    return HeadAblation(
        heads=checked,
        position=int(position),
        before_ids=b_ids,
        before_probs=pb[b_ids].astype(np.float32),
        after_ids=a_ids,
        after_probs=pa[a_ids].astype(np.float32),
        shown_ids=shown,
        shown_before=pb[shown].astype(np.float32),
        shown_after=pa[shown].astype(np.float32),
        target=int(target) if has_t else None,
        target_before=float(pb[target]) if has_t else float("nan"),
        target_after=float(pa[target]) if has_t else float("nan"),
        target_rank_before=rank(pb, target) if has_t else 0,
        target_rank_after=rank(pa, target) if has_t else 0,
        kl_bits=kl_bits(before, after),
    )


def ablate_step(
    lm: LoadedModel,
    result: GenerationResult,
    step: int,
    heads: Iterable[Head],
    top_k: int = TOP_K,
) -> HeadAblation:
    """The run's step `step` (0-based) replayed with `heads` off: the query position
    prompt_len - 1 + step, and the token the run wrote there as the target."""
    if not 0 <= step < result.n_steps:
        raise ValueError(f"step {step} is outside the run's steps 0 to {result.n_steps - 1}")
    return ablate(
        lm,
        result.token_ids,
        heads,
        result.query_position(step),
        target=int(result.generated_ids[step]),
        top_k=top_k,
    )


# ---- the induction probe ----------------------------------------------------------------


def repeat_means(loss: np.ndarray, prefix_len: int, n: int) -> tuple[float, float]:
    """Mean loss predicting r[1:] in the first and the second repeat of prefix + r + r.

    The same slices as HeadRoles.repeat_losses (the tests check they agree).
    """
    p = prefix_len
    return float(loss[p : p + n - 1].mean()), float(loss[p + n : p + 2 * n - 1].mean())


@dataclass(frozen=True, eq=False)
class ProbeAblation:
    """Next-token loss on the induction probe (BOS) + r + r, without and with some heads.

    tokens       (T,) int64    the probe (lib.analysis.head_roles.probe_tokens)
    loss_before  (T - 1,) float32  loss in nats, position i predicting token i + 1
    loss_after   (T - 1,) float32  the same with `heads` switched off
    """

    heads: tuple[Head, ...]
    tokens: np.ndarray
    loss_before: np.ndarray
    loss_after: np.ndarray
    n_random: int
    prefix_len: int

    def __post_init__(self) -> None:
        T = self.tokens.shape[0]
        if self.tokens.ndim != 1 or self.prefix_len + 2 * self.n_random != T:
            raise ValueError("tokens must be (T,): prefix + two repeats")
        for name in ("loss_before", "loss_after"):
            if getattr(self, name).shape != (T - 1,):
                raise ValueError(f"{name} must be ({T - 1},)")

    def losses(self, ablated: bool) -> tuple[float, float]:
        """(first repeat, second repeat) mean loss, plain or ablated."""
        loss = self.loss_after if ablated else self.loss_before
        return repeat_means(loss, self.prefix_len, self.n_random)


@torch.inference_mode()
def _sequence_loss(lm: LoadedModel, tokens: np.ndarray) -> np.ndarray:
    """(T - 1,) float32 next-token loss in nats."""
    logp = torch.log_softmax(lm.forward(tokens).logits[:-1], -1)
    nxt = torch.as_tensor(np.asarray(tokens[1:], dtype=np.int64), device=logp.device)
    return (-logp.gather(1, nxt[:, None])[:, 0]).cpu().numpy().astype(np.float32)


def probe_ablation(
    lm: LoadedModel,
    heads: Iterable[Head],
    n: int = 50,
    seed: int = 0,
    before: np.ndarray | None = None,
) -> ProbeAblation:
    """The Head roles induction probe run plain and with `heads` off.

    `before`: the plain model's loss on the same probe when already known (`HeadRoles.loss`
    of `induction_probe(lm, n, seed)`, the same forward pass), which saves one pass.
    """
    checked = check_heads(lm, heads)
    tokens, prefix_len = hr.probe_tokens(lm, n, seed)
    if before is None:
        before = _sequence_loss(lm, tokens)
    elif before.shape != (tokens.shape[0] - 1,):
        raise ValueError("`before` is not a loss over this probe")
    with zero_heads(lm, checked):
        after = _sequence_loss(lm, tokens)
    return ProbeAblation(
        checked, tokens, before, after, (len(tokens) - prefix_len) // 2, prefix_len
    )
