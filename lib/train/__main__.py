"""`uv run python -m lib.train`: train the tiny model headless and write PNG heatmaps.

For teachers preparing slides: one PNG per layer and sentence (every head and their
average), the loss curve, and optionally the trained model as a file the app can load.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lib.train import io
from lib.train.data import SENTENCES, START, DataError, ambiguity_floor, build_dataset
from lib.train.training import ConfigError, TrainConfig, Trainer
from lib.viz.png import attention_png, loss_png


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m lib.train", description=__doc__)
    p.add_argument(
        "--sentences",
        type=Path,
        help="a text file, one sentence a line (default: the lab's eight sentences)",
    )
    p.add_argument("--out", type=Path, default=Path("heatmaps"), help="folder for the PNGs")
    p.add_argument("--save", type=Path, help="also save the trained model (.safetensors)")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--learning-rate", type=float, default=d.learning_rate)
    p.add_argument("--layers", type=int, default=d.n_layers)
    p.add_argument("--heads", type=int, default=d.n_heads)
    p.add_argument("--width", type=int, default=d.d_model)
    p.add_argument("--seed", type=int, default=d.seed)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        text = (
            args.sentences.read_text(encoding="utf-8") if args.sentences else "\n".join(SENTENCES)
        )
        data = build_dataset(text)
        cfg = TrainConfig(
            args.epochs, args.learning_rate, args.width, args.heads, args.layers, args.seed
        )
        trainer = Trainer(data, cfg)
    except (OSError, DataError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    while not trainer.done:
        loss = trainer.step()
        if trainer.epoch % max(1, cfg.epochs // 10) == 0 or trainer.done:
            print(f"epoch {trainer.epoch:5d}  loss {loss:.4f}", flush=True)
    history = trainer.history()
    written = [loss_png(history.losses, ambiguity_floor(data.sentences), args.out / "loss.png")]
    last = history.attention[-1]  # (L, S, H, T, T) after training
    for layer in range(last.shape[0]):
        for s in range(last.shape[1]):
            words = [START, *data.sentences[s]]
            path = args.out / f"layer{layer}_sentence{s}.png"
            title = f"layer {layer}: \u201c{' '.join(data.sentences[s])}\u201d"
            written.append(attention_png(last[layer, s], words, title, path))
    if args.save:
        lab = io.LabModel("sentences", trainer.model, cfg, history, data.vocab, data.sentences)
        args.save.write_bytes(io.to_bytes(lab))
        written.append(args.save)
    print(f"wrote {len(written)} files to {args.out}" + (f" and {args.save}" if args.save else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
