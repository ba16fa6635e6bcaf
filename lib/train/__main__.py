"""`uv run python -m lib.train`: train the tiny model headless, as seed 002's script does.

It prints the vocabulary, the loss as it falls, then what the model learned: its guess
after every prefix of every sentence and the text it writes from each first word. It saves
the model (a file the app's Use the trained model page loads) and writes PNG heatmaps for
slides: one per layer and sentence (every head and their average) and the loss curve.
`--from FILE` does all but the training for a model saved before (here or from the app).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lib.train import io
from lib.train.data import (
    SENTENCES,
    START,
    DataError,
    ambiguity_floor,
    build_dataset,
    make_dataset,
)
from lib.train.training import ConfigError, TrainConfig, Trainer, generate_words, predictions
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
    p.add_argument(
        "--save", type=Path, help="where to save the trained model (default: OUT/model.safetensors)"
    )
    p.add_argument(
        "--from",
        dest="load",
        type=Path,
        help="a saved model (.safetensors): its predictions, text and PNGs, no training",
    )
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
        lab = _load(args.load) if args.load else _train(args)
    except (OSError, DataError, ConfigError, io.LabFileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    data = make_dataset(lab.sentences, lab.vocab)
    _show_what_it_learned(lab, data)
    pictures = _pictures(lab, data, args.out)
    print(f"\nwrote {len(pictures)} PNGs to {args.out}")
    if not args.load:
        save = args.save or args.out / "model.safetensors"
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_bytes(io.to_bytes(lab))
        print(f"saved the model to {save} (Use the trained model loads it; --from reads it)")
    return 0


def _train(args: argparse.Namespace) -> io.LabModel:
    text = args.sentences.read_text(encoding="utf-8") if args.sentences else "\n".join(SENTENCES)
    data = build_dataset(text)
    print(f"vocabulary ({len(data.vocab.itos)} words): " + " ".join(data.vocab.itos))
    cfg = TrainConfig(
        args.epochs, args.learning_rate, args.width, args.heads, args.layers, args.seed
    )
    trainer = Trainer(data, cfg)
    while not trainer.done:
        loss = trainer.step()
        if trainer.epoch % max(1, cfg.epochs // 10) == 0 or trainer.done:
            print(f"epoch {trainer.epoch:5d}  loss {loss:.4f}", flush=True)
    return io.LabModel(
        "sentences", trainer.model, cfg, trainer.history(), data.vocab, data.sentences
    )


def _load(path: Path) -> io.LabModel:
    lab = io.from_bytes(path.read_bytes())
    if lab.lab != "sentences":
        raise io.LabFileError(
            "That file is an induction-lab model; this command reads sentence models."
        )
    print(f"vocabulary ({len(lab.vocab.itos)} words): " + " ".join(lab.vocab.itos))
    return lab


def _show_what_it_learned(lab: io.LabModel, data) -> None:
    """Seed 002's last words: the model's guess after every prefix, and what it writes."""
    print("\npredictions (the model's first guess after each prefix; the word that came):")
    for p in predictions(lab.model, data, top=1):
        mark = "ok " if p.words[0] == p.actual else "   "
        guess = f"{p.words[0]} {p.probs[0]:.2f}"
        print(f"  {mark}{' '.join((START, *p.prefix))} -> {guess}  (came: {p.actual})")
    print("\nwritten from each first word (greedy):")
    for first in dict.fromkeys(s[0] for s in data.sentences):
        written = generate_words(lab.model, data.vocab, first, lab.model.cfg.max_len)
        print("  " + " ".join(written.words))


def _pictures(lab: io.LabModel, data, out: Path) -> list[Path]:
    history = lab.history
    written = [loss_png(history.losses, ambiguity_floor(data.sentences), out / "loss.png")]
    last = history.attention[-1]  # (L, S, H, T, T) after training
    for layer in range(last.shape[0]):
        for s in range(last.shape[1]):
            words = [START, *data.sentences[s]]
            path = out / f"layer{layer}_sentence{s}.png"
            title = f"layer {layer}: \u201c{' '.join(data.sentences[s])}\u201d"
            written.append(attention_png(last[layer, s], words, title, path))
    return written


if __name__ == "__main__":
    sys.exit(main())
