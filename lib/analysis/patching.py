"""Activation patching: which activations carry the difference between two prompts.

Two prompts of the same length, a clean one ("The Eiffel Tower is in the city of") and a
corrupted one ("The Colosseum is in the city of"), and a metric: the logit difference
between two answer tokens (" Paris" minus " Rome") at the last position. One activation
of the corrupted run at a time, at one layer and position (or one head at every
position), is replaced by the clean run's; how much of the clean metric comes back is the
recovered fraction:

    recovered = (patched - corrupted) / (clean - corrupted)

1 means that activation alone carries the difference, 0 that it carries none of it.
Sites, as TransformerLens names them: `resid_pre` (the stream entering a block), `attn`
and `mlp` (what they write), `head` (one head's result before W_O, at every position).
The patched passes run in batches: each sequence of a batch is the corrupted prompt with
its own single patch (`lib.model.probes.patched`), so one forward pass measures many.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lib.model.loading import LoadedModel
from lib.model.probes import PATCH_SITES, Patch, patched

PRESETS = {  # clean, corrupted, the clean answer, the corrupted answer
    "Eiffel Tower / Colosseum": (
        "The Eiffel Tower is in the city of",
        "The Colosseum is in the city of",
        " Paris",
        " Rome",
    ),
    "John and Mary": (
        "When John and Mary went to the store, John gave a drink to",
        "When John and Mary went to the store, Mary gave a drink to",
        " Mary",
        " John",
    ),
}


@dataclass(frozen=True, eq=False)
class PatchSweep:
    """One site patched everywhere: the recovered fraction of every single patch.

    recovered   (L, P) float64 for resid_pre / attn / mlp (layer x position), or (L, H)
                for head (layer x head, each patched at every position); L = the layers
                swept (`layer_ids`)
    patched     same shape: the metric in each patched run
    clean, corrupted   the metric in the two unpatched runs
    site, answer, wrong   what was patched and the two answer tokens' ids
    """

    site: str
    recovered: np.ndarray
    patched: np.ndarray
    clean: float
    corrupted: float
    answer: int
    wrong: int
    layer_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.recovered.shape != self.patched.shape or self.recovered.ndim != 2:
            raise ValueError("recovered and patched must be one (L, P) or (L, H) shape")
        if len(self.layer_ids) != self.recovered.shape[0]:
            raise ValueError("one row per layer swept")


MAX_TOKENS = 64  # each position of each layer is one patched run: 30 x 64 = 1,920 already
SMALL_SPAN = 0.1  # logits: a clean-corrupted gap this small makes the fractions mean little


class PatchError(ValueError):
    """The prompts cannot be patched into each other (a message for the user)."""


def answer_id(lm: LoadedModel, text: str) -> int:
    """The token an answer is: it must be exactly one token of the vocabulary."""
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise PatchError(f"The answer {text!r} is {len(ids)} tokens; it must be one.")
    return int(ids[0])


def encode_pair(lm: LoadedModel, clean: str, corrupted: str) -> tuple[list[int], list[int]]:
    """Both prompts' token ids, which must be of one length (position i is the same
    place in both)."""
    a = lm.tokenizer(clean)["input_ids"]
    b = lm.tokenizer(corrupted)["input_ids"]
    if len(a) != len(b):
        raise PatchError(
            f"The clean prompt is {len(a)} tokens and the corrupted one {len(b)}: patching "
            "needs the same length, so that each position means the same in both."
        )
    if not a:
        raise PatchError("The prompts are empty.")
    most = min(MAX_TOKENS, lm.context_length or MAX_TOKENS)
    if len(a) > most:
        raise PatchError(
            f"The prompts are {len(a)} tokens; patching takes at most {most} here (every "
            "position of every layer is a run of its own, within the model's context)."
        )
    if a == b:
        raise PatchError("The two prompts are the same: there is no difference to patch.")
    return [int(i) for i in a], [int(i) for i in b]


def metric(logits: torch.Tensor, answer: int, wrong: int) -> np.ndarray:
    """(B, V) last-position logits -> (B,) the logit difference answer minus wrong."""
    return (logits[:, answer] - logits[:, wrong]).double().cpu().numpy()


def patch_sweep(
    lm: LoadedModel,
    clean_ids: list[int],
    corrupted_ids: list[int],
    answer: int,
    wrong: int,
    site: str,
    batch: int = 32,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    layers: Sequence[int] | None = None,
) -> PatchSweep:
    """Patch the clean run's `site` into the corrupted run at every layer (or those in
    `layers`) and position (or head), `batch` patched runs per forward pass;
    `progress(done, total)` after each pass; `should_stop()` is asked before each (raises
    InterruptedError)."""
    if site not in PATCH_SITES:
        raise PatchError(f"site must be one of {', '.join(PATCH_SITES)}")
    if len(clean_ids) != len(corrupted_ids):
        raise PatchError("The prompts must be of one length.")
    try:
        parts = lm.parts
    except ValueError as err:  # a layout the model interface does not know
        raise PatchError(str(err)) from err
    T, L, H, d = len(clean_ids), parts.n_layers, parts.n_heads, parts.head_dim
    clean_cap = lm.sublayers(clean_ids, slice(0, T))
    source = {"resid_pre": clean_cap.pre, "attn": clean_cap.attn, "mlp": clean_cap.mlp,
              "head": clean_cap.z}[site]  # fmt: skip
    ends = lm.last_logits(torch.tensor([clean_ids, corrupted_ids]))
    clean, corrupted = metric(ends, answer, wrong)
    width = H if site == "head" else T
    swept = tuple(range(L)) if layers is None else tuple(int(x) for x in layers)
    if not swept or any(not 0 <= x < L for x in swept):
        raise PatchError(f"Layers must be among 0 to {L - 1}.")
    jobs = [(layer, j) for layer in swept for j in range(width)]
    out = np.zeros(len(jobs))
    corrupted_batch = torch.tensor([corrupted_ids])
    for start in range(0, len(jobs), batch):
        if should_stop():
            raise InterruptedError("stopped")
        chunk = jobs[start : start + batch]
        patches = []
        for row, (layer, j) in enumerate(chunk):
            if site == "head":
                vec = source[layer][:, j * d : (j + 1) * d]  # (T, d): the head at every position
                patches.append(Patch(row, layer, None, vec, head=j))
            else:
                patches.append(Patch(row, layer, j, source[layer][j]))
        with patched(parts, site, patches):
            logits = lm.last_logits(corrupted_batch.expand(len(chunk), T))
        out[start : start + len(chunk)] = metric(logits, answer, wrong)
        if progress is not None:
            progress(start + len(chunk), len(jobs))
    values = out.reshape(len(swept), width)
    span = clean - corrupted
    recovered = (values - corrupted) / span if span != 0 else np.zeros_like(values)
    return PatchSweep(site, recovered, values, float(clean), float(corrupted), answer, wrong, swept)
