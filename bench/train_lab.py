"""Item 7: the training lab on this machine.

The training lab's model: epochs per second of our readable NanoTransformer against PyTorch's own
`nn.TransformerEncoder` of the same size (2 post-norm layers, 4 heads, width 64, feed-forward
256) trained on the same batch with the same optimiser, in turn.

The induction lab: wall time from the start of training to the phase change (the best
induction score passing 0.5), with the default settings. Baseline in the same run: the same
training with ONE attention-only layer, which cannot form an induction circuit (it needs a
previous-token head in an earlier layer): its best induction score, and its wall time.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

import torch
from torch import nn

from bench.common import interleaved, median


class _TorchEncoder(nn.Module):
    """The baseline: PyTorch's fused encoder layers, causal mask, same size as the seed's."""

    def __init__(self, vocab: int, d: int = 64, heads: int = 4, layers: int = 2) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, vocab)
        self.d = d

    def forward(self, tokens: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        T = tokens.shape[1]
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)  # True: may not attend
        x = self.embedding(tokens) * math.sqrt(self.d)
        return self.head(self.encoder(x, mask=mask, src_key_padding_mask=pad, is_causal=True))


def _epochs_per_second(epochs: int, repeats: int, log) -> dict:
    from lib.train.data import SENTENCES, build_dataset
    from lib.train.model import loss_fn
    from lib.train.training import TrainConfig, Trainer

    data = build_dataset("\n".join(SENTENCES))

    def ours() -> None:
        trainer = Trainer(data, replace(TrainConfig(), epochs=epochs))
        while not trainer.done:
            trainer.step()

    def torch_encoder() -> None:
        torch.manual_seed(0)
        model = _TorchEncoder(len(data.vocab))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        for _ in range(epochs):
            loss = loss_fn(model(data.inputs, data.pad), data.targets, data.pad_id)
            opt.zero_grad()
            loss.backward()
            opt.step()

    log(f"train lab: seed model, {epochs} epochs, ours and torch's encoder in turn")
    t = interleaved({"ours": ours, "torch": torch_encoder}, repeats)
    ours_s, base_s = median(t["wall"]["ours"]), median(t["wall"]["torch"])
    return {
        "epochs": epochs,
        "epochs_per_s": epochs / ours_s,
        "torch_encoder_epochs_per_s": epochs / base_s,
        "ratio_vs_torch": base_s / ours_s,
    }


def _until_phase_change(cfg) -> dict:
    from lib.train.induction import InductionTrainer

    t0 = time.perf_counter()
    trainer = InductionTrainer(cfg)
    seen_at, evaluations = None, 1
    while not trainer.done:
        trainer.step()
        if seen_at is None and len(trainer.rows) > evaluations:  # a new evaluation
            evaluations = len(trainer.rows)
            if trainer.history().phase_change() is not None:
                seen_at = time.perf_counter() - t0
    h = trainer.history()
    phase = h.phase_change()
    return {
        "phase_change_s": seen_at,
        "phase_change_step": None if phase is None else int(h.steps[phase]),
        "best_induction": float(h.induction[-1].max()),
        "total_s": time.perf_counter() - t0,
        "steps": cfg.steps,
    }


def run(quick: bool, repeats: int, log) -> dict:
    from lib.train.induction import InductionConfig

    out = _epochs_per_second(20 if quick else 200, repeats, log)
    cfg = InductionConfig() if not quick else replace(InductionConfig(), steps=100)
    log(f"train lab: induction lab, {cfg.steps} steps, 2 layers then the 1-layer baseline")
    out["induction"] = _until_phase_change(cfg)
    out["one_layer"] = _until_phase_change(replace(cfg, n_layers=1))
    return out
