"""The result of one generation run: tokens, labels, and the captured attention rows.

A result is immutable: its arrays are made read-only on construction, so one copy can be
shared by every session and view that shows it.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class SamplingSettings:
    """How the next token is chosen. Greedy unless `do_sample`; 0 / 1.0 switch a filter off."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError("temperature must be > 0")
        if self.top_k < 0 or not 0 < self.top_p <= 1 or not 0 <= self.min_p < 1:
            raise ValueError("top_k >= 0, 0 < top_p <= 1 and 0 <= min_p < 1 are required")

    def describe(self) -> str:
        if not self.do_sample:
            return "greedy (always the most likely token)"
        parts = [f"temperature {self.temperature:g}"]
        if self.top_k:
            parts.append(f"top-k {self.top_k}")
        if self.top_p < 1:
            parts.append(f"top-p {self.top_p:g}")
        if self.min_p > 0:
            parts.append(f"min-p {self.min_p:g}")
        return "sampling: " + ", ".join(parts) + f", seed {self.seed}"


@dataclass(frozen=True)
class RunSettings:
    """How a run was made, besides its model and prompt."""

    max_new_tokens: int
    chat_template: bool = False
    sampling: SamplingSettings = SamplingSettings()
    forced_tokens: tuple[int, ...] = ()  # first choices fixed ("next token", "what if")

    def to_dict(self) -> dict:
        return asdict(self) | {"description": self.sampling.describe()}

    @classmethod
    def from_dict(cls, d: dict) -> RunSettings:
        """The settings `to_dict` wrote (the atlas stores them), checked as on construction."""
        keys = ("do_sample", "temperature", "top_k", "top_p", "min_p", "seed")
        sampling = d.get("sampling") or {}
        return cls(
            max_new_tokens=int(d["max_new_tokens"]),
            chat_template=bool(d.get("chat_template", False)),
            sampling=SamplingSettings(**{k: sampling[k] for k in keys if k in sampling}),
            forced_tokens=tuple(int(t) for t in d.get("forced_tokens", ())),
        )


@dataclass(frozen=True, eq=False)
class GenerationResult:
    """Everything the views need from one run, as CPU numpy arrays.

    T = prompt_len + n_steps tokens; L layers, H query heads; K top candidates per step.

    token_ids    (T,) int64     prompt ids then generated ids
    labels       T strings      `texts`, with a generated end-of-sequence shown as [EOS]
    texts        T strings      each token under lib.labels' one rule (whitespace as · ↵ →,
                                invisible characters named, split characters in hex)
    attention    (n_steps, L, H, T - 1) float32: row s is the attention of the query that
                 produced generated token s, i.e. position prompt_len - 1 + s, over keys
                 [0, prompt_len + s); keys past that are zero. Raw softmax weights.
    top_ids      (n_steps, K) int64    the model's most likely next tokens at each step
    top_probs    (n_steps, K) float32  their probabilities (temperature 1, unfiltered)
    chosen_prob  (n_steps,) float32    probability of the token actually chosen
    entropy      (n_steps,) float32    entropy of the next-token distribution, in bits

    `bos_offset` is 1 when the tokenizer added a BOS token (hidden from the views), else 0.
    `model_spec` is the model's identity (what `load_model` was given); `model_name` is for
    display only.
    """

    model_spec: str
    model_name: str
    prompt: str
    token_ids: np.ndarray
    labels: tuple[str, ...]
    texts: tuple[str, ...]
    prompt_len: int
    bos_offset: int
    attention: np.ndarray
    top_ids: np.ndarray
    top_probs: np.ndarray
    chosen_prob: np.ndarray
    entropy: np.ndarray
    stop_reason: str  # "eos" or "max_tokens"
    settings: RunSettings
    generated_text: str = ""  # decoded by the run's own tokenizer (special tokens left out)

    def __post_init__(self) -> None:
        T, n = self.token_ids.shape[0], self.n_steps
        checks = {
            "token_ids": (self.token_ids.ndim == 1 and n >= 1, "(T,) with at least one step"),
            "labels": (len(self.labels) == T, f"{T} labels"),
            "texts": (len(self.texts) == T, f"{T} texts"),
            "prompt_len": (1 <= self.prompt_len < T, f"1 <= prompt_len < {T}"),
            "bos_offset": (self.bos_offset in (0, 1) and self.bos_offset < self.prompt_len, "0/1"),
            "attention": (
                self.attention.ndim == 4
                and self.attention.shape[0] == n
                and self.attention.shape[3] == T - 1
                and self.attention.dtype == np.float32,
                f"({n}, L, H, {T - 1}) float32",
            ),
            "top_ids": (self.top_ids.ndim == 2 and self.top_ids.shape[0] == n, f"({n}, K)"),
            "top_probs": (self.top_probs.shape == self.top_ids.shape, "same as top_ids"),
            "chosen_prob": (self.chosen_prob.shape == (n,), f"({n},)"),
            "entropy": (self.entropy.shape == (n,), f"({n},)"),
            "stop_reason": (self.stop_reason in ("eos", "max_tokens"), "eos or max_tokens"),
        }
        bad = [f"{k}: expected {want}" for k, (ok, want) in checks.items() if not ok]
        if bad:
            raise ValueError("invalid GenerationResult: " + "; ".join(bad))
        for a in self.arrays():
            a.flags.writeable = False  # shared by every session: nobody may change it

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (
            self.token_ids,
            self.attention,
            self.top_ids,
            self.top_probs,
            self.chosen_prob,
            self.entropy,
        )

    @property
    def n_steps(self) -> int:
        return self.token_ids.shape[0] - self.prompt_len

    @property
    def n_layers(self) -> int:
        return self.attention.shape[1]

    @property
    def n_heads(self) -> int:
        return self.attention.shape[2]

    @property
    def prompt_labels(self) -> tuple[str, ...]:
        """Prompt labels shown in the views (BOS removed when the tokenizer added one)."""
        return self.labels[self.bos_offset : self.prompt_len]

    @property
    def generated_labels(self) -> tuple[str, ...]:
        return self.labels[self.prompt_len :]

    @property
    def generated_ids(self) -> np.ndarray:
        return self.token_ids[self.prompt_len :]

    def query_position(self, step: int) -> int:
        """Sequence position of the query that produced generated token `step`."""
        return self.prompt_len - 1 + step

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays())

    def to_npz(self) -> bytes:
        """The whole result as a NumPy .npz archive (labels and settings as JSON)."""
        buf = io.BytesIO()
        meta = {
            "model_spec": self.model_spec,
            "model_name": self.model_name,
            "prompt": self.prompt,
            "labels": list(self.labels),
            "texts": list(self.texts),
            "prompt_len": self.prompt_len,
            "bos_offset": self.bos_offset,
            "stop_reason": self.stop_reason,
            "settings": self.settings.to_dict(),
            "generated_text": self.generated_text,
            "attention_layout": "attention[step, layer, head, key]; query position = "
            "prompt_len - 1 + step; keys >= prompt_len + step are zero",
        }
        np.savez_compressed(
            buf,
            token_ids=self.token_ids,
            attention=self.attention,
            top_ids=self.top_ids,
            top_probs=self.top_probs,
            chosen_prob=self.chosen_prob,
            entropy=self.entropy,
            meta=np.array(json.dumps(meta)),
        )
        return buf.getvalue()

    @classmethod
    def from_npz(cls, data: bytes) -> GenerationResult:
        """The result `to_npz` wrote, checked on construction as every result is (a
        generation service sends a run this way)."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in ("token_ids", "attention", "top_ids", "top_probs",
                                        "chosen_prob", "entropy")}  # fmt: skip
        return cls(
            model_spec=meta["model_spec"],
            model_name=meta["model_name"],
            prompt=meta["prompt"],
            labels=tuple(meta["labels"]),
            texts=tuple(meta["texts"]),
            prompt_len=int(meta["prompt_len"]),
            bos_offset=int(meta["bos_offset"]),
            stop_reason=meta["stop_reason"],
            settings=RunSettings.from_dict(meta["settings"]),
            generated_text=meta.get("generated_text", ""),
            **arrays,
        )
