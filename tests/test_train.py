"""The training lab: seed 002's model and data, the induction lab, files and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lib.train import io
from lib.train.data import (
    SENTENCES,
    DataError,
    ambiguity_floor,
    build_dataset,
    make_dataset,
    parse,
)
from lib.train.induction import InductionConfig, InductionTrainer, random_repeats
from lib.train.model import ModelConfig, NanoTransformer
from lib.train.training import ConfigError, TrainConfig, Trainer, generate_words, predictions

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = "\n".join(SENTENCES)


@pytest.fixture(scope="module")
def trained() -> Trainer:
    """Seed 002's defaults, trained to the end (about a second)."""
    trainer = Trainer(build_dataset(DEFAULT), TrainConfig())
    while not trainer.done:
        trainer.step()
    return trainer


# ---- the model ---------------------------------------------------------------------------


def test_causal_mask_gives_future_and_padding_exactly_zero():
    torch.manual_seed(0)
    model = NanoTransformer(ModelConfig(vocab_size=20, d_model=16, n_heads=4, n_layers=2))
    tokens = torch.randint(3, 20, (3, 7))
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[1, 5:] = True  # the second sequence is two tokens shorter
    model(tokens, pad)
    att = model.attention_weights()  # (L, B, H, T, T)
    future = torch.ones(7, 7, dtype=torch.bool).triu(1)
    assert (att[..., future] == 0).all()  # exactly zero, not small
    assert (att[:, 1, :, :, 5:] == 0).all()  # nobody attends to padding
    torch.testing.assert_close(att.sum(-1), torch.ones_like(att.sum(-1)))


def test_model_shape_and_the_seeds_architecture():
    cfg = ModelConfig(vocab_size=11)
    model = NanoTransformer(cfg)
    assert (cfg.n_layers, cfg.n_heads, cfg.d_model) == (2, 4, 64)
    assert model(torch.zeros(2, 5, dtype=torch.int64)).shape == (2, 5, 11)
    block = model.blocks[0]
    assert hasattr(block, "feed_forward") and hasattr(block, "norm2")
    attn_only = NanoTransformer(ModelConfig(vocab_size=11, attention_only=True))
    assert not hasattr(attn_only.blocks[0], "feed_forward")


# ---- the data and training ---------------------------------------------------------------


def test_dataset_pairs_are_shifted_by_one():
    d = build_dataset("the cat sat\nthe dog sat on the mat")
    itos = d.vocab.itos
    assert itos[:3] == ("<PAD>", "<START>", "<END>")
    assert [itos[i] for i in d.inputs[0]] == [
        "<START>",
        "the",
        "cat",
        "sat",
        "<PAD>",
        "<PAD>",
        "<PAD>",
    ]
    assert [itos[i] for i in d.targets[0]] == [
        "the",
        "cat",
        "sat",
        "<END>",
        "<PAD>",
        "<PAD>",
        "<PAD>",
    ]
    assert d.pad[0].tolist() == [False] * 4 + [True] * 3


def test_ambiguity_floor_by_hand():
    # "a b" and "a c": after <START> comes "a" surely, then b or c (ln 2 each), then <END>.
    assert ambiguity_floor([["a", "b"], ["a", "c"]]) == pytest.approx(np.log(2) / 3)
    assert ambiguity_floor([["a", "b"]]) == 0.0


def test_the_seed_model_learns_down_to_the_datas_own_ambiguity(trained):
    losses = trained.history().losses
    floor = ambiguity_floor(build_dataset(DEFAULT).sentences)
    assert floor > 0.2  # the sentences really are ambiguous in places
    # Memorisable set: after 200 epochs the loss is within 0.1 nats of what no model beats,
    # and far below where it started (about ln of the vocabulary).
    assert losses[0] > 2.0
    assert floor - 1e-3 <= losses[-1] < floor + 0.1, (losses[-1], floor)


def test_snapshots_scrub_through_training(trained):
    h = trained.history()
    assert h.snapshot_epochs[0] == 0 and h.snapshot_epochs[-1] == 200
    L, S, H, T = 2, 8, 4, h.attention.shape[-1]
    assert h.attention.shape == (len(h.snapshot_epochs), L, S, H, T, T)
    assert not np.allclose(h.attention[0], h.attention[-1])  # the patterns changed


def test_predictions_and_generation(trained):
    data = trained.data
    preds = predictions(trained.model, data)
    assert len(preds) == sum(len(s) + 1 for s in data.sentences)
    certain = [p for p in preds if p.prefix == ("the", "cat", "sat")]
    assert certain and certain[0].words[0] == "on" and certain[0].probs[0] > 0.8
    out = generate_words(trained.model, data.vocab, "a cat", 10)
    assert out.words[:2] == ("a", "cat") and out.words[2] == "sleeps"
    again = generate_words(trained.model, data.vocab, "a cat", 10, temperature=1.0, seed=3)
    assert again == generate_words(trained.model, data.vocab, "a cat", 10, temperature=1.0, seed=3)
    with pytest.raises(DataError, match="Not in the vocabulary: unicorn"):
        generate_words(trained.model, data.vocab, "the unicorn", 5)
    with pytest.raises(DataError):
        generate_words(trained.model, data.vocab, "   ", 5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no sentences"),
        ("   \n\n  ", "no sentences"),
        ("hello\nthe cat sat", "at least two words"),
        ("\n".join(["the cat sat"] * 5000), "at most 200"),
        (" ".join(["word"] * 40), "more than 20 words"),
        ("!!! ??? ...", "no sentences"),
    ],
)
def test_bad_sentences_get_a_message(text, message):
    with pytest.raises(DataError, match=message):
        parse(text)


@pytest.mark.parametrize(
    "changes",
    [
        {"epochs": 10**9},
        {"epochs": 0},
        {"learning_rate": 5.0},
        {"d_model": 4096},
        {"n_heads": 3},  # 64 is not a multiple of 3
        {"n_layers": 50},
    ],
)
def test_huge_or_odd_settings_are_refused(changes):
    with pytest.raises(ConfigError):
        Trainer(build_dataset(DEFAULT), TrainConfig(**changes))


# ---- the induction lab -------------------------------------------------------------------


def test_random_repeats():
    t = random_repeats(np.random.default_rng(0), 5, 6, 10)
    assert t.shape == (5, 12)
    assert (t[:, :6] == t[:, 6:]).all()
    assert all(len(set(row[:6])) == 6 for row in t.tolist())


@pytest.fixture(scope="module")
def induction():
    trainer = InductionTrainer(InductionConfig())
    while not trainer.done:
        trainer.step()
    return trainer.history()


def test_induction_heads_form_in_a_phase_change(induction):
    h = induction
    best = h.induction.reshape(len(h.steps), -1).max(axis=1)
    assert best[0] < 0.2  # at initialisation no head copies
    assert best[-1] > 0.7  # after training one does
    phase = h.phase_change()
    assert phase is not None and 0 < phase < len(h.steps) - 1
    # The second-half loss: on a plateau before, much lower after, and its sharpest drop
    # comes with the induction score's jump (within a few evaluations).
    assert h.loss_second[-1] < 0.5 * h.loss_second[max(phase - 3, 0)]
    drop = int(np.argmin(np.diff(h.loss_second)))
    assert abs(drop - phase) <= 4, (drop, phase)
    assert h.icl_score[-1] < -1.0  # late tokens are predicted far better than early ones
    # Layer 0 feeds the induction head one of two ways: a previous-token head (each position
    # learns the token before it) or a duplicate-token head (the query finds its earlier copy).
    layer0 = max(h.prev_token[-1, 0].max(), h.role("duplicate_token")[-1, 0].max())
    assert layer0 > 0.5


# ---- files -------------------------------------------------------------------------------


def test_a_trained_file_round_trips_bit_exactly(trained):
    h = trained.history()
    lab = io.LabModel(
        "sentences", trained.model, trained.cfg, h, trained.data.vocab, trained.data.sentences
    )
    blob = io.to_bytes(lab)
    back = io.from_bytes(blob)
    for name, value in trained.model.state_dict().items():
        assert torch.equal(back.model.state_dict()[name], value), name
    for name in ("losses", "snapshot_epochs", "attention"):
        np.testing.assert_array_equal(getattr(back.history, name), getattr(h, name))
    assert back.vocab == trained.data.vocab and back.sentences == trained.data.sentences
    assert back.config == trained.cfg
    # Saved again, the file holds the same bytes: safetensors writes its metadata in any
    # order, so the headers are compared as JSON and the tensor data byte for byte.
    again = io.to_bytes(back)
    n, m = (int.from_bytes(b[:8], "little") for b in (blob, again))
    assert json.loads(again[8 : 8 + m]) == json.loads(blob[8 : 8 + n])
    assert again[8 + m :] == blob[8 + n :]
    preds = predictions(back.model, make_dataset(back.sentences, back.vocab))
    assert preds == predictions(trained.model, trained.data)


def test_foreign_or_damaged_files_get_a_message(trained, tmp_path):
    from safetensors.torch import save

    good = io.to_bytes(
        io.LabModel(
            "sentences",
            trained.model,
            trained.cfg,
            trained.history(),
            trained.data.vocab,
            trained.data.sentences,
        )
    )
    bad = {
        "random bytes": np.random.default_rng(0).bytes(1000),
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "foreign safetensors": save({"w": torch.zeros(3)}),
        "a text file": b"the cat sat on the mat\n",
        "tampered weights": good.replace(b"model.head.weight", b"model.head.wrongs"),
    }
    for name, data in bad.items():
        with pytest.raises(io.LabFileError):
            io.from_bytes(data)
        assert name


def test_command_line_writes_the_seeds_heatmaps(tmp_path, processes):
    """Seed 002's script: the vocabulary, the loss, then the predictions and the text the
    model writes; the model saved; the PNGs again from the saved model alone."""
    out = tmp_path / "png"
    proc = processes.run("-m", "lib.train", "--epochs", "5", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout
    words = printed.splitlines()[0].split(": ", 1)[1].split()
    assert printed.startswith("vocabulary (") and {"<START>", "cat", "mat"} <= set(words)
    assert "epoch     5  loss" in printed
    guesses = [line for line in printed.splitlines() if " -> " in line]
    n_prefixes = sum(len(s.split()) + 1 for s in SENTENCES)  # every prefix, the empty one too
    assert len(guesses) == n_prefixes
    assert "written from each first word (greedy):" in printed
    names = sorted(p.name for p in out.glob("*.png"))
    assert "loss.png" in names
    assert len(names) == 1 + 2 * 8  # 2 layers x 8 sentences
    assert (out / "layer1_sentence7.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = out / "model.safetensors"
    assert io.from_bytes(saved.read_bytes()).lab == "sentences"
    again = processes.run("-m", "lib.train", "--from", str(saved), "--out", str(tmp_path / "b"))
    assert again.returncode == 0, again.stderr
    assert "epoch" not in again.stdout  # no training
    assert [line for line in again.stdout.splitlines() if " -> " in line] == guesses
    assert len(list((tmp_path / "b").glob("*.png"))) == len(names)
    (tmp_path / "bad.safetensors").write_bytes(b"not a model")
    bad = processes.run("-m", "lib.train", "--from", str(tmp_path / "bad.safetensors"))
    assert bad.returncode == 2 and bad.stderr.startswith("error:")
    bad = processes.run("-m", "lib.train", "--heads", "3")
    assert bad.returncode == 2 and "multiple of the number of heads" in bad.stderr
