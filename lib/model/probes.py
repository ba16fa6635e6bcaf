"""Reading and changing a forward pass: the only hooks in the project.

Two probes, for every family `lib.model.anatomy` knows:

- `sublayers`: one pass that keeps the residual stream before each block, what each
  attention and MLP writes, each block's output and every head's result side by side
  (TransformerLens's resid_pre, attn_out, mlp_out, resid_post and z), at chosen
  positions, with per-token norms.
- `heads_off`: forward passes of the calling thread with some heads switched off.
- `patched`: forward passes of the calling thread (a batch) in which chosen activations,
  one per sequence of the batch, are replaced by given vectors (activation patching).

Switching a head off (zero ablation) zeroes its slice of the input to the attention's
output projection W_O: the heads' results sit side by side there, and W_O is linear, so
this removes exactly that head's contribution, in every family (grouped-query heads have
their own slices too).

Concurrency, the reason for the design of `heads_off`. The model is one object per
process, shared by every session, and Streamlit runs each session's script in its own
thread, so two sessions may run forward passes at the same moment, one of them ablating.
A hook on a shared module would also zero heads in the other session's pass. Copying the
model per call would be safe but costs its whole size each time. Instead the forward
pre-hooks act only in the thread that registered them while it is inside the `with`
block: each hook carries a token of its call and looks it up in a `threading.local`, so
every other thread's forward passes the hook untouched (it returns None: no change). The
hooks are removed in `finally`, so the model is left as it was even when the pass fails.
Registering and removing a hook is one dict update under the GIL, and torch's module call
copies the hook dict into a tuple before running hooks, so a forward running in another
thread never sees the dict change under it. (torch.compile'd or CUDA-graph-captured models
would not run Python hooks; this app runs the model eagerly.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from lib.model.anatomy import Anatomy

_active = threading.local()  # .tokens: the ablations running in this thread (innermost last)


@dataclass
class Sublayers:
    """What one pass wrote, L layers: vectors at the kept rows (S of them, the model's
    dtype, so sums are the layer's own), norms over all T tokens (float32).

    pre, attn, mlp, post   L x (S, d_model): resid_pre, attn_out, mlp_out, resid_post
    z                      L x (S, n_heads * head_dim): the input of W_O, heads side by side
    attn_norm, mlp_norm, post_norm   L x (T,)
    """

    pre: list[torch.Tensor]
    attn: list[torch.Tensor]
    mlp: list[torch.Tensor]
    post: list[torch.Tensor]
    attn_norm: list[torch.Tensor]
    mlp_norm: list[torch.Tensor]
    post_norm: list[torch.Tensor]
    z: list[torch.Tensor]


def _first(x: torch.Tensor | tuple) -> torch.Tensor:
    return x[0] if isinstance(x, tuple) else x  # attention returns (output, weights)


@torch.inference_mode()
def sublayers(
    model: torch.nn.Module, parts: Anatomy, input_ids: torch.Tensor, rows: slice
) -> Sublayers:
    """One forward pass of `input_ids` (1, T); only `rows` positions keep vectors. The
    hooks keep only this thread's pass: another session's pass through the shared model
    at the same moment goes by untouched."""
    cap = Sublayers([], [], [], [], [], [], [], [])
    mine = threading.get_ident()

    def keep(x: torch.Tensor, vectors: list, norms: list | None) -> None:
        if threading.get_ident() != mine:
            return
        x = x[0]  # (T, d)
        vectors.append(x[rows].clone())
        if norms is not None:  # in float32, so that half precision does not overflow
            norms.append(torch.linalg.vector_norm(x.float(), dim=-1))

    def on_input(module, args, kwargs) -> None:
        keep(args[0] if args else kwargs["hidden_states"], cap.pre, None)

    def on_output(vectors: list, norms: list):
        return lambda module, args, output: keep(_first(output), vectors, norms)

    def on_heads(module, args) -> None:
        keep(args[0], cap.z, None)

    handles = []
    try:
        for block, attn, mlp, proj in zip(
            parts.blocks, parts.attn, parts.mlp, parts.out_proj, strict=True
        ):
            handles += [
                block.register_forward_pre_hook(on_input, with_kwargs=True),
                attn.register_forward_hook(on_output(cap.attn, cap.attn_norm)),
                mlp.register_forward_hook(on_output(cap.mlp, cap.mlp_norm)),
                block.register_forward_hook(on_output(cap.post, cap.post_norm)),
                proj.register_forward_pre_hook(on_heads),
            ]
        model.base_model(input_ids=input_ids, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return cap


def head_mask(n_heads: int, head_dim: int, heads: Sequence[int]) -> torch.Tensor:
    """(n_heads * head_dim,) ones, with zeros over the columns of the given heads."""
    mask = torch.ones(n_heads * head_dim)
    for h in heads:
        mask[h * head_dim : (h + 1) * head_dim] = 0.0
    return mask


def _hook(token: object, mask: torch.Tensor):
    def pre_hook(module: torch.nn.Module, args: tuple):
        if token not in getattr(_active, "tokens", ()):
            return None  # another thread's forward, or a forward outside the call: untouched
        return (args[0] * mask, *args[1:])  # x * 1 is exact; x * 0 removes the head

    return pre_hook


@contextmanager
def _in_this_thread(register: Callable[[object, list], None]) -> Iterator[None]:
    """The hooks `register(token, handles)` adds act in this thread, inside the block only
    (each checks its token in `_active`); they are removed after it, whatever happens."""
    token = object()
    handles: list = []
    outer = getattr(_active, "tokens", ())
    try:
        register(token, handles)
        _active.tokens = (*outer, token)
        yield
    finally:
        _active.tokens = outer
        for handle in handles:
            handle.remove()


def heads_off(
    parts: Anatomy, by_layer: Mapping[int, Sequence[int]]
) -> AbstractContextManager[None]:
    """Inside the block, forward passes of *this thread* run with the heads of `by_layer`
    (layer -> query heads) switched off; other threads' passes are never affected, and the
    hooks are gone after the block, whatever happens inside it."""

    def register(token: object, handles: list) -> None:
        for layer, heads in by_layer.items():
            proj = parts.out_proj[layer]
            w = proj.weight
            mask = head_mask(parts.n_heads, parts.head_dim, heads).to(w.device, w.dtype)
            handles.append(proj.register_forward_pre_hook(_hook(token, mask)))

    return _in_this_thread(register)


PATCH_SITES = ("resid_pre", "attn", "mlp", "head")


@dataclass(frozen=True)
class Patch:
    """Sequence `row` of the batch gets `vector` in place of its activation at `site`,
    layer `layer`, position `position` (all positions when None), head `head` (site
    "head": that head's slice of W_O's input)."""

    row: int
    layer: int
    position: int | None
    vector: torch.Tensor
    head: int | None = None


def _patcher(token: object, site: str, patches: list[Patch], head_dim: int):
    def apply(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        for p in patches:
            where = slice(None) if p.position is None else p.position
            if site == "head":
                cols = slice(p.head * head_dim, (p.head + 1) * head_dim)
                x[p.row, where, cols] = p.vector.to(x.dtype)
            else:
                x[p.row, where] = p.vector.to(x.dtype)
        return x

    def pre_hook(module, args, kwargs):
        if token not in getattr(_active, "tokens", ()):
            return None
        if args:
            return (apply(args[0]), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": apply(kwargs["hidden_states"])}

    def post_hook(module, args, output):
        if token not in getattr(_active, "tokens", ()):
            return None
        if isinstance(output, tuple):
            return (apply(output[0]), *output[1:])
        return apply(output)

    return pre_hook, post_hook


def patched(parts: Anatomy, site: str, patches: Sequence[Patch]) -> AbstractContextManager[None]:
    """Inside the block, forward passes of *this thread* have the activations `patches`
    name replaced (site: "resid_pre" the stream entering a block, "attn" / "mlp" what they
    write, "head" one head's result before W_O); other threads' passes are untouched, as
    with `heads_off`, and the hooks are gone after the block."""
    if site not in PATCH_SITES:
        raise ValueError(f"site must be one of {PATCH_SITES}")
    by_layer: dict[int, list[Patch]] = {}
    for p in patches:
        by_layer.setdefault(p.layer, []).append(p)

    def register(token: object, handles: list) -> None:
        for layer, mine in by_layer.items():
            pre, post = _patcher(token, site, mine, parts.head_dim)
            if site in ("resid_pre", "head"):
                module = parts.blocks[layer] if site == "resid_pre" else parts.out_proj[layer]
                handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
            else:
                module = parts.attn[layer] if site == "attn" else parts.mlp[layer]
                handles.append(module.register_forward_hook(post))

    return _in_this_thread(register)


def as_numpy(xs: list[torch.Tensor]) -> np.ndarray:
    return torch.stack(xs).cpu().numpy().astype(np.float32)
