"""Direct logit attribution: which parts of the model wrote a token's logit.

The residual stream at the last layer is a sum: the embedding, plus what every attention
block and every MLP wrote (each attention block in turn the sum of its heads' results
through W_O, plus W_O's bias). The final norm divides that sum by one number (its RMS, or
its standard deviation after centring) before the unembedding; held at its value in this
run (frozen), the norm is linear, so the token's logit splits exactly into one term per
part, plus a constant (the norm's and the unembedding's biases). TransformerLens's
`decompose_resid` and `logit_attrs` do the same; this is it on the model interface, for
every family whose layers add what they write unchanged.

What it says: how much each part moved this logit *directly*, given everything else as it
was. What it does not say: what the part caused through the parts after it (patching
measures that), or what it would write if the norm's scale changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lib.analysis.residual import _capture, residual_states
from lib.model.loading import LoadedModel
from lib.model.result import GenerationResult


@dataclass(frozen=True, eq=False)
class LogitAttribution:
    """The chosen token's logit at one step, split into its parts (all float64).

    embedding   the token embeddings (and position embeddings) at the query
    attn        (L,) each attention block (what it wrote: its heads' sum plus the bias)
    heads       (L, H) each head's result through W_O
    attn_bias   (L,) W_O's bias (0 where it has none)
    mlp         (L,) each MLP block
    constant    the final norm's bias and the unembedding's bias, at the token
    logit       the model's own logit for the token (models that soft-cap logits are
                refused: their layers are not plain sums)
    scale       the final norm's frozen scale (1 / RMS or 1 / std of the final stream)
    token_id, step, position   which token, at which step, read at which query position
    """

    embedding: float
    attn: np.ndarray
    heads: np.ndarray
    attn_bias: np.ndarray
    mlp: np.ndarray
    constant: float
    logit: float
    scale: float
    token_id: int
    step: int
    position: int

    def __post_init__(self) -> None:
        L = self.attn.shape[0]
        if self.mlp.shape != (L,) or self.attn_bias.shape != (L,) or self.heads.shape[0] != L:
            raise ValueError(f"attn, mlp, attn_bias must be ({L},), heads ({L}, H)")

    def parts(self) -> list[tuple[str, float, str | None, int]]:
        """The parts in the stream's order, as the waterfall draws them: (name, value, the
        patch site that removes it, layer); the biases last, with no site."""
        out: list[tuple[str, float, str | None, int]] = [
            ("embedding", self.embedding, "resid_pre", 0)  # the stream entering layer 0
        ]
        for layer in range(self.attn.shape[0]):
            out.append((f"L{layer} attention", float(self.attn[layer]), "attn", layer))
            out.append((f"L{layer} MLP", float(self.mlp[layer]), "mlp", layer))
        return [*out, ("biases", self.constant, None, 0)]

    @property
    def total(self) -> float:
        """The parts' sum: the logit, to float32's rounding."""
        return float(self.embedding + self.attn.sum() + self.mlp.sum() + self.constant)


def logit_attribution(lm: LoadedModel, result: GenerationResult, step: int) -> LogitAttribution:
    """The direct attribution of generated token `step`'s logit (one forward pass up to
    its query). Raises ValueError for a model whose layers change what they write before
    adding it (the stream is then not a sum of parts)."""
    if not 0 <= step < result.n_steps:
        raise ValueError(f"Step {step} is not in the run ({result.n_steps} steps).")
    q = result.query_position(step)
    token = int(result.token_ids[q + 1])
    cap = _capture(lm, result.token_ids[: q + 1], slice(q, q + 1))
    residual_states(cap)  # raises where a block's output is not its input plus its parts
    parts = lm.parts
    final = cap.post[-1][0].double().cpu().numpy()
    norm = parts.frozen_final_norm(final)
    w_u = lm.unembedding_matrix()[token].double().cpu().numpy()
    bias = lm.unembedding_bias()
    u_bias = 0.0 if bias is None else float(bias[token])

    def through(v) -> float:  # one part's direct effect on the logit
        return float(w_u @ norm(np.asarray(v, dtype=np.float64)))

    L, H, d = parts.n_layers, parts.n_heads, parts.head_dim
    heads = np.zeros((L, H))
    attn_bias = np.zeros(L)
    for layer in range(L):
        z = cap.z[layer][0].double().cpu().numpy()
        w_o = parts.w_o(layer).astype(np.float64)
        for h in range(H):
            cols = slice(h * d, (h + 1) * d)
            heads[layer, h] = through(w_o[:, cols] @ z[cols])
        if (b := parts.o_bias(layer)) is not None:
            attn_bias[layer] = through(b)
    with torch.inference_mode():  # (soft-capping models never get here: not plain sums)
        logit = float(lm.logits(parts.final_norm(cap.post[-1]))[0, token])
    constant = u_bias + (0.0 if norm.bias is None else float(w_u @ norm.bias))
    out = LogitAttribution(
        embedding=through(cap.pre[0][0].double().cpu().numpy()),
        attn=np.array([through(a[0].double().cpu().numpy()) for a in cap.attn]),
        heads=heads,
        attn_bias=attn_bias,
        mlp=np.array([through(m[0].double().cpu().numpy()) for m in cap.mlp]),
        constant=constant,
        logit=logit,
        scale=norm.scale,
        token_id=token,
        step=step,
        position=q,
    )
    # A final norm or logit scale this does not know would split the logit wrongly: such a
    # model gets the reason, never wrong bars.
    if abs(out.total - out.logit) > 1e-3 * max(1.0, abs(out.logit)):
        raise ValueError(
            f"{lm.name}'s parts do not add up to its logit ({out.total:.3f} against "
            f"{out.logit:.3f}): its final norm or output scaling is not one this reads."
        )
    return out


@dataclass(frozen=True)
class PartCheck:
    """The attribution's largest parts tested: each part's output set to zero at the query
    (a patch, one forward pass each), and the token's logit read again.

    names    (n,) the parts, as the waterfall names them ("embedding", "L3 attention",
             "L29 MLP")
    direct   (n,) float64 each part's bar: its direct path to the logit, the norm frozen
             (derived)
    without  (n,) float64 the token's logit in the pass without that part (measured)
    logit    the token's logit with nothing removed (measured, the same kind of pass)
    """

    names: tuple[str, ...]
    direct: np.ndarray
    without: np.ndarray
    logit: float

    def __post_init__(self) -> None:
        n = len(self.names)
        if self.direct.shape != (n,) or self.without.shape != (n,):
            raise ValueError(f"direct and without must be ({n},)")


def largest_parts(a: LogitAttribution, n: int = 3) -> list[tuple[str, float, str, int]]:
    """The n removable parts with the largest bars (by size, either sign), as `parts`."""
    removable = [p for p in a.parts() if p[2] is not None]
    return sorted(removable, key=lambda p: -abs(p[1]))[:n]  # type: ignore[return-value]


def check_parts(
    lm: LoadedModel, result: GenerationResult, a: LogitAttribution, n: int = 3
) -> PartCheck:
    """Remove each of the n largest parts of `a` at its query (its output there set to
    zero), one pass each: what the token's logit is without it. Unlike the bar, this
    counts what the later layers did with the part too."""
    from lib.model.probes import Patch, patched

    q, token = a.position, a.token_id
    ids = torch.tensor(np.asarray(result.token_ids[: q + 1], dtype=np.int64))[None]
    chosen = largest_parts(a, n)
    without = []
    for _, _, site, layer in chosen:
        with patched(lm.parts, site, [Patch(0, layer, q, torch.zeros(()))]):
            without.append(float(lm.last_logits(ids)[0, token]))
    return PartCheck(
        names=tuple(p[0] for p in chosen),
        direct=np.array([p[1] for p in chosen]),
        without=np.array(without),
        logit=float(lm.last_logits(ids)[0, token]),
    )
