"""One safetensors file holds a trained lab model: its weights, settings and history.

The file is plain safetensors (no pickle, nothing executed on load): tensors `model.*` are
the weights, `history.*` the loss curve and snapshots, and the header's metadata says which
lab made it, with its settings and vocabulary as JSON. Loading checks every part and
turns anything foreign or damaged into a `LabFileError` with a message for the user.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, fields

import numpy as np
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from lib.train.data import SPECIALS, Vocabulary
from lib.train.induction import InductionConfig, InductionHistory
from lib.train.model import ModelConfig, NanoTransformer
from lib.train.training import TrainConfig, TrainingHistory

KIND = "token-attention-visualizer/training-lab"
FORMAT = "1"
MAX_BYTES = 48 * 1024 * 1024


class LabFileError(ValueError):
    """A file this lab cannot use; str(error) is a message for the user."""


@dataclass(frozen=True, eq=False)
class LabModel:
    """A trained model with what it was trained on and how.

    `lab` is "sentences" (the tiny model; `vocab` and `sentences` are set) or "induction"
    (the attention-only lab; they are None).
    """

    lab: str
    model: NanoTransformer
    config: TrainConfig | InductionConfig
    history: TrainingHistory | InductionHistory
    vocab: Vocabulary | None = None
    sentences: tuple[tuple[str, ...], ...] | None = None


def _history_fields(history) -> list[str]:
    return [f.name for f in fields(history) if isinstance(getattr(history, f.name), np.ndarray)]


def to_bytes(lab: LabModel) -> bytes:
    tensors = {f"model.{k}": v.detach().clone() for k, v in lab.model.state_dict().items()}
    for name in _history_fields(lab.history):
        tensors[f"history.{name}"] = torch.from_numpy(np.array(getattr(lab.history, name)))
    meta = {
        "kind": KIND,
        "format": FORMAT,
        "lab": lab.lab,
        "model_config": json.dumps(lab.model.cfg.to_dict()),
        "config": json.dumps({f.name: getattr(lab.config, f.name) for f in fields(lab.config)}),
        "stopped_early": json.dumps(bool(lab.history.stopped_early)),
        "vocab": json.dumps(list(lab.vocab.itos) if lab.vocab else None),
        "sentences": json.dumps([list(s) for s in lab.sentences] if lab.sentences else None),
    }
    return save_tensors(tensors, metadata=meta)


def _metadata(data: bytes) -> dict:
    """The header's metadata, read by hand (safetensors' loader returns tensors only)."""
    if len(data) < 8:
        raise LabFileError("This file is too short to be a safetensors file.")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8 or n > 10_000_000:
        raise LabFileError("This is not a safetensors file (its header does not fit).")
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, ValueError) as err:
        raise LabFileError("This is not a safetensors file (its header is not JSON).") from err
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("kind") != KIND:
        raise LabFileError(
            "This safetensors file was not saved by this training lab (its metadata does "
            "not say so), so it cannot be shown here."
        )
    if meta.get("format") != FORMAT:
        raise LabFileError(
            f"This lab file has format {meta.get('format')}; this app reads {FORMAT}."
        )
    return meta


def from_bytes(data: bytes) -> LabModel:
    """The lab model in `data`, checked part by part."""
    if len(data) > MAX_BYTES:
        raise LabFileError(f"The file is larger than {MAX_BYTES // 2**20} MB.")
    meta = _metadata(data)
    try:
        tensors = load_tensors(data)
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise LabFileError("The file is damaged: its tensors cannot be read.") from err
    try:
        lab = meta["lab"]
        config_cls = {"sentences": TrainConfig, "induction": InductionConfig}[lab]
        history_cls = {"sentences": TrainingHistory, "induction": InductionHistory}[lab]
        model_config = ModelConfig(**json.loads(meta["model_config"]))
        config = config_cls(**json.loads(meta["config"]))
        config.check()
        model = NanoTransformer(model_config)
        weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        model.load_state_dict(weights, strict=True)
        arrays = {k[8:]: v.numpy() for k, v in tensors.items() if k.startswith("history.")}
        history = history_cls(**arrays, stopped_early=bool(json.loads(meta["stopped_early"])))
        vocab = sentences = None
        if lab == "sentences":
            vocab = Vocabulary(tuple(json.loads(meta["vocab"])))
            sentences = tuple(tuple(s) for s in json.loads(meta["sentences"]))
            if vocab.itos[:3] != SPECIALS or len(vocab) != model_config.vocab_size:
                raise ValueError("the vocabulary does not match the model")
    except LabFileError:
        raise
    except Exception as err:  # noqa: BLE001 - every inconsistency becomes one message
        raise LabFileError(f"The file's parts do not fit together ({err}).") from err
    return LabModel(lab, model.eval(), config, history, vocab, sentences)
