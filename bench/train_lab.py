"""Item 7: the training lab on this machine.

The training lab's model: epochs per second of our readable NanoTransformer against PyTorch's own
`nn.TransformerEncoder` of the same size (2 post-norm layers, 4 heads, width 64, feed-forward
256) trained on the same batch with the same optimiser, in turn.

The induction lab: wall time from the start of training to the phase change (the best
induction score passing 0.5), with the default settings. Baselines in the same run: the
same training with ONE attention-only layer, which cannot form an induction circuit (it
needs a previous-token head in an earlier layer): its best induction score and wall time;
and an independent reference, a 2-layer attention-only model written here on PyTorch's
`nn.MultiheadAttention` (AdamW at 1e-3, batch 64, the same sequences): the wall time until
its second-half loss falls under half its starting value (the jump).
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


class _AttentionOnly(nn.Module):
    """The reference: token and position embeddings, 2 causal attention layers on the
    residual stream, no MLP and no norm, a linear unembedding."""

    def __init__(self, vocab: int, length: int, d: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(length, d) * 0.02)
        self.layers = nn.ModuleList(
            nn.MultiheadAttention(d, heads, batch_first=True) for _ in range(2)
        )
        self.unembed = nn.Linear(d, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        T = tokens.shape[1]
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        x = self.embed(tokens) + self.pos[:T]
        for attn in self.layers:
            x = x + attn(x, x, x, attn_mask=mask, need_weights=False)[0]
        return self.unembed(x)


def _reference_jump(cfg, max_steps: int) -> dict:
    """Train the reference on the lab's sequences until its second-half loss halves."""
    import numpy as np

    from lib.train.induction import random_repeats

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = _AttentionOnly(cfg.vocab_size, 2 * cfg.half)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    t0, start, jump = time.perf_counter(), None, None
    for step in range(1, max_steps + 1):
        seqs = torch.as_tensor(random_repeats(rng, cfg.batch, cfg.half, cfg.vocab_size))
        logits = model(seqs[:, :-1])
        loss = nn.functional.cross_entropy(
            logits.reshape(-1, cfg.vocab_size), seqs[:, 1:].reshape(-1), reduction="none"
        ).view(cfg.batch, -1)
        second = float(loss[:, cfg.half :].mean().detach())  # predicting tokens half+2 .. 2*half
        start = second if start is None else start
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
        if step % 25 == 0 and second < start / 2:
            jump = {"step": step, "s": time.perf_counter() - t0}
            break
    return {"jump": jump, "start_loss": start, "total_s": time.perf_counter() - t0}


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
    log("train lab: the attention-only reference model")
    out["reference"] = _reference_jump(cfg, 100 if quick else 3000)
    return out
