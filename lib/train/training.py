"""Training the tiny model on its sentences, one epoch at a time, keeping snapshots.

A `Trainer` owns the model and the optimiser; `step()` trains one epoch (the whole set is
one batch: a handful of sentences) and returns the loss. Every `snapshot_every` epochs, and
before the first, it records every head's attention on the first sentences, so a page can
scrub through training and watch the patterns form. `history()` freezes what happened so
far into a `TrainingHistory`, which a stopped run keeps too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lib.train.data import END, START, DataError, Dataset, Vocabulary
from lib.train.model import ModelConfig, NanoTransformer, loss_fn
from lib.train.settings import ConfigError, check_bounds

SNAPSHOT_SENTENCES = 8  # attention kept for the first sentences only (memory stays small)
MAX_SNAPSHOTS = 60


@dataclass(frozen=True)
class TrainConfig:
    """The defaults: 200 epochs of Adam at 1e-3, 2 layers, 4 heads, width 64."""

    epochs: int = 200
    learning_rate: float = 1e-3
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    seed: int = 0

    BOUNDS = {
        "epochs": (1, 2000),
        "learning_rate": (1e-5, 0.1),
        "d_model": (8, 256),
        "n_heads": (1, 8),
        "n_layers": (1, 4),
        "seed": (0, 2**31 - 1),
    }

    def check(self) -> None:
        check_bounds(self, self.BOUNDS)
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"The width ({self.d_model}) must be a multiple of the number of heads "
                f"({self.n_heads}): each head gets an equal slice."
            )

    @property
    def snapshot_every(self) -> int:
        return max(1, -(-self.epochs // (MAX_SNAPSHOTS - 1)))


@dataclass(frozen=True, eq=False)
class TrainingHistory:
    """What a run of training left, E epochs done, K snapshots of L layers and H heads.

    losses           (E,) float32      mean next-word loss (nats) of each epoch
    snapshot_epochs  (K,) int64        epochs done when each snapshot was taken (0 = before)
    attention        (K, L, S, H, T, T) float32  every head's attention on the first S
                                       sentences (rows: query, columns: key)
    """

    losses: np.ndarray
    snapshot_epochs: np.ndarray
    attention: np.ndarray
    stopped_early: bool = False

    def __post_init__(self) -> None:
        K = self.snapshot_epochs.shape[0]
        if self.losses.ndim != 1 or self.snapshot_epochs.ndim != 1:
            raise ValueError("losses and snapshot_epochs must be 1-D")
        if self.attention.ndim != 6 or self.attention.shape[0] != K:
            raise ValueError(f"attention must be ({K}, L, S, H, T, T)")
        if K and self.snapshot_epochs.max() > self.losses.shape[0]:
            raise ValueError("a snapshot cannot come after the last epoch")


class Trainer:
    """The tiny model and its optimiser, trained one epoch at a time."""

    def __init__(self, data: Dataset, cfg: TrainConfig) -> None:
        cfg.check()
        self.data, self.cfg = data, cfg
        torch.manual_seed(cfg.seed)
        self.model_config = ModelConfig(
            vocab_size=len(data.vocab),
            d_model=cfg.d_model,
            n_heads=cfg.n_heads,
            n_layers=cfg.n_layers,
            max_len=data.inputs.shape[1],
        )
        self.model = NanoTransformer(self.model_config)
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=cfg.learning_rate)
        self.losses: list[float] = []
        self.snapshot_epochs: list[int] = []
        self.snapshots: list[np.ndarray] = []
        self._snapshot()

    @property
    def epoch(self) -> int:
        return len(self.losses)

    progress = epoch  # what a progress bar counts

    @property
    def done(self) -> bool:
        return self.epoch >= self.cfg.epochs

    def step(self) -> float:
        """Train one epoch (one batch of every sentence); returns its loss."""
        d = self.data
        self.model.train()
        logits = self.model(d.inputs, d.pad)
        loss = loss_fn(logits, d.targets, d.pad_id)
        self.optimiser.zero_grad()
        loss.backward()
        self.optimiser.step()
        self.losses.append(float(loss.detach()))
        if self.epoch % self.cfg.snapshot_every == 0 or self.done:
            self._snapshot()
        return self.losses[-1]

    @torch.no_grad()
    def _snapshot(self) -> None:
        d = self.data
        n = min(SNAPSHOT_SENTENCES, d.inputs.shape[0])
        self.model.eval()
        self.model(d.inputs[:n], d.pad[:n])
        self.snapshot_epochs.append(self.epoch)
        self.snapshots.append(self.model.attention_weights().numpy().copy())

    def history(self) -> TrainingHistory:
        return TrainingHistory(
            losses=np.asarray(self.losses, dtype=np.float32),
            snapshot_epochs=np.asarray(self.snapshot_epochs, dtype=np.int64),
            attention=np.stack(self.snapshots).astype(np.float32),
            stopped_early=not self.done,
        )


# ---- using the trained model ------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """The model's next-word guesses after one prefix."""

    prefix: tuple[str, ...]
    actual: str
    actual_prob: float  # the probability the model gave the word that actually came next
    words: tuple[str, ...]
    probs: tuple[float, ...]


@torch.no_grad()
def next_word_probs(model: NanoTransformer, vocab: Vocabulary, prefix: list[str]) -> np.ndarray:
    """(V,) probabilities of the word after <START> + prefix."""
    ids = torch.tensor([[vocab.stoi[START], *vocab.encode(prefix)]])
    model.eval()
    return torch.softmax(model(ids)[0, -1], dim=-1).numpy()


def predictions(model: NanoTransformer, data: Dataset, top: int = 3) -> list[Prediction]:
    """For every prefix of every sentence: the top words and what actually came next."""
    out = []
    for s in data.sentences:
        for t in range(len(s) + 1):
            p = next_word_probs(model, data.vocab, list(s[:t]))
            best = np.argsort(-p, kind="stable")[:top]
            actual = s[t] if t < len(s) else END
            out.append(
                Prediction(
                    prefix=s[:t],
                    actual=actual,
                    actual_prob=float(p[data.vocab.stoi[actual]]),
                    words=tuple(data.vocab.itos[i] for i in best),
                    probs=tuple(float(p[i]) for i in best),
                )
            )
    return out


@dataclass(frozen=True)
class Generated:
    words: tuple[str, ...]
    probs: tuple[float, ...] = field(default=())  # the probability of each word written


@torch.no_grad()
def generate_words(
    model: NanoTransformer,
    vocab: Vocabulary,
    start: str,
    max_words: int,
    temperature: float = 0.0,
    seed: int = 0,
) -> Generated:
    """Write from a start word until <END> or `max_words`: greedy at temperature 0, else a
    seeded draw at that temperature, chosen by the Generate page's own `choose_token`."""
    from lib.model.batching import build_warpers, choose_token
    from lib.model.result import SamplingSettings

    start_words = [w for w in start.lower().split() if w]
    if not start_words:
        raise DataError("Type a start word.")
    if len(start_words) >= model.cfg.max_len:
        raise DataError(f"The start is longer than this model reads ({model.cfg.max_len}).")
    vocab.encode(start_words)  # a word the model never saw is a clear message, not a crash
    sampling = SamplingSettings(do_sample=temperature > 0,
                                temperature=temperature if temperature > 0 else 1.0,
                                seed=seed)  # fmt: skip
    warpers, rng = build_warpers(sampling), torch.Generator().manual_seed(seed)
    words, probs = list(start_words), []
    while len(words) < min(max_words, model.cfg.max_len - 1):
        p = torch.as_tensor(next_word_probs(model, vocab, words))
        p[vocab.stoi["<PAD>"]] = 0.0
        p[vocab.stoi[START]] = 0.0
        p = p / p.sum()
        i = choose_token(torch.log(p), sampling, warpers, rng)  # log p: the logits, renormalised
        if vocab.itos[i] == END:
            break
        words.append(vocab.itos[i])
        probs.append(float(p[i]))
    return Generated(tuple(words), tuple(probs))
