"""Where a transformer keeps the parts the lessons read: the one place that knows module paths.

Every lesson reads a model through these names, after TransformerLens's hook points:

    blocks[i]       the decoder layers, in order
    attn[i]         block i's attention: its output is what attention writes (hook_attn_out)
    mlp[i]          block i's MLP: its output is what the MLP writes (hook_mlp_out)
    out_proj[i]     attention's output projection W_O: its input is every head's result side
                    by side (hook_z), which is where a head is switched off
    ln1[i]          the norm before attention, whose gain scales what W_V reads
    final_norm      the norm before the unembedding (ln_final)
    parallel        attention and the MLP read the same input (GPT-NeoX, Phi): the stream
                    "after attention" is then input + attention, a sum the model never forms
                    but the lens can read
    plain_sums      each block adds what attention and the MLP write as they are (Gemma 2
                    and OLMo 2 normalise them first, the lab's post-norm model after the
                    sum: the stream between them is not theirs)

Four layouts cover the families the app offers: Llama's (Llama, Mistral, Qwen2/3, Gemma,
SmolLM), GPT-2's (fused query/key/value in a Conv1D), GPT-NeoX's (fused, interleaved per
head, parallel) and Phi's (separate projections, parallel). Weights come out in PyTorch's
Linear layout (out, in) whatever the family stores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

LAYOUT_NAMES = {
    "llama": "Llama's (as Llama, Mistral, Qwen, Gemma, SmolLM)",
    "gpt2": "GPT-2's",
    "neox": "GPT-NeoX's (as Pythia)",
    "phi": "Phi's",
}


def support_note(model: torch.nn.Module) -> str:
    """Which lessons a model's layout allows, in a sentence for the model picker."""
    try:
        parts = anatomy(model)
    except UnsupportedModel:
        return (
            "Its layers are laid out unlike any family this app knows, so the views inside a "
            "layer (before and after attention, activation sizes, what each head can write, "
            "copying heads, ablation) are not available; every other lesson is."
        )
    note = f"Layout: {LAYOUT_NAMES[parts.layout]}. Every lesson works with it"
    if not parts.plain_sums:
        note += (
            ", except before and after attention and the activation sizes (its layers "
            "normalise what attention and the MLP write, before or after adding it)"
        )
    return note + "."


class UnsupportedModel(ValueError):
    """The model's layers are laid out in a way this module does not know (a message)."""


def _first(obj: object, names: Sequence[str]) -> torch.nn.Module | None:
    for name in names:
        found = getattr(obj, name, None)
        if isinstance(found, torch.nn.Module):
            return found
    return None


def _arr(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


@dataclass(frozen=True, eq=False)
class Anatomy:
    """One model's parts (see the module docstring); `layout` names the family's layout."""

    layout: str  # "llama", "gpt2", "neox" or "phi"
    blocks: tuple[torch.nn.Module, ...]
    attn: tuple[torch.nn.Module, ...]
    mlp: tuple[torch.nn.Module, ...]
    out_proj: tuple[torch.nn.Module, ...]
    ln1: tuple[torch.nn.Module | None, ...]
    final_norm: torch.nn.Module
    parallel: bool
    plain_sums: bool
    n_heads: int
    n_kv_heads: int
    head_dim: int

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    # -- weights, in Linear layout (out, in) -------------------------------------------

    def w_v(self, layer: int) -> np.ndarray:
        """(n_kv_heads * head_dim, d_model): the value projection, heads stacked."""
        attn, d = self.attn[layer], self.head_dim
        if self.layout in ("llama", "phi"):
            return _arr(attn.v_proj.weight)
        if self.layout == "gpt2":  # Conv1D (in, 3 * d_model): q, k, v side by side
            width = attn.c_attn.weight.shape[1] // 3
            return _arr(attn.c_attn.weight[:, 2 * width :]).T
        w = attn.query_key_value.weight  # (H * 3 * d, d_model): per head q, k, v in turn
        return _arr(w.view(self.n_heads, 3, d, -1)[:, 2].reshape(self.n_heads * d, -1))

    def w_o(self, layer: int) -> np.ndarray:
        """(d_model, n_heads * head_dim): the output projection, heads side by side."""
        w = self.out_proj[layer].weight
        return _arr(w).T if self.layout == "gpt2" else _arr(w)  # Conv1D stores (in, out)

    def ln1_gain(self, layer: int) -> np.ndarray | None:
        return _gain(self.ln1[layer])

    def final_gain(self) -> np.ndarray | None:
        return _gain(self.final_norm)

    def o_bias(self, layer: int) -> np.ndarray | None:
        """(d_model,) what W_O adds whatever the heads write, or None."""
        b = getattr(self.out_proj[layer], "bias", None)
        return None if b is None else _arr(b)

    def frozen_final_norm(self, x: np.ndarray) -> FrozenNorm:
        """The final norm as the linear map it is for this one stream state `x` (d,): its
        scale (1 / RMS, or 1 / std after centring for a LayerNorm) held at its value here."""
        norm = self.final_norm
        x = np.asarray(x, dtype=np.float64)
        if isinstance(norm, torch.nn.Identity):  # a model without a final norm (the lab's)
            return FrozenNorm(np.ones_like(x), None, False, 1.0)
        name = type(norm).__name__
        center = isinstance(norm, torch.nn.LayerNorm) or ("LayerNorm" in name and "RMS" not in name)
        eps = getattr(norm, "variance_epsilon", None) or getattr(norm, "eps", None)
        eps = float(eps if eps is not None else (1e-5 if center else 1e-6))
        v = x - x.mean() if center else x
        gain = _gain(norm)
        bias = getattr(norm, "bias", None)
        return FrozenNorm(
            gain=np.ones_like(x) if gain is None else gain.astype(np.float64),
            bias=None if bias is None else _arr(bias).astype(np.float64),
            center=center,
            scale=float(1.0 / np.sqrt((v * v).mean() + eps)),
        )


@dataclass(frozen=True, eq=False)
class FrozenNorm:
    """A norm with its scale held: y = gain * (x - mean(x) if center else x) * scale + bias.

    gain, bias   (d_model,) float64 (bias None where the norm has none)
    """

    gain: np.ndarray
    bias: np.ndarray | None
    center: bool
    scale: float

    def __call__(self, v: np.ndarray) -> np.ndarray:
        """What the norm makes of one part `v` (d,) of the stream, bias left out: linear,
        so the parts' images add up to the whole stream's (without its bias)."""
        v = np.asarray(v, dtype=np.float64)
        return self.gain * (v - v.mean() if self.center else v) * self.scale


def final_norm(model: torch.nn.Module) -> torch.nn.Module:
    """The norm before the unembedding, found by name in any family (the logit lens needs
    only this, so it works on layouts `anatomy` does not know)."""
    found = _first(model.base_model, ("norm", "ln_f", "final_layernorm", "final_layer_norm"))
    if found is None:
        raise UnsupportedModel(f"{type(model).__name__} has no final norm where families keep it.")
    return found


def _gain(norm: torch.nn.Module | None) -> np.ndarray | None:
    """What a norm multiplies by: its weight, or 1 + weight for Gemma's RMSNorm (whose
    weight starts at zero)."""
    w = getattr(norm, "weight", None)
    if w is None:
        return None
    return _arr(w) + 1.0 if "Gemma" in type(norm).__name__ else _arr(w)


def anatomy(model: torch.nn.Module) -> Anatomy:
    """The parts of a Hugging Face causal LM, found by the layout its modules have."""
    base = model.base_model
    blocks = _first(base, ("layers", "h"))
    final = _first(base, ("norm", "ln_f", "final_layernorm", "final_layer_norm"))
    if blocks is None or final is None or len(blocks) == 0:
        raise UnsupportedModel(
            f"{type(model).__name__} has no decoder layers or final norm where the known "
            "families keep them."
        )
    first = blocks[0]
    attn0 = _first(first, ("self_attn", "attn", "attention"))
    layouts = {
        "llama": ("v_proj", "o_proj"),
        "phi": ("v_proj", "dense"),
        "gpt2": ("c_attn", "c_proj"),
        "neox": ("query_key_value", "dense"),
    }
    layout = next(
        (k for k, names in layouts.items() if all(hasattr(attn0, n) for n in names)), None
    )
    if layout == "gpt2" and type(attn0.c_attn).__name__ != "Conv1D":
        layout = None  # GPTBigCode: the same names, Linear weights and shared keys/values
    if attn0 is None or layout is None or not hasattr(first, "mlp"):
        raise UnsupportedModel(
            f"{type(model).__name__}'s layers are laid out unlike Llama's, GPT-2's, "
            "GPT-NeoX's or Phi's, so its attention and MLP cannot be read apart."
        )
    attn = tuple(_first(b, ("self_attn", "attn", "attention")) for b in blocks)
    out_name = layouts[layout][1]
    config = model.config
    n_heads = int(config.num_attention_heads)
    d_model = int(config.hidden_size)
    head_dim = int(getattr(config, "head_dim", None) or d_model // n_heads)
    n_kv = int(getattr(config, "num_key_value_heads", None) or n_heads)
    parallel = layout == "phi" or (
        layout == "neox" and bool(getattr(config, "use_parallel_residual", True))
    )
    # The training lab's model (lib/train/as_lm.py) normalises after each sum, not before
    # each sub-layer: no norm scales what attention reads, and the sums are not plain.
    post_norm = bool(getattr(config, "post_norm", False))
    return Anatomy(
        layout=layout,
        blocks=tuple(blocks),
        attn=attn,
        mlp=tuple(b.mlp for b in blocks),
        out_proj=tuple(getattr(a, out_name) for a in attn),
        ln1=tuple(None if post_norm else _first(b, ("input_layernorm", "ln_1")) for b in blocks),
        final_norm=final,
        parallel=parallel,
        plain_sums=not post_norm
        and not any(
            hasattr(first, n) for n in ("pre_feedforward_layernorm", "post_feedforward_layernorm")
        ),
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=head_dim,
    )
